//! Waiting in the protocol's spin loops.
//!
//! Every wait in node replication is for another thread that is running protocol code (a
//! combiner finishing a batch, a reader leaving, an appender publishing an entry). On a machine
//! with more runnable threads than CPUs that thread may be descheduled, so after a few rounds of
//! spinning the waiter yields its CPU instead of burning its time slice. Under loom every round
//! is a loom yield, so the model explores the other threads' progress.

/// An exponential spin-then-yield backoff for one wait.
#[cfg(not(loom))]
pub(crate) struct Backoff(crossbeam_utils::Backoff);

#[cfg(not(loom))]
impl Backoff {
    pub(crate) fn new() -> Self {
        Self(crossbeam_utils::Backoff::new())
    }

    /// Waits a little longer than last time, yielding the CPU once spinning has not helped.
    pub(crate) fn snooze(&self) {
        self.0.snooze();
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
