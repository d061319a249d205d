//! Takeover: fence, bring the replica up to the fence point, adopt the unclaimed tasks.
//!
//! Adoption hands the tasks back **unclaimed**: the successor (or the replacement worker) pushes
//! them into its own fresh deque and starts each through the ordinary claim. Copies of the same
//! tasks may still sit in the old deque, to be drained by stealing; whoever claims first runs the
//! task and every other copy is dropped. A single claim path keeps G2 trivially true.

use super::core::CoreState;
use super::lease::{FenceError, OwnerToken};
use super::log::LogRead;
use super::replica::{Claimable, Replica};
use crate::fault::{FaultPoint, point};

/// The result of a successful [`take_over`].
///
/// ```
/// use std::sync::Arc;
/// use replicore::replication::{take_over, Claim, CoreState, Replica};
/// let core = CoreState::new(0, 64, Default::default());
/// let me = core.lease().owner_token();
/// for _ in 0..3 {
///     core.publish_push(&me, Arc::new(Claim::new())).unwrap();
/// }
/// let mut replica = Replica::new(0);
/// let adoption = take_over(&core, &mut replica, 0, 1, || None).unwrap();
/// assert_eq!((adoption.new_epoch, adoption.tasks.len()), (1, 3));
/// assert_eq!((adoption.from_replica, adoption.used_fallback), (3, false));
/// ```
#[derive(Debug)]
pub struct Adoption<T> {
    /// The epoch the replacement owner runs under.
    pub new_epoch: u32,
    /// Unclaimed tasks of the old epoch; push them into the replacement's fresh deque.
    pub tasks: Vec<T>,
    /// How many came from the replica.
    pub from_replica: usize,
    /// How many came from the fallback (old deque through its stealer, and the in-hand slot).
    pub from_fallback: usize,
    /// The replica had a gap, so the fallback scan was used.
    pub used_fallback: bool,
}

/// A won fence: the epoch it ended, the epoch it began, and the log tail at the fence point.
///
/// Returned by [`fence`]; pass it to [`adopt`]. Adoption never changes the lease, so it can be
/// repeated: a successor that dies between the two steps leaves the new epoch unrenewed, it
/// expires in its turn, and the next successor fences again and adopts from the same replica
/// (which keeps tasks until they are claimed).
///
/// ```
/// use replicore::replication::{fence, Claim, CoreState};
/// let core = CoreState::<std::sync::Arc<Claim>>::new(0, 8, Default::default());
/// let f = fence(&core, 0, 1).unwrap();
/// assert_eq!((f.old_epoch, f.new_epoch, f.tail), (0, 1, 0));
/// assert_eq!(f.owner_token().epoch(), 1);
/// assert!(fence(&core, 0, 2).is_err(), "one successor wins");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FencePoint {
    /// The fenced epoch.
    pub old_epoch: u32,
    /// The epoch the replacement owner runs under.
    pub new_epoch: u32,
    /// The successor that won the fence (the lease's new holder).
    pub successor: u32,
    /// The log's tail right after the fence: every push accepted under `old_epoch` before the
    /// fence sits below it (or is a hole below it).
    pub tail: u64,
}

impl FencePoint {
    /// The token of the new epoch's owner. Built from the fence itself, never by re-reading the
    /// lease: if yet another successor fenced this epoch meanwhile, the replacement started with
    /// this token sees itself fenced at its first check and retires, instead of becoming a second
    /// owner of the newer epoch.
    pub fn owner_token(&self) -> OwnerToken {
        OwnerToken::at(self.new_epoch, self.successor)
    }
}

/// Step 1 of a takeover: fences the owner of `observed_epoch` (whose lease was judged expired)
/// on behalf of worker `successor`, and records the log's tail at the fence point.
///
/// Returns [`FenceError`] if the epoch already moved: another successor won, and this one must
/// adopt nothing.
pub fn fence<T: Claimable>(
    core: &CoreState<T>,
    observed_epoch: u32,
    successor: u32,
) -> Result<FencePoint, FenceError> {
    let new_epoch = core.lease().try_fence(observed_epoch, successor)?;
    // After the fence no new position below `tail` can appear. Positions at or above it belong
    // to pushes that raced the fence: the replica sees them on later syncs as stale ops and hands
    // their tasks to `take_redirected` (the fenced owner may pop them back out of its old deque
    // and crash, so the log is what keeps them).
    Ok(FencePoint {
        old_epoch: observed_epoch,
        new_epoch,
        successor,
        tail: core.log().tail(),
    })
}

