//! [`NodeReplicated`]: the replicas, the log, flat combining and helping.

use super::config::{NrConfig, NrError};
use super::helper::{HelperConfig, Wakers};
use super::log::Log;
use super::placement::{self, MemoryBinder};
use super::replica::{CombinerGuard, Replica, Scratch, poisoned};
use super::slots::{DONE, EMPTY, PENDING, Slot, TAKEN};
use super::{Dispatch, NrStats};
use crate::sync::Backoff;
use crate::sync::atomic::{AtomicUsize, Ordering};
use crate::{NodeId, Topology};
use std::cell::Cell;
use std::marker::PhantomData;
use std::sync::Arc;

/// A sequential structure `D` replicated once per NUMA node.
///
/// Writes go through a shared log that orders them; within a node, one thread (the combiner)
/// appends the pending writes of all its node's threads as one batch. Reads run on the local
/// replica once it has caught up with every write completed before the read began.
///
/// ```
/// use replicore::Topology;
/// use replicore::nr::{Dispatch, NodeReplicated};
///
/// #[derive(Default)]
/// struct Total(u64);
/// impl Dispatch for Total {
///     type ReadOp<'a> = ();
///     type WriteOp = u64;
///     type Response = u64;
///     fn dispatch<'a>(&self, _: ()) -> u64 { self.0 }
///     fn dispatch_mut(&mut self, add: u64) -> u64 { self.0 += add; self.0 }
/// }
///
/// let topo: Topology = "numa:2 core:1 pu:1".parse()?;
/// let nr = NodeReplicated::new(&topo, Total::default)?;
/// std::thread::scope(|s| {
///     for node in topo.nodes() {
///         let nr = &nr;
///         s.spawn(move || {
///             let h = nr.register(*node).unwrap();
///             h.execute_mut(5);
///         });
///     }
/// });
/// assert_eq!(nr.register(topo.nodes()[0])?.execute(()), 10);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct NodeReplicated<D: Dispatch> {
    /// What handles and helper threads share. Behind an `Arc` so that a helper thread can hold
    /// it; handles borrow it through the `NodeReplicated`, so they never touch the count.
    shared: Arc<Shared<D>>,
    topo: Topology,
    /// Spreads threads whose node cannot be told apart (see [`NodeReplicated::register_current`]).
    next_node: AtomicUsize,
    /// Replicas whose memory binding was accepted.
    bound_replicas: usize,
    /// The helper threads, joined on drop.
    #[cfg(not(loom))]
    helpers: Vec<std::thread::JoinHandle<()>>,
}

/// The log, the replicas and the sizes: everything an operation or a helper thread touches.
pub(crate) struct Shared<D: Dispatch> {
    log: Log<D::WriteOp>,
    replicas: Box<[Replica<D>]>,
    config: NrConfig,
    /// Present when background helpers were asked for.
    wakers: Option<Wakers>,
}

impl<D: Dispatch + Send> NodeReplicated<D> {
    /// One replica per node of `topo`, each made by `init` on a thread pinned to that node, with
    /// the default [`NrConfig`].
    ///
    /// `init` is called once per node, from a thread of that node, hence `Sync`.
    ///
    /// ```
    /// # use replicore::nr::{NodeReplicated, ReplicatedCounter};
    /// let topo: replicore::Topology = "numa:3 core:1".parse()?;
    /// let counter = ReplicatedCounter::new(&topo)?;
    /// assert_eq!(counter.num_replicas(), 3);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(topo: &Topology, init: impl Fn() -> D + Sync) -> Result<Self, NrError> {
        Self::with_config(topo, NrConfig::default(), init)
    }

    /// Like [`NodeReplicated::new`] with explicit log and batch sizes.
    ///
    /// ```
    /// use replicore::nr::{NodeReplicated, NrConfig, NrError};
    /// # use replicore::nr::Dispatch;
    /// # struct Unit;
    /// # impl Dispatch for Unit {
    /// #     type ReadOp<'a> = ();
    /// #     type WriteOp = ();
    /// #     type Response = ();
    /// #     fn dispatch<'a>(&self, _: ()) {}
    /// #     fn dispatch_mut(&mut self, _: ()) {}
    /// # }
    /// let topo = replicore::Topology::synthetic(2, 1, 1)?;
    /// let cfg = NrConfig { log_size: 8, max_batch: 4, lag_bound: 8 };
    /// assert!(NodeReplicated::with_config(&topo, cfg, || Unit).is_ok());
    /// let bad = NrConfig { max_batch: 0, ..cfg };
    /// assert!(matches!(
    ///     NodeReplicated::with_config(&topo, bad, || Unit),
    ///     Err(NrError::BatchOutOfRange { .. })
    /// ));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_config(
        topo: &Topology,
        config: NrConfig,
        init: impl Fn() -> D + Sync,
    ) -> Result<Self, NrError> {
        Self::build(topo, config, None, placement::default_binder(), &init)
    }

    /// Validates, places the replicas and builds the shared part; helper threads are started
    /// by [`NrBuilder::build`], which alone has the `'static` bounds they need.
    fn build(
        topo: &Topology,
        config: NrConfig,
        helper: Option<HelperConfig>,
        binder: Option<Arc<dyn MemoryBinder>>,
        init: &(impl Fn() -> D + Sync),
    ) -> Result<Self, NrError> {
        config.validate()?;
        if let Some(h) = &helper {
            h.validate(config.log_size)?;
        }
        if topo.num_nodes() == 0 {
            return Err(NrError::NoNodes);
        }
        let (replicas, bound_replicas) =
            placement::allocate_per_node(topo, init, binder.as_deref());
        let replicas = replicas.into_iter().map(Replica::new).collect::<Box<[_]>>();
        let n = replicas.len();
        Ok(Self {
            shared: Arc::new(Shared {
                log: Log::new(config.log_size, n),
                replicas,
                config,
                wakers: helper.map(|h| Wakers::new(h, n)),
            }),
            topo: topo.clone(),
            next_node: AtomicUsize::new(0),
            bound_replicas,
            #[cfg(not(loom))]
            helpers: Vec::new(),
        })
    }
}

