//! The per-CPU shared state and the owner's side of the protocol.
//!
//! One [`CpuState`] per topology CPU (index `Topology::cpu_index`). Everything in it is shared
//! with replicas, thieves and successors; the owner's private state is its [`OwnerToken`] and its
//! crossbeam `Worker`, which never leaves its thread (so "two owners of one deque" is impossible by
//! construction: a replacement gets a fresh deque, and the old one is drained only through its
//! `Stealer`).

use std::sync::Arc as StdArc;

use super::lease::{Lease, OwnerToken};
use super::log::OpLog;
use super::replica::Claimable;
use super::stats::ReplicationStats;
use super::tagged_cell::{Replaced, TaggedCell};
use crate::fault::{FaultPoint, point_here};
use crate::sync::Mutex;

/// The owner was fenced: it must stop acting as owner and retire. The task it tried to act on is
/// handed back, unclaimed, to be redirected (the pool queues it on its node's injector).
///
/// ```
/// use std::sync::Arc;
/// use replicore::__protocol::{Claim, CpuState, Fenced};
/// let core = CpuState::new(0, 8, Default::default());
/// let me = core.lease().owner_token();
/// core.lease().try_fence(me.epoch(), 1)?; // a successor took over
/// let Err(Fenced(task)) = core.publish_push(&me, Arc::new(Claim::new())) else {
///     panic!("a fenced owner cannot push");
/// };
/// assert!(!task.is_claimed(), "the task comes back unclaimed, to be redirected");
/// # Ok::<(), replicore::__protocol::FenceError>(())
/// ```
#[derive(Debug)]
pub struct Fenced<T>(pub T);

impl<T> std::fmt::Display for Fenced<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("this worker's lease was fenced by a successor; redirect the task and retire")
    }
}

impl<T: std::fmt::Debug> std::error::Error for Fenced<T> {}

/// What [`CpuState::start`] decided.
///
/// ```
/// use std::sync::Arc;
/// use replicore::__protocol::{Claim, CpuState, Start};
/// let core = CpuState::new(0, 8, Default::default());
/// let me = core.lease().owner_token();
/// let t = core.publish_push(&me, Arc::new(Claim::new())).unwrap();
/// assert_eq!(core.start(&me, &t), Start::Run);
/// assert_eq!(core.start(&me, &t), Start::AlreadyClaimed);
/// core.lease().try_fence(me.epoch(), 1).unwrap();
/// assert_eq!(core.start(&me, &Arc::new(Claim::new())), Start::Fenced);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// This owner won the claim: run the task now.
    Run,
    /// Someone else (a thief, or a successor's adoption) already claimed it: drop the handle.
    AlreadyClaimed,
    /// The owner is fenced: do not run it; redirect the (unclaimed) task and retire.
    Fenced,
}

/// Shared replication state of one CPU: lease, op log and in-hand slot.
///
/// ```
/// use std::sync::Arc;
/// use replicore::__protocol::{Claim, CpuState, Start};
/// #[derive(Debug)]
/// struct Task(Claim);
/// impl AsRef<Claim> for Task { fn as_ref(&self) -> &Claim { &self.0 } }
///
/// let core = CpuState::new(0, 64, Default::default());
/// let mut me = core.lease().owner_token();
/// me.renew(core.lease());
/// let task = core.publish_push(&me, Arc::new(Task(Claim::new()))).unwrap();
/// // ... the pool pushes `task` into its deque, later pops it:
/// core.take_in_hand(&me, &task);
/// assert_eq!(core.start(&me, &task), Start::Run);
/// ```
#[derive(Debug)]
pub struct CpuState<T> {
    lease: Lease,
    log: OpLog<T>,
    in_hand: TaggedCell<T>,
    /// Who may still be running a task the in-hand slot held (see
    /// [`take_in_hand_owned`](Self::take_in_hand_owned)).
    in_hand_owners: Mutex<InHandOwners<T>>,
    stats: StdArc<ReplicationStats>,
}

