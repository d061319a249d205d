//! The lease monitor: one low-rate thread per pool that keeps replicas caught up, drops drained
//! deques of retired workers, and is the backstop for lease expiry.
//!
//! Workers judge their neighbours' leases and drive takeovers themselves (`watch`,
//! `takeover`). The monitor is its own thread so that detection still works when every worker
//! is busy with long tasks, stalled or dead. When some watcher of an expired CPU is alive, it
//! gives the workers one more tick (and asks them for help) before it drives itself; when none
//! is, it drives at once. It never enters a fault plan, and no takeover depends on it alone.
//!
//! While every worker is parked it naps (`nap`): an idle pool costs it nothing, whatever its
//! size. The first worker to leave idle wakes it.
//!
//! After `terminate` it keeps watching while the workers drain (a worker can still stall, and a
//! fenced one may still be running a task), wakes the idle workers every tick so that they see a
//! fenced worker that crashed for good, and exits once every worker thread has exited: a dropped
//! pool drains in the background with nobody waiting for it.

use std::io;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::takeover::{Driver, catch_up, reoffer, reoffer_due};
use super::watch::{Verdict, check};
use crate::pool::registry::Registry;
use crate::replication::Claimable;
use crate::sync::atomic::Ordering;

/// How often the monitor looks: a quarter lease, so an expiry is seen within 1.25 leases,
/// and never more often than every 250 µs.
fn tick(lease: Duration) -> Duration {
    (lease / 4).max(Duration::from_micros(250))
}

/// The longest nap while every worker is parked. A nap ends when a CPU leaves idle
/// (`nap::MonitorNap::running`), so this is a backstop only: a round a second costs an idle
/// 256-worker pool a few microseconds of CPU.
const IDLE_BACKSTOP: Duration = Duration::from_secs(1);

/// Whether the monitor has nothing to look at: no drain under way, no expiry waiting for a
/// driver, every CPU's owner idle (parked, not started, or exited), and no re-offer pending. Reads each idle mark
/// with `SeqCst`, as the nap's hand-shake requires.
fn all_idle(registry: &Registry) -> bool {
    !registry.terminating.load(Ordering::SeqCst)
        && !registry.recovery.takeover_wanted.load(Ordering::SeqCst)
        && registry.recovery.cpus.iter().all(|cpu| cpu.owner_idle())
        && registry.recovery.pending.lock().is_empty()
}

/// Starts the monitor thread.
pub(crate) fn start_monitor(registry: &Arc<Registry>) -> io::Result<JoinHandle<()>> {
    let reg = Arc::clone(registry);
    std::thread::Builder::new()
        .name("replicore-monitor".into())
        .spawn(move || run(reg))
}

fn run(registry: Arc<Registry>) {
    let lease = registry.config.lease;
    let n = registry.num_threads();
    while !registry.recovery.monitor_stop.load(Ordering::Acquire) {
        // While every worker is parked there is no lease to judge: nap until one runs. Otherwise
        // wait a tick on the nap's bell, so that shutdown can wake the monitor at once instead
        // of waiting out the tick (a quarter lease). An early wake-up only makes one round come
        // sooner.
        let nap = &registry.recovery.monitor_nap;
        if !nap.rest(IDLE_BACKSTOP, || all_idle(&registry)) {
            nap.wait(tick(lease));
        }
        if registry.recovery.monitor_stop.load(Ordering::Acquire) {
            break;
        }
        if registry.terminating.load(Ordering::Acquire) {
            if registry.threads.all_exited() {
                break;
            }
            registry.sleep.wake_all();
        }
        // While terminating, a watcher may have exited for good: drive at once, without grace.
        let grace = if registry.terminating.load(Ordering::Acquire) {
            Duration::ZERO
        } else {
            tick(lease)
        };
        registry.recovery.protocol.record_monitor_round();
        sync_replicas(&registry);
        reoffer_due(
            &registry,
            Instant::now(),
            registry.terminating.load(Ordering::Acquire),
        );
        {
            // One epoch pin for all the lists (see `find_work`): a first pin per list would
            // scan every thread that ever pinned each 128 pins, on every tick.
            let _pin = crossbeam_epoch::pin();
            for place in registry.workers.iter() {
                place.generations.prune();
            }
        }
        registry
            .recovery
            .external
            .lock()
            .retain(|t| !t.claim().is_claimed());
        let now = Instant::now();
        let driver = |i: usize| Driver {
            // The fence names the CPU's first replica holder as the new holder, as a worker
            // driving it would; with `R = 0`, the next position.
            successor: registry.recovery.cpus[i]
                .replica_holders
                .first()
                .map_or((i + 1) % n, |&h| h),
            // The monitor never enters a fault plan, so its fault id is never addressed.
            fault_id: usize::MAX,
        };
        let verdicts: Vec<Verdict> = (0..n)
            .map(|i| check(&registry, i, now, driver(i), grace))
            .collect();
        let mut waiting = false;
        let mut wanted = Vec::new();
        for i in (0..n).filter(|&i| verdicts[i] == Verdict::Waiting) {
            // The grace is for a watcher that will get to it first. If none of this CPU's
            // watchers renewed its own lease within the last lease (all busy in long tasks,
            // stalled or dead), no one will: drive now.
            // A caller-owned CPU always reads `Fine` but its worker (the user's thread) may
            // never come back into the pool: it does not count as a watcher.
            let alive =
                |w: usize| verdicts[w] == Verdict::Fine && !registry.recovery.cpus[w].caller_owned;
            let some_watcher_alive = registry.recovery.cpus[i].watchers.iter().any(|&w| alive(w));
            if some_watcher_alive {
                waiting = true;
                wanted.push(i);
            } else {
                check(&registry, i, now, driver(i), Duration::ZERO);
            }
        }
        // Expiries no worker has handled yet: every worker also checks those until they are.
        registry.recovery.wanted.replace(wanted);
        if registry
            .recovery
            .takeover_wanted
            .swap(waiting, Ordering::Relaxed)
            != waiting
            && waiting
        {
            registry.sleep.wake_all();
        }
    }
}

/// Every replica catches up with its CPU's log (never blocking the owner). A replica whose lock
/// is taken (a takeover is applying it, or stalled or crashed while applying it) is skipped this
/// tick.
fn sync_replicas(registry: &Registry) {
    for cpu in registry.recovery.cpus.iter() {
        for replica in cpu.replicas.iter() {
            if let Some(mut replica) = replica.try_lock() {
                let redirected = catch_up(registry, &cpu.core, &mut replica);
                drop(replica);
                reoffer(registry, redirected);
            }
        }
    }
}
