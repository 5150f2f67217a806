//! Pinning threads to cores (through `core_affinity`).

use super::{OsError, numa};
use std::vec::Vec;

/// The cores this process may run on, as kernel CPU numbers. Empty if they cannot be read.
pub fn available_cores() -> Vec<usize> {
    core_affinity::get_core_ids().unwrap_or_default().into_iter().map(|core| core.id).collect()
}

/// Pins the calling thread to `core` and returns where it now runs (the core and its node).
///
/// Fails with [`OsError::PinRefused`] if the core is not in this process's allowed set or the
/// sandbox does not permit changing affinity; the thread's affinity is then unchanged.
pub fn pin_current_thread_to_core(core: usize) -> Result<numa::CpuLocation, OsError> {
    // core_affinity indexes a fixed-size `cpu_set_t` with the id and panics past its end
    // (1024 CPUs), so only ids from the allowed set are passed on.
    if !available_cores().contains(&core)
        || !core_affinity::set_for_current(core_affinity::CoreId { id: core })
    {
        return Err(OsError::PinRefused { core });
    }
    let node = numa::node_of_cpu(core).unwrap_or(0);
    Ok(numa::CpuLocation { cpu: core, node })
}
