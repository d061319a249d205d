//! The many-worker rounds that `examples/spawn_scale` and the `scale` bench both run, so that
//! their figures describe the same work: replicore and rayon through one trait, each method the
//! contender's own call, unwrapped.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Tasks per `outside` / `inside` round.
pub const TASKS: usize = 20_000;

/// fib's argument in the `fib` case: enough joins to spread over 256 workers.
pub const FIB_N: u32 = 25;

/// The cases, in print order.
pub const CASES: [&str; 4] = ["outside", "inside", "broadcast", "fib"];

/// What a round asks of a contender.
pub trait Contender: Sync {
    /// `spawn` onto the pool from outside it.
    fn spawn(&self, task: impl FnOnce() + Send + 'static);
    /// The free `spawn`, called on one of the pool's workers.
    fn spawn_here(task: impl FnOnce() + Send + 'static);
    /// The free `join`, called on one of the pool's workers.
    fn join_here<A, B, RA, RB>(a: A, b: B) -> (RA, RB)
    where
        A: FnOnce() -> RA + Send,
        B: FnOnce() -> RB + Send,
        RA: Send,
        RB: Send;
    fn install<R: Send>(&self, op: impl FnOnce() -> R + Send) -> R;
    fn broadcast_nothing(&self);
}

/// The trait for a runtime whose pool type is `$krate::ThreadPool` and whose free functions are
/// `$krate::{spawn, join}`: replicore and rayon spell them alike.
macro_rules! contender {
    ($krate:ident) => {
        impl Contender for $krate::ThreadPool {
            fn spawn(&self, task: impl FnOnce() + Send + 'static) {
                $krate::ThreadPool::spawn(self, task)
            }
            fn spawn_here(task: impl FnOnce() + Send + 'static) {
                $krate::spawn(task)
            }
            fn join_here<A, B, RA, RB>(a: A, b: B) -> (RA, RB)
            where
                A: FnOnce() -> RA + Send,
                B: FnOnce() -> RB + Send,
                RA: Send,
                RB: Send,
            {
                $krate::join(a, b)
            }
            fn install<R: Send>(&self, op: impl FnOnce() -> R + Send) -> R {
                $krate::ThreadPool::install(self, op)
            }
            fn broadcast_nothing(&self) {
                $krate::ThreadPool::broadcast(self, |_| ());
            }
        }
    };
}

contender!(replicore);
contender!(rayon);

fn wait_for(done: &AtomicUsize, want: usize) {
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
    let (topo, spec) = super::scale_topology::scale_topology(n);
    let rp = replicore::ThreadPool::builder()
        .topology(topo)
        .num_threads(n)
        .pin_workers(false)
        .build()
        .expect("a replicore pool");
    let ry = rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build()
        .expect("a rayon pool");
    (rp, ry, spec)
}
