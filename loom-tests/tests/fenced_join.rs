//! A fenced worker's `join`: B sits in a `SharedJob`, reachable both through a queued handle (any
//! worker may run it) and by its creator taking it back after A. Exactly one side runs B, and when
//! the queued side wins, the creator reads B's result only after it is complete.
#![cfg(loom)]

use replicore_loom_tests::model;

use loom::sync::Arc;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;
use replicore::__protocol::{JobRef, SharedJob};

/// The creator (main thread) races a thief that took the queued handle. B runs once; the
/// creator either ran it itself or waits for `done` and sees the thief's result.
#[test]
fn take_back_races_queued_run() {
    model(3, || {
        let runs = Arc::new(AtomicUsize::new(0));
        let job = {
            let runs = runs.clone();
            SharedJob::new(move || {
                runs.fetch_add(1, Ordering::Relaxed);
                7usize
            })
        };
        // SAFETY: the closure owns everything it uses.
        let queued: JobRef = unsafe { SharedJob::job_ref(&job) };
        let thief = thread::spawn(move || {
            // SAFETY: the queued handle is run once, by this thread.
            unsafe { queued.execute() }
        });
        let result = match job.take_back() {
            Some(b) => b(),
            None => {
                while !job.done().probe() {
                    thread::yield_now();
                }
                job.take_result()
            }
        };
        thief.join().unwrap();
        assert_eq!(result, 7);
        assert_eq!(runs.load(Ordering::Relaxed), 1, "B ran exactly once");
    });
}

/// The queued handle is dropped unrun only by executing it after the creator took B back: the
/// handle's run must neither start B again nor leak the allocation (loom checks leaks).
#[test]
fn stale_queued_handle_after_take_back_is_a_no_op() {
    model(2, || {
        let runs = Arc::new(AtomicUsize::new(0));
        let job = {
            let runs = runs.clone();
            SharedJob::new(move || runs.fetch_add(1, Ordering::Relaxed))
        };
        // SAFETY: the closure owns everything it uses.
        let queued: JobRef = unsafe { SharedJob::job_ref(&job) };
        let b = job.take_back().expect("nobody else ran it yet");
        drop(job);
        b();
        let late = thread::spawn(move || {
            // SAFETY: the queued handle is run once, by this thread.
            unsafe { queued.execute() }
        });
        late.join().unwrap();
        assert_eq!(runs.load(Ordering::Relaxed), 1);
    });
}
