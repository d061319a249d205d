//! The shared circular log of write operations.
//!
//! Positions are logical and only grow; position `i` lives in slot `i % size`. A slot records the
//! position it holds (`seq = i + 1`) so that a replayer never mistakes the previous lap's entry for
//! the one it waits for. Space is reclaimed by the slowest replica: position `i + size` may be
//! reserved only once every replica's local tail has passed `i`, so an entry is never overwritten
//! while someone may still read it.

use crate::sync::Backoff;
use crate::sync::UnsafeCell;
use crate::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use crossbeam_utils::CachePadded;

/// One log slot.
struct Entry<Op> {
    /// `position + 1` of the op stored here, 0 before the first lap.
    seq: AtomicUsize,
    op: UnsafeCell<Option<Op>>,
}

/// The positions every batch moves. A combiner reads `head_cache`, moves `tail`, then moves
/// `completed` in quick succession, so keeping them in one cache line costs one line transfer
/// per batch instead of three; readers that load `completed` would miss on it after every batch
/// anyway.
struct Positions {
    /// The next position to reserve.
    tail: AtomicUsize,
    /// Every position below it has been applied by at least one replica, and by every replica
    /// whose combiner returned a response for it. Linearizable reads wait for their replica to
    /// reach the value they saw on entry. Kept only when there are several replicas (see
    /// [`Log::completed`]).
    completed: AtomicUsize,
    /// A lower bound of `head()`, refreshed only when the log looks full, so that appends do not
    /// read every replica's local tail.
    head_cache: AtomicUsize,
}

/// The log shared by all replicas.
pub struct Log<Op> {
    entries: Box<[Entry<Op>]>,
    mask: usize,
    /// Set once a write op panicked while a replica applied it (see [`Log::poison`]). It sits
    /// with the read-only fields: it is written at most once, and every operation reads it.
    poisoned: AtomicBool,
    /// `tail`, `completed` and `head_cache` (see [`Positions`]), in one cache line.
    pos: CachePadded<Positions>,
    /// Per replica: every position below it has been applied to that replica.
    local_tails: Box<[CachePadded<AtomicUsize>]>,
}

// SAFETY: an entry's op is written only by the appender that reserved its position, before it
// publishes `seq` with Release; it is read (cloned) by replayers only after they see that `seq`
// with Acquire, and rewritten only after every local tail has passed it (see `reserve`). Ops move
// between threads, hence `Op: Send`; they are cloned through `&` from several threads at once,
// hence `Op: Sync`.
unsafe impl<Op: Send + Sync> Sync for Log<Op> {}
// SAFETY: the log owns its ops; sending it sends them.
unsafe impl<Op: Send> Send for Log<Op> {}

impl<Op: Clone> Log<Op> {
    /// A log of `size` entries (a power of two) shared by `replicas` replicas.
    pub fn new(size: usize, replicas: usize) -> Self {
        debug_assert!(size.is_power_of_two());
        let entries = (0..size)
            .map(|_| Entry {
                seq: AtomicUsize::new(0),
                op: UnsafeCell::new(None),
            })
            .collect();
        let local_tails = (0..replicas)
            .map(|_| CachePadded::new(AtomicUsize::new(0)))
            .collect();
        Self {
            entries,
            mask: size - 1,
            poisoned: AtomicBool::new(false),
            pos: CachePadded::new(Positions {
                tail: AtomicUsize::new(0),
                completed: AtomicUsize::new(0),
                head_cache: AtomicUsize::new(0),
            }),
            local_tails,
        }
    }

    /// Number of slots.
    pub fn size(&self) -> usize {
        self.mask + 1
    }

    /// The next position to be reserved.
    pub fn tail(&self) -> usize {
        self.pos.tail.load(Ordering::Acquire)
    }

    /// What a linearizable read must wait for its replica to reach: see [`Positions::completed`].
    ///
    /// With a single replica it stays 0 and reads wait for nothing: that replica's combiner
    /// applies every batch before it hands out a response, so every write that completed before
    /// a read began is already in it, and the reader-writer lock orders the read after it.
    pub fn completed(&self) -> usize {
        self.pos.completed.load(Ordering::Acquire)
    }

    /// How far `replica` has applied the log.
    pub fn local_tail(&self, replica: usize) -> usize {
        self.local_tails[replica].load(Ordering::Acquire)
    }

