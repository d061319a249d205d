//! The global pool survives 1,000 `join`s whose first half blocks for 30 ms. Before the
//! fix it hung for good after about 32 calls: each call cost a takeover, and every takeover used
//! up one of a CPU's deque generations.
//!
//! The calls come from 4 caller threads × 250 each rather than from one thread × 1,000. Each
//! caller is the one-thread loop of the issue, and together they take about 30 s / 4 instead of
//! 30 s; more blocking calls than workers at once also drive the pool to its spare-thread cap,
//! so the run covers the cap and the recycling of spare threads as well as the long series of
//! takeovers.
//!
//! One test in this file: the global pool is shared by every test of a binary.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::die;

const CALLERS: usize = 4;
const CALLS_PER_CALLER: usize = 250;

#[test]
fn global_pool_survives_1000_blocking_joins() {
    let done = Arc::new(AtomicUsize::new(0));
    let b_runs = Arc::new(AtomicUsize::new(0));
    let callers: Vec<_> = (0..CALLERS)
        .map(|_| {
            let (done, b_runs) = (done.clone(), b_runs.clone());
            std::thread::spawn(move || {
                for _ in 0..CALLS_PER_CALLER {
                    replicore::join(
                        || std::thread::sleep(Duration::from_millis(30)),
                        || {
                            b_runs.fetch_add(1, Ordering::SeqCst);
                        },
                    );
                    done.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    let total = CALLERS * CALLS_PER_CALLER;
    let t0 = Instant::now();
    let mut last = (0, Instant::now());
    loop {
        let n = done.load(Ordering::SeqCst);
        if n == total {
            break;
        }
        if n != last.0 {
            last = (n, Instant::now());
        }
        // Liveness only: a healthy pool finishes in about 10 s on 2 CPUs.
        if last.1.elapsed() > Duration::from_secs(30) || t0.elapsed() > Duration::from_secs(180) {
            die(&format!(
                "watchdog: the global pool stopped making progress: {n} of {total} blocking \
                 joins returned ({} of their second halves ran); no call returned for {:?}",
                b_runs.load(Ordering::SeqCst),
                last.1.elapsed()
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    for c in callers {
        c.join().unwrap();
    }
    assert_eq!(b_runs.load(Ordering::SeqCst), total);
    eprintln!(
        "global pool: {total} blocking joins from {CALLERS} threads in {:?}",
        t0.elapsed()
    );
}