/// The epochs of this CPU whose owner threads have not left, and the in-hand tasks a newer
/// epoch displaced from the slot while their owner was still there. Touched only when an owner
/// starts or leaves and when a new epoch's first record displaces an older one: never on the
/// hot path.
#[derive(Debug)]
struct InHandOwners<T> {
    live: Vec<u32>,
    parked: Vec<(u32, T)>,
}

impl<T: Claimable> CpuState<T> {
    /// State for a CPU first owned by worker `holder`, with a log of `log_capacity` ops.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use replicore::__protocol::{Claim, CpuState};
    /// let core: CpuState<Arc<Claim>> = CpuState::new(3, 64, Default::default());
    /// assert_eq!(core.lease().holder(), 3);
    /// assert_eq!(core.log().capacity(), 64);
    /// ```
    pub fn new(holder: u32, log_capacity: usize, stats: StdArc<ReplicationStats>) -> Self {
        Self {
            lease: Lease::new(holder),
            log: OpLog::new(log_capacity),
            in_hand: TaggedCell::new(),
            in_hand_owners: Mutex::new(InHandOwners {
                live: Vec::new(),
                parked: Vec::new(),
            }),
            stats,
        }
    }

    /// The lease.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use replicore::__protocol::{Claim, CpuState};
    /// let core: CpuState<Arc<Claim>> = CpuState::new(0, 8, Default::default());
    /// assert_eq!(core.lease().epoch(), 0);
    /// ```
    pub fn lease(&self) -> &Lease {
        &self.lease
    }

    /// The op log replicas read.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use replicore::__protocol::{Claim, CpuState};
    /// let core = CpuState::new(0, 8, Default::default());
    /// let me = core.lease().owner_token();
    /// core.publish_push(&me, Arc::new(Claim::new())).unwrap();
    /// assert_eq!(core.log().tail(), 1);
    /// ```
    pub fn log(&self) -> &OpLog<T> {
        &self.log
    }

    /// The stats sink.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use replicore::__protocol::{Claim, CpuState};
    /// let core = CpuState::new(0, 8, Default::default());
    /// let me = core.lease().owner_token();
    /// core.lease().try_fence(0, 1).unwrap();
    /// assert!(core.publish_push(&me, Arc::new(Claim::new())).is_err());
    /// assert_eq!(core.stats().snapshot().fenced_rejections, 1);
    /// ```
    pub fn stats(&self) -> &ReplicationStats {
        &self.stats
    }

    /// Publishes a push **before** the pool pushes `task` into its deque, so that anything a
    /// pop or steal can return is already in the log. Returns the task to push, or
    /// [`Fenced`] with the task to redirect.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use replicore::__protocol::{Claim, CpuState, LogRead};
    /// let core = CpuState::new(0, 8, Default::default());
    /// let me = core.lease().owner_token();
    /// let task = core.publish_push(&me, Arc::new(Claim::new())).unwrap();
    /// // Logged before the deque ever sees it, so replicas know about it.
    /// assert!(matches!(core.log().read(0), LogRead::Op(_, t) if Arc::ptr_eq(&t, &task)));
    /// ```
    pub fn publish_push(&self, me: &OwnerToken, task: T) -> Result<T, Fenced<T>> {
        self.publish_push_at(me, task).map(|(task, _)| task)
    }

    /// [`publish_push`](Self::publish_push), also returning the log position the push was
    /// written at (`None`: a pinned reader made the write skip, so the log does not hold it).
    /// An owner that pops this task back before it pushes anything else may pass the position
    /// to [`take_just_pushed`](Self::take_just_pushed).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use replicore::__protocol::{Claim, CpuState};
    /// let core = CpuState::new(0, 8, Default::default());
    /// let me = core.lease().owner_token();
    /// core.publish_push(&me, Arc::new(Claim::new())).unwrap();
    /// let (_, at) = core.publish_push_at(&me, Arc::new(Claim::new())).unwrap();
    /// assert_eq!(at, Some(1));
    /// ```
    pub fn publish_push_at(&self, me: &OwnerToken, task: T) -> Result<(T, Option<u64>), Fenced<T>> {
        if !self.lease.is_current(me.epoch()) {
            self.stats.record_fenced(1);
            return Err(Fenced(task));
        }
        let (stamp, written) = self.log.append_written(me.epoch(), task.clone());
        point_here(FaultPoint::MidPush, me.holder() as usize);
        Ok((task, written.then_some(stamp.seq)))
    }