impl<D: Dispatch> NodeReplicated<D> {
    /// Number of replicas: one per node of the topology.
    ///
    /// ```
    /// # use replicore::nr::ReplicatedCounter;
    /// let topo = replicore::Topology::synthetic(4, 2, 1)?;
    /// assert_eq!(ReplicatedCounter::new(&topo)?.num_replicas(), 4);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn num_replicas(&self) -> usize {
        self.shared.replicas.len()
    }

    /// The sizes this instance was built with.
    ///
    /// ```
    /// # use replicore::nr::{NrConfig, ReplicatedCounter};
    /// let topo = replicore::Topology::synthetic(1, 1, 1)?;
    /// assert_eq!(ReplicatedCounter::new(&topo)?.config(), NrConfig::default());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn config(&self) -> NrConfig {
        self.shared.config
    }

    /// Registers the calling thread with the replica of `node`. The handle's slot is freed when
    /// it drops; there is no cap on the number of handles.
    ///
    /// ```
    /// # use replicore::{NodeId, nr::{NrError, ReplicatedCounter}};
    /// let topo = replicore::Topology::synthetic(2, 1, 1)?;
    /// let counter = ReplicatedCounter::new(&topo)?;
    /// let h = counter.register(NodeId(1))?;
    /// assert_eq!(h.node(), NodeId(1));
    /// assert!(matches!(counter.register(NodeId(2)), Err(NrError::UnknownNode { .. })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn register(&self, node: NodeId) -> Result<Handle<'_, D>, NrError> {
        let replica = self.topo.node_index(node).ok_or(NrError::UnknownNode {
            node,
            num_nodes: self.topo.num_nodes(),
        })?;
        let slot = self.shared.replicas[replica].slots.claim();
        Ok(Handle {
            shared: &self.shared,
            replica: &self.shared.replicas[replica],
            index: replica,
            node,
            slot,
            seen: Cell::new(0),
            _not_sync: PhantomData,
        })
    }

    /// Registers the calling thread with the replica of the node it runs on.
    ///
    /// The rule: inside a replicore pool worker, the worker's node. Otherwise the OS CPU the
    /// thread is running on right now (`sched_getcpu` on Linux) is looked up among the
    /// topology's CPUs through [`Topology::os_cpu`]. If exactly one node has a CPU mapped to it,
    /// that node is used. If several do (a synthetic topology maps many CPUs onto one OS CPU) or
    /// none does (or the OS CPU is unknown), the candidates (or all nodes) are taken in
    /// round-robin order across calls, so threads spread over the replicas deterministically.
    ///
    /// ```
    /// # use replicore::nr::ReplicatedCounter;
    /// let topo = replicore::Topology::synthetic(2, 1, 1)?;
    /// let counter = ReplicatedCounter::new(&topo)?;
    /// let a = counter.register_current()?;
    /// let b = counter.register_current()?;
    /// assert!(topo.nodes().contains(&a.node()) && topo.nodes().contains(&b.node()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn register_current(&self) -> Result<Handle<'_, D>, NrError> {
        let node = placement::node_of_current_thread(&self.topo, || {
            self.next_node.fetch_add(1, Ordering::Relaxed)
        });
        self.register(node)
    }

    /// Whether a write operation panicked in [`Dispatch::dispatch_mut`]. Once it has, every
    /// operation through any handle panics; see `dispatch_mut` for why.
    ///
    /// ```
    /// # use replicore::nr::ReplicatedCounter;
    /// let topo = replicore::Topology::synthetic(1, 1, 1)?;
    /// let counter = ReplicatedCounter::new(&topo)?;
    /// counter.register(topo.nodes()[0])?.add(1);
    /// assert!(!counter.is_poisoned());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_poisoned(&self) -> bool {
        self.shared.log.is_poisoned()
    }

    /// One step of replica `replica`'s background helper (the code the helper thread runs),
    /// for loom models, which cannot run the helper thread itself.
    #[cfg(loom)]
    #[doc(hidden)]
    pub fn __helper_step(&self, replica: usize, batch: usize) -> usize {
        self.shared.helper_step(replica, batch)
    }

    /// Counters since creation.
    ///
    /// ```
    /// # use replicore::nr::ReplicatedCounter;
    /// let topo = replicore::Topology::synthetic(1, 1, 1)?;
    /// let counter = ReplicatedCounter::new(&topo)?;
    /// counter.register(topo.nodes()[0])?.add(3);
    /// let stats = counter.stats();
    /// assert_eq!(stats.combiner_batches, 1);
    /// assert_eq!(stats.average_batch_size, 1.0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stats(&self) -> NrStats {
        let mut s = NrStats::default();
        let mut ops = 0;
        for r in self.shared.replicas.iter() {
            s.combiner_batches += r.combiner.batches.load(Ordering::Relaxed);
            ops += r.combiner.ops.load(Ordering::Relaxed);
            s.helping_events += r.rare.helps.load(Ordering::Relaxed);
            s.max_replica_lag = s
                .max_replica_lag
                .max(r.rare.max_lag.load(Ordering::Relaxed));
        }
        for (i, r) in self.shared.replicas.iter().enumerate() {
            s.helper_batches += r.rare.helper_batches.load(Ordering::Relaxed);
            s.helper_entries += r.rare.helper_entries.load(Ordering::Relaxed);
            s.helper_wakeups += r.rare.helper_wakeups.load(Ordering::Relaxed);
            s.current_replica_lag = s.current_replica_lag.max(self.shared.lag(i) as u64);
        }
        s.bound_replicas = self.bound_replicas as u64;
        s.operations = ops;
        // Positions only grow and position `i` lives in slot `i % size`, so the tail has passed
        // the end of the buffer `tail / size` times.
        s.log_wraps = (self.shared.log.tail() / self.shared.log.size()) as u64;
        if s.combiner_batches > 0 {
            s.average_batch_size = ops as f64 / s.combiner_batches as f64;
        }
        s
    }
}

