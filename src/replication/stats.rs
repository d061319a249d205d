//! Takeover counters, and [`RecoveryStats`], their public snapshot (`PoolStats::recovery`).
//!
//! These are reporting, not protocol state, so they use `std` atomics directly (not the loom
//! shim): loom then does not explore their interleavings, which carry no correctness meaning.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Replication and takeover counters. All relaxed: they are read for reporting only.
///
/// ```
/// use replicore::__protocol::ReplicationStats;
/// let s = ReplicationStats::default();
/// s.record_lag(7, None);
/// s.record_lag(3, Some(Duration::from_micros(250)));
/// assert_eq!(s.snapshot().replica_lag_max, 7);
/// assert_eq!(s.snapshot().replica_lag_max_time, Duration::from_micros(250));
/// # use std::time::Duration;
/// ```
#[derive(Debug, Default)]
pub struct ReplicationStats {
    takeovers: AtomicU64,
    fenced_rejections: AtomicU64,
    tasks_recovered_from_replica: AtomicU64,
    lease_expiries: AtomicU64,
    replica_lag_max: AtomicU64,
    replica_lag_max_micros: AtomicU64,
    replacement_threads: AtomicU64,
    replica_gaps: AtomicU64,
    takeovers_without_replacement: AtomicU64,
    busy_expiries: AtomicU64,
    monitor_rounds: AtomicU64,
    tasks_reoffered: AtomicU64,
}

/// A snapshot of a pool's recovery counters: leases, takeovers and replicas
/// ([`ThreadPool::stats`](crate::ThreadPool::stats)`().recovery`).
///
/// ```
/// let pool = replicore::ThreadPool::builder().num_threads(2).build()?;
/// pool.install(|| replicore::join(|| 1, || 2));
/// let recovery = pool.stats().recovery;
/// assert_eq!(recovery.takeovers, 0, "no worker stalled");
/// println!("{recovery:?}");
/// # Ok::<(), replicore::BuildError>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecoveryStats {
    /// CPUs taken over after their lease expired (fence won, tasks adopted).
    pub takeovers: u64,
    /// Owner actions refused because the owner had been fenced (it redirected the task and
    /// retired), plus stale-epoch ops replicas rejected.
    pub fenced_rejections: u64,
    /// Tasks a successor adopted from its replica of the taken-over CPU's queue.
    pub tasks_recovered_from_replica: u64,
    /// Leases judged expired and acted on: a won fence, or a stall handled at the spare-thread
    /// cap.
    pub lease_expiries: u64,
    /// Largest replica lag seen, in queue operations not yet applied.
    pub replica_lag_max: u64,
    /// Largest replica lag seen, in time since that replica was last caught up (µs resolution).
    pub replica_lag_max_time: Duration,
    /// Replacement worker threads started to restore a taken-over CPU's capacity.
    pub replacement_threads: u64,
    /// Replica syncs that found a gap (the replica fell more than the log's capacity behind, or
    /// a write was skipped): a takeover using such a replica also scans the old deque and the
    /// in-hand slot.
    pub replica_gaps: u64,
    /// Stalls found with the `max_spare_threads` cap reached: not fenced; copies of the stalled
    /// CPU's replicated tasks went to the injectors for the other workers (see
    /// [`ThreadPoolBuilder::max_spare_threads`](crate::ThreadPoolBuilder::max_spare_threads)).
    pub takeovers_without_replacement: u64,
    /// Leases that went silent for a whole lease while their worker thread was running or
    /// waiting for a CPU (a long computation, or an overloaded machine): such a worker has lost
    /// no capacity, so it is **not** taken over. Counted once per silence. Always 0 where the OS
    /// gives no view of a thread's state (off Linux): there the lease alone decides.
    pub busy_expiries: u64,
    /// Rounds of the pool's lease monitor, the backstop thread that judges every lease: one
    /// per quarter lease while some worker runs, none while every worker is parked (it then
    /// naps until one wakes, so an idle pool costs no CPU whatever its size).
    pub monitor_rounds: u64,
    /// Copies of unclaimed tasks queued on the injectors by recovery: after a takeover or a
    /// stall at the cap, those of the queues the stalled worker took from (and, at the cap, of
    /// its own CPU's replicas), plus a fenced owner's late pushes and refused starts. The claim
    /// picks which copy runs, so a copy whose task already ran costs a pop and nothing else.
    pub tasks_reoffered: u64,
}

