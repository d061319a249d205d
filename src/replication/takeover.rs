//! Takeover: fence, bring the replica up to the fence point, adopt the unclaimed tasks.
//!
//! Adoption hands the tasks back **unclaimed**: the successor (or the replacement worker) pushes
//! them into its own fresh deque and starts each through the ordinary claim. Copies of the same
//! tasks may still sit in the old deque, to be drained by stealing; whoever claims first runs the
//! task and every other copy is dropped. A single claim path keeps G2 trivially true.

use super::core::CoreState;
use super::lease::FenceError;
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

/// Takes over `core` from the owner of `observed_epoch` (whose lease a monitor judged expired),
/// on behalf of worker `successor`, using `replica` (the successor's replica of `core`).
/// `steal_old` steals one task from the old owner's deque (its crossbeam `Stealer`), or returns
/// `None` when that deque is empty.
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
    mut steal_old: impl FnMut() -> Option<T>,
) -> Result<Adoption<T>, FenceError> {
    point(FaultPoint::InsideTakeover, successor as usize);
    let new_epoch = core.lease().try_fence(observed_epoch, successor)?;
    // After the fence no new position below `fence_tail` can appear. Positions at or above it
    // belong to pushes that raced the fence: the replica sees them on later syncs as stale ops
    // and hands their tasks to `take_redirected` (the fenced owner may pop them back out of its
    // old deque and crash, so the log is what keeps them).
    let fence_tail = core.log().tail();
    point(FaultPoint::InsideTakeover, successor as usize);
    loop {
        let report = replica.sync(core.log(), fence_tail, usize::MAX);
        core.stats().record_fenced(report.stale as u64);
        if replica.position() >= fence_tail {
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
    let mut tasks = replica.advance(new_epoch);
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
    Ok(Adoption {
        new_epoch,
        tasks,
        from_replica,
        from_fallback,
        used_fallback,
    })
}