impl<D: Dispatch> Shared<D> {
    /// Runs the combiner of replica `me`: takes up to `max_batch` pending writes of its threads,
    /// appends them as one batch, replays the log into the replica and hands back responses.
    ///
    /// `own` is the lock holder's own op when it took the lock before posting it: it goes first
    /// in the batch and its response is returned rather than left in a mailbox.
    fn combine(
        &self,
        me: usize,
        mut guard: CombinerGuard<'_, D::WriteOp, D::Response>,
        own: Option<D::WriteOp>,
    ) -> Option<D::Response> {
        let replica = &self.replicas[me];
        let mut scratch: Scratch<_, _> = guard.with_mut(std::mem::take);
        scratch.ops.clear();
        scratch.responses.clear();
        let has_own = own.is_some();
        scratch.ops.extend(own);
        // One scan takes the ops: only the lock holder moves mailboxes out of PENDING, and it
        // marks each one TAKEN, so the response scan below finds exactly these, in this order.
        replica.slots.for_each(|s| {
            if scratch.ops.len() < self.config.max_batch
                && s.state.load(Ordering::Acquire) == PENDING
            {
                // SAFETY: PENDING (seen with Acquire) means the owner finished writing the op and
                // will not touch the mailbox until DONE; we hold the combiner lock, so no other
                // combiner takes it.
                let op = s.op.with_mut(|p| unsafe { (*p).take() });
                scratch.ops.push(op.expect("a pending mailbox holds an op"));
                s.state.store(TAKEN, Ordering::Relaxed);
            }
        });
        let n = scratch.ops.len();
        if n == 0 {
            guard.with_mut(|s| *s = scratch);
            return None;
        }
        let start = self.reserve(me, n, &guard);
        for (pos, op) in (start..).zip(scratch.ops.drain(..)) {
            self.log.write(pos, op);
        }
        let responses = &mut scratch.responses;
        replica.replay(me, &self.log, &guard, usize::MAX, |p, r| {
            if (start..start + n).contains(&p) {
                responses.push(r);
            }
        });
        let mut responses_iter = scratch.responses.drain(..);
        let own_response = if has_own { responses_iter.next() } else { None };
        replica.slots.for_each(|s| {
            if s.state.load(Ordering::Relaxed) == TAKEN {
                let r = responses_iter.next().expect("one response per taken op");
                // SAFETY: TAKEN mailboxes belong to the lock holder until it stores DONE.
                s.resp.with_mut(|p| unsafe { *p = Some(r) });
                s.state.store(DONE, Ordering::Release);
            }
        });
        drop(responses_iter);
        guard.with_mut(|s| *s = scratch);
        let c = &replica.combiner;
        // Only the lock holder writes these two, so plain load-and-store suffices.
        c.batches
            .store(c.batches.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        c.ops
            .store(c.ops.load(Ordering::Relaxed) + n as u64, Ordering::Relaxed);
        drop(guard);
        if self.replicas.len() > 1 {
            self.propagate(me);
        }
        own_response
    }

    /// A write by a thread that took its node's combiner lock before posting its op. When no
    /// other thread of the node has an op waiting, the batch is this one op: it takes one log
    /// position and is applied from the caller's hands, without the batch's scratch vectors,
    /// mailbox scans and read-back. Short matters here beyond the instructions saved: the
    /// processor overlaps one write's cache misses with the next operation's only if the code
    /// between them fits its instruction window.
    fn write_alone(
        &self,
        me: usize,
        guard: CombinerGuard<'_, D::WriteOp, D::Response>,
        op: D::WriteOp,
    ) -> D::Response {
        let replica = &self.replicas[me];
        let mut waiting = false;
        replica
            .slots
            .for_each(|s| waiting |= s.state.load(Ordering::Acquire) == PENDING);
        if waiting {
            return self
                .combine(me, guard, Some(op))
                .expect("the combiner answers its own op");
        }
        let response = if self.replicas.len() == 1 {
            // The only replica: it is always current when its combiner lock is free, readers
            // never replay (see `Log::completed`), so no one will read position `pos`.
            let pos = self.log.reserve_unlogged();
            replica.apply_own(me, &self.log, &guard, pos, op)
        } else {
            let pos = self.reserve(me, 1, &guard);
            self.log.write(pos, op.clone());
            if self.log.local_tail(me) == pos {
                replica.apply_own(me, &self.log, &guard, pos, op)
            } else {
                // Other nodes appended before us: replay their entries and ours from the log.
                let mut own = None;
                replica.replay(me, &self.log, &guard, usize::MAX, |p, r| {
                    if p == pos {
                        own = Some(r);
                    }
                });
                own.expect("the replay reaches the combiner's own position")
            }
        };
        let c = &replica.combiner;
        // Only the lock holder writes these two, so plain load-and-store suffices.
        c.batches
            .store(c.batches.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        c.ops
            .store(c.ops.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        drop(guard);
        if self.replicas.len() > 1 {
            self.propagate(me);
        }
        response
    }

    /// Batched propagation: a replica that fell more than `lag_bound` behind (an idle node) is
    /// brought up to date by this writer, in one batch.
    fn propagate(&self, me: usize) {
        let tail = self.log.tail();
        let mut max_lag = 0;
        for other in (0..self.replicas.len()).filter(|&o| o != me) {
            let lag = tail.saturating_sub(self.log.local_tail(other));
            max_lag = max_lag.max(lag);
            if let Some(w) = &self.wakers {
                // The helper replays for `other`, off this writer's path; the writer still
                // helps below if the helper has not kept up with the hard bound.
                if lag > w.config.max_lag && w.wake(other) {
                    self.replicas[other]
                        .rare
                        .helper_wakeups
                        .fetch_add(1, Ordering::Relaxed);
                }
            }
            if lag > self.config.lag_bound {
                self.help(me, other);
            }
        }
        // A locked read-modify-write only when the maximum actually grows, which is rare.
        let rare = &self.replicas[me].rare;
        if max_lag as u64 > rare.max_lag.load(Ordering::Relaxed) {
            rare.max_lag.fetch_max(max_lag as u64, Ordering::Relaxed);
        }
    }

    /// Reserves `n` log positions for replica `me`, whose combiner lock the caller holds. When the
    /// log is full, the writer first catches its own replica up, then replays the log into each
    /// replica that holds the head back, rather than waiting for them.
    fn reserve(
        &self,
        me: usize,
        n: usize,
        guard: &CombinerGuard<'_, D::WriteOp, D::Response>,
    ) -> usize {
        let backoff = Backoff::new();
        loop {
            match self.log.try_reserve(n) {
                Ok(start) => return start,
                Err(tail) => {
                    if self.log.is_poisoned() {
                        poisoned();
                    }
                    let needed = (tail + n).saturating_sub(self.log.size());
                    if self.log.head() < needed {
                        self.replicas[me].replay(me, &self.log, guard, usize::MAX, |_, _| {});
                        for other in (0..self.replicas.len()).filter(|&o| o != me) {
                            if self.log.local_tail(other) < needed {
                                self.help(me, other);
                            }
                        }
                    }
                    backoff.snooze();
                }
            }
        }
    }

    /// Replays the log into `other` on behalf of replica `me`, unless `other`'s combiner is
    /// already at work (it then catches up by itself).
    fn help(&self, me: usize, other: usize) {
        if let Some(guard) = self.replicas[other].combiner.lock.try_lock() {
            self.replicas[other].replay(other, &self.log, &guard, usize::MAX, |_, _| {});
            self.replicas[me].rare.helps.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// One step of replica `me`'s background helper: replays at most `batch` log entries into
    /// it, unless its combiner lock is taken (its holder is replaying anyway). Returns how many
    /// entries it applied. The helper thread loops on this; loom models call it directly.
    pub(crate) fn helper_step(&self, me: usize, batch: usize) -> usize {
        if self.log.is_poisoned() {
            return 0;
        }
        let Some(guard) = self.replicas[me].combiner.lock.try_lock() else {
            return 0;
        };
        let applied = self.replicas[me].replay(me, &self.log, &guard, batch, |_, _| {});
        drop(guard);
        if applied > 0 {
            // Only replica `me`'s helper (or a loom model standing in for it) writes these.
            let rare = &self.replicas[me].rare;
            rare.helper_batches.fetch_add(1, Ordering::Relaxed);
            rare.helper_entries
                .fetch_add(applied as u64, Ordering::Relaxed);
        }
        applied
    }

    /// How far replica `r` is behind the log tail.
    fn lag(&self, r: usize) -> usize {
        self.log.tail().saturating_sub(self.log.local_tail(r))
    }
}

impl<D: Dispatch> Drop for NodeReplicated<D> {
    /// Stops the helper threads and waits for them, so none outlives the structure.
    fn drop(&mut self) {
        #[cfg(not(loom))]
        if let Some(w) = &self.shared.wakers {
            w.stop_all();
            for h in self.helpers.drain(..) {
                // A helper catches the panics of the ops it replays, so join only fails if the
                // thread died in a way that cannot be recovered from here; nothing is owed to it.
                let _ = h.join();
            }
        }
    }
}

/// Builds a [`NodeReplicated`] with explicit sizes and, optionally, a background helper thread
/// per node (see [`HelperConfig`]).
///
/// ```
/// use replicore::nr::{HelperConfig, NrBuilder, NrConfig, NrError, ReplicatedCounter, Counter};
/// let topo = replicore::Topology::synthetic(2, 1, 1)?;
/// let nr = NrBuilder::new(&topo)
///     .config(NrConfig::default())
///     .helper(HelperConfig::default())
///     .build(|| Counter(0))?;
/// nr.register(topo.nodes()[0])?.add(1);
/// drop(nr); // stops and joins the helpers
/// let bad = NrBuilder::new(&topo).helper(HelperConfig { batch: 0, ..HelperConfig::default() });
/// assert!(matches!(bad.build(|| Counter(0)), Err(NrError::HelperBatchOutOfRange { .. })));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct NrBuilder<'t> {
    topo: &'t Topology,
    config: NrConfig,
    helper: Option<HelperConfig>,
    binder: Option<Arc<dyn MemoryBinder>>,
}

impl std::fmt::Debug for NrBuilder<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NrBuilder")
            .field("topo", self.topo)
            .field("config", &self.config)
            .field("helper", &self.helper)
            .field("memory_binder", &self.binder.is_some())
            .finish()
    }
}

impl<'t> NrBuilder<'t> {
    /// Default sizes, no helpers, one replica per node of `topo`.
    ///
    /// ```
    /// # use replicore::nr::{NrBuilder, Counter};
    /// let topo = replicore::Topology::synthetic(1, 1, 1)?;
    /// assert_eq!(NrBuilder::new(&topo).build(|| Counter(0))?.num_replicas(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(topo: &'t Topology) -> Self {
        Self {
            topo,
            config: NrConfig::default(),
            helper: None,
            binder: placement::default_binder(),
        }
    }

    /// Who binds each replica's memory to its node (see [`MemoryBinder`]); the default is
    /// hwloc's with the `hwloc` feature, none (first touch) without.
    ///
    /// ```
    /// # use replicore::nr::{Counter, MemoryBinder, NrBuilder};
    /// # use replicore::{NodeId, Topology};
    /// struct Refuse;
    /// impl MemoryBinder for Refuse {
    ///     fn bind_current_thread(&self, _: &Topology, _: NodeId) -> Result<(), String> {
    ///         Err("not here".into())
    ///     }
    /// }
    /// let topo = Topology::synthetic(2, 1, 1)?;
    /// let nr = NrBuilder::new(&topo).memory_binder(std::sync::Arc::new(Refuse)).build(|| Counter(0))?;
    /// assert_eq!(nr.stats().bound_replicas, 0); // first touch only
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn memory_binder(mut self, binder: Arc<dyn MemoryBinder>) -> Self {
        self.binder = Some(binder);
        self
    }

    /// Log and batch sizes; checked by [`NrBuilder::build`].
    ///
    /// ```
    /// # use replicore::nr::{NrBuilder, NrConfig, NrError, Counter};
    /// let topo = replicore::Topology::synthetic(1, 1, 1)?;
    /// let cfg = NrConfig { log_size: 3, ..NrConfig::default() };
    /// let err = NrBuilder::new(&topo).config(cfg).build(|| Counter(0)).err().unwrap();
    /// assert_eq!(err, NrError::LogSizeNotPowerOfTwo { log_size: 3 });
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn config(mut self, config: NrConfig) -> Self {
        self.config = config;
        self
    }

    /// Starts one helper thread per node that replays the log into its node's replica in the
    /// background; checked by [`NrBuilder::build`] against the log size.
    ///
    /// ```
    /// # use replicore::nr::{HelperConfig, NrBuilder, Counter};
    /// let topo = replicore::Topology::synthetic(2, 1, 1)?;
    /// let nr = NrBuilder::new(&topo).helper(HelperConfig::default()).build(|| Counter(0))?;
    /// assert_eq!(nr.stats().helper_entries, 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn helper(mut self, helper: HelperConfig) -> Self {
        self.helper = Some(helper);
        self
    }