impl ReplicationStats {
    /// Copies the counters.
    ///
    /// ```
    /// use replicore::__protocol::ReplicationStats;
    /// assert_eq!(ReplicationStats::default().snapshot(), replicore::RecoveryStats::default());
    /// ```
    pub fn snapshot(&self) -> RecoveryStats {
        RecoveryStats {
            takeovers: self.takeovers.load(Relaxed),
            fenced_rejections: self.fenced_rejections.load(Relaxed),
            tasks_recovered_from_replica: self.tasks_recovered_from_replica.load(Relaxed),
            lease_expiries: self.lease_expiries.load(Relaxed),
            replica_lag_max: self.replica_lag_max.load(Relaxed),
            replica_lag_max_time: Duration::from_micros(self.replica_lag_max_micros.load(Relaxed)),
            replacement_threads: self.replacement_threads.load(Relaxed),
            replica_gaps: self.replica_gaps.load(Relaxed),
            takeovers_without_replacement: self.takeovers_without_replacement.load(Relaxed),
            busy_expiries: self.busy_expiries.load(Relaxed),
            monitor_rounds: self.monitor_rounds.load(Relaxed),
            tasks_reoffered: self.tasks_reoffered.load(Relaxed),
        }
    }

    /// Records a replica lag sample, as returned by `Replica::lag`: ops behind, and time since it
    /// was last caught up (if known).
    ///
    /// ```
    /// use std::time::Duration;
    /// use replicore::__protocol::ReplicationStats;
    /// let stats = ReplicationStats::default();
    /// stats.record_lag(12, Some(Duration::from_micros(40)));
    /// stats.record_lag(5, None); // keeps the maximum
    /// assert_eq!(stats.snapshot().replica_lag_max, 12);
    /// ```
    pub fn record_lag(&self, ops: u64, time: Option<Duration>) {
        self.replica_lag_max.fetch_max(ops, Relaxed);
        if let Some(t) = time {
            let us = u64::try_from(t.as_micros()).unwrap_or(u64::MAX);
            self.replica_lag_max_micros.fetch_max(us, Relaxed);
        }
    }

    /// Records a lease judged expired.
    ///
    /// ```
    /// use replicore::__protocol::ReplicationStats;
    /// let stats = ReplicationStats::default();
    /// stats.record_expiry();
    /// stats.record_expiry();
    /// assert_eq!(stats.snapshot().lease_expiries, 2);
    /// ```
    pub fn record_expiry(&self) {
        self.lease_expiries.fetch_add(1, Relaxed);
    }

    /// Records a replacement worker thread started by the pool.
    ///
    /// ```
    /// use replicore::__protocol::ReplicationStats;
    /// let stats = ReplicationStats::default();
    /// stats.record_replacement();
    /// assert_eq!(stats.snapshot().replacement_threads, 1);
    /// ```
    pub fn record_replacement(&self) {
        self.replacement_threads.fetch_add(1, Relaxed);
    }

    /// A stall handled at the spare-thread cap, or a replacement the OS refused to start.
    #[cfg_attr(loom, allow(dead_code))] // recorded by the pool, which loom does not build
    pub(crate) fn record_without_replacement(&self) {
        self.takeovers_without_replacement.fetch_add(1, Relaxed);
    }

    /// A silent lease whose owner thread was busy, not blocked.
    #[cfg_attr(loom, allow(dead_code))]
    pub(crate) fn record_busy(&self) {
        self.busy_expiries.fetch_add(1, Relaxed);
    }

    /// A round of the pool's lease monitor.
    #[cfg_attr(loom, allow(dead_code))]
    pub(crate) fn record_monitor_round(&self) {
        self.monitor_rounds.fetch_add(1, Relaxed);
    }

    /// Copies queued by re-offering.
    #[cfg_attr(loom, allow(dead_code))]
    pub(crate) fn record_reoffered(&self, n: u64) {
        self.tasks_reoffered.fetch_add(n, Relaxed);
    }

    pub(crate) fn record_gap(&self) {
        self.replica_gaps.fetch_add(1, Relaxed);
    }

    pub(crate) fn record_fenced(&self, n: u64) {
        self.fenced_rejections.fetch_add(n, Relaxed);
    }

    pub(crate) fn record_takeover(&self, recovered: u64) {
        self.takeovers.fetch_add(1, Relaxed);
        self.tasks_recovered_from_replica
            .fetch_add(recovered, Relaxed);
    }
}
