//! Per-replica thread slots, one per registered handle, with no fixed cap.
//!
//! A slot is the handle's private cache line: its reader flag (the per-reader half of the
//! replica's reader-writer lock) and its flat-combining mailbox (pending op, response). Slots
//! live in a linked list of chunks that only grows; a dropped handle frees its slot for the next
//! registration, so churn does not grow the list.

use crate::sync::UnsafeCell;
use crate::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};
use crossbeam_utils::CachePadded;
use std::ptr;

/// Slots per chunk: small under loom so that growth is modelled too.
const CHUNK: usize = if cfg!(loom) { 2 } else { 32 };

/// Mailbox states.
pub(crate) const EMPTY: usize = 0;
/// The owner has put an op in the mailbox; a combiner may take it.
pub(crate) const PENDING: usize = 1;
/// The combiner holding the lock moved the op into the log; the response is not there yet.
pub(crate) const TAKEN: usize = 2;
/// A combiner applied the op and left the response.
pub(crate) const DONE: usize = 3;

/// One registered thread's slot.
pub struct Slot<Op, Resp> {
    in_use: AtomicBool,
    /// Set while the owner reads the replica (see `Replica::read`).
    pub(crate) reading: AtomicBool,
    /// `EMPTY`, `PENDING`, `TAKEN` or `DONE`.
    pub(crate) state: AtomicUsize,
    /// Written by the owner while `EMPTY`, taken by the combiner while `PENDING` (it then sets `TAKEN`).
    pub(crate) op: UnsafeCell<Option<Op>>,
    /// Written by the combiner while `PENDING`, taken by the owner once `DONE`.
    pub(crate) resp: UnsafeCell<Option<Resp>>,
}

struct Chunk<Op, Resp> {
    slots: Box<[CachePadded<Slot<Op, Resp>>]>,
    next: AtomicPtr<Chunk<Op, Resp>>,
}

impl<Op, Resp> Chunk<Op, Resp> {
    fn new() -> Self {
        let slots = (0..CHUNK)
            .map(|_| {
                CachePadded::new(Slot {
                    in_use: AtomicBool::new(false),
                    reading: AtomicBool::new(false),
                    state: AtomicUsize::new(EMPTY),
                    op: UnsafeCell::new(None),
                    resp: UnsafeCell::new(None),
                })
            })
            .collect();
        Self {
            slots,
            next: AtomicPtr::new(ptr::null_mut()),
        }
    }
}

// SAFETY: the mailbox cells hand an op from its owner to the combiner and a response back; the
// `state` word (Release on hand-over, Acquire before access) gives each side exclusive access in
// turn, so they only need to be `Send`. Chunks are owned by the list and freed only in `drop`.
unsafe impl<Op: Send, Resp: Send> Sync for Slots<Op, Resp> {}
// SAFETY: the list owns its chunks and their ops and responses.
unsafe impl<Op: Send, Resp: Send> Send for Slots<Op, Resp> {}

/// The growable list of slots of one replica.
pub struct Slots<Op, Resp> {
    first: Box<Chunk<Op, Resp>>,
    /// One past the highest slot index ever claimed: scans stop there, so a replica with two
    /// threads scans two cache lines, not a whole chunk.
    high_water: CachePadded<AtomicUsize>,
}

impl<Op, Resp> Slots<Op, Resp> {
    /// An empty list with one chunk.
    pub fn new() -> Self {
        Self {
            first: Box::new(Chunk::new()),
            high_water: CachePadded::new(AtomicUsize::new(0)),
        }
    }

    /// Claims a free slot, appending a chunk if all are taken.
    pub fn claim(&self) -> &Slot<Op, Resp> {
        let mut chunk: &Chunk<Op, Resp> = &self.first;
        let mut base = 0;
        loop {
            for (i, slot) in chunk.slots.iter().enumerate() {
                if !slot.in_use.load(Ordering::Relaxed)
                    && slot
                        .in_use
                        .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                        .is_ok()
                {
                    // Published before the owner first raises its reader flag or posts an op;
                    // the SeqCst fences of the reader-writer protocol order it against a
                    // writer's scan (see `Replica::replay`).
                    self.high_water.fetch_max(base + i + 1, Ordering::SeqCst);
                    return slot;
                }
            }
            base += CHUNK;
            let mut next = chunk.next.load(Ordering::Acquire);
            if next.is_null() {
                let fresh = Box::into_raw(Box::new(Chunk::new()));
                match chunk.next.compare_exchange(
                    ptr::null_mut(),
                    fresh,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => next = fresh,
                    Err(other) => {
                        // SAFETY: `fresh` came from `Box::into_raw` above and was never shared.
                        drop(unsafe { Box::from_raw(fresh) });
                        next = other;
                    }
                }
            }
            // SAFETY: a published chunk is freed only when the list drops, which needs `&mut self`.
            chunk = unsafe { &*next };
        }
    }

    /// Gives a slot back. Its mailbox must be `EMPTY` and its reader flag clear.
    pub fn release(&self, slot: &Slot<Op, Resp>) {
        debug_assert_eq!(slot.state.load(Ordering::Relaxed), EMPTY);
        slot.in_use.store(false, Ordering::Release);
    }

    /// Calls `f` on every slot below the high-water mark, claimed or not (free slots have a clear
    /// flag and an empty mailbox).
    pub fn for_each<'a>(&'a self, mut f: impl FnMut(&'a Slot<Op, Resp>)) {
        let mut left = self.high_water.load(Ordering::Acquire);
        let mut chunk: &'a Chunk<Op, Resp> = &self.first;
        loop {
            let here = left.min(CHUNK);
            chunk.slots[..here].iter().for_each(|s| f(s));
            left -= here;
            if left == 0 {
                return;
            }
            let next = chunk.next.load(Ordering::Acquire);
            if next.is_null() {
                return;
            }
            // SAFETY: as in `claim`.
            chunk = unsafe { &*next };
        }
    }
}

impl<Op, Resp> Drop for Slots<Op, Resp> {
    fn drop(&mut self) {
        let mut next = self.first.next.load(Ordering::Acquire);
        while !next.is_null() {
            // SAFETY: every non-null `next` was published from `Box::into_raw` exactly once, and
            // `&mut self` means no one else can still reach it.
            let chunk = unsafe { Box::from_raw(next) };
            next = chunk.next.load(Ordering::Acquire);
        }
    }
}
