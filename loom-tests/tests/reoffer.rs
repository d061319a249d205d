//! The pool's two uses of re-offered copies, on the real `CpuState` / `Replica` / `take_over` /
//! `Claim` code: copies of a task may be queued while its first holder still acts on it, and the
//! single claim must let exactly one of them run.
#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use replicore::__protocol::{Claim, CpuState, Mutex, Replica, Start};
use replicore_loom_tests::{Task, drive, restored};

fn builder() -> loom::model::Builder {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(3);
    b
}

/// Spare-thread cap: the monitor does not fence. The owner takes its task in hand and starts
/// it, while the monitor syncs the CPU's replica, reads the replica and the in-hand slot, and a
/// thief runs whichever copy it got. Exactly one start happens.
#[test]
fn reoffer_without_fence_races_owner_start() {
    builder().check(|| {
        let core = Arc::new(CpuState::new(0, 4, Default::default()));
        let me = core.lease().owner_token();
        let t = core.publish_push(&me, Arc::new(Claim::new())).unwrap();

        let owner = {
            let (core, t) = (core.clone(), t.clone());
            thread::spawn(move || {
                core.take_in_hand(&me, &t);
                match core.start(&me, &t) {
                    Start::Run => 1,
                    Start::AlreadyClaimed => 0,
                    Start::Fenced => unreachable!("nobody fences at the cap"),
                }
            })
        };
        let monitor = {
            let core = core.clone();
            thread::spawn(move || {
                let mut replica = Replica::new(0);
                replica.sync(core.log(), core.log().tail(), usize::MAX);
                let mut copies: Vec<_> = replica.unclaimed().cloned().collect();
                copies.extend(core.in_hand());
                // A thief takes the copies off the injector: each start is one claim.
                copies.iter().filter(|c| c.try_claim()).count()
            })
        };
        let runs = owner.join().unwrap() + monitor.join().unwrap();
        assert_eq!(runs, 1);
        assert!(t.is_claimed());
    });
}

/// A worker on CPU 1 stole a task that CPU 0 published, and is about to start it when CPU 1 is
/// taken over. After the fence the monitor re-offers every unclaimed task of every replica (the
/// worker might have crashed holding it), and a thief runs the copy. The stolen task starts
/// exactly once: by the worker if its lease check preceded the fence, else by the copy. A
/// refused start (`Fenced`) never runs the task.
#[test]
fn reoffer_after_takeover_races_thief_start() {
    builder().check(|| {
        let cpu0 = CpuState::new(0, 4, Default::default());
        let owner0 = cpu0.lease().owner_token();
        let t: Task = cpu0.publish_push(&owner0, Arc::new(Claim::new())).unwrap();
        let mut replica0 = Replica::new(0);
        replica0.sync(cpu0.log(), cpu0.log().tail(), usize::MAX);
        let replica0 = Arc::new(loom::sync::Mutex::new(replica0));

        let cpu1 = Arc::new(CpuState::<Arc<Claim>>::new(1, 4, Default::default()));
        let me1 = cpu1.lease().owner_token();
        let worker = {
            let (cpu1, t) = (cpu1.clone(), t.clone());
            thread::spawn(move || {
                cpu1.take_in_hand(&me1, &t);
                match cpu1.start(&me1, &t) {
                    Start::Run => 1,
                    Start::AlreadyClaimed | Start::Fenced => 0,
                }
            })
        };
        let monitor = {
            let (cpu1, replica0) = (cpu1.clone(), replica0.clone());
            thread::spawn(move || {
                // The sequence hands on the in-hand task and asks for every other unclaimed
                // copy (`reoffer_taken`); the pool's hook reads the replicas of the CPUs the worker
                // took from, here CPU 0's.
                let (_, mut rec) = drive(&cpu1, &[Mutex::new(Replica::new(0))], 0, 0);
                assert_eq!(rec.reoffer_taken, 1);
                let mut copies = restored(&mut rec);
                copies.extend(replica0.lock().unwrap().unclaimed().cloned());
                copies.iter().filter(|c| c.try_claim()).count()
            })
        };
        let runs = worker.join().unwrap() + monitor.join().unwrap();
        assert_eq!(runs, 1);
        assert!(t.is_claimed());
    });
}
