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
