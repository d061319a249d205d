//! Judging leases: a per-CPU [`Watch`] that any thread can consult, so detection depends on no
//! single thread.
//!
//! Every worker checks the CPUs it holds replicas of (with `R = 0`, every other CPU) every
//! [`WATCH_EVERY`] turns of its scheduling loop, and drives the takeover itself when it finds one
//! expired (`takeover::drive`, under its own fault id). The monitor checks every CPU each tick.
//! While some watcher of an expired CPU is alive, it waits one more tick, raises
//! `takeover_wanted` and wakes everyone, and then any worker checks every CPU: the workers go
//! first. When no watcher is alive (all busy in long tasks, stalled or dead), the monitor drives
//! at once.
//!
//! **Blocked, not busy.** A lease silent for a whole lease is only taken over if its worker
//! thread is *blocked*: not runnable now, and off its CPU for most of the time it was watched
//! (sleeping, I/O, a lock, a page fault, or a fault-injected stall or crash, which park the
//! thread). A thread that is running or waiting for a CPU (state `R`) is *busy*: a long
//! computation, or an overloaded machine. It has lost no capacity and its queue is reachable by
//! stealing, so it is left alone, counted in `PoolStats::busy_expiries`, and probed again a
//! quarter lease later (not at every look). A thread that is
//! blocked now but was mostly on its CPU is measured again before anything is decided. The
//! measurement starts once the lease has been silent for half a lease, so the verdict comes at
//! the full lease, as before. Where the OS gives no view of the thread (off Linux, or no thread
//! owns the epoch), the lease alone decides. See `probe`.
//!
//! The judge sits behind a lock that is only ever `try_lock`ed and is never held across a fault
//! point, so a thread that stalls or crashes cannot take the judging of a CPU with it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::registry::{CoreSlot, Registry};
use super::takeover::{Driver, drive};
use super::worker::WorkerThread;
use crate::replication::{LeaseObserver, LeaseState};
use crate::sync::Mutex;
use crate::sync::atomic::{AtomicU64, Ordering};

/// Turns of a worker's scheduling loop between two lease checks. A check is an `Instant::now()`
/// and one `try_lock` per watched CPU, so this keeps it far below 1% of a loop turn.
pub(crate) const WATCH_EVERY: u32 = 32;

/// One CPU's shared lease watch.
pub(crate) struct Watch {
    judge: Mutex<Judge>,
    /// `epoch + 1` of a stall already handled at the spare-thread cap (0: none), so that one
    /// stall counts once, not once per check.
    capped: AtomicU64,
}

/// What the watch remembers between two checks of one CPU.
struct Judge {
    observer: LeaseObserver,
    /// The owner thread's CPU time when this silence was first measured.
    sample: Option<CpuSample>,
    /// This silence was already counted as busy.
    busy_counted: bool,
    /// After a busy verdict, the owner is not probed again before this: a long computation is
    /// checked every quarter lease, not at every look (each probe reads a `/proc` file).
    recheck_at: Option<Instant>,
}

#[derive(Clone, Copy)]
struct CpuSample {
    epoch: u32,
    at: Instant,
    cpu: Duration,
}

/// How the owner thread spent a silent lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Activity {
    /// Running or runnable: not a stall.
    Busy,
    /// Not runnable, and mostly off its CPU (or no view of the thread): a stall.
    Blocked,
    /// Not enough measured yet, or not runnable now but mostly on its CPU: look again later.
    Undecided,
}

/// What a check of one CPU found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Renewed within the lease, idle, not silent long enough yet, or being judged by someone
    /// else.
    Fine,
    /// Silent for a whole lease but not blocked (busy, or still being measured): not taken over,
    /// but not watching its neighbours either.
    Silent,
    /// Expired and handled now (driven, or counted at the cap), or already handled at the cap.
    Handled,
    /// Expired, but within the caller's grace: left to the workers for now.
    Waiting,
}

impl Watch {
    pub(crate) fn new(now: Instant) -> Self {
        Watch {
            judge: Mutex::new(Judge {
                observer: LeaseObserver::new(now),
                sample: None,
                busy_counted: false,
                recheck_at: None,
            }),
            capped: AtomicU64::new(0),
        }
    }

    /// Marks the stall at `epoch` as handled at the cap; `false` if it already was.
    pub(crate) fn mark_capped(&self, epoch: u32) -> bool {
        let tag = u64::from(epoch) + 1;
        self.capped.swap(tag, Ordering::AcqRel) != tag
    }
}

impl Judge {
    /// The lease moved (or the owner is idle): a new silence starts from scratch.
    fn reset(&mut self) {
        self.sample = None;
        self.busy_counted = false;
        self.recheck_at = None;
    }

