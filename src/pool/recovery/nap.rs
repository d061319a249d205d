//! How the lease monitor waits between rounds: a quarter lease while some worker runs, and
//! until woken while every worker is parked.
//!
//! The monitor's round is O(workers) (it judges every lease and syncs every replica). Four
//! hundred rounds a second over 256 workers cost an idle pool about 2% of a CPU, for nothing: a
//! parked worker's lease is never judged (its CPU reads idle), so while every CPU is idle there
//! is nothing to look at. The monitor then naps, and the first CPU to leave idle wakes it.
//!
//! **The hand-shake** is the one the pool's sleep protocol and a Dekker lock use:
//! - the monitor stores `napping`, then reads every CPU's idle mark, and naps only if all are
//!   idle;
//! - a CPU leaves idle with a compare-exchange on its mark, then reads `napping`, and wakes the
//!   monitor if it is set ([`IdleMark::clear`], [`MonitorNap::running`]).
//!
//! A `SeqCst` fence sits between each side's write and its read, so in the fences' single total
//! order either the monitor's fence comes second (its reads see the CPU's exchange: a running
//! CPU, no nap) or the CPU's does (its read sees `napping`: it rings). `SeqCst` accesses alone
//! would do in the C++ model, but loom models only the fences' total order, and on x86 the
//! fence after a locked exchange costs little (this runs once per unpark, beside a futex call).
//! The ring sets `woken` under the lock the monitor waits with, so it cannot fall between the
//! monitor's check and its wait. `loom-tests/tests/monitor_nap.rs` checks this on the code
//! below.
//!
//! The monitor's ordinary tick waits on the same bell ([`MonitorNap::wait`]), so one ring ends
//! either wait: shutdown needs no other way to wake it.
//!
//! A stale ring (the monitor gave up napping while a CPU was ringing) only ends a later nap
//! early. While the monitor does not nap, `napping` is false and a CPU that leaves idle
//! pays one shared load.

use std::time::Duration;

use crate::sync::atomic::{AtomicBool, AtomicU64, Ordering, fence};
use crate::sync::{Arc, Condvar, Mutex};

/// One CPU's idle mark: `epoch + 1` while the owner of that epoch is idle (parked with an
/// empty deque and nothing in hand, not started yet, or exited at shutdown), 0 while it runs.
/// An idle owner's silent heartbeat is not a stall, and while every CPU is idle the monitor
/// naps.
///
/// ```
/// use std::sync::Arc;
/// use replicore::__protocol::{IdleMark, MonitorNap};
///
/// let cpu = IdleMark::new(Arc::new(MonitorNap::new()));
/// assert!(cpu.is_idle(0), "not started yet");
/// cpu.clear(0);
/// assert!(!cpu.is_idle(0), "its owner runs");
/// cpu.mark(1); // a successor (epoch 1) parked: the old owner's clear no longer applies
/// cpu.clear(0);
/// assert!(cpu.is_idle(1));
/// ```
#[derive(Debug)]
pub struct IdleMark {
    word: AtomicU64,
    /// The monitor's nap, shared by every CPU of the pool: leaving idle rings it.
    nap: Arc<MonitorNap>,
}

/// The mark's value that says "the owner of `epoch` is idle".
fn idle_tag(epoch: u32) -> u64 {
    u64::from(epoch) + 1
}

impl IdleMark {
    /// A CPU whose owner of epoch 0 has not started (idle), watched by `nap`'s monitor.
    pub fn new(nap: Arc<MonitorNap>) -> Self {
        IdleMark {
            word: AtomicU64::new(idle_tag(0)),
            nap,
        }
    }

    /// Whether the owner of `epoch` is idle.
    pub fn is_idle(&self, epoch: u32) -> bool {
        self.word.load(Ordering::SeqCst) == idle_tag(epoch)
    }

