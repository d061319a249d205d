//! Pool lifecycle under takeover: capacity while workers block, shutdown and drop with fenced
//! workers, handlers, waiting threads that stop at their latch, and deep scope nesting.
//!
//! Every wait has a watchdog: a hang fails the test (the process exits 101 with a message)
//! instead of stalling CI. No assertion is about elapsed time; the order of events is checked
//! with flags.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use common::{compute_for, counters, not_once, sleep_until, spin_until, wait_until, within};
use replicore::{ThreadPool, ThreadPoolBuilder};

/// Generous: no single test here needs more than a few seconds on a healthy pool.
const WATCHDOG: Duration = Duration::from_secs(60);
/// The longest any task here waits for a flag before giving up (and failing an assertion).
const PATIENCE: Duration = Duration::from_secs(20);

fn two_cpus() -> ThreadPoolBuilder {
    ThreadPool::builder().topology("numa:1 core:2 pu:1".parse().unwrap())
}

fn one_cpu() -> ThreadPoolBuilder {
    ThreadPool::builder().topology("numa:1 core:1 pu:1".parse().unwrap())
}

// ---------------------------------------------------------------------------------------------
// Capacity
// ---------------------------------------------------------------------------------------------

/// Both workers of a 2-worker pool run a long task started first; 100 short tasks are queued
/// behind them. All 100 must run before either long task finishes: the blocked workers' CPUs
/// are taken over. `long_task` is the body of each long task.
fn short_tasks_run_while_both_workers_are_held(what: &'static str, long_task: fn()) {
    within(WATCHDOG, what, move || {
        const SHORT: usize = 100;
        let pool = two_cpus().lease(Duration::from_millis(20)).build().unwrap();
        let started = Arc::new(AtomicUsize::new(0));
        let finished = Arc::new(AtomicUsize::new(0));
        for _ in 0..2 {
            let (started, finished) = (started.clone(), finished.clone());
            pool.spawn(move || {
                started.fetch_add(1, Ordering::SeqCst);
                long_task();
                finished.fetch_add(1, Ordering::SeqCst);
            });
        }
        wait_until(
            PATIENCE,
            "both long tasks started",
            || started.load(Ordering::SeqCst) == 2,
            || format!("{:?}", pool.stats()),
        );
        let runs = counters(SHORT);
        let ran_while_held = Arc::new(AtomicUsize::new(0));
        for i in 0..SHORT {
            let (runs, finished, ran_while_held) =
                (runs.clone(), finished.clone(), ran_while_held.clone());
            pool.spawn(move || {
                if finished.load(Ordering::SeqCst) == 0 {
                    ran_while_held.fetch_add(1, Ordering::SeqCst);
                }
                runs[i].fetch_add(1, Ordering::SeqCst);
            });
        }
        wait_until(
            PATIENCE,
            "all short tasks ran",
            || runs.iter().all(|r| r.load(Ordering::SeqCst) >= 1),
            || format!("{:?}", pool.stats()),
        );
        let stats = pool.stats();
        let early = ran_while_held.load(Ordering::SeqCst);
        wait_until(
            PATIENCE,
            "both long tasks finished",
            || finished.load(Ordering::SeqCst) == 2,
            || format!("{:?}", pool.stats()),
        );
        pool.shutdown();
        let (bad, examples) = not_once(&runs);
        assert_eq!(bad, 0, "short tasks not run exactly once: {examples:?}");
        assert_eq!(
            early, SHORT,
            "only {early} of {SHORT} short tasks ran before a long task finished; {stats:?}"
        );
    });
}

/// Both workers sleep 400 ms.
#[test]
fn capacity_both_workers_blocked() {
    short_tasks_run_while_both_workers_are_held("capacity, blocked", || {
        std::thread::sleep(Duration::from_millis(400))
    });
}

/// Both workers are *mostly* blocked for 400 ms: 1 ms sleeps with ~20 µs of work between them.
/// Their CPU capacity is lost just as with one long sleep, so they must be taken over too.
#[test]
fn capacity_both_workers_mostly_blocked() {
    short_tasks_run_while_both_workers_are_held("capacity, mostly blocked", || {
        let t0 = std::time::Instant::now();
        while t0.elapsed() < Duration::from_millis(400) {
            std::thread::sleep(Duration::from_millis(1));
            compute_for(Duration::from_micros(20));
        }
    });
}

