//! What a takeover re-offers for a worker that crashed holding a task it took from elsewhere,
//! before recording it in hand: copies from the replicas of the CPU it stole from, or from the
//! injector-side list if it took from an injector, and nothing of the queues it never touched.
//! Needs `--features fault-injection`.
//!
//! Every wait has a watchdog (`common::wait_until`, `common::sleep_until`).
#![cfg(feature = "fault-injection")]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::{counters, not_once, sleep_until, wait_until};
use replicore::ThreadPool;
use replicore::fault::{FaultPlan, FaultPoint};

const LIMIT: Duration = Duration::from_secs(30);

fn pool(plan: &FaultPlan) -> ThreadPool {
    ThreadPool::builder()
        .topology("numa:1 core:2 pu:1".parse().unwrap())
        .lease(Duration::from_millis(20))
        .fault_plan(plan.clone())
        .build()
        .unwrap()
}

/// Worker 0 spawns one task per counter onto its own deque (so they are in its CPU's log and
/// replicas); each sleeps `each`, then counts its run.
fn queue_on_worker_0(pool: &ThreadPool, runs: &Arc<Vec<AtomicUsize>>, each: Duration) {
    let runs = runs.clone();
    pool.broadcast(move |ctx| {
        if ctx.index() == 0 {
            for i in 0..runs.len() {
                let runs = runs.clone();
                replicore::spawn(move || {
                    std::thread::sleep(each);
                    runs[i].fetch_add(1, Ordering::SeqCst);
                });
            }
        }
    });
}

/// Worker 0 queues slow tasks; worker 1 steals one and crashes at once (`MidSteal`), holding it
/// unrecorded. Then 200 tasks are submitted from outside and wait in the injector, unclaimed,
/// while worker 0 works through its own queue. The takeover of worker 1's CPU re-offers the
/// stolen task from worker 0's CPU's replica, the only queue worker 1 took from, and not the
/// 200 waiting ones: re-offering costs what the crashed worker touched, not the pool's queues.
/// Every task runs exactly once.
#[test]
fn a_thief_crashed_mid_steal_gets_its_victims_tasks_reoffered_and_no_others() {
    const QUEUED: usize = 40;
    const OUTSIDE: usize = 200;
    let plan = FaultPlan::none().crash(FaultPoint::MidSteal, 1);
    let pool = pool(&plan);
    let queued = counters(QUEUED);
    let outside = counters(OUTSIDE);
    queue_on_worker_0(&pool, &queued, Duration::from_millis(10));
    wait_until(
        LIMIT,
        "worker 1 never stole",
        || plan.counts().crashes == 1,
        || format!("{:?}", pool.stats()),
    );
    for i in 0..OUTSIDE {
        let outside = outside.clone();
        pool.spawn(move || {
            outside[i].fetch_add(1, Ordering::SeqCst);
        });
    }
    let all_ran = || {
        queued
            .iter()
            .chain(outside.iter())
            .all(|r| r.load(Ordering::SeqCst) >= 1)
    };
    wait_until(LIMIT, "tasks missing", all_ran, || {
        format!("{:?}", pool.stats())
    });
    let stats = pool.stats().recovery;
    pool.shutdown();
    assert_eq!(not_once(&queued).0, 0, "{:?}; {stats:?}", not_once(&queued));
    assert_eq!(
        not_once(&outside).0,
        0,
        "{:?}; {stats:?}",
        not_once(&outside)
    );
    assert!(stats.takeovers >= 1, "{stats:?}");
    assert!(
        (1..=QUEUED as u64).contains(&stats.tasks_reoffered),
        "the stolen task, at most worker 0's queue, and none of the {OUTSIDE} waiting in the \
         injector: {stats:?}"
    );
}