    /// Builds the structure: each replica made by `init` on a thread pinned to its node, then
    /// the helper threads, if asked for, each pinned to its node's first CPU.
    ///
    /// ```
    /// # use replicore::nr::{HelperConfig, NrBuilder, NrError, Counter};
    /// let topo = replicore::Topology::synthetic(2, 1, 1)?;
    /// let lag = HelperConfig { max_lag: 1 << 20, ..HelperConfig::default() };
    /// let err = NrBuilder::new(&topo).helper(lag).build(|| Counter(0)).err().unwrap();
    /// assert!(err.to_string().contains("between 1 and the log size"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn build<D>(self, init: impl Fn() -> D + Sync) -> Result<NodeReplicated<D>, NrError>
    where
        D: Dispatch + Send + Sync + 'static,
    {
        #[allow(unused_mut)]
        let mut nr = NodeReplicated::build(
            self.topo,
            self.config,
            self.helper,
            self.binder.clone(),
            &init,
        )?;
        #[cfg(not(loom))]
        if let Some(w) = &nr.shared.wakers {
            for (r, &node) in nr.topo.nodes().iter().enumerate() {
                let shared = Arc::clone(&nr.shared);
                let (topo, binder) = (nr.topo.clone(), self.binder.clone());
                let spawned = std::thread::Builder::new()
                    .name(format!("replicore-nr-helper-{r}"))
                    .spawn(move || {
                        // What the helper allocates while replaying (a map growing, say)
                        // belongs to its node's replica.
                        placement::settle_on(&topo, node, binder.as_deref());
                        helper_loop(&shared, r);
                    });
                match spawned {
                    Ok(h) => {
                        let _ = w.threads[r].set(h.thread().clone());
                        nr.helpers.push(h);
                    }
                    // Dropping `nr` stops and joins the helpers already started.
                    Err(e) => {
                        return Err(NrError::HelperSpawn {
                            reason: e.to_string(),
                        });
                    }
                }
            }
        }
        Ok(nr)
    }
}