// ---------------------------------------------------------------------------------------------
// Shutdown with a fenced worker
// ---------------------------------------------------------------------------------------------

/// What the fenced task does once `shutdown()` has begun.
#[derive(Clone, Copy, Debug)]
enum AfterFence {
    /// `replicore::spawn`s 10 tasks.
    Spawn,
    /// Opens a `replicore::scope` with 10 children.
    Scope,
}

/// One round: lease 5 ms; a task blocks 60 ms, so its worker is fenced (we wait for the
/// takeover); `shutdown()` begins; then the task, still on its fenced worker, spawns 10 tasks
/// or opens a scope with 10 children. `shutdown()` must return, and all 10 must have run
/// exactly once by then.
fn fenced_task_after_shutdown_began(after: AfterFence, round: usize) {
    const CHILDREN: usize = 10;
    let what = format!("shutdown with a fenced {after:?}, round {round}");
    let w = what.clone();
    within(Duration::from_secs(30), &what, move || {
        let pool = two_cpus().lease(Duration::from_millis(5)).build().unwrap();
        let runs = counters(CHILDREN);
        let started = Arc::new(AtomicBool::new(false));
        let shutdown_begun = Arc::new(AtomicBool::new(false));
        let saw_shutdown = Arc::new(AtomicBool::new(false));
        {
            let (runs, started, shutdown_begun, saw_shutdown) = (
                runs.clone(),
                started.clone(),
                shutdown_begun.clone(),
                saw_shutdown.clone(),
            );
            pool.spawn(move || {
                started.store(true, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(60));
                // Bounded: if `shutdown()` never began, the assertion below says so.
                if !sleep_until(PATIENCE, || shutdown_begun.load(Ordering::SeqCst)) {
                    return;
                }
                saw_shutdown.store(true, Ordering::SeqCst);
                match after {
                    AfterFence::Spawn => {
                        for i in 0..CHILDREN {
                            let runs = runs.clone();
                            replicore::spawn(move || {
                                runs[i].fetch_add(1, Ordering::SeqCst);
                            });
                        }
                    }
                    AfterFence::Scope => replicore::scope(|s| {
                        for r in runs.iter() {
                            s.spawn(move |_| {
                                r.fetch_add(1, Ordering::SeqCst);
                            });
                        }
                    }),
                }
            });
        }
        wait_until(
            PATIENCE,
            "the blocking task started",
            || started.load(Ordering::SeqCst),
            String::new,
        );
        // The task sleeps 60 ms = 12 leases: its worker is taken over meanwhile.
        wait_until(
            PATIENCE,
            "the blocked worker was taken over",
            || pool.stats().recovery.takeovers >= 1,
            || format!("{:?}", pool.stats()),
        );
        shutdown_begun.store(true, Ordering::SeqCst);
        pool.shutdown();
        assert!(
            saw_shutdown.load(Ordering::SeqCst),
            "{w}: the fenced task never resumed"
        );
        let (bad, examples) = not_once(&runs);
        assert_eq!(
            bad, 0,
            "{w}: {bad} of {CHILDREN} tasks started by a fenced task after shutdown() began \
             did not run exactly once by the time shutdown() returned: (task, runs) {examples:?}"
        );
    });
}

#[test]
fn shutdown_runs_spawns_of_a_fenced_task() {
    for round in 0..10 {
        fenced_task_after_shutdown_began(AfterFence::Spawn, round);
    }
}

#[test]
fn shutdown_returns_when_a_fenced_task_opens_a_scope() {
    for round in 0..10 {
        fenced_task_after_shutdown_began(AfterFence::Scope, round);
    }
}

// ---------------------------------------------------------------------------------------------
// Drop
// ---------------------------------------------------------------------------------------------

/// Workers whose start handler waits for the thread that drops the pool: the drop must not wait
/// for them (it would deadlock), and after the barrier they run and exit in the background.
#[test]
fn drop_while_start_handlers_wait_on_the_dropping_thread() {
    within(WATCHDOG, "drop while start handlers wait", || {
        const N: usize = 2;
        let barrier = Arc::new(Barrier::new(N + 1));
        let b = barrier.clone();
        let _ = two_cpus()
            .start_handler(move |_| {
                b.wait();
            })
            .build()
            .unwrap();
        // Reached only if dropping the pool above did not wait for the workers.
        barrier.wait();
    });
}

