//! Lease renewal racing expiry and the pool's takeover sequence, on the real `CpuState` /
//! `take_over` code.
#![cfg(loom)]

use replicore_loom_tests::{Task, drive, model, restored};

use loom::sync::Arc;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;
use replicore::__protocol::{Claim, CpuState, Mutex, Replica, Start};

/// The owner renews and starts its queued task while a successor fences and adopts. Exactly one
/// start happens between the owner and the successor's adopted copy: the redirect a refused
/// owner performs is not needed for G1 (it only adds a harmless duplicate), so it is not counted.
#[test]
fn renewal_races_fence_and_adoption() {
    model(3, || {
        let core = Arc::new(CpuState::new(0, 4, Default::default()));
        let mut me = core.lease().owner_token();
        let task: Task = core.publish_push(&me, Arc::new(Claim::new())).unwrap();
        let runs = Arc::new(AtomicUsize::new(0));

        let owner = {
            let (core, task, runs) = (core.clone(), task.clone(), runs.clone());
            thread::spawn(move || {
                me.renew(core.lease());
                core.take_in_hand(&me, &task);
                match core.start(&me, &task) {
                    Start::Run => {
                        runs.fetch_add(1, Ordering::Relaxed);
                        None
                    }
                    Start::AlreadyClaimed => None,
                    Start::Fenced => Some(task),
                }
            })
        };
        let successor = {
            let (core, runs) = (core.clone(), runs.clone());
            thread::spawn(move || {
                let (_, mut rec) = drive(&core, &[Mutex::new(Replica::new(0))], 0, 1);
                assert_eq!(rec.restored[0].1.epoch(), 1);
                for t in restored(&mut rec) {
                    if t.try_claim() {
                        runs.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        };
        let redirected = owner.join().unwrap();
        successor.join().unwrap();
        if let Some(t) = redirected {
            assert!(t.is_claimed(), "a refused owner's task was adopted");
        }
        assert_eq!(runs.load(Ordering::Relaxed), 1);
        assert!(!core.lease().is_current(0));
    });
}

/// Two successors race to fence the same expired epoch: exactly one wins.
#[test]
fn one_fence_wins() {
    model(3, || {
        let core: Arc<CpuState<Arc<Claim>>> = Arc::new(CpuState::new(0, 2, Default::default()));
        let ts: Vec<_> = (1..=2)
            .map(|s| {
                let core = core.clone();
                thread::spawn(move || core.lease().try_fence(0, s).is_ok())
            })
            .collect();
        let wins = ts
            .into_iter()
            .filter(|_| true)
            .map(|t| t.join().unwrap())
            .filter(|w| *w);
        assert_eq!(wins.count(), 1);
        assert_eq!(core.lease().epoch(), 1);
    });
}