    /// The owner of `epoch` is idle. The mark only ever grows (`fetch_max`), so an owner fenced
    /// since its last check cannot hide its successor (a newer epoch) from the watch.
    pub fn mark(&self, epoch: u32) {
        self.word.fetch_max(idle_tag(epoch), Ordering::SeqCst);
    }

    /// The owner of `epoch` runs again, unless a newer epoch has set its own mark since. Wakes
    /// the monitor if it naps: this is the CPU's half of the hand-shake.
    pub fn clear(&self, epoch: u32) {
        if self
            .word
            .compare_exchange(idle_tag(epoch), 0, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            // The store-load order the hand-shake needs (see the module docs).
            fence(Ordering::SeqCst);
            self.nap.running();
        }
    }

    /// A replacement under `epoch` is starting: idle (not judged) until its lease begins.
    pub fn set_starting(&self, epoch: u32) {
        self.word.store(idle_tag(epoch), Ordering::SeqCst);
    }
}

/// Where the lease monitor waits between rounds while every CPU is idle (see the module docs).
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use replicore::__protocol::{IdleMark, MonitorNap};
///
/// let nap = Arc::new(MonitorNap::new());
/// let cpu = IdleMark::new(Arc::clone(&nap));
/// std::thread::scope(|s| {
///     // Every CPU is idle: the monitor naps (or, if the CPU already runs, does not).
///     let monitor = s.spawn(|| nap.rest(Duration::from_secs(60), || cpu.is_idle(0)));
///     cpu.clear(0); // the CPU's owner runs: a napping monitor is woken at once
///     monitor.join().unwrap();
/// });
/// // Nothing is idle now, so the monitor does not nap.
/// assert!(!nap.rest(Duration::from_secs(60), || cpu.is_idle(0)));
/// ```
#[derive(Debug, Default)]
pub struct MonitorNap {
    /// The monitor is napping, or about to: a CPU that leaves idle must ring.
    napping: AtomicBool,
    /// A ring the monitor has not consumed yet.
    woken: Mutex<bool>,
    bell: Condvar,
}

impl MonitorNap {
    /// A monitor that is not napping.
    pub fn new() -> Self {
        Self::default()
    }

    /// Naps if `all_idle()`: until a CPU leaves idle ([`IdleMark::clear`]) or
    /// [`ring`](Self::ring), at most `backstop`. Returns at once, `false`, if some CPU runs (the
    /// monitor then waits its usual tick). Returns `true` after a nap.
    ///
    /// `all_idle` must read the CPUs' marks through [`IdleMark::is_idle`], after this call's
    /// fence (see the module docs).
    pub fn rest(&self, backstop: Duration, all_idle: impl Fn() -> bool) -> bool {
        self.napping.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        if !all_idle() {
            // A CPU runs: no nap, so no ring is needed (one that comes anyway only ends a
            // later nap early).
            self.napping.store(false, Ordering::SeqCst);
            return false;
        }
        self.wait(backstop);
        self.napping.store(false, Ordering::SeqCst);
        true
    }

    /// Waits until a ring (one that came since the last wait counts) or `timeout`, whichever
    /// is first: the monitor's tick, and the body of a nap.
    pub fn wait(&self, timeout: Duration) {
        let mut woken = self.woken.lock();
        if !*woken {
            // One wait: a ring, the time-out and a spurious return all end in a round, which is
            // always safe; only a wait that never ends would not be.
            woken = self.bell.wait_timeout(woken, timeout);
        }
        *woken = false;
    }

    /// A CPU left idle (its mark was just cleared with a `SeqCst` exchange): wakes the monitor
    /// if it naps.
    #[inline]
    fn running(&self) {
        if self.napping.load(Ordering::SeqCst) && self.napping.swap(false, Ordering::SeqCst) {
            self.ring();
        }
    }

    /// Ends the monitor's current or next wait now (shutdown, or a CPU that left idle).
    pub fn ring(&self) {
        *self.woken.lock() = true;
        self.bell.notify_one();
    }
}