/// Workers whose exit handler waits for the thread that drops the pool.
#[test]
fn drop_while_exit_handlers_wait_on_the_dropping_thread() {
    within(WATCHDOG, "drop while exit handlers wait", || {
        const N: usize = 2;
        let barrier = Arc::new(Barrier::new(N + 1));
        let b = barrier.clone();
        let _ = two_cpus()
            .exit_handler(move |_| {
                b.wait();
            })
            .build()
            .unwrap();
        barrier.wait();
    });
}

/// Dropping a pool with 100 queued tasks returns without waiting for them, and they all still
/// run, exactly once, in the background. The first task waits for a gate the dropping thread
/// opens only after `drop` returned, so a drop that waits for the queue deadlocks.
#[test]
fn dropped_pool_finishes_queued_work_in_the_background() {
    within(WATCHDOG, "drop with 100 queued tasks", || {
        const TASKS: usize = 100;
        let pool = two_cpus().build().unwrap();
        let runs = counters(TASKS);
        let gate = Arc::new(AtomicBool::new(false));
        let gate_seen = Arc::new(AtomicBool::new(false));
        {
            let (gate, gate_seen) = (gate.clone(), gate_seen.clone());
            pool.spawn(move || {
                if sleep_until(PATIENCE, || gate.load(Ordering::SeqCst)) {
                    gate_seen.store(true, Ordering::SeqCst);
                }
            });
        }
        for i in 0..TASKS {
            let runs = runs.clone();
            pool.spawn(move || {
                std::thread::sleep(Duration::from_micros(200));
                runs[i].fetch_add(1, Ordering::SeqCst);
            });
        }
        drop(pool);
        gate.store(true, Ordering::SeqCst);
        wait_until(
            PATIENCE,
            "queued tasks of a dropped pool ran",
            || runs.iter().all(|r| r.load(Ordering::SeqCst) >= 1),
            || {
                let ran = runs
                    .iter()
                    .filter(|r| r.load(Ordering::SeqCst) >= 1)
                    .count();
                format!("{ran} of {TASKS} ran")
            },
        );
        assert!(
            gate_seen.load(Ordering::SeqCst),
            "the gated task gave up: dropping the pool waited for its queue"
        );
        // Give duplicates a moment to show up; none may.
        std::thread::sleep(Duration::from_millis(50));
        let (bad, examples) = not_once(&runs);
        assert_eq!(bad, 0, "not run exactly once: {examples:?}");
    });
}

// ---------------------------------------------------------------------------------------------
// Handlers
// ---------------------------------------------------------------------------------------------

/// A start handler that takes ten leases: the lease starts after it returns, so no worker is
/// taken over and the handler runs exactly once per worker.
#[test]
fn start_handler_slower_than_the_lease() {
    within(WATCHDOG, "slow start handler", || {
        const N: usize = 2;
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let pool = two_cpus()
            .lease(Duration::from_millis(5))
            .start_handler(move |_| {
                c.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(50));
            })
            .build()
            .unwrap();
        let runs = counters(100);
        for i in 0..100 {
            let runs = runs.clone();
            pool.spawn(move || {
                runs[i].fetch_add(1, Ordering::SeqCst);
            });
        }
        assert_eq!(pool.install(|| replicore::join(|| 1, || 2)), (1, 2));
        wait_until(
            PATIENCE,
            "spawned tasks ran",
            || runs.iter().all(|r| r.load(Ordering::SeqCst) >= 1),
            || format!("{:?}", pool.stats()),
        );
        let stats = pool.stats();
        pool.shutdown();
        let (bad, examples) = not_once(&runs);
        assert_eq!(bad, 0, "not run exactly once: {examples:?}");
        assert_eq!(
            calls.load(Ordering::SeqCst),
            N,
            "the start handler ran more than once per worker; {stats:?}"
        );
        assert_eq!(
            stats.recovery.takeovers, 0,
            "a worker still in its start handler was taken over; {stats:?}"
        );
    });
}

