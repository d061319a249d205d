//! How the pool's costs grow with the worker count, replicore and rayon at the same thread
//! counts, on synthetic topologies (so any box can run it; on a 2-CPU box the workers are
//! oversubscribed, which is what makes a wake-up per task expensive). Three cases, each after
//! 50 ms idle (so every worker has parked):
//! - `outside`: `TASKS` empty `spawn`s from a thread outside the pool;
//! - `inside`: the same, spawned from one task on a worker;
//! - `broadcast`: one `broadcast` of an empty closure to every worker.
//!
//! ```sh
//! cargo run --release --example spawn_scale               # 2, 16, 64, 128, 256 workers
//! cargo run --release --example spawn_scale -- 256 5      # one size, 5 rounds
//! ```
//!
//! Printed: the median round per contender (alternating, so a noisy moment hits both) and the
//! ratio replicore / rayon.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use replicore::ThreadPool;

#[path = "../benches/common/scale_topology.rs"]
mod scale_topology;
use scale_topology::scale_topology;

const TASKS: usize = 20_000;

fn wait_for(done: &AtomicUsize, want: usize) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while done.load(Ordering::Acquire) < want {
        assert!(Instant::now() < deadline, "watchdog: tasks did not finish");
        std::thread::yield_now();
    }
}

/// What a round asks of a contender; each method is the contender's own call, unwrapped.
trait Contender: Sync {
    /// `spawn` onto the pool from outside it.
    fn spawn(&self, task: impl FnOnce() + Send + 'static);
    /// The free `spawn`, called on one of the pool's workers.
    fn spawn_here(task: impl FnOnce() + Send + 'static);
    fn install(&self, op: impl FnOnce() + Send);
    fn broadcast_nothing(&self);
}

impl Contender for ThreadPool {
    fn spawn(&self, task: impl FnOnce() + Send + 'static) {
        ThreadPool::spawn(self, task)
    }
    fn spawn_here(task: impl FnOnce() + Send + 'static) {
        replicore::spawn(task)
    }
    fn install(&self, op: impl FnOnce() + Send) {
        ThreadPool::install(self, op)
    }
    fn broadcast_nothing(&self) {
        ThreadPool::broadcast(self, |_| ());
    }
}

impl Contender for rayon::ThreadPool {
    fn spawn(&self, task: impl FnOnce() + Send + 'static) {
        rayon::ThreadPool::spawn(self, task)
    }
    fn spawn_here(task: impl FnOnce() + Send + 'static) {
        rayon::spawn(task)
    }
    fn install(&self, op: impl FnOnce() + Send) {
        rayon::ThreadPool::install(self, op)
    }
    fn broadcast_nothing(&self) {
        rayon::ThreadPool::broadcast(self, |_| ());
    }
}

/// One round of `case` on `pool`, after 50 ms idle.
fn round<P: Contender>(pool: &P, case: &str) -> Duration {
    std::thread::sleep(Duration::from_millis(50));
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
        _ => pool.broadcast_nothing(),
    }
    t.elapsed()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let sizes: Vec<usize> = match args.first() {
        Some(n) => vec![n.parse()?],
        None => vec![2, 16, 64, 128, 256],
    };
    let rounds: usize = args.get(1).map(|r| r.parse()).transpose()?.unwrap_or(7);
    println!("workers  topology                 case       replicore     rayon  ratio");
    for n in sizes {
        let (topo, spec) = scale_topology(n);
        let rp = ThreadPool::builder()
            .topology(topo)
            .num_threads(n)
            .pin_workers(false)
            .build()?;
        let ry = rayon::ThreadPoolBuilder::new().num_threads(n).build()?;
        for case in ["outside", "inside", "broadcast"] {
            let (mut a, mut b) = (Vec::new(), Vec::new());
            // Alternate the contenders, so that a noisy moment hits both.
            for _ in 0..rounds {
                a.push(round(&rp, case));
                b.push(round(&ry, case));
            }
            let (a, b) = (median(a), median(b));
            println!(
                "{n:>7}  {spec:<24} {case:<10} {:>9.2?} {:>9.2?}  {:>5.2}",
                a,
                b,
                a.as_secs_f64() / b.as_secs_f64()
            );
        }
    }
    Ok(())
}
