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

use std::cell::Cell;
use std::sync::Arc;
use std::time::Instant;

use crossbeam_deque::Worker;

use super::logged::{Handle, job_ref};
use super::state::{PendingReoffer, Reoffer};
use super::threads::NO_SEAT;
use crate::pool::registry::Registry;
use crate::replication::{
    Claimable, CpuState, FencePoint, OwnerToken, Recovery, Replica, Takeover, lock_within,
    take_over,
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
    take_over(
        takeover,
        &PoolRecovery {
            registry,
            cpu: i,
            fenced_epoch: Cell::new(None),
        },
    );
}

/// The hooks for a takeover of position `cpu`.
struct PoolRecovery<'a> {
    registry: &'a Arc<Registry>,
    cpu: usize,
    /// The epoch this takeover fenced, once it has (`fenced`).
    fenced_epoch: Cell<Option<u32>>,
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

    fn fenced(&self, fence: &FencePoint) {
        self.fenced_epoch.set(Some(fence.old_epoch));
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

    fn reoffer_taken(&self) {
        reoffer_taken(self.registry, self.cpu, self.fenced_epoch.get());
    }

    fn restore(&self, seat: usize, tasks: Vec<Handle>, token: OwnerToken) {
        restore_capacity(self.registry, self.cpu, seat, tasks, token);
    }
}

/// A crashed worker may have been holding a task it took from *another* CPU's deque or from an
/// injector, not yet recorded in hand. That task is still known, unclaimed, to the replicas of
/// the CPU that pushed it (they keep tasks until claimed) or to the registry's injector-side
/// list (`RecoveryState::external`). The worker recorded each such source before its first
/// take from it (`sources`), and the takeover reads them right after its fence.
///
/// The re-offer itself waits a lease (`RecoveryState::pending`, served by the monitor) and is
/// dropped if the fenced worker comes back meanwhile ([`came_back`]): a worker that only
/// stalled finds itself fenced when it resumes and requeues what it holds, so copies are
/// needed only for one that died. Re-offering at once after every takeover flooded the queues
/// with copies whenever takeovers came faster than the queued tasks ran (the fault stress, with
/// hundreds of stall takeovers a second, made tens of millions). A takeover that fenced no
/// running thread's epoch re-offers at once.
pub(crate) fn reoffer_taken(registry: &Registry, cpu: usize, fenced_epoch: Option<u32>) {
    let sources = registry.recovery.cpus[cpu].sources.noted();
    if sources.is_empty() {
        return;
    }
    match fenced_epoch {
        Some(epoch) => registry.recovery.pending.lock().push(PendingReoffer {
            cpu,
            due: Instant::now() + registry.config.lease,
            what: Reoffer::Taken {
                epoch: Some(epoch),
                sources,
                attempts: 0,
            },
        }),
        None => reoffer_sources(registry, cpu, None, &sources, 0),
    }
}

/// The fenced worker that owned `cpu` under `epoch` came back (it resumed and is leaving the
/// pool, having requeued what it held): its takeover's re-offer is not needed.
pub(crate) fn came_back(registry: &Registry, cpu: usize, epoch: u32) {
    registry.recovery.pending.lock().retain(|p| {
        !(p.cpu == cpu && matches!(p.what, Reoffer::Taken { epoch: Some(e), .. } if e == epoch))
    });
}

/// Runs the put-off re-offers that are due at `now`, or all of them (`all`: the pool is
/// terminating, so no worker may leave while a lost task could still come back). Returns
/// whether it ran any.
pub(crate) fn reoffer_due(registry: &Registry, now: Instant, all: bool) -> bool {
    let recovery = &registry.recovery;
    let due: Vec<PendingReoffer> = {
        let mut pending = recovery.pending.lock();
        if pending.is_empty() {
            return false;
        }
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut *pending)
            .into_iter()
            .partition(|p| all || p.due <= now);
        *pending = later;
        if due.is_empty() {
            return false;
        }
        recovery.reoffers_running.fetch_add(1, Ordering::AcqRel);
        due
    };
    for p in due {
        match p.what {
            Reoffer::AtCap { heartbeat } => reoffer_at_cap(registry, p.cpu, heartbeat),
            Reoffer::Taken {
                epoch,
                sources,
                attempts,
            } => reoffer_sources(registry, p.cpu, epoch, &sources, attempts),
        }
    }
    recovery.reoffers_running.fetch_sub(1, Ordering::AcqRel);
    true
}

