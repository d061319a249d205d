//! Node-replication sweeps: M ops/s of a pre-filled `u64 -> u64` hash map against the thread
//! count (detected topology) and against the synthetic node count, for `ReplicatedHashMap`,
//! `parking_lot::RwLock<HashMap>` and dashmap, at 0% and 10% writes.

use crate::{Settings, Sweep, rate_median};
use dashmap::DashMap;
use replicore::Topology;
use replicore::nr::{NrConfig, ReplicatedHashMap};
use std::collections::HashMap;
use std::error::Error;
use std::hint::black_box;
use std::sync::Barrier;
use std::time::Instant;

/// Keys in the map, all present from the start; writes overwrite, so the size never changes.
const KEYS: u64 = 100_000;
/// Write percentages swept.
pub const MIXES: [u64; 2] = [0, 10];
const CONTENDERS: [&str; 3] = [
    "replicore ReplicatedHashMap",
    "parking_lot RwLock<HashMap>",
    "dashmap",
];

/// One thread's operation on the map under test: `(key, is_write)`.
type Op<'a> = Box<dyn FnMut(u64, bool) + 'a>;

/// Runs `threads` threads of `ops` operations each, released together by a barrier. Returns the
/// total in millions of operations and the seconds from the first thread's start to the last
/// thread's finish (each thread stamps its own start and end, so a late-scheduled main thread
/// cannot shorten the interval).
fn run<'a>(
    threads: usize,
    ops: u64,
    write_pct: u64,
    make: &(dyn Fn(usize) -> Result<Op<'a>, String> + Sync),
) -> Result<(f64, f64), Box<dyn Error>> {
    let barrier = Barrier::new(threads);
    let spans: Vec<Result<(Instant, Instant), String>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let barrier = &barrier;
                s.spawn(move || -> Result<(Instant, Instant), String> {
                    // Build the op (and register with a replica) before the barrier, and always
                    // reach the barrier, so an error cannot leave the others waiting.
                    let op = make(t);
                    barrier.wait();
                    let mut op = op?;
                    let start = Instant::now();
                    let mut x = 0x9E37_79B9_7F4A_7C15u64
                        ^ (t as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03);
                    for _ in 0..ops {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        op(x % KEYS, x % 100 < write_pct);
                    }
                    Ok((start, Instant::now()))
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err("a benchmark thread panicked".into()))
            })
            .collect()
    });
    let spans: Vec<(Instant, Instant)> = spans.into_iter().collect::<Result<_, _>>()?;
    let first = spans.iter().map(|s| s.0).min().ok_or("no threads")?;
    let last = spans.iter().map(|s| s.1).max().ok_or("no threads")?;
    Ok((
        (threads as u64 * ops) as f64 / 1e6,
        last.duration_since(first).as_secs_f64(),
    ))
}

/// Measures the three contenders on `topo` with `threads` threads at `write_pct`% writes;
/// replicore's thread `t` registers with node `t % nodes`.
fn measure(
    s: &Settings,
    topo: &Topology,
    maps: &Maps,
    threads: usize,
    write_pct: u64,
) -> Result<[f64; 3], Box<dyn Error>> {
    let ops = s.nr_ops;
    let nodes = topo.nodes();
    let ours = &maps.replicated;
    let replicated = rate_median(s.reps, || {
        run(threads, ops, write_pct, &|t| {
            let h = ours
                .register(nodes[t % nodes.len()])
                .map_err(|e| e.to_string())?;
            Ok(Box::new(move |k, w| {
                if w {
                    black_box(h.insert(k, k + 1));
                } else {
                    black_box(h.get(&k));
                }
            }))
        })
    })?;
    let rw = &maps.rwlock;
    let rwlock = rate_median(s.reps, || {
        run(threads, ops, write_pct, &|_| {
            Ok(Box::new(move |k, w| {
                if w {
                    black_box(rw.write().insert(k, k + 1));
                } else {
                    black_box(rw.read().get(&k).copied());
                }
            }))
        })
    })?;
    let dash = &maps.dashmap;
    let dashmap = rate_median(s.reps, || {
        run(threads, ops, write_pct, &|_| {
            Ok(Box::new(move |k, w| {
                if w {
                    black_box(dash.insert(k, k + 1));
                } else {
                    black_box(dash.get(&k).map(|v| *v));
                }
            }))
        })
    })?;
    Ok([replicated, rwlock, dashmap])
}

/// The three maps, each pre-filled with the same `KEYS` entries.
struct Maps {
    replicated: ReplicatedHashMap<u64, u64>,
    rwlock: parking_lot::RwLock<HashMap<u64, u64>>,
    dashmap: DashMap<u64, u64>,
}

impl Maps {
    fn new(topo: &Topology) -> Result<Self, Box<dyn Error>> {
        let init: HashMap<u64, u64> = (0..KEYS).map(|k| (k, k)).collect();
        Ok(Maps {
            replicated: ReplicatedHashMap::with_contents(topo, NrConfig::default(), &init)?,
            dashmap: init.iter().map(|(&k, &v)| (k, v)).collect(),
            rwlock: parking_lot::RwLock::new(init),
        })
    }
}

/// Throughput against the given thread counts on `topo`, one sweep per write mix.
pub fn thread_sweeps(
    s: &Settings,
    topo: &Topology,
    threads: &[usize],
) -> Result<Vec<Sweep>, Box<dyn Error>> {
    let maps = Maps::new(topo)?;
    let mut sweeps: Vec<Sweep> = MIXES
        .iter()
        .map(|w| {
            Sweep::new(
                &format!(
                    "Hash map, {w}% writes, {} node(s) detected",
                    topo.num_nodes()
                ),
                "threads",
                "million operations per second",
                threads.to_vec(),
                &CONTENDERS,
            )
        })
        .collect();
    for &t in threads {
        for (sweep, &w) in sweeps.iter_mut().zip(&MIXES) {
            eprintln!("  map, {w}% writes, {t} thread(s)");
            for (i, v) in measure(s, topo, &maps, t, w)?.into_iter().enumerate() {
                sweep.push(i, v);
            }
        }
    }
    Ok(sweeps)
}

/// Throughput against the synthetic node count (`numa:N core:1`), `threads` threads throughout,
/// one sweep per write mix. The lock and dashmap do not see nodes; they are the reference lines.
pub fn node_sweeps(
    s: &Settings,
    node_counts: &[usize],
    threads: usize,
) -> Result<Vec<Sweep>, Box<dyn Error>> {
    let mut sweeps: Vec<Sweep> = MIXES
        .iter()
        .map(|w| {
            Sweep::new(
                &format!("Hash map, {w}% writes, {threads} threads, synthetic nodes"),
                "synthetic NUMA nodes (replicas)",
                "million operations per second",
                node_counts.to_vec(),
                &CONTENDERS,
            )
        })
        .collect();
    for &n in node_counts {
        let topo = Topology::synthetic(n, 1, 1)?;
        let maps = Maps::new(&topo)?;
        for (sweep, &w) in sweeps.iter_mut().zip(&MIXES) {
            eprintln!("  map, {w}% writes, {n} synthetic node(s)");
            for (i, v) in measure(s, &topo, &maps, threads, w)?
                .into_iter()
                .enumerate()
            {
                sweep.push(i, v);
            }
        }
    }
    Ok(sweeps)
}
