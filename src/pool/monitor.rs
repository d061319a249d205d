//! The lease monitor: one low-rate thread per pool that keeps replicas caught up, judges
//! leases, and takes over a CPU whose worker made no progress for a full lease.
//!
//! It is its own thread so that detection works even when every worker is busy with long tasks.
//! Takeover follows `src/replication/README.md`: fence (`e → e+1`), bring the first replica
//! holder's replica up to the fence point, adopt every unclaimed epoch-`e` task (queued and in
//! hand), then restore the CPU's capacity with a replacement worker pinned to it under `e+1`,
//! which gets a **fresh** deque (the old one stays in the CPU's steal set until drained).

use std::io;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_deque::Worker;

use super::job::JobRef;
use super::logged::{Handle, LoggedJob};
use super::registry::Registry;
use super::worker::WorkerThread;
use crate::fault::{FaultPoint, point};
use crate::replication::{Claimable, LeaseObserver, LeaseState, OwnerToken, Replica, take_over};
use crate::sync::atomic::Ordering;

/// How often the monitor looks: a quarter lease, so an expiry is seen within 1.25 leases,
/// and never more often than every 250 µs.
fn tick(lease: Duration) -> Duration {
    (lease / 4).max(Duration::from_micros(250))
}

/// Starts worker `index` on its own OS thread (pinned if the pool pins), owning `deque` under
/// `token`. The thread is recorded in the registry so that shutdown can join it.
pub(crate) fn start_worker(
    registry: &Arc<Registry>,
    index: usize,
    deque: Worker<JobRef>,
    token: OwnerToken,
    fault_id: usize,
    name: String,
) -> io::Result<()> {
    let mut b = std::thread::Builder::new().name(name);
    if let Some(size) = registry.config.stack_size {
        b = b.stack_size(size);
    }
    let reg = Arc::clone(registry);
    let os_cpu = registry.config.pin.then(|| registry.slots[index].os_cpu);
    let handle = b.spawn(move || {
        if let Some(cpu) = os_cpu {
            crate::topology::bind_current_thread(cpu);
        }
        #[cfg(feature = "fault-injection")]
        if let Some(plan) = &reg.config.fault_plan {
            crate::fault::enter(plan);
        }
        WorkerThread::run(deque, index, reg, token, fault_id);
    })?;
    registry
        .threads
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(handle);
    Ok(())
}

/// Starts the monitor thread.
pub(crate) fn start_monitor(registry: &Arc<Registry>) -> io::Result<JoinHandle<()>> {
    let reg = Arc::clone(registry);
    std::thread::Builder::new()
        .name("replicore-monitor".into())
        .spawn(move || Monitor::new(reg).run())
}

struct Monitor {
    registry: Arc<Registry>,
    observers: Vec<LeaseObserver>,
    /// CPUs taken over at the spare-thread cap: no worker owns them any more, so their silent
    /// lease is not a stall.
    orphaned: Vec<bool>,
    /// The epoch of each CPU found stalled at the spare-thread cap, until it moves again.
    capped: Vec<Option<u32>>,
}

impl Monitor {
    fn new(registry: Arc<Registry>) -> Self {
        let n = registry.num_threads();
        let now = Instant::now();
        Monitor {
            registry,
            observers: vec![LeaseObserver::new(now); n],
            orphaned: vec![false; n],
            capped: vec![None; n],
        }
    }

    fn run(mut self) {
        let lease = self.registry.config.lease;
        while !self.registry.monitor_stop.load(Ordering::Acquire) {
            std::thread::sleep(tick(lease));
            self.sync_replicas();
            self.registry
                .external
                .lock()
                .retain(|t| !t.claim().is_claimed());
            let now = Instant::now();
            for i in 0..self.registry.num_threads() {
                if self.orphaned[i] {
                    continue;
                }
                let slot = &self.registry.slots[i];
                if slot.parked.load(Ordering::SeqCst) {
                    // Idle, not stalled: a full lease starts again when it wakes.
                    self.observers[i] = LeaseObserver::new(now);
                    continue;
                }
                match self.observers[i].observe(slot.core.lease(), now, lease) {
                    // Moving again: a later stall of the same epoch is a new one.
                    LeaseState::Alive => self.capped[i] = None,
                    // Already handled at the cap: one expiry per stall, not one per tick.
                    LeaseState::Expired { epoch } if self.capped[i] == Some(epoch) => {}
                    LeaseState::Expired { epoch } => {
                        self.registry.replication.record_expiry();
                        self.take_over(i, epoch);
                    }
                }
            }
        }
    }

    /// Every replica holder's replica catches up with its CPU's log (never blocking the owner),
    /// re-enqueues the redirected pushes it found, and reports its lag.
    fn sync_replicas(&self) {
        for slot in self.registry.slots.iter() {
            for (holder, replica) in &slot.replicas {
                let mut replica = replica.lock();
                point(FaultPoint::ReplicaApply, *holder);
                let log = slot.core.log();
                replica.sync(log, log.tail(), log.capacity());
                let (ops, time) = replica.lag(log);
                self.registry.replication.record_lag(ops, time);
                self.reoffer(replica.take_redirected());
            }
        }
    }