/// Worker 0 is held in a task; worker 1 takes a batch of outside submissions from the injector
/// into its deque, runs the first, pops the next and crashes before recording it (`AfterPop`).
/// That task is in no replica (nothing outside the pool logs it), so the takeover must re-offer
/// it from the injector-side list, which worker 1 marked as a source before its take.
#[test]
fn a_worker_crashed_after_popping_an_injected_task_gets_the_injector_list_reoffered() {
    const OUTSIDE: usize = 64;
    let plan = FaultPlan::none().crash(FaultPoint::AfterPop, 1);
    let pool = pool(&plan);
    let gate = Arc::new(AtomicBool::new(false));
    {
        let gate = gate.clone();
        pool.spawn_broadcast(move |ctx| {
            if ctx.index() == 0 {
                assert!(
                    sleep_until(LIMIT, || gate.load(Ordering::SeqCst)),
                    "watchdog: gate never opened"
                );
            }
        });
    }
    let outside = counters(OUTSIDE);
    for i in 0..OUTSIDE {
        let outside = outside.clone();
        pool.spawn(move || {
            outside[i].fetch_add(1, Ordering::SeqCst);
        });
    }
    wait_until(
        LIMIT,
        "worker 1 never popped",
        || plan.counts().crashes == 1,
        || format!("{:?}", pool.stats()),
    );
    wait_until(
        LIMIT,
        "the crashed worker's CPU was never taken over",
        || pool.stats().recovery.takeovers >= 1,
        || format!("{:?}", pool.stats()),
    );
    gate.store(true, Ordering::SeqCst);
    let all_ran = || outside.iter().all(|r| r.load(Ordering::SeqCst) >= 1);
    wait_until(LIMIT, "tasks missing", all_ran, || {
        format!("{:?}; {:?}", not_once(&outside), pool.stats())
    });
    let stats = pool.stats().recovery;
    pool.shutdown();
    assert_eq!(
        not_once(&outside).0,
        0,
        "{:?}; {stats:?}",
        not_once(&outside)
    );
    assert!(stats.tasks_reoffered >= 1, "{stats:?}");
}

/// At the spare-thread cap a stalled worker is not fenced, so it may come back; copies of what
/// it might hold are queued only if it is still stopped a lease after it was found stalled.
/// Worker 0 queues tasks and then stalls three times for one and a half leases, each stall
/// judged at the cap (no spare thread may start). It comes back each time before its copies
/// are due, so none is made: copying its whole queue at every such stall had the other worker
/// fail claims on copies (the fault stress's no-spare seeds made 38 copies a task). Every task
/// runs exactly once.
#[test]
fn a_worker_that_comes_back_from_a_stall_at_the_spare_cap_gets_no_copies() {
    const QUEUED: usize = 300;
    let lease = Duration::from_millis(20);
    let stall = lease * 3 / 2;
    let plan = FaultPlan::none()
        .stall_at(FaultPoint::AfterClaim, 0, 20, stall)
        .stall_at(FaultPoint::AfterClaim, 0, 40, stall)
        .stall_at(FaultPoint::AfterClaim, 0, 60, stall);
    let pool = ThreadPool::builder()
        .topology("numa:1 core:2 pu:1".parse().unwrap())
        .lease(lease)
        .max_spare_threads(0)
        .fault_plan(plan.clone())
        .build()
        .unwrap();
    let queued = counters(QUEUED);
    queue_on_worker_0(&pool, &queued, Duration::from_millis(1));
    let all_ran = || queued.iter().all(|r| r.load(Ordering::SeqCst) >= 1);
    wait_until(LIMIT, "tasks missing", all_ran, || {
        format!("{:?}", pool.stats())
    });
    let stats = pool.stats().recovery;
    let stalls = plan.counts().stalls;
    pool.shutdown();
    assert_eq!(not_once(&queued).0, 0, "{:?}; {stats:?}", not_once(&queued));
    assert!(stalls >= 1, "worker 0 never reached a stall: {stats:?}");
    assert!(
        stats.takeovers_without_replacement >= 1,
        "no stall was judged at the cap: {stats:?}"
    );
    assert_eq!(stats.takeovers, 0, "{stats:?}");
    assert_eq!(
        stats.tasks_reoffered, 0,
        "worker 0 came back from each stall before its copies were due: {stats:?}"
    );
}
