//! Takeover: the one sequence that fences a blocked owner, adopts its tasks and restores its CPU.
//!
//! [`take_over`] is what the pool runs and what the loom models check. The pool plugs into it
//! through [`Recovery`]: where a replacement's thread comes from, what to do at the thread cap,
//! where re-offered copies go, and how a replacement starts. Everything else is here, in order:
//!
//! 1. `InsideTakeover` #1. Nothing changed yet: the lease stays expired and the next check
//!    drives again.
//! 2. Reserve the replacement's room, then fence `e → e+1` (one CAS: one driver wins, the others
//!    give their reservation back). No room (the cap): do not fence; [`Recovery::at_cap`].
//! 3. `InsideTakeover` #2. Fenced, nothing adopted: epoch `e+1` is never renewed, so it expires a
//!    lease later and the next driver fences `e+1 → e+2` and adopts.
//! 4. Adopt from the first replica whose lock comes free within the patience (`ReplicaApply`
//!    fires with that lock held), else from a fresh view of the log's retained window; add the
//!    in-hand task (it may have come from another CPU or an injector, so the replica need not
//!    know it); re-offer copies of the unclaimed tasks of the queues a crashed owner took from
//!    ([`Recovery::reoffer_taken`]). Adoption leaves the tasks in the replica, so a later driver
//!    can adopt them again; the claim picks which copy runs.
//! 5. `InsideTakeover` #3. Adopted, no replacement yet: the copies die with the driver, the
//!    replica still has them, and the unrenewed epoch expires as in step 3.
//! 6. If the lease is still at the driver's epoch, restore the CPU: a replacement owner under a
//!    token built from the fence, with the adopted tasks ([`Recovery::restore`]). Otherwise a
//!    later driver took over while this one stalled: re-offer the copies and give the room back.
//!
//! Adopted tasks are handed on **unclaimed**: whoever runs one starts it through the ordinary
//! claim, so copies in the old deque, a replica or an injector are harmless (G2).

use std::time::Duration;

use super::cpu::CpuState;
use super::lease::{FenceError, OwnerToken};
use super::log::LogRead;
use super::replica::{Claimable, Replica};
use crate::fault::{FaultPoint, point};
use crate::sync::{Mutex, MutexGuard};

/// What the pool plugs into [`take_over`]. [`Recorder`](super::Recorder) is a recording
/// implementation for tests and models.
///
/// ```
/// use std::sync::Arc;
/// use replicore::__protocol::{Claim, OwnerToken, Recorder, Recovery};
/// let hooks = Recorder::<Arc<Claim>>::new(1);
/// let room = hooks.reserve().expect("one room");
/// assert!(hooks.reserve().is_none(), "at the cap");
/// hooks.restore(room, vec![], replicore::__protocol::Lease::new(0).owner_token());
/// assert_eq!(hooks.take().restored.len(), 1);
/// ```
pub trait Recovery<T> {
    /// What a reservation holds (the pool: a thread seat).
    type Room;
    /// Reserves room for a replacement owner; `None` at the cap.
    fn reserve(&self) -> Option<Self::Room>;
    /// Gives back room that will not be used.
    fn release(&self, room: Self::Room);
    /// No room: the owner of `epoch` is **not** fenced (fencing without a replacement could leave
    /// no worker at all). Re-offer copies of its tasks; try again later.
    fn at_cap(&self, epoch: u32);
    /// The fence was won: the thread that owned `fence.old_epoch` is fenced now.
    fn fenced(&self, fence: &FencePoint);
    /// Queues copies of `tasks` where any worker can take them; the claim picks one.
    fn reoffer(&self, tasks: Vec<T>);
    /// Re-offers copies of the unclaimed tasks a crashed owner may have held that this CPU's
    /// replica does not know: those of the queues it took from (another CPU's deque, an
    /// injector). The pool records those sources as its workers take (`pool::recovery::sources`)
    /// and re-offers a lease later unless the fenced owner comes back.
    fn reoffer_taken(&self);
    /// Starts the replacement owner under `token` with `tasks`.
    fn restore(&self, room: Self::Room, tasks: Vec<T>, token: OwnerToken);
}

