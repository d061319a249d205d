//! Per-operation cost of node replication against node-replication 0.1.1 and
//! `parking_lot::RwLock<HashMap>`, for a shared machine where criterion's wall-clock means
//! wander with other people's load.
//!
//! The workload is `benches/nr.rs`'s: a map pre-filled with 100k `u64` keys, uniform keys from
//! the same xorshift streams, `insert(k, k + 1)` for writes and `get(&k)` for reads, through each
//! contender's real API. Each configuration runs 15 times for 2M ops per thread; the report is
//! the best run's wall-clock throughput and, less sensitive to being descheduled, its CPU time
//! per op summed over the threads (Linux `/proc/thread-self/schedstat`; spinning counts as CPU,
//! parked time does not).
//!
//! ```text
//! cargo run --release --example nr_costs -- <replicore|replicore-helper|replicore-token|nr|rwlock> <write %> <threads> [nodes] [cores per node]
//! cargo run --release --example nr_costs            # every contender at 0/10/100% × 1/2 threads
//! NR_COSTS_KEYS=5000 cargo run --release --example nr_costs -- ...   # a map that fits in cache
//! ```

use replicore::Topology;
use replicore::nr::{
    HashMapRead, HashMapWrite, HelperConfig, NrBuilder, NrConfig, ReplicatedHashMap, SeqHashMap,
    Token,
};
use std::collections::HashMap;
use std::sync::Barrier;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

#[path = "../benches/common/nr_scale.rs"]
#[allow(dead_code)] // the sweep's rounds; this probe uses the baseline's map type only
mod nr_scale;
use nr_scale::{Get, NrMap, Put};

const OPS: u64 = 2_000_000;
const RUNS: usize = 15;

/// This thread's CPU time so far, in ns, or 0 where the kernel does not say.
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Keys in the map: `benches/nr.rs`'s 100k, or `NR_COSTS_KEYS` (say 5000, a map that fits in
/// one core's cache, to tell the cost of the protocol from the cost of cache misses).
fn keys() -> u64 {
    static KEYS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *KEYS.get_or_init(|| {
        std::env::var("NR_COSTS_KEYS").map_or(nr_scale::KEYS, |k| {
            k.parse()
                .ok()
                .filter(|&k| k > 0)
                .expect("NR_COSTS_KEYS: a positive number")
        })
    })
}

/// Runs `OPS` operations of thread `t` through `op(key, is_write)` and adds the thread's CPU
/// time to `cpu`. Same key stream as `benches/nr.rs`.
fn drive(t: usize, write_pct: u64, cpu: &AtomicU64, mut op: impl FnMut(u64, bool)) {
    let keys = keys();
    let start = thread_cpu_ns();
    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ ((t as u64 + 1) * 0xD1B5_4A32_D192_ED03);
    for _ in 0..OPS {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        op(x % keys, x % 100 < write_pct);
    }
    cpu.fetch_add(thread_cpu_ns() - start, Ordering::Relaxed);
}

