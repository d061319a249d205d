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

/// Started tasks leave the replica by their claims: the owner pushes `a` and `b` and starts `a`,
/// while a thief on another CPU starts `b`, and a replica of the owner's CPU applies the log
/// concurrently. Both starts are recorded on the claim headers only (the owner's log holds
/// pushes, and has one writer), and no start appends to any log. Once caught up, the replica
/// holds exactly the tasks no one started; the started ones go at the first claim scan, which a
/// third push (over `PRUNE_AT` = 2 under loom) triggers.
#[test]
fn owner_and_thief_starts_leave_the_replica_by_their_claims() {
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
            a.claimer(),
            Some((0, 0)),
            "the owner's start is on the header"
        );
        assert_eq!(b.claimer(), Some((1, 0)), "so is the thief's");
        assert_eq!(cpu0.log().tail(), 2, "two pushes, no start op");
        assert_eq!(cpu1.log().tail(), 0, "and nothing in the thief's log");
        replica.sync(cpu0.log(), cpu0.log().tail(), usize::MAX);
        assert_eq!(replica.position(), 2);
        assert_eq!(replica.unclaimed().count(), 0);
        assert_eq!(replica.len(), 2, "both wait for a claim scan");
        let c = cpu0.publish_push(&me0, Arc::new(Claim::new())).unwrap();
        replica.sync(cpu0.log(), cpu0.log().tail(), usize::MAX);
        assert_eq!(replica.len(), 1, "the scan kept only c");
        assert!(replica.unclaimed().all(|t| Arc::ptr_eq(t, &c)));
    });
}