/// A background helper's life: replay in batches up to the tail seen on waking, park, repeat,
/// until the structure is dropped. See the `helper` module for the policy.
#[cfg(not(loom))]
fn helper_loop<D: Dispatch>(shared: &Shared<D>, me: usize) {
    let Some(w) = &shared.wakers else { return };
    let cfg = w.config;
    let mut timeout = cfg.interval;
    loop {
        if w.stop.load(Ordering::Acquire) {
            return;
        }
        let target = shared.log.tail();
        let mut worked = false;
        while shared.log.local_tail(me) < target && !w.stop.load(Ordering::Relaxed) {
            // A write op that panics here has poisoned the log (see `Replica::replay`); the
            // helper has no caller to hand the panic to, so it just stops replaying.
            let step = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                shared.helper_step(me, cfg.batch)
            }));
            match step {
                Ok(n) if n > 0 => worked = true,
                _ => break,
            }
        }
        // Idle rounds stretch the nap, so an idle structure's helpers wake a few times a second.
        timeout = if worked {
            cfg.interval
        } else {
            (timeout * 2).min(cfg.interval * 64)
        };
        w.parked[me].store(true, Ordering::SeqCst);
        // A writer that looked at `parked` just before the store above did not wake us: if the
        // replica already lags past the threshold, go round again instead of napping on it.
        if w.stop.load(Ordering::Acquire)
            || (worked && !shared.log.is_poisoned() && shared.lag(me) > cfg.max_lag)
        {
            w.parked[me].store(false, Ordering::Relaxed);
            continue;
        }
        std::thread::park_timeout(timeout);
        if !w.parked[me].swap(false, Ordering::AcqRel) {
            // A writer cleared the flag: it woke us because the replica lags.
            timeout = cfg.interval;
        }
    }
}

