//! Pinning the calling thread to one OS CPU.

/// Pins the calling thread to `os_cpu`. Returns whether the OS accepted it; a refusal (for example
/// a CPU outside a container's cpuset) is not an error, the worker simply runs unpinned.
#[allow(dead_code)] // used by the pool (issue 3)
pub(crate) fn bind_current_thread(os_cpu: usize) -> bool {
    core_affinity::set_for_current(core_affinity::CoreId { id: os_cpu })
}
