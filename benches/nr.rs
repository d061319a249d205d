//! Node replication against locks, dashmap and node-replication 0.1.1, side by side: a pre-filled
//! hash map of 100k `u64` keys, uniform random keys, 0%, 10% and 100% writes, 1 and 2 threads,
//! on the synthetic topology `numa:2 core:1 pu:1` and on the detected one.
//!
//! Every contender runs the same per-thread loop through one boxed closure per thread, so the
//! (small) cost of that indirect call is the same for all of them. Run: `cargo bench --bench nr`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dashmap::DashMap;
use replicore::Topology;
use replicore::nr::{
    HashMapRead, HelperConfig, NrBuilder, NrConfig, ReplicatedHashMap, SeqHashMap, Token,
};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex, RwLock};
use std::time::{Duration, Instant};

#[path = "common/nr_scale.rs"]
#[allow(dead_code)] // the scale sweep's rounds; this bench uses the baseline's map type only
mod nr_scale;
use nr_scale::{Get, KEYS, NrMap, Put};
const OPS_PER_THREAD: u64 = 50_000;
const MIXES: [u64; 3] = [0, 10, 100];
const THREADS: [usize; 2] = [1, 2];

/// One thread's operation: `Some((key, is_write))`, or `None` for an idle tick once the thread
/// has done its share (node-replication 0.1.1 needs every replica to keep syncing while others
/// still write, or a full log waits forever on the idle replica; the others ignore it).
type Op<'a> = Box<dyn FnMut(Option<(u64, bool)>) + 'a>;

/// Runs `threads` threads of `iters * OPS_PER_THREAD` ops each and returns the slowest thread's
/// time, measured from a common start barrier.
fn run<'s>(
    threads: usize,
    write_pct: u64,
    iters: u64,
    make: &(dyn Fn(usize) -> Op<'s> + Sync),
) -> Duration {
    let barrier = Barrier::new(threads);
    let running = AtomicUsize::new(threads);
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let (barrier, running) = (&barrier, &running);
                s.spawn(move || {
                    let mut op = make(t);
                    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ ((t as u64 + 1) * 0xD1B5_4A32_D192_ED03);
                    barrier.wait();
                    let start = Instant::now();
                    for _ in 0..iters * OPS_PER_THREAD {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        op(Some((x % KEYS, x % 100 < write_pct)));
                    }
                    let elapsed = start.elapsed();
                    running.fetch_sub(1, Ordering::AcqRel);
                    while running.load(Ordering::Acquire) > 0 {
                        op(None);
                    }
                    elapsed
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap())
            .max()
            .unwrap()
    })
}

fn prefilled() -> HashMap<u64, u64> {
    (0..KEYS).map(|k| (k, k)).collect()
}