/// Where a handle's replica stood after one of its operations: an opaque log position.
///
/// A write returns one ([`Handle::execute_mut_with_token`]); a read given one
/// ([`Handle::execute_after`]) sees a state that includes every write up to it, on any node,
/// and returns a token at least as new. Passing tokens along gives a session read-your-writes
/// and monotonic reads without waiting for writes it has not seen. Tokens of one
/// [`NodeReplicated`] mean nothing to another (a token past its log's tail is treated as the
/// tail). `Token::default()` is the empty state.
///
/// ```
/// # use replicore::nr::{Token, ReplicatedCounter, CounterRead, CounterWrite};
/// let topo = replicore::Topology::synthetic(2, 1, 1)?;
/// let c = ReplicatedCounter::new(&topo)?;
/// let (a, b) = (c.register(topo.nodes()[0])?, c.register(topo.nodes()[1])?);
/// let (_, t1) = a.execute_mut_with_token(CounterWrite::Add(1));
/// let (_, t2) = a.execute_mut_with_token(CounterWrite::Add(1));
/// assert!(t1 < t2 && Token::default() < t1);
/// assert_eq!(b.execute_after(t2, CounterRead::Get).0, 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Token(usize);

/// A thread's registration with one replica. Made by [`NodeReplicated::register`].
///
/// A handle is `Send` but not `Sync`: it owns one mailbox and one reader flag, which must not be
/// used by two threads at once.
///
/// ```
/// # use replicore::nr::ReplicatedCounter;
/// let topo = replicore::Topology::synthetic(1, 1, 1)?;
/// let counter = ReplicatedCounter::new(&topo)?;
/// let h = counter.register(topo.nodes()[0])?;
/// assert_eq!(h.add(2), 2);
/// assert_eq!(h.get(), 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Handle<'nr, D: Dispatch> {
    shared: &'nr Shared<D>,
    /// The highest local tail of this handle's replica that this handle has seen: local tails
    /// only grow, so a token at or below it needs no load at all (see `Handle::execute_after`).
    seen: Cell<usize>,
    /// `shared.replicas[index]`, kept so that an operation does not index through `nr`.
    replica: &'nr Replica<D>,
    index: usize,
    node: NodeId,
    slot: &'nr Slot<D::WriteOp, D::Response>,
    _not_sync: PhantomData<Cell<()>>,
}

