//! How the pool's costs grow with the worker count, replicore and rayon at the same thread
//! counts, on synthetic topologies (so any box can run it; on a 2-CPU box the workers are
//! oversubscribed, which is what makes a wake-up per task expensive). Four cases, each after
//! 50 ms idle (so every worker has parked):
//! - `outside`: 20,000 empty `spawn`s from a thread outside the pool;
//! - `inside`: the same, spawned from one task on a worker;
//! - `broadcast`: one `broadcast` of an empty closure to every worker;
//! - `fib`: fib(25) through `join`.
//!
//! ```sh
//! cargo run --release --example spawn_scale               # 2, 16, 64, 128, 256 workers
//! cargo run --release --example spawn_scale -- 256 5      # one size, 5 rounds
//! ```
//!
//! Printed: the median round per contender (alternating, so a noisy moment hits both) and the
//! ratio replicore / rayon. `cargo bench --bench scale` runs the same rounds under criterion.

use std::time::Duration;

#[path = "../benches/common/contender.rs"]
mod contender;
#[path = "../benches/common/scale_topology.rs"]
mod scale_topology;
#[path = "../benches/common/scale_workloads.rs"]
mod scale_workloads;
use contender::Contender;
use scale_workloads::{CASES, pools, round};

/// One round after 50 ms idle.
fn idle_round<P: Contender>(pool: &P, case: &str) -> Duration {
    std::thread::sleep(Duration::from_millis(50));
    round(pool, case)
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
        let (rp, ry, spec) = pools(n);
        for case in CASES {
            let (mut a, mut b) = (Vec::new(), Vec::new());
            // Alternate the contenders, so that a noisy moment hits both.
            for _ in 0..rounds {
                a.push(idle_round(&rp, case));
                b.push(idle_round(&ry, case));
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