    /// Records the task the owner just popped and is about to claim. Replicas already hold it
    /// (they keep tasks until claimed); this slot is what a successor reads when its replica has
    /// a gap. A fenced owner does not touch the slot.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use replicore::__protocol::{Claim, CpuState};
    /// let core = CpuState::new(0, 8, Default::default());
    /// let me = core.lease().owner_token();
    /// let task = core.publish_push(&me, Arc::new(Claim::new())).unwrap();
    /// core.take_in_hand(&me, &task);
    /// assert!(core.in_hand().is_some_and(|t| Arc::ptr_eq(&t, &task)));
    /// ```
    pub fn take_in_hand(&self, me: &OwnerToken, task: &T) {
        drop(self.take_in_hand_owned(me, task.clone()));
    }

    /// [`take_in_hand`](Self::take_in_hand) that moves `task` into the slot instead of cloning
    /// it. Returns `None` if the slot took it, or the task back if nothing was recorded.
    ///
    /// The owner then runs the task through a pointer: the slot keeps it alive until this
    /// owner's next record, or, if a newer epoch's owner records over it first, until this
    /// owner calls [`owner_leaves`](Self::owner_leaves) (the newer owner parks it rather than
    /// drop it, since a fenced owner may be between this record and its claim). That saves the
    /// clone's reference count and the runner's release, two of the locked instructions a
    /// popped task costs. An owner that uses this must have called
    /// [`owner_enters`](Self::owner_enters) with its epoch first.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use replicore::__protocol::{Claim, CpuState, Start};
    /// let core = CpuState::new(0, 8, Default::default());
    /// let me = core.lease().owner_token();
    /// core.owner_enters(me.epoch());
    /// let task = core.publish_push(&me, Arc::new(Claim::new())).unwrap();
    /// let claim: *const Claim = &*task;
    /// assert!(core.take_in_hand_owned(&me, task).is_none(), "the slot holds it now");
    /// // SAFETY: the slot keeps the task alive until this owner records another one.
    /// assert_eq!(core.start_claim(&me, unsafe { &*claim }), Start::Run);
    /// core.owner_leaves(me.epoch());
    /// ```
    pub fn take_in_hand_owned(&self, me: &OwnerToken, task: T) -> Option<T> {
        let kept = if self.lease.is_current(me.epoch()) {
            // A refused write (a successor pinned on the slot right now, or already recording
            // over it) is harmless: that successor has fenced us, so `start` will refuse and
            // the task is redirected.
            let tag = (u64::from(me.epoch()) << 32) | 1;
            match self.in_hand.replace(tag, task) {
                Replaced::Same(old) => {
                    drop(old);
                    None
                }
                Replaced::Older(old_tag, old) => {
                    self.displaced((old_tag >> 32) as u32, old);
                    None
                }
                Replaced::Refused(task) => Some(task),
            }
        } else {
            Some(task)
        };
        point_here(FaultPoint::AfterTakeInHand, me.holder() as usize);
        kept
    }

    /// A task an older epoch's owner recorded was displaced from the slot: kept until that
    /// owner leaves, if it has not.
    #[cold]
    fn displaced(&self, epoch: u32, task: T) {
        let mut owners = self.in_hand_owners.lock();
        if owners.live.contains(&epoch) {
            owners.parked.push((epoch, task));
        } else {
            drop(owners);
            drop(task);
        }
    }

