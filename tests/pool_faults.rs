//! The pool under injected faults: split brain, and a stress run across seeds at two rates.
//! Needs `--features fault-injection`.
//!
//! Each seed runs under a watchdog (`common::within`): a hung pool ends the test process with a
//! message instead of stalling CI.
#![cfg(feature = "fault-injection")]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use replicore::ThreadPool;
use replicore::fault::{FaultPlan, FaultPoint};

fn counters(n: usize) -> Arc<Vec<AtomicUsize>> {
    Arc::new((0..n).map(|_| AtomicUsize::new(0)).collect())
}

/// Polls `done` until it holds or `limit` passes; a watchdog that fails instead of hanging CI.
fn wait_until(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !done() {
        assert!(t0.elapsed() < limit, "watchdog: {what} after {limit:?}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Both workers stall for ten leases right after taking their first replicated task in hand,
/// with the rest of a batch queued behind it. Successors fence them and adopt the queued tasks
/// and the in-hand ones; the old workers then resume, find themselves fenced, redirect the task
/// in hand instead of claiming it, and retire. Every task runs exactly once.
#[test]
fn split_brain_stalled_owner_resumes_after_takeover() {
    let lease = Duration::from_millis(5);
    let plan = FaultPlan::none()
        .stall(FaultPoint::AfterTakeInHand, 0, lease * 10)
        .stall(FaultPoint::AfterTakeInHand, 1, lease * 10);
    let pool = ThreadPool::builder()
        .topology("numa:1 core:2 pu:1".parse().unwrap())
        .lease(lease)
        .fault_plan(plan.clone())
        .build()
        .unwrap();
    const N: usize = 200;
    let runs = counters(N);
    let outer_ran = Arc::new(AtomicBool::new(false));
    {
        let (runs, outer_ran) = (runs.clone(), outer_ran.clone());
        pool.install(move || {
            outer_ran.store(true, Ordering::SeqCst);
            for i in 0..N {
                let runs = runs.clone();
                replicore::spawn(move || {
                    runs[i].fetch_add(1, Ordering::SeqCst);
                });
            }
        });
    }
    wait_until(Duration::from_secs(20), "tasks still missing", || {
        runs.iter().all(|r| r.load(Ordering::SeqCst) >= 1)
    });
    // Let the stalled owners resume and act: each must be refused at its claim.
    wait_until(
        Duration::from_secs(20),
        "stalled workers never resumed",
        || pool.stats().recovery.fenced_rejections >= 2,
    );
    assert_eq!(plan.counts().stalls, 2);
    let stats = pool.stats();
    pool.shutdown();
    assert!(outer_ran.load(Ordering::SeqCst));
    for (i, r) in runs.iter().enumerate() {
        assert_eq!(r.load(Ordering::SeqCst), 1, "task {i}; {stats:?}");
    }
    assert!(stats.recovery.takeovers >= 1, "{stats:?}");
    assert!(stats.recovery.replacement_threads >= 1, "{stats:?}");
}

/// The lease of the stress seeds: short, so that many random stalls outlast it.
const STRESS_LEASE: Duration = Duration::from_millis(2);
/// The longest random stall of the stress seeds: most stalls outlast [`STRESS_LEASE`].
const STRESS_MAX_STALL: Duration = Duration::from_millis(5);
/// Per-seed watchdog.
const SEED_WATCHDOG: Duration = Duration::from_secs(90);

/// One seed: `tasks` tasks spawned from outside and from inside tasks, plus (stall-only plans)
/// nested `join`s and `scope`s. Checks every accepted task ran exactly once and no task ran
/// twice. Returns (crashes, takeovers).
fn stress_seed(seed: u64, rate: f64, crashes: bool, spares: usize, tasks: usize) -> (u64, u64) {
    let plan = FaultPlan::random(seed, rate)
        .unwrap()
        .max_stall(STRESS_MAX_STALL)
        .max_crashes(if crashes { 1 } else { 0 });
    let load = Load {
        crashes,
        spares,
        tasks,
        lease: STRESS_LEASE,
        spin: Duration::ZERO,
        expect_takeover: None,
    };
    watched_seed(
        format!("stress seed {seed}, rate {rate}, crashes {crashes}, spares {spares}"),
        seed,
        plan,
        load,
    )
}

/// [`run_seed`] under the per-seed watchdog.
fn watched_seed(what: String, seed: u64, plan: FaultPlan, load: Load) -> (u64, u64) {
    common::within(SEED_WATCHDOG, &what, move || run_seed(seed, plan, &load))
}

/// The shape of one seed's run.
#[derive(Clone, Copy, Debug)]
struct Load {
    /// The plan can crash a thread: joins and scopes are replaced by spawns (see below).
    crashes: bool,
    /// `max_spare_threads`.
    spares: usize,
    tasks: usize,
    lease: Duration,
    /// Busy time of each spawned task, so that work is still queued when a takeover happens.
    spin: Duration,
    /// Wait for a takeover before shutting down, even without a crash, if the plan's stall of
    /// this worker at this point fired (a worker the scheduler kept away from the point never
    /// stalls there, and then nothing expires).
    expect_takeover: Option<(FaultPoint, usize)>,
}

/// A task body: busy for `spin`, then counts its run.
fn run_task(counter: &AtomicUsize, spin: Duration) {
    let t0 = Instant::now();
    while t0.elapsed() < spin {
        std::hint::spin_loop();
    }
    counter.fetch_add(1, Ordering::SeqCst);
}

/// Runs the stress workload of one seed under `plan`.
fn run_seed(seed: u64, plan: FaultPlan, load: &Load) -> (u64, u64) {
    let (crashes, spares, tasks, spin) = (load.crashes, load.spares, load.tasks, load.spin);
    let pool = ThreadPool::builder()
        .topology("numa:2 core:1 pu:1".parse().unwrap())
        .lease(load.lease)
        .max_spare_threads(spares)
        // A worker waiting in a `scope` or `join` steals and runs other tree nodes on its own
        // stack; with 100k tasks in dev builds that nesting overflowed the default 2 MiB stack,
        // also on main before this branch (a pool issue, reported; not a takeover one).
        .stack_size(64 << 20)
        .fault_plan(plan.clone())
        .build()
        .unwrap();
    let runs = counters(tasks);
    let accepted = Arc::new(
        (0..tasks)
            .map(|_| AtomicBool::new(false))
            .collect::<Vec<_>>(),
    );
    let outside = tasks / 4;
    let spawners = 8;
    let per_spawner = (tasks - outside) / 2 / spawners;
    let inside = spawners * per_spawner;
    let nested = tasks - outside - inside;
    let spawners_done = Arc::new(AtomicUsize::new(0));
    let mut next = 0;
    // From outside the pool.
    for _ in 0..outside {
        let (runs, i) = (runs.clone(), next);
        pool.spawn(move || {
            run_task(&runs[i], spin);
        });
        accepted[i].store(true, Ordering::SeqCst);
        next += 1;
    }
    // From inside tasks.
    for _ in 0..spawners {
        let (runs, accepted, done, first) =
            (runs.clone(), accepted.clone(), spawners_done.clone(), next);
        pool.spawn(move || {
            for i in first..first + per_spawner {
                let runs = runs.clone();
                replicore::spawn(move || {
                    run_task(&runs[i], spin);
                });
                accepted[i].store(true, Ordering::SeqCst);
            }
            done.fetch_add(1, Ordering::SeqCst);
        });
        next += per_spawner;
    }
    // Nested joins and scopes. A crash stops a thread for good with the frames on its stack,
    // so a join whose continuation lives there cannot return (see the replication README,
    // "Stack jobs"): plans with crashes run these tasks as spawns instead.
    let first = next;
    let pool = if crashes {
        for i in first..first + nested {
            let runs = runs.clone();
            pool.spawn(move || {
                run_task(&runs[i], spin);
            });
            accepted[i].store(true, Ordering::SeqCst);
        }
        pool
    } else {
        let (tx, rx) = std::sync::mpsc::channel();
        let (runs2, accepted2) = (runs.clone(), accepted.clone());
        let worker = std::thread::spawn(move || {
            fn tree(runs: &[AtomicUsize], lo: usize, hi: usize) {
                if hi - lo <= 8 {
                    replicore::scope(|s| {
                        for r in &runs[lo..hi] {
                            s.spawn(move |_| {
                                r.fetch_add(1, Ordering::SeqCst);
                            });
                        }
                    });
                    return;
                }
                let mid = lo + (hi - lo) / 2;
                replicore::join(|| tree(runs, lo, mid), || tree(runs, mid, hi));
            }
            pool.install(|| tree(&runs2, first, first + nested));
            for a in &accepted2[first..first + nested] {
                a.store(true, Ordering::SeqCst);
            }
            tx.send(pool).unwrap();
        });
        let pool = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("watchdog: joins/scopes of seed {seed} never returned"));
        worker.join().unwrap();
        pool
    };
    finish(
        seed,
        pool,
        &plan,
        &runs,
        &accepted,
        (&spawners_done, spawners),
        load.expect_takeover,
    )
}

fn finish(
    seed: u64,
    pool: ThreadPool,
    plan: &FaultPlan,
    runs: &[AtomicUsize],
    accepted: &[AtomicBool],
    (spawners_done, spawners): (&AtomicUsize, usize),
    expect_takeover: Option<(FaultPoint, usize)>,
) -> (u64, u64) {
    // Wait for every accepted task; a spawner killed by a crash accepts no more.
    let t0 = Instant::now();
    let mut last_change = (Instant::now(), usize::MAX);
    loop {
        let missing = (0..runs.len())
            .filter(|&i| accepted[i].load(Ordering::SeqCst) && runs[i].load(Ordering::SeqCst) == 0)
            .count();
        let all_spawners = spawners_done.load(Ordering::SeqCst) == spawners;
        if missing != last_change.1 {
            last_change = (Instant::now(), missing);
        }
        let quiet = last_change.0.elapsed() > Duration::from_millis(300);
        let may_lose = may_lose_one(plan, pool.stats().recovery.replica_gaps);
        let settled = quiet || (all_spawners && !may_lose);
        if missing <= usize::from(may_lose) && settled {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "watchdog: seed {seed}: {missing} accepted tasks never ran; {:?}; crash at {:?}",
            pool.stats(),
            plan.last_crash()
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let stalled = expect_takeover.is_some_and(|(at, worker)| plan.has_fired(at, worker));
    if (plan.counts().crashes > 0 || stalled) && pool.max_spare_threads() > 0 {
        // A crashed worker never renews: its lease must expire and its CPU be taken over.
        wait_until(Duration::from_secs(20), "crash never taken over", || {
            pool.stats().recovery.takeovers > 0
        });
    }
    let stats = pool.stats();
    pool.shutdown();
    let mut lost = 0;
    for (i, r) in runs.iter().enumerate() {
        let n = r.load(Ordering::SeqCst);
        assert!(n <= 1, "seed {seed}: task {i} ran {n} times; {stats:?}");
        if accepted[i].load(Ordering::SeqCst) && n == 0 {
            lost += 1;
        }
    }
    let may_lose = may_lose_one(plan, stats.recovery.replica_gaps);
    assert!(
        lost <= usize::from(may_lose),
        "seed {seed}: {lost} accepted tasks lost; {stats:?}; crash at {:?}",
        plan.last_crash()
    );
    if lost == 1 && matches!(plan.last_crash(), Some((FaultPoint::AfterPop, _))) {
        eprintln!(
            "seed {seed}: one task lost to the documented gap-plus-pop window (replica gaps: {})",
            stats.recovery.replica_gaps
        );
    }
    (plan.counts().crashes, stats.recovery.takeovers)
}

/// The one task a crash may cost, as the replication README documents ("Gaps (honest)"):
/// - a crash right after a claim stops the task at its start (G2's linearization point): it
///   counts as started, but its body never runs;
/// - a crash between a pop and the in-hand record, when the CPU's replica had a gap over that
///   task's log entry: the replica no longer knows it, the old deque no longer holds it and the
///   in-hand slot never did ("gap plus pop window"). The pool does not say which entries a gap
///   covered, so any gap in the run allows it: the check is that loose, and no looser.
fn may_lose_one(plan: &FaultPlan, replica_gaps: u64) -> bool {
    match plan.last_crash() {
        Some((FaultPoint::AfterClaim, _)) => true,
        Some((FaultPoint::AfterPop, _)) => replica_gaps > 0,
        _ => false,
    }
}

/// Runs every config over `seeds` seeds of `tasks` tasks; returns the takeovers summed over all
/// of them.
fn stress(seeds: u64, tasks: usize) -> u64 {
    // (rate, crashes, spare threads, share of `tasks`); with no spare thread a crash is never
    // fenced: its tasks are re-offered and stolen instead (see
    // `ThreadPoolBuilder::max_spare_threads`). The crash and the stall-only plan run all `tasks`
    // per seed; the higher rate (four times the stalls, so several times the run time) and the
    // no-spare case run a fifth of them, to keep the file within CI's budget.
    let configs = [
        (0.0005, true, 8, 1),
        (0.0005, false, 8, 1),
        (0.002, true, 8, 5),
        (0.002, false, 8, 5),
        (0.002, true, 0, 5),
    ];
    let mut total_takeovers = 0;
    for (rate, crashes, spares, fraction) in configs {
        let tasks = tasks / fraction;
        let t0 = Instant::now();
        let mut crash_seeds = 0;
        let mut config_takeovers = 0;
        for seed in 0..seeds {
            let (crashed, takeovers) = stress_seed(seed, rate, crashes, spares, tasks);
            config_takeovers += takeovers;
            if crashed > 0 {
                crash_seeds += 1;
                if spares > 0 {
                    assert!(
                        takeovers > 0,
                        "seed {seed} rate {rate}: crash never taken over"
                    );
                }
            }
        }
        eprintln!(
            "rate {rate} crashes {crashes} spares {spares}: {seeds} seeds x {tasks} tasks, \
             {crash_seeds} with a crash, {config_takeovers} takeovers, {:?}",
            t0.elapsed()
        );
        total_takeovers += config_takeovers;
    }
    total_takeovers
}

/// Faults inside the takeover itself, fired on the worker that drives it. Per seed, one worker
/// (the victim) stalls for six leases at a seeded point of its loop, so its lease expires; the
/// other worker finds that and drives the takeover, and a seeded fault hits it there: a crash
/// before the fence, right after winning it, after adoption, or while applying the replica
/// (holding the replica's lock), or a stall of four leases right after the fence. A crashed
/// driver's half-done takeover must be completed by someone else (the victim's replacement or the
/// monitor re-fences the unrenewed epoch and adopts from the replica, which still has the tasks),
/// and a stalled driver that resumes after a re-drive must back off. Every task runs exactly
/// once, and each seed whose victim reached its stall ends with `takeovers > 0`. A victim can
/// miss its stall: `MidPush` comes only with spawns from inside, and on a loaded machine the
/// other worker may run every spawning task (it happened with seed 8 while a second test
/// process ran beside this one), so most seeds, not all, must stall their victim.
fn takeover_faults(seeds: u64, tasks: usize) {
    let lease = Duration::from_millis(5);
    let loop_points = [
        FaultPoint::BeforePop,
        FaultPoint::AfterPop,
        FaultPoint::AfterTakeInHand,
        FaultPoint::BeforeClaim,
        FaultPoint::MidPush,
    ];
    let mut driver_crashed = 0;
    let mut victim_stalled = 0;
    let mut crash_seeds = 0;
    for seed in 0..seeds {
        let victim = (seed % 2) as usize;
        let driver = 1 - victim;
        let at = loop_points[(seed / 2) as usize % loop_points.len()];
        let nth = 5 + (seed * 37) % 60;
        let plan = FaultPlan::random(seed, 0.0005)
            .unwrap()
            .max_stall(Duration::from_millis(1))
            .max_crashes(0)
            .stall_at(at, victim, nth, lease * 6);
        let kind = seed % 5;
        let plan = match kind {
            0..=2 => plan.crash_at(FaultPoint::InsideTakeover, driver, kind + 1),
            3 => plan.crash(FaultPoint::ReplicaApply, driver),
            _ => plan.stall_at(FaultPoint::InsideTakeover, driver, 2, lease * 4),
        };
        let crashes = kind < 4;
        let load = Load {
            crashes,
            spares: 8,
            tasks,
            lease,
            spin: Duration::from_micros(10),
            expect_takeover: Some((at, victim)),
        };
        let (crashed, takeovers) = watched_seed(
            format!("takeover faults seed {seed}"),
            seed,
            plan.clone(),
            load,
        );
        if plan.has_fired(at, victim) {
            victim_stalled += 1;
        }
        if crashes {
            crash_seeds += 1;
            if crashed > 0 {
                assert!(takeovers > 0, "seed {seed}: crash never taken over");
                assert!(
                    matches!(
                        plan.last_crash(),
                        Some((FaultPoint::InsideTakeover | FaultPoint::ReplicaApply, _))
                    ),
                    "seed {seed}: {:?}",
                    plan.last_crash()
                );
                driver_crashed += 1;
            }
        }
    }
    eprintln!(
        "takeover faults: {seeds} seeds, victim stalled in {victim_stalled}, driver crashed \
         mid-takeover in {driver_crashed} of {crash_seeds} crash seeds"
    );
    assert!(
        victim_stalled * 4 >= seeds * 3,
        "only {victim_stalled} of {seeds} seeds reached their victim's stall"
    );
    // The driver is usually the other worker; sometimes the monitor or a replacement gets there
    // first, and then the planned crash does not fire. Most seeds must exercise it.
    assert!(
        driver_crashed * 2 >= crash_seeds,
        "only {driver_crashed} of {crash_seeds} seeds crashed a takeover driver"
    );
}

/// Quick subset: 30 seeds of 2000 tasks. `STRESS_SEEDS=n` runs `n` seeds of 100k tasks instead.
#[test]
fn takeover_faults_across_seeds() {
    match std::env::var("STRESS_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        Some(n) => takeover_faults(n, 100_000),
        None => takeover_faults(30, 2_000),
    }
}

/// 50 seeds × 10,000 tasks per config at a 2 ms lease, with stalls of up to 5 ms, so that many
/// stalls outlast the lease: at least 1,000 takeovers summed over all seeds, and no pool may
/// have a lifetime budget of them. `STRESS_SEEDS=n` runs `n` seeds of 100k tasks
/// instead.
#[test]
fn stress_across_seeds() {
    let (seeds, tasks) = match std::env::var("STRESS_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        Some(n) => (n, 100_000),
        None => (50, 10_000),
    };
    let takeovers = stress(seeds, tasks);
    assert!(
        takeovers >= 1_000,
        "only {takeovers} takeovers over {seeds} seeds per config"
    );
}
