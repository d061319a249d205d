//! [`NodeReplicated`]: the replicas, the log, flat combining and helping.

use super::config::{NrConfig, NrError};
use super::log::Log;
use super::placement;
use super::replica::{CombinerGuard, Replica, Scratch, poisoned};
use super::slots::{DONE, EMPTY, PENDING, Slot, TAKEN};
use super::{Dispatch, NrStats};
use crate::sync::Backoff;
use crate::sync::atomic::{AtomicUsize, Ordering};
use crate::{NodeId, Topology};
use std::cell::Cell;
use std::marker::PhantomData;

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
    log: Log<D::WriteOp>,
    replicas: Box<[Replica<D>]>,
    topo: Topology,
    config: NrConfig,
    /// Spreads threads whose node cannot be told apart (see [`NodeReplicated::register_current`]).
    next_node: AtomicUsize,
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
        config.validate()?;
        if topo.num_nodes() == 0 {
            return Err(NrError::NoNodes);
        }
        let replicas = placement::allocate_per_node(topo, &init)
            .into_iter()
            .map(Replica::new)
            .collect::<Box<[_]>>();
        Ok(Self {
            log: Log::new(config.log_size, replicas.len()),
            replicas,
            topo: topo.clone(),
            config,
            next_node: AtomicUsize::new(0),
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
        self.replicas.len()
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
        self.config
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
        let slot = self.replicas[replica].slots.claim();
        Ok(Handle {
            nr: self,
            replica: &self.replicas[replica],
            index: replica,
            node,
            slot,
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
        self.log.is_poisoned()
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
        for r in self.replicas.iter() {
            s.combiner_batches += r.combiner.batches.load(Ordering::Relaxed);
            ops += r.combiner.ops.load(Ordering::Relaxed);
            s.helping_events += r.rare.helps.load(Ordering::Relaxed);
            s.max_replica_lag = s
                .max_replica_lag
                .max(r.rare.max_lag.load(Ordering::Relaxed));
        }
        s.operations = ops;
        // Positions only grow and position `i` lives in slot `i % size`, so the tail has passed
        // the end of the buffer `tail / size` times.
        s.log_wraps = (self.log.tail() / self.log.size()) as u64;
        if s.combiner_batches > 0 {
            s.average_batch_size = ops as f64 / s.combiner_batches as f64;
        }
        s
    }

    /// Runs the combiner of replica `me`: takes up to `max_batch` pending writes of its threads,
    /// appends them as one batch, replays the log into the replica and hands back responses.
    fn combine(&self, me: usize, mut guard: CombinerGuard<'_, D::WriteOp, D::Response>) {
        let replica = &self.replicas[me];
        let mut scratch: Scratch<_, _> = guard.with_mut(std::mem::take);
        scratch.ops.clear();
        scratch.responses.clear();
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
            return;
        }
        let start = self.reserve(me, n, &guard);
        for (pos, op) in (start..).zip(scratch.ops.drain(..)) {
            self.log.write(pos, op);
        }
        let responses = &mut scratch.responses;
        replica.replay(me, &self.log, &guard, |p, r| {
            if (start..start + n).contains(&p) {
                responses.push(r);
            }
        });
        let mut responses_iter = scratch.responses.drain(..);
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
    }

    /// Batched propagation: a replica that fell more than `lag_bound` behind (an idle node) is
    /// brought up to date by this writer, in one batch.
    fn propagate(&self, me: usize) {
        let tail = self.log.tail();
        let mut max_lag = 0;
        for other in (0..self.replicas.len()).filter(|&o| o != me) {
            let lag = tail.saturating_sub(self.log.local_tail(other));
            max_lag = max_lag.max(lag);
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
                        self.replicas[me].replay(me, &self.log, guard, |_, _| {});
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
            self.replicas[other].replay(other, &self.log, &guard, |_, _| {});
            self.replicas[me].rare.helps.fetch_add(1, Ordering::Relaxed);
        }
    }
}

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
    nr: &'nr NodeReplicated<D>,
    /// `nr.replicas[index]`, kept so that an operation does not index through `nr`.
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
        if self.nr.log.is_poisoned() {
            poisoned();
        }
        // With one replica there is nothing to catch up with (see `Log::completed`), and not
        // loading the completed tail keeps the read off the line every batch writes.
        let at_least = if self.nr.replicas.len() > 1 {
            self.nr.log.completed()
        } else {
            0
        };
        self.replica
            .read(self.index, &self.nr.log, self.slot, at_least, |d| {
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
        if self.nr.log.is_poisoned() {
            poisoned();
        }
        let slot = self.slot;
        // SAFETY: the mailbox is EMPTY, so no combiner touches it until we publish PENDING.
        slot.op.with_mut(|p| unsafe { *p = Some(op) });
        slot.state.store(PENDING, Ordering::Release);
        let backoff = Backoff::new();
        loop {
            if slot.state.load(Ordering::Acquire) != DONE {
                if let Some(guard) = self.replica.combiner.lock.try_lock() {
                    self.nr.combine(self.index, guard);
                }
            }
            if slot.state.load(Ordering::Acquire) == DONE {
                // SAFETY: DONE (Acquire) means the combiner wrote the response and let go.
                let r = slot.resp.with_mut(|p| unsafe { (*p).take() });
                slot.state.store(EMPTY, Ordering::Relaxed);
                return r.expect("a done mailbox holds a response");
            }
            // Our op may sit in the log behind one that panicked: it will never be applied.
            if self.nr.log.is_poisoned() {
                poisoned();
            }
            backoff.snooze();
        }
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
