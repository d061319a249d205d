//! The replicore tour: what the runtime sees on this machine and what it does with it.
//!
//! Run with `cargo run --release --example tour`; set `REPLICORE_TOPOLOGY="numa:2 core:2 pu:1"`
//! to act out a two-socket machine.
use replicore::{ThreadPool, Topology};
use std::time::Instant;

fn section(title: &str) {
    println!(
        "\n== {title} {}",
        "=".repeat(70usize.saturating_sub(title.len()))
    );
}

fn main() {
    section("1. Topology");
    let topo = match Topology::detect() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    print!("{topo}");
    let threads = topo.num_cpus();
    println!("Successor order (who replicates and takes over each CPU's queue, nearest first):");
    for &cpu in topo.cpus().iter().take(16) {
        let n: Vec<String> = topo
            .neighbours(cpu)
            .iter()
            .take(3)
            .map(|c| c.to_string())
            .collect();
        println!("  {cpu} -> {}", n.join(", "));
    }

    section("2. A parallel workload: quicksort of 10M keys");
    let pool = match ThreadPool::builder().topology(topo.clone()).build() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let keys = random_keys(10_000_000, 0x5eed);
    let mut seq = keys.clone();
    let t = Instant::now();
    quicksort(&mut seq, false);
    let seq_time = t.elapsed();
    let mut par = keys;
    let t = Instant::now();
    pool.install(|| quicksort(&mut par, true));
    let par_time = t.elapsed();
    assert!(
        par.windows(2).all(|w| w[0] <= w[1]),
        "parallel sort is sorted"
    );
    assert_eq!(par, seq, "parallel and sequential sorts agree");
    println!(
        "sequential {:>8.1} ms | replicore on {threads} workers {:>8.1} ms | speed-up {:.2}x",
        seq_time.as_secs_f64() * 1e3,
        par_time.as_secs_f64() * 1e3,
        seq_time.as_secs_f64() / par_time.as_secs_f64()
    );
    let stats = pool.stats();
    println!(
        "pool stats: {} tasks, {} local pops, {} steals ({} from another node), {} parks",
        stats.tasks_executed,
        stats.local_pops,
        stats.steals_same_node + stats.steals_remote_node,
        stats.steals_remote_node,
        stats.parks
    );
    pool.shutdown();
}

/// Deterministic pseudo-random keys (splitmix64), so every run sorts the same input.
fn random_keys(n: usize, mut seed: u64) -> Vec<u64> {
    (0..n)
        .map(|_| {
            seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = seed;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        })
        .collect()
}

/// Quicksort; with `parallel` the two halves go through `replicore::join`, otherwise they run one
/// after the other, so both timings run the same algorithm.
fn quicksort(v: &mut [u64], parallel: bool) {
    if v.len() <= 4096 {
        v.sort_unstable();
        return;
    }
    let mid = partition(v);
    let (lo, hi) = v.split_at_mut(mid);
    let hi = &mut hi[1..];
    if parallel {
        replicore::join(|| quicksort(lo, true), || quicksort(hi, true));
    } else {
        quicksort(lo, false);
        quicksort(hi, false);
    }
}

/// Lomuto partition around the median of three; returns the pivot's final index.
fn partition(v: &mut [u64]) -> usize {
    let last = v.len() - 1;
    let mid = v.len() / 2;
    if v[mid] < v[0] {
        v.swap(mid, 0);
    }
    if v[last] < v[0] {
        v.swap(last, 0);
    }
    if v[mid] < v[last] {
        v.swap(mid, last);
    }
    let pivot = v[last];
    let mut store = 0;
    for i in 0..last {
        if v[i] < pivot {
            v.swap(i, store);
            store += 1;
        }
    }
    v.swap(store, last);
    store
}
