//! A worker's take sources (`src/pool/recovery/sources.rs`) against a takeover's fence, on the
//! real `TakeSources` and `Lease`: a worker that takes a task from another CPU's deque and then
//! crashes, before the task is recorded anywhere, is covered only if the takeover of its CPU
//! re-offers that CPU's replicas, i.e. reads the source's mark. The worker's side is
//! `Seam::may_take_from` (mark, then, for a new mark, the lease check); the takeover's is the
//! fence, then `TakeSources::noted`.
#![cfg(loom)]

use replicore_loom_tests::model;

use loom::sync::Arc;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;
use replicore::__protocol::{Lease, TakeSources};

/// The victim CPU whose deque the worker steals from.
const VICTIM: usize = 1;

/// Two takes from the victim's deque (holding two tasks), racing a takeover of the worker's CPU.
/// The first take marks the victim and checks the lease; the second finds the mark set and
/// takes without a check. Whatever the worker took, the takeover either saw the victim's mark
/// or the worker saw the fence before taking anything.
#[test]
fn a_take_is_refused_or_its_source_is_seen_by_the_takeover() {
    model(3, || {
        let lease = Arc::new(Lease::new(0));
        let marks = Arc::new(TakeSources::new(2));
        let victim_deque = Arc::new(AtomicUsize::new(2));
        let me = lease.owner_token();
        let worker = {
            let (lease, marks, deque) = (lease.clone(), marks.clone(), victim_deque.clone());
            thread::spawn(move || {
                let mut taken = 0;
                for _ in 0..2 {
                    // `Seam::may_take_from`.
                    if marks.note(VICTIM) && !lease.is_current(me.epoch()) {
                        break;
                    }
                    if deque.load(Ordering::SeqCst) > 0 {
                        deque.fetch_sub(1, Ordering::SeqCst);
                        taken += 1;
                    }
                }
                taken // ... and crashes holding them, unrecorded.
            })
        };
        let takeover = {
            let (lease, marks) = (lease.clone(), marks.clone());
            thread::spawn(move || {
                lease
                    .try_fence(0, 1)
                    .expect("the only driver wins the fence");
                marks.noted()
            })
        };
        let taken = worker.join().unwrap();
        let noted = takeover.join().unwrap();
        if taken > 0 {
            assert!(
                noted.contains(&VICTIM),
                "{taken} task(s) held by the crashed worker, and its takeover would not \
                 re-offer the victim's replicas"
            );
        }
    });
}

/// Parking clears the marks: the next take from the same victim is a new mark, checked again.
/// A takeover racing that second take still sees it or stops it.
#[test]
fn a_take_after_parking_is_checked_again() {
    model(3, || {
        let lease = Arc::new(Lease::new(0));
        let marks = Arc::new(TakeSources::new(2));
        let me = lease.owner_token();
        // A take before parking, and the park: nothing held any more.
        assert!(marks.note(VICTIM));
        marks.clear();
        let worker = {
            let (lease, marks) = (lease.clone(), marks.clone());
            thread::spawn(move || {
                let new = marks.note(VICTIM);
                assert!(new, "cleared marks make the next take a new one");
                lease.is_current(me.epoch())
            })
        };
        let takeover = {
            let (lease, marks) = (lease.clone(), marks.clone());
            thread::spawn(move || {
                lease.try_fence(0, 1).unwrap();
                marks.noted()
            })
        };
        let took = worker.join().unwrap();
        let noted = takeover.join().unwrap();
        assert!(!took || noted.contains(&VICTIM));
    });
}
