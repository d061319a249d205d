//! How far an idle replica lags, with and without the background helper.
//!
//! Two synthetic nodes (`numa:2 core:1 pu:1`); one thread on node 0 writes a 100k-key map
//! (`insert`, uniform keys) for 400k ops, nobody touches node 1. A sampler thread reads
//! `NrStats::current_replica_lag` every 50 µs while the writer runs, then once more 50 ms after
//! the last write. Default sizes (log 1024, lag bound 512); the helper uses
//! `HelperConfig::default()` (batch 64, wake at a lag of 128, 5 ms nap). Runs alternate between
//! the two settings, 5 of each; the report is the median of each figure. Last, the CPU time the
//! helpers of an idle structure use over 2 s (from `/proc/self/task/*/schedstat`).
//!
//! ```text
//! cargo run --release --example nr_lag
//! ```

use replicore::Topology;
use replicore::nr::{HelperConfig, NrBuilder, ReplicatedHashMap, SeqHashMap};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const KEYS: u64 = 100_000;
const OPS: u64 = 400_000;
const RUNS: usize = 5;

struct Run {
    mean_lag: f64,
    max_lag: u64,
    lag_after: u64,
    write_ns: f64,
    helper_entries: u64,
    helping_events: u64,
}

fn one(topo: &Topology, helper: bool, init: &HashMap<u64, u64>) -> Run {
    let mut b = NrBuilder::new(topo);
    if helper {
        b = b.helper(HelperConfig::default());
    }
    let map = ReplicatedHashMap::from(b.build(|| SeqHashMap(init.clone())).unwrap());
    let done = AtomicBool::new(false);
    let (samples, write_ns) = std::thread::scope(|s| {
        let sampler = s.spawn(|| {
            let mut v = Vec::new();
            while !done.load(Ordering::Acquire) {
                v.push(map.stats().current_replica_lag);
                std::thread::sleep(Duration::from_micros(50));
            }
            v
        });
        let h = map.register(topo.nodes()[0]).unwrap();
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let t0 = Instant::now();
        for _ in 0..OPS {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            std::hint::black_box(h.insert(x % KEYS, x));
        }
        let write_ns = t0.elapsed().as_nanos() as f64 / OPS as f64;
        done.store(true, Ordering::Release);
        (sampler.join().unwrap(), write_ns)
    });
    std::thread::sleep(Duration::from_millis(50));
    let stats = map.stats();
    Run {
        mean_lag: samples.iter().sum::<u64>() as f64 / samples.len().max(1) as f64,
        max_lag: samples.iter().copied().max().unwrap_or(0),
        lag_after: stats.current_replica_lag,
        write_ns,
        helper_entries: stats.helper_entries,
        helping_events: stats.helping_events,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// CPU ns used so far by this process's threads named like the helpers (Linux only; 0 elsewhere).
fn helper_cpu_ns() -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .filter_map(|e| e.ok())
        .filter(|e| {
            std::fs::read_to_string(e.path().join("comm"))
                .is_ok_and(|n| n.starts_with("replicore-nr-he"))
        })
        .filter_map(|e| std::fs::read_to_string(e.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

fn main() {
    let topo: Topology = "numa:2 core:1 pu:1".parse().unwrap();
    let init: HashMap<u64, u64> = (0..KEYS).map(|k| (k, k)).collect();
    let mut runs: [Vec<Run>; 2] = [Vec::new(), Vec::new()];
    for _ in 0..RUNS {
        for helper in [false, true] {
            runs[helper as usize].push(one(&topo, helper, &init));
        }
    }
    println!(
        "| node 1 idle | mean lag while writing | max lag | lag 50 ms after | write ns/op (wall) | helper entries | writer helps |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (helper, rs) in runs.iter().enumerate() {
        let m = |f: &dyn Fn(&Run) -> f64| median(rs.iter().map(f).collect());
        println!(
            "| {} | {:.0} | {:.0} | {:.0} | {:.1} | {:.0} | {:.0} |",
            if helper == 1 {
                "helper on"
            } else {
                "no helper"
            },
            m(&|r| r.mean_lag),
            m(&|r| r.max_lag as f64),
            m(&|r| r.lag_after as f64),
            m(&|r| r.write_ns),
            m(&|r| r.helper_entries as f64),
            m(&|r| r.helping_events as f64),
        );
    }
    let idle = ReplicatedHashMap::from(
        NrBuilder::new(&topo)
            .helper(HelperConfig::default())
            .build(|| SeqHashMap(init.clone()))
            .unwrap(),
    );
    idle.register(topo.nodes()[0]).unwrap().insert(1, 1);
    std::thread::sleep(Duration::from_millis(200));
    let (before, t0) = (helper_cpu_ns(), Instant::now());
    std::thread::sleep(Duration::from_secs(2));
    let used = helper_cpu_ns() - before;
    println!(
        "idle structure, {} helpers: {:.1} µs of CPU in {:.1} s ({:.4}% of one CPU)",
        topo.num_nodes(),
        used as f64 / 1e3,
        t0.elapsed().as_secs_f64(),
        used as f64 / t0.elapsed().as_nanos() as f64 * 100.0
    );
}
