//! Cost of replication and latency of takeover.
//!
//! `cargo bench --bench takeover`.
//! - `replication_cost_*`: fib(30) (`join` only) and 10k spawns from inside a task, with
//!   `replication_factor` 0, 1 (2 workers) and 0, 2 (3 workers on a synthetic 3-CPU topology:
//!   `r = 2` needs 3 CPUs; on a 2-core machine those 3 workers share 2 cores).
//! - `takeover_latency/lease_{1,5,20}ms`: one worker blocks in a syscall right after queuing a
//!   task, while the other spins in a task with no scheduling point; the time measured is from
//!   the block to the queued task starting elsewhere (via the monitor's takeover, as the other worker
//!   never reaches a scheduling point, and the
//!   replacement worker). Target: at most 2 × lease. A fresh pool per sample (outside the timing).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::sync_channel;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use replicore::ThreadPool;

#[path = "common/replication_workloads.rs"]
mod replication_workloads;
use replication_workloads::{fib, spawn_many};

fn pool(threads: usize, r: usize) -> ThreadPool {
    let mut b = ThreadPool::builder().replication_factor(r);
    if threads != 2 {
        b = b
            .topology(format!("numa:1 core:{threads} pu:1").parse().unwrap())
            .pin_workers(false);
    } else {
        b = b.num_threads(2);
    }
    b.build().unwrap()
}

fn replication_cost(c: &mut Criterion) {
    for (threads, rs) in [(2, [0, 1]), (3, [0, 2])] {
        let mut g = c.benchmark_group(format!("replication_cost_{threads}_workers"));
        g.sample_size(20)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(2));
        for r in rs {
            let p = pool(threads, r);
            g.bench_function(format!("fib30_r{r}"), |b| b.iter(|| p.install(|| fib(30))));
            g.bench_function(format!("spawn_many_r{r}"), |b| b.iter(|| spawn_many(&p)));
        }
        g.finish();
    }
}

/// One sample: time from a worker blocking (with a task queued behind it) to that task running.
fn one_takeover(lease: Duration) -> Duration {
    let p = ThreadPool::builder()
        .num_threads(2)
        .lease(lease)
        .build()
        .unwrap();
    let hog_running = Arc::new(AtomicBool::new(false));
    let queued_ran = Arc::new(AtomicBool::new(false));
    {
        let (hog_running, queued_ran) = (hog_running.clone(), queued_ran.clone());
        p.spawn(move || {
            hog_running.store(true, Ordering::SeqCst);
            while !queued_ran.load(Ordering::SeqCst) {
                std::hint::spin_loop();
            }
        });
    }
    while !hog_running.load(Ordering::SeqCst) {
        std::thread::yield_now();
    }
    let (tx, rx) = sync_channel(1);
    p.spawn(move || {
        let (ran_tx, ran_rx) = sync_channel(1);
        let queued_ran = queued_ran.clone();
        replicore::spawn(move || {
            let t1 = Instant::now();
            queued_ran.store(true, Ordering::SeqCst);
            ran_tx.send(t1).unwrap();
        });
        let t0 = Instant::now();
        // The stall: a blocking syscall, holding the queued task's CPU.
        let t1 = ran_rx.recv().unwrap();
        tx.send(t1 - t0).unwrap();
    });
    rx.recv().unwrap()
}

fn takeover_latency(c: &mut Criterion) {
    let mut g = c.benchmark_group("takeover_latency");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_secs(2));
    for ms in [1, 5, 20] {
        let lease = Duration::from_millis(ms);
        g.bench_function(format!("lease_{ms}ms"), |b| {
            b.iter_custom(|iters| (0..iters).map(|_| one_takeover(lease)).sum())
        });
    }
    g.finish();
}

criterion_group!(benches, replication_cost, takeover_latency);
criterion_main!(benches);
