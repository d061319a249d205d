//! Idle workers: spin briefly, then park, and never park past a new task.
//!
//! One word, `state`, holds a *jobs-event counter* (high 32 bits) and the number of parked
//! workers (low 32 bits).
//!
//! - A worker about to park first makes the counter odd ([`Sleep::get_sleepy`], "someone is
//!   sleepy"), remembers it as its token, searches every queue once more, and then parks only if a
//!   compare-and-swap can add it to the sleeper count *with the counter still equal to its token*.
//! - A publisher of injected work pushes the task, issues a `SeqCst` fence, and reads `state`. If
//!   the counter is odd it bumps it (so every sleepy worker's park attempt fails), and if anyone
//!   is parked it wakes one ([`Sleep::new_injected_work`]).
//!
//! Why nothing is left behind: either the publisher's read comes before the worker's sleepy CAS
//! (then, by the two `SeqCst` fences, the worker's last search sees the task), or it comes after
//! (then the publisher sees an odd counter and bumps it, so the worker's park CAS fails or the
//! publisher sees it in the sleeper count and wakes it). The loom model `sleep.rs` checks this on
//! this very code.
//!
//! `join` halves and scope children pushed to a worker's *own* deque take a cheaper path
//! ([`Sleep::new_local_work`], no fence): the pushing worker is awake and will pop the task itself
//! before it waits for it, so a missed wake-up there costs parallelism for a moment, never the
//! task. A detached `spawn` from a worker uses the fenced path, because its spawner may block
//! without ever popping it. (A scope child that blocks on a sibling it spawned can still wait
//! until some other wake-up, as in rayon.)
//!
//! A worker waiting for a latch (join, scope, install) parks through the same path; the latch's
//! [`SleepLatch`] word tells the setter to wake exactly that worker.
//!
//! **Finding a sleeper.** Besides the count, each parked worker has a bit in a bitmap, set before
//! it joins the count and cleared by whoever wakes it. A wake-up reads the bitmap (one load per
//! 64 beds) and tries only the beds whose bit is set, so its cost does not grow with the number
//! of beds, most of them empty. It cannot miss a counted sleeper: the bit is set (`SeqCst`) before
//! the count is raised, and the waker reads the bitmap after it read the raised count. A bit
//! without a sleeper (it is still deciding, or being woken by someone else) only costs one bed
//! lock: the bed's own flag, under its lock, says whether it is parked.

use crate::sync::atomic::{AtomicU64, AtomicUsize, Ordering, fence};
use crate::sync::{AtomicBits, Condvar, Mutex};

const SLEEPER_MASK: u64 = 0xFFFF_FFFF;
const JEC_ONE: u64 = 1 << 32;

fn jec(state: u64) -> u64 {
    state >> 32
}

fn sleepers(state: u64) -> u64 {
    state & SLEEPER_MASK
}

/// The parking spot of one worker.
#[derive(Debug, Default)]
struct Bed {
    /// `true` while the worker is parked and counted in `state`. Only changed under this lock.
    asleep: Mutex<bool>,
    wake: Condvar,
}

/// The sleep/wake protocol of one pool.
///
/// Internal; exported only under `--cfg loom` for the model checker.
#[derive(Debug)]
pub struct Sleep {
    state: AtomicU64,
    beds: Box<[crossbeam_utils::CachePadded<Bed>]>,
    /// The beds holding a parked (or parking) worker.
    parked: AtomicBits,
}

/// What [`Sleep::sleep`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slept {
    /// New work or a set latch appeared first: the worker did not park.
    Aborted,
    /// The worker parked and was woken.
    Woken,
}

impl Sleep {
    /// Beds for `workers` workers.
    pub fn new(workers: usize) -> Sleep {
        Sleep {
            state: AtomicU64::new(0),
            beds: (0..workers).map(|_| Default::default()).collect(),
            parked: AtomicBits::new(workers),
        }
    }

    /// Announces that the caller is about to park; returns the token for [`sleep`](Self::sleep).
    /// The caller must search for work once more *after* this and park only if it found none.
    pub fn get_sleepy(&self) -> u64 {
        let mut s = self.state.load(Ordering::SeqCst);
        let token = loop {
            if jec(s) % 2 == 1 {
                break jec(s);
            }
            match self.state.compare_exchange_weak(
                s,
                s + JEC_ONE,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => break jec(s) + 1,
                Err(now) => s = now,
            }
        };
        // Pairs with the publisher's fence: our final search sees any task whose publisher read
        // `state` before our CAS.
        fence(Ordering::SeqCst);
        token
    }

