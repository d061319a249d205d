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
use super::tagged_cell::TaggedCell;
use crate::fault::{FaultPoint, point_here};

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
    stats: StdArc<ReplicationStats>,
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
        if !self.lease.is_current(me.epoch()) {
            self.stats.record_fenced(1);
            return Err(Fenced(task));
        }
        self.log.append(me.epoch(), task.clone());
        point_here(FaultPoint::MidPush, me.holder() as usize);
        Ok(task)
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
        if self.lease.is_current(me.epoch()) {
            // A skipped write (a successor pinned on the slot right now) is harmless: that
            // successor has fenced us, so `start` will refuse and the task is redirected.
            let tag = (u64::from(me.epoch()) << 32) | 1;
            self.in_hand.write(tag, Some(task.clone()));
        }
        point_here(FaultPoint::AfterTakeInHand, me.holder() as usize);
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
        point_here(FaultPoint::BeforeClaim, me.holder() as usize);
        if !self.lease.is_current(me.epoch()) {
            self.stats.record_fenced(1);
            return Start::Fenced;
        }
        // The claim records who took the task, on its header and nowhere else, for the owner as
        // for a thief (which must not write the victim's single-writer log): replicas find
        // started tasks by their claim scan. Not logging the owner's starts keeps a task to one
        // log position, so the log wraps half as often under a burst of spawns.
        let won = task.claim().try_claim_as(me.holder(), me.epoch());
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
}
