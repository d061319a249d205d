//! A takeover whose driver dies or stalls half-way is completed by another one, on the pool's
//! takeover sequence (`take_over`, with the real `CpuState` / `Replica` code).
#![cfg(loom)]

use replicore_loom_tests::{Recorded, Task, drive, drive_with, model, restored};

use loom::sync::Arc;
use loom::thread;
use replicore::__protocol::{
    Claim, CpuState, FencePoint, Mutex, Outcome, OwnerToken, Recorder, Recovery, Replica, Start,
};

/// The owner has `a` in hand and `b` queued, then stalls. The first driver fences `0 → 1`,
/// adopts, and dies before its replacement starts (its copies are gone), while the owner resumes
/// and tries to start both. Epoch 1 is never renewed, so a second driver fences `1 → 2` and
/// adopts from the same replica: adoption left the tasks in it. Each task starts exactly once.
#[test]
fn driver_dies_after_adoption_next_driver_completes() {
    model(3, || {
        let core = Arc::new(CpuState::new(0, 4, Default::default()));
        let me = core.lease().owner_token();
        let a: Task = core.publish_push(&me, Arc::new(Claim::new())).unwrap();
        let b: Task = core.publish_push(&me, Arc::new(Claim::new())).unwrap();
        core.take_in_hand(&me, &a);
        let replicas = Arc::new([Mutex::new(Replica::new(0))]);

        let first = {
            let (core, replicas) = (core.clone(), replicas.clone());
            thread::spawn(move || {
                let (outcome, rec) = drive(&core, &replicas[..], 0, 1);
                assert_eq!(outcome, Outcome::Restored);
                drop(rec); // dies here: the replacement never starts, its copies are gone
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
        let (outcome, mut rec) = drive(&core, &replicas[..], 1, 2);
        assert_eq!(outcome, Outcome::Restored, "epoch 1 was never renewed");
        let replacement = rec.restored[0].1;
        let wins = restored(&mut rec)
            .iter()
            .filter(|t| core.start(&replacement, t) == Start::Run)
            .count();
        let owner_runs = owner.join().unwrap();
        assert_eq!(owner_runs + wins, 2, "a and b each start exactly once");
        assert!(a.is_claimed() && b.is_claimed());
    });
}

/// Hooks of a driver that stalls after adopting, for as long as a second driver takes to judge
/// the unrenewed epoch expired and run the whole sequence again (run here, inside the stall).
struct StallsAfterAdopting<'a> {
    core: &'a CpuState<Task>,
    replicas: &'a [Mutex<Replica<Task>>],
    inner: Recorder<Task>,
    /// What the second driver restored, started by its replacement.
    second_runs: std::cell::Cell<usize>,
}

impl Recovery<Task> for StallsAfterAdopting<'_> {
    type Room = ();
    fn reserve(&self) -> Option<()> {
        self.inner.reserve()
    }
    fn release(&self, room: ()) {
        self.inner.release(room)
    }
    fn at_cap(&self, epoch: u32) {
        self.inner.at_cap(epoch)
    }
    fn fenced(&self, fence: &FencePoint) {
        self.inner.fenced(fence)
    }
    fn reoffer(&self, tasks: Vec<Task>) {
        self.inner.reoffer(tasks)
    }
    fn reoffer_taken(&self) {
        // Stalled here, past a lease: the next driver fences epoch 1 and completes a takeover.
        let (outcome, mut rec) = drive(self.core, self.replicas, 1, 2);
        assert_eq!(outcome, Outcome::Restored);
        let token = rec.restored[0].1;
        let runs = restored(&mut rec)
            .iter()
            .filter(|t| self.core.start(&token, t) == Start::Run)
            .count();
        self.second_runs.set(runs);
        self.inner.reoffer_taken()
    }
    fn restore(&self, room: (), tasks: Vec<Task>, token: OwnerToken) {
        self.inner.restore(room, tasks, token)
    }
}

impl Recorded for StallsAfterAdopting<'_> {
    type Recorded = (replicore::__protocol::Recorded<Task>, usize);
    fn recorded(&self) -> Self::Recorded {
        (self.inner.take(), self.second_runs.get())
    }
}

/// The first driver fenced `0 → 1`, adopted, and stalled; meanwhile a second driver judged
/// epoch 1 expired, fenced `1 → 2`, adopted and restored. The first resumes: it must see that
/// its epoch moved on, re-offer its copies and give its room back instead of starting a second
/// replacement. The owner's late start races both drivers. Each task starts exactly once.
#[test]
fn stalled_driver_overtaken_backs_off() {
    model(3, || {
        let core = Arc::new(CpuState::new(0, 4, Default::default()));
        let me = core.lease().owner_token();
        let a: Task = core.publish_push(&me, Arc::new(Claim::new())).unwrap();
        let _b: Task = core.publish_push(&me, Arc::new(Claim::new())).unwrap();
        core.take_in_hand(&me, &a);
        let replicas = Arc::new([Mutex::new(Replica::new(0))]);

        let drivers = {
            let (core, replicas) = (core.clone(), replicas.clone());
            thread::spawn(move || {
                let hooks = StallsAfterAdopting {
                    core: &core,
                    replicas: &replicas[..],
                    inner: Recorder::new(1),
                    second_runs: std::cell::Cell::new(0),
                };
                drive_with(&core, &replicas[..], 0, 1, &hooks)
            })
        };
        let owner = {
            let (core, a) = (core.clone(), a.clone());
            thread::spawn(move || usize::from(core.start(&me, &a) == Start::Run))
        };
        let (first_outcome, (first_rec, second_runs)) = drivers.join().unwrap();
        let owner_runs = owner.join().unwrap();
        assert_eq!(first_outcome, Outcome::Overtaken);
        assert!(first_rec.restored.is_empty(), "no second replacement");
        assert_eq!(first_rec.released, 1, "its room given back");
        // Re-offered copies go to an injector; whoever takes one starts it through the claim.
        let reoffered_runs = first_rec.reoffered.iter().filter(|t| t.try_claim()).count();
        assert_eq!(
            second_runs + owner_runs + reoffered_runs,
            2,
            "a and b each start exactly once"
        );
        assert_eq!(core.lease().epoch(), 2);
    });
}