    /// The owner of `epoch` starts: from now on a task it moved into the slot
    /// ([`take_in_hand_owned`](Self::take_in_hand_owned)) outlives a newer owner's record until
    /// [`owner_leaves`](Self::owner_leaves). An owner that crashes never leaves: its entry and
    /// at most one task stay (its thread, parked for good, is lost anyway).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use replicore::__protocol::{Claim, CpuState};
    /// let core: CpuState<Arc<Claim>> = CpuState::new(0, 8, Default::default());
    /// core.owner_enters(0);
    /// core.owner_leaves(0);
    /// ```
    pub fn owner_enters(&self, epoch: u32) {
        self.in_hand_owners.lock().live.push(epoch);
    }

    /// The owner of `epoch` left (it runs no task of this CPU any more): what the slot held for
    /// it and a newer owner displaced is dropped now, and a later displacement is dropped at
    /// once. See [`owner_enters`](Self::owner_enters).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use replicore::__protocol::{Claim, CpuState};
    /// let core = CpuState::new(0, 8, Default::default());
    /// let old = core.lease().owner_token();
    /// core.owner_enters(old.epoch());
    /// let task = core.publish_push(&old, Arc::new(Claim::new())).unwrap();
    /// assert!(core.take_in_hand_owned(&old, task.clone()).is_none());
    /// core.lease().try_fence(old.epoch(), 1).unwrap();
    /// let new = core.lease().owner_token();
    /// let next = core.publish_push(&new, Arc::new(Claim::new())).unwrap();
    /// assert!(core.take_in_hand_owned(&new, next).is_none());
    /// assert_eq!(Arc::strong_count(&task), 3, "parked: the old owner may still use it");
    /// core.owner_leaves(old.epoch());
    /// assert_eq!(Arc::strong_count(&task), 2, "the log's copy and ours");
    /// ```
    pub fn owner_leaves(&self, epoch: u32) {
        let released: Vec<T> = {
            let mut owners = self.in_hand_owners.lock();
            owners.live.retain(|&e| e != epoch);
            let (mine, others) = std::mem::take(&mut owners.parked)
                .into_iter()
                .partition(|(e, _)| *e == epoch);
            owners.parked = others;
            mine.into_iter().map(|(_, t)| t).collect()
        };
        drop(released);
    }

    /// [`take_in_hand`](Self::take_in_hand) for the task the owner pushed last, which
    /// [`publish_push_at`](Self::publish_push_at) wrote at `seq`: it records nothing while the
    /// log holds that position at most half a capacity below its tail.
    ///
    /// The slot only matters when the successor's replica has a gap over the task. A gap steps
    /// over positions more than a capacity below the tail, and the takeover then reads every
    /// position the log still holds, so a successor finds this task there: only the owner
    /// appends to its log, and it appends nothing between this pop and its claim. Half a
    /// capacity leaves room for the pushes that can land meanwhile all the same: each fenced
    /// former owner that stalled between its lease check and its append has one (a lost task
    /// would take 512 of them at the default capacity, and a crash in the pop window).
    ///
    /// This is the path of a task spawned and then run at once by the same worker; skipping the
    /// record saves it a reference count, a slot write and the release of the slot's previous
    /// task. The caller must know that `task` is the one pushed at `seq` (the pool compares the
    /// handle with the one it pushed last).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use replicore::__protocol::{Claim, CpuState};
    /// let core = CpuState::new(0, 4, Default::default());
    /// let me = core.lease().owner_token();
    /// let (task, at) = core.publish_push_at(&me, Arc::new(Claim::new())).unwrap();
    /// core.take_just_pushed(&me, &task, at.unwrap());
    /// assert!(core.in_hand().is_none(), "the log holds it: nothing to record");
    /// ```
    pub fn take_just_pushed(&self, me: &OwnerToken, task: &T, seq: u64) {
        // A position at or above the tail was never handed out: record, as for any other pop.
        let below_tail = self.log.tail().checked_sub(seq).filter(|&d| d > 0);
        if below_tail.is_some_and(|d| d <= self.log.capacity() as u64 / 2) {
            point_here(FaultPoint::AfterTakeInHand, me.holder() as usize);
        } else {
            self.take_in_hand(me, task);
        }
    }

