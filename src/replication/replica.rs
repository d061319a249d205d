//! A neighbour's replica of one CPU's queue: a batch-applied view of its [`OpLog`].
//!
//! The replica holds every task published to the log under its current epoch that it has not
//! yet seen claimed. Ops are applied in log-position order, which is stamp order within an epoch;
//! an op whose stamp is not above the last applied one is a duplicate and is dropped; an op from
//! an epoch below the replica's is stale (a fenced owner's late push) and is rejected from the
//! view, but its task is not dropped: it goes to [`Replica::take_redirected`], because the fenced
//! owner may pop that task back out of its old deque and then crash, and then the log is the only
//! place left that knows it.
//!
//! Tasks leave the replica once they are started. A start, by the owner or a thief, is the
//! task's [`Claim`], recorded on its header and not in the log (the log holds pushes only), so a
//! batch first prunes tasks whose claim is taken once the replica holds more than [`PRUNE_AT`].
//! Taking a task "in hand" is not an op here either: the replica keeps a popped task until it is
//! claimed, which is what lets a successor recover the in-hand task.
//!
//! **Gap.** If the replica falls more than the log's capacity behind, or a write was skipped, it
//! cannot know which tasks it missed. It marks itself `needs_resync`; a successor using it then
//! also scans the old deque through its stealer and reads the in-hand slot (see `takeover`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::claim::Claim;
use super::log::{LogRead, OpLog};
use super::stamp::Stamp;

/// Above this many recorded tasks, a sync first drops those whose claim is taken.
#[cfg(not(loom))]
pub const PRUNE_AT: usize = 64;
/// Above this many recorded tasks, a sync first drops those whose claim is taken.
#[cfg(loom)]
pub const PRUNE_AT: usize = 2;

/// A task handle the protocol can reason about: the pool's `Arc`'d task header.
///
/// The log and replicas hold clones of the handle, never the task body, so a task exists once and
/// is started only by whoever wins its [`Claim`].
///
/// ```
/// use std::sync::Arc;
/// use replicore::__protocol::{Claim, Claimable};
/// // Any `Arc` of something that holds a `Claim` is a task handle.
/// struct Job { claim: Claim, payload: u32 }
/// impl AsRef<Claim> for Job {
///     fn as_ref(&self) -> &Claim { &self.claim }
/// }
/// let job = Arc::new(Job { claim: Claim::new(), payload: 7 });
/// let copy = job.clone(); // what a replica holds
/// assert!(copy.claim().try_claim());
/// assert!(job.claim().is_claimed(), "both handles share the one claim");
/// assert_eq!(job.payload, 7);
/// ```
pub trait Claimable: Clone {
    /// The task's single claim word.
    fn claim(&self) -> &Claim;
}

impl<C: AsRef<Claim> + ?Sized> Claimable for crate::sync::Arc<C> {
    fn claim(&self) -> &Claim {
        (**self).as_ref()
    }
}

/// Under loom the shim's `Arc` is loom's; the pool's logged-task handles stay `std` ones (a
/// `self: Arc<Self>` method needs `std`'s), so the pool still builds under `--cfg loom`.
#[cfg(loom)]
impl<C: AsRef<Claim> + ?Sized> Claimable for std::sync::Arc<C> {
    fn claim(&self) -> &Claim {
        (**self).as_ref()
    }
}

/// What [`Replica::apply`] did with one op.
///
/// ```
/// use std::sync::Arc;
/// use replicore::__protocol::{Applied, Claim, Replica, Stamp};
/// let mut r = Replica::new(2);
/// let t = Arc::new(Claim::new());
/// assert_eq!(r.apply(Stamp { epoch: 2, seq: 0 }, t.clone()), Applied::Inserted);
/// assert_eq!(r.apply(Stamp { epoch: 2, seq: 0 }, t.clone()), Applied::Duplicate);
/// assert_eq!(r.apply(Stamp { epoch: 1, seq: 1 }, t), Applied::Stale);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// New task recorded.
    Inserted,
    /// Stamp not above the last applied one: dropped.
    Duplicate,
    /// Stamp from an epoch older than the replica's: rejected.
    Stale,
}