/// Whether a worker may leave at shutdown as far as re-offers go: none pending and none still
/// queueing copies. Runs every pending one first, due or not: the monitor may be gone already
/// (a takeover it drove just before it stopped can start a replacement that has yet to leave),
/// and a worker must not wait for a re-offer that nobody else would run. A worker that ran one
/// answers no, so that it goes round its loop again and runs the copies it just queued.
pub(crate) fn settle_reoffers(registry: &Registry) -> bool {
    if reoffer_due(registry, Instant::now(), true) {
        return false;
    }
    let recovery = &registry.recovery;
    let pending = recovery.pending.lock();
    pending.is_empty() && recovery.reoffers_running.load(Ordering::Acquire) == 0
}

/// How many times a re-offer tries a source whose replica stays locked. Its holder may have
/// stalled mid-sync (it lets go within a few leases) or crashed there (never); past these tries
/// the source's other replicas, if any, are what covers it.
const REOFFER_ATTEMPTS: u32 = 8;

/// Re-offers the unclaimed tasks of `sources`, as marked by `cpu`'s worker (fenced at `epoch`,
/// if a running thread was): each source CPU's replicas, and the injector-side list for the
/// injectors' mark. A source with a replica that could not be locked in time (its holder
/// stalled mid-sync, say) is tried again a little later, up to [`REOFFER_ATTEMPTS`] times in
/// all: nothing else would re-offer what the dead worker took from it.
fn reoffer_sources(
    registry: &Registry,
    cpu: usize,
    epoch: Option<u32>,
    sources: &[usize],
    attempts: u32,
) {
    let injectors = registry.recovery.cpus[cpu].sources.injectors();
    let mut missed = Vec::new();
    for &source in sources {
        if source == injectors {
            let listed: Vec<Handle> = registry.recovery.external.lock().clone();
            let mut queued = 0;
            for t in listed.into_iter().filter(|t| !t.claim().is_claimed()) {
                registry.inject(job_ref(t));
                queued += 1;
            }
            registry.recovery.protocol.record_reoffered(queued);
        } else if !reoffer_replicas_of(registry, source) {
            missed.push(source);
        }
    }
    if !missed.is_empty() && attempts + 1 < REOFFER_ATTEMPTS {
        registry.recovery.pending.lock().push(PendingReoffer {
            cpu,
            due: Instant::now() + registry.config.lease / 4,
            what: Reoffer::Taken {
                epoch,
                sources: missed,
                attempts: attempts + 1,
            },
        });
    }
}

/// Re-offers the unclaimed tasks of CPU `source`'s replicas on that CPU's re-offer deque
/// (`WorkerPlace::reoffered`): a thief takes a copy from there only after marking `source`,
/// as for any take from `source`, so a worker that crashes holding a copy is covered by these
/// same replicas. (Copies on an injector would need listing, and a list re-offered whole at
/// every takeover grows with every re-offer.) Returns whether every replica was re-offered;
/// one that could not be locked within a quarter lease was skipped.
fn reoffer_replicas_of(registry: &Registry, source: usize) -> bool {
    let patience = registry.config.lease / 4;
    let cpu = &registry.recovery.cpus[source];
    let mut all = true;
    for replica in cpu.replicas.iter() {
        let Some(mut replica) = lock_within(replica, patience) else {
            if all {
                // Its holder may have crashed mid-apply and hold the lock for good. An owner
                // does not record in hand a popped task its log still holds, so copy what the
                // log holds now, as a takeover does when no replica comes free; the retries
                // below cover what only the replica knows.
                let log = cpu.core.log();
                let mut view = Replica::new(0);
                view.sync(log, log.tail(), usize::MAX);
                let copies = view.unclaimed().cloned().collect();
                queue_copies(registry, source, copies, view.take_redirected());
            }
            all = false;
            continue;
        };
        // The monitor applies every replica each tick, so this is usually a short batch; it
        // makes a push newer than the last tick re-offerable too.
        let redirected = catch_up(registry, &cpu.core, &mut replica);
        let copies = replica.unclaimed().cloned().collect();
        drop(replica);
        queue_copies(registry, source, copies, redirected);
    }
    all
}

/// Queues copies of CPU `source`'s unclaimed tasks on its re-offer deque, and its redirected
/// ones (a fenced owner's late pushes) on the injectors.
fn queue_copies(registry: &Registry, source: usize, copies: Vec<Handle>, redirected: Vec<Handle>) {
    let queued = copies.len();
    {
        let deque = registry.workers[source].reoffered.lock();
        for t in copies {
            deque.push(job_ref(t));
        }
    }
    for _ in 0..queued {
        registry.sleep.new_injected_work();
    }
    registry.recovery.protocol.record_reoffered(queued as u64);
    reoffer(registry, redirected);
}