/// One timed run: `(wall, summed CPU ns)`.
fn run_once(which: &str, write_pct: u64, threads: usize, topo: &Topology) -> (Duration, u64) {
    let init: HashMap<u64, u64> = (0..keys()).map(|k| (k, k)).collect();
    let barrier = Barrier::new(threads);
    let cpu = AtomicU64::new(0);
    let nodes = topo.nodes();
    let start;
    match which {
        "replicore" | "replicore-helper" | "replicore-token" => {
            // `-helper`: background helpers on (default settings); their CPU time is not in
            // the per-op figure, which counts the benchmark threads only. `-token`: helpers on,
            // and each thread is a session whose reads pass the token of its last operation.
            let map = if which == "replicore" {
                ReplicatedHashMap::with_contents(topo, NrConfig::default(), &init).unwrap()
            } else {
                let b = NrBuilder::new(topo).helper(HelperConfig::default());
                ReplicatedHashMap::from(b.build(|| SeqHashMap(init.clone())).unwrap())
            };
            let tokens = which == "replicore-token";
            start = Instant::now();
            std::thread::scope(|s| {
                for t in 0..threads {
                    let (map, barrier, cpu) = (&map, &barrier, &cpu);
                    s.spawn(move || {
                        let h = map.register(nodes[t % nodes.len()]).unwrap();
                        let mut token = Token::default();
                        barrier.wait();
                        drive(t, write_pct, cpu, |k, w| {
                            if tokens {
                                if w {
                                    let (r, tk) =
                                        h.execute_mut_with_token(HashMapWrite::Insert(k, k + 1));
                                    std::hint::black_box(r);
                                    token = tk;
                                } else {
                                    let (r, tk) = h.execute_after(token, HashMapRead::Get(&k));
                                    std::hint::black_box(r);
                                    token = tk;
                                }
                            } else if w {
                                std::hint::black_box(h.insert(k, k + 1));
                            } else {
                                std::hint::black_box(h.get(&k));
                            }
                        });
                    });
                }
            });
        }
        "nr" => {
            let log = std::sync::Arc::new(node_replication::Log::<Put>::new(2 * 1024 * 1024));
            // As in the bench: one replica per thread at most, because an unused replica stalls
            // node-replication 0.1.1's log; finished threads keep syncing for the same reason.
            let replicas: Vec<_> = nodes
                .iter()
                .take(threads)
                .map(|_| node_replication::Replica::with_data(&log, NrMap(init.clone())))
                .collect();
            let running = AtomicUsize::new(threads);
            start = Instant::now();
            std::thread::scope(|s| {
                for t in 0..threads {
                    let (replicas, barrier, cpu, running) = (&replicas, &barrier, &cpu, &running);
                    s.spawn(move || {
                        let r = &replicas[t % replicas.len()];
                        let tok = r.register().expect("node-replication token");
                        barrier.wait();
                        drive(t, write_pct, cpu, |k, w| {
                            if w {
                                std::hint::black_box(r.execute_mut(Put(k, k + 1), tok));
                            } else {
                                std::hint::black_box(r.execute(Get(k), tok));
                            }
                        });
                        running.fetch_sub(1, Ordering::AcqRel);
                        while running.load(Ordering::Acquire) > 0 {
                            r.sync(tok);
                        }
                    });
                }
            });
        }
        "rwlock" => {
            let map = parking_lot::RwLock::new(init);
            start = Instant::now();
            std::thread::scope(|s| {
                for t in 0..threads {
                    let (map, barrier, cpu) = (&map, &barrier, &cpu);
                    s.spawn(move || {
                        barrier.wait();
                        drive(t, write_pct, cpu, |k, w| {
                            if w {
                                std::hint::black_box(map.write().insert(k, k + 1));
                            } else {
                                std::hint::black_box(map.read().get(&k).copied());
                            }
                        });
                    });
                }
            });
        }
        other => panic!(
            "unknown contender {other:?}: use replicore, replicore-helper, replicore-token, nr or rwlock"
        ),
    }
    (start.elapsed(), cpu.into_inner())
}

fn report(which: &str, write_pct: u64, threads: usize, nodes: usize, cores: usize) {
    let topo = Topology::synthetic(nodes, cores, 1).expect("nodes and cores must be at least 1");
    let (mut wall, mut cpu) = (Duration::MAX, u64::MAX);
    for _ in 0..RUNS {
        let (w, c) = run_once(which, write_pct, threads, &topo);
        wall = wall.min(w);
        cpu = cpu.min(c);
    }
    let ops = (OPS * threads as u64) as f64;
    println!(
        "{which:>9} w{write_pct:<3} t{threads} numa:{nodes} core:{cores}: {:6.1} M ops/s, {:5.1} CPU ns/op",
        ops / wall.as_secs_f64() / 1e6,
        cpu as f64 / ops
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [which, write_pct, threads, rest @ ..] = args.as_slice() {
        let nodes = rest
            .first()
            .map_or(1, |n| n.parse().expect("nodes: a number"));
        let cores = rest
            .get(1)
            .map_or(1, |n| n.parse().expect("cores per node: a number"));
        report(
            which,
            write_pct.parse().expect("write %: a number"),
            threads.parse().expect("threads: a number"),
            nodes,
            cores,
        );
        return;
    }
    for write_pct in [0, 10, 100] {
        for threads in [1, 2] {
            for which in ["replicore", "nr", "rwlock"] {
                report(which, write_pct, threads, 1, 1);
            }
        }
    }
}
