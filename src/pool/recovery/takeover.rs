//! The pool's side of a takeover: the [`Recovery`] hooks that the protocol's one takeover
//! sequence ([`take_over`], in `src/replication/takeover.rs`) calls.
//!
//! Any thread may drive a takeover: a worker that judged a neighbour's lease expired (see
//! `watch`), or the monitor as a backstop. The sequence runs its fault points (`InsideTakeover`
//! three times, `ReplicaApply`) under the driver's own fault id, so a plan can stall or crash the
//! driver mid-takeover, and every step leaves a state the next driver completes. The pool
//! supplies: thread seats as the replacement's room (`threads`), what to do at the cap, where
//! re-offered copies go (the injectors), and starting the replacement worker.
//!
//! A driver that dies holding a seat reservation keeps it: the seats bound threads, and the
//! crashed thread still exists.

use std::sync::Arc;

use crossbeam_deque::Worker;

use super::logged::{Handle, job_ref};
use super::threads::NO_SEAT;
use crate::pool::registry::Registry;
use crate::replication::{
    Claimable, FencePoint, OwnerToken, Recovery, Takeover, lock_within, take_over,
};
use crate::sync::atomic::Ordering;

/// Who drives a takeover: the position that becomes the lease's holder, and the id the fault
/// plan addresses this thread by (a worker's fault id; the monitor never enters a plan).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Driver {
    pub(crate) successor: usize,
    pub(crate) fault_id: usize,
}

/// Takes over position `i`, whose lease was judged expired at `epoch`.
pub(crate) fn drive(registry: &Arc<Registry>, i: usize, epoch: u32, d: Driver) {
    let cpu = &registry.recovery.cpus[i];
    let takeover = Takeover {
        core: &cpu.core,
        replicas: &cpu.replicas,
        epoch,
        successor: d.successor as u32,
        fault_id: d.fault_id,
        patience: registry.config.lease / 2,
    };
    take_over(takeover, &PoolRecovery { registry, cpu: i });
}

/// The hooks for a takeover of position `cpu`.
struct PoolRecovery<'a> {
    registry: &'a Arc<Registry>,
    cpu: usize,
}

impl Recovery<Handle> for PoolRecovery<'_> {
    /// A thread seat.
    type Room = usize;

    fn reserve(&self) -> Option<usize> {
        self.registry.threads.reserve()
    }

    fn release(&self, seat: usize) {
        self.registry.threads.release(seat);
    }

    fn at_cap(&self, epoch: u32) {
        at_cap(self.registry, self.cpu, epoch);
    }

    fn fenced(&self, _: &FencePoint) {
        // The thread that owned the fenced epoch (if one was started) may still be running a
        // task that spawns more: shutdown waits for it to retire.
        let old = self.registry.recovery.cpus[self.cpu]
            .owner_seat
            .swap(NO_SEAT, Ordering::AcqRel);
        if old != NO_SEAT {
            self.registry.threads.mark_fenced(old);
        }
        // The old owner may have stopped for good mid-search (a crash): it must not count as a
        // searching worker forever, or forks would stop waking sleepers (see `fork::Hunger`).
        self.registry.hunger.fed(self.cpu);
    }

    fn reoffer(&self, tasks: Vec<Handle>) {
        reoffer(self.registry, tasks);
    }

    fn reoffer_all(&self) {
        reoffer_all(self.registry);
    }

    fn restore(&self, seat: usize, tasks: Vec<Handle>, token: OwnerToken) {
        restore_capacity(self.registry, self.cpu, seat, tasks, token);
    }
}

/// A crashed worker may have been holding a task it took from *another* CPU's queue, stole, or
/// took from an injector. That task is still known, unclaimed, to its origin CPU's replicas
/// (they keep tasks until claimed) or to the registry's list of external submissions. Re-offer
/// every such task once; duplicates lose the claim. A replica whose lock stays taken is skipped.
pub(crate) fn reoffer_all(registry: &Registry) {
    let patience = registry.config.lease / 4;
    for cpu in registry.recovery.cpus.iter() {
        for replica in cpu.replicas.iter() {
            let copies: Vec<Handle> = match lock_within(replica, patience) {
                Some(r) => r.unclaimed().cloned().collect(),
                None => continue,
            };
            reoffer(registry, copies);
        }
    }
    let external: Vec<Handle> = registry.recovery.external.lock().clone();
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
/// `RecoveryStats::takeovers_without_replacement` (and once in `lease_expiries`).
fn at_cap(registry: &Registry, i: usize, epoch: u32) {
    let cpu = &registry.recovery.cpus[i];
    if !cpu.watch.mark_capped(epoch) {
        return; // another driver handled this stall
    }
    registry.recovery.protocol.record_expiry();
    reoffer(registry, cpu.core.in_hand().into_iter().collect());
    reoffer_all(registry);
    registry.recovery.protocol.record_without_replacement();
    registry.sleep.wake_all();
}

/// Starts a replacement worker for position `i` in the reserved `seat` under `token`, with
/// `tasks` in its fresh deque.
fn restore_capacity(
    registry: &Arc<Registry>,
    i: usize,
    seat: usize,
    tasks: Vec<Handle>,
    token: OwnerToken,
) {
    let cpu = &registry.recovery.cpus[i];
    let deque = Worker::new_lifo();
    for t in &tasks {
        deque.push(job_ref(Arc::clone(t)));
    }
    let owner = registry.workers[i].generations.add(deque.stealer());
    // Not judged until its start handler has returned and its lease begins.
    cpu.idle.set_starting(token.epoch());
    cpu.owner_seat.store(seat, Ordering::Release);
    match registry.start_worker(i, seat, deque, owner, token) {
        Ok(()) => registry.recovery.protocol.record_replacement(),
        Err(_) => {
            // The OS refused the thread (the seat is given back). Copies of the tasks are also in
            // the new deque, which stays in the steal set until drained; the claim picks one.
            // The new epoch is left unrenewed and not idle: it expires a lease from now and the
            // next driver tries again.
            reoffer(registry, tasks);
            let _ =
                cpu.owner_seat
                    .compare_exchange(seat, NO_SEAT, Ordering::AcqRel, Ordering::Acquire);
            cpu.idle.clear(token.epoch());
            registry.recovery.protocol.record_without_replacement();
        }
    }
    registry.sleep.wake_all();
}
