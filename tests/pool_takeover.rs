//! Takeover in the real pool, without fault injection: a task that blocks in a syscall for ten
//! leases does not hold the tasks queued behind it on its CPU hostage.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use replicore::ThreadPool;

const QUEUED: usize = 16;

/// A worker busy with a task that never reaches a scheduling point (so no idle neighbour can
/// steal), and another worker whose task spawns `QUEUED` tasks onto its own deque and then
/// sleeps for ten leases. The queued tasks must all run, exactly once, before the sleeper wakes.
fn blocking_task_does_not_strand_its_queue(replication: usize) {
    let lease = Duration::from_millis(20);
    let pool = ThreadPool::builder()
        .topology("numa:1 core:2 pu:1".parse().unwrap())
        .replication_factor(replication)
        .lease(lease)
        .build()
        .unwrap();
    let hog_running = Arc::new(AtomicBool::new(false));
    let sleeper_done = Arc::new(AtomicBool::new(false));
    let ran_early = Arc::new(AtomicUsize::new(0));
    let runs: Arc<Vec<AtomicUsize>> = Arc::new((0..QUEUED).map(|_| AtomicUsize::new(0)).collect());

    // The hog: spins (no scheduling point) until every queued task ran, or a watchdog fires.
    {
        let (hog_running, runs) = (hog_running.clone(), runs.clone());
        pool.spawn(move || {
            hog_running.store(true, Ordering::SeqCst);
            let t0 = Instant::now();
            while runs.iter().any(|r| r.load(Ordering::SeqCst) == 0)
                && t0.elapsed() < Duration::from_secs(20)
            {
                std::hint::spin_loop();
            }
        });
    }
    while !hog_running.load(Ordering::SeqCst) {
        std::thread::yield_now();
    }
    let (tx, rx) = std::sync::mpsc::channel();
    {
        let (sleeper_done, ran_early, runs) =
            (sleeper_done.clone(), ran_early.clone(), runs.clone());
        pool.spawn(move || {
            for i in 0..QUEUED {
                let (sleeper_done, ran_early, runs) =
                    (sleeper_done.clone(), ran_early.clone(), runs.clone());
                replicore::spawn(move || {
                    if !sleeper_done.load(Ordering::SeqCst) {
                        ran_early.fetch_add(1, Ordering::SeqCst);
                    }
                    runs[i].fetch_add(1, Ordering::SeqCst);
                });
            }
            std::thread::sleep(lease * 10);
            sleeper_done.store(true, Ordering::SeqCst);
            tx.send(()).unwrap();
        });
    }
    rx.recv_timeout(Duration::from_secs(30))
        .expect("watchdog: the sleeper never finished");
    let stats = pool.stats();
    pool.shutdown();
    for (i, r) in runs.iter().enumerate() {
        assert_eq!(
            r.load(Ordering::SeqCst),
            1,
            "queued task {i} ran a wrong number of times"
        );
    }
    assert_eq!(
        ran_early.load(Ordering::SeqCst),
        QUEUED,
        "every queued task ran while its CPU's worker was still blocked; stats: {stats:?}"
    );
    assert!(stats.recovery.takeovers >= 1, "{stats:?}");
    assert!(
        stats.recovery.lease_expiries >= stats.recovery.takeovers,
        "{stats:?}"
    );
    // Which CPU is taken over first is timing: the hog's replacement may steal the queued
    // tasks before the sleeper's CPU is taken over, so `tasks_recovered_from_replica` may be 0.
    assert!(stats.recovery.replacement_threads >= 1, "{stats:?}");
}

#[test]
fn blocking_task_replicated() {
    blocking_task_does_not_strand_its_queue(1);
}

#[test]
fn blocking_task_unreplicated() {
    blocking_task_does_not_strand_its_queue(0);
}

