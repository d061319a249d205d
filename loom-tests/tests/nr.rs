//! Node replication under loom: the real `NodeReplicated` (log, combiner, reader lock, helping)
//! built with `--cfg loom`, through its public API.
#![cfg(loom)]

use replicore_loom_tests::model;

use loom::sync::Arc;
use loom::thread;
use replicore::nr::{NrConfig, ReplicatedCounter};
use replicore::{NodeId, Topology};

fn counter(nodes: usize, cfg: NrConfig) -> Arc<ReplicatedCounter> {
    let topo = Topology::synthetic(nodes, 1, 1).unwrap();
    Arc::new(ReplicatedCounter::with_config(&topo, cfg).unwrap())
}

/// Two replicas append to a 2-entry log, so the third entry can only be written once both local
/// tails passed the first (garbage collection); every increment gets a distinct value and both
/// replicas end equal.
#[test]
fn append_and_gc_across_two_replicas() {
    model(3, || {
        let c = counter(
            2,
            NrConfig {
                log_size: 2,
                max_batch: 1,
                lag_bound: 2,
            },
        );
        let c2 = c.clone();
        let t = thread::spawn(move || c2.register(NodeId(1)).unwrap().add(1));
        let h = c.register(NodeId(0)).unwrap();
        let a = h.add(1);
        let b = h.add(1);
        let other = t.join().unwrap();
        let mut seen = [a, b, other];
        seen.sort();
        assert_eq!(seen, [1, 2, 3]);
        assert!(a < b);
        assert_eq!(h.get(), 3);
        assert_eq!(c.register(NodeId(1)).unwrap().get(), 3);
    });
}

/// Two threads of one node write at once: one combines (maybe both ops in one batch), the other
/// receives its response through its mailbox. Responses are 1 and 2 in some order.
#[test]
fn combiner_hand_off() {
    model(3, || {
        let c = counter(
            1,
            NrConfig {
                log_size: 4,
                max_batch: 2,
                lag_bound: 4,
            },
        );
        let c2 = c.clone();
        let t = thread::spawn(move || c2.register(NodeId(0)).unwrap().add(1));
        let mine = c.register(NodeId(0)).unwrap().add(1);
        let theirs = t.join().unwrap();
        assert_eq!(mine + theirs, 3);
        assert_ne!(mine, theirs);
        let stats = c.stats();
        assert_eq!(stats.operations, 2);
        assert!((1..=2).contains(&stats.combiner_batches));
    });
}

/// A read on node 1 races a write on node 0. The read sees 0 or 1; a read that starts after the
/// write returned must see 1, even though no writer ran on node 1 (the reader catches its replica
/// up itself), and a second read never goes back.
#[test]
fn linearizable_read_racing_a_write() {
    model(3, || {
        let c = counter(
            2,
            NrConfig {
                log_size: 2,
                max_batch: 1,
                lag_bound: 2,
            },
        );
        let c2 = c.clone();
        let reader = thread::spawn(move || {
            let h = c2.register(NodeId(1)).unwrap();
            let first = h.get();
            let second = h.get();
            assert!(first <= second);
            second
        });
        let h = c.register(NodeId(0)).unwrap();
        assert_eq!(h.add(1), 1);
        let after = c.register(NodeId(1)).unwrap().get();
        assert_eq!(after, 1);
        assert!(reader.join().unwrap() <= 1);
    });
}

/// Node 1 has no thread doing anything but a single read, while node 0 writes more than the log
/// holds: the writer must replay into node 1 (helping) instead of waiting for it forever.
#[test]
fn helping_a_lagging_replica() {
    model(3, || {
        let c = counter(
            2,
            NrConfig {
                log_size: 2,
                max_batch: 1,
                lag_bound: 1,
            },
        );
        let c2 = c.clone();
        let reader = thread::spawn(move || c2.register(NodeId(1)).unwrap().get());
        let h = c.register(NodeId(0)).unwrap();
        for i in 1..=3 {
            assert_eq!(h.add(1), i);
        }
        assert!(reader.join().unwrap() <= 3);
        assert_eq!(c.register(NodeId(1)).unwrap().get(), 3);
    });
    // Without a racing reader the help is certain, and counted.
    model(3, || {
        let c = counter(
            2,
            NrConfig {
                log_size: 2,
                max_batch: 1,
                lag_bound: 1,
            },
        );
        let h = c.register(NodeId(0)).unwrap();
        for _ in 0..3 {
            h.add(1);
        }
        assert!(c.stats().helping_events > 0);
        assert!(c.stats().max_replica_lag <= 2);
    });
}

/// With one replica a read waits for no log position (there is no completed tail to catch up
/// with): the reader-writer lock alone must order it after every completed write. A reader that
/// learns (through a flag set after `add` returned) that the write completed must see it, and
/// the combiner, which now owns the log tail alone, must not lose a batch.
#[test]
fn single_replica_read_after_completed_write() {
    use loom::sync::atomic::{AtomicBool, Ordering};
    model(3, || {
        let c = counter(
            1,
            NrConfig {
                log_size: 2,
                max_batch: 2,
                lag_bound: 2,
            },
        );
        let done = Arc::new(AtomicBool::new(false));
        let (c2, done2) = (c.clone(), done.clone());
        let reader = thread::spawn(move || {
            let h = c2.register(NodeId(0)).unwrap();
            let completed = done2.load(Ordering::Acquire);
            let seen = h.get();
            if completed {
                assert!(seen >= 1, "a read after a completed write missed it");
            }
            let again = h.get();
            assert!(seen <= again);
        });
        let h = c.register(NodeId(0)).unwrap();
        assert_eq!(h.add(1), 1);
        done.store(true, Ordering::Release);
        assert_eq!(h.add(1), 2);
        assert_eq!(h.get(), 2);
        reader.join().unwrap();
        assert_eq!(c.stats().operations, 2);
        assert_eq!(c.register(NodeId(0)).unwrap().get(), 2);
    });
}

