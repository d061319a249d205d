//! The per-CPU op log: bounded, published by the CPU's owner, read by its replicas.
//!
//! Positions come from one `fetch_add` on `tail`, so `seq` is strictly increasing even if a
//! fenced owner, resumed from a stall, appends concurrently with its replacement: both get unique
//! positions, and replicas reject the stale one by its epoch. The owner never waits: an entry is
//! overwritten `capacity` positions later whether or not every replica has read it, and a write
//! that finds a stalled reader pinned in its slot is skipped and recorded in `overrun_upto`.
//! Either way a reader that reaches that position sees [`LogRead::Gap`], never a wrong entry.

use super::Stamp;
use super::tagged_cell::{TaggedCell, TaggedRead};
use crate::sync::atomic::{AtomicU64, Ordering};

/// Default log capacity (ops); tiny under loom so that wrap-around is exercised.
///
/// ```
/// assert!(replicore::__protocol::DEFAULT_LOG_CAPACITY.is_power_of_two());
/// ```
#[cfg(not(loom))]
pub const DEFAULT_LOG_CAPACITY: usize = 1024;
/// Default log capacity (ops); tiny under loom so that wrap-around is exercised.
///
/// ```
/// assert!(replicore::__protocol::DEFAULT_LOG_CAPACITY.is_power_of_two());
/// ```
#[cfg(loom)]
pub const DEFAULT_LOG_CAPACITY: usize = 2;

/// A bounded op log of stamped ops; `T` is the pool's shared task handle.
///
/// One kind of op: a push (`append`), which carries the task, written by the CPU's owner only.
/// Starts are not logged: a task's start is its claim, recorded on the task's header, where
/// replicas find it (see `Replica::sync`). So a task costs its owner one log position.
///
/// ```
/// use replicore::__protocol::{LogRead, OpLog};
/// let log = OpLog::new(2);
/// let s = log.append(0, "a");
/// log.append(0, "b");
/// log.append(0, "c"); // overwrites position 0: the owner never waits
/// assert_eq!(log.read(s.seq), LogRead::Gap);
/// assert_eq!(log.read(2), LogRead::Op(replicore::__protocol::Stamp { epoch: 0, seq: 2 }, "c"));
/// assert_eq!(log.read(3), LogRead::NotYet);
/// ```
#[derive(Debug)]
pub struct OpLog<T> {
    slots: Box<[TaggedCell<(Stamp, T)>]>,
    tail: AtomicU64,
    /// Every position below this one may have been skipped (a pinned slot was not overwritten).
    overrun_upto: AtomicU64,
}

/// What a reader found at one position.
///
/// ```
/// use replicore::__protocol::{LogRead, OpLog, Stamp};
/// let log = OpLog::new(1);
/// assert_eq!(log.read(0), LogRead::NotYet);
/// log.append(3, 'x');
/// assert_eq!(log.read(0), LogRead::Op(Stamp { epoch: 3, seq: 0 }, 'x'));
/// log.append(3, 'y'); // wraps over position 0
/// assert_eq!(log.read(0), LogRead::Gap);
/// ```
#[derive(Debug, PartialEq, Eq)]
pub enum LogRead<T> {
    /// A push of this task.
    Op(Stamp, T),
    /// Not published yet (or its writer is mid-write, or crashed mid-write).
    NotYet,
    /// Lost to wrap-around or a skipped write: the reader must resync by other means.
    Gap,
}

impl<T: Clone> OpLog<T> {
    /// A log of `capacity` entries (at least 1).
    ///
    /// ```
    /// use replicore::__protocol::OpLog;
    /// assert_eq!(OpLog::<u8>::new(16).capacity(), 16);
    /// assert_eq!(OpLog::<u8>::new(0).capacity(), 1, "at least one entry");
    /// ```
    pub fn new(capacity: usize) -> Self {
        Self {
            slots: (0..capacity.max(1)).map(|_| TaggedCell::new()).collect(),
            tail: AtomicU64::new(0),
            overrun_upto: AtomicU64::new(0),
        }
    }

