//! Replica apply with stale and duplicate stamps, racing the owner's (and a fenced owner's)
//! appends, on the real `OpLog` / `Replica` code with a 2-entry log.
#![cfg(loom)]

use replicore_loom_tests::model;

use loom::sync::Arc;
use loom::thread;
use replicore::__loom::{Claim, LogRead, OpLog, Replica};

/// Owner (epoch 1) and a fenced owner (epoch 0) append while a replica syncs. The replica never
/// reads a torn or misplaced entry, never holds a stale-epoch task, and either holds every
/// epoch-1 task or knows it needs a resync.
#[test]
fn apply_races_appends_with_stale_and_wraparound() {
    model(3, || {
        let log: Arc<OpLog<Arc<Claim>>> = Arc::new(OpLog::new(2));
        let owner = {
            let log = log.clone();
            thread::spawn(move || {
                log.append(1, Arc::new(Claim::new()));
                log.append(1, Arc::new(Claim::new()));
            })
        };
        let stale = {
            let log = log.clone();
            thread::spawn(move || {
                log.append(0, Arc::new(Claim::new()));
            })
        };
        let mut replica = Replica::new(1);
        let first = replica.sync(&log, 3, 3);
        owner.join().unwrap();
        stale.join().unwrap();
        let second = replica.sync(&log, 3, 3);
        assert!(first.stale + second.stale <= 1);
        for p in 0..3 {
            if let LogRead::Op(stamp, _) = log.read(p) {
                assert_eq!(
                    stamp.seq, p,
                    "an entry is only ever read at its own position"
                );
            }
        }
        let held = replica.unclaimed().count();
        assert!(
            held == 2 || replica.needs_resync(),
            "held {held} without a gap"
        );
        // Re-applying is idempotent.
        let again = replica.sync(&log, 3, 3);
        assert_eq!(again.inserted, 0);
    });
}
