//! Replica apply with stale and duplicate stamps, racing the owner's (and a fenced owner's)
//! appends, on the real `OpLog` / `Replica` code with a 2-entry log.
#![cfg(loom)]

use replicore_loom_tests::model;

use loom::sync::Arc;
use loom::thread;
use replicore::__protocol::{Claim, LogRead, OpLog, Replica};

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

/// Every queue op leaves the replica in stamp order: the owner pushes `a` and `b` and starts `a`
/// (a `Started` op in its own log), while a thief on another CPU starts `b` (recorded on `b`'s
/// claim header only: the owner's log has one writer) and a replica of the owner's CPU applies
/// the log concurrently. Once caught up, the replica holds exactly the tasks no one started, and
/// the owner's started task has left it by its op, while the thief's is only seen claimed.
#[test]
fn started_ops_and_thief_claims_leave_the_replica() {
    use replicore::__protocol::{CpuState, Start};
    model(3, || {
        let cpu0 = Arc::new(CpuState::new(0, 4, Default::default()));
        let cpu1 = Arc::new(CpuState::<Arc<Claim>>::new(1, 4, Default::default()));
        let me0 = cpu0.lease().owner_token();
        let a = cpu0.publish_push(&me0, Arc::new(Claim::new())).unwrap();
        let b = cpu0.publish_push(&me0, Arc::new(Claim::new())).unwrap();
        let owner = {
            let (cpu0, a) = (cpu0.clone(), a.clone());
            thread::spawn(move || cpu0.start(&me0, &a) == Start::Run)
        };
        let thief = {
            let (cpu1, b) = (cpu1.clone(), b.clone());
            thread::spawn(move || {
                let me1 = cpu1.lease().owner_token();
                cpu1.start(&me1, &b) == Start::Run
            })
        };
        let mut replica = Replica::new(0);
        replica.sync(cpu0.log(), cpu0.log().tail(), usize::MAX);
        assert!(owner.join().unwrap(), "nobody else starts a");
        assert!(thief.join().unwrap(), "nobody else starts b");
        assert_eq!(
            b.claimer(),
            Some((1, 0)),
            "the thief's take is on the header"
        );
        assert_eq!(cpu1.log().tail(), 0, "and in no log: b is not cpu1's task");
        let report = replica.sync(cpu0.log(), cpu0.log().tail(), usize::MAX);
        assert!(report.started <= 1);
        assert_eq!(replica.position(), 3, "two pushes and one start");
        assert_eq!(replica.unclaimed().count(), 0);
        assert_eq!(
            replica.len(),
            1,
            "a left at its Started op; b, started by the thief, waits for a claim scan"
        );
    });
}
