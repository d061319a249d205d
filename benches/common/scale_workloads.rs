//! The many-worker rounds that `examples/spawn_scale` and the `scale` bench both run, so that
//! their figures describe the same work, on replicore and rayon through [`Contender`].

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::contender::Contender;

/// Tasks per `outside` / `inside` round.
pub const TASKS: usize = 20_000;

/// fib's argument in the `fib` case: enough joins to spread over 256 workers.
pub const FIB_N: u32 = 25;

/// The cases, in print order.
pub const CASES: [&str; 4] = ["outside", "inside", "broadcast", "fib"];

/// Waits until `done` reaches `want`, yielding; a watchdog fails the round after 120 s.
pub fn wait_for(done: &AtomicUsize, want: usize) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while done.load(Ordering::Acquire) < want {
        assert!(Instant::now() < deadline, "watchdog: tasks did not finish");
        std::thread::yield_now();
    }
}

fn fib<P: Contender>(n: u32) -> u64 {
    if n < 2 {
        return n as u64;
    }
    let (a, b) = P::join_here(|| fib::<P>(n - 1), || fib::<P>(n - 2));
    a + b
}

/// One timed round of `case` (one of [`CASES`]) on `pool`. The caller lets the pool go idle
/// first if the round is meant to start from parked workers.
pub fn round<P: Contender>(pool: &P, case: &str) -> Duration {
    let done = Arc::new(AtomicUsize::new(0));
    let tick = |done: &Arc<AtomicUsize>| {
        let done = Arc::clone(done);
        move || {
            done.fetch_add(1, Ordering::Release);
        }
    };
    let t = Instant::now();
    match case {
        "outside" => {
            for _ in 0..TASKS {
                pool.spawn(tick(&done));
            }
            wait_for(&done, TASKS);
        }
        "inside" => {
            pool.install(|| {
                for _ in 0..TASKS {
                    P::spawn_here(tick(&done));
                }
            });
            wait_for(&done, TASKS);
        }
        "broadcast" => pool.broadcast_nothing(),
        "fib" => assert_eq!(pool.install(|| fib::<P>(FIB_N)), 75_025),
        other => panic!("unknown case {other}"),
    }
    t.elapsed()
}

/// replicore on [`scale_topology`](super::scale_topology::scale_topology)`(n)` (workers not
/// pinned: the CPUs are synthetic) and rayon, both with `n` threads; and the topology's spec.
pub fn pools(n: usize) -> (replicore::ThreadPool, rayon::ThreadPool, String) {
    pools_replicating(n, None).expect("a replicore pool")
}

/// [`pools`], with replicore's replication factor set to `r` (`None`: the builder's default,
/// which fits any worker count); a factor the topology cannot hold is the builder's error.
pub fn pools_replicating(
    n: usize,
    r: Option<usize>,
) -> Result<(replicore::ThreadPool, rayon::ThreadPool, String), replicore::BuildError> {
    let (topo, spec) = super::scale_topology::scale_topology(n);
    let mut builder = replicore::ThreadPool::builder()
        .topology(topo)
        .num_threads(n)
        .pin_workers(false);
    if let Some(r) = r {
        builder = builder.replication_factor(r);
    }
    let rp = builder.build()?;
    let ry = rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build()
        .expect("a rayon pool");
    Ok((rp, ry, spec))
}
