//! When `join` forks (`src/pool/fork.rs`): a worker whose deque holds its window of halves runs
//! its `join`s as two calls until one of them sees another worker hungry; that one queues A (the
//! half `pool::join` offers), and the hungry worker takes it, or the owner pops it back. Whatever
//! the interleaving, every A runs exactly once, the joins return, a hungry worker is noticed
//! within `LOOK_EVERY` joins, and it is never left asleep (a lost wake-up shows as a loom
//! deadlock).
//!
//! As in `deque.rs`, crossbeam's deque is not loom-instrumented, so the owner's deque is one slot
//! taken through the shared claim word; the fork decision, the hunger count, the stack job and
//! the sleep protocol are the pool's own code.
#![cfg(loom)]

use replicore_loom_tests::model;

use loom::sync::Arc;
use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use loom::thread;
use replicore::__protocol::{
    Claim, FORK_WINDOW, ForkWindow, Hunger, JobRef, LOOK_EVERY, Latch, Sleep, SleepLatch, StackJob,
};

/// The join latch without a registry: the owner spins on it (parking is `sleep.rs`'s model).
struct ProbeLatch(SleepLatch);

impl Latch for ProbeLatch {
    unsafe fn set(this: *const Self) {
        // SAFETY: valid on entry; `set` is the last access.
        unsafe { (*this).0.set() };
    }
}

/// The owner's deque, reduced to one slot: filled by a fork, taken through `claim`.
struct Deque {
    job: loom::sync::Mutex<Option<JobRef>>,
    claim: Claim,
}

impl Deque {
    fn take(&self) -> Option<JobRef> {
        let job = (*self.job.lock().unwrap())?;
        self.claim.try_claim().then_some(job)
    }
}

struct Pool {
    hunger: Hunger,
    sleep: Sleep,
    deque: Deque,
    owner_done: AtomicBool,
}

/// Worker 1, as `WorkerThread::wait_for`: counted hungry after its first failed search; searches,
/// gets sleepy, searches again, parks. Leaves once it ran something or the owner finished.
fn hungry_worker(pool: &Pool) {
    let found = || {
        pool.deque.take().map(|job| {
            // SAFETY: the claim we won is the job's single start; the owner keeps it alive until
            // its latch is set.
            unsafe { job.execute() };
        })
    };
    let mut counted = false;
    loop {
        if found().is_some() || pool.owner_done.load(Ordering::Acquire) {
            break;
        }
        if !counted {
            pool.hunger.hungry(1);
            counted = true;
        }
        let token = pool.sleep.get_sleepy();
        if found().is_some() || pool.owner_done.load(Ordering::Acquire) {
            break;
        }
        pool.sleep.sleep(1, token, None);
    }
    if counted {
        pool.hunger.fed(1);
    }
}

/// Worker 0, whose deque holds its window of older halves already (not modelled: nobody takes
/// them here), runs up to [`LOOK_EVERY`] `join`s, one after another, as `pool::join` does, and
/// stops after one forks; returns how many joins it ran and whether one forked.
fn owner_joins(pool: &Pool, runs: &Arc<AtomicUsize>) -> (usize, bool) {
    let window = ForkWindow::new();
    assert!(
        window.should_fork(FORK_WINDOW - 1, &pool.hunger),
        "a short deque forks"
    );
    let mut joins = 0;
    let mut forked = false;
    while joins < LOOK_EVERY as usize && !forked {
        joins += 1;
        let r = runs.clone();
        let a = move || {
            r.fetch_add(1, Ordering::Relaxed);
            7usize
        };
        forked = window.should_fork(FORK_WINDOW, &pool.hunger);
        let ra = if !forked {
            // Two calls: B (nothing), then A.
            a()
        } else {
            let job_a = StackJob::new(a, ProbeLatch(SleepLatch::new()));
            // SAFETY: `job_a` outlives its handle: we pop it back or wait for its latch.
            *pool.deque.job.lock().unwrap() = Some(unsafe { job_a.as_job_ref() });
            pool.sleep.new_local_work(|| pool.hunger.count());
            // B: nothing.
            if pool.deque.take().is_some() {
                // SAFETY: the claim we won makes us A's only user.
                (unsafe { job_a.take_func() })()
            } else {
                while !job_a.latch.0.probe() {
                    thread::yield_now();
                }
                // SAFETY: the latch is set.
                unsafe { job_a.take_result() }.into_return_value()
            }
        };
        assert_eq!(ra, 7);
    }
    pool.owner_done.store(true, Ordering::Release);
    // A worker that finishes wakes a sleeper when it next queues anything; stand in for that.
    pool.sleep.new_injected_work();
    (joins, forked)
}

fn run(hungry_first: bool) {
    let pool = Arc::new(Pool {
        hunger: Hunger::new(3),
        sleep: Sleep::new(2),
        deque: Deque {
            job: loom::sync::Mutex::new(None),
            claim: Claim::new(),
        },
        owner_done: AtomicBool::new(false),
    });
    if hungry_first {
        // A third worker already searched and found nothing: the join must fork.
        pool.hunger.hungry(2);
    }
    let runs = Arc::new(AtomicUsize::new(0));
    let thief = {
        let pool = pool.clone();
        thread::spawn(move || hungry_worker(&pool))
    };
    let (joins, forked) = owner_joins(&pool, &runs);
    thief.join().unwrap();
    if hungry_first {
        assert!(
            forked,
            "within {LOOK_EVERY} joins, one sees the hungry worker and forks"
        );
        pool.hunger.fed(2);
    }
    assert_eq!(
        runs.load(Ordering::Relaxed),
        joins,
        "each A runs exactly once"
    );
    assert_eq!(pool.hunger.count(), 0, "every hungry mark is taken back");
}

#[test]
fn join_runs_b_once_whether_or_not_it_sees_the_hunger() {
    model(3, || run(false));
}

#[test]
fn join_that_sees_a_hungry_worker_forks_and_b_runs_once() {
    model(3, || run(true));
}
