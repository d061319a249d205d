//! Scheduler counters: written by each worker only for itself, summed on demand.

use crate::sync::atomic::{AtomicU64, Ordering};

/// Owner-only counters of one worker. The owner bumps them with a relaxed load and store (no
/// read-modify-write, so no bus lock on the hot path); readers may see slightly stale values.
#[derive(Debug, Default)]
pub(crate) struct SlotStats {
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

/// A snapshot of a pool's scheduler counters, summed over its workers.
///
/// ```
/// let pool = replicore::ThreadPool::builder().num_threads(2).build()?;
/// pool.install(|| replicore::join(|| 1, || 2));
/// let stats = pool.stats();
/// assert!(stats.tasks_executed >= 1);
/// println!("{stats:?}");
/// # Ok::<(), replicore::BuildError>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolStats {
    /// Tasks run by workers (jobs taken from any queue, plus `join` halves popped back). After a
    /// takeover this also counts queue copies of replicated tasks that found their claim already
    /// taken and were dropped unrun.
    pub tasks_executed: u64,
    /// Tasks a worker popped from its own deque.
    pub local_pops: u64,
    /// Tasks stolen from a worker on the same NUMA node.
    pub steals_same_node: u64,
    /// Steal operations (each taking a batch) from a worker on another NUMA node.
    pub steals_remote_node: u64,
    /// Tasks taken from a node injector (external submissions) or a broadcast inbox.
    pub injector_pops: u64,
    /// Times a worker parked after finding no work.
    pub parks: u64,
    /// Times a parked worker was woken.
    pub unparks: u64,
    /// CPUs taken over after their lease expired (fence won, tasks adopted).
    pub takeovers: u64,
    /// Owner actions refused because the owner had been fenced (it redirected the task and
    /// retired), plus stale-epoch ops replicas rejected.
    pub fenced_rejections: u64,
    /// Tasks a successor adopted from its replica of the taken-over CPU's queue.
    pub tasks_recovered_from_replica: u64,
    /// Leases judged expired and acted on: a won fence, or a stall handled at the spare-thread cap.
    pub lease_expiries: u64,
    /// Largest replica lag seen, in queue operations not yet applied.
    pub replica_lag_max: u64,
    /// Largest replica lag seen, in time since that replica was last caught up.
    pub replica_lag_max_time: std::time::Duration,
    /// Replacement worker threads started to restore a taken-over CPU's capacity.
    pub replacement_threads: u64,
    /// Stalls found with the `max_spare_threads` cap reached: not fenced; copies of the stalled
    /// CPU's replicated tasks went to the injectors for the other workers (see
    /// `ThreadPoolBuilder::max_spare_threads`).
    pub takeovers_without_replacement: u64,
    /// Leases that went silent for a whole lease while their worker thread was running or
    /// waiting for a CPU (a long computation, or an overloaded machine): such a worker has lost
    /// no capacity, so it is **not** taken over. Counted once per silence. Always 0 where the OS
    /// gives no view of a thread's state (off Linux): there the lease alone decides.
    pub busy_expiries: u64,
    /// Replica syncs that found a gap (the replica fell more than the log's 1024 ops behind):
    /// a takeover using such a replica also scans the old deque and the in-hand slot.
    pub replica_gaps: u64,
}

impl PoolStats {
    pub(crate) fn add_replication(&mut self, r: &crate::replication::ReplicationSnapshot) {
        self.takeovers = r.takeovers;
        self.fenced_rejections = r.fenced_rejections;
        self.tasks_recovered_from_replica = r.tasks_recovered_from_replica;
        self.lease_expiries = r.lease_expiries;
        self.replica_lag_max = r.replica_lag_max;
        self.replica_lag_max_time = r.replica_lag_max_time;
        self.replacement_threads = r.replacement_threads;
        self.replica_gaps = r.replica_gaps;
    }

    pub(crate) fn add(&mut self, s: &SlotStats) {
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
