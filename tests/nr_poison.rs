//! A write that panics in `dispatch_mut` poisons the structure: the thread that applied it gets
//! its panic, every later operation through any handle panics as "poisoned", and no thread is
//! left waiting for a batch or a replica that will never finish.

use replicore::nr::{Dispatch, NodeReplicated};
use replicore::{NodeId, Topology};
use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};

/// A counter whose write `Boom` panics.
struct Fragile(u64);

#[derive(Clone, Debug)]
enum Op {
    Add(u64),
    Boom,
}

impl Dispatch for Fragile {
    type ReadOp<'a> = ();
    type WriteOp = Op;
    type Response = u64;
    fn dispatch<'a>(&self, _: ()) -> u64 {
        self.0
    }
    fn dispatch_mut(&mut self, op: Op) -> u64 {
        match op {
            Op::Add(n) => {
                self.0 += n;
                self.0
            }
            Op::Boom => {
                // Half-way through: the state is already changed when the panic hits.
                self.0 += 1_000_000;
                panic!("boom");
            }
        }
    }
}

fn message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}

fn is_poison(payload: &(dyn Any + Send)) -> bool {
    message(payload).contains("poisoned")
}

#[test]
fn panicking_write_poisons_every_replica() {
    let topo = Topology::synthetic(2, 1, 1).unwrap();
    let nr = NodeReplicated::new(&topo, || Fragile(0)).unwrap();
    let a = nr.register(NodeId(0)).unwrap();
    let b = nr.register(NodeId(1)).unwrap();
    assert_eq!(a.execute_mut(Op::Add(2)), 2);
    assert_eq!(b.execute(()), 2);
    assert!(!nr.is_poisoned());

    // The caller's own op: it combines it, so it gets the op's own panic.
    let err = catch_unwind(AssertUnwindSafe(|| a.execute_mut(Op::Boom))).unwrap_err();
    assert_eq!(message(&*err), "boom");
    assert!(nr.is_poisoned());

    // Every later operation, on either replica and on a fresh handle, panics as poisoned:
    // node 1 never replays the op (it would panic the same way), node 0 is half-written.
    let fresh = nr.register(NodeId(1)).unwrap();
    let attempts: [&dyn Fn() -> u64; 5] = [
        &|| a.execute(()),
        &|| a.execute_mut(Op::Add(1)),
        &|| b.execute(()),
        &|| b.execute_mut(Op::Add(1)),
        &|| fresh.execute(()),
    ];
    for (i, attempt) in attempts.iter().enumerate() {
        let err = catch_unwind(AssertUnwindSafe(attempt)).unwrap_err();
        assert!(is_poison(&*err), "attempt {i}: {:?}", message(&*err));
    }
    // Handles still drop, and the structure still drops, without hanging.
    drop((a, b, fresh));
    drop(nr);
}

/// Threads on two nodes write and read in a loop while one of them submits `Boom`. Whoever
/// applies it (its submitter, a combiner batching it, or a reader catching its replica up) gets
/// "boom"; everyone else's next operation panics as poisoned. Every thread stops: none waits
/// forever for a response or for a replica's writer flag.
#[test]
fn panicking_write_wakes_every_waiter() {
    let topo = Topology::synthetic(2, 1, 1).unwrap();
    let nr = NodeReplicated::new(&topo, || Fragile(0)).unwrap();
    const THREADS: usize = 4;
    // Operations a thread may complete after `Boom` was submitted before it must have seen the
    // poison: a bound, so that a bug fails the test instead of hanging it.
    const LIMIT: usize = 5_000_000;
    let submitted = AtomicBool::new(false);
    let payloads: Vec<Box<dyn Any + Send>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let (nr, submitted) = (&nr, &submitted);
                s.spawn(move || {
                    let h = nr.register(NodeId(t % 2)).unwrap();
                    let mut after = 0;
                    for i in 0.. {
                        let result = catch_unwind(AssertUnwindSafe(|| match (t, i) {
                            (0, 1_000) => {
                                submitted.store(true, Ordering::SeqCst);
                                h.execute_mut(Op::Boom)
                            }
                            (_, i) if (i + t) % 3 == 0 => h.execute(()),
                            _ => h.execute_mut(Op::Add(1)),
                        }));
                        if let Err(payload) = result {
                            return payload;
                        }
                        if submitted.load(Ordering::SeqCst) {
                            after += 1;
                            assert!(after < LIMIT, "thread {t} never saw the poison");
                        }
                    }
                    unreachable!()
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    assert!(nr.is_poisoned());
    let booms = payloads.iter().filter(|p| message(&***p) == "boom").count();
    let poisons = payloads.iter().filter(|p| is_poison(&***p)).count();
    assert_eq!(booms + poisons, THREADS, "unexpected panic payloads");
    // Replicas apply the op in separate threads at most once each, and only until the first
    // panic is seen, so one or two threads get the op's panic.
    assert!(
        (1..=2).contains(&booms),
        "{booms} threads got the op's panic"
    );
}