    /// The owner's start: fencing check, then the task's single [`Claim`](super::Claim).
    ///
    /// The check is a `SeqCst` load and the fence a `SeqCst` CAS, so a claim either follows a
    /// check that preceded the fence, or the owner sees the fence and refuses.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use replicore::__protocol::{Claim, CpuState, Start};
    /// let core = CpuState::new(0, 8, Default::default());
    /// let me = core.lease().owner_token();
    /// let task = core.publish_push(&me, Arc::new(Claim::new())).unwrap();
    /// assert!(task.try_claim(), "a thief claimed it first");
    /// assert_eq!(core.start(&me, &task), Start::AlreadyClaimed);
    /// ```
    pub fn start(&self, me: &OwnerToken, task: &T) -> Start {
        self.start_claim(me, task.claim())
    }

    /// [`start`](Self::start) given the task's claim, for an owner that moved the task into
    /// the slot ([`take_in_hand_owned`](Self::take_in_hand_owned)) and holds only a pointer.
    ///
    /// ```
    /// use replicore::__protocol::{Claim, CpuState, Start};
    /// let core: CpuState<std::sync::Arc<Claim>> = CpuState::new(0, 8, Default::default());
    /// let me = core.lease().owner_token();
    /// let claim = Claim::new();
    /// assert_eq!(core.start_claim(&me, &claim), Start::Run);
    /// assert_eq!(core.start_claim(&me, &claim), Start::AlreadyClaimed);
    /// ```
    pub fn start_claim(&self, me: &OwnerToken, claim: &super::Claim) -> Start {
        point_here(FaultPoint::BeforeClaim, me.holder() as usize);
        if !self.lease.is_current(me.epoch()) {
            self.stats.record_fenced(1);
            return Start::Fenced;
        }
        // The claim records who took the task, on its header and nowhere else, for the owner as
        // for a thief (which must not write the victim's single-writer log): replicas find
        // started tasks by their claim scan. Not logging the owner's starts keeps a task to one
        // log position, so the log wraps half as often under a burst of spawns.
        let won = claim.try_claim_as(me.holder(), me.epoch());
        point_here(FaultPoint::AfterClaim, me.holder() as usize);
        if won {
            Start::Run
        } else {
            Start::AlreadyClaimed
        }
    }

