//! The node-replication rounds of the scale sweep, shared by the `scale` bench and
//! `bench_report`: a pre-filled map of 100k `u64` keys on `numa:N core:C` (C threads per
//! node, N*C threads, thread `t` on node `t % N`), replicore's `ReplicatedHashMap` against
//! node-replication 0.1.1 and `parking_lot::RwLock<HashMap>`.
//!
//! node-replication 0.1.1 runs only in cells with one thread per node: its threads spin without
//! ever yielding while they wait for a replica's combiner, and with two threads per node on
//! a 2-CPU box one round in three livelocked for more than ten minutes (16 threads, `numa:8
//! core:2`), so those cells compare replicore with the RwLock only. With one thread per node
//! it can crawl too (one op per scheduler time slice: a whole `bench_report --scale` sweep sat
//! more than ten minutes in the `numa:8 core:1` lockstep cell, all eight threads spinning in
//! its `try_combine`), so every round has a deadline ([`ROUND_DEADLINE`]): past it the threads
//! stop after their current op, and the round reports the time the requested ops would have
//! taken at the pace it measured.
//!
//! Writes are chosen at random (`x % 100 < write %` on each thread's own key stream) or in
//! lockstep (every thread writes on the same iterations, one in `100 / write %`), which makes
//! every node's combiner and every replica busy at the same moment.

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use replicore::Topology;
use replicore::nr::{NrConfig, ReplicatedHashMap};

/// Keys in the map, all present from the start; writes overwrite, so its size never changes.
pub const KEYS: u64 = 100_000;

/// A round still running after this stops early (see the module docs). Rounds of a healthy
/// contender take well under a second in `bench_report` and a few seconds under criterion.
pub const ROUND_DEADLINE: Duration = Duration::from_secs(20);

/// node-replication 0.1.1's view of the map.
pub struct NrMap(pub HashMap<u64, u64>);

/// node-replication 0.1.1's write: insert `(key, value)`.
#[derive(Clone, Debug, PartialEq)]
pub struct Put(pub u64, pub u64);

/// node-replication 0.1.1's read: get `key`.
#[derive(Clone, Debug, PartialEq)]
pub struct Get(pub u64);

impl node_replication::Dispatch for NrMap {
    type ReadOperation = Get;
    type WriteOperation = Put;
    type Response = Option<u64>;
    fn dispatch(&self, Get(k): Get) -> Option<u64> {
        self.0.get(&k).copied()
    }
    fn dispatch_mut(&mut self, Put(k, v): Put) -> Option<u64> {
        self.0.insert(k, v)
    }
}

/// How writes fall among a thread's operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Writes {
    /// Each op is a write with probability `write %`, per thread.
    Random,
    /// Every thread writes on the same iterations.
    Lockstep,
}

/// One cell of the sweep.
#[derive(Clone, Copy, Debug)]
pub struct Cell {
    pub nodes: usize,
    pub threads_per_node: usize,
    pub write_pct: u64,
    pub writes: Writes,
}

impl Cell {
    pub fn threads(&self) -> usize {
        self.nodes * self.threads_per_node
    }

    /// `numa:N core:C pu:1`.
    pub fn spec(&self) -> String {
        format!("numa:{} core:{} pu:1", self.nodes, self.threads_per_node)
    }

    /// The contenders that run this cell, replicore first (see the module docs for why
    /// node-replication 0.1.1 sits out the cells with several threads per node).
    pub fn contenders(&self) -> &'static [&'static str] {
        if self.threads_per_node == 1 {
            &CONTENDERS
        } else {
            &["replicore", "parking_lot-rwlock"]
        }
    }

    /// A short label: `w10 random 2/node`.
    pub fn label(&self) -> String {
        let writes = match self.writes {
            Writes::Random => "random",
            Writes::Lockstep => "lockstep",
        };
        format!(
            "w{} {writes} {}/node",
            self.write_pct, self.threads_per_node
        )
    }
}

/// The three maps of one cell, each pre-filled with the same keys.
pub struct Maps {
    cell: Cell,
    topo: Topology,
    replicore: ReplicatedHashMap<u64, u64>,
    nr_replicas: Vec<Arc<node_replication::Replica<'static, NrMap>>>,
    rwlock: parking_lot::RwLock<HashMap<u64, u64>>,
}

/// The contenders, in report order (replicore first).
pub const CONTENDERS: [&str; 3] = ["replicore", "node-replication-0.1.1", "parking_lot-rwlock"];

impl Maps {
    pub fn new(cell: Cell) -> Self {
        let topo: Topology = cell.spec().parse().expect("a valid synthetic topology");
        let init: HashMap<u64, u64> = (0..KEYS).map(|k| (k, k)).collect();
        let replicore = ReplicatedHashMap::with_contents(&topo, NrConfig::default(), &init)
            .expect("a replicated map");
        // One node-replication replica per node, as replicore has; every node has threads, so
        // none of them stalls its log.
        let log = Arc::new(node_replication::Log::<Put>::new(2 * 1024 * 1024));
        let nr_replicas = if cell.contenders().contains(&"node-replication-0.1.1") {
            (0..cell.nodes)
                .map(|_| node_replication::Replica::with_data(&log, NrMap(init.clone())))
                .collect()
        } else {
            Vec::new()
        };
        Maps {
            cell,
            topo,
            replicore,
            nr_replicas,
            rwlock: parking_lot::RwLock::new(init),
        }
    }