impl<D: Dispatch> Handle<'_, D> {
    /// The node whose replica this handle uses.
    ///
    /// ```
    /// # use replicore::{NodeId, nr::ReplicatedCounter};
    /// let topo = replicore::Topology::synthetic(2, 1, 1)?;
    /// let counter = ReplicatedCounter::new(&topo)?;
    /// assert_eq!(counter.register(NodeId(1))?.node(), NodeId(1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn node(&self) -> NodeId {
        self.node
    }

    /// Runs a read on the local replica. Linearizable: the replica first catches up with every
    /// write that completed before this call.
    ///
    /// # Panics
    /// If the structure is poisoned (see [`NodeReplicated::is_poisoned`]), or if `dispatch`
    /// panics (that panic, which leaves the structure usable).
    ///
    /// ```
    /// # use replicore::nr::{ReplicatedCounter, CounterRead};
    /// let topo = replicore::Topology::synthetic(2, 1, 1)?;
    /// let counter = ReplicatedCounter::new(&topo)?;
    /// counter.register(topo.nodes()[0])?.add(4);
    /// assert_eq!(counter.register(topo.nodes()[1])?.execute(CounterRead::Get), 4);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn execute(&self, op: D::ReadOp<'_>) -> D::Response {
        if self.shared.log.is_poisoned() {
            poisoned();
        }
        // With one replica there is nothing to catch up with (see `Log::completed`), and not
        // loading the completed tail keeps the read off the line every batch writes.
        let at_least = if self.shared.replicas.len() > 1 {
            self.shared.log.completed()
        } else {
            0
        };
        self.replica
            .read(self.index, &self.shared.log, self.slot, at_least, |d| {
                d.dispatch(op)
            })
    }

    /// Runs a write: it joins the node's next combined batch, is ordered by the log and applied
    /// to every replica. Returns the write's response from the local replica.
    ///
    /// # Panics
    /// If this or an earlier write panicked in `dispatch_mut` (see [`NodeReplicated::is_poisoned`]):
    /// the thread that applied the failing op gets its panic, every other caller a "poisoned"
    /// panic.
    ///
    /// ```
    /// # use replicore::nr::{ReplicatedCounter, CounterWrite};
    /// let topo = replicore::Topology::synthetic(1, 1, 1)?;
    /// let counter = ReplicatedCounter::new(&topo)?;
    /// let h = counter.register(topo.nodes()[0])?;
    /// assert_eq!(h.execute_mut(CounterWrite::Add(7)), 7);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn execute_mut(&self, op: D::WriteOp) -> D::Response {
        if self.shared.log.is_poisoned() {
            poisoned();
        }
        // A free combiner lock means nobody is combining for this node: take it and combine with
        // our own op first in the batch, without the round trip through our mailbox (op in,
        // PENDING, TAKEN, response in, DONE, response out) that a single thread would otherwise
        // pay on every write.
        if let Some(guard) = self.replica.combiner.lock.try_lock() {
            return self.shared.write_alone(self.index, guard, op);
        }
        let slot = self.slot;
        // SAFETY: the mailbox is EMPTY, so no combiner touches it until we publish PENDING.
        slot.op.with_mut(|p| unsafe { *p = Some(op) });
        slot.state.store(PENDING, Ordering::Release);
        let backoff = Backoff::new();
        loop {
            if slot.state.load(Ordering::Acquire) != DONE {
                if let Some(guard) = self.replica.combiner.lock.try_lock() {
                    self.shared.combine(self.index, guard, None);
                }
            }
            if slot.state.load(Ordering::Acquire) == DONE {
                // SAFETY: DONE (Acquire) means the combiner wrote the response and let go.
                let r = slot.resp.with_mut(|p| unsafe { (*p).take() });
                slot.state.store(EMPTY, Ordering::Relaxed);
                return r.expect("a done mailbox holds a response");
            }
            // Our op may sit in the log behind one that panicked: it will never be applied.
            if self.shared.log.is_poisoned() {
                poisoned();
            }
            backoff.snooze();
        }
    }
}

