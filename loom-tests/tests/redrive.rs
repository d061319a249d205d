//! A takeover whose driver dies or stalls half-way is completed by another one, on the real
//! `CoreState` / `Replica` / `fence` / `adopt` code (the steps the pool's `takeover::drive` runs).
#![cfg(loom)]

use replicore_loom_tests::model;

use loom::sync::{Arc, Mutex};
use loom::thread;
use replicore::__loom::{Claim, CoreState, Replica, Start, adopt, fence};

type Task = Arc<Claim>;

/// The owner has `a` in hand and `b` queued, then stalls. The first driver fences `0 → 1`,
/// adopts into its own stack, and dies there (its copies are gone), while the owner resumes and
/// tries to start both. Epoch 1 is never renewed, so a second driver fences `1 → 2` and adopts
/// from the same replica: adoption left the tasks in it. Each task starts exactly once.
#[test]
fn driver_dies_after_adoption_next_driver_completes() {
    model(3, || {
        let core = Arc::new(CoreState::new(0, 4, Default::default()));
        let me = core.lease().owner_token();
        let a: Task = core.publish_push(&me, Arc::new(Claim::new())).unwrap();
        let b: Task = core.publish_push(&me, Arc::new(Claim::new())).unwrap();
        core.take_in_hand(&me, &a);
        let replica = Arc::new(Mutex::new(Replica::new(0)));

        let first = {
            let (core, replica) = (core.clone(), replica.clone());
            thread::spawn(move || {
                let f = fence(&core, 0, 1).unwrap();
                let adopted = adopt(&core, &mut replica.lock().unwrap(), &f, || None);
                drop(adopted); // dies here: nothing handed on, no replacement started
            })
        };
        let owner = {
            let (core, a, b) = (core.clone(), a.clone(), b.clone());
            thread::spawn(move || {
                [a, b]
                    .iter()
                    .filter(|t| core.start(&me, t) == Start::Run)
                    .count()
            })
        };
        first.join().unwrap();
        let f2 = fence(&core, 1, 2).expect("epoch 1 was never renewed, so it can be fenced");
        let adopted = adopt(&core, &mut replica.lock().unwrap(), &f2, || None);
        let replacement = f2.owner_token();
        let wins = adopted
            .tasks
            .iter()
            .filter(|t| core.start(&replacement, t) == Start::Run)
            .count();
        let owner_runs = owner.join().unwrap();
        assert_eq!(owner_runs + wins, 2, "a and b each start exactly once");
        assert!(a.is_claimed() && b.is_claimed());
    });
}

/// The first driver fenced `0 → 1` and stalled; a second driver judged epoch 1 expired, fenced
/// `1 → 2`, adopted and starts its replacement, while the first resumes, adopts the same tasks
/// from the replica and starts its own replacement under the token of its fence. That token is
/// stale, so the first driver's replacement is refused at every start and redirects; the owner's
/// late start races both. Each task starts exactly once.
#[test]
fn stalled_driver_overtaken_backs_off() {
    model(3, || {
        let core = Arc::new(CoreState::new(0, 4, Default::default()));
        let me = core.lease().owner_token();
        let a: Task = core.publish_push(&me, Arc::new(Claim::new())).unwrap();
        let _b: Task = core.publish_push(&me, Arc::new(Claim::new())).unwrap();
        core.take_in_hand(&me, &a);
        let replica = Arc::new(Mutex::new(Replica::new(0)));
        let f1 = fence(&core, 0, 1).unwrap();

        let drive = |f, core: Arc<CoreState<Task>>, replica: Arc<Mutex<Replica<Task>>>| {
            thread::spawn(move || {
                let adopted = adopt(&core, &mut replica.lock().unwrap(), &f, || None);
                let token = f.owner_token();
                let mut runs = 0;
                let mut redirected = Vec::new();
                for t in adopted.tasks {
                    match core.start(&token, &t) {
                        Start::Run => runs += 1,
                        Start::AlreadyClaimed => {}
                        Start::Fenced => redirected.push(t),
                    }
                }
                (runs, redirected)
            })
        };
        let first = drive(f1, core.clone(), replica.clone());
        let second = {
            let (core, replica) = (core.clone(), replica.clone());
            thread::spawn(move || {
                let f2 = fence(&core, 1, 2).unwrap();
                let adopted = adopt(&core, &mut replica.lock().unwrap(), &f2, || None);
                let token = f2.owner_token();
                adopted
                    .tasks
                    .iter()
                    .filter(|t| core.start(&token, t) == Start::Run)
                    .count()
            })
        };
        let owner = {
            let (core, a) = (core.clone(), a.clone());
            thread::spawn(move || usize::from(core.start(&me, &a) == Start::Run))
        };
        let (first_runs, redirected) = first.join().unwrap();
        let second_runs = second.join().unwrap();
        let owner_runs = owner.join().unwrap();
        // Redirected copies go to an injector; whoever takes one starts it through the claim.
        let redirected_runs = redirected.iter().filter(|t| t.try_claim()).count();
        assert_eq!(
            first_runs + second_runs + owner_runs + redirected_runs,
            2,
            "a and b each start exactly once"
        );
        assert_eq!(core.lease().epoch(), 2);
    });
}
