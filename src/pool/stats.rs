//! Counters: the scheduler's, written by each worker only for itself and summed on demand, and
//! the public snapshot that groups them with recovery's.

use crate::sync::atomic::{AtomicU64, Ordering};

/// Owner-only counters of one worker. The owner bumps them with a relaxed load and store (no
/// read-modify-write, so no bus lock on the hot path); readers may see slightly stale values.
#[derive(Debug, Default)]
pub(crate) struct WorkerStats {
    pub(crate) tasks_executed: AtomicU64,
    pub(crate) local_pops: AtomicU64,
    pub(crate) steals_same_node: AtomicU64,
    pub(crate) steals_remote_node: AtomicU64,
    pub(crate) injector_pops: AtomicU64,
    pub(crate) parks: AtomicU64,
    pub(crate) unparks: AtomicU64,
}

/// Adds one to an owner-only counter.
#[inline]
pub(crate) fn bump(counter: &AtomicU64) {
    counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
}

/// A snapshot of a pool's counters: scheduling, and recovery (leases, takeovers, replicas).
///
/// ```
/// let pool = replicore::ThreadPool::builder().num_threads(2).build()?;
/// pool.install(|| replicore::join(|| 1, || 2));
/// let stats = pool.stats();
/// assert!(stats.scheduler.tasks_executed >= 1);
/// assert_eq!(stats.recovery.takeovers, 0);
/// println!("{stats:?}");
/// # Ok::<(), replicore::BuildError>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolStats {
    /// Where the workers found their tasks, and how often they slept.
    pub scheduler: SchedulerStats,
    /// Leases, takeovers and replicas.
    pub recovery: crate::replication::RecoveryStats,
}

/// A snapshot of a pool's scheduler counters, summed over its workers
/// ([`PoolStats::scheduler`]).
///
/// ```
/// let pool = replicore::ThreadPool::builder().num_threads(1).build()?;
/// pool.install(|| ());
/// let s = pool.stats().scheduler;
/// assert!(s.injector_pops >= 1, "install queues its closure on an injector");
/// # Ok::<(), replicore::BuildError>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SchedulerStats {
    /// Tasks run by workers: jobs taken from any queue, and queued `join` halves popped back.
    /// A `join` that ran as two plain calls (most of them: see `ARCHITECTURE.md`, "A join")
    /// counts nothing; it is part of its parent's run. After a
    /// takeover this also counts queue copies of replicated tasks that found their claim already
    /// taken and were dropped unrun.
    pub tasks_executed: u64,
    /// Tasks a worker popped from its own deque.
    pub local_pops: u64,
    /// Steals from a worker on the same NUMA node: one task each, or, from a victim with a
    /// backlog of more than 32 tasks, a batch, whose other tasks count as `local_pops`.
    pub steals_same_node: u64,
    /// Steal operations (each taking a batch) from a worker on another NUMA node.
    pub steals_remote_node: u64,
    /// Tasks taken from a node injector (external submissions) or a broadcast inbox.
    pub injector_pops: u64,
    /// Times a worker parked after finding no work.
    pub parks: u64,
    /// Times a parked worker was woken.
    pub unparks: u64,
}

impl SchedulerStats {
    /// Adds one worker's counters.
    pub(crate) fn add(&mut self, s: &WorkerStats) {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        self.tasks_executed += get(&s.tasks_executed);
        self.local_pops += get(&s.local_pops);
        self.steals_same_node += get(&s.steals_same_node);
        self.steals_remote_node += get(&s.steals_remote_node);
        self.injector_pops += get(&s.injector_pops);
        self.parks += get(&s.parks);
        self.unparks += get(&s.unparks);
    }
}
