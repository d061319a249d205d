//! The resumed old owner racing the successor, and recovery of the in-hand task against a late
//! claim, on the real `CoreState` / `Replica` / `take_over` code.
#![cfg(loom)]

use replicore_loom_tests::model;

use loom::sync::Arc;
use loom::thread;
use replicore::__loom::{Claim, CoreState, Replica, Start, take_over};

/// The owner popped `a` (in hand) and still has `b` queued, then stalled. A successor takes over
/// while the owner resumes and tries to start `a` and then `b`. Every task ends up started exactly
/// once, by the owner (only if its check preceded the fence) or by the successor's adopted copy;
/// the owner's redirect of a refused task is never needed for that.
#[test]
fn resumed_owner_races_successor_over_in_hand_and_queued() {
    model(3, || {
        let core = Arc::new(CoreState::new(0, 4, Default::default()));
        let me = core.lease().owner_token();
        let a = core.publish_push(&me, Arc::new(Claim::new())).unwrap();
        let b = core.publish_push(&me, Arc::new(Claim::new())).unwrap();
        // A neighbour applied part of the log before the stall.
        let mut replica = Replica::new(0);
        replica.sync(core.log(), 1, 1);
        core.take_in_hand(&me, &a);

        let owner = {
            let (core, a, b) = (core.clone(), a.clone(), b.clone());
            thread::spawn(move || {
                let mut started = Vec::new();
                let mut redirected = Vec::new();
                for t in [a, b] {
                    match core.start(&me, &t) {
                        Start::Run => started.push(t),
                        Start::AlreadyClaimed => {}
                        Start::Fenced => redirected.push(t),
                    }
                }
                (started.len(), redirected)
            })
        };
        let successor = {
            let core = core.clone();
            thread::spawn(move || {
                let adopted = take_over(&core, &mut replica, 0, 1, || None).unwrap();
                adopted.tasks.into_iter().filter(|t| t.try_claim()).count()
            })
        };
        let (owner_runs, redirected) = owner.join().unwrap();
        let successor_runs = successor.join().unwrap();
        assert!(redirected.iter().all(|t| t.is_claimed()));
        assert_eq!(owner_runs + successor_runs, 2);
        assert!(a.is_claimed() && b.is_claimed());
    });
}

/// Recovery of the in-hand task against a late claim: the owner stalled right after taking the
/// task in hand and resumes into `start` while the successor takes over. Exactly one of them runs
/// it, and a refused owner's task has always been adopted.
#[test]
fn in_hand_recovery_against_late_claim() {
    model(3, || {
        let core = Arc::new(CoreState::new(0, 2, Default::default()));
        let me = core.lease().owner_token();
        let t = core.publish_push(&me, Arc::new(Claim::new())).unwrap();
        core.take_in_hand(&me, &t);
        let late_owner = {
            let (core, t) = (core.clone(), t.clone());
            thread::spawn(move || core.start(&me, &t) == Start::Run)
        };
        let successor = {
            let core = core.clone();
            thread::spawn(move || {
                let mut replica = Replica::new(0);
                let adopted = take_over(&core, &mut replica, 0, 1, || None).unwrap();
                adopted.tasks.into_iter().filter(|t| t.try_claim()).count()
            })
        };
        let owner_won = late_owner.join().unwrap() as usize;
        assert_eq!(owner_won + successor.join().unwrap(), 1);
    });
}

/// A push racing the fence is never lost: if `publish_push` accepted it, the successor either
/// adopted it at takeover or gets it back from the log as a redirect on a later sync, even though
/// the old owner stops right after the push (crash) without telling anyone.
#[test]
fn push_racing_fence_is_adopted_or_redirected() {
    model(3, || {
        let core = Arc::new(CoreState::new(0, 2, Default::default()));
        let me = core.lease().owner_token();
        let owner = {
            let core = core.clone();
            thread::spawn(move || core.publish_push(&me, Arc::new(Claim::new())).ok())
        };
        let successor = {
            let core = core.clone();
            thread::spawn(move || {
                let mut replica = Replica::new(0);
                let adopted = take_over(&core, &mut replica, 0, 1, || None).unwrap();
                (replica, adopted.tasks)
            })
        };
        let accepted = owner.join().unwrap();
        let (mut replica, mut found) = successor.join().unwrap();
        // The holder keeps syncing after the takeover.
        replica.sync(core.log(), core.log().tail(), usize::MAX);
        found.extend(replica.take_redirected());
        if let Some(t) = accepted {
            assert!(
                found.iter().any(|f| Arc::ptr_eq(f, &t)),
                "accepted push lost"
            );
        }
        let wins = found.iter().filter(|t| t.try_claim()).count();
        assert!(wins <= 1);
    });
}

/// Gap fallback: the log (capacity 1) has lost the in-hand task's entry, so the successor must
/// find it through the in-hand slot, and the still-queued task through the old deque's stealer,
/// while the resumed owner races it with a late start.
#[test]
fn gap_fallback_recovers_in_hand_against_late_start() {
    model(3, || {
        let core = Arc::new(CoreState::new(0, 1, Default::default()));
        let me = core.lease().owner_token();
        let a = core.publish_push(&me, Arc::new(Claim::new())).unwrap();
        let b = core.publish_push(&me, Arc::new(Claim::new())).unwrap();
        // The old deque still holds `b`; the owner popped `a` and recorded it in hand.
        let old_deque = Arc::new(loom::sync::Mutex::new(vec![b.clone()]));
        core.take_in_hand(&me, &a);
        let late_owner = {
            let (core, a) = (core.clone(), a.clone());
            thread::spawn(move || core.start(&me, &a) == Start::Run)
        };
        let successor = {
            let (core, old_deque) = (core.clone(), old_deque.clone());
            thread::spawn(move || {
                let mut replica = Replica::new(0);
                let adopted = take_over(&core, &mut replica, 0, 1, || {
                    old_deque.lock().unwrap().pop()
                })
                .unwrap();
                assert!(adopted.used_fallback, "position 0 was overwritten: a gap");
                adopted.tasks.into_iter().filter(|t| t.try_claim()).count()
            })
        };
        let owner_won = late_owner.join().unwrap() as usize;
        let successor_wins = successor.join().unwrap();
        assert_eq!(
            owner_won + successor_wins,
            2,
            "a and b each start exactly once"
        );
    });
}
