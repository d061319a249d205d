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
//! The observer sits behind a lock that is only ever `try_lock`ed and is never held across a
//! fault point, so a thread that stalls or crashes cannot take the judging of a CPU with it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::registry::Registry;
use super::takeover::{Driver, drive};
use super::worker::WorkerThread;
use crate::replication::{LeaseObserver, LeaseState};
use crate::sync::Mutex;
use crate::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Turns of a worker's scheduling loop between two lease checks. A check is an `Instant::now()`
/// and one `try_lock` per watched CPU, so this keeps it far below 1% of a loop turn.
pub(crate) const WATCH_EVERY: u32 = 32;

/// One CPU's shared lease watch.
pub(crate) struct Watch {
    observer: Mutex<LeaseObserver>,
    /// `epoch + 1` of a stall already handled at the spare-thread cap (0: none), so that one
    /// stall counts once, not once per check.
    capped: AtomicU64,
    /// Taken over at the cap or after a failed replacement: no worker owns the CPU any more, so
    /// its silent lease is not a stall.
    orphaned: AtomicBool,
}

/// What a check of one CPU found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Renewed within the lease, parked, orphaned, or being judged by someone else right now.
    Fine,
    /// Expired and handled now (driven, or counted at the cap), or already handled at the cap.
    Handled,
    /// Expired, but within the caller's grace: left to the workers for now.
    Waiting,
}

impl Watch {
    pub(crate) fn new(now: Instant) -> Self {
        Watch {
            observer: Mutex::new(LeaseObserver::new(now)),
            capped: AtomicU64::new(0),
            orphaned: AtomicBool::new(false),
        }
    }

    /// Marks the stall at `epoch` as handled at the cap; `false` if it already was.
    pub(crate) fn mark_capped(&self, epoch: u32) -> bool {
        let tag = u64::from(epoch) + 1;
        self.capped.swap(tag, Ordering::AcqRel) != tag
    }

    pub(crate) fn orphan(&self) {
        self.orphaned.store(true, Ordering::Release);
    }
}

/// Checks CPU slot `i` at `now` and drives its takeover as `driver` if its lease has been silent
/// for a full lease plus `grace`.
pub(crate) fn check(
    registry: &Arc<Registry>,
    i: usize,
    now: Instant,
    driver: Driver,
    grace: Duration,
) -> Verdict {
    let slot = &registry.slots[i];
    let watch = &slot.watch;
    if watch.orphaned.load(Ordering::Acquire) {
        return Verdict::Fine;
    }
    let lease_len = registry.config.lease;
    let epoch = {
        let Some(mut obs) = watch.observer.try_lock() else {
            return Verdict::Fine;
        };
        if slot.parked.load(Ordering::SeqCst) {
            // Idle, not stalled: a full lease starts again when it wakes.
            *obs = LeaseObserver::new(now);
            return Verdict::Fine;
        }
        match obs.observe(slot.core.lease(), now, lease_len) {
            LeaseState::Alive => {
                // Moving again: a later stall of the same epoch is a new one.
                if watch.capped.load(Ordering::Relaxed) != 0 {
                    watch.capped.store(0, Ordering::Release);
                }
                return Verdict::Fine;
            }
            LeaseState::Expired { epoch } => {
                if watch.capped.load(Ordering::Acquire) == u64::from(epoch) + 1 {
                    return Verdict::Handled;
                }
                // Same sample, so only the threshold differs: past the caller's grace too?
                if obs.observe(slot.core.lease(), now, lease_len + grace) == LeaseState::Alive {
                    return Verdict::Waiting;
                }
                epoch
            }
        }
        // The observer's lock is released here: the takeover has fault points.
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
            for &i in &registry.watched_by[self.index] {
                check(registry, i, now, driver, Duration::ZERO);
            }
        }
    }
}