    /// One round of `ops` operations per thread on contender `which` (one of the cell's
    /// [`contenders`](Cell::contenders)): the time from the common start to the last thread's
    /// finish. A round cut short by [`ROUND_DEADLINE`] reports the time the requested ops would
    /// have taken at the pace it measured, and says so on stderr.
    pub fn round(&self, which: &str, ops: u64) -> Duration {
        let cell = self.cell;
        let nodes = self.topo.nodes();
        let no_finish = |_: usize| {};
        let round = match which {
            "replicore" => drive(
                cell,
                ops,
                |t| {
                    let h = self.replicore.register(nodes[t % nodes.len()]).unwrap();
                    move |k, w| {
                        if w {
                            black_box(h.insert(k, k + 1));
                        } else {
                            black_box(h.get(&k));
                        }
                    }
                },
                no_finish,
            ),
            "node-replication-0.1.1" if !self.nr_replicas.is_empty() => {
                // node-replication 0.1.1 needs every replica to keep syncing while others still
                // write (a full log waits for the slowest replica), so finished threads sync
                // until all are done; `drive` stops the clock at the last finish.
                let running = AtomicUsize::new(cell.threads());
                let replica = |t: usize| &self.nr_replicas[t % self.nr_replicas.len()];
                let tokens: Vec<_> = (0..cell.threads())
                    .map(|t| replica(t).register().expect("a node-replication token"))
                    .collect();
                drive(
                    cell,
                    ops,
                    |t| {
                        let (r, tok) = (replica(t), tokens[t]);
                        move |k, w| {
                            if w {
                                black_box(r.execute_mut(Put(k, k + 1), tok));
                            } else {
                                black_box(r.execute(Get(k), tok));
                            }
                        }
                    },
                    |t| {
                        running.fetch_sub(1, Ordering::AcqRel);
                        while running.load(Ordering::Acquire) > 0 {
                            replica(t).sync(tokens[t]);
                        }
                    },
                )
            }
            "parking_lot-rwlock" => drive(
                cell,
                ops,
                |_| {
                    move |k, w| {
                        if w {
                            black_box(self.rwlock.write().insert(k, k + 1));
                        } else {
                            black_box(self.rwlock.read().get(&k).copied());
                        }
                    }
                },
                no_finish,
            ),
            other => panic!(
                "contender {other} does not run this cell; one of {:?}",
                cell.contenders()
            ),
        };
        let asked = ops * cell.threads() as u64;
        if round.done < asked {
            eprintln!(
                "  {which} on {}: round stopped at the {ROUND_DEADLINE:?} deadline after {} of \
                 {asked} ops; reporting the time at that pace",
                cell.label(),
                round.done
            );
            return round
                .elapsed
                .mul_f64(asked as f64 / round.done.max(1) as f64);
        }
        round.elapsed
    }
}

/// What [`drive`] measured: the time from the earliest start to the latest finish, and the ops
/// done in it (fewer than asked if the round hit [`ROUND_DEADLINE`]).
struct Round {
    elapsed: Duration,
    done: u64,
}

/// Runs `cell.threads()` threads of `ops` operations each, released by one barrier; `make(t)`
/// builds thread `t`'s operation (registering with a replica) before the barrier, and
/// `finish(t)` runs on thread `t` after its last op, inside the timed span. Past
/// [`ROUND_DEADLINE`] every thread stops after its current op.
fn drive<F, Op, Fin>(cell: Cell, ops: u64, make: F, finish: Fin) -> Round
where
    F: Fn(usize) -> Op + Sync,
    Op: FnMut(u64, bool),
    Fin: Fn(usize) + Sync,
{
    let threads = cell.threads();
    let barrier = Barrier::new(threads + 1);
    let every = 100 / cell.write_pct.max(1);
    let (stop, done, finished) = (
        AtomicBool::new(false),
        AtomicU64::new(0),
        AtomicUsize::new(0),
    );
    let spans: Vec<(Instant, Instant)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let (barrier, make, finish) = (&barrier, &make, &finish);
                let (stop, done, finished) = (&stop, &done, &finished);
                s.spawn(move || {
                    let mut op = make(t);
                    let mut x = 0x9E37_79B9_7F4A_7C15u64
                        ^ (t as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03);
                    barrier.wait();
                    let start = Instant::now();
                    let mut i = 0;
                    while i < ops {
                        // One relaxed load of a line nobody writes until the deadline.
                        if i % 64 == 0 && stop.load(Ordering::Relaxed) {
                            break;
                        }
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        let write = match cell.writes {
                            Writes::Random => x % 100 < cell.write_pct,
                            Writes::Lockstep => cell.write_pct > 0 && i % every == 0,
                        };
                        op(x % KEYS, write);
                        i += 1;
                    }
                    done.fetch_add(i, Ordering::Relaxed);
                    finished.fetch_add(1, Ordering::Release);
                    finish(t);
                    (start, Instant::now())
                })
            })
            .collect();
        // The deadline's watchman: it sleeps in 10 ms steps, so it takes no CPU from the round.
        barrier.wait();
        let deadline = Instant::now() + ROUND_DEADLINE;
        while finished.load(Ordering::Acquire) < threads {
            if Instant::now() >= deadline {
                stop.store(true, Ordering::Relaxed);
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let first = spans
        .iter()
        .map(|s| s.0)
        .min()
        .expect("at least one thread");
    let last = spans
        .iter()
        .map(|s| s.1)
        .max()
        .expect("at least one thread");
    Round {
        elapsed: last - first,
        done: done.into_inner(),
    }
}
