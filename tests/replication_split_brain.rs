//! Split brain, deterministically: an owner with queued tasks and a task in hand stalls past its
//! lease, a successor takes over, then the old owner resumes with stale beliefs. Its later
//! operations are refused (fenced) or redirected, and every task runs exactly once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_deque::{Steal, Worker};
use replicore::__protocol::{
    Claim, CpuState, Fenced, LeaseObserver, LeaseState, Mutex, Outcome, Recorder, Replica,
    ReplicationStats, Start, Takeover, take_over,
};

#[derive(Debug, Default)]
struct Task {
    claim: Claim,
}

impl AsRef<Claim> for Task {
    fn as_ref(&self) -> &Claim {
        &self.claim
    }
}

#[test]
fn stalled_owner_resumes_after_takeover_and_is_fenced() {
    let stats = Arc::new(ReplicationStats::default());
    let core: CpuState<Arc<Task>> = CpuState::new(0, 64, stats.clone());
    let mut me = core.lease().owner_token();
    let deque = Worker::new_lifo();
    let stealer = deque.stealer();
    let tasks: Vec<Arc<Task>> = (0..4).map(|_| Arc::default()).collect();
    for t in &tasks {
        deque.push(core.publish_push(&me, t.clone()).unwrap());
    }
    me.renew(core.lease());
    // The owner pops one task and takes it in hand, then stalls (blocks) here.
    let in_hand = deque.pop().unwrap();
    core.take_in_hand(&me, &in_hand);

    // The monitor sees no heartbeat for a full lease (a driven clock: tests never time things).
    let t0 = Instant::now();
    let lease = Duration::from_millis(20);
    let mut obs = LeaseObserver::new(t0);
    assert_eq!(obs.observe(core.lease(), t0, lease), LeaseState::Alive);
    let LeaseState::Expired { epoch } = obs.observe(core.lease(), t0 + lease, lease) else {
        panic!("a silent lease must expire");
    };
    let mut replica = Replica::new(0);
    replica.sync(core.log(), core.log().tail(), 2); // a lagging neighbour
    let replicas = [Mutex::new(replica)];
    let hooks = Recorder::new(1);
    let takeover = Takeover {
        core: &core,
        replicas: &replicas,
        epoch,
        successor: 1,
        fault_id: 1,
        patience: Duration::from_millis(1),
    };
    assert_eq!(take_over(takeover, &hooks), Outcome::Restored);
    let (adopted, token) = hooks.take().restored.pop().expect("one replacement");
    assert_eq!(token.epoch(), epoch + 1);
    assert_eq!(adopted.len(), 4, "all queued tasks plus the one in hand");
    // The replacement gets a fresh deque; the old one is only stolen from.
    let fresh = Worker::new_lifo();
    for t in adopted {
        fresh.push(t);
    }
    stats.record_replacement();

    // The old owner resumes with stale beliefs.
    me.renew(core.lease());
    assert_eq!(core.start(&me, &in_hand), Start::Fenced);
    let late = Arc::new(Task::default());
    let Err(Fenced(redirected)) = core.publish_push(&me, late.clone()) else {
        panic!("a fenced owner's push must be refused");
    };
    assert!(Arc::ptr_eq(&redirected, &late));
    fresh.push(redirected); // redirected to a live queue

    // Run everything: the fresh deque, and the old deque drained by stealing.
    let mut runs = 0;
    while let Some(t) = fresh.pop() {
        runs += usize::from(t.claim.try_claim());
    }
    while let Steal::Success(t) = stealer.steal() {
        runs += usize::from(t.claim.try_claim());
    }
    assert_eq!(runs, 5, "four old tasks and the redirected one, once each");
    assert!(tasks.iter().chain([&late]).all(|t| t.claim.is_claimed()));
    let s = stats.snapshot();
    assert_eq!(
        (
            s.takeovers,
            s.lease_expiries,
            s.replacement_threads,
            s.tasks_recovered_from_replica
        ),
        (1, 1, 1, 4)
    );
    assert_eq!(
        s.fenced_rejections, 2,
        "the refused start and the refused push"
    );
}
