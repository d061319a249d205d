//! What a plain-call `join` costs when one half blocks: how long the other half waits.
//!
//! `cargo run --release --example join_blocking`
//!
//! Two workers. Worker 0 calls `join(a, b)` where one half sleeps 20 ms (a blocking call) and the
//! other returns at once, either at the top of its task or with 3 halves already queued on its
//! deque (past the fork window, see `src/pool/fork.rs`), while worker 1 is idle or busy with a
//! 2 ms task. replicore always runs `b` first on worker 0; rayon runs `a` first.
//! - At the top of a task, or with worker 1 idle (hungry), the `join` forks: `a` is queued while
//!   `b` runs, and worker 1 takes it as soon as it is free.
//! - Deeper, with worker 1 busy, nobody is hungry, so the `join` runs as two calls. A short `b`
//!   starts at once; but a short `a` waits for a sleeping `b`, even after worker 1 frees up,
//!   because worker 0 is asleep and `a` was never queued. rayon runs `a` first, at once.
//!
//! Prints the median, over 11 rounds, of how long the short half waited after a worker was free
//! to run it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

// Shared with the scale rounds, which use all of it; this example needs no outside spawn and no
// broadcast.
#[path = "../benches/common/contender.rs"]
mod contender;
use contender::Contender;

const BLOCK: Duration = Duration::from_millis(20);
const NEIGHBOUR_TASK: Duration = Duration::from_millis(2);
const ROUNDS: usize = 11;
/// Joins open above the measured one in the deep cases: `replicore`'s fork window.
const DEEP: u32 = 3;

/// Computes (no `spin_loop` hint: on a VM, a PAUSE loop can hand the virtual CPU away).
fn spin_for(d: Duration) {
    let t = Instant::now();
    let mut x = 1u64;
    while t.elapsed() < d {
        x = std::hint::black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1));
    }
}

/// One round on a pool: returns how long the short half waited to start after a worker was free
/// to run it (the join itself with an idle neighbour, the neighbour's task's end otherwise), or
/// `None` if the round did not set up what it measures (the neighbour had finished before the
/// join began: on a 2-CPU VM the two workers sometimes share one CPU, and the waiting one is
/// descheduled for a whole time slice).
fn round<P: Contender>(pool: &P, depth: u32, block_in_a: bool, busy: bool) -> Option<Duration> {
    pool.install(|| {
        let neighbour_done = Arc::new(std::sync::Mutex::new(None));
        if busy {
            // Keep the other worker busy for a while; wait until it has started.
            let started = Arc::new(AtomicBool::new(false));
            let (s, done) = (started.clone(), neighbour_done.clone());
            P::spawn_here(move || {
                s.store(true, Ordering::Release);
                spin_for(NEIGHBOUR_TASK);
                *done.lock().unwrap() = Some(Instant::now());
            });
            let deadline = Instant::now() + Duration::from_secs(5);
            while !started.load(Ordering::Acquire) {
                assert!(Instant::now() < deadline, "the neighbour never started");
                std::thread::yield_now();
            }
        }
        let (t0, short_started) = nest::<P>(depth, block_in_a);
        let neighbour_done = *neighbour_done.lock().unwrap();
        if neighbour_done.is_some_and(|d| d < t0) {
            return None;
        }
        // From when a worker was free to run the short half.
        let free = neighbour_done.map_or(t0, |d| d.max(t0));
        Some(short_started.saturating_duration_since(free))
    })
}

/// `depth` joins, each with an empty `a`, around the measured one; returns when the measured join
/// began and when its short half started.
fn nest<P: Contender>(depth: u32, block_in_a: bool) -> (Instant, Instant) {
    if depth == 0 {
        let t0 = Instant::now();
        let short = if block_in_a {
            P::join_here(|| std::thread::sleep(BLOCK), Instant::now).1
        } else {
            P::join_here(Instant::now, || std::thread::sleep(BLOCK)).0
        };
        (t0, short)
    } else {
        // An empty `a`, which replicore queues while `b` runs (and rayon runs first): it fills
        // replicore's window.
        P::join_here(|| (), || nest::<P>(depth - 1, block_in_a)).1
    }
}

fn median<P: Contender>(pool: &P, depth: u32, block_in_a: bool, busy: bool) -> Duration {
    let mut v: Vec<Duration> = (0..ROUNDS * 10)
        .filter_map(|_| {
            // Let every worker go idle (and park) between rounds.
            std::thread::sleep(Duration::from_millis(30));
            round(pool, depth, block_in_a, busy)
        })
        .take(ROUNDS)
        .collect();
    assert!(v.len() == ROUNDS, "too few rounds set up what they measure");
    v.sort();
    v[ROUNDS / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let replicore = replicore::ThreadPool::builder().num_threads(2).build()?;
    let rayon = rayon::ThreadPoolBuilder::new().num_threads(2).build()?;
    println!(
        "join on 2 workers, one half sleeping {} ms: how long the other half waits after a worker \
         is free to run it, median of {ROUNDS}",
        BLOCK.as_millis()
    );
    for (case, depth, block_in_a, busy) in [
        ("top of task, B sleeps, other busy", 0, false, true),
        ("3 deep, B sleeps, other idle", DEEP, false, false),
        ("3 deep, A sleeps, other busy", DEEP, true, true),
        ("3 deep, B sleeps, other busy", DEEP, false, true),
    ] {
        let r = median(&replicore, depth, block_in_a, busy);
        let y = median(&rayon, depth, block_in_a, busy);
        println!(
            "{case:>34}: replicore {:>6.2} ms   rayon {:>6.2} ms",
            r.as_secs_f64() * 1e3,
            y.as_secs_f64() * 1e3
        );
    }
    Ok(())
}
