//! Measures the CPU an idle pool burns: runs some work, lets the workers settle into parking,
//! then reads this process's utime + stime from `/proc/self/stat` across 2 s of idleness.
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

/// utime + stime of this process, in clock ticks (fields 14 and 15 of `/proc/self/stat`).
fn cpu_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may contain spaces; fields after it follow the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3, so utime (14) and stime (15) are at 11 and 12.
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
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
    let Some(before) = cpu_ticks() else {
        println!("/proc/self/stat is not readable here; nothing to measure");
        return;
    };
    let start = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    let after = cpu_ticks().expect("readable a moment ago");
    let wall = start.elapsed().as_secs_f64();
    // Linux reports these in USER_HZ, which is 100 on every mainstream configuration.
    let cpu = (after - before) as f64 / 100.0;
    println!(
        "idle {n}-thread pool: {:.3} s CPU over {:.2} s wall = {:.2}% of one CPU (resolution 10 ms)",
        cpu,
        wall,
        100.0 * cpu / wall
    );
    let s = pool.stats();
    println!(
        "parks: {}, unparks: {}",
        s.scheduler.parks, s.scheduler.unparks
    );
    pool.shutdown();
}