fn bench_topology(c: &mut Criterion, label: &str, topo: &Topology, baselines: bool) {
    let mut g = c.benchmark_group(format!("nr_hashmap/{label}"));
    g.sample_size(10).warm_up_time(Duration::from_millis(300));
    g.measurement_time(Duration::from_millis(900));
    let init = prefilled();
    for write_pct in MIXES {
        for threads in THREADS {
            g.throughput(Throughput::Elements(OPS_PER_THREAD * threads as u64));
            let id = |name: &str| format!("{name}/w{write_pct}/t{threads}");
            let nodes = topo.nodes().to_vec();

            let ours = ReplicatedHashMap::with_contents(topo, NrConfig::default(), &init).unwrap();
            g.bench_function(id("replicore"), |b| {
                b.iter_custom(|iters| {
                    run(threads, write_pct, iters, &|t| {
                        let h = ours.register(nodes[t % nodes.len()]).unwrap();
                        Box::new(move |o| {
                            let Some((k, w)) = o else { return };
                            if w {
                                std::hint::black_box(h.insert(k, k + 1));
                            } else {
                                std::hint::black_box(h.get(&k));
                            }
                        })
                    })
                })
            });
            drop(ours);

            let log = Arc::new(node_replication::Log::<Put>::new(2 * 1024 * 1024));
            // node-replication 0.1.1 stalls when a replica has no thread (its log cannot be
            // reclaimed), so it gets only as many replicas as there are threads.
            let replicas: Vec<_> = nodes
                .iter()
                .take(threads)
                .map(|_| node_replication::Replica::with_data(&log, NrMap(init.clone())))
                .collect();
            g.bench_function(id("node-replication-0.1.1"), |b| {
                b.iter_custom(|iters| {
                    run(threads, write_pct, iters, &|t| {
                        let r = &replicas[t % replicas.len()];
                        let tok = r.register().expect("node-replication token");
                        Box::new(move |o| {
                            let Some((k, w)) = o else {
                                r.sync(tok);
                                return;
                            };
                            if w {
                                std::hint::black_box(r.execute_mut(Put(k, k + 1), tok));
                            } else {
                                std::hint::black_box(r.execute(Get(k), tok));
                            }
                        })
                    })
                })
            });
            drop(replicas);

            if !baselines {
                continue;
            }
            let std_rw = RwLock::new(init.clone());
            g.bench_function(id("std-rwlock"), |b| {
                b.iter_custom(|iters| {
                    run(threads, write_pct, iters, &|_| {
                        Box::new(|o| {
                            let Some((k, w)) = o else { return };
                            if w {
                                std::hint::black_box(std_rw.write().unwrap().insert(k, k + 1));
                            } else {
                                std::hint::black_box(std_rw.read().unwrap().get(&k).copied());
                            }
                        })
                    })
                })
            });
            let pl_rw = parking_lot::RwLock::new(init.clone());
            g.bench_function(id("parking_lot-rwlock"), |b| {
                b.iter_custom(|iters| {
                    run(threads, write_pct, iters, &|_| {
                        Box::new(|o| {
                            let Some((k, w)) = o else { return };
                            if w {
                                std::hint::black_box(pl_rw.write().insert(k, k + 1));
                            } else {
                                std::hint::black_box(pl_rw.read().get(&k).copied());
                            }
                        })
                    })
                })
            });
            let mutex = Mutex::new(init.clone());
            g.bench_function(id("std-mutex"), |b| {
                b.iter_custom(|iters| {
                    run(threads, write_pct, iters, &|_| {
                        Box::new(|o| {
                            let Some((k, w)) = o else { return };
                            let mut m = mutex.lock().unwrap();
                            if w {
                                std::hint::black_box(m.insert(k, k + 1));
                            } else {
                                std::hint::black_box(m.get(&k).copied());
                            }
                        })
                    })
                })
            });
            let dash: DashMap<u64, u64> = init.iter().map(|(&k, &v)| (k, v)).collect();
            g.bench_function(id("dashmap"), |b| {
                b.iter_custom(|iters| {
                    run(threads, write_pct, iters, &|_| {
                        Box::new(|o| {
                            let Some((k, w)) = o else { return };
                            if w {
                                std::hint::black_box(dash.insert(k, k + 1));
                            } else {
                                std::hint::black_box(dash.get(&k).map(|v| *v));
                            }
                        })
                    })
                })
            });
        }
    }
    g.finish();
}

/// Token reads against linearizable reads: 2 threads on `numa:2 core:1 pu:1`, one per replica,
/// 10% and 50% writes. Each thread is one session: its reads pass the token of its last
/// operation, so they wait for its own writes but not for the other node's. `token+helper` adds
/// the background helpers (default settings), which replay the other node's writes off the
/// readers' path.
fn bench_tokens(c: &mut Criterion) {
    let topo: Topology = "numa:2 core:1 pu:1".parse().unwrap();
    let mut g = c.benchmark_group("nr_tokens/synthetic-2node");
    g.sample_size(10).warm_up_time(Duration::from_millis(300));
    g.measurement_time(Duration::from_millis(900));
    let init = prefilled();
    let nodes = topo.nodes().to_vec();
    for write_pct in [10, 50] {
        let threads = 2;
        g.throughput(Throughput::Elements(OPS_PER_THREAD * threads as u64));
        for (name, tokens, helper) in [
            ("linearizable", false, false),
            ("token", true, false),
            ("token+helper", true, true),
        ] {
            let mut b = NrBuilder::new(&topo);
            if helper {
                b = b.helper(HelperConfig::default());
            }
            let map = ReplicatedHashMap::from(b.build(|| SeqHashMap(init.clone())).unwrap());
            g.bench_function(format!("{name}/w{write_pct}/t{threads}"), |bch| {
                bch.iter_custom(|iters| {
                    run(threads, write_pct, iters, &|t| {
                        let h = map.register(nodes[t % nodes.len()]).unwrap();
                        let mut token = Token::default();
                        Box::new(move |o| {
                            let Some((k, w)) = o else { return };
                            if !tokens {
                                if w {
                                    std::hint::black_box(h.insert(k, k + 1));
                                } else {
                                    std::hint::black_box(h.get(&k));
                                }
                            } else if w {
                                let (r, t) = h.execute_mut_with_token(
                                    replicore::nr::HashMapWrite::Insert(k, k + 1),
                                );
                                std::hint::black_box(r);
                                token = t;
                            } else {
                                let (r, t) = h.execute_after(token, HashMapRead::Get(&k));
                                std::hint::black_box(r);
                                token = t;
                            }
                        })
                    })
                })
            });
        }
    }
    g.finish();
}

fn nr_benches(c: &mut Criterion) {
    let synthetic: Topology = "numa:2 core:1 pu:1".parse().unwrap();
    bench_topology(c, "synthetic-2node", &synthetic, false);
    let detected = Topology::detect().unwrap_or_else(|_| Topology::fallback());
    bench_topology(c, "detected", &detected, true);
}

criterion_group!(benches, nr_benches, bench_tokens);
criterion_main!(benches);
