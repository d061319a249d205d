//! Node replication: NUMA-local replicas of any sequential structure, with a shared log, flat
//! combining and batched cross-node propagation.
//!
//! Implement [`Dispatch`] for a sequential structure, wrap it in [`NodeReplicated`], and give each
//! thread a [`Handle`]. Ready-made: [`ReplicatedHashMap`] and [`ReplicatedCounter`].
//!
//! How it works:
//! - one replica of the structure per NUMA node, built on that node;
//! - a circular log of write operations orders all writes; each replica has a local tail (how far
//!   it has applied the log) and the log a completed tail;
//! - within a node, one thread at a time (the combiner) gathers every pending write of the node's
//!   threads, appends them as one batch, applies the log to its replica in one go and hands out
//!   responses; a thread that finds no combiner at work and no other write waiting is its own
//!   batch of one, applied from its hands rather than read back from the log (with a single
//!   replica it does not enter the log at all);
//! - reads take the replica's reader lock, which costs a store to the reader's own cache line,
//!   after the replica has applied every write that completed before the read began;
//! - a read given a [`Token`] ([`Handle::execute_after`]) waits only until the local replica has
//!   applied the log up to that token (read-your-writes and monotonic reads for a session that
//!   passes its tokens along), not for every completed write;
//! - a replica that falls behind (an idle node) never blocks writers: a writer that finds the log
//!   full, or the replica more than `lag_bound` behind, replays the log into it ("helping",
//!   counted in [`NrStats::helping_events`]); with [`NrBuilder::helper`], a background thread per
//!   node also replays the log into its replica in batches;
//! - each replica is built on a thread pinned to its node, whose allocations a [`MemoryBinder`]
//!   binds to the node's memory (hwloc with the `hwloc` feature; first touch otherwise);
//! - a write that panics poisons the structure, as a panic poisons a `std::sync::Mutex`: see
//!   [`Dispatch::dispatch_mut`].
//!
//! ```
//! use replicore::nr::ReplicatedHashMap;
//! let topo: replicore::Topology = "numa:2 core:1 pu:1".parse()?;
//! let map = ReplicatedHashMap::new(&topo)?;
//! let a = map.register(topo.nodes()[0])?;
//! let b = map.register(topo.nodes()[1])?;
//! a.insert(1u64, "one");
//! assert_eq!(b.get(&1), Some("one"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod config;
mod counter;
mod hashmap;
mod helper;
mod log;
mod placement;
mod replica;
mod replicated;
mod slots;
mod trylock;

pub use config::{NrConfig, NrError};
pub use counter::{Counter, CounterRead, CounterWrite, ReplicatedCounter};
pub use hashmap::{
    HashMapRead, HashMapResponse, HashMapWrite, MapHandle, ReplicatedHashMap, SeqHashMap,
};
pub use helper::HelperConfig;
#[cfg(feature = "hwloc")]
pub use placement::HwlocBinder;
pub use placement::MemoryBinder;
pub use replicated::{Handle, NodeReplicated, NrBuilder, Token};

