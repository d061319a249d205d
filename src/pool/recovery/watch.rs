//! Watching leases, so that detection depends on no single thread.
//!
//! Every worker looks at the CPUs it watches (those it holds replicas of; with `R = 0`, the
//! next `RING_WATCHERS` positions) every `WATCH_EVERY` turns of its scheduling loop (see
//! `seam`), and drives the takeover itself when it finds one stalled (`takeover::drive`, under
//! its own fault id). That is a few CPUs per worker, whatever the pool's size. The monitor looks
//! at every CPU each tick. While some watcher of a stalled CPU is alive, it waits one more tick,
//! marks the CPU in `wanted`, raises `takeover_wanted` and wakes everyone, and then any worker
//! also looks at the marked CPUs: the workers go first. When no watcher is alive (all busy in
//! long tasks, stalled or dead), the monitor drives at once. What counts as a stall is `judge`'s
//! rule.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::judge::{Judgement, Look};
use super::takeover::{Driver, drive};
use crate::pool::registry::Registry;
use crate::sync::atomic::Ordering;

/// What a check of one CPU found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Renewed within the lease, idle, not silent long enough yet, or being judged by someone
    /// else.
    Fine,
    /// Silent for a whole lease but not blocked (busy, or still being measured): not taken over,
    /// but not watching its neighbours either.
    Silent,
    /// Stalled and handled now (driven, or counted at the cap), or already handled at the cap.
    Handled,
    /// Stalled, but within the caller's grace: left to the workers for now.
    Waiting,
}

/// Checks CPU `i` at `now` and drives its takeover as `driver` if its lease has been silent for
/// a full lease plus `grace` and its worker thread is blocked.
pub(crate) fn check(
    registry: &Arc<Registry>,
    i: usize,
    now: Instant,
    driver: Driver,
    grace: Duration,
) -> Verdict {
    let recovery = &registry.recovery;
    let cpu = &recovery.cpus[i];
    if cpu.caller_owned {
        // The user's thread, outside pool calls most of the time: never judged, never taken
        // over. Its queue stays reachable by stealing.
        return Verdict::Fine;
    }
    let look = Look {
        lease: cpu.core.lease(),
        now,
        lease_len: registry.config.lease,
        grace,
        owner_idle: cpu.owner_idle(),
    };
    let judgement = cpu.watch.judge(
        look,
        |epoch| cpu.probe_of(epoch),
        || registry.threads.has_free_seat(),
        || recovery.protocol.record_busy(),
    );
    match judgement {
        Judgement::Fine => Verdict::Fine,
        Judgement::Silent => Verdict::Silent,
        Judgement::Capped => Verdict::Handled,
        Judgement::Waiting => Verdict::Waiting,
        Judgement::Stalled { epoch } => {
            drive(registry, i, epoch, driver);
            Verdict::Handled
        }
    }
}

/// A worker's look at the leases it watches, and at the ones the monitor marked as waiting for
/// a driver, driving any takeover it finds due as `me`.
#[cold]
pub(crate) fn look_around(registry: &Arc<Registry>, me: usize, fault_id: usize) {
    let recovery = &registry.recovery;
    let now = Instant::now();
    let driver = Driver {
        successor: me,
        fault_id,
    };
    for &i in recovery.watches[me].iter() {
        check(registry, i, now, driver, Duration::ZERO);
    }
    if recovery.takeover_wanted.load(Ordering::Relaxed) {
        for i in recovery.wanted.iter().filter(|&i| i != me) {
            check(registry, i, now, driver, Duration::ZERO);
        }
    }
}
