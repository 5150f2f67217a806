//! Where the calling thread runs, and the machine's NUMA nodes.
//!
//! Node facts come from sysfs and are read without allocating; a kernel without NUMA
//! support (no `/sys/devices/system/node`) is a machine with one node, 0, holding every CPU.

use super::{OsError, backend, sysfs};
use core::sync::atomic::{AtomicUsize, Ordering};

/// A CPU and the NUMA node it belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CpuLocation {
    /// The CPU (as numbered by the kernel).
    pub cpu: usize,
    /// Its NUMA node.
    pub node: usize,
}

/// The CPU the calling thread is running on right now, and its node (`getcpu`). Unless the
/// thread is pinned, the answer may be stale by the time it is read.
pub fn current_cpu() -> Result<CpuLocation, OsError> {
    let (cpu, node) = backend::getcpu().map_err(|errno| OsError::Syscall { call: "getcpu", errno })?;
    Ok(CpuLocation { cpu: cpu as usize, node: node as usize })
}

/// Gives the CPU to another thread (`sched_yield`); under loom, to another modelled thread.
pub fn yield_now() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    backend::yield_now();
}

/// Node count + 1 once read; 0 before. Relaxed: a cached fact, publishing nothing else.
static NODE_COUNT: AtomicUsize = AtomicUsize::new(0);

/// How many NUMA nodes the machine has (at least 1), read from sysfs once.
pub fn node_count() -> usize {
    match NODE_COUNT.load(Ordering::Relaxed) {
        0 => {
            let count = sysfs::with_file(c"/sys/devices/system/node/online", sysfs::list_max)
                .flatten()
                .map_or(1, |max| (max as usize).saturating_add(1))
                .clamp(1, backend::MAX_NODES);
            NODE_COUNT.store(count + 1, Ordering::Relaxed);
            count
        }
        stored => stored - 1,
    }
}

/// The NUMA node that `cpu` belongs to, or `None` if no node lists it.
pub fn node_of_cpu(cpu: usize) -> Option<usize> {
    let nodes = node_count();
    if nodes == 1 {
        return Some(0);
    }
    (0..nodes).find(|&node| {
        let mut path = PathBuf::new();
        path.push(b"/sys/devices/system/node/node");
        path.push_decimal(node);
        path.push(b"/cpulist");
        path.as_cstr()
            .and_then(|path| sysfs::with_file(path, |text| sysfs::list_contains(text, cpu as u64)))
            .unwrap_or(false)
    })
}

/// A NUL-terminated path built on the stack (this module must not allocate).
struct PathBuf {
    bytes: [u8; 64],
    len: usize,
}

impl PathBuf {
    fn new() -> Self {
        PathBuf { bytes: [0; 64], len: 0 }
    }

    fn push(&mut self, part: &[u8]) {
        // Keep one byte for the NUL; an over-long path is cut and then fails to open.
        let room = self.bytes.len() - 1 - self.len;
        let n = part.len().min(room);
        self.bytes[self.len..self.len + n].copy_from_slice(&part[..n]);
        self.len += n;
    }

    fn push_decimal(&mut self, mut n: usize) {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.push(&digits[i..]);
    }

    fn as_cstr(&self) -> Option<&core::ffi::CStr> {
        core::ffi::CStr::from_bytes_until_nul(&self.bytes[..=self.len]).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_paths_on_the_stack() {
        let mut path = PathBuf::new();
        path.push(b"/sys/node");
        path.push_decimal(1024);
        path.push(b"/x");
        assert_eq!(path.as_cstr().unwrap().to_bytes(), b"/sys/node1024/x");
        let mut zero = PathBuf::new();
        zero.push_decimal(0);
        assert_eq!(zero.as_cstr().unwrap().to_bytes(), b"0");
    }

    #[test]
    fn every_cpu_has_a_node() {
        assert!(node_count() >= 1);
        let here = current_cpu().unwrap();
        assert!(here.node < node_count());
        assert_eq!(node_of_cpu(here.cpu), Some(here.node));
    }
}
