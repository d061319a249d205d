//! G2's linearization point: the single atomic claim on a task.
#![cfg(loom)]

use replicore_loom_tests::model;

use loom::sync::Arc;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;
use replicore::__protocol::Claim;

/// The owner (main thread), a thief and a takeover successor race to start one task: exactly one
/// wins, and the winner sees the payload the spawner wrote before publishing the task.
#[test]
fn three_way_claim_race_has_one_winner() {
    model(3, || {
        let payload = Arc::new(AtomicUsize::new(0));
        let claim = Arc::new(Claim::new());
        let wins = Arc::new(AtomicUsize::new(0));
        payload.store(42, Ordering::Relaxed);
        let race = {
            let (claim, payload, wins) = (claim.clone(), payload.clone(), wins.clone());
            move || {
                if claim.try_claim() {
                    assert_eq!(payload.load(Ordering::Relaxed), 42);
                    wins.fetch_add(1, Ordering::Relaxed);
                }
            }
        };
        let thief = thread::spawn(race.clone());
        let successor = thread::spawn(race.clone());
        race();
        thief.join().unwrap();
        successor.join().unwrap();
        assert_eq!(wins.load(Ordering::Relaxed), 1);
        assert!(claim.is_claimed());
    });
}
