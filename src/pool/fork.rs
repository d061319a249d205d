//! When `join` forks: most joins are two plain calls, and a few queue one half.
//!
//! rayon's `join` pushes one half onto the worker's deque and pops it back after running the
//! other: a push, a pop with a `SeqCst` fence, and a latch, on every call, whether or not any
//! worker could take the half. For fine recursion (fib, a tree sum) that is most of the time
//! spent. Heartbeat scheduling (Acar, Charguéraud, Guatto, Rainey and Sieczkowski, PLDI 2018;
//! Spice; chili) showed that publishing only now and then loses almost no parallelism. Here a
//! `join` *forks* (queues A while B runs, see `join`) only when that can help, and otherwise runs
//! B, then A, as calls. It forks when:
//!
//! 1. **the window is short**: its worker's deque holds fewer than [`FORK_WINDOW`] tasks, so
//!    every busy worker keeps a few halves where thieves and a successor after a takeover can
//!    take them, and they are the biggest ones left on its path: a half popped back or stolen
//!    is replaced at the next join, the top of what remains (lazy binary splitting, Tzannes,
//!    Caragea, Barua and Vishkin, PPoPP 2010, splits on the same test);
//! 2. **some worker is hungry** (searching and finding nothing, or parked; see [`Hunger`]), so
//!    coarse and unbalanced work spreads at once, as with an eager push (the first join after a
//!    fork and one in [`LOOK_EVERY`] after it look, so a hungry worker is seen within a few
//!    nanoseconds of joins);
//! 3. **it is every [`FORK_EVERY`]th join** of its worker, so halves deeper in the tree become
//!    stealable too, without anyone asking (the join count is the heartbeat: no thread ticks,
//!    so an idle pool costs nothing).
//!
//! A plain call costs a thread-local read, a `Cell` update, the deque's length (two loads of a
//! line that only pushes, pops and steals write) and a compare, and in one join of eight a relaxed
//! load of a line that changes only when a worker goes idle or finds work. A forked join is
//! rayon's, with the halves' roles swapped.
//!
//! What a plain call gives up: its A can only run after its B, on the same worker. If B
//! *blocks*, that A waits for it, and a takeover of the blocked CPU adopts the queued halves but
//! not A. See `ARCHITECTURE.md`, "A join", and `examples/join_blocking.rs`.

use std::cell::Cell;

use crossbeam_utils::CachePadded;

use crate::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Tasks a worker keeps on its deque before a `join` may run as plain calls.
pub const FORK_WINDOW: usize = 3;

/// Past the window, one `join` in this many still forks. A plain join takes 2-3 ns, so this beats
/// every few microseconds while a worker joins, far more often than a 100 µs heartbeat, while
/// the forks it adds (each a deque push and a fenced pop, ~40 ns) stay near 0.05 ns per join. At
/// 64 they cost a chili-style tree sum about a tenth of its time.
pub const FORK_EVERY: u32 = 1024;

/// Past the window, one `join` in this many looks at the [`Hunger`] count.
pub const LOOK_EVERY: u32 = 8;

/// How many of a pool's workers are hungry: counted in after a few searches in a row found
/// nothing (parked workers stay counted), out once a search finds a task or the worker stops
/// waiting (`WorkerThread::wait_for`).
///
/// Past its window, a worker reads it in the first `join` after a fork and in one `join` in
/// [`LOOK_EVERY`] (relaxed). It is a hint, so relaxed is enough: a stale read forks one `join`
/// sooner or later. Nothing is lost either way, because a `join` that does not fork runs both
/// halves itself; and a hungry worker that parks is woken by the fork's push
/// (`Sleep::new_local_work`), or, if it missed that, by the next one.
///
/// The same count, less the parked workers, is how many workers are awake and searching: a
/// fork's push wakes a sleeper only when there are none (see `WorkerThread::push_unfenced`).
///
/// Each position has its own mark, so that the count never keeps a worker that will not come
/// back: a takeover clears the mark of the CPU it fences ([`fed`](Self::fed) from the driver),
/// and the old owner's own `fed`, if it ever resumes, then finds the mark clear and changes
/// nothing.
///
/// Internal; exported only under `--cfg loom` for the model checker.
///
/// ```
/// use replicore::__protocol::Hunger;
/// let h = Hunger::new(4);
/// h.hungry(2);
/// h.hungry(2); // marks, not counts: the same worker twice is one hungry worker
/// assert_eq!(h.count(), 1);
/// h.fed(2); // say, a takeover fenced position 2 while its worker was stuck mid-search
/// h.fed(2); // the old worker resumes and finds work: nothing left to take back
/// assert_eq!(h.count(), 0);
/// ```
#[derive(Debug)]
pub struct Hunger {
    hungry: CachePadded<AtomicU64>,
    marks: Box<[AtomicBool]>,
}