/// How a [`take_over`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// No room for a replacement: not fenced, [`Recovery::at_cap`] was called.
    AtCap,
    /// Another driver fenced this epoch first: nothing was done.
    Lost,
    /// Fenced and adopted, but a later driver fenced again while this one stalled: the copies
    /// were re-offered and the room released.
    Overtaken,
    /// Fenced, adopted and restored.
    Restored,
}

/// One takeover to drive: which CPU, which epoch was judged expired, who drives.
#[derive(Debug)]
pub struct Takeover<'a, T> {
    /// The taken-over CPU's shared state.
    pub core: &'a CpuState<T>,
    /// That CPU's replicas, nearest holder first.
    pub replicas: &'a [Mutex<Replica<T>>],
    /// The epoch judged expired.
    pub epoch: u32,
    /// The lease's new holder.
    pub successor: u32,
    /// The driving thread's fault-plan id.
    pub fault_id: usize,
    /// How long to wait for a replica's lock before trying the next one (a lock held that long
    /// belongs to a thread stalled or crashed mid-apply).
    pub patience: Duration,
}

/// Drives one takeover through the steps in the module docs.
///
/// ```
/// use std::sync::Arc;
/// use replicore::__protocol::{Claim, CpuState, Mutex, Outcome, Recorder, Replica, Takeover, take_over};
/// let core = CpuState::new(0, 64, Default::default());
/// let me = core.lease().owner_token();
/// let queued = core.publish_push(&me, Arc::new(Claim::new())).unwrap();
/// let in_hand = core.publish_push(&me, Arc::new(Claim::new())).unwrap();
/// core.take_in_hand(&me, &in_hand); // the owner popped it, then blocked
/// let replicas = [Mutex::new(Replica::new(0))];
/// let hooks = Recorder::new(1);
/// let t = Takeover { core: &core, replicas: &replicas, epoch: 0, successor: 1, fault_id: 1,
///                    patience: std::time::Duration::from_millis(1) };
/// assert_eq!(take_over(t, &hooks), Outcome::Restored);
/// let (tasks, token) = hooks.take().restored.pop().unwrap();
/// assert_eq!((tasks.len(), token.epoch()), (2, 1));
/// assert!(tasks.iter().any(|t| Arc::ptr_eq(t, &queued)));
/// ```
pub fn take_over<T: Claimable, R: Recovery<T>>(t: Takeover<'_, T>, hooks: &R) -> Outcome {
    let core = t.core;
    point(FaultPoint::InsideTakeover, t.fault_id);
    // The room comes *before* the fence: fencing without a replacement could leave the CPU with
    // no worker at all, and if every worker is blocked, the pool with none.
    let Some(room) = hooks.reserve() else {
        hooks.at_cap(t.epoch);
        return Outcome::AtCap;
    };
    let Ok(fenced) = fence(core, t.epoch, t.successor) else {
        hooks.release(room);
        return Outcome::Lost;
    };
    hooks.fenced(&fenced);
    core.stats().record_expiry();
    point(FaultPoint::InsideTakeover, t.fault_id);
    let mut tasks = adopt_from_replicas(&t, &fenced);
    if let Some(h) = core.in_hand()
        && !h.claim().is_claimed()
        && !tasks.iter().any(|a| same_claim(a, &h))
    {
        tasks.push(h);
    }
    hooks.reoffer_taken();
    point(FaultPoint::InsideTakeover, t.fault_id);
    if !core.lease().is_current(fenced.new_epoch) {
        // We stalled past a lease and a later driver fenced our epoch and adopted the same tasks
        // from the replica. Hand our copies on; the claim picks one.
        hooks.reoffer(tasks);
        hooks.release(room);
        return Outcome::Overtaken;
    }
    hooks.restore(room, tasks, fenced.owner_token());
    Outcome::Restored
}

