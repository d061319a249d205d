//! G2's linearization point: the single atomic claim on a task.
#![cfg(loom)]

use loom::sync::Arc;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;
use replicore::__loom::Claim;

/// The owner, a thief and a takeover successor race to start one task: exactly one wins, and the
/// winner sees the payload the spawner wrote before publishing the task.
#[test]
fn three_way_claim_race_has_one_winner() {
    loom::model(|| {
        let claim = Arc::new(Claim::new());
        let payload = Arc::new(AtomicUsize::new(0));
        let wins = Arc::new(AtomicUsize::new(0));
        payload.store(42, Ordering::Relaxed);
        let racers: Vec<_> = (0..3)
            .map(|_| {
                let (claim, payload, wins) = (claim.clone(), payload.clone(), wins.clone());
                thread::spawn(move || {
                    if claim.try_claim() {
                        assert_eq!(payload.load(Ordering::Relaxed), 42);
                        wins.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        for r in racers {
            r.join().unwrap();
        }
        assert_eq!(wins.load(Ordering::Relaxed), 1);
        assert!(claim.is_claimed());
    });
}
