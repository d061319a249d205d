//! The cost of run-queue replication, measured so that a shared, noisy machine still gives a
//! usable answer: a pool with `replication_factor(0)` and one with `replication_factor(1)` run
//! the same workloads in alternation, many times, and the minimum and median of each are printed.
//! The minimum is the run least disturbed by other processes, so `r = 1` against `r = 0` at the
//! minimum is the cleanest estimate of the protocol's own cost.
//!
//! `cargo run --release --example replication_cost -- [rounds]` (default 300).
//!
//! - `spawn_many`: one task spawns 10 000 tasks from inside the pool (every one a logged push,
//!   and with `r = 1` a logged start).
//! - `fib(25)`: `join` only; `join`'s second half is never logged.
//!
//! It also prints how often the `r = 1` pool's replicas fell so far behind the 10 000-push bursts
//! that they saw a gap in the log.

use std::time::{Duration, Instant};

use replicore::ThreadPool;

#[path = "../benches/common/replication_workloads.rs"]
mod replication_workloads;
use replication_workloads::{fib, spawn_many};

/// One workload's line: both pools' (minimum, median) and what `r = 1` costs at each.
fn report(label: &str, [r0, r1]: [(f64, f64); 2]) {
    println!(
        "{label} r=0 {:.3} / {:.3}, r=1 {:.3} / {:.3}: r=1 costs {:+.1}% at the minimum, {:+.1}% at the median",
        r0.0,
        r0.1,
        r1.0,
        r1.1,
        (r1.0 / r0.0 - 1.0) * 100.0,
        (r1.1 / r0.1 - 1.0) * 100.0
    );
}

/// (minimum, median) in milliseconds.
fn min_median(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    (ms(v[0]), ms(v[v.len() / 2]))
}

fn time(f: impl FnOnce()) -> Duration {
    let t = Instant::now();
    f();
    t.elapsed()
}

fn main() {
    let rounds: usize = match std::env::args().nth(1) {
        Some(s) => match s.parse() {
            Ok(n) if n > 0 => n,
            _ => {
                eprintln!("rounds must be a positive integer, got {s:?}");
                std::process::exit(2);
            }
        },
        None => 300,
    };
    let pools = [0, 1].map(|r| {
        ThreadPool::builder()
            .num_threads(2)
            .replication_factor(r)
            .build()
            .expect("a 2-thread pool")
    });
    let mut spawns = [Vec::new(), Vec::new()];
    let mut fibs = [Vec::new(), Vec::new()];
    for _ in 0..rounds {
        for (r, pool) in pools.iter().enumerate() {
            spawns[r].push(time(|| spawn_many(pool)));
            fibs[r].push(time(|| {
                pool.install(|| fib(25));
            }));
        }
    }
    let replicated = pools[1].stats();
    let s = spawns.map(min_median);
    let f = fibs.map(min_median);
    println!("{rounds} alternating rounds, 2 workers; minimum / median in ms");
    report("spawn_many (10k):", s);
    report("fib(25):         ", f);
    println!(
        "r=1 replicas: {} syncs found a gap (fell more than the log's 1024 ops behind); largest lag {} ops",
        replicated.recovery.replica_gaps, replicated.recovery.replica_lag_max
    );
}