/// A write that panics while a combiner applies it: one thread submits it, another thread of
/// the same node submits a normal write (so either may combine the other's op) and a third on a
/// second node reads. Nobody waits for ever: each thread either finishes or panics, the one that
/// applied the bad op with its own panic, the rest as poisoned, and the structure ends poisoned.
#[test]
fn panicking_write_poisons_without_hanging() {
    use replicore::nr::{Dispatch, NodeReplicated};
    use std::panic::{AssertUnwindSafe, catch_unwind};

    struct Fragile(u64);
    impl Dispatch for Fragile {
        type ReadOp<'a> = ();
        type WriteOp = bool;
        type Response = u64;
        fn dispatch<'a>(&self, _: ()) -> u64 {
            self.0
        }
        fn dispatch_mut(&mut self, boom: bool) -> u64 {
            self.0 += 1;
            assert!(!boom, "boom");
            self.0
        }
    }

    model(2, || {
        let topo = Topology::synthetic(2, 1, 1).unwrap();
        let cfg = NrConfig {
            log_size: 4,
            max_batch: 2,
            lag_bound: 4,
        };
        let nr = Arc::new(NodeReplicated::with_config(&topo, cfg, || Fragile(0)).unwrap());
        let spawn_op = |node: usize, op: Option<bool>| {
            let nr = nr.clone();
            thread::spawn(move || {
                let h = nr.register(NodeId(node)).unwrap();
                catch_unwind(AssertUnwindSafe(|| match op {
                    Some(boom) => h.execute_mut(boom),
                    None => h.execute(()),
                }))
                .is_ok()
            })
        };
        let good = spawn_op(0, Some(false));
        let reader = spawn_op(1, None);
        let h = nr.register(NodeId(0)).unwrap();
        let bad = catch_unwind(AssertUnwindSafe(|| h.execute_mut(true)));
        assert!(bad.is_err(), "the panicking write returned");
        good.join().unwrap();
        reader.join().unwrap();
        assert!(nr.is_poisoned());
    });
}

/// Read tokens: node 0 writes and hands its token to a reader on node 1, which no writer on
/// node 1 has caught up. The token read must see the write (it replays node 1's replica itself,
/// or finds that node 1's helper did), while node 0 writes again and node 1's helper replays one
/// entry at a time. A second read with the token the first returned never sees less, and the
/// tokens never go back.
#[test]
fn token_read_never_sees_a_state_older_than_its_token() {
    use replicore::nr::{CounterRead, CounterWrite, Token};
    model(2, || {
        let c = counter(
            2,
            NrConfig {
                log_size: 4,
                max_batch: 1,
                lag_bound: 4,
            },
        );
        let h0 = c.register(NodeId(0)).unwrap();
        let (v1, t1) = h0.execute_mut_with_token(CounterWrite::Add(1));
        assert_eq!(v1, 1);
        let c1 = c.clone();
        let reader = thread::spawn(move || {
            let h1 = c1.register(NodeId(1)).unwrap();
            let (a, ta) = h1.execute_after(t1, CounterRead::Get);
            assert!(a >= 1, "token read saw {a}, older than its token");
            assert!(ta >= t1);
            let (b, tb) = h1.execute_after(ta, CounterRead::Get);
            assert!(b >= a, "monotonic reads: {b} after {a}");
            assert!(tb >= ta);
            // The empty token waits for nothing but still reads a consistent state.
            let (z, _) = h1.execute_after(Token::default(), CounterRead::Get);
            assert!(z <= 2);
        });
        let c2 = c.clone();
        let helper = thread::spawn(move || {
            c2.__helper_step(1, 1);
        });
        let (v2, t2) = h0.execute_mut_with_token(CounterWrite::Add(1));
        assert_eq!(v2, 2);
        assert!(t2 > t1);
        reader.join().unwrap();
        helper.join().unwrap();
        let h1 = c.register(NodeId(1)).unwrap();
        assert_eq!(h1.execute_after(t2, CounterRead::Get).0, 2);
    });
}

/// The background helper's step races a write and a linearizable read on the helper's own node:
/// the replica never applies an entry twice or out of order (the read sees 0, 1 or 2 and every
/// completed write), and the helper's counters add up.
#[test]
fn helper_step_races_combiner_and_reader() {
    model(2, || {
        let c = counter(
            2,
            NrConfig {
                log_size: 4,
                max_batch: 1,
                lag_bound: 4,
            },
        );
        let h0 = c.register(NodeId(0)).unwrap();
        h0.add(1);
        let c1 = c.clone();
        let writer1 = thread::spawn(move || c1.register(NodeId(1)).unwrap().add(1));
        let c2 = c.clone();
        let helper = thread::spawn(move || c2.__helper_step(1, 1));
        let mine = h0.get();
        assert!((1..=2).contains(&mine));
        let theirs = writer1.join().unwrap();
        let stepped = helper.join().unwrap();
        assert!(stepped <= 1);
        assert_eq!(theirs, 2);
        assert_eq!(c.register(NodeId(1)).unwrap().get(), 2);
        assert_eq!(h0.get(), 2);
        assert_eq!(c.stats().helper_entries, stepped as u64);
    });
}