impl<D: Dispatch> Handle<'_, D> {
    /// Runs a write like [`Handle::execute_mut`] and also returns a [`Token`] for it: a read
    /// given the token, through any handle of this structure, sees this write.
    ///
    /// ```
    /// # use replicore::nr::{ReplicatedCounter, CounterRead, CounterWrite};
    /// let topo = replicore::Topology::synthetic(2, 1, 1)?;
    /// let c = ReplicatedCounter::new(&topo)?;
    /// let (a, b) = (c.register(topo.nodes()[0])?, c.register(topo.nodes()[1])?);
    /// let (n, token) = a.execute_mut_with_token(CounterWrite::Add(5));
    /// assert_eq!(n, 5);
    /// assert_eq!(b.execute_after(token, CounterRead::Get).0, 5);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn execute_mut_with_token(&self, op: D::WriteOp) -> (D::Response, Token) {
        let r = self.execute_mut(op);
        // The combiner published the replica's new local tail (past this op) before it marked
        // the op done, and local tails only grow, so this load is at or past the op.
        let now = self.shared.log.local_tail(self.index);
        self.seen.set(now);
        (r, Token(now))
    }

    /// Runs a read on the local replica as soon as it has applied the log up to `token`,
    /// without waiting for writes the token has not seen (unlike [`Handle::execute`], which
    /// waits for every completed write). Returns the response and a token at least as new as
    /// both `token` and the state read, so a session that threads tokens through its reads and
    /// writes gets read-your-writes and monotonic reads. The state may be older than the
    /// newest completed write; that is the point.
    ///
    /// # Panics
    /// As [`Handle::execute`].
    ///
    /// ```
    /// # use replicore::nr::{ReplicatedCounter, CounterRead, CounterWrite, Token};
    /// let topo = replicore::Topology::synthetic(2, 1, 1)?;
    /// let c = ReplicatedCounter::new(&topo)?;
    /// let (a, b) = (c.register(topo.nodes()[0])?, c.register(topo.nodes()[1])?);
    /// let (v, t) = b.execute_after(Token::default(), CounterRead::Get);
    /// assert_eq!(v, 0);
    /// let (_, w) = a.execute_mut_with_token(CounterWrite::Add(2));
    /// let (v, t2) = b.execute_after(w.max(t), CounterRead::Get);
    /// assert_eq!(v, 2);
    /// assert!(t2 >= w);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn execute_after(&self, token: Token, op: D::ReadOp<'_>) -> (D::Response, Token) {
        let log = &self.shared.log;
        if log.is_poisoned() {
            poisoned();
        }
        let me = self.index;
        // Local tails only grow: a token this handle has already seen its replica reach needs
        // no wait, not even a load of the local tail before the read.
        let at_least = if token.0 > self.seen.get() {
            // A token from another structure may lie past this log's tail; waiting for it would
            // never end, so it is cut to the tail.
            token.0.min(log.tail())
        } else {
            0
        };
        // The local tail read under the reader flag is exactly the version of the state read:
        // no replay can start while the flag is up, and the last one published its tail before
        // lowering the writer flag this read saw down.
        let (r, now) = self.replica.read(me, log, self.slot, at_least, |d| {
            (d.dispatch(op), log.local_tail(me))
        });
        self.seen.set(self.seen.get().max(now));
        (r, Token(now))
    }
}

impl<D: Dispatch> Drop for Handle<'_, D> {
    fn drop(&mut self) {
        // A mailbox left mid-operation (a panic unwound through `execute_mut`) may still be
        // written by a combiner; such a slot is leaked rather than handed to a new thread.
        if self.slot.state.load(Ordering::Acquire) == EMPTY {
            self.replica.slots.release(self.slot);
        }
    }
}