/// At the spare-thread cap, a stalled worker is not fenced; its queued task is still run by the
/// other worker, and the stats say the cap was hit.
#[test]
fn spare_thread_cap_is_visible() {
    let pool = ThreadPool::builder()
        .topology("numa:1 core:2 pu:1".parse().unwrap())
        .lease(Duration::from_millis(5))
        .max_spare_threads(0)
        .build()
        .unwrap();
    let inner_ran = Arc::new(AtomicBool::new(false));
    let hog_running = Arc::new(AtomicBool::new(false));
    {
        let (inner_ran, hog_running) = (inner_ran.clone(), hog_running.clone());
        // The hog spins, without scheduling points, until the blocked worker's queued task ran;
        // then it returns and picks that task up from the injector itself.
        pool.spawn(move || {
            hog_running.store(true, Ordering::SeqCst);
            let t0 = Instant::now();
            while t0.elapsed() < Duration::from_millis(200) {
                std::hint::spin_loop();
            }
            let _ = inner_ran;
        });
    }
    while !hog_running.load(Ordering::SeqCst) {
        std::thread::yield_now();
    }
    let (tx, rx) = std::sync::mpsc::channel();
    pool.spawn(move || {
        let (inner_tx, inner_rx) = std::sync::mpsc::channel();
        let inner_ran = inner_ran.clone();
        replicore::spawn(move || {
            inner_ran.store(true, Ordering::SeqCst);
            inner_tx.send(()).unwrap();
        });
        // Blocks its worker until the task queued behind it has run elsewhere: with no spare
        // thread allowed, only the hog's worker can run it, once the hog is done.
        inner_rx.recv_timeout(Duration::from_secs(20)).unwrap();
        tx.send(()).unwrap();
    });
    rx.recv_timeout(Duration::from_secs(30))
        .expect("watchdog: the queued task never ran");
    let stats = pool.stats();
    assert_eq!(
        (stats.recovery.takeovers, stats.recovery.replacement_threads),
        (0, 0),
        "{stats:?}"
    );
    assert!(
        stats.recovery.takeovers_without_replacement >= 1,
        "{stats:?}"
    );
}