/// A sequential data structure that [`NodeReplicated`] can replicate.
///
/// Reads get `&self` and may borrow their argument (`ReadOp<'a>`, which may borrow anything that
/// outlives the structure, hence `where Self: 'a`); writes get `&mut self` and
/// are stored in the shared log, so they are owned values.
///
/// Bounds, and why soundness needs them:
/// - `WriteOp: Send` because a combiner thread applies other threads' writes, and `Sync` because
///   replayers on several nodes clone the same log entry at once;
/// - `Response: Send` because a combiner computes the response of another thread's write.
///
/// ```
/// use replicore::nr::Dispatch;
/// struct Max(u64);
/// impl Dispatch for Max {
///     type ReadOp<'a> = ();
///     type WriteOp = u64;
///     type Response = u64;
///     fn dispatch<'a>(&self, _: ()) -> u64 { self.0 }
///     fn dispatch_mut(&mut self, v: u64) -> u64 { self.0 = self.0.max(v); self.0 }
/// }
/// let mut m = Max(0);
/// assert_eq!(m.dispatch_mut(3), 3);
/// assert_eq!(m.dispatch(()), 3);
/// ```
pub trait Dispatch {
    /// A read; it must not change the structure's observable state.
    type ReadOp<'a>
    where
        Self: 'a;
    /// A write, applied in log order to every replica. Must be deterministic: every replica
    /// applies it to the same state and must reach the same result.
    type WriteOp: Clone + Send + Sync;
    /// What both kinds of operation return.
    type Response: Send;
    /// Applies a read.
    fn dispatch<'a>(&self, op: Self::ReadOp<'a>) -> Self::Response;
    /// Applies a write.
    ///
    /// It should not panic. If it does, the [`NodeReplicated`] is **poisoned**, as a
    /// `std::sync::Mutex` is when its holder panics: the replica that was applying the op is
    /// left half-way through it, and since writes are deterministic every other replica would
    /// panic on the same op. So no replica applies the log again, the thread that applied the op
    /// (its caller, or a combiner working for it) gets the op's panic, and every operation after
    /// that, through any handle, panics with a message saying the structure is poisoned
    /// ([`NodeReplicated::is_poisoned`] tells beforehand). No thread is left waiting: writers in
    /// the same batch and readers of the half-written replica panic too. Poisoning rather than
    /// aborting keeps one bad op from killing the process, and lets a caller that catches the
    /// panic shut down in order. A panicking *read* is harmless: it propagates to its caller
    /// and the structure stays usable.
    ///
    /// ```
    /// use replicore::nr::{Dispatch, NodeReplicated};
    /// struct Strict(u64);
    /// impl Dispatch for Strict {
    ///     type ReadOp<'a> = ();
    ///     type WriteOp = u64;
    ///     type Response = u64;
    ///     fn dispatch<'a>(&self, _: ()) -> u64 { self.0 }
    ///     fn dispatch_mut(&mut self, v: u64) -> u64 {
    ///         assert!(v > 0, "zero is not allowed");
    ///         self.0 += v;
    ///         self.0
    ///     }
    /// }
    /// let topo = replicore::Topology::synthetic(2, 1, 1)?;
    /// let nr = NodeReplicated::new(&topo, || Strict(0))?;
    /// let h = nr.register(topo.nodes()[0])?;
    /// assert_eq!(h.execute_mut(2), 2);
    /// let bad = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| h.execute_mut(0)));
    /// assert!(bad.is_err() && nr.is_poisoned());
    /// let other = nr.register(topo.nodes()[1])?;
    /// assert!(std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| other.execute(()))).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn dispatch_mut(&mut self, op: Self::WriteOp) -> Self::Response;
}

/// Counters of a [`NodeReplicated`], from [`NodeReplicated::stats`].
///
/// ```
/// let stats = replicore::nr::NrStats::default();
/// assert_eq!(stats.helping_events, 0);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq)]
#[non_exhaustive]
pub struct NrStats {
    /// Batches appended to the log by combiners.
    pub combiner_batches: u64,
    /// Write operations appended.
    pub operations: u64,
    /// `operations / combiner_batches` (0 before the first batch).
    pub average_batch_size: f64,
    /// Times the log's tail passed the end of the circular buffer.
    pub log_wraps: u64,
    /// Times a writer replayed the log into another node's replica.
    pub helping_events: u64,
    /// The largest lag (log entries behind the tail) a writer saw on another replica.
    pub max_replica_lag: u64,
    /// The largest lag of any replica when the counters were read.
    pub current_replica_lag: u64,
    /// Replays the background helpers made (each at most [`HelperConfig::batch`] entries).
    pub helper_batches: u64,
    /// Replicas whose memory binding to their node was accepted (see [`MemoryBinder`]); the
    /// others rely on first touch by a thread pinned to the node.
    pub bound_replicas: u64,
    /// Log entries the background helpers applied.
    pub helper_entries: u64,
    /// Times a writer woke a parked helper because its replica lagged more than
    /// [`HelperConfig::max_lag`].
    pub helper_wakeups: u64,
}
