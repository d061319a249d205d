//! Waiting in the protocol's spin loops.
//!
//! Every wait in node replication is for another thread that is running protocol code (a
//! combiner finishing a batch, a reader leaving, an appender publishing an entry). On a machine
//! with more runnable threads than CPUs that thread may be descheduled, so after a few rounds of
//! spinning the waiter yields its CPU instead of burning its time slice. Under loom every round
//! is a loom yield, so the model explores the other threads' progress.

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

#[cfg(not(loom))]
impl Backoff {
    pub(crate) fn new() -> Self {
        Self(std::cell::Cell::new(0))
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
}
