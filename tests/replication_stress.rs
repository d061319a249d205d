//! Stress: a real owner thread pushes, pops, takes in hand and claims tasks through the protocol
//! types while a successor thread replicates its log, watches its lease and takes over at a
//! seeded moment (or when the lease expires after an injected crash). Every accepted task must be
//! started exactly once (G1, G2), and a fenced owner never starts anything again (G4).
//!
//! `cargo test` runs 50 seeds at two fault rates with small task counts (fault rates only with
//! `--features fault-injection`); `STRESS_SEEDS=500` runs more seeds with more tasks.
// Without the feature a plan is `()`, so the clones that share it across threads copy nothing.
#![cfg_attr(not(feature = "fault-injection"), allow(clippy::clone_on_copy))]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_deque::Worker;
use replicore::__protocol::{
    Claim, CpuState, Fenced, LeaseObserver, LeaseState, Mutex as ShimMutex,
    Outcome as TakeoverOutcome, Recorder, Replica, ReplicationStats, Start, Takeover, take_over,
};
use replicore::fault::{FaultPoint, point};

#[derive(Debug, Default)]
struct Task {
    claim: Claim,
    runs: AtomicUsize,
    accepted: AtomicBool,
}

impl AsRef<Claim> for Task {
    fn as_ref(&self) -> &Claim {
        &self.claim
    }
}

type H = Arc<Task>;

fn run(t: &H) {
    t.runs.fetch_add(1, SeqCst);
}

/// splitmix64, to pick the takeover moment from the seed.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

struct Outcome {
    takeovers: u64,
    crashed: bool,
    /// Accepted tasks lost to the one documented hole (see below).
    lost_in_pop_window: usize,
}

fn scenario(seed: u64, n: usize, plan: Option<replicore_plan::Plan>) -> Outcome {
    let stats = Arc::new(ReplicationStats::default());
    let core: Arc<CpuState<H>> = Arc::new(CpuState::new(0, 16, stats.clone()));
    let all: Arc<Mutex<Vec<H>>> = Arc::default();
    let injector: Arc<Mutex<Vec<H>>> = Arc::default();
    let owner_done = Arc::new(AtomicBool::new(false));
    let worker = Worker::new_lifo();
    let stealer = worker.stealer();

    let owner = {
        let (core, all, injector, owner_done) = (
            core.clone(),
            all.clone(),
            injector.clone(),
            owner_done.clone(),
        );
        let plan = plan.clone();
        // The token is issued when the worker is created, before any successor can fence.
        let mut me = core.lease().owner_token();
        thread::spawn(move || {
            replicore_plan::enter(&plan);
            let mut fenced = false;
            let start = |me: &replicore::__protocol::OwnerToken, t: H, fenced: &mut bool| match core
                .start(me, &t)
            {
                Start::Run => {
                    assert!(!*fenced, "G4: a fenced owner started a task");
                    run(&t)
                }
                Start::AlreadyClaimed => {}
                Start::Fenced => {
                    *fenced = true;
                    injector.lock().unwrap().push(t);
                }
            };
            for i in 0..n {
                me.renew(core.lease());
                let t = H::default();
                all.lock().unwrap().push(t.clone());
                match core.publish_push(&me, t) {
                    Ok(t) => {
                        worker.push(t.clone());
                        t.accepted.store(true, SeqCst);
                    }
                    Err(Fenced(t)) => {
                        fenced = true;
                        injector.lock().unwrap().push(t.clone());
                        t.accepted.store(true, SeqCst);
                    }
                }
                if i % 3 == 2 && !fenced {
                    point(FaultPoint::BeforePop, 0);
                    if let Some(t) = worker.pop() {
                        point(FaultPoint::AfterPop, 0);
                        core.take_in_hand(&me, &t);
                        start(&me, t, &mut fenced);
                    }
                }
            }
            while !fenced {
                me.renew(core.lease());
                let Some(t) = worker.pop() else { break };
                core.take_in_hand(&me, &t);
                start(&me, t, &mut fenced);
            }
            // A fenced owner retires; its deque is drained by stealing only.
            drop(worker);
            owner_done.store(true, SeqCst);
        })
    };

    let (tx, rx) = mpsc::channel();
    let successor = {
        let (core, injector, owner_done, stats) = (
            core.clone(),
            injector.clone(),
            owner_done.clone(),
            stats.clone(),
        );
        let crashed = {
            let plan = plan.clone();
            move || replicore_plan::crashes(&plan) > 0
        };
        thread::spawn(move || {
            let trigger = (mix(seed) % (n as u64 + n as u64 / 4)) as usize;
            let lease_len = Duration::from_millis(2);
            let mut observer = LeaseObserver::new(Instant::now());
            let replicas = [ShimMutex::new(Replica::new(0))];
            let hooks = Recorder::new(1);
            let mut adopted = None;
            let mut used_fallback = false;
            while adopted.is_none() {
                point(FaultPoint::ReplicaApply, 1);
                let mut replica = replicas[0].lock();
                replica.sync(core.log(), core.log().tail(), 4);
                let (ops, time) = replica.lag(core.log());
                drop(replica);
                stats.record_lag(ops, time);
                let expired = matches!(
                    observer.observe(core.lease(), Instant::now(), lease_len),
                    LeaseState::Expired { .. }
                );
                let done = owner_done.load(SeqCst);
                if expired || core.log().tail() as usize >= trigger || done {
                    // A replica with a gap cannot know every queued task: the old deque, drained
                    // below, is then the fallback.
                    used_fallback = replicas[0].lock().needs_resync();
                    let takeover = Takeover {
                        core: &core,
                        replicas: &replicas,
                        epoch: 0,
                        successor: 1,
                        fault_id: 1,
                        patience: Duration::from_millis(1),
                    };
                    assert_eq!(
                        take_over(takeover, &hooks),
                        TakeoverOutcome::Restored,
                        "one successor"
                    );
                    adopted = hooks.take().restored.pop().map(|(tasks, _)| tasks);
                } else {
                    thread::yield_now();
                }
            }
            for t in adopted.unwrap() {
                if t.claim.try_claim() {
                    run(&t);
                }
            }
            // Drain the retired deque and the redirects until the old owner retired or crashed.
            loop {
                let finished = owner_done.load(SeqCst) || crashed();
                let mut batch: Vec<H> = std::mem::take(&mut *injector.lock().unwrap());
                // Keep following the log: a fenced owner's late pushes come back as redirects.
                let mut replica = replicas[0].lock();
                replica.sync(core.log(), core.log().tail(), usize::MAX);
                batch.extend(replica.take_redirected());
                drop(replica);
                loop {
                    match stealer.steal() {
                        crossbeam_deque::Steal::Success(t) => batch.push(t),
                        crossbeam_deque::Steal::Empty => break,
                        crossbeam_deque::Steal::Retry => {}
                    }
                }
                for t in batch {
                    if t.claim.try_claim() {
                        run(&t);
                    }
                }
                if finished
                    && injector.lock().unwrap().is_empty()
                    && stealer.is_empty()
                    && replicas[0].lock().position() >= core.log().tail()
                {
                    break;
                }
                thread::yield_now();
            }
            let _ = tx.send(used_fallback);
        })
    };

    let used_fallback = rx
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("watchdog: seed {seed} did not finish in 60 s"));
    successor.join().unwrap();
    let crashed = replicore_plan::crashes(&plan) > 0;
    // The documented hole (src/replication/README.md, "Gaps"): the replica had a gap AND the owner
    // crashed between popping a task and recording it in hand. That one task may be lost, exactly
    // as with replication off. Anything else lost fails the test.
    let pop_window_crash =
        used_fallback && replicore_plan::last_crash(&plan) == Some("after-pop".to_owned());
    let mut lost = 0;
    if !crashed {
        owner.join().unwrap();
    }
    let all = all.lock().unwrap();
    let mut claimed_not_run = 0;
    for (i, t) in all.iter().enumerate() {
        let runs = t.runs.load(SeqCst);
        assert!(runs <= 1, "seed {seed}: task {i} ran {runs} times (G2)");
        if t.accepted.load(SeqCst) && !t.claim.is_claimed() {
            lost += 1;
            assert!(
                pop_window_crash && lost == 1,
                "seed {seed}: accepted task {i} was lost (G1); fallback {used_fallback}, crash {:?}",
                replicore_plan::last_crash(&plan)
            );
        }
        if t.claim.is_claimed() && runs == 0 {
            claimed_not_run += 1;
        }
    }
    // Only a crash right after a winning claim leaves a task claimed but not run.
    assert!(
        claimed_not_run <= usize::from(crashed),
        "seed {seed}: {claimed_not_run} tasks claimed but never run"
    );
    let s = stats.snapshot();
    assert_eq!(s.takeovers, 1);
    Outcome {
        takeovers: s.takeovers,
        crashed,
        lost_in_pop_window: lost,
    }
}

