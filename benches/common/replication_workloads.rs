//! The workloads that measure the cost of run-queue replication, shared by `benches/takeover.rs`
//! and `examples/replication_cost.rs` so that both time exactly the same code.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::sync_channel;

use replicore::ThreadPool;

/// Tasks spawned by [`spawn_many`].
pub const SPAWNS: usize = 10_000;

/// `join` only, no cutoff: `join`'s second half is never logged.
pub fn fib(n: u32) -> u64 {
    if n < 2 {
        return n as u64;
    }
    let (a, b) = replicore::join(|| fib(n - 1), || fib(n - 2));
    a + b
}

/// One task spawns [`SPAWNS`] tasks from inside the pool (each a logged push with `r ≥ 1`), and
/// the caller waits until the last one ran.
pub fn spawn_many(p: &ThreadPool) {
    let left = Arc::new(AtomicUsize::new(SPAWNS));
    let (tx, rx) = sync_channel(1);
    p.spawn(move || {
        for _ in 0..SPAWNS {
            let (left, tx) = (left.clone(), tx.clone());
            replicore::spawn(move || {
                if left.fetch_sub(1, Ordering::AcqRel) == 1 {
                    tx.send(()).unwrap();
                }
            });
        }
    });
    rx.recv().unwrap();
}