/// Outcome of one [`Replica::sync`] batch.
///
/// ```
/// use std::sync::Arc;
/// use replicore::__protocol::{Claim, OpLog, Replica};
/// let log = OpLog::new(8);
/// log.append(0, Arc::new(Claim::new()));
/// log.append(0, Arc::new(Claim::new()));
/// let mut r = Replica::new(0);
/// let report = r.sync(&log, log.tail(), usize::MAX);
/// assert_eq!((report.inserted, report.duplicates, report.stale, report.gap), (2, 0, 0, false));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Ops inserted.
    pub inserted: usize,
    /// Ops dropped as duplicates.
    pub duplicates: usize,
    /// Ops rejected as stale.
    pub stale: usize,
    /// The batch hit a gap; the replica now needs a resync.
    pub gap: bool,
}

impl SyncReport {
    fn count(&mut self, applied: Applied) {
        match applied {
            Applied::Inserted => self.inserted += 1,
            Applied::Duplicate => self.duplicates += 1,
            Applied::Stale => self.stale += 1,
        }
    }
}

/// One neighbour's replica of one CPU's queue.
///
/// ```
/// use replicore::__protocol::{Applied, Replica, Stamp};
/// use std::sync::Arc;
/// struct Task(replicore::__protocol::Claim);
/// impl AsRef<replicore::__protocol::Claim> for Task {
///     fn as_ref(&self) -> &replicore::__protocol::Claim { &self.0 }
/// }
/// let mut r = Replica::new(1);
/// let t = Arc::new(Task(Default::default()));
/// assert_eq!(r.apply(Stamp { epoch: 1, seq: 5 }, t.clone()), Applied::Inserted);
/// assert_eq!(r.apply(Stamp { epoch: 1, seq: 5 }, t.clone()), Applied::Duplicate);
/// assert_eq!(r.apply(Stamp { epoch: 0, seq: 6 }, t.clone()), Applied::Stale);
/// assert_eq!(r.unclaimed().count(), 1);
/// ```
#[derive(Debug)]
pub struct Replica<T> {
    epoch: u32,
    /// Next log position to read.
    next: u64,
    last: Option<Stamp>,
    /// Recorded tasks by the log position of their push (positions increase with stamps).
    tasks: BTreeMap<u64, T>,
    needs_resync: bool,
    /// Unclaimed tasks of stale ops, to be re-enqueued by the replica's holder.
    redirected: Vec<T>,
    /// Positions a takeover stepped over while still unpublished; re-read on every sync.
    holes: Vec<u64>,
    /// When the replica last reached the log's tail (for time lag).
    caught_up_at: Option<Instant>,
}

impl<T: Claimable> Replica<T> {
    /// An empty replica following epoch `epoch`.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use replicore::__protocol::{Claim, Replica};
    /// let r: Replica<Arc<Claim>> = Replica::new(0);
    /// assert_eq!((r.epoch(), r.position(), r.unclaimed().count()), (0, 0, 0));
    /// ```
    pub fn new(epoch: u32) -> Self {
        Self {
            epoch,
            next: 0,
            last: None,
            tasks: BTreeMap::new(),
            needs_resync: false,
            redirected: Vec::new(),
            holes: Vec::new(),
            caught_up_at: None,
        }
    }

    /// The epoch this replica accepts.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use replicore::__protocol::{Claim, Replica, Stamp};
    /// let mut r = Replica::new(0);
    /// // An op from a newer epoch means someone else took over: the replica follows it.
    /// r.apply(Stamp { epoch: 1, seq: 0 }, Arc::new(Claim::new()));
    /// assert_eq!(r.epoch(), 1);
    /// ```
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// Whether a gap was seen: this replica alone no longer knows every task.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use replicore::__protocol::{Claim, OpLog, Replica};
    /// let log = OpLog::new(2);
    /// for _ in 0..3 {
    ///     log.append(0, Arc::new(Claim::new())); // the third overwrites position 0
    /// }
    /// let mut r = Replica::new(0);
    /// assert!(r.sync(&log, log.tail(), usize::MAX).gap);
    /// assert!(r.needs_resync(), "it missed position 0 and cannot know what it was");
    /// ```
    pub fn needs_resync(&self) -> bool {
        self.needs_resync
    }