/// `join(A, B)` where A blocks for ten leases while the other worker is busy: B, queued behind
/// A, is run by the replacement worker. A's worker, fenced when it returns from A, does not pop
/// its deque; it waits for B (still running elsewhere) and the `join` returns both results.
#[test]
fn blocked_joiner_gets_its_join_back() {
    let lease = Duration::from_millis(5);
    let pool = ThreadPool::builder()
        .topology("numa:1 core:2 pu:1".parse().unwrap())
        .lease(lease)
        .build()
        .unwrap();
    let hog_running = Arc::new(AtomicBool::new(false));
    let b_done = Arc::new(AtomicBool::new(false));
    {
        let (hog_running, b_done) = (hog_running.clone(), b_done.clone());
        pool.spawn(move || {
            hog_running.store(true, Ordering::SeqCst);
            let t0 = Instant::now();
            while !b_done.load(Ordering::SeqCst) && t0.elapsed() < Duration::from_secs(20) {
                std::hint::spin_loop();
            }
        });
    }
    while !hog_running.load(Ordering::SeqCst) {
        std::thread::yield_now();
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let b_done2 = b_done.clone();
    let joiner = std::thread::spawn(move || {
        let r = pool.install(|| {
            replicore::join(
                || {
                    std::thread::sleep(lease * 10);
                    std::thread::current().id()
                },
                || {
                    std::thread::sleep(lease * 20);
                    b_done2.store(true, Ordering::SeqCst);
                    std::thread::current().id()
                },
            )
        });
        tx.send((r, pool.stats())).unwrap();
        pool
    });
    let ((a_thread, b_thread), stats) = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("watchdog: the join never returned");
    drop(joiner.join().unwrap());
    assert!(b_done.load(Ordering::SeqCst));
    assert_ne!(
        a_thread, b_thread,
        "B ran elsewhere while A blocked; {stats:?}"
    );
    assert!(stats.recovery.takeovers >= 1, "{stats:?}");
}

/// A burst of pushes far beyond the log's capacity (1024) overruns the replica between two
/// monitor ticks: the replica counts a gap, and the takeover that follows (the spawner then
/// sleeps for ten leases while the other worker is busy) falls back to the old deque and the
/// in-hand slot. Every task still runs exactly once.
#[test]
fn burst_past_log_capacity_counts_a_gap_and_nothing_is_lost() {
    const BURST: usize = 8 * 1024;
    let lease = Duration::from_millis(10);
    let pool = ThreadPool::builder()
        .topology("numa:1 core:2 pu:1".parse().unwrap())
        .replication_factor(1)
        .lease(lease)
        .build()
        .unwrap();
    let runs: Arc<Vec<AtomicUsize>> = Arc::new((0..BURST).map(|_| AtomicUsize::new(0)).collect());
    let all_ran = {
        let runs = runs.clone();
        move || runs.iter().all(|r| r.load(Ordering::SeqCst) >= 1)
    };
    let hog_running = Arc::new(AtomicBool::new(false));
    {
        // Keeps the other worker busy (no scheduling point) until the burst has run.
        let (hog_running, all_ran) = (hog_running.clone(), all_ran.clone());
        pool.spawn(move || {
            hog_running.store(true, Ordering::SeqCst);
            let t0 = Instant::now();
            while !all_ran() && t0.elapsed() < Duration::from_secs(20) {
                std::hint::spin_loop();
            }
        });
    }
    while !hog_running.load(Ordering::SeqCst) {
        std::thread::yield_now();
    }
    {
        let runs = runs.clone();
        pool.spawn(move || {
            for i in 0..BURST {
                let runs = runs.clone();
                replicore::spawn(move || {
                    runs[i].fetch_add(1, Ordering::SeqCst);
                });
            }
            std::thread::sleep(lease * 10);
        });
    }
    let t0 = Instant::now();
    while !all_ran() {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "watchdog: burst tasks never ran; {:?}",
            pool.stats()
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let stats = pool.stats();
    pool.shutdown();
    for (i, r) in runs.iter().enumerate() {
        assert_eq!(r.load(Ordering::SeqCst), 1, "task {i}; {stats:?}");
    }
    assert!(stats.recovery.replica_gaps >= 1, "{stats:?}");
    assert!(stats.recovery.takeovers >= 1, "{stats:?}");
}

/// A task that blocks (sleeps) for longer than the lease is taken over; it keeps running on its
/// fenced worker. When it then forks, its `join`s must stay parallel: B is redirected where the
/// replacement and the other workers can run it. Here A waits until B has started, so a fenced
/// worker that ran B only after A would fail the test. (A task that *computes* past the lease
/// is not taken over: its worker is busy, not blocked.)
#[test]
fn fenced_worker_joins_stay_parallel() {
    let lease = Duration::from_millis(5);
    let pool = ThreadPool::builder()
        .topology("numa:1 core:2 pu:1".parse().unwrap())
        .lease(lease)
        .thread_name(|i| format!("calc-{i}"))
        .build()
        .unwrap();
    let watchdog = Instant::now();
    let fenced_joins = pool.install(|| {
        // Blocks without a scheduling point for a few leases, then forks. The other worker
        // may be the one taken over, or this one not yet, so repeat until this worker's own
        // join shows it was fenced: it redirected B.
        loop {
            std::thread::sleep(lease * 4);
            let redirected_before = pool.stats().recovery.fenced_rejections;
            let b_started = AtomicBool::new(false);
            let (a_saw_b, b_thread) = replicore::join(
                || {
                    let t0 = Instant::now();
                    while !b_started.load(Ordering::SeqCst) {
                        if t0.elapsed() > Duration::from_secs(10) {
                            return false;
                        }
                        std::hint::spin_loop();
                    }
                    true
                },
                || {
                    b_started.store(true, Ordering::SeqCst);
                    std::thread::current().name().map(str::to_owned)
                },
            );
            assert!(a_saw_b, "B waited for A: the join ran sequentially");
            // B ran on the replacement or the other worker: a thread named by the builder.
            let b_thread = b_thread.expect("workers are named");
            assert!(b_thread.starts_with("calc-"), "{b_thread}");
            if pool.stats().recovery.fenced_rejections > redirected_before {
                return true;
            }
            if watchdog.elapsed() > Duration::from_secs(20) {
                return false;
            }
        }
    });
    let stats = pool.stats();
    assert!(fenced_joins, "this worker was never fenced: {stats:?}");
    assert!(stats.recovery.takeovers >= 1, "{stats:?}");
}

/// The lease monitor (the backstop that judges every lease, O(workers) per round) rests while
/// every worker is parked, and still catches a stall as soon as work comes: a one-worker pool
/// has no neighbour to watch its lease, so only the monitor can take a blocked worker over.
#[test]
fn idle_pool_rests_its_monitor_and_wakes_it_for_a_stall() {
    let lease = Duration::from_millis(20);
    let pool = ThreadPool::builder()
        .num_threads(1)
        .lease(lease)
        .build()
        .unwrap();
    pool.install(|| replicore::join(|| 1, || 2));
    let rounds = || pool.stats().recovery.monitor_rounds;
    // While the worker runs or spins, a round comes every quarter lease. Once it is parked there
    // must be a window of five leases with no round at all (watchdog: 10 s).
    let t0 = Instant::now();
    let quiet = loop {
        let before = rounds();
        std::thread::sleep(5 * lease);
        if rounds() == before {
            break true;
        }
        if t0.elapsed() > Duration::from_secs(10) {
            break false;
        }
    };
    assert!(
        quiet,
        "the monitor kept rounding while the pool idled: {:?}",
        pool.stats()
    );
    // A task that blocks for ten leases: the monitor must wake, judge it and take the CPU over.
    let rested = rounds();
    let got = pool.install(|| {
        std::thread::sleep(10 * lease);
        7
    });
    assert_eq!(got, 7);
    let s = pool.stats();
    assert!(s.recovery.monitor_rounds > rested, "{s:?}");
    assert!(
        s.recovery.takeovers >= 1,
        "the stall was not taken over: {s:?}"
    );
    // And the pool still answers, on its replacement worker.
    assert_eq!(pool.install(|| replicore::join(|| 3, || 4)), (3, 4));
}