    /// The lowest local tail: positions below it may be overwritten.
    pub fn head(&self) -> usize {
        self.local_tails
            .iter()
            .map(|t| t.load(Ordering::Acquire))
            .min()
            .unwrap_or(0)
    }

    /// Tries once to reserve `n` positions. Returns the first one, or `Err(tail)` if the log has
    /// no room until the slowest replica advances (or the tail moved under us: the caller simply
    /// retries).
    pub fn try_reserve(&self, n: usize) -> Result<usize, usize> {
        let t = self.pos.tail.load(Ordering::Acquire);
        if t + n > self.pos.head_cache.load(Ordering::Acquire) + self.size() {
            // The Acquire loads in `head` are what order earlier replays' reads of the slots
            // before our overwrite; the cache only ever holds a value read that way.
            let head = self.head();
            self.pos.head_cache.fetch_max(head, Ordering::AcqRel);
            if t + n > head + self.size() {
                return Err(t);
            }
        }
        if self.local_tails.len() == 1 {
            // One replica means one appender, the holder of its combiner lock: nobody can move
            // the tail under us, and a plain store spares a locked instruction per batch.
            self.pos.tail.store(t + n, Ordering::Release);
            return Ok(t);
        }
        self.pos
            .tail
            .compare_exchange(t, t + n, Ordering::AcqRel, Ordering::Acquire)
    }

    /// Reserves the next position for a write that will not be stored in the log: with a single
    /// replica, whose combiner lock the caller holds, nobody else reserves or reads positions,
    /// and that replica is current whenever the lock is free, so the log never fills.
    pub fn reserve_unlogged(&self) -> usize {
        debug_assert_eq!(self.local_tails.len(), 1);
        let t = self.pos.tail.load(Ordering::Relaxed);
        self.pos.tail.store(t + 1, Ordering::Release);
        t
    }

    /// Writes `op` at the reserved position `pos` and publishes it.
    pub fn write(&self, pos: usize, op: Op) {
        let entry = &self.entries[pos & self.mask];
        // SAFETY: `pos` was reserved by this thread alone, and reservation waited until every
        // replica's local tail passed `pos - size`, the slot's previous occupant; the Acquire
        // loads in `head` order those replays' reads before this write.
        entry.op.with_mut(|p| unsafe { *p = Some(op) });
        entry.seq.store(pos + 1, Ordering::Release);
    }

    /// A copy of the op at `pos`, waiting for its appender to finish writing it. Appenders write
    /// right after reserving and never block in between, so the wait is short.
    pub fn read(&self, pos: usize) -> Op {
        let entry = &self.entries[pos & self.mask];
        let backoff = Backoff::new();
        while entry.seq.load(Ordering::Acquire) != pos + 1 {
            backoff.snooze();
        }
        // SAFETY: `seq == pos + 1` (Acquire) shows the write of this op happened before; the slot
        // is not rewritten until this replica's local tail passes `pos`, which its replayer (us)
        // does only after this read.
        entry
            .op
            .with(|p| unsafe { (*p).clone() })
            .expect("published log entry holds an op")
    }

    /// Whether a write op panicked while being applied. From then on no replica applies the log
    /// again and every operation panics (see `Dispatch::dispatch_mut`).
    pub fn is_poisoned(&self) -> bool {
        self.poisoned.load(Ordering::Acquire)
    }

    /// Marks the log poisoned: the op at some position panicked in a replica, which is now
    /// half-way through it. Writes replay deterministically, so every other replica would panic
    /// on the same op; none is allowed to try.
    pub fn poison(&self) {
        self.poisoned.store(true, Ordering::Release);
    }

    /// Records that `replica` has applied every position below `to`, and that those are complete.
    pub fn advance(&self, replica: usize, to: usize) {
        self.local_tails[replica].store(to, Ordering::Release);
        // One replica needs no completed tail (see `completed`), and skipping it saves a locked
        // read-modify-write per batch. A replayer catching up with positions another replica's
        // combiner already completed finds `completed` at or past `to`: a plain load then keeps
        // the shared line in every reader's cache, where the read-modify-write would pull it
        // over exclusive (one more cache-line transfer per write on two nodes). `completed` only
        // grows, so once it is at or past `to` it stays there.
        if self.local_tails.len() > 1 && self.pos.completed.load(Ordering::Acquire) < to {
            self.pos.completed.fetch_max(to, Ordering::AcqRel);
        }
    }
}