    /// A crashed worker may have been holding a task it took from *another* CPU's queue, stole,
    /// or took from an injector. That task is still known, unclaimed, to its origin CPU's
    /// replicas (they keep tasks until claimed) or to the registry's list of external
    /// submissions. Re-offer every such task once; duplicates lose the claim.
    fn reoffer_all(&self) {
        for slot in self.registry.slots.iter() {
            for (_, replica) in &slot.replicas {
                let copies: Vec<Handle> = replica.lock().unclaimed().cloned().collect();
                self.reoffer(copies);
            }
        }
        let external: Vec<Handle> = self.registry.external.lock().clone();
        self.reoffer(external);
    }

    /// Queues copies of unclaimed tasks on the injectors; the claim picks which copy runs.
    fn reoffer(&self, tasks: Vec<Handle>) {
        if tasks.is_empty() {
            return;
        }
        for t in tasks {
            if !t.claim().is_claimed() {
                self.registry.inject(LoggedJob::job_ref(t));
            }
        }
    }

    fn take_over(&mut self, i: usize, epoch: u32) {
        let registry = Arc::clone(&self.registry);
        let slot = &registry.slots[i];
        // Reserve the replacement thread *before* fencing: fencing without one would leave the
        // CPU with no worker at all, and if every worker is stalled, the pool with none.
        let spare =
            registry
                .spares_started
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
                    (s < registry.config.max_spare_threads).then_some(s + 1)
                });
        let Ok(spare_no) = spare else {
            self.at_cap(i, epoch);
            return;
        };
        let n = registry.num_threads();
        let successor = slot.replicas.first().map_or((i + 1) % n, |(h, _)| *h) as u32;
        let adoption = match slot.replicas.first() {
            Some((_, replica)) => {
                take_over(&slot.core, &mut replica.lock(), epoch, successor, || None)
            }
            // R = 0: nothing was replicated; queued tasks stay reachable through the old deque.
            None => take_over(
                &slot.core,
                &mut Replica::new(epoch),
                epoch,
                successor,
                || None,
            ),
        };
        let Ok(adoption) = adoption else {
            // Cannot happen with one monitor; give the reserved thread back.
            registry.spares_started.fetch_sub(1, Ordering::AcqRel);
            return;
        };
        let mut tasks = adoption.tasks;
        // The in-hand task may have come from another CPU's queue or an injector, so this CPU's
        // replica need not know it: always look at the slot.
        if let Some(t) = slot.core.in_hand()
            && !t.claim().is_claimed()
            && !tasks.iter().any(|a| Arc::ptr_eq(a, &t))
        {
            tasks.push(t);
        }
        self.reoffer_all();
        self.restore_capacity(i, spare_no, tasks);
    }

    /// The spare-thread cap is reached: the stalled worker is *not* fenced (it keeps its CPU and
    /// carries on when it resumes). Its queued tasks stay reachable by stealing, and copies of
    /// its unclaimed replicated tasks, including the one in hand, go to the injectors, so a
    /// crashed worker loses nothing either; the claim decides which copy runs. Counted once per
    /// stall in `takeovers_without_replacement` (and once in `lease_expiries`).
    fn at_cap(&mut self, i: usize, epoch: u32) {
        if self.capped[i] == Some(epoch) {
            return;
        }
        self.capped[i] = Some(epoch);
        let registry = Arc::clone(&self.registry);
        let slot = &registry.slots[i];
        self.reoffer(slot.core.in_hand().into_iter().collect());
        self.reoffer_all();
        registry
            .takeovers_without_replacement
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        registry.sleep.wake_all();
    }

    /// Starts a replacement worker for CPU slot `i` (spare thread number `spare_no`, already
    /// reserved) with `tasks` in its fresh deque.
    fn restore_capacity(&mut self, i: usize, spare_no: usize, tasks: Vec<Handle>) {
        let registry = &self.registry;
        let slot = &registry.slots[i];
        let deque = Worker::new_lifo();
        for t in &tasks {
            deque.push(LoggedJob::job_ref(Arc::clone(t)));
        }
        let started = slot.add_generation(deque.stealer()) && {
            let token = slot.core.lease().owner_token();
            start_worker(
                registry,
                i,
                deque,
                token,
                registry.num_threads() + spare_no,
                registry.config.thread_names[i].clone(),
            )
            .is_ok()
        };
        if started {
            registry.replication.record_replacement();
        } else {
            // The OS refused the thread (or this CPU ran out of deque generations): the CPU is
            // left without a worker, and its tasks go to the injectors. Copies may also be in the
            // new deque, which is in the steal set; the claim picks one.
            for t in tasks {
                registry.inject(LoggedJob::job_ref(t));
            }
            self.orphaned[i] = true;
            registry
                .takeovers_without_replacement
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        registry.sleep.wake_all();
    }
}
