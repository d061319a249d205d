//! When `join` forks: most joins are two plain calls, and a few queue their second half.
//!
//! rayon's `join` pushes B onto the worker's deque and pops it back after A: a push, a pop with a
//! `SeqCst` fence, and a latch, on every call, whether or not any worker could take B. For fine
//! recursion (fib, a tree sum) that is most of the time spent. Heartbeat scheduling (Acar,
//! Charguéraud, Guatto, Rainey and Sieczkowski, PLDI 2018; Spice; chili) showed that publishing
//! only now and then loses almost no parallelism. Here a `join` *forks* (queues B, as rayon's
//! does) only when that can help, and otherwise runs B, then A, as calls. It forks when:
//!
//! 1. **the window is short**: its worker has fewer than [`FORK_WINDOW`] forked joins open, so
//!    the top of every worker's task, the biggest pieces, always sits on its deque where thieves
//!    and a successor after a takeover can take it;
//! 2. **some worker is hungry** (searching and finding nothing, or parked; see [`Hunger`]), so
//!    coarse and unbalanced work spreads at once, as with an eager push (the first join after a
//!    fork and one in [`LOOK_EVERY`] after it look, so a hungry worker is seen within a few
//!    nanoseconds of joins);
//! 3. **it is every [`FORK_EVERY`]th join** of its worker, so halves deeper in the tree become
//!    stealable too, without anyone asking (the join count is the heartbeat: no thread ticks,
//!    so an idle pool costs nothing).
//!
//! A plain call costs a thread-local read, a `Cell` update and two compares, and in one join of
//! eight a relaxed load of a line that changes only when a worker goes idle or finds work. A
//! forked join is rayon's.
//!
//! What a plain call gives up: its B can only run after its A, on the same worker. If A
//! *blocks*, that B waits for it, and a takeover of the blocked CPU adopts the queued halves but
//! not B. See `ARCHITECTURE.md`, "A join", and `examples/join_blocking.rs`.

use std::cell::Cell;

use crossbeam_utils::CachePadded;

use crate::sync::atomic::{AtomicU64, Ordering};

/// Forked joins a worker keeps open before a `join` may run as plain calls.
pub const FORK_WINDOW: u32 = 3;

/// Past the window, one `join` in this many still forks. A plain join takes 2-3 ns, so this beats
/// every few microseconds while a worker joins, far more often than a 100 µs heartbeat, while
/// the forks it adds (each a deque push and a fenced pop, ~40 ns) stay near 0.05 ns per join. At
/// 64 they cost a chili-style tree sum about a tenth of its time.
pub const FORK_EVERY: u32 = 1024;

/// Past the window, one `join` in this many looks at the [`Hunger`] count.
pub const LOOK_EVERY: u32 = 8;

/// How many of a pool's workers are hungry: counted in after a search found nothing, out once a
/// search finds a task or the worker stops waiting (`WorkerThread::wait_for`).
///
/// Past its window, a worker reads it in the first `join` after a fork and in one `join` in
/// [`LOOK_EVERY`] (relaxed). It is a hint, so relaxed is enough: a stale
/// read forks one `join` sooner or later. Nothing is lost either way, because a `join` that does
/// not fork runs its B itself; and a hungry worker that parks is woken by the fork's push
/// (`Sleep::new_local_work`), or, if it missed that, by the next one.
///
/// Internal; exported only under `--cfg loom` for the model checker.
#[derive(Debug, Default)]
pub struct Hunger {
    hungry: CachePadded<AtomicU64>,
}

impl Hunger {
    /// Nobody hungry.
    pub fn new() -> Hunger {
        Hunger::default()
    }

    /// A worker found no work: counts it until [`fed`](Self::fed).
    pub fn hungry(&self) {
        self.hungry.fetch_add(1, Ordering::Relaxed);
    }

    /// A hungry worker found work, or stopped waiting.
    pub fn fed(&self) {
        self.hungry.fetch_sub(1, Ordering::Relaxed);
    }

    /// How many workers are hungry (relaxed: a hint).
    #[inline]
    pub fn count(&self) -> u64 {
        self.hungry.load(Ordering::Relaxed)
    }
}

/// One worker's forked joins: how many are open, and a count of its joins (the beat).
/// Owner-only (`Cell`s).
///
/// Internal; exported only under `--cfg loom` for the model checker.
#[derive(Debug, Default)]
pub struct ForkWindow {
    open: Cell<u32>,
    calls: Cell<u32>,
}

impl ForkWindow {
    /// No join open.
    pub fn new() -> ForkWindow {
        ForkWindow::default()
    }

    /// Whether this `join` should queue its B (see the module docs); if so, the caller must
    /// call [`closed`](Self::closed) when the join ends.
    #[inline]
    pub fn should_fork(&self, hunger: &Hunger) -> bool {
        let calls = self.calls.get().wrapping_add(1);
        let open = self.open.get();
        if open >= FORK_WINDOW
            && (calls % LOOK_EVERY != 0 || (calls % FORK_EVERY != 0 && hunger.count() == 0))
        {
            self.calls.set(calls);
            return false;
        }
        // The next join looks.
        self.calls.set(calls | (LOOK_EVERY - 1));
        self.open.set(open + 1);
        true
    }

    /// A forked join ended.
    #[inline]
    pub fn closed(&self) {
        self.open.set(self.open.get() - 1);
    }

    /// How many forked joins are open.
    pub fn open(&self) -> u32 {
        self.open.get()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn forks_while_the_window_is_short_then_on_the_beat() {
        let (w, h) = (ForkWindow::new(), Hunger::new());
        for _ in 0..FORK_WINDOW {
            assert!(w.should_fork(&h));
        }
        let forks = (0..10 * FORK_EVERY).filter(|_| w.should_fork(&h)).count();
        assert_eq!(forks, 10);
        assert_eq!(w.open(), FORK_WINDOW + forks as u32);
        for _ in 0..=forks {
            w.closed();
        }
        assert!(w.should_fork(&h), "below the window again");
    }

    #[test]
    fn a_hungry_worker_is_seen_within_eight_joins_and_then_every_join_forks() {
        let (w, h) = (ForkWindow::new(), Hunger::new());
        for _ in 0..FORK_WINDOW {
            assert!(w.should_fork(&h));
        }
        let before = w.open();
        let forks = |n: u32| (0..n).filter(|_| w.should_fork(&h)).count();
        assert_eq!(forks(LOOK_EVERY * 4), 0, "nobody hungry: plain calls only");
        h.hungry();
        assert_eq!(h.count(), 1);
        // The next looking join forks; the first join after a fork looks again, so while the
        // worker stays hungry every join forks.
        assert_eq!(
            forks(LOOK_EVERY),
            LOOK_EVERY as usize,
            "every join looks, and forks"
        );
        h.fed();
        assert_eq!(
            forks(1),
            0,
            "the join after a fork looks once more, and sees nobody"
        );
        assert_eq!(forks(LOOK_EVERY * 2), 0);
        assert_eq!(w.open(), before + LOOK_EVERY);
    }
}
