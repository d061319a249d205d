//! The job hand-off between a `join` owner and a thief (`src/pool/job.rs`): a stack job whose
//! handle is taken by exactly one party, run once, and whose result the owner reads only after
//! the latch says so. Crossbeam's deque is not loom-instrumented, so the queue here is a slot
//! whose "take" is the shared claim word (`Claim`), the linearization point of every start
//! ("take → claim → run"); the job, result and latch code is the pool's own.
#![cfg(loom)]

use replicore_loom_tests::model;

use loom::sync::Arc;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;
use replicore::__protocol::{Claim, HeapJob, JobRef, Latch, SleepLatch, StackJob};

/// The join latch without a registry: the waiter here spins instead of parking (the parking path
/// is `sleep.rs`'s model).
struct ProbeLatch(SleepLatch);

impl Latch for ProbeLatch {
    unsafe fn set(this: *const Self) {
        // SAFETY: valid on entry; `set` is the last access.
        unsafe { (*this).0.set() };
    }
}

/// One published job handle, taken through one claim.
struct Slot {
    claim: Claim,
    job: JobRef,
}

// SAFETY: the test only shares `Slot` between loom threads; `JobRef` is `Send + Sync`.
unsafe impl Send for Slot {}
// SAFETY: as above.
unsafe impl Sync for Slot {}

#[test]
fn stack_job_runs_once_whether_popped_back_or_stolen() {
    model(3, || {
        let runs = Arc::new(AtomicUsize::new(0));
        let r = runs.clone();
        let job = StackJob::new(
            move || {
                r.fetch_add(1, Ordering::Relaxed);
                42usize
            },
            ProbeLatch(SleepLatch::new()),
        );
        // SAFETY: `job` outlives the handle: the owner below waits for the latch or runs it.
        let slot = Arc::new(Slot {
            claim: Claim::new(),
            job: unsafe { job.as_job_ref() },
        });
        let thief = {
            let slot = slot.clone();
            thread::spawn(move || {
                if slot.claim.try_claim() {
                    // SAFETY: we won the job's single start; the owner keeps it alive.
                    unsafe { slot.job.execute() };
                }
            })
        };
        let result = if slot.claim.try_claim() {
            // Popped back: run inline, no latch.
            // SAFETY: the claim we won makes us the job's only user.
            (unsafe { job.take_func() })()
        } else {
            while !job.latch.0.probe() {
                thread::yield_now();
            }
            // SAFETY: the latch is set.
            unsafe { job.take_result() }.into_return_value()
        };
        thief.join().unwrap();
        assert_eq!(result, 42);
        assert_eq!(runs.load(Ordering::Relaxed), 1);
    });
}

#[test]
fn heap_job_taken_by_one_of_three_runs_once() {
    model(3, || {
        let runs = Arc::new(AtomicUsize::new(0));
        let r = runs.clone();
        // SAFETY: the closure is `'static`.
        let job = unsafe {
            HeapJob::into_job_ref(move || {
                r.fetch_add(1, Ordering::Relaxed);
            })
        };
        let slot = Arc::new(Slot {
            claim: Claim::new(),
            job,
        });
        let racers: Vec<_> = (0..2)
            .map(|_| {
                let slot = slot.clone();
                thread::spawn(move || {
                    if slot.claim.try_claim() {
                        // SAFETY: single start won; the box is freed by `execute`.
                        unsafe { slot.job.execute() };
                    }
                })
            })
            .collect();
        if slot.claim.try_claim() {
            // SAFETY: as above.
            unsafe { slot.job.execute() };
        }
        for t in racers {
            t.join().unwrap();
        }
        assert_eq!(runs.load(Ordering::Relaxed), 1);
    });
}
