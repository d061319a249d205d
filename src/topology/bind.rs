//! Pinning the calling thread to one OS CPU.

/// Pins the calling thread to `os_cpu`. Returns whether the OS accepted it; a refusal (for example
/// a CPU outside a container's cpuset) is not an error, the worker simply runs unpinned.
///
/// With the `hwloc` feature the binding goes through hwloc (which also knows about cgroup
/// restrictions); if hwloc cannot bind, core_affinity is tried before giving up.
#[cfg_attr(loom, allow(dead_code))] // the pool, its only caller, is not built under loom
pub(crate) fn bind_current_thread(os_cpu: usize) -> bool {
    #[cfg(feature = "hwloc")]
    {
        if super::hwloc::bind_current_thread(os_cpu) {
            return true;
        }
    }
    // core_affinity fills a fixed-size `cpu_set_t` and libc's `CPU_SET` panics past its end, so
    // an id the mask cannot hold is refused here instead.
    if os_cpu >= CPU_SET_CAPACITY {
        return false;
    }
    core_affinity::set_for_current(core_affinity::CoreId { id: os_cpu })
}

/// Bits in glibc's `cpu_set_t` (`CPU_SETSIZE`), the largest mask core_affinity can pass.
#[cfg_attr(loom, allow(dead_code))]
const CPU_SET_CAPACITY: usize = 1024;

/// The OS CPU the calling thread is running on right now, if the platform can tell. The answer
/// may be stale as soon as it is returned (the thread can migrate); callers use it only as a
/// placement hint, never for correctness.
#[cfg(target_os = "linux")]
pub(crate) fn current_os_cpu() -> Option<usize> {
    // SAFETY: `sched_getcpu` takes no arguments and only reads the calling thread's state.
    let cpu = unsafe { libc::sched_getcpu() };
    usize::try_from(cpu).ok()
}

/// The OS CPU the calling thread is running on; unknown off Linux.
#[cfg(not(target_os = "linux"))]
pub(crate) fn current_os_cpu() -> Option<usize> {
    None
}

#[cfg(test)]
mod tests {
    use super::bind_current_thread;

    #[test]
    fn binds_to_an_allowed_cpu_and_refuses_an_absent_one() {
        let allowed = crate::Topology::allowed_os_cpus();
        let cpu = *allowed.last().expect("at least one allowed CPU");
        // Bind a fresh thread so the test harness thread keeps its mask.
        let (ok, bad) = std::thread::spawn(move || {
            let ok = bind_current_thread(cpu);
            let bad = bind_current_thread(60_000);
            (ok, bad)
        })
        .join()
        .unwrap();
        assert!(ok, "binding to allowed cpu{cpu} failed");
        assert!(!bad, "binding to a CPU that does not exist must be refused");
    }
}