/// A pool whose start or exit handler panics: each panic reaches the panic handler, and the pool
/// still works.
fn handler_panics_reach_the_panic_handler(start: bool) {
    const N: usize = 2;
    let panics = Arc::new(AtomicUsize::new(0));
    let p = panics.clone();
    let builder = two_cpus()
        // Long: no takeover, so each handler runs exactly once per worker.
        .lease(Duration::from_secs(10))
        .panic_handler(move |payload| {
            let msg = payload
                .downcast_ref::<&str>()
                .copied()
                .unwrap_or("(not a &str)");
            assert_eq!(
                msg, "handler boom",
                "an unexpected panic reached the handler"
            );
            p.fetch_add(1, Ordering::SeqCst);
        });
    let builder = if start {
        builder.start_handler(|_| panic!("handler boom"))
    } else {
        builder.exit_handler(|_| panic!("handler boom"))
    };
    let pool = builder.build().unwrap();
    assert_eq!(pool.install(|| replicore::join(|| 1, || 2)), (1, 2));
    let runs = counters(50);
    for i in 0..50 {
        let runs = runs.clone();
        pool.spawn(move || {
            runs[i].fetch_add(1, Ordering::SeqCst);
        });
    }
    wait_until(
        PATIENCE,
        "tasks ran",
        || runs.iter().all(|r| r.load(Ordering::SeqCst) >= 1),
        || format!("{:?}", pool.stats()),
    );
    // `shutdown` joins the workers: every start and exit handler has returned by then.
    pool.shutdown();
    let (bad, examples) = not_once(&runs);
    assert_eq!(bad, 0, "not run exactly once: {examples:?}");
    assert_eq!(
        panics.load(Ordering::SeqCst),
        N,
        "one handler panic per worker must reach the panic handler"
    );
}

#[test]
fn start_handler_panics_go_to_the_panic_handler() {
    within(WATCHDOG, "start handler panics", || {
        handler_panics_reach_the_panic_handler(true)
    });
}

#[test]
fn exit_handler_panics_go_to_the_panic_handler() {
    within(WATCHDOG, "exit handler panics", || {
        handler_panics_reach_the_panic_handler(false)
    });
}

// ---------------------------------------------------------------------------------------------
// A waiting thread stops at its latch
// ---------------------------------------------------------------------------------------------

/// One worker: a long unrelated task is queued, then a scope with one empty child. The worker
/// runs the child while it waits; the scope must then return at once. If the long task started
/// before the scope returned, the waiting worker took unrelated work after its latch was set
/// (with one worker, nothing else could have started it).
#[test]
fn scope_returns_before_taking_unrelated_work() {
    within(WATCHDOG, "latch first (scope)", || {
        let pool = one_cpu().lease(Duration::from_secs(10)).build().unwrap();
        let long_started = Arc::new(AtomicBool::new(false));
        let long_done = Arc::new(AtomicBool::new(false));
        let started_before_scope_returned = {
            let (long_started, long_done) = (long_started.clone(), long_done.clone());
            pool.install(move || {
                let ls = long_started.clone();
                replicore::spawn(move || {
                    ls.store(true, Ordering::SeqCst);
                    compute_for(Duration::from_millis(500));
                    long_done.store(true, Ordering::SeqCst);
                });
                replicore::scope(|s| s.spawn(|_| {}));
                long_started.load(Ordering::SeqCst)
            })
        };
        wait_until(
            PATIENCE,
            "the long task ran after all",
            || long_done.load(Ordering::SeqCst),
            || format!("{:?}", pool.stats()),
        );
        pool.shutdown();
        assert!(
            !started_before_scope_returned,
            "the scope's waiting worker started an unrelated 500 ms task after its only child \
             finished, instead of returning"
        );
    });
}

