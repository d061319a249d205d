//! Driving a takeover in the pool: fence, adopt, restore the CPU's capacity.
//!
//! Any thread may drive one: a worker that judged a neighbour's lease expired (see `watch`), or
//! the monitor as a backstop. The driver runs the fault points `InsideTakeover` (three times)
//! and `ReplicaApply` under **its own** fault id, so a plan can stall or crash the driver
//! mid-takeover. Every step is written so that a driver that stops anywhere leaves a state the
//! next driver completes:
//!
//! 1. `InsideTakeover` #1. Nothing changed yet: the lease stays expired and the next check
//!    drives again.
//! 2. Reserve a thread seat, then fence `e → e+1` (one CAS; one driver wins, losers give their
//!    seat back). The fenced thread's seat is marked fenced until it retires, so shutdown waits
//!    for the task it is still running.
//! 3. `InsideTakeover` #2. Fenced, nothing adopted: epoch `e+1` is never renewed, so it expires
//!    a lease later and the next driver fences `e+1 → e+2` and adopts.
//! 4. Adopt from the first replica whose lock it gets (`ReplicaApply` fires with that lock
//!    held). Adoption does not empty the replica, so a later driver can adopt the same tasks
//!    again; the claim picks which copy runs.
//! 5. `InsideTakeover` #3. Adopted, no replacement yet: the adopted copies die with the driver,
//!    the replica still has them, and the unrenewed epoch expires as in step 3.
//! 6. If the lease is still at the driver's epoch, start the replacement with the adopted tasks
//!    under a token built from the fence; otherwise a later driver already took over (this one
//!    stalled): re-offer the copies and give the seat back. If the OS refuses the thread, the
//!    tasks are re-offered, the seat given back, and the new epoch left unrenewed: it expires a
//!    lease later and the next driver tries again. No CPU is ever given up for good.
//!
//! A driver that dies holding a seat reservation keeps it: the seats bound threads, and the
//! crashed thread still exists.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_deque::Worker;

use super::logged::{Handle, job_ref};
use super::registry::Registry;
use super::threads::{NO_SEAT, start_worker};
use crate::fault::{FaultPoint, point};
use crate::replication::{Claimable, FencePoint, OwnerToken, Replica, adopt, fence};
use crate::sync::MutexGuard;
use crate::sync::atomic::Ordering;

/// Who drives a takeover: the slot index that becomes the lease's holder, and the id the fault
/// plan addresses this thread by (a worker's fault id; the monitor never enters a plan).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Driver {
    pub(crate) successor: usize,
    pub(crate) fault_id: usize,
}

/// Takes over CPU slot `i`, whose lease was judged expired at `epoch`.
pub(crate) fn drive(registry: &Arc<Registry>, i: usize, epoch: u32, d: Driver) {
    let slot = &registry.slots[i];
    point(FaultPoint::InsideTakeover, d.fault_id);
    // Reserve the replacement's seat *before* fencing: fencing without one would leave the CPU
    // with no worker at all, and if every worker is stalled, the pool with none.
    let Some(seat) = registry.threads.reserve() else {
        at_cap(registry, i, epoch);
        return;
    };
    let Ok(fenced) = fence(&slot.core, epoch, d.successor as u32) else {
        // Another driver won this epoch.
        registry.threads.release(seat);
        return;
    };
    // The thread that owned `epoch` (if one was started) may still be running a task that
    // spawns more: shutdown waits for it to retire.
    let old = slot.owner_seat.swap(NO_SEAT, Ordering::AcqRel);
    if old != NO_SEAT {
        registry.threads.mark_fenced(old);
    }
    registry.replication.record_expiry();
    point(FaultPoint::InsideTakeover, d.fault_id);
    let mut tasks = adopt_from_replicas(registry, i, &fenced, d.fault_id);
    // The in-hand task may have come from another CPU's queue or an injector, so this CPU's
    // replica need not know it: always look at the slot.
    if let Some(t) = slot.core.in_hand()
        && !t.claim().is_claimed()
        && !tasks.iter().any(|a| Arc::ptr_eq(a, &t))
    {
        tasks.push(t);
    }
    reoffer_all(registry);
    point(FaultPoint::InsideTakeover, d.fault_id);
    if !slot.core.lease().is_current(fenced.new_epoch) {
        // We stalled past a lease and a later driver fenced our epoch and adopted the same tasks
        // from the replica. Hand our copies to the injectors; the claim picks one.
        reoffer(registry, tasks);
        registry.threads.release(seat);
        return;
    }
    restore_capacity(registry, i, seat, tasks, fenced.owner_token());
}

