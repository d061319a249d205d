//! Stress: many external submitters, exact-once counting.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

use replicore::ThreadPool;

/// Tasks per submitter; `STRESS_TASKS` changes it (default: 4 × 250k = 1M tasks).
fn per_thread() -> usize {
    std::env::var("STRESS_TASKS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(250_000)
}

#[test]
fn one_million_tasks_from_four_external_threads_run_exactly_once() {
    let per = per_thread();
    let total = 4 * per;
    let pool = Arc::new(ThreadPool::builder().num_threads(2).build().unwrap());
    let runs: Arc<Vec<AtomicU8>> = Arc::new((0..total).map(|_| AtomicU8::new(0)).collect());
    let done = Arc::new(AtomicUsize::new(0));
    std::thread::scope(|s| {
        for t in 0..4 {
            let (pool, runs, done) = (pool.clone(), runs.clone(), done.clone());
            s.spawn(move || {
                for i in t * per..(t + 1) * per {
                    let (runs, done) = (runs.clone(), done.clone());
                    pool.spawn(move || {
                        runs[i].fetch_add(1, Ordering::Relaxed);
                        done.fetch_add(1, Ordering::Relaxed);
                    });
                }
            });
        }
    });
    let pool = Arc::into_inner(pool).unwrap();
    pool.shutdown();
    assert_eq!(done.load(Ordering::Relaxed), total);
    let bad = runs
        .iter()
        .filter(|r| r.load(Ordering::Relaxed) != 1)
        .count();
    assert_eq!(bad, 0, "every task ran exactly once");
}

#[test]
fn mixed_join_scope_spawn_under_contention() {
    let pool = ThreadPool::builder().num_threads(2).build().unwrap();
    let count = AtomicUsize::new(0);
    for _ in 0..20 {
        pool.scope(|s| {
            for _ in 0..100 {
                s.spawn(|_| {
                    let (a, b) = replicore::join(|| 1, || 2);
                    count.fetch_add(a + b, Ordering::Relaxed);
                });
            }
        });
    }
    assert_eq!(count.load(Ordering::Relaxed), 20 * 100 * 3);
}

#[test]
fn four_node_synthetic_pool_runs_everything_once() {
    fn fib(n: u32) -> u64 {
        if n < 2 {
            return n as u64;
        }
        let (a, b) = replicore::join(|| fib(n - 1), || fib(n - 2));
        a + b
    }
    let topo: replicore::Topology = "numa:4 core:2".parse().unwrap();
    let pool = ThreadPool::builder().topology(topo).build().unwrap();
    assert_eq!(pool.current_num_threads(), 8);
    let count = Arc::new(AtomicUsize::new(0));
    for _ in 0..20_000 {
        let count = count.clone();
        pool.spawn(move || {
            count.fetch_add(1, Ordering::Relaxed);
        });
    }
    assert_eq!(pool.install(|| fib(20)), 6765);
    let stats = pool.stats();
    pool.shutdown();
    assert_eq!(count.load(Ordering::Relaxed), 20_000);
    assert!(stats.scheduler.tasks_executed >= 20_000, "{stats:?}");
}

/// Joins past the fork window run as plain calls (B, then A) unless another worker is hungry;
/// then they fork. Across seeds and pool sizes, a join tree whose leaves sometimes sleep (so that
/// workers run dry, go hungry and come back) and sometimes panic: every leaf runs exactly once,
/// every join returns, and a panic reaches the top only after every other leaf ran (G1, G2, G5).
#[test]
fn every_join_half_runs_once_whether_it_forks_or_is_called() {
    use std::panic::{AssertUnwindSafe, catch_unwind};
    use std::time::Duration;

    const LEAVES: usize = 4_096;

    fn tree(runs: &[AtomicUsize], lo: usize, hi: usize, seed: u64, panicking: usize) {
        if hi - lo == 1 {
            runs[lo].fetch_add(1, Ordering::SeqCst);
            // A leaf in 64 blocks for a moment: the other workers run dry and turn hungry.
            let h = (lo as u64 ^ seed).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58;
            if h == 0 {
                std::thread::sleep(Duration::from_micros(200));
            }
            if lo == panicking {
                panic!("leaf {lo}");
            }
            return;
        }
        // Uneven splits, so that subtrees differ in depth.
        let mid = lo
            + ((hi - lo) * (1 + (seed as usize + lo) % 3))
                .div_ceil(4)
                .min(hi - lo - 1);
        let mid = mid.max(lo + 1);
        replicore::join(
            || tree(runs, lo, mid, seed, panicking),
            || tree(runs, mid, hi, seed, panicking),
        );
    }

    let mut stolen = 0;
    for seed in 0..24u64 {
        let threads = 2 + (seed % 3) as usize;
        let pool = Arc::new(ThreadPool::builder().num_threads(threads).build().unwrap());
        let runs: Arc<Vec<AtomicUsize>> =
            Arc::new((0..LEAVES).map(|_| AtomicUsize::new(0)).collect());
        // Every third seed, one leaf panics.
        let panicking = if seed % 3 == 0 {
            (seed as usize * 977) % LEAVES
        } else {
            usize::MAX
        };
        let (tx, rx) = std::sync::mpsc::channel();
        {
            let (pool, runs) = (pool.clone(), runs.clone());
            std::thread::spawn(move || {
                let r = catch_unwind(AssertUnwindSafe(|| {
                    pool.install(|| tree(&runs, 0, LEAVES, seed, panicking))
                }));
                tx.send(r.map_err(|p| p.downcast_ref::<String>().cloned().unwrap_or_default()))
                    .unwrap();
            });
        }
        let result = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("watchdog: seed {seed}: the join tree never returned"));
        match result {
            Ok(()) => assert_eq!(panicking, usize::MAX, "seed {seed}: the panic was lost"),
            Err(msg) => assert_eq!(msg, format!("leaf {panicking}"), "seed {seed}"),
        }
        let bad: Vec<(usize, usize)> = runs
            .iter()
            .enumerate()
            .map(|(i, r)| (i, r.load(Ordering::SeqCst)))
            .filter(|&(_, n)| n != 1)
            .take(10)
            .collect();
        assert!(bad.is_empty(), "seed {seed}: leaves not run once: {bad:?}");
        // Both paths ran: the top of the tree forks (popped back or stolen).
        let s = pool.stats().scheduler;
        assert!(s.local_pops + s.steals_same_node >= 3, "seed {seed}: {s:?}");
        stolen += s.steals_same_node;
    }
    assert!(stolen > 0, "no forked half was ever stolen");
}