/// Two workers, X and Y. On X, a `join` of `a` (run on X) and `b` (offered): Y steals b. While X
/// waits for b (its deque is empty), it takes W1 from the injector; W1 holds X until b's latch is set (Y has then moved
/// on to H, which b queued on Y's own deque and which keeps Y busy). W2, queued in the injector
/// with W1, must not start on X after that: the join must return first.
#[test]
fn stolen_join_returns_before_taking_unrelated_work() {
    within(WATCHDOG, "latch first (stolen join)", || {
        let pool = Arc::new(two_cpus().lease(Duration::from_secs(10)).build().unwrap());
        let b_started = Arc::new(AtomicBool::new(false));
        let w1_started = Arc::new(AtomicBool::new(false));
        let h_started = Arc::new(AtomicBool::new(false));
        let join_returned = Arc::new(AtomicBool::new(false));
        // The worker index W2 started on, once it started.
        let w2_started = Arc::new(AtomicUsize::new(usize::MAX));
        let w2_done = Arc::new(AtomicBool::new(false));
        let h_done = Arc::new(AtomicBool::new(false));
        let p = pool.clone();
        let (bs, w1s, hs, jr, w2s, w2d, hd) = (
            b_started.clone(),
            w1_started.clone(),
            h_started.clone(),
            join_returned.clone(),
            w2_started.clone(),
            w2_done.clone(),
            h_done.clone(),
        );
        let outcome = pool.install(move || {
            let x = replicore::current_thread_index();
            // replicore runs the second closure on X and offers the first (rayon: the other
            // way round), so the stolen half comes first here.
            let (b_thread, steps_ok) = replicore::join(
                || {
                    // b, on Y.
                    bs.store(true, Ordering::SeqCst);
                    let ok = spin_until(PATIENCE, || w1s.load(Ordering::SeqCst));
                    let (hs, jr, hd) = (hs.clone(), jr.clone(), hd.clone());
                    // Onto Y's own deque: Y runs it right after b, and is busy until the join
                    // on X returned, so Y cannot take W2.
                    replicore::spawn(move || {
                        hs.store(true, Ordering::SeqCst);
                        spin_until(PATIENCE, || jr.load(Ordering::SeqCst));
                        hd.store(true, Ordering::SeqCst);
                    });
                    (ok, replicore::current_thread_index())
                },
                || {
                    // a, on X: wait until Y took b, then queue W1 and W2 from outside the pool
                    // (into the injector, not onto X's deque).
                    if !spin_until(PATIENCE, || bs.load(Ordering::SeqCst)) {
                        return false;
                    }
                    let (w1s, hs, w2s, w2d) = (w1s.clone(), hs.clone(), w2s.clone(), w2d.clone());
                    std::thread::scope(|s| {
                        s.spawn(|| {
                            p.spawn(move || {
                                w1s.store(true, Ordering::SeqCst);
                                // Returns once H started: b's latch is set by then.
                                spin_until(PATIENCE, || hs.load(Ordering::SeqCst));
                            });
                            p.spawn(move || {
                                let me = replicore::current_thread_index().unwrap();
                                w2s.store(me, Ordering::SeqCst);
                                w2d.store(true, Ordering::SeqCst);
                            });
                        });
                    });
                    true
                },
            );
            // Only W2 starting on X counts: had Y taken it, X did nothing wrong.
            let w2_early = Some(w2s.load(Ordering::SeqCst)) == x;
            jr.store(true, Ordering::SeqCst);
            (steps_ok, b_thread, x, w2_early)
        });
        let (a_ok, (b_ok, b_thread), x, w2_early) = outcome;
        wait_until(
            PATIENCE,
            "W2 and H finished",
            || w2_done.load(Ordering::SeqCst) && h_done.load(Ordering::SeqCst),
            || format!("{:?}", pool.stats()),
        );
        let pool = Arc::try_unwrap(pool).expect("the install's clone was dropped");
        pool.shutdown();
        assert!(a_ok, "b was never stolen by the other worker");
        assert!(b_ok, "W1 never started on the joining worker");
        assert_ne!(b_thread, x, "b ran on the joining worker");
        assert!(
            w1_started.load(Ordering::SeqCst) && h_started.load(Ordering::SeqCst),
            "the scenario did not play out"
        );
        assert!(
            !w2_early,
            "the joining worker started unrelated work after b (stolen) had finished, instead \
             of returning from the join"
        );
    });
}

// ---------------------------------------------------------------------------------------------
// No nesting without bound
// ---------------------------------------------------------------------------------------------

const CHILD_ENV: &str = "REPLICORE_LIFECYCLE_CHILD";

/// The workload of [`many_queued_scopes_do_not_overflow_the_stack`], run in a child process.
fn nested_scopes_workload() {
    const TASKS: usize = 20_000;
    let pool = one_cpu().lease(Duration::from_secs(10)).build().unwrap();
    let runs = counters(TASKS);
    let children = Arc::new(AtomicUsize::new(0));
    {
        let (runs, children) = (runs.clone(), children.clone());
        pool.install(move || {
            for i in 0..TASKS {
                let (runs, children) = (runs.clone(), children.clone());
                replicore::spawn(move || {
                    replicore::scope(|s| {
                        s.spawn(|_| {
                            children.fetch_add(1, Ordering::SeqCst);
                        })
                    });
                    runs[i].fetch_add(1, Ordering::SeqCst);
                });
            }
        });
    }
    wait_until(
        Duration::from_secs(120),
        "20,000 queued one-child scopes ran",
        || runs.iter().all(|r| r.load(Ordering::SeqCst) >= 1),
        || format!("{:?}", pool.stats()),
    );
    pool.shutdown();
    let (bad, examples) = not_once(&runs);
    assert_eq!(bad, 0, "not run exactly once: {examples:?}");
    assert_eq!(children.load(Ordering::SeqCst), TASKS);
}

