//! The pool's takeover sequence (`take_over`, run through `replicore_loom_tests::drive` exactly as
//! `src/pool/recovery/takeover.rs` runs it) against the resumed old owner, late claims, racing pushes, a
//! replica with a gap, a second driver, and the thread cap.
#![cfg(loom)]

use replicore_loom_tests::{Task, drive, model, restored};

use loom::sync::Arc;
use loom::thread;
use replicore::__protocol::{Claim, CpuState, Mutex, Outcome, Recorder, Replica, Start};

fn replicas(r: Replica<Task>) -> [Mutex<Replica<Task>>; 1] {
    [Mutex::new(r)]
}

/// The owner popped `a` (in hand) and still has `b` queued, then stalled. A successor takes over
/// while the owner resumes and tries to start `a` and then `b`. Every task ends up started exactly
/// once, by the owner (only if its check preceded the fence) or by the replacement's copy; the
/// owner's redirect of a refused task is never needed for that.
#[test]
fn resumed_owner_races_successor_over_in_hand_and_queued() {
    model(3, || {
        let core = Arc::new(CpuState::new(0, 4, Default::default()));
        let me = core.lease().owner_token();
        let a: Task = core.publish_push(&me, Arc::new(Claim::new())).unwrap();
        let b: Task = core.publish_push(&me, Arc::new(Claim::new())).unwrap();
        // A neighbour applied part of the log before the stall.
        let mut replica = Replica::new(0);
        replica.sync(core.log(), 1, 1);
        core.take_in_hand(&me, &a);

        let owner = {
            let (core, a, b) = (core.clone(), a.clone(), b.clone());
            thread::spawn(move || {
                let mut started = 0;
                let mut redirected = Vec::new();
                for t in [a, b] {
                    match core.start(&me, &t) {
                        Start::Run => started += 1,
                        Start::AlreadyClaimed => {}
                        Start::Fenced => redirected.push(t),
                    }
                }
                (started, redirected)
            })
        };
        let successor = {
            let core = core.clone();
            thread::spawn(move || {
                let (outcome, mut rec) = drive(&core, &replicas(replica), 0, 1);
                assert_eq!(outcome, Outcome::Restored);
                let token = rec.restored[0].1;
                assert_eq!(token.epoch(), 1);
                let tasks = restored(&mut rec);
                tasks
                    .iter()
                    .filter(|t| core.start(&token, t) == Start::Run)
                    .count()
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
        let core = Arc::new(CpuState::new(0, 2, Default::default()));
        let me = core.lease().owner_token();
        let t: Task = core.publish_push(&me, Arc::new(Claim::new())).unwrap();
        core.take_in_hand(&me, &t);
        let late_owner = {
            let (core, t) = (core.clone(), t.clone());
            thread::spawn(move || core.start(&me, &t) == Start::Run)
        };
        let successor = {
            let core = core.clone();
            thread::spawn(move || {
                let (_, mut rec) = drive(&core, &replicas(Replica::new(0)), 0, 1);
                restored(&mut rec).iter().filter(|t| t.try_claim()).count()
            })
        };
        let owner_won = late_owner.join().unwrap() as usize;
        assert_eq!(owner_won + successor.join().unwrap(), 1);
        assert!(t.is_claimed());
    });
}

/// A push racing the fence is never lost: if `publish_push` accepted it, the successor either
/// adopted it at takeover or gets it back from the log as a redirect on a later sync, even though
/// the old owner stops right after the push (crash) without telling anyone.
#[test]
fn push_racing_fence_is_adopted_or_redirected() {
    model(3, || {
        let core = Arc::new(CpuState::new(0, 2, Default::default()));
        let me = core.lease().owner_token();
        let owner = {
            let core = core.clone();
            thread::spawn(move || core.publish_push(&me, Arc::new(Claim::new())).ok())
        };
        let successor = {
            let core = core.clone();
            thread::spawn(move || {
                let replicas = replicas(Replica::new(0));
                let (_, mut rec) = drive(&core, &replicas, 0, 1);
                (replicas, restored(&mut rec))
            })
        };
        let accepted: Option<Task> = owner.join().unwrap();
        let (replicas, mut found) = successor.join().unwrap();
        // The holder keeps syncing after the takeover.
        let mut replica = replicas[0].lock();
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

/// A successor that takes `core` over (epoch 0, a fresh and so gapped replica), must restore
/// it, and claims every task it adopted: how many it won.
fn restore_and_claim(core: Arc<CpuState<Task>>) -> impl FnOnce() -> usize {
    move || {
        let (outcome, mut rec) = drive(&core, &replicas(Replica::new(0)), 0, 1);
        assert_eq!(outcome, Outcome::Restored);
        restored(&mut rec).iter().filter(|t| t.try_claim()).count()
    }
}

/// A thief that steals one task from the old deque and claims it: how many it won.
fn steal_and_claim(old_deque: Arc<loom::sync::Mutex<Vec<Task>>>) -> impl FnOnce() -> usize {
    move || {
        let stolen = old_deque.lock().unwrap().pop();
        stolen.is_some_and(|t| t.try_claim()) as usize
    }
}

/// A replica with a gap: the log (capacity 1) has lost the in-hand task's entry. The sequence
/// still hands on the in-hand task (it always reads the slot), and the still-queued task stays in
/// the old deque, which a thief drains, while the resumed owner races with a late start.
#[test]
fn gap_recovers_in_hand_and_old_deque_against_late_start() {
    model(3, || {
        let core = Arc::new(CpuState::new(0, 1, Default::default()));
        let me = core.lease().owner_token();
        let a: Task = core.publish_push(&me, Arc::new(Claim::new())).unwrap();
        let b: Task = core.publish_push(&me, Arc::new(Claim::new())).unwrap();
        // The old deque still holds `b`; the owner popped `a` and recorded it in hand.
        let old_deque = Arc::new(loom::sync::Mutex::new(vec![b.clone()]));
        core.take_in_hand(&me, &a);
        let late_owner = {
            let (core, a) = (core.clone(), a.clone());
            thread::spawn(move || core.start(&me, &a) == Start::Run)
        };
        let successor = thread::spawn(restore_and_claim(core.clone()));
        let thief = thread::spawn(steal_and_claim(old_deque.clone()));
        let owner_won = late_owner.join().unwrap() as usize;
        let successor_wins = successor.join().unwrap();
        let thief_wins = thief.join().unwrap();
        assert_eq!(
            owner_won + successor_wins + thief_wins,
            2,
            "a and b each start exactly once"
        );
    });
}

/// The owner popped `c`, the task it pushed last, and recorded nothing in hand: its log still
/// holds `c` (`CpuState::take_just_pushed`). The successor's replica lags past a wrap (a gap over `a`, which
/// already ran), the older `b` still waits in the old deque, and the owner either resumes into
/// its start or never comes back. `b` and `c` each start exactly once; when the owner crashed,
/// `c` comes from the positions the log still holds, since nothing else knows it.
#[test]
fn unrecorded_pop_is_adopted_from_the_retained_window_across_a_gap() {
    for owner_returns in [true, false] {
        model(3, move || {
            let core = Arc::new(CpuState::new(0, 2, Default::default()));
            let me = core.lease().owner_token();
            let a: Task = core.publish_push(&me, Arc::new(Claim::new())).unwrap();
            assert!(a.try_claim(), "ran before the stall");
            let b: Task = core.publish_push(&me, Arc::new(Claim::new())).unwrap();
            let (c, at): (Task, _) = core.publish_push_at(&me, Arc::new(Claim::new())).unwrap();
            let old_deque = Arc::new(loom::sync::Mutex::new(vec![b.clone()]));
            let owner = {
                let (core, c) = (core.clone(), c.clone());
                thread::spawn(move || {
                    core.take_just_pushed(&me, &c, at.unwrap());
                    assert!(core.in_hand().is_none(), "nothing recorded for `c`");
                    owner_returns && core.start(&me, &c) == Start::Run
                })
            };
            let successor = thread::spawn(restore_and_claim(core.clone()));
            let thief = thread::spawn(steal_and_claim(old_deque));
            let owner_won = owner.join().unwrap() as usize;
            let successor_wins = successor.join().unwrap();
            let thief_wins = thief.join().unwrap();
            assert_eq!(owner_won + successor_wins + thief_wins, 2);
            assert!(b.is_claimed() && c.is_claimed(), "nothing lost");
        });
    }
}

/// Two drivers judge the same epoch expired and run the sequence at once: one fence wins and
/// restores, the other gives its room back, and the tasks go to exactly one replacement.
#[test]
fn two_drivers_one_restores_one_gives_its_room_back() {
    model(2, || {
        let core = Arc::new(CpuState::new(0, 2, Default::default()));
        let me = core.lease().owner_token();
        let t: Task = core.publish_push(&me, Arc::new(Claim::new())).unwrap();
        let replicas = Arc::new(replicas(Replica::new(0)));
        let drivers: Vec<_> = (1..=2)
            .map(|s| {
                let (core, replicas) = (core.clone(), replicas.clone());
                thread::spawn(move || {
                    let hooks = Recorder::new(1);
                    let (outcome, rec) =
                        replicore_loom_tests::drive_with(&core, &replicas[..], 0, s, &hooks);
                    (outcome, rec)
                })
            })
            .collect();
        let results: Vec<_> = drivers.into_iter().map(|d| d.join().unwrap()).collect();
        let restored: Vec<_> = results
            .iter()
            .filter(|(o, _)| *o == Outcome::Restored)
            .collect();
        let lost: Vec<_> = results
            .iter()
            .filter(|(o, _)| *o == Outcome::Lost)
            .collect();
        assert_eq!((restored.len(), lost.len()), (1, 1));
        assert_eq!(lost[0].1.released, 1, "the loser gave its room back");
        assert!(lost[0].1.restored.is_empty() && lost[0].1.reoffered.is_empty());
        assert!(Arc::ptr_eq(&restored[0].1.restored[0].0[0], &t));
        assert_eq!(core.lease().epoch(), 1);
    });
}

/// At the thread cap the sequence must not fence: the owner keeps its CPU and starts its task
/// as usual, and the driver only reports the cap (the pool then re-offers copies).
#[test]
fn at_the_cap_nothing_is_fenced() {
    model(3, || {
        let core = Arc::new(CpuState::new(0, 2, Default::default()));
        let me = core.lease().owner_token();
        let t: Task = core.publish_push(&me, Arc::new(Claim::new())).unwrap();
        let owner = {
            let (core, t) = (core.clone(), t.clone());
            thread::spawn(move || {
                core.take_in_hand(&me, &t);
                core.start(&me, &t)
            })
        };
        let driver = {
            let core = core.clone();
            thread::spawn(move || {
                let hooks = Recorder::new(0);
                replicore_loom_tests::drive_with(&core, &replicas(Replica::new(0)), 0, 1, &hooks)
            })
        };
        let (outcome, rec) = driver.join().unwrap();
        assert_eq!(outcome, Outcome::AtCap);
        assert_eq!(rec.at_cap, vec![0]);
        assert_eq!(
            owner.join().unwrap(),
            Start::Run,
            "the owner was not fenced"
        );
        assert_eq!(core.lease().epoch(), 0);
    });
}

/// A task that says when it is freed, for models of who keeps a task alive.
#[derive(Debug)]
struct Tracked {
    claim: Claim,
    freed: Arc<loom::sync::atomic::AtomicBool>,
}

impl AsRef<Claim> for Tracked {
    fn as_ref(&self) -> &Claim {
        &self.claim
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.freed.store(true, loom::sync::atomic::Ordering::SeqCst);
    }
}

/// The owner moves its popped task into the in-hand slot (`take_in_hand_owned`, as the pool's
/// `Seam::start` does) and goes on through a pointer: the slot holds the task's last count (the
/// log, of capacity 1, has moved on). A successor fences it and records its own task over the
/// slot while the owner is between that record and its claim. The displaced task must outlive
/// the owner's use of it, and be freed once the owner leaves: it is parked, not dropped, while
/// epoch 0 is live. Dropping it at the successor's record fails this model at once.
#[test]
fn a_fenced_owners_moved_in_hand_task_outlives_the_successors_record() {
    model(3, || {
        let core: Arc<CpuState<Arc<Tracked>>> = Arc::new(CpuState::new(0, 1, Default::default()));
        let freed = Arc::new(loom::sync::atomic::AtomicBool::new(false));
        let me = core.lease().owner_token();
        core.owner_enters(me.epoch());
        let task = |freed: &Arc<loom::sync::atomic::AtomicBool>| {
            Arc::new(Tracked {
                claim: Claim::new(),
                freed: freed.clone(),
            })
        };
        let a = core.publish_push(&me, task(&freed)).unwrap();
        let other = Arc::new(loom::sync::atomic::AtomicBool::new(false));
        // Overwrites `a`'s only log entry: from here on `a` lives in our hands alone.
        let b = core.publish_push(&me, task(&other)).unwrap();
        let owner = {
            let (core, freed) = (core.clone(), freed.clone());
            thread::spawn(move || {
                let claim: *const Claim = &a.claim;
                let kept = core.take_in_hand_owned(&me, a);
                assert!(
                    !freed.load(loom::sync::atomic::Ordering::SeqCst),
                    "freed while its owner still holds a pointer"
                );
                // SAFETY: `kept` or the slot holds it; checked just above.
                let start = core.start_claim(&me, unsafe { &*claim });
                assert!(!freed.load(loom::sync::atomic::Ordering::SeqCst));
                drop(kept);
                core.owner_leaves(me.epoch());
                start
            })
        };
        let successor = {
            let core = core.clone();
            thread::spawn(move || {
                core.lease().try_fence(0, 1).expect("the only fence");
                let new = core.lease().owner_token();
                core.owner_enters(new.epoch());
                // Refused only while the owner is mid-record: `a` then stays in the slot.
                drop(core.take_in_hand_owned(&new, b));
                new
            })
        };
        let start = owner.join().unwrap();
        let new = successor.join().unwrap();
        assert_ne!(start, Start::AlreadyClaimed, "no one else claims `a` here");
        // The successor's next record displaces whatever is left of epoch 0, which has left.
        let c = core.publish_push(&new, task(&other)).unwrap();
        drop(core.take_in_hand_owned(&new, c));
        assert!(
            freed.load(loom::sync::atomic::Ordering::SeqCst),
            "the owner left, so nothing keeps `a`: no leak"
        );
    });
}