/// Whether two handles are copies of one task (they share its claim word).
fn same_claim<T: Claimable>(a: &T, b: &T) -> bool {
    std::ptr::eq(a.claim(), b.claim())
}

/// Adopts from the first replica whose lock comes free within the patience. A replica whose lock
/// stays taken is held by a thread stalled or crashed mid-apply; then (and with no replica) a
/// fresh view is rebuilt from the log's retained window, which marks a gap if older entries are
/// gone. Queued tasks it cannot see stay in the old deque, which stays stealable.
fn adopt_from_replicas<T: Claimable>(t: &Takeover<'_, T>, fenced: &FencePoint) -> Vec<T> {
    for replica in t.replicas {
        if let Some(mut r) = lock_within(replica, t.patience) {
            point(FaultPoint::ReplicaApply, t.fault_id);
            return adopt(t.core, &mut r, fenced);
        }
    }
    let mut fresh = Replica::new(0);
    point(FaultPoint::ReplicaApply, t.fault_id);
    adopt(t.core, &mut fresh, fenced)
}

/// Tries to lock `m` for at most `patience`. Never blocks for good on a lock whose holder
/// crashed.
pub fn lock_within<T>(m: &Mutex<T>, patience: Duration) -> Option<MutexGuard<'_, T>> {
    #[cfg(not(loom))]
    {
        let t0 = std::time::Instant::now();
        let backoff = crate::sync::Backoff::new();
        loop {
            if let Some(g) = m.try_lock() {
                return Some(g);
            }
            if t0.elapsed() >= patience {
                return None;
            }
            backoff.snooze();
        }
    }
    #[cfg(loom)]
    {
        // Loom has no clock: a couple of tries, with a yield to the holder between them.
        let _ = patience;
        for _ in 0..2 {
            if let Some(g) = m.try_lock() {
                return Some(g);
            }
            crate::sync::Backoff::new().snooze();
        }
        None
    }
}

/// A won fence: the epoch it ended, the epoch it began, and the log tail at the fence point.
///
/// Returned by [`fence`]; pass it to [`adopt`]. Adoption never changes the lease, so it can be
/// repeated: a successor that dies between the two steps leaves the new epoch unrenewed, it
/// expires in its turn, and the next successor fences again and adopts from the same replica
/// (which keeps tasks until they are claimed).
///
/// ```
/// use replicore::__protocol::{fence, Claim, CpuState};
/// let core = CpuState::<std::sync::Arc<Claim>>::new(0, 8, Default::default());
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

/// Step 2 of a takeover: fences the owner of `observed_epoch` (whose lease was judged expired)
/// on behalf of worker `successor`, and records the log's tail at the fence point.
///
/// Returns [`FenceError`] if the epoch already moved: another successor won, and this one must
/// adopt nothing.
pub fn fence<T: Claimable>(
    core: &CpuState<T>,
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

/// Step 4 of a takeover: brings `replica` up to the fence point and returns every unclaimed task
/// it knows.
///
/// The replica **keeps** the adopted tasks until they are claimed, so adoption can be repeated
/// by a later successor if this one dies before handing the tasks on; copies are harmless, the
/// claim picks which one runs.
///
/// ```
/// use std::sync::Arc;
/// use replicore::__protocol::{adopt, fence, Claim, CpuState, Replica};
/// let core = CpuState::new(0, 8, Default::default());
/// let me = core.lease().owner_token();
/// core.publish_push(&me, Arc::new(Claim::new())).unwrap();
/// let f = fence(&core, 0, 1).unwrap();
/// let mut replica = Replica::new(0);
/// assert_eq!(adopt(&core, &mut replica, &f).len(), 1);
/// assert_eq!(adopt(&core, &mut replica, &f).len(), 1, "still there for a later driver");
/// ```
pub fn adopt<T: Claimable>(
    core: &CpuState<T>,
    replica: &mut Replica<T>,
    fence: &FencePoint,
) -> Vec<T> {
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
    let tasks = replica.advance(fence.new_epoch);
    core.stats().record_takeover(tasks.len() as u64);
    tasks
}