    /// Capacity in entries.
    ///
    /// ```
    /// use replicore::__protocol::OpLog;
    /// let log = OpLog::new(4);
    /// for i in 0..10 {
    ///     log.append(0, i);
    /// }
    /// assert_eq!(log.capacity(), 4, "appending never grows the log");
    /// ```
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Number of positions handed out so far (published or not).
    ///
    /// ```
    /// use replicore::__protocol::OpLog;
    /// let log = OpLog::new(4);
    /// log.append(0, "a");
    /// log.append(0, "b");
    /// assert_eq!(log.tail(), 2);
    /// ```
    pub fn tail(&self) -> u64 {
        self.tail.load(Ordering::SeqCst)
    }

    /// Publishes `value` stamped with `epoch` and the next position. Never waits.
    ///
    /// ```
    /// use replicore::__protocol::{OpLog, Stamp};
    /// let log = OpLog::new(4);
    /// assert_eq!(log.append(0, "a"), Stamp { epoch: 0, seq: 0 });
    /// // A replacement owner (epoch 1) continues the same sequence.
    /// assert_eq!(log.append(1, "b"), Stamp { epoch: 1, seq: 1 });
    /// ```
    pub fn append(&self, epoch: u32, value: T) -> Stamp {
        self.append_written(epoch, value).0
    }

    /// [`append`](Self::append), also saying whether the entry was written (`false`: a pinned
    /// reader made the write skip, so the position reads as a gap).
    pub(crate) fn append_written(&self, epoch: u32, value: T) -> (Stamp, bool) {
        let seq = self.tail.fetch_add(1, Ordering::SeqCst);
        let stamp = Stamp { epoch, seq };
        let slot = &self.slots[(seq % self.slots.len() as u64) as usize];
        let written = slot.write(seq + 1, Some((stamp, value)));
        if !written {
            self.overrun_upto.fetch_max(seq + 1, Ordering::SeqCst);
        }
        (stamp, written)
    }

    /// Pins slot `slot` as a stalled reader would, for tests of skipped writes.
    #[cfg(all(test, not(loom)))]
    pub(crate) fn pin_slot_for_test(&self, slot: usize) {
        self.slots[slot].state.fetch_add(1, Ordering::SeqCst);
    }

    /// Reads position `seq`.
    ///
    /// ```
    /// use replicore::__protocol::{LogRead, OpLog};
    /// let log = OpLog::new(4);
    /// let s = log.append(0, 42);
    /// assert!(matches!(log.read(s.seq), LogRead::Op(stamp, 42) if stamp == s));
    /// assert_eq!(log.read(s.seq + 1), LogRead::NotYet);
    /// ```
    pub fn read(&self, seq: u64) -> LogRead<T> {
        let slot = &self.slots[(seq % self.slots.len() as u64) as usize];
        match slot.read(seq + 1) {
            TaggedRead::Value((stamp, v)) => LogRead::Op(stamp, v),
            TaggedRead::Newer => LogRead::Gap,
            TaggedRead::Older => {
                if self.overrun_upto.load(Ordering::SeqCst) > seq
                    || self.tail() >= seq + 1 + self.slots.len() as u64
                {
                    LogRead::Gap
                } else {
                    LogRead::NotYet
                }
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn wraps_and_detects_gaps() {
        let log = OpLog::new(4);
        for i in 0..10u64 {
            assert_eq!(log.append(3, i), Stamp { epoch: 3, seq: i });
        }
        for i in 0..6 {
            assert_eq!(log.read(i), LogRead::Gap, "position {i} was overwritten");
        }
        for i in 6..10 {
            assert_eq!(log.read(i), LogRead::Op(Stamp { epoch: 3, seq: i }, i));
        }
        assert_eq!(log.read(10), LogRead::NotYet);
        assert_eq!(log.capacity(), 4);
    }

    #[test]
    fn pinned_slot_makes_writer_skip_not_wait() {
        let log = OpLog::new(1);
        log.append(0, 1u32);
        // Simulate a stalled reader pinned on slot 0.
        log.slots[0].state.fetch_add(1, Ordering::SeqCst);
        log.append(0, 2u32);
        log.slots[0].state.fetch_sub(1, Ordering::SeqCst);
        assert_eq!(log.read(1), LogRead::Gap, "the skipped write is a gap");
        assert_eq!(
            log.read(0),
            LogRead::Op(Stamp { epoch: 0, seq: 0 }, 1),
            "old entry intact"
        );
    }
}
