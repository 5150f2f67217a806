//! Which NUMA node a thread's cache draws from, and pinning threads to cores.
//!
//! Normally the node is the kernel's (`getcpu` when the thread first allocates, or the
//! node of the core it is pinned to). For tests on machines with one node, a topology can be
//! simulated with [`simulate_topology`]: CPU `c` then belongs to node
//! `(c / cores_per_node) % nodes`, and threads are spread over the simulated nodes by the
//! CPU they report, so depot selection and cross-node frees run as on a larger machine.

use crate::os::{self, OsError, numa::CpuLocation};
use core::sync::atomic::{AtomicUsize, Ordering};

/// `nodes << 32 | cores_per_node` of a simulated topology, or 0. Relaxed: a setting read
/// on the slow path, publishing nothing else.
static SIMULATED: AtomicUsize = AtomicUsize::new(0);

/// Makes the allocator behave as if the machine had `nodes` NUMA nodes of `cores_per_node`
/// cores each. Affects threads that set up their cache (allocate for the first time) or
/// pin themselves afterwards. For testing NUMA behaviour on small machines.
pub fn simulate_topology(nodes: usize, cores_per_node: usize) {
    let value = if nodes == 0 || cores_per_node == 0 {
        0
    } else {
        (nodes.min(u32::MAX as usize) << 32) | cores_per_node.min(u32::MAX as usize)
    };
    SIMULATED.store(value, Ordering::Relaxed);
}

/// The node of `cpu` in the simulated topology, if one is set.
fn simulated_node(cpu: usize) -> Option<usize> {
    let value = SIMULATED.load(Ordering::Relaxed);
    (value != 0).then(|| (cpu / (value & 0xFFFF_FFFF)) % (value >> 32))
}

/// How many NUMA nodes threads are spread over: the simulated count if a topology is
/// simulated, otherwise the machine's.
pub fn numa_node_count() -> usize {
    match SIMULATED.load(Ordering::Relaxed) {
        0 => os::numa::node_count(),
        value => value >> 32,
    }
}

/// The node whose depots a thread running on `cpu` should use.
pub(crate) fn node_of_cpu(cpu: usize) -> usize {
    simulated_node(cpu).or_else(|| os::numa::node_of_cpu(cpu)).unwrap_or(0)
}

/// The node of the CPU the calling thread runs on now.
pub(crate) fn current_node() -> usize {
    match os::numa::current_cpu() {
        Ok(here) => simulated_node(here.cpu).unwrap_or(here.node),
        Err(_) => 0,
    }
}

/// Makes the calling thread's cache draw from and return to node `node`'s depots, for
/// threads whose placement is managed outside this crate (isolated CPUs pinned by a
/// launcher, say).
pub fn use_numa_node(node: usize) {
    super::thread_cache::set_node(node);
}

/// The NUMA node whose depots the calling thread's cache uses (set up on first use if
/// needed).
pub fn current_thread_node() -> usize {
    super::thread_cache::node()
}

/// Pins the calling thread to `core` and makes its allocator cache use that core's NUMA
/// node: its blocks then come from, and return to, that node's depots.
///
/// Where pinning is not permitted this fails with [`OsError::PinRefused`] and changes
/// nothing.
pub fn pin_current_thread(core: usize) -> Result<CpuLocation, OsError> {
    let location = os::pin_current_thread_to_core(core)?;
    let node = node_of_cpu(core);
    super::thread_cache::set_node(node);
    Ok(CpuLocation { cpu: location.cpu, node })
}