    /// Next log position this replica will read.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use replicore::__protocol::{Claim, OpLog, Replica};
    /// let log = OpLog::new(8);
    /// for _ in 0..5 {
    ///     log.append(0, Arc::new(Claim::new()));
    /// }
    /// let mut r = Replica::new(0);
    /// r.sync(&log, log.tail(), 3); // a batch of at most 3
    /// assert_eq!(r.position(), 3);
    /// ```
    pub fn position(&self) -> u64 {
        self.next
    }

    /// Applies one op. An op below the replica's epoch is stale; one not above the last applied stamp is a duplicate.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use replicore::__protocol::{Applied, Claim, Replica, Stamp};
    /// let mut r = Replica::new(1);
    /// let late = Arc::new(Claim::new());
    /// // A fenced owner's late push: rejected from the view, but kept for redirection.
    /// assert_eq!(r.apply(Stamp { epoch: 0, seq: 9 }, late.clone()), Applied::Stale);
    /// assert_eq!(r.take_redirected().len(), 1);
    /// ```
    pub fn apply(&mut self, stamp: Stamp, task: T) -> Applied {
        if stamp.epoch < self.epoch {
            if !task.claim().is_claimed() {
                self.redirected.push(task);
            }
            return Applied::Stale;
        }
        if stamp.epoch > self.epoch {
            // A newer epoch's op means a takeover happened that this replica did not perform: it
            // follows the new epoch from here (its older tasks remain valid until claimed).
            self.epoch = stamp.epoch;
        }
        if self.last.is_some_and(|l| stamp <= l) {
            return Applied::Duplicate;
        }
        self.last = Some(stamp);
        self.tasks.insert(stamp.seq, task);
        Applied::Inserted
    }

    /// Reads and applies at most `max` ops from `log`, stopping at position `upto` (exclusive),
    /// at an unpublished op, or at a gap.
    ///
    /// Started tasks (by the owner, a thief or an adopter) are recorded only on their claim
    /// headers, so they are pruned by a scan of the claims, which runs only when the replica
    /// holds more than [`PRUNE_AT`] tasks. A claimed task left in the replica is harmless:
    /// adoption and [`Replica::unclaimed`] skip it.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use replicore::__protocol::{Claim, OpLog, Replica};
    /// let log = OpLog::new(8);
    /// let a = Arc::new(Claim::new());
    /// log.append(0, a.clone());
    /// log.append(0, Arc::new(Claim::new()));
    /// let mut r = Replica::new(0);
    /// assert_eq!(r.sync(&log, log.tail(), usize::MAX).inserted, 2);
    /// assert!(a.try_claim()); // a thief started `a`: recorded on its header
    /// r.sync(&log, log.tail(), usize::MAX); // skipped from now on
    /// assert_eq!(r.unclaimed().count(), 1);
    /// ```
    pub fn sync(&mut self, log: &OpLog<T>, upto: u64, max: usize) -> SyncReport {
        let mut report = SyncReport::default();
        let holes = std::mem::take(&mut self.holes);
        for pos in holes {
            match log.read(pos) {
                LogRead::Op(stamp, task) => report.count(self.apply_late(stamp, task)),
                LogRead::NotYet => self.holes.push(pos),
                LogRead::Gap => {
                    self.needs_resync = true;
                    report.gap = true;
                }
            }
        }
        // Positions more than a capacity below the tail are overwritten (or about to be): step
        // over them in one go instead of reading each as a gap, so a replica that fell far
        // behind costs one gap, not one per lost position, and resumes at the oldest entry
        // still readable.
        let oldest = log.tail().saturating_sub(log.capacity() as u64);
        if self.next < oldest && self.next < upto {
            self.needs_resync = true;
            report.gap = true;
            self.next = oldest.min(upto);
        }
        let mut n = 0;
        while self.next < upto && n < max {
            match log.read(self.next) {
                LogRead::Op(stamp, task) => {
                    report.count(self.apply(stamp, task));
                    self.next += 1;
                    n += 1;
                }
                LogRead::NotYet => break,
                LogRead::Gap => {
                    self.needs_resync = true;
                    report.gap = true;
                    self.next += 1;
                    n += 1;
                }
            }
        }
        // After the batch, not before: most tasks of a batch were started by the time it is
        // applied, and their headers are still in this CPU's cache from the clone just made.
        if self.tasks.len() > PRUNE_AT {
            self.tasks.retain(|_, t| !t.claim().is_claimed());
        }
        if self.next >= log.tail() {
            self.caught_up_at = Some(Instant::now());
        }
        report
    }

