//! The replicore tour: what the runtime sees on this machine and what it does with it.
//!
//! Run with `cargo run --release --example tour`; set `REPLICORE_TOPOLOGY="numa:2 core:2 pu:1"`
//! to act out a two-socket machine.
use replicore::nr::{NrConfig, ReplicatedHashMap};
use replicore::{ThreadPool, Topology};
use std::collections::HashMap;
use std::sync::RwLock;
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

    section("3. Node replication: a read-mostly map (5% writes)");
    map_mix(&topo, threads);
}

/// Keys in the map, operations per thread, and the share of writes for section 3.
const MAP_KEYS: u64 = 100_000;
const MAP_OPS_PER_THREAD: usize = 2_000_000;
const MAP_WRITE_PERCENT: u64 = 5;

/// Runs the same uniform-key mix on a `ReplicatedHashMap` and on `RwLock<HashMap>`, one thread per
/// CPU, and prints both throughputs and their ratio.
fn map_mix(topo: &Topology, threads: usize) {
    let init: HashMap<u64, u64> = (0..MAP_KEYS).map(|k| (k, k)).collect();
    let replicated = match ReplicatedHashMap::with_contents(topo, NrConfig::default(), &init) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let locked = RwLock::new(init);
    let nr_rate = run_mix(threads, |t, op| {
        let h = replicated
            .register_current()
            .expect("register a map handle");
        mix_loop(t, op, |write, k| {
            if write {
                h.insert(k, k);
            } else {
                std::hint::black_box(h.get(&k));
            }
        })
    });
    let lock_rate = run_mix(threads, |t, op| {
        mix_loop(t, op, |write, k| {
            if write {
                locked.write().expect("lock").insert(k, k);
            } else {
                std::hint::black_box(locked.read().expect("lock").get(&k).copied());
            }
        })
    });
    println!(
        "{} replica(s), {threads} thread(s), {} ops each: ReplicatedHashMap {:>6.1} M ops/s | RwLock<HashMap> {:>6.1} M ops/s | ratio {:.2}x",
        replicated.num_replicas(),
        MAP_OPS_PER_THREAD,
        nr_rate / 1e6,
        lock_rate / 1e6,
        nr_rate / lock_rate
    );
    let stats = replicated.stats();
    println!(
        "nr stats: {} combiner batches (avg {:.1} ops), {} log wraps, {} helping events, max replica lag {}",
        stats.combiner_batches,
        stats.average_batch_size,
        stats.log_wraps,
        stats.helping_events,
        stats.max_replica_lag
    );
}

/// Runs `body(thread, ops)` on `threads` scoped threads and returns operations per second.
fn run_mix(threads: usize, body: impl Fn(usize, usize) + Sync) -> f64 {
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            let body = &body;
            s.spawn(move || body(t, MAP_OPS_PER_THREAD));
        }
    });
    (threads * MAP_OPS_PER_THREAD) as f64 / start.elapsed().as_secs_f64()
}

/// `ops` operations on uniform pseudo-random keys, `MAP_WRITE_PERCENT`% of them writes.
fn mix_loop(thread: usize, ops: usize, mut op: impl FnMut(bool, u64)) {
    let mut x = 0x2545_f491_4f6c_dd1d ^ (thread as u64 + 1);
    for _ in 0..ops {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        op(x % 100 < MAP_WRITE_PERCENT, (x >> 8) % MAP_KEYS);
    }
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