/// Steps 2 and 3 of a takeover: brings `replica` up to the fence point and returns every
/// unclaimed task it knows, plus, if the replica had a gap, everything `steal_old` yields (the
/// old deque) and the in-hand slot.
///
/// The replica **keeps** the adopted tasks until they are claimed, so adoption can be repeated
/// by a later successor if this one dies before handing the tasks on; copies are harmless, the
/// claim picks which one runs.
pub fn adopt<T: Claimable>(
    core: &CoreState<T>,
    replica: &mut Replica<T>,
    fence: &FencePoint,
    mut steal_old: impl FnMut() -> Option<T>,
) -> Adoption<T> {
    loop {
        let report = replica.sync(core.log(), fence.tail, usize::MAX);
        core.stats().record_fenced(report.stale as u64);
        if report.gap {
            core.stats().record_gap();
        }
        if replica.position() >= fence.tail {
            break;
        }
        // Unpublished position below the fence point: its writer crashed or stalled mid-append
        // after taking the position. Takeover cannot wait for it; the replica re-reads it on
        // every later sync and redirects its task when it appears.
        if let LogRead::NotYet = core.log().read(replica.position()) {
            replica.defer_unpublished();
        }
    }
    let used_fallback = replica.needs_resync();
    let mut tasks = replica.advance(fence.new_epoch);
    let from_replica = tasks.len();
    if used_fallback {
        while let Some(t) = steal_old() {
            if !t.claim().is_claimed() {
                tasks.push(t);
            }
        }
        if let Some(t) = core.in_hand().filter(|t| !t.claim().is_claimed()) {
            tasks.push(t);
        }
    }
    let from_fallback = tasks.len() - from_replica;
    core.stats().record_takeover(from_replica as u64);
    Adoption {
        new_epoch: fence.new_epoch,
        tasks,
        from_replica,
        from_fallback,
        used_fallback,
    }
}

/// A whole takeover in one call: [`fence`] then [`adopt`], with the
/// [`InsideTakeover`](FaultPoint::InsideTakeover) fault point before and after the fence,
/// addressed to worker `successor`. Takes over `core` from the owner of `observed_epoch`, on
/// behalf of `successor`, using `replica` (the successor's replica of `core`). `steal_old`
/// steals one task from the old owner's deque (its crossbeam `Stealer`), or returns `None` when
/// that deque is empty.
///
/// Returns [`FenceError`] if another successor fenced first; nothing is adopted then.
///
/// ```
/// use std::sync::Arc;
/// use replicore::replication::{take_over, Claim, CoreState, Replica};
/// #[derive(Debug)]
/// struct Task(Claim);
/// impl AsRef<Claim> for Task { fn as_ref(&self) -> &Claim { &self.0 } }
///
/// let core = CoreState::new(0, 64, Default::default());
/// let me = core.lease().owner_token();
/// let t = core.publish_push(&me, Arc::new(Task(Claim::new()))).unwrap();
/// core.take_in_hand(&me, &t); // the owner popped it, then stalled
/// let mut replica = Replica::new(0);
/// let adopted = take_over(&core, &mut replica, 0, 1, || None).unwrap();
/// assert_eq!(adopted.new_epoch, 1);
/// assert_eq!(adopted.tasks.len(), 1);
/// assert_eq!(core.start(&me, &t), replicore::replication::Start::Fenced);
/// assert!(adopted.tasks[0].0.try_claim(), "the adopted copy runs, once");
/// ```
pub fn take_over<T: Claimable>(
    core: &CoreState<T>,
    replica: &mut Replica<T>,
    observed_epoch: u32,
    successor: u32,
    steal_old: impl FnMut() -> Option<T>,
) -> Result<Adoption<T>, FenceError> {
    point(FaultPoint::InsideTakeover, successor as usize);
    let fenced = fence(core, observed_epoch, successor)?;
    point(FaultPoint::InsideTakeover, successor as usize);
    Ok(adopt(core, replica, &fenced, steal_old))
}
