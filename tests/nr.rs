//! Node replication: linearizability, wrap-around, helping, handle churn and errors.

use replicore::nr::{NrConfig, NrError, ReplicatedCounter, ReplicatedHashMap};
use replicore::{NodeId, Topology};
use std::collections::HashSet;

/// How many times the concurrent tests repeat: `NR_STRESS_ROUNDS=200 cargo test --test nr` for a
/// soak run; once by default to keep CI fast.
fn rounds() -> usize {
    std::env::var("NR_STRESS_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

fn counter_unique_values(nodes: usize) {
    let topo = Topology::synthetic(nodes, 1, 1).unwrap();
    let counter = ReplicatedCounter::new(&topo).unwrap();
    const THREADS: usize = 4;
    const PER_THREAD: usize = 25_000;
    let seen: Vec<Vec<u64>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let counter = &counter;
                let node = topo.nodes()[t % nodes];
                s.spawn(move || {
                    let h = counter.register(node).unwrap();
                    (0..PER_THREAD).map(|_| h.add(1)).collect::<Vec<_>>()
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let total = (THREADS * PER_THREAD) as u64;
    let mut all = HashSet::new();
    for values in &seen {
        // A thread's own increments are ordered by the log, so its responses grow.
        assert!(values.windows(2).all(|w| w[0] < w[1]));
        for &v in values {
            assert!((1..=total).contains(&v));
            assert!(all.insert(v), "value {v} returned twice");
        }
    }
    assert_eq!(all.len() as u64, total);
    for &node in topo.nodes() {
        assert_eq!(counter.register(node).unwrap().get(), total);
    }
    let stats = counter.stats();
    assert_eq!(stats.operations, total);
    assert!(stats.average_batch_size >= 1.0);
}

#[test]
fn counter_two_nodes_every_value_unique() {
    for _ in 0..rounds() {
        counter_unique_values(2);
    }
}

#[test]
fn counter_four_nodes_every_value_unique() {
    for _ in 0..rounds() {
        counter_unique_values(4);
    }
}

/// Each thread owns a key range on which it writes increasing versions; everyone reads every key.
/// A read must return a version some write stored, never one older than the reader's own last
/// completed write to that key, and never older than a version it already read (monotonic, as
/// linearizability implies for one reader).
#[test]
fn hashmap_history_reads_are_fresh() {
    for _ in 0..rounds() {
        hashmap_history_round();
    }
}

fn hashmap_history_round() {
    let topo: Topology = "numa:2 core:1 pu:1".parse().unwrap();
    let cfg = NrConfig {
        log_size: 64,
        max_batch: 8,
        lag_bound: 32,
    };
    let map =
        ReplicatedHashMap::<u64, u64>::with_contents(&topo, cfg, &Default::default()).unwrap();
    const THREADS: u64 = 4;
    const KEYS: u64 = 8;
    const ROUNDS: u64 = 3_000;
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let map = &map;
            let node = topo.nodes()[t as usize % 2];
            s.spawn(move || {
                let h = map.register(node).unwrap();
                let mut last_seen = vec![0u64; (THREADS * KEYS) as usize];
                for round in 1..=ROUNDS {
                    let own = t * KEYS + round % KEYS;
                    // Value encodes (writer, version) so any read can be checked against writes.
                    let prev = h.insert(own, round * THREADS + t);
                    if let Some(p) = prev {
                        assert_eq!(p % THREADS, t, "a foreign value in my key");
                    }
                    assert_eq!(
                        h.get(&own),
                        Some(round * THREADS + t),
                        "own write not visible"
                    );
                    last_seen[own as usize] = round;
                    let other = (round * 7 + t) % (THREADS * KEYS);
                    if let Some(v) = h.get(&other) {
                        let (writer, version) = (v % THREADS, v / THREADS);
                        assert_eq!(writer, other / KEYS, "value not written by the key's owner");
                        assert!((1..=ROUNDS).contains(&version));
                        assert!(version >= last_seen[other as usize], "stale read");
                        last_seen[other as usize] = version;
                    }
                }
            });
        }
    });
    let h = map.register(NodeId(1)).unwrap();
    assert_eq!(h.len() as u64, THREADS * KEYS);
}

/// A tiny log wraps thousands of times under writers on two nodes while a third node's replica
/// has no thread at all: writers must help it along rather than stall, and it ends up exact.
#[test]
fn tiny_log_wraps_with_an_idle_replica() {
    for _ in 0..rounds() {
        tiny_log_round();
    }
}

fn tiny_log_round() {
    let topo = Topology::synthetic(3, 1, 1).unwrap();
    let cfg = NrConfig {
        log_size: 8,
        max_batch: 4,
        lag_bound: 8,
    };
    let counter = ReplicatedCounter::with_config(&topo, cfg).unwrap();
    const PER_THREAD: u64 = 5_000;
    std::thread::scope(|s| {
        for t in 0..4 {
            let counter = &counter;
            let node = NodeId(t % 2);
            s.spawn(move || {
                let h = counter.register(node).unwrap();
                for _ in 0..PER_THREAD {
                    h.add(1);
                }
            });
        }
    });
    let stats = counter.stats();
    assert!(stats.log_wraps >= 4 * PER_THREAD / 8 - 1, "{stats:?}");
    assert!(
        stats.helping_events > 0,
        "the idle replica was never helped: {stats:?}"
    );
    assert!(stats.max_replica_lag <= 8, "{stats:?}");
    assert_eq!(counter.register(NodeId(2)).unwrap().get(), 4 * PER_THREAD);
}

/// Registration and drop from several threads; slots are recycled, so this neither leaks nor
/// hits a cap, and the structure keeps working throughout.
#[test]
fn handle_churn() {
    let topo = Topology::synthetic(2, 1, 1).unwrap();
    let counter = ReplicatedCounter::new(&topo).unwrap();
    std::thread::scope(|s| {
        for t in 0..4 {
            let counter = &counter;
            s.spawn(move || {
                for i in 0..2_500 {
                    let h = counter.register(NodeId((t + i) % 2)).unwrap();
                    if i % 10 == 0 {
                        h.add(1);
                    }
                }
            });
        }
    });
    // Many live handles at once: more than any fixed per-replica cap would have to allow.
    let many: Vec<_> = (0..300)
        .map(|_| counter.register(NodeId(0)).unwrap())
        .collect();
    assert_eq!(many[299].add(0), 1_000);
    drop(many);
    assert_eq!(counter.register_current().unwrap().get(), 1_000);
}

#[test]
fn errors_are_typed_and_explain_themselves() {
    let topo = Topology::synthetic(2, 1, 1).unwrap();
    let base = NrConfig::default();
    let cases = [
        (
            NrConfig {
                log_size: 0,
                ..base
            },
            "power of two",
        ),
        (
            NrConfig {
                log_size: 1,
                ..base
            },
            "at least 2",
        ),
        (
            NrConfig {
                log_size: 12,
                ..base
            },
            "power of two",
        ),
        (
            NrConfig {
                log_size: 8,
                max_batch: 0,
                lag_bound: 8,
            },
            "between 1",
        ),
        (
            NrConfig {
                log_size: 8,
                max_batch: 9,
                lag_bound: 8,
            },
            "max_batch 9",
        ),
        (
            NrConfig {
                log_size: 8,
                max_batch: 8,
                lag_bound: 0,
            },
            "lag_bound 0",
        ),
        (
            NrConfig {
                log_size: 8,
                max_batch: 8,
                lag_bound: 16,
            },
            "lag_bound 16",
        ),
    ];
    for (cfg, needle) in cases {
        let err = ReplicatedCounter::with_config(&topo, cfg)
            .err()
            .expect("rejected");
        let msg = err.to_string();
        assert!(msg.contains(needle), "{msg:?} lacks {needle:?}");
        let _: &dyn std::error::Error = &err;
    }
    let counter = ReplicatedCounter::new(&topo).unwrap();
    let err = counter.register(NodeId(5)).err().unwrap();
    assert_eq!(
        err,
        NrError::UnknownNode {
            node: NodeId(5),
            num_nodes: 2
        }
    );
    assert!(err.to_string().contains("nodes 0..2"));
}

/// Shared access from scoped threads needs `NodeReplicated: Sync`.
#[test]
fn is_sync_for_send_sync_data() {
    fn assert_sync<T: Sync + Send>() {}
    assert_sync::<ReplicatedHashMap<u64, String>>();
    assert_sync::<ReplicatedCounter>();
}

/// With more synthetic CPUs than OS CPUs, an OS CPU stands for CPUs of several nodes;
/// `register_current` then spreads threads over those nodes instead of piling onto one.
#[test]
fn register_current_spreads_over_ambiguous_nodes() {
    let topo: Topology = "numa:4 core:2".parse().unwrap();
    let counter = ReplicatedCounter::new(&topo).unwrap();
    let nodes: HashSet<NodeId> = (0..8)
        .map(|_| counter.register_current().unwrap().node())
        .collect();
    assert!(nodes.len() >= 2, "all registrations went to {nodes:?}");
    assert!(nodes.iter().all(|n| topo.nodes().contains(n)));
}

/// A lone writer applies its op from its own hands only when its replica is current; when
/// another node appended first, it replays those entries before its own, so every response
/// counts every earlier write, whichever replica answers it.
#[test]
fn lone_writer_on_a_lagging_replica_sees_earlier_writes() {
    let topo = Topology::synthetic(3, 1, 1).unwrap();
    let cfg = NrConfig {
        log_size: 8,
        max_batch: 4,
        lag_bound: 8,
    };
    let counter = ReplicatedCounter::with_config(&topo, cfg).unwrap();
    let handles: Vec<_> = topo
        .nodes()
        .iter()
        .map(|&n| counter.register(n).unwrap())
        .collect();
    let mut expected = 0;
    // Uneven turns, so each replica is sometimes current and sometimes several entries behind,
    // and the tiny log wraps many times.
    for round in 0..200usize {
        let h = &handles[round * round % 3];
        for _ in 0..=round % 5 {
            expected += 1;
            assert_eq!(h.add(1), expected, "round {round}");
        }
    }
    for h in &handles {
        assert_eq!(h.get(), expected);
    }
    let stats = counter.stats();
    assert_eq!(stats.operations, expected);
    assert!(stats.log_wraps >= expected / 8, "{stats:?}");
}

/// With a single replica the lone writer's op never goes through the log, yet positions still
/// advance: tokens grow, token reads see their writes and the wrap count follows the writes.
#[test]
fn single_replica_positions_advance_without_log_entries() {
    let topo = Topology::synthetic(1, 1, 1).unwrap();
    let cfg = NrConfig {
        log_size: 8,
        max_batch: 4,
        lag_bound: 8,
    };
    let map =
        ReplicatedHashMap::<u64, String>::with_contents(&topo, cfg, &Default::default()).unwrap();
    let h = map.register(topo.nodes()[0]).unwrap();
    let mut last = replicore::nr::Token::default();
    for k in 0..100u64 {
        let (old, token) =
            h.execute_mut_with_token(replicore::nr::HashMapWrite::Insert(k % 10, k.to_string()));
        let old = old.into_value();
        assert_eq!(
            old,
            k.checked_sub(10).map(|p| p.to_string()),
            "key {}",
            k % 10
        );
        assert!(token > last);
        last = token;
        let (v, seen) = h.execute_after(token, replicore::nr::HashMapRead::Get(&(k % 10)));
        assert_eq!(v.into_value(), Some(k.to_string()));
        assert!(seen >= token);
    }
    assert_eq!(map.stats().log_wraps, 100 / 8);
}