    /// Steps over an unpublished position below the fence point (see `take_over`), which cannot
    /// wait for it: its writer crashed mid-append (the task was never accepted) or is stalled
    /// there. The position is re-read on every later sync; when it appears, its task is applied
    /// (or, being stale by then, redirected), so a stalled writer's push is never lost.
    pub(crate) fn defer_unpublished(&mut self) {
        self.holes.push(self.next);
        self.next += 1;
    }

    /// Applies an op that arrived after later positions were applied (a deferred hole): only the
    /// epoch rule applies, since its stamp is below `last` by construction.
    fn apply_late(&mut self, stamp: Stamp, task: T) -> Applied {
        if stamp.epoch < self.epoch {
            return self.apply(stamp, task);
        }
        if self.tasks.contains_key(&stamp.seq) {
            return Applied::Duplicate;
        }
        self.tasks.insert(stamp.seq, task);
        Applied::Inserted
    }

    /// Lag in ops behind `log`'s tail, and time since this replica was last caught up.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use replicore::__protocol::{Claim, OpLog, Replica};
    /// let log = OpLog::new(8);
    /// let mut r = Replica::new(0);
    /// log.append(0, Arc::new(Claim::new()));
    /// assert_eq!(r.lag(&log).0, 1);
    /// r.sync(&log, log.tail(), usize::MAX);
    /// assert_eq!(r.lag(&log), (0, Some(Duration::ZERO)));
    /// ```
    pub fn lag(&self, log: &OpLog<T>) -> (u64, Option<Duration>) {
        let ops = log.tail().saturating_sub(self.next) + self.holes.len() as u64;
        let time = if ops == 0 {
            Some(Duration::ZERO)
        } else {
            self.caught_up_at.map(|t| t.elapsed())
        };
        (ops, time)
    }

    /// Takes the tasks of stale ops seen so far (a fenced owner's late pushes). The holder must
    /// re-enqueue them; copies may also be in the old deque, and the claim picks one.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use replicore::__protocol::{Claim, Replica, Stamp};
    /// let mut r = Replica::new(1);
    /// r.apply(Stamp { epoch: 0, seq: 4 }, Arc::new(Claim::new()));
    /// let to_requeue = r.take_redirected();
    /// assert_eq!(to_requeue.len(), 1);
    /// assert!(r.take_redirected().is_empty(), "handed out once");
    /// ```
    pub fn take_redirected(&mut self) -> Vec<T> {
        std::mem::take(&mut self.redirected)
    }

