//! One node's replica: the data, its reader-writer lock and its combiner lock.
//!
//! The reader-writer lock is split so that readers never write a shared cache line: each reader
//! raises the flag in its own slot, then checks the replica's single writer flag; the writer
//! raises its flag, then waits for every reader flag to drop. A SeqCst fence between each side's
//! store and load makes at least one of them see the other (the store-load pattern of Dekker's
//! algorithm); SeqCst loads and stores alone would not be enough under loom's model.
//!
//! Only the holder of the combiner lock writes to the replica, so writers need no further mutual
//! exclusion; the lock is also what lets a thread from another node replay into this replica.
//! Nobody ever waits for that lock (see `trylock`): a thread that cannot take it either has its
//! op combined by the holder or polls its own mailbox.
//!
//! If a write panics while being applied, the log is poisoned and this replica's writer flag
//! stays raised, so no reader ever sees the half-applied state; waiters notice the poison and
//! panic instead of waiting (see `Dispatch::dispatch_mut`).

use super::Dispatch;
use super::log::Log;
use super::slots::{Slot, Slots};
use super::trylock::{TryLock, TryLockGuard};
use crate::sync::Backoff;
use crate::sync::UnsafeCell;
use crate::sync::atomic::{AtomicBool, AtomicU64, Ordering, fence};
use crossbeam_utils::CachePadded;
use std::panic::{self, AssertUnwindSafe};

/// Counters a writer updates only on rare events (helping, a new maximum lag), kept apart from
/// the per-batch ones so that they do not share a line with anything hot.
#[derive(Default)]
pub(crate) struct RareCounters {
    pub(crate) helps: AtomicU64,
    pub(crate) max_lag: AtomicU64,
    /// Replays the node's background helper made into this replica, and the entries they
    /// applied. Only the helper writes them (see `helper`).
    pub(crate) helper_batches: AtomicU64,
    pub(crate) helper_entries: AtomicU64,
    /// Times a writer woke this replica's helper early because the replica lagged.
    pub(crate) helper_wakeups: AtomicU64,
}

/// The combiner's scratch space, guarded by the combiner lock and reused across batches so that
/// combining allocates nothing once warm.
pub(crate) struct Scratch<Op, Resp> {
    /// The ops taken out of mailboxes for the current batch, in mailbox scan order.
    pub(crate) ops: Vec<Op>,
    /// The responses of the current batch, in the same order.
    pub(crate) responses: Vec<Resp>,
}

impl<Op, Resp> Default for Scratch<Op, Resp> {
    fn default() -> Self {
        Self {
            ops: Vec::new(),
            responses: Vec::new(),
        }
    }
}

/// The combiner lock and the counters its holder bumps once per batch, in one cache line: a
/// thread that takes over combining from another on the same node moves one line, not two.
pub(crate) struct CombinerLine<Op, Resp> {
    pub(crate) lock: TryLock<Scratch<Op, Resp>>,
    /// Batches appended by this replica's combiners. Only the lock holder writes it.
    pub(crate) batches: AtomicU64,
    /// Ops appended by this replica's combiners. Only the lock holder writes it.
    pub(crate) ops: AtomicU64,
}

// SAFETY: `data` is read through `&D` by several readers at once (needs `D: Sync`) and mutated
// by whichever thread holds the combiner lock, possibly on another node (needs `D: Send`); the
// reader-writer protocol above keeps the two apart. The combiner's scratch ops and responses
// are handed between threads under its lock (`WriteOp` and `Response` are `Send`); `slots` and
// the counters are Sync on their own.
unsafe impl<D: Dispatch + Send + Sync> Sync for Replica<D> {}
// SAFETY: a replica owns its `D`; moving it moves the `D`.
unsafe impl<D: Dispatch + Send> Send for Replica<D> {}

/// One replica of `D`.
pub(crate) struct Replica<D: Dispatch> {
    data: UnsafeCell<Box<D>>,
    writer: CachePadded<AtomicBool>,
    /// The combiner lock, its scratch space and the per-batch counters.
    pub(crate) combiner: CachePadded<CombinerLine<D::WriteOp, D::Response>>,
    pub(crate) slots: Slots<D::WriteOp, D::Response>,
    pub(crate) rare: CachePadded<RareCounters>,
}

/// Proof that the caller holds a replica's combiner lock.
pub(crate) type CombinerGuard<'a, Op, Resp> = TryLockGuard<'a, Scratch<Op, Resp>>;

impl<D: Dispatch> Replica<D> {
    pub(crate) fn new(data: Box<D>) -> Self {
        Self {
            data: UnsafeCell::new(data),
            writer: CachePadded::new(AtomicBool::new(false)),
            combiner: CachePadded::new(CombinerLine {
                lock: TryLock::new(Scratch::default()),
                batches: AtomicU64::new(0),
                ops: AtomicU64::new(0),
            }),
            slots: Slots::new(),
            rare: CachePadded::new(RareCounters::default()),
        }
    }