    /// The in-hand task, if any: read by a successor after the fence, or by the pool's monitor
    /// when it re-offers a stalled CPU's tasks at the spare-thread cap (a copy; the claim picks
    /// which copy runs).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use replicore::__protocol::{Claim, CpuState};
    /// let core = CpuState::new(0, 8, Default::default());
    /// let me = core.lease().owner_token();
    /// let t = core.publish_push(&me, Arc::new(Claim::new())).unwrap();
    /// assert!(core.in_hand().is_none());
    /// core.take_in_hand(&me, &t);
    /// assert!(Arc::ptr_eq(&core.in_hand().unwrap(), &t));
    /// ```
    pub fn in_hand(&self) -> Option<T> {
        self.in_hand.read_current().map(|(_, t)| t)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::replication::Replica;
    use crate::replication::claim::Claim;
    use std::sync::Arc;

    /// A logged task costs its owner one log position, its push: the start is recorded on the
    /// claim header, where replicas find it by their claim scan. A log that wraps half as often
    /// keeps a lagging replica gap-free through twice the burst.
    #[test]
    fn an_owned_task_takes_one_log_position_and_leaves_replicas_by_its_claim() {
        let cpu: CpuState<Arc<Claim>> = CpuState::new(0, 1024, Default::default());
        let me = cpu.lease().owner_token();
        let mut replica = Replica::new(0);
        let mut tasks = Vec::new();
        for _ in 0..200 {
            let task = cpu.publish_push(&me, Arc::new(Claim::new())).unwrap();
            tasks.push(task.clone());
            if tasks.len() % 2 == 0 {
                cpu.take_in_hand(&me, &task);
                assert_eq!(cpu.start(&me, &task), Start::Run);
            }
        }
        assert_eq!(
            cpu.log().tail(),
            200,
            "one position per task, none per start"
        );
        let report = replica.sync(cpu.log(), cpu.log().tail(), usize::MAX);
        assert_eq!((report.inserted, report.gap), (200, false));
        assert_eq!(replica.unclaimed().count(), 100);
        assert_eq!(
            replica.len(),
            100,
            "the started half went at the batch's claim scan"
        );
    }

    /// The owner skips the in-hand record for the task it just pushed exactly while the log
    /// holds that push at most half a capacity below its tail; any other pop is recorded.
    #[test]
    fn a_just_pushed_task_is_recorded_only_if_the_log_may_lose_it() {
        let cpu: CpuState<Arc<Claim>> = CpuState::new(0, 8, Default::default());
        let me = cpu.lease().owner_token();
        let (first, at) = cpu.publish_push_at(&me, Arc::new(Claim::new())).unwrap();
        assert_eq!(at, Some(0));
        cpu.take_just_pushed(&me, &first, 0);
        assert!(cpu.in_hand().is_none());
        // Three more pushes (by fenced former owners, say) before the pop.
        for _ in 0..3 {
            cpu.publish_push(&me, Arc::new(Claim::new())).unwrap();
        }
        cpu.take_just_pushed(&me, &first, 0);
        assert!(
            cpu.in_hand().is_none(),
            "4 below the tail: within half of 8"
        );
        cpu.publish_push(&me, Arc::new(Claim::new())).unwrap();
        cpu.take_just_pushed(&me, &first, 0);
        assert!(cpu.in_hand().is_some_and(|h| Arc::ptr_eq(&h, &first)));
        let other = Arc::new(Claim::new());
        cpu.take_in_hand(&me, &other);
        assert!(cpu.in_hand().is_some_and(|h| Arc::ptr_eq(&h, &other)));
        // A position never handed out is no proof the log holds anything.
        let unlogged = Arc::new(Claim::new());
        cpu.take_just_pushed(&me, &unlogged, cpu.log().tail());
        assert!(cpu.in_hand().is_some_and(|h| Arc::ptr_eq(&h, &unlogged)));
    }

    /// A push whose write a pinned reader made skip has no position to hand on.
    #[test]
    fn a_skipped_write_has_no_position() {
        let cpu: CpuState<Arc<Claim>> = CpuState::new(0, 4, Default::default());
        let me = cpu.lease().owner_token();
        for _ in 0..4 {
            cpu.publish_push(&me, Arc::new(Claim::new())).unwrap();
        }
        // A stalled reader pinned on slot 0, which position 4 overwrites.
        cpu.log().pin_slot_for_test(0);
        let (_, at) = cpu.publish_push_at(&me, Arc::new(Claim::new())).unwrap();
        assert_eq!(at, None);
    }

    /// A crash between pop and claim of an unrecorded task, with the successor's replica far
    /// behind (a gap): the task is adopted from the positions the log still holds.
    #[test]
    fn an_unrecorded_pop_is_adopted_from_the_retained_window_across_a_gap() {
        use crate::replication::takeover::{Outcome, Takeover, take_over};
        let cpu: CpuState<Arc<Claim>> = CpuState::new(0, 16, Default::default());
        let me = cpu.lease().owner_token();
        for _ in 0..99 {
            cpu.publish_push(&me, Arc::new(Claim::new())).unwrap();
        }
        let (popped, at) = cpu.publish_push_at(&me, Arc::new(Claim::new())).unwrap();
        cpu.take_just_pushed(&me, &popped, at.unwrap());
        assert!(cpu.in_hand().is_none());
        // The owner crashes here. Its only replica never applied anything.
        let replicas = [crate::sync::Mutex::new(Replica::new(0))];
        let hooks = crate::replication::Recorder::new(1);
        let t = Takeover {
            core: &cpu,
            replicas: &replicas,
            epoch: 0,
            successor: 1,
            fault_id: 1,
            patience: std::time::Duration::ZERO,
        };
        assert_eq!(take_over(t, &hooks), Outcome::Restored);
        let (adopted, _) = hooks.take().restored.pop().unwrap();
        assert_eq!(
            cpu.stats().snapshot().replica_gaps,
            1,
            "the replica had a gap"
        );
        assert!(adopted.iter().any(|t| Arc::ptr_eq(t, &popped)));
        assert_eq!(adopted.len(), 16, "the retained window, nothing older");
    }

    /// The owner's own next record drops the task it moved in before (its run is over); a
    /// record of an older epoch that left is dropped at once; a late record of a fenced owner
    /// never lands over its successor's, and hands its task back.
    #[test]
    fn moved_in_hand_tasks_are_released_by_the_next_record_or_when_their_owner_leaves() {
        let cpu: CpuState<Arc<Claim>> = CpuState::new(0, 1, Default::default());
        let old = cpu.lease().owner_token();
        cpu.owner_enters(old.epoch());
        let a = cpu.publish_push(&old, Arc::new(Claim::new())).unwrap();
        let b = cpu.publish_push(&old, Arc::new(Claim::new())).unwrap();
        assert_eq!(Arc::strong_count(&a), 1, "the log (capacity 1) moved on");
        let a_seen = Arc::downgrade(&a);
        assert!(cpu.take_in_hand_owned(&old, a).is_none());
        assert!(a_seen.upgrade().is_some(), "the slot keeps it");
        assert!(cpu.take_in_hand_owned(&old, b.clone()).is_none());
        assert!(
            a_seen.upgrade().is_none(),
            "the owner's next record released it"
        );

        // A successor records over `b`: parked while the old owner may still be using it.
        cpu.lease().try_fence(old.epoch(), 1).unwrap();
        let new = cpu.lease().owner_token();
        cpu.owner_enters(new.epoch());
        let c = cpu.publish_push(&new, Arc::new(Claim::new())).unwrap();
        assert_eq!(Arc::strong_count(&b), 2, "ours and the slot's");
        assert!(cpu.take_in_hand_owned(&new, c.clone()).is_none());
        assert_eq!(Arc::strong_count(&b), 2, "parked");
        // The old owner, late, cannot record over its successor: its task comes back.
        let late = cpu.publish_push(&new, Arc::new(Claim::new())).unwrap();
        let back = cpu.take_in_hand_owned(&old, late.clone());
        assert!(back.is_some_and(|t| Arc::ptr_eq(&t, &late)));
        assert!(cpu.in_hand().is_some_and(|t| Arc::ptr_eq(&t, &c)));
        cpu.owner_leaves(old.epoch());
        assert_eq!(Arc::strong_count(&b), 1, "freed when its owner left");

        // The successor leaves without being displaced; the next owner drops its task at once.
        cpu.owner_leaves(new.epoch());
        cpu.lease().try_fence(new.epoch(), 2).unwrap();
        let next = cpu.lease().owner_token();
        let d = cpu.publish_push(&next, Arc::new(Claim::new())).unwrap();
        assert_eq!(Arc::strong_count(&c), 2);
        assert!(cpu.take_in_hand_owned(&next, d).is_none());
        assert_eq!(
            Arc::strong_count(&c),
            1,
            "its owner had left: dropped, not parked"
        );
    }

    /// A pinned reader makes the owned record refuse, as the cloning one skips: the task comes
    /// back and nothing is recorded.
    #[test]
    fn an_owned_record_refused_by_a_pinned_reader_hands_the_task_back() {
        let cpu: CpuState<Arc<Claim>> = CpuState::new(0, 4, Default::default());
        let me = cpu.lease().owner_token();
        let t = cpu.publish_push(&me, Arc::new(Claim::new())).unwrap();
        cpu.in_hand
            .state
            .fetch_add(1, crate::sync::atomic::Ordering::SeqCst);
        let back = cpu.take_in_hand_owned(&me, t.clone());
        assert!(back.is_some_and(|b| Arc::ptr_eq(&b, &t)));
        cpu.in_hand
            .state
            .fetch_sub(1, crate::sync::atomic::Ordering::SeqCst);
        assert!(cpu.in_hand().is_none());
    }
}