/// Applies `core`'s log to a locked replica of it, up to the tail, and records lag and gaps.
/// Returns the redirected pushes it found (a fenced owner's late ones, which the replica does
/// not keep), for the caller to re-offer once the replica is unlocked.
pub(crate) fn catch_up(
    registry: &Registry,
    core: &CpuState<Handle>,
    replica: &mut Replica<Handle>,
) -> Vec<Handle> {
    let log = core.log();
    let report = replica.sync(log, log.tail(), usize::MAX);
    if report.gap {
        registry.recovery.protocol.record_gap();
    }
    let (ops, time) = replica.lag(log);
    registry.recovery.protocol.record_lag(ops, time);
    replica.take_redirected()
}

/// Queues copies of unclaimed tasks that no replica keeps for sure (an in-hand task, a fenced
/// owner's late pushes, a refused start, an overtaken driver's adoption) on the injectors, and
/// lists them, so that a worker that crashes holding one it took from an injector is covered
/// like one holding an outside submission. The claim picks which copy runs. These are rare:
/// each follows a fault.
pub(crate) fn reoffer(registry: &Registry, tasks: Vec<Handle>) {
    let tasks: Vec<Handle> = tasks
        .into_iter()
        .filter(|t| !t.claim().is_claimed())
        .collect();
    if tasks.is_empty() {
        return;
    }
    registry
        .recovery
        .external
        .lock()
        .extend(tasks.iter().map(Arc::clone));
    registry
        .recovery
        .protocol
        .record_reoffered(tasks.len() as u64);
    for t in tasks {
        registry.inject(job_ref(t));
    }
}

/// The spare-thread cap is reached: the stalled worker is *not* fenced (it keeps its CPU and
/// carries on when it resumes). Its queued tasks stay reachable by stealing at once. What it
/// may hold outside its deque (its in-hand task, one it popped or took from elsewhere and had
/// not recorded yet) is covered by copies of its in-hand task, of its CPU's replicas and of the
/// sources it marked, queued a lease later if it has not renewed its lease by then
/// ([`reoffer_at_cap`]): a worker that comes back carries on with what it holds, and copying
/// its whole queue at every stall had the others fail claims on copies (38 copies a task in
/// the fault stress's no-spare seeds). A crashed worker never renews, so it loses nothing; the
/// claim decides which copy runs. Counted once per stall in
/// `RecoveryStats::takeovers_without_replacement` (and once in `lease_expiries`).
fn at_cap(registry: &Registry, i: usize, epoch: u32) {
    let cpu = &registry.recovery.cpus[i];
    if !cpu.watch.mark_capped(epoch) {
        return; // another driver handled this stall
    }
    registry.recovery.protocol.record_expiry();
    registry.recovery.pending.lock().push(PendingReoffer {
        cpu: i,
        due: Instant::now() + registry.config.lease,
        what: Reoffer::AtCap {
            heartbeat: cpu.core.lease().heartbeat(),
        },
    });
    registry.recovery.protocol.record_without_replacement();
    registry.sleep.wake_all();
}

/// The due re-offer of a stall at the cap (see [`at_cap`]): nothing if the worker renewed its
/// lease since `heartbeat` (it came back); otherwise copies of its in-hand task, then of its
/// own CPU's replicas and of the sources it marked, each read now.
fn reoffer_at_cap(registry: &Registry, i: usize, heartbeat: u64) {
    let cpu = &registry.recovery.cpus[i];
    if cpu.core.lease().heartbeat() != heartbeat {
        return;
    }
    reoffer(registry, cpu.core.in_hand().into_iter().collect());
    let mut sources = cpu.sources.noted();
    if !sources.contains(&i) {
        sources.push(i);
    }
    reoffer_sources(registry, i, None, &sources, 0);
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
    // The in-hand task among the adopted ones may have come from another CPU or an injector,
    // so this CPU's replicas need not know it: list it, and mark the injectors as a source of
    // the replacement (before it starts), so that if it crashes holding that task, its own
    // takeover re-offers the list.
    if let Some(in_hand) = cpu.core.in_hand().filter(|t| !t.claim().is_claimed()) {
        registry.recovery.external.lock().push(in_hand);
        cpu.sources.note(cpu.sources.injectors());
    }
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