    /// Tasks recorded, claimed or not (claimed ones are pruned lazily; see [`Replica::sync`]).
    ///
    /// ```
    /// use replicore::__protocol::{Claim, Replica, Stamp};
    /// use std::sync::Arc;
    /// let mut r = Replica::new(0);
    /// let t = Arc::new(Claim::new());
    /// r.apply(Stamp { epoch: 0, seq: 0 }, t.clone());
    /// assert!(t.try_claim()); // a thief started it: recorded on its header only
    /// assert_eq!((r.len(), r.unclaimed().count()), (1, 0));
    /// ```
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Whether the replica records no task.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Tasks recorded and not yet seen claimed.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use replicore::__protocol::{Claim, Replica, Stamp};
    /// let mut r = Replica::new(0);
    /// let (a, b) = (Arc::new(Claim::new()), Arc::new(Claim::new()));
    /// r.apply(Stamp { epoch: 0, seq: 0 }, a.clone());
    /// r.apply(Stamp { epoch: 0, seq: 1 }, b.clone());
    /// assert!(a.try_claim());
    /// assert_eq!(r.unclaimed().count(), 1);
    /// ```
    pub fn unclaimed(&self) -> impl Iterator<Item = &T> {
        self.tasks.values().filter(|t| !t.claim().is_claimed())
    }

    /// Starts following `epoch` (after a takeover): older ops are stale from now on. Returns
    /// copies of every unclaimed task of the old epoch, **keeping** them (and the redirected
    /// ones, still owed to the holder's next `take_redirected`): if the successor that adopted
    /// them dies before handing them on, a later successor adopts them again from here. They
    /// leave the replica when they are seen claimed.
    pub(crate) fn advance(&mut self, epoch: u32) -> Vec<T> {
        self.epoch = self.epoch.max(epoch);
        self.needs_resync = false;
        self.redirected.retain(|t| !t.claim().is_claimed());
        self.redirected
            .iter()
            .chain(self.tasks.values())
            .filter(|t| !t.claim().is_claimed())
            .cloned()
            .collect()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;

    type Task = Arc<Claim>;

    #[test]
    fn sync_applies_in_order_drops_duplicates_and_rejects_stale() {
        let log: OpLog<Task> = OpLog::new(8);
        let tasks: Vec<Task> = (0..4).map(|_| Arc::new(Claim::new())).collect();
        log.append(1, tasks[0].clone());
        log.append(0, tasks[1].clone()); // a fenced owner's late push
        log.append(1, tasks[2].clone());
        let mut r = Replica::new(1);
        let rep = r.sync(&log, log.tail(), 16);
        assert_eq!(
            (rep.inserted, rep.stale, rep.duplicates, rep.gap),
            (2, 1, 0, false)
        );
        assert_eq!(
            r.apply(Stamp { epoch: 1, seq: 2 }, tasks[2].clone()),
            Applied::Duplicate
        );
        assert!(tasks[0].try_claim());
        log.append(1, tasks[3].clone());
        r.sync(&log, log.tail(), 16);
        let left: Vec<_> = r.unclaimed().cloned().collect();
        assert_eq!(left.len(), 2, "claimed task pruned, new one added");
        assert!(left.iter().any(|t| Arc::ptr_eq(t, &tasks[3])));
        assert_eq!(r.lag(&log).0, 0);
    }

    #[test]
    fn falling_behind_the_log_marks_a_gap() {
        let log: OpLog<Task> = OpLog::new(2);
        let mut r = Replica::new(0);
        for _ in 0..5 {
            log.append(0, Arc::new(Claim::new()));
        }
        assert_eq!(r.lag(&log).0, 5);
        let rep = r.sync(&log, log.tail(), 100);
        assert!(rep.gap && r.needs_resync());
        assert_eq!(r.position(), 5, "one sync steps over every lost position");
        assert_eq!(
            rep.inserted, 2,
            "the last `capacity` ops are still readable"
        );
    }

    #[test]
    fn batches_are_bounded() {
        let log: OpLog<Task> = OpLog::new(8);
        for _ in 0..6 {
            log.append(0, Arc::new(Claim::new()));
        }
        let mut r = Replica::new(0);
        assert_eq!(r.sync(&log, log.tail(), 4).inserted, 4);
        assert_eq!(r.lag(&log).0, 2);
        assert_eq!(r.sync(&log, log.tail(), 4).inserted, 2);
    }
}