impl Hunger {
    /// Nobody hungry, among `workers` positions.
    pub fn new(workers: usize) -> Hunger {
        Hunger {
            hungry: CachePadded::new(AtomicU64::new(0)),
            marks: (0..workers).map(|_| AtomicBool::new(false)).collect(),
        }
    }

    /// The worker at `position` found no work: counts it until [`fed`](Self::fed).
    pub fn hungry(&self, position: usize) {
        if !self.marks[position].swap(true, Ordering::Relaxed) {
            self.hungry.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The worker at `position` found work or stopped waiting, or its CPU was taken over.
    pub fn fed(&self, position: usize) {
        if self.marks[position].swap(false, Ordering::Relaxed) {
            self.hungry.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// How many workers are hungry (relaxed: a hint).
    #[inline]
    pub fn count(&self) -> u64 {
        self.hungry.load(Ordering::Relaxed)
    }
}

/// When one worker's `join`s fork: its count of joins (the beat). Owner-only (a `Cell`).
///
/// Internal; exported only under `--cfg loom` for the model checker.
#[derive(Debug, Default)]
pub struct ForkWindow {
    calls: Cell<u32>,
}

impl ForkWindow {
    /// A worker that has not joined yet.
    pub fn new() -> ForkWindow {
        ForkWindow::default()
    }

    /// Whether this `join` should queue its A (see the module docs), given how many tasks the
    /// worker's deque holds (`queued`).
    #[inline]
    pub fn should_fork(&self, queued: usize, hunger: &Hunger) -> bool {
        let calls = self.calls.get().wrapping_add(1);
        if queued >= FORK_WINDOW
            && (calls % LOOK_EVERY != 0 || (calls % FORK_EVERY != 0 && hunger.count() == 0))
        {
            self.calls.set(calls);
            return false;
        }
        // The next join looks.
        self.calls.set(calls | (LOOK_EVERY - 1));
        true
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn forks_while_the_deque_is_short_then_on_the_beat() {
        let (w, h) = (ForkWindow::new(), Hunger::new(2));
        assert!((0..FORK_WINDOW).all(|queued| w.should_fork(queued, &h)));
        let forks = (0..10 * FORK_EVERY)
            .filter(|_| w.should_fork(FORK_WINDOW, &h))
            .count();
        assert_eq!(forks, 10);
    }

    #[test]
    fn a_hungry_worker_is_seen_within_eight_joins_and_then_every_join_forks() {
        let (w, h) = (ForkWindow::new(), Hunger::new(2));
        let forks = |n: u32| (0..n).filter(|_| w.should_fork(FORK_WINDOW, &h)).count();
        assert_eq!(forks(LOOK_EVERY * 4), 0, "nobody hungry: plain calls only");
        h.hungry(1);
        assert_eq!(h.count(), 1);
        // The next looking join forks; the first join after a fork looks again, so while the
        // worker stays hungry every join forks.
        assert_eq!(
            forks(LOOK_EVERY),
            1,
            "one of the next joins looks, and forks"
        );
        assert_eq!(
            forks(LOOK_EVERY),
            LOOK_EVERY as usize,
            "then every join looks, and forks"
        );
        h.fed(1);
        assert_eq!(
            forks(1),
            0,
            "the join after a fork looks once more, and sees nobody"
        );
        assert_eq!(forks(LOOK_EVERY * 2), 0);
    }
}