/// Fault-plan glue: real plans with the feature, nothing without it.
mod replicore_plan {
    #[cfg(feature = "fault-injection")]
    pub type Plan = replicore::fault::FaultPlan;
    #[cfg(not(feature = "fault-injection"))]
    pub type Plan = ();

    pub fn enter(plan: &Option<Plan>) {
        #[cfg(feature = "fault-injection")]
        if let Some(p) = plan {
            replicore::fault::enter(p);
        }
        let _ = plan;
    }

    pub fn last_crash(plan: &Option<Plan>) -> Option<String> {
        #[cfg(feature = "fault-injection")]
        if let Some(p) = plan {
            return p.last_crash().map(|(point, _)| point.to_string());
        }
        let _ = plan;
        None
    }

    pub fn crashes(plan: &Option<Plan>) -> u64 {
        #[cfg(feature = "fault-injection")]
        if let Some(p) = plan {
            return p.counts().crashes;
        }
        let _ = plan;
        0
    }
}

fn seeds() -> (u64, usize) {
    match std::env::var("STRESS_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        Some(n) => (n, 2000),
        None => (50, 200),
    }
}

#[test]
fn takeover_at_random_moments_without_faults() {
    let (seeds, n) = seeds();
    for seed in 0..seeds {
        let out = scenario(seed, n, None);
        assert_eq!(
            (out.takeovers, out.crashed, out.lost_in_pop_window),
            (1, false, 0)
        );
    }
}

#[cfg(feature = "fault-injection")]
#[test]
fn takeover_under_random_faults_across_seeds() {
    use replicore::fault::FaultPlan;
    let (seeds, n) = seeds();
    let mut crash_seeds = 0;
    let mut lost = 0;
    for rate in [0.01, 0.05] {
        for seed in 0..seeds {
            let plan = FaultPlan::random(seed, rate)
                .unwrap()
                .max_stall(Duration::from_millis(1));
            let out = scenario(seed, n, Some(plan));
            lost += out.lost_in_pop_window;
            if out.crashed {
                crash_seeds += 1;
                assert!(out.takeovers > 0, "seed {seed}: crash without takeover");
            }
        }
    }
    assert!(
        crash_seeds > 0,
        "no seed crashed: the plan mix is not exercising crashes"
    );
    eprintln!(
        "{} scenarios, {crash_seeds} with a crash, {lost} task(s) lost in the documented \
         gap-plus-pop-window hole",
        2 * seeds
    );
}
