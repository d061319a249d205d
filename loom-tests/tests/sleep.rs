//! The pool's sleep/wake protocol (`src/pool/sleep.rs`), run on loom threads: no task is left
//! behind while every worker sleeps, and a latch setter always wakes its parked waiter. A lost
//! wake-up shows up as a loom deadlock (every thread blocked).
#![cfg(loom)]

use replicore_loom_tests::model;

use loom::sync::Arc;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;
use replicore::__protocol::{Sleep, SleepLatch};

/// A queue of interchangeable tasks, reduced to a count: the sleep protocol only needs to know
/// whether a search finds something.
fn try_take(queue: &AtomicUsize) -> bool {
    let mut n = queue.load(Ordering::Acquire);
    while n > 0 {
        match queue.compare_exchange(n, n - 1, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return true,
            Err(now) => n = now,
        }
    }
    false
}

/// The worker's idle path as in `WorkerThread::wait_for`: search, get sleepy, search again, park.
fn worker_takes_one(sleep: &Sleep, index: usize, queue: &AtomicUsize) {
    loop {
        if try_take(queue) {
            return;
        }
        let token = sleep.get_sleepy();
        if try_take(queue) {
            return;
        }
        sleep.sleep(index, token, None);
    }
}

#[test]
fn injected_task_wakes_the_only_worker() {
    model(2, || {
        let sleep = Arc::new(Sleep::new(1));
        let queue = Arc::new(AtomicUsize::new(0));
        let worker = {
            let (sleep, queue) = (sleep.clone(), queue.clone());
            thread::spawn(move || worker_takes_one(&sleep, 0, &queue))
        };
        queue.fetch_add(1, Ordering::Release);
        sleep.new_injected_work();
        worker.join().unwrap();
        assert_eq!(queue.load(Ordering::Relaxed), 0);
    });
}

#[test]
fn two_injected_tasks_reach_two_sleepy_workers() {
    model(2, || {
        let sleep = Arc::new(Sleep::new(2));
        let queue = Arc::new(AtomicUsize::new(0));
        let workers: Vec<_> = (0..2)
            .map(|i| {
                let (sleep, queue) = (sleep.clone(), queue.clone());
                thread::spawn(move || worker_takes_one(&sleep, i, &queue))
            })
            .collect();
        for _ in 0..2 {
            queue.fetch_add(1, Ordering::Release);
            sleep.new_injected_work();
        }
        for w in workers {
            w.join().unwrap();
        }
        assert_eq!(queue.load(Ordering::Relaxed), 0);
    });
}

#[test]
fn latch_setter_wakes_its_parked_waiter() {
    model(2, || {
        let sleep = Arc::new(Sleep::new(1));
        let latch = Arc::new(SleepLatch::new());
        let payload = Arc::new(AtomicUsize::new(0));
        let waiter = {
            let (sleep, latch, payload) = (sleep.clone(), latch.clone(), payload.clone());
            thread::spawn(move || {
                // As `WorkerThread::wait_until` with no other work around.
                while !latch.probe() {
                    let token = sleep.get_sleepy();
                    if latch.probe() {
                        break;
                    }
                    sleep.sleep(0, token, Some(&latch));
                }
                // The setter's write is visible once the latch reads set.
                assert_eq!(payload.load(Ordering::Relaxed), 7);
            })
        };
        payload.store(7, Ordering::Relaxed);
        if latch.set() {
            sleep.wake_specific(0);
        }
        waiter.join().unwrap();
    });
}

#[test]
fn wake_all_reaches_sleepy_and_parked_workers() {
    model(2, || {
        let sleep = Arc::new(Sleep::new(2));
        let stop = Arc::new(AtomicUsize::new(0));
        let workers: Vec<_> = (0..2)
            .map(|i| {
                let (sleep, stop) = (sleep.clone(), stop.clone());
                thread::spawn(move || {
                    // Termination as in the worker's main loop: `done()` checked after searching.
                    while stop.load(Ordering::Acquire) == 0 {
                        let token = sleep.get_sleepy();
                        if stop.load(Ordering::Acquire) != 0 {
                            break;
                        }
                        sleep.sleep(i, token, None);
                    }
                })
            })
            .collect();
        stop.store(1, Ordering::SeqCst);
        sleep.wake_all();
        for w in workers {
            w.join().unwrap();
        }
    });
}
