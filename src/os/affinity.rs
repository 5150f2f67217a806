//! Pinning threads to cores (through `core_affinity`).

use super::{OsError, numa};
use std::vec::Vec;

/// The cores the calling thread may run on (its affinity mask), as kernel CPU numbers. Empty
/// if they cannot be read. A thread inherits its creator's mask, so after pinning a thread
/// to one core, threads it spawns see only that core: read this before pinning.
pub fn available_cores() -> Vec<usize> {
    core_affinity::get_core_ids().unwrap_or_default().into_iter().map(|core| core.id).collect()
}

/// Bits in the `cpu_set_t` that `core_affinity` passes to the kernel.
const CPU_SET_BITS: usize = 8 * core::mem::size_of::<libc::cpu_set_t>();

/// Pins the calling thread to `core` and returns where it now runs (the core and its node).
///
/// Fails with [`OsError::PinRefused`] if the core is not in this process's allowed set or the
/// sandbox does not permit changing affinity; the thread's affinity is then unchanged.
pub fn pin_current_thread_to_core(core: usize) -> Result<numa::CpuLocation, OsError> {
    // core_affinity indexes a fixed-size `cpu_set_t` with the id and panics past its end, so
    // larger ids are refused here. Whether the core is allowed is the kernel's decision (the
    // cpuset), not the calling thread's current mask, which may be narrower: a thread spawned
    // by a pinned thread starts with its parent's single core.
    if core >= CPU_SET_BITS || !core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
        return Err(OsError::PinRefused { core });
    }
    let node = numa::node_of_cpu(core).unwrap_or(0);
    Ok(numa::CpuLocation { cpu: core, node })
}