    /// Parks worker `index` unless work was published (or `latch` set) since `token` was taken.
    /// Returns when woken; the caller re-checks its condition either way.
    pub fn sleep(&self, index: usize, token: u64, latch: Option<&SleepLatch>) -> Slept {
        let bed = &self.beds[index];
        let mut asleep = bed.asleep.lock();
        if let Some(latch) = latch
            && !latch.fall_asleep()
        {
            return Slept::Aborted;
        }
        // The bit before the count: a waker that sees us counted sees the bit (module docs).
        self.parked.set(index, true);
        let mut s = self.state.load(Ordering::SeqCst);
        loop {
            if jec(s) != token {
                self.parked.set(index, false);
                if let Some(latch) = latch {
                    latch.wake_up();
                }
                return Slept::Aborted;
            }
            match self
                .state
                .compare_exchange_weak(s, s + 1, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => break,
                Err(now) => s = now,
            }
        }
        *asleep = true;
        // Whoever wakes us clears `asleep` and takes us off the sleeper count, under this lock.
        while *asleep {
            asleep = bed.wake.wait(asleep);
        }
        drop(asleep);
        if let Some(latch) = latch {
            latch.wake_up();
        }
        Slept::Woken
    }

    /// A task was pushed where any worker may find it (an injector or inbox): make sure some
    /// worker will look.
    pub fn new_injected_work(&self) {
        // Pairs with the fence in `get_sleepy`: see the module docs.
        fence(Ordering::SeqCst);
        let s = self.bump_if_sleepy(self.state.load(Ordering::SeqCst));
        if sleepers(s) > 0 {
            self.wake_any();
        }
    }

    /// A worker pushed onto its own deque. It will run the task itself if no one steals it, so a
    /// missed wake-up only costs parallelism; this costs one plain load when nobody is idle.
    ///
    /// `hungry()` is how many workers are hungry (`fork::Hunger`: searching without success,
    /// or parked). Those that are not parked are searching and one of them will find the task,
    /// so a sleeper is woken only when there are none: one wake-up per task that no awake
    /// worker is there to take, not one per push. (With hundreds of parked workers, a park and
    /// an unpark per fork was most of a fork-join computation's time.)
    #[inline]
    pub fn new_local_work(&self, hungry: impl FnOnce() -> u64) {
        let s = self.state.load(Ordering::Relaxed);
        // Only a sleepy counter (odd: someone is about to park) or a sleeper needs the slow path;
        // the counter's other bits are just history, so testing `s != 0` would take it on every
        // push once any worker had ever slept.
        if s & (JEC_ONE | SLEEPER_MASK) != 0 {
            let s = self.bump_if_sleepy(s);
            if sleepers(s) > 0 && hungry() <= sleepers(s) {
                self.wake_any();
            }
        }
    }

    /// Wakes every parked worker and fails every pending park attempt (termination, broadcasts).
    pub fn wake_all(&self) {
        fence(Ordering::SeqCst);
        self.bump_if_sleepy(self.state.load(Ordering::SeqCst));
        self.wake_marked(usize::MAX);
    }

    /// Wakes worker `index` if it is parked. Returns whether it was.
    pub fn wake_specific(&self, index: usize) -> bool {
        let bed = &self.beds[index];
        let mut asleep = bed.asleep.lock();
        if *asleep {
            *asleep = false;
            self.parked.set(index, false);
            self.state.fetch_sub(1, Ordering::SeqCst);
            bed.wake.notify_one();
            true
        } else {
            false
        }
    }

    /// If someone is sleepy (odd counter), makes the counter even so their park attempts fail.
    /// Returns the latest state seen. The test is inline: a worker's every push takes it while
    /// any worker is parked, and the counter is rarely odd.
    #[inline]
    fn bump_if_sleepy(&self, s: u64) -> u64 {
        if jec(s) % 2 == 1 {
            self.bump_sleepy(s)
        } else {
            s
        }
    }

