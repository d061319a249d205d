//! The OS's view of a worker thread: is it running, and how much CPU time has it used?
//!
//! A silent lease alone cannot tell a *blocked* worker (sleeping, waiting on I/O, a futex or a
//! page fault: its CPU's capacity is lost) from a *busy* one (a long computation, or a thread
//! waiting for a CPU on an overloaded machine: it has lost nothing, and its queue is already
//! reachable by stealing). On Linux the watch asks the kernel: the thread's scheduler state in
//! `/proc/self/task/<tid>/stat` (`R` means running or runnable) and its CPU clock
//! (`pthread_getcpuclockid` + `clock_gettime`). Elsewhere no probe exists and the lease alone
//! decides, as before.
//!
//! Reading the state costs an open and a read of a small proc file (some microseconds), so the
//! watch probes only leases that have already been silent for half a lease.

use std::time::Duration;

/// A handle on one thread for other threads of the process to look at.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ThreadProbe {
    #[cfg(target_os = "linux")]
    tid: libc::pid_t,
    #[cfg(target_os = "linux")]
    clock: libc::clockid_t,
}

impl ThreadProbe {
    /// A probe of the calling thread, where the OS offers one.
    #[cfg(target_os = "linux")]
    pub(crate) fn current() -> Option<Self> {
        // SAFETY: `gettid` has no preconditions.
        let tid = unsafe { libc::gettid() };
        let mut clock: libc::clockid_t = 0;
        // SAFETY: `pthread_self()` names the calling thread, which is alive, and `clock` is a
        // valid place for the result.
        let rc = unsafe { libc::pthread_getcpuclockid(libc::pthread_self(), &mut clock) };
        (rc == 0).then_some(ThreadProbe { tid, clock })
    }

    /// No probe off Linux: the lease alone decides.
    #[cfg(not(target_os = "linux"))]
    pub(crate) fn current() -> Option<Self> {
        None
    }

    /// CPU time the thread has used so far; `None` once it is gone.
    #[cfg(target_os = "linux")]
    pub(crate) fn cpu_time(&self) -> Option<Duration> {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid place for the result. A clock of a thread that has exited
        // makes the call fail with EINVAL; it never touches freed memory.
        let rc = unsafe { libc::clock_gettime(self.clock, &mut ts) };
        (rc == 0).then(|| Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
    }

    #[cfg(not(target_os = "linux"))]
    pub(crate) fn cpu_time(&self) -> Option<Duration> {
        None
    }

    /// Whether the thread is running or waiting for a CPU (state `R`) right now; `None` if the
    /// state cannot be read (the thread is gone).
    #[cfg(target_os = "linux")]
    pub(crate) fn is_runnable(&self) -> Option<bool> {
        let stat = std::fs::read(format!("/proc/self/task/{}/stat", self.tid)).ok()?;
        state_of(&stat).map(|s| s == b'R')
    }

    #[cfg(not(target_os = "linux"))]
    pub(crate) fn is_runnable(&self) -> Option<bool> {
        None
    }
}

/// The state letter of a `/proc/<pid>/stat` line: the first field after the command name, which
/// is in parentheses and may itself contain spaces and parentheses (so: after the *last* `)`).
fn state_of(stat: &[u8]) -> Option<u8> {
    let close = stat.iter().rposition(|&b| b == b')')?;
    stat[close + 1..]
        .iter()
        .copied()
        .find(|b| !b.is_ascii_whitespace())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_follows_the_last_parenthesis() {
        assert_eq!(state_of(b"42 (worker) S 1 2 3"), Some(b'S'));
        assert_eq!(state_of(b"42 (a) b) (c) R 1"), Some(b'R'));
        assert_eq!(state_of(b"garbage"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_sleeping_thread_reads_blocked_and_a_spinning_one_runnable() {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::{Arc, mpsc};
        use std::time::Instant;

        let (tx, rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let s = Arc::clone(&stop);
        let sleeper = std::thread::spawn(move || {
            tx.send(ThreadProbe::current().unwrap()).unwrap();
            // Long sleeps: even on an overloaded machine, where a woken thread waits (runnable)
            // for a CPU, it is then mostly asleep.
            while !s.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        let probe = rx.recv().unwrap();
        let cpu0 = probe.cpu_time().unwrap();
        std::thread::sleep(Duration::from_millis(50));
        let used = probe.cpu_time().unwrap() - cpu0;
        assert!(
            used < Duration::from_millis(25),
            "a sleeper used {used:?} of 50 ms"
        );
        // It is awake a tiny fraction of the time: most reads say "not runnable".
        let blocked = (0..20)
            .filter(|_| {
                std::thread::sleep(Duration::from_millis(3));
                probe.is_runnable() == Some(false)
            })
            .count();
        assert!(blocked >= 10, "{blocked} of 20 reads said blocked");
        stop.store(true, Ordering::SeqCst);
        sleeper.join().unwrap();

        let (tx, rx) = mpsc::channel();
        let spinner = std::thread::spawn(move || {
            tx.send(ThreadProbe::current().unwrap()).unwrap();
            let t0 = Instant::now();
            while t0.elapsed() < Duration::from_millis(200) {
                std::hint::spin_loop();
            }
        });
        let probe = rx.recv().unwrap();
        // Running or waiting for a CPU, never sleeping: every read says runnable.
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(probe.is_runnable(), Some(true));
        spinner.join().unwrap();
    }
}