/// One worker with 20,000 queued tasks that each open a one-child scope. A waiting worker that
/// takes more queued work before checking its latch nests one scope frame per task and
/// overflows its stack, which aborts the process; so the workload runs in a child process (this
/// test binary, re-run on this test alone), and an abort is a failure here.
#[test]
fn many_queued_scopes_do_not_overflow_the_stack() {
    if std::env::var_os(CHILD_ENV).is_some() {
        nested_scopes_workload();
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let mut child = std::process::Command::new(exe)
        .args([
            "many_queued_scopes_do_not_overflow_the_stack",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if t0.elapsed() > Duration::from_secs(180) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("watchdog: the child process did not finish within 180 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let tail: String = {
        let lines: Vec<&str> = stderr.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    };
    assert!(
        status.success(),
        "20,000 queued one-child scopes on one worker: the child process failed ({status}); \
         a SIGABRT here is the stack overflow. Its stderr ends with:\n{tail}"
    );
}

/// A broadcast spawned just before `shutdown()` sits in each worker's inbox, which only that
/// worker may run: a worker that searched its queues just before the broadcast and then saw
/// the shutdown must look once more before it exits. Many rounds, because the window is short.
#[test]
fn shutdown_runs_a_spawn_broadcast_queued_just_before() {
    within(WATCHDOG, "spawn_broadcast then shutdown", || {
        for round in 0..500 {
            let pool = two_cpus().build().unwrap();
            let calls = Arc::new(AtomicUsize::new(0));
            let c = calls.clone();
            pool.spawn_broadcast(move |_| {
                c.fetch_add(1, Ordering::SeqCst);
            });
            pool.shutdown();
            assert_eq!(
                calls.load(Ordering::SeqCst),
                2,
                "round {round}: a broadcast call was lost at shutdown"
            );
        }
    });
}

/// Without replicas (`R = 0`) each CPU is watched by a couple of ring neighbours, not the whole
/// pool; when those are blocked too, the monitor drives. Six tasks block at once on a pool of
/// eight: every CPU they block is taken over (a replacement that picks up a queued blocker is
/// blocked and taken over in turn), and the pool keeps answering meanwhile.
#[test]
fn without_replicas_every_blocked_worker_is_taken_over_even_when_its_watchers_block() {
    within(Duration::from_secs(60), "r=0 takeovers", || {
        let lease = Duration::from_millis(20);
        let pool = ThreadPool::builder()
            .topology("numa:2 core:4 pu:1".parse().unwrap())
            .replication_factor(0)
            .lease(lease)
            .build()
            .unwrap();
        let release = Arc::new(AtomicBool::new(false));
        let started = Arc::new(AtomicUsize::new(0));
        for _ in 0..6 {
            let (release, started) = (release.clone(), started.clone());
            // Blocked off its CPU until released.
            pool.spawn(move || {
                started.fetch_add(1, Ordering::SeqCst);
                sleep_until(Duration::from_secs(30), || release.load(Ordering::SeqCst));
            });
        }
        // A takeover is counted when its fence is won and the replacement when its thread has
        // started, a thread spawn later: wait for both.
        wait_until(
            Duration::from_secs(20),
            "six blocked CPUs taken over",
            || {
                let recovery = pool.stats().recovery;
                started.load(Ordering::SeqCst) == 6
                    && recovery.takeovers >= 6
                    && recovery.replacement_threads >= 6
            },
            || format!("{:?}", pool.stats()),
        );
        assert_eq!(
            pool.install(|| 7),
            7,
            "the pool answers while six owners block"
        );
        release.store(true, Ordering::SeqCst);
        let stats = pool.stats();
        pool.shutdown();
        assert_eq!(
            started.load(Ordering::SeqCst),
            6,
            "each blocker ran once: {stats:?}"
        );
        assert!(stats.recovery.replacement_threads >= 6, "{stats:?}");
    });
}
