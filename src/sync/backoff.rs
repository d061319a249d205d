//! Waiting for another thread: the one backoff every wait loop uses.
//!
//! Most waits (node replication's combiner hand-off, a reader leaving, an appender publishing an
//! entry) are for another thread that is running protocol code. On a machine with more runnable
//! threads than CPUs that thread may be descheduled, so after a few rounds of spinning the waiter
//! yields its CPU instead of burning its time slice ([`Backoff::snooze`]). A few waits are for a
//! thread that may be blocked for milliseconds (shutdown joining a worker that is still running a
//! task); those go on to sleep, in growing steps, once yielding has not helped
//! ([`Backoff::snooze_or_sleep`]). Under loom every round is a loom yield, so the model explores
//! the other threads' progress.

/// Rounds of spinning before a wait starts yielding its CPU. A round is one `pause`-class
/// hint (tens of cycles), so this is about a microsecond or two: longer than any wait for a
/// running thread in this protocol (a read, a batch), shorter than a scheduler time slice.
#[cfg(not(loom))]
const SPIN_ROUNDS: u32 = 128;

/// A spin-then-yield wait.
///
/// The spinning is linear, one hint per round, and the caller re-checks its condition after
/// every round. An exponential backoff (crossbeam's, used here before) spins up to 64 hints
/// between checks, which on CPUs with a slow `pause` is over a microsecond: a reader waiting out
/// a 50 ns batch could sit twenty times longer than the batch. The waits here are short and
/// involve one or two other threads, so the contention an exponential backoff protects against
/// does not arise.
#[cfg(not(loom))]
pub(crate) struct Backoff(std::cell::Cell<u32>);

/// Rounds of yielding, after the spinning, before [`Backoff::snooze_or_sleep`] starts to sleep.
#[cfg(not(loom))]
const YIELD_ROUNDS: u32 = 64;

/// The longest single sleep of [`Backoff::snooze_or_sleep`]: short enough that a finished wait
/// is noticed within a millisecond.
#[cfg(not(loom))]
const MAX_SLEEP: std::time::Duration = std::time::Duration::from_millis(1);

#[cfg(not(loom))]
impl Backoff {
    pub(crate) fn new() -> Self {
        Self(std::cell::Cell::new(0))
    }

    /// Waits one round of a wait that may last milliseconds: spin, then yield, then sleep for
    /// 50 µs doubling up to 1 ms.
    pub(crate) fn snooze_or_sleep(&self) {
        let rounds = self.0.get();
        if rounds < SPIN_ROUNDS + YIELD_ROUNDS {
            self.snooze();
            if rounds >= SPIN_ROUNDS {
                self.0.set(rounds + 1);
            }
            return;
        }
        let step = (rounds - SPIN_ROUNDS - YIELD_ROUNDS).min(5);
        self.0.set(rounds + 1);
        std::thread::sleep((std::time::Duration::from_micros(50) * (1 << step)).min(MAX_SLEEP));
    }

    /// Waits one round: a spin hint while the wait is young, then a yield of the CPU.
    pub(crate) fn snooze(&self) {
        let rounds = self.0.get();
        if rounds < SPIN_ROUNDS {
            self.0.set(rounds + 1);
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
}

/// Under loom: one loom yield per round.
#[cfg(loom)]
pub(crate) struct Backoff;

#[cfg(loom)]
impl Backoff {
    pub(crate) fn new() -> Self {
        Self
    }

    /// Yields to loom's scheduler.
    pub(crate) fn snooze(&self) {
        crate::sync::spin_loop();
    }

    /// Yields to loom's scheduler.
    pub(crate) fn snooze_or_sleep(&self) {
        crate::sync::spin_loop();
    }
}