/// Adopts from the first of slot `i`'s replicas whose lock comes free within a bounded wait. A
/// replica whose lock stays taken is held by a thread stalled or crashed mid-apply; then (and
/// with `R = 0`) a fresh view is rebuilt from the log's retained window, which marks a gap if
/// older entries are gone. Queued tasks it cannot see stay in the old deque, which stays in the
/// CPU's steal set, and the in-hand slot is read by the caller.
fn adopt_from_replicas(
    registry: &Registry,
    i: usize,
    fenced: &FencePoint,
    fault_id: usize,
) -> Vec<Handle> {
    let slot = &registry.slots[i];
    let patience = registry.config.lease / 2;
    for (_, replica) in &slot.replicas {
        if let Some(mut r) = lock_within(replica, patience) {
            point(FaultPoint::ReplicaApply, fault_id);
            return adopt(&slot.core, &mut r, fenced, || None).tasks;
        }
    }
    let mut fresh = Replica::new(0);
    point(FaultPoint::ReplicaApply, fault_id);
    adopt(&slot.core, &mut fresh, fenced, || None).tasks
}

/// Tries to lock `m` for at most `patience`, yielding between attempts. Never blocks for good on
/// a lock whose holder crashed.
pub(crate) fn lock_within<T>(
    m: &crate::sync::Mutex<T>,
    patience: Duration,
) -> Option<MutexGuard<'_, T>> {
    let t0 = Instant::now();
    loop {
        if let Some(g) = m.try_lock() {
            return Some(g);
        }
        if t0.elapsed() >= patience {
            return None;
        }
        std::thread::yield_now();
    }
}

/// A crashed worker may have been holding a task it took from *another* CPU's queue, stole, or
/// took from an injector. That task is still known, unclaimed, to its origin CPU's replicas
/// (they keep tasks until claimed) or to the registry's list of external submissions. Re-offer
/// every such task once; duplicates lose the claim. A replica whose lock stays taken is skipped.
pub(crate) fn reoffer_all(registry: &Registry) {
    let patience = registry.config.lease / 4;
    for slot in registry.slots.iter() {
        for (_, replica) in &slot.replicas {
            let copies: Vec<Handle> = match lock_within(replica, patience) {
                Some(r) => r.unclaimed().cloned().collect(),
                None => continue,
            };
            reoffer(registry, copies);
        }
    }
    let external: Vec<Handle> = registry.external.lock().clone();
    reoffer(registry, external);
}

/// Queues copies of unclaimed tasks on the injectors; the claim picks which copy runs.
pub(crate) fn reoffer(registry: &Registry, tasks: Vec<Handle>) {
    for t in tasks {
        if !t.claim().is_claimed() {
            registry.inject(job_ref(t));
        }
    }
}

/// The spare-thread cap is reached: the stalled worker is *not* fenced (it keeps its CPU and
/// carries on when it resumes). Its queued tasks stay reachable by stealing, and copies of its
/// unclaimed replicated tasks, including the one in hand, go to the injectors, so a crashed
/// worker loses nothing either; the claim decides which copy runs. Counted once per stall in
/// `takeovers_without_replacement` (and once in `lease_expiries`).
fn at_cap(registry: &Registry, i: usize, epoch: u32) {
    let slot = &registry.slots[i];
    if !slot.watch.mark_capped(epoch) {
        return; // another driver handled this stall
    }
    registry.replication.record_expiry();
    reoffer(registry, slot.core.in_hand().into_iter().collect());
    reoffer_all(registry);
    registry
        .takeovers_without_replacement
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    registry.sleep.wake_all();
}

/// Starts a replacement worker for CPU slot `i` in the reserved `seat` under `token`, with
/// `tasks` in its fresh deque.
fn restore_capacity(
    registry: &Arc<Registry>,
    i: usize,
    seat: usize,
    tasks: Vec<Handle>,
    token: OwnerToken,
) {
    let slot = &registry.slots[i];
    let deque = Worker::new_lifo();
    for t in &tasks {
        deque.push(job_ref(Arc::clone(t)));
    }
    let owner = slot.generations.add(deque.stealer());
    let starting = u64::from(token.epoch()) + 1;
    // Not judged until its start handler has returned and its lease begins.
    slot.idle.store(starting, Ordering::SeqCst);
    slot.owner_seat.store(seat, Ordering::Release);
    match start_worker(registry, i, seat, deque, owner, token) {
        Ok(()) => registry.replication.record_replacement(),
        Err(_) => {
            // The OS refused the thread (the seat is given back). Copies of the tasks are also in
            // the new deque, which stays in the steal set until drained; the claim picks one.
            // The new epoch is left unrenewed and not idle: it expires a lease from now and the
            // next driver tries again.
            reoffer(registry, tasks);
            let _ = slot
                .owner_seat
                .compare_exchange(seat, NO_SEAT, Ordering::AcqRel, Ordering::Acquire);
            let _ = slot
                .idle
                .compare_exchange(starting, 0, Ordering::SeqCst, Ordering::SeqCst);
            registry
                .takeovers_without_replacement
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
    registry.sleep.wake_all();
}
