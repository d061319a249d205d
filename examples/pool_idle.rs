//! Measures the CPU an idle pool burns: runs some work, lets the workers settle into parking,
//! then sums the CPU time of this process's threads (`/proc/self/task/*/schedstat`, nanoseconds)
//! across 2 s of idleness.
//!
//! ```sh
//! cargo run --release --example pool_idle            # 2 workers
//! cargo run --release --example pool_idle -- 256     # 256 workers on numa:8 core:16 pu:2
//! ```
//!
//! With a worker count above 2, the pool runs on a synthetic topology with that many CPUs (the
//! one `spawn_scale` uses: 8 nodes of 2-PU cores at 256), so any box can show what an idle big
//! pool costs.

use std::time::{Duration, Instant};

#[path = "../benches/common/scale_topology.rs"]
mod scale_topology;

/// CPU time of every thread of this process, in nanoseconds: the first field of each
/// `/proc/self/task/<tid>/schedstat`. Exact to the nanosecond, where `/proc/self/stat`'s utime
/// and stime count 10 ms ticks (too coarse for a pool that costs under 1%).
fn cpu_nanos() -> Option<u64> {
    let mut total = 0;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let path = task.ok()?.path().join("schedstat");
        // A thread may exit between the listing and the read: it then costs nothing here.
        if let Ok(stat) = std::fs::read_to_string(path) {
            total += stat.split_whitespace().next()?.parse::<u64>().ok()?;
        }
    }
    Some(total)
}

fn fib(n: u32) -> u64 {
    if n < 2 {
        return n as u64;
    }
    let (a, b) = replicore::join(|| fib(n - 1), || fib(n - 2));
    a + b
}

fn main() {
    let n: usize = match std::env::args().nth(1) {
        Some(arg) => match arg.parse() {
            Ok(n) if n > 0 => n,
            _ => {
                eprintln!("usage: pool_idle [workers > 0], got {arg:?}");
                std::process::exit(2);
            }
        },
        None => 2,
    };
    let mut builder = replicore::ThreadPool::builder().num_threads(n);
    if n > 2 {
        let (topology, spec) = scale_topology::scale_topology(n);
        println!("topology: {spec}");
        builder = builder.topology(topology).pin_workers(false);
    }
    let pool = builder.build().expect("a pool");
    println!("warm-up: fib(25) = {}", pool.install(|| fib(25)));
    // Let the workers finish their spin phase and park.
    std::thread::sleep(Duration::from_millis(200));
    let Some(before) = cpu_nanos() else {
        println!("/proc/self/task/*/schedstat is not readable here; nothing to measure");
        return;
    };
    let start = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    let after = cpu_nanos().expect("readable a moment ago");
    let wall = start.elapsed().as_secs_f64();
    let cpu = after.saturating_sub(before) as f64 / 1e9;
    println!(
        "idle {n}-thread pool: {:.6} s CPU over {:.2} s wall = {:.3}% of one CPU",
        cpu,
        wall,
        100.0 * cpu / wall
    );
    let s = pool.stats();
    println!(
        "parks: {}, unparks: {}, lease monitor rounds: {}",
        s.scheduler.parks, s.scheduler.unparks, s.recovery.monitor_rounds
    );
    pool.shutdown();
}