    #[cold]
    fn bump_sleepy(&self, mut s: u64) -> u64 {
        while jec(s) % 2 == 1 {
            match self.state.compare_exchange_weak(
                s,
                s + JEC_ONE,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => return s + JEC_ONE,
                Err(now) => s = now,
            }
        }
        s
    }

    fn wake_any(&self) {
        self.wake_marked(1);
    }

    /// Wakes up to `max` parked workers among the marked beds; returns how many it woke.
    fn wake_marked(&self, max: usize) -> usize {
        self.parked
            .iter()
            .filter(|&index| self.wake_specific(index))
            .take(max)
            .count()
    }
}

const UNSET: usize = 0;
const SLEEPING: usize = 1;
const SET: usize = 2;

/// The state word of a latch that a worker may park on.
///
/// Internal; exported only under `--cfg loom` for the model checker.
#[derive(Debug, Default)]
pub struct SleepLatch(AtomicUsize);

impl SleepLatch {
    /// An unset latch.
    pub fn new() -> SleepLatch {
        SleepLatch(AtomicUsize::new(UNSET))
    }

    /// Whether it is set; `Acquire`, so the setter's writes (a job's result) are visible.
    #[inline]
    pub fn probe(&self) -> bool {
        self.0.load(Ordering::Acquire) == SET
    }

    /// Sets it. Returns `true` if the waiter is parked and must be woken by
    /// [`Sleep::wake_specific`]. After this call the latch may already be freed.
    #[inline]
    pub fn set(&self) -> bool {
        self.0.swap(SET, Ordering::AcqRel) == SLEEPING
    }

    /// The waiter marks itself parked (under its bed lock); `false` if the latch is already set.
    fn fall_asleep(&self) -> bool {
        self.0
            .compare_exchange(UNSET, SLEEPING, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// The waiter is awake again; a concurrent `set` wins.
    fn wake_up(&self) {
        let _ = self
            .0
            .compare_exchange(SLEEPING, UNSET, Ordering::AcqRel, Ordering::Acquire);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    /// Waits until `cond` holds; fails the test after 10 s instead of hanging.
    fn within(what: &str, cond: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !cond() {
            assert!(Instant::now() < deadline, "watchdog: {what}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Parks a worker in bed `index` on its own thread; returns the thread.
    fn park_in(sleep: &Arc<Sleep>, index: usize) -> std::thread::JoinHandle<Slept> {
        let sleep = Arc::clone(sleep);
        std::thread::spawn(move || {
            let token = sleep.get_sleepy();
            sleep.sleep(index, token, None)
        })
    }

    fn parked(sleep: &Sleep) -> u64 {
        sleepers(sleep.state.load(Ordering::SeqCst))
    }

    #[test]
    fn each_wake_up_finds_one_sleeper_in_any_word_of_the_bitmap() {
        let sleep = Arc::new(Sleep::new(130));
        let beds = [3, 70, 129];
        let mut threads = Vec::new();
        for (k, &bed) in beds.iter().enumerate() {
            threads.push(park_in(&sleep, bed));
            // One at a time: a second `get_sleepy` would otherwise share the first's token, and
            // whichever parks first makes the other's park attempt fail.
            within("the worker parks", || parked(&sleep) == k as u64 + 1);
        }
        for k in (0..beds.len()).rev() {
            sleep.new_injected_work();
            within("one worker wakes per wake-up", || {
                parked(&sleep) == k as u64
            });
        }
        for t in threads {
            assert_eq!(t.join().unwrap(), Slept::Woken);
        }
        assert!(sleep.parked.is_empty());
    }

    #[test]
    fn wake_all_wakes_every_parked_worker_and_nothing_else() {
        let sleep = Arc::new(Sleep::new(200));
        let mut threads = Vec::new();
        for (k, bed) in [0, 64, 65, 199].into_iter().enumerate() {
            threads.push(park_in(&sleep, bed));
            within("the worker parks", || parked(&sleep) == k as u64 + 1);
        }
        sleep.wake_all();
        within("every worker wakes", || parked(&sleep) == 0);
        for t in threads {
            assert_eq!(t.join().unwrap(), Slept::Woken);
        }
        assert!(!sleep.wake_specific(1), "an empty bed wakes no one");
    }
}
