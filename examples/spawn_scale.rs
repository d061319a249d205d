//! How the pool's costs grow with the worker count, replicore and rayon at the same thread
//! counts, on synthetic topologies (so any box can run it; on a 2-CPU box the workers are
//! oversubscribed, which is what makes a wake-up per task expensive). Three cases, each after
//! 50 ms idle (so every worker has parked):
//! - `outside`: `TASKS` empty `spawn`s from a thread outside the pool;
//! - `inside`: the same, spawned from one task on a worker;
//! - `broadcast`: one `broadcast` of an empty closure to every worker.
//!
//! ```sh
//! cargo run --release --example spawn_scale               # 2, 16, 64, 128, 256 workers
//! cargo run --release --example spawn_scale -- 256 5      # one size, 5 rounds
//! ```
//!
//! Printed: the median round per contender (alternating, so a noisy moment hits both) and the
//! ratio replicore / rayon.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use replicore::{ThreadPool, Topology};

const TASKS: usize = 20_000;

/// A synthetic topology with `n` CPUs: up to 8 nodes, 2 PUs per core from 16 CPUs on.
fn topology(n: usize) -> (Topology, String) {
    let nodes = match n {
        0..=8 => 1,
        9..=32 => 2,
        33..=128 => 4,
        _ => 8,
    };
    let pus = if n >= 16 { 2 } else { 1 };
    let cores = (n / nodes / pus).max(1);
    let spec = format!("numa:{nodes} core:{cores} pu:{pus}");
    (spec.parse().expect("a valid synthetic topology"), spec)
}

fn wait_for(done: &AtomicUsize, want: usize) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while done.load(Ordering::Acquire) < want {
        assert!(Instant::now() < deadline, "watchdog: tasks did not finish");
        std::thread::yield_now();
    }
}

/// One round of `case` on replicore.
fn round_replicore(pool: &ThreadPool, case: &str) -> Duration {
    std::thread::sleep(Duration::from_millis(50));
    let done = Arc::new(AtomicUsize::new(0));
    let t = Instant::now();
    let spawn_all = || {
        for _ in 0..TASKS {
            let done = Arc::clone(&done);
            replicore::spawn(move || {
                done.fetch_add(1, Ordering::Release);
            });
        }
    };
    match case {
        "outside" => {
            for _ in 0..TASKS {
                let done = Arc::clone(&done);
                pool.spawn(move || {
                    done.fetch_add(1, Ordering::Release);
                });
            }
            wait_for(&done, TASKS);
        }
        "inside" => {
            pool.install(spawn_all);
            wait_for(&done, TASKS);
        }
        _ => {
            pool.broadcast(|_| ());
        }
    }
    t.elapsed()
}

/// One round of `case` on rayon.
fn round_rayon(pool: &rayon::ThreadPool, case: &str) -> Duration {
    std::thread::sleep(Duration::from_millis(50));
    let done = Arc::new(AtomicUsize::new(0));
    let t = Instant::now();
    let spawn_all = || {
        for _ in 0..TASKS {
            let done = Arc::clone(&done);
            rayon::spawn(move || {
                done.fetch_add(1, Ordering::Release);
            });
        }
    };
    match case {
        "outside" => {
            for _ in 0..TASKS {
                let done = Arc::clone(&done);
                pool.spawn(move || {
                    done.fetch_add(1, Ordering::Release);
                });
            }
            wait_for(&done, TASKS);
        }
        "inside" => {
            pool.install(spawn_all);
            wait_for(&done, TASKS);
        }
        _ => {
            pool.broadcast(|_| ());
        }
    }
    t.elapsed()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let sizes: Vec<usize> = match args.first() {
        Some(n) => vec![n.parse()?],
        None => vec![2, 16, 64, 128, 256],
    };
    let rounds: usize = args.get(1).map(|r| r.parse()).transpose()?.unwrap_or(7);
    println!("workers  topology                 case       replicore     rayon  ratio");
    for n in sizes {
        let (topo, spec) = topology(n);
        let rp = ThreadPool::builder()
            .topology(topo)
            .num_threads(n)
            .pin_workers(false)
            .build()?;
        let ry = rayon::ThreadPoolBuilder::new().num_threads(n).build()?;
        for case in ["outside", "inside", "broadcast"] {
            let (mut a, mut b) = (Vec::new(), Vec::new());
            // Alternate the contenders, so that a noisy moment hits both.
            for _ in 0..rounds {
                a.push(round_replicore(&rp, case));
                b.push(round_rayon(&ry, case));
            }
            let (a, b) = (median(a), median(b));
            println!(
                "{n:>7}  {spec:<24} {case:<10} {:>9.2?} {:>9.2?}  {:>5.2}",
                a,
                b,
                a.as_secs_f64() / b.as_secs_f64()
            );
        }
    }
    Ok(())
}