    /// How the owner of `epoch` has spent the silence so far, from the OS's view of its thread.
    fn activity(&mut self, slot: &CoreSlot, epoch: u32, now: Instant, lease: Duration) -> Activity {
        let Some(probe) = slot.probe_of(epoch) else {
            return Activity::Blocked;
        };
        if probe.is_runnable() == Some(true) {
            return Activity::Busy;
        }
        let Some(cpu) = probe.cpu_time() else {
            // The thread is gone: nothing runs this CPU.
            return Activity::Blocked;
        };
        match self.sample {
            Some(s) if s.epoch == epoch && now.saturating_duration_since(s.at) >= lease / 4 => {
                let wall = now.saturating_duration_since(s.at);
                if cpu.saturating_sub(s.cpu) * 2 <= wall {
                    return Activity::Blocked;
                }
                // Blocked now, but mostly on its CPU: measure a fresh window.
                self.sample = Some(CpuSample { epoch, at: now, cpu });
                Activity::Undecided
            }
            Some(s) if s.epoch == epoch => Activity::Undecided,
            _ => {
                self.sample = Some(CpuSample { epoch, at: now, cpu });
                Activity::Undecided
            }
        }
    }

    /// Starts measuring the owner's CPU time, once per silence.
    fn start_sample(&mut self, slot: &CoreSlot, epoch: u32, now: Instant) {
        if self.sample.is_some_and(|s| s.epoch == epoch) {
            return;
        }
        self.sample = slot
            .probe_of(epoch)
            .and_then(|p| p.cpu_time())
            .map(|cpu| CpuSample { epoch, at: now, cpu });
    }
}

/// Checks CPU slot `i` at `now` and drives its takeover as `driver` if its lease has been silent
/// for a full lease plus `grace` and its worker thread is blocked.
pub(crate) fn check(
    registry: &Arc<Registry>,
    i: usize,
    now: Instant,
    driver: Driver,
    grace: Duration,
) -> Verdict {
    let slot = &registry.slots[i];
    if slot.caller_owned {
        // The user's thread, outside pool calls most of the time: never judged, never taken
        // over. Its queue stays reachable by stealing.
        return Verdict::Fine;
    }
    let watch = &slot.watch;
    let lease_len = registry.config.lease;
    let epoch = {
        let Some(mut judge) = watch.judge.try_lock() else {
            return Verdict::Fine;
        };
        if slot.owner_idle() {
            // Parked, not started yet, or exited: a full lease starts again when it runs.
            judge.observer = LeaseObserver::new(now);
            judge.reset();
            return Verdict::Fine;
        }
        let lease = slot.core.lease();
        let epoch = match judge.observer.observe(lease, now, lease_len / 2) {
            LeaseState::Alive => {
                // Moving again: a later stall of the same epoch is a new one.
                judge.reset();
                if watch.capped.load(Ordering::Relaxed) != 0 {
                    watch.capped.store(0, Ordering::Release);
                }
                return Verdict::Fine;
            }
            LeaseState::Expired { epoch } => epoch,
        };
        // Silent for half a lease: start measuring how its thread spends the silence.
        judge.start_sample(slot, epoch, now);
        // Same sample, so only the threshold differs: silent for a full lease yet?
        if judge.observer.observe(lease, now, lease_len) == LeaseState::Alive {
            return Verdict::Fine;
        }
        if judge.recheck_at.is_some_and(|t| now < t) {
            return Verdict::Silent;
        }
        match judge.activity(slot, epoch, now, lease_len) {
            Activity::Blocked => {}
            Activity::Busy => {
                judge.recheck_at = Some(now + lease_len / 4);
                if !judge.busy_counted {
                    judge.busy_counted = true;
                    registry
                        .busy_expiries
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                return Verdict::Silent;
            }
            Activity::Undecided => return Verdict::Silent,
        }
        if watch.capped.load(Ordering::Acquire) == u64::from(epoch) + 1
            && !registry.threads.has_free_seat()
        {
            // Handled at the spare-thread cap already; tried again once a seat is free.
            return Verdict::Handled;
        }
        // Past the caller's grace too?
        if judge.observer.observe(lease, now, lease_len + grace) == LeaseState::Alive {
            return Verdict::Waiting;
        }
        epoch
        // The judge's lock is released here: the takeover has fault points.
    };
    drive(registry, i, epoch, driver);
    Verdict::Handled
}

impl WorkerThread {
    /// Called every turn of the scheduling loop (not fenced): every [`WATCH_EVERY`] turns, checks
    /// the leases this worker watches, or every lease when the monitor asked for help.
    #[inline]
    pub(crate) fn maybe_watch(&self) {
        let left = self.watch_countdown.get();
        if left > 0 {
            self.watch_countdown.set(left - 1);
            return;
        }
        self.watch_countdown.set(WATCH_EVERY);
        self.watch(self.registry.takeover_wanted.load(Ordering::Relaxed));
    }

    #[cold]
    fn watch(&self, everyone: bool) {
        let registry = &self.registry;
        let now = Instant::now();
        let driver = Driver {
            successor: self.index,
            fault_id: self.fault_id,
        };
        if everyone || registry.config.replication_factor == 0 {
            for i in (0..registry.num_threads()).filter(|&i| i != self.index) {
                check(registry, i, now, driver, Duration::ZERO);
            }
        } else {
            for &i in &registry.watches[self.index] {
                check(registry, i, now, driver, Duration::ZERO);
            }
        }
    }
}