    /// Runs `f` on the replica once it has applied the log up to `at_least`, under the read side
    /// of the lock. When the replica lags, the reader replays the log itself if no combiner is
    /// doing so already.
    pub(crate) fn read<R>(
        &self,
        me: usize,
        log: &Log<D::WriteOp>,
        slot: &Slot<D::WriteOp, D::Response>,
        at_least: usize,
        f: impl FnOnce(&D) -> R,
    ) -> R {
        let backoff = Backoff::new();
        loop {
            // `at_least` is 0 with a single replica (see `Log::completed`): no load at all.
            if at_least > 0 && log.local_tail(me) < at_least {
                if log.is_poisoned() {
                    poisoned();
                }
                if let Some(guard) = self.combiner.lock.try_lock() {
                    self.replay(me, log, &guard, usize::MAX, |_, _| {});
                } else {
                    backoff.snooze();
                }
                continue;
            }
            slot.reading.store(true, Ordering::Relaxed);
            fence(Ordering::SeqCst);
            if !self.writer.load(Ordering::Acquire) {
                // Lowers the flag on return and also if `f` panics, so a panicking read cannot
                // block writers forever (a read changes nothing, so the replica stays sound).
                let _lower = LowerOnDrop(&slot.reading);
                // SAFETY: our flag is up and no writer was active after we raised it, so any
                // writer that starts now waits for the flag to drop: nothing mutates `data`
                // while we hold the shared reference. The local tail cannot go backwards, so
                // the state includes every op below `at_least`.
                return self.data.with(|d| unsafe { f(&**d) });
            }
            slot.reading.store(false, Ordering::Release);
            while self.writer.load(Ordering::Acquire) {
                // A replica poisoned mid-write keeps its writer flag up for good.
                if log.is_poisoned() {
                    poisoned();
                }
                backoff.snooze();
            }
        }
    }

    /// Applies the log entries from this replica's local tail to the current log tail, at most
    /// `limit` of them, as one batch under the write lock, then publishes the new local tail.
    /// `respond` gets each applied position with its response, so a combiner can pick out its
    /// own batch. Returns how many entries were applied.
    ///
    /// A combiner passes `usize::MAX`: its own batch must be applied before it answers. The
    /// background helper passes its batch size, so that it holds the write lock (and keeps the
    /// node's readers waiting) for a bounded number of ops at a time.
    pub(crate) fn replay(
        &self,
        me: usize,
        log: &Log<D::WriteOp>,
        _combiner: &CombinerGuard<'_, D::WriteOp, D::Response>,
        limit: usize,
        mut respond: impl FnMut(usize, D::Response),
    ) -> usize {
        let from = log.local_tail(me);
        let to = log.tail().min(from.saturating_add(limit));
        if from >= to {
            return 0;
        }
        // Another replica panicked on an op in this range; applying it here would panic the same
        // way (writes are deterministic) and leave a second replica half-written.
        if log.is_poisoned() {
            poisoned();
        }
        self.exclude_readers();
        for pos in from..to {
            let applied = panic::catch_unwind(AssertUnwindSafe(|| {
                let op = log.read(pos);
                // SAFETY: we hold the combiner lock (only its holder writes) and the writer flag
                // with every reader flag seen clear afterwards, so no reader holds a reference
                // to `data`.
                self.data.with_mut(|d| unsafe { (**d).dispatch_mut(op) })
            }));
            match applied {
                Ok(resp) => respond(pos, resp),
                Err(payload) => {
                    // The replica is half-way through the op. Poison the log so that no one
                    // replays it anywhere else, and leave this replica's writer flag raised so no
                    // reader ever sees the half-written state; every waiter checks the poison
                    // flag and panics instead of waiting forever. The thread that ran the op
                    // gets the op's own panic.
                    log.poison();
                    panic::resume_unwind(payload);
                }
            }
        }
        log.advance(me, to);
        self.writer.store(false, Ordering::Release);
        to - from
    }
}

impl<D: Dispatch> Replica<D> {
    /// Applies `op`, which the caller appended at log position `pos`, straight from its hands
    /// rather than reading it back from the log, and publishes the local tail past it. The
    /// replica must have applied every position before `pos` (the caller holds the combiner
    /// lock and checked). With a single replica nobody else ever reads the log, so the caller
    /// need not even write the op there.
    pub(crate) fn apply_own(
        &self,
        me: usize,
        log: &Log<D::WriteOp>,
        _combiner: &CombinerGuard<'_, D::WriteOp, D::Response>,
        pos: usize,
        op: D::WriteOp,
    ) -> D::Response {
        debug_assert_eq!(log.local_tail(me), pos);
        if log.is_poisoned() {
            poisoned();
        }
        self.exclude_readers();
        let applied = panic::catch_unwind(AssertUnwindSafe(|| {
            // SAFETY: as in `replay`: we hold the combiner lock and the writer flag, with every
            // reader flag seen clear after raising it.
            self.data.with_mut(|d| unsafe { (**d).dispatch_mut(op) })
        }));
        match applied {
            Ok(resp) => {
                log.advance(me, pos + 1);
                self.writer.store(false, Ordering::Release);
                resp
            }
            // As in `replay`: poison, keep the writer flag up, hand the panic to our caller.
            Err(payload) => {
                log.poison();
                panic::resume_unwind(payload)
            }
        }
    }

    /// The writer half of the reader-writer protocol: raises the writer flag, then waits until
    /// every reader flag is down. The caller holds the combiner lock, applies, then lowers the
    /// flag.
    fn exclude_readers(&self) {
        self.writer.store(true, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        self.slots.for_each(|s| {
            let backoff = Backoff::new();
            while s.reading.load(Ordering::Acquire) {
                backoff.snooze();
            }
        });
    }
}

/// Clears a reader flag when dropped.
struct LowerOnDrop<'a>(&'a AtomicBool);

impl Drop for LowerOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// Panics because the log is poisoned: a write op panicked earlier (see
/// [`Dispatch::dispatch_mut`]).
#[cold]
#[track_caller]
pub(crate) fn poisoned() -> ! {
    panic!(
        "replicore::nr: this NodeReplicated is poisoned: an earlier write operation panicked in \
         Dispatch::dispatch_mut, so the replicas no longer hold a state the log describes"
    )
}
