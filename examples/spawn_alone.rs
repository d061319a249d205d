//! What one `spawn` and the run of its task cost a worker that has nobody to share them with,
//! replicore with `replication_factor(1)` (the default) and `(0)` against rayon.
//!
//! `cargo run --release --example spawn_alone -- [rounds] [burst|each]` (default 30, both).
//!
//! Each pool has two workers, unpinned, on `numa:1 core:2 pu:1`. A round holds one worker
//! asleep in a task (so that it steals nothing) while the other, from inside a task, spawns
//! 20,000 empty tasks and runs them itself through `yield_local`:
//! - `burst`: all 20,000 spawns first, then the runs (newest first: the deque is LIFO);
//! - `each`: every spawn followed at once by the run of that task.
//!
//! The time is from the first spawn to the last run, on the spawning worker; a round in which
//! the sleeper landed on the spawning worker (so that the other one could steal) is left out.
//! The three pools alternate round by round, and each line gives the median and the minimum.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

#[path = "../benches/common/contender.rs"]
mod contender;
use contender::Contender;

const TASKS: usize = 20_000;
/// How long the other worker sleeps: far longer than a round, far shorter than a lease.
const ASLEEP: Duration = Duration::from_millis(15);

/// One round on `pool`, or `None` if its sleeper ran on the spawning worker.
fn round<P: Contender>(pool: &P, each: bool) -> Option<Duration> {
    let sleeper = Arc::new(AtomicUsize::new(0));
    pool.install(|| {
        let me = P::index_here().expect("a pool worker");
        let s = Arc::clone(&sleeper);
        P::spawn_here(move || {
            s.store(
                P::index_here().expect("a pool worker") + 1,
                Ordering::SeqCst,
            );
            std::thread::sleep(ASLEEP);
        });
        // Wait without running local tasks, so that the other worker takes the sleeper.
        let waiting = Instant::now();
        while sleeper.load(Ordering::SeqCst) == 0 && waiting.elapsed() < Duration::from_secs(5) {
            std::thread::yield_now();
        }
        let ran = Arc::new(AtomicUsize::new(0));
        let t = Instant::now();
        for _ in 0..TASKS {
            let ran = Arc::clone(&ran);
            P::spawn_here(move || {
                ran.fetch_add(1, Ordering::Relaxed);
            });
            if each {
                P::run_local_here();
            }
        }
        while P::run_local_here() {}
        let elapsed = t.elapsed();
        let alone = sleeper.load(Ordering::SeqCst) != me + 1;
        (alone && ran.load(Ordering::Relaxed) == TASKS).then_some(elapsed)
    })
}

fn line(name: &str, mut v: Vec<Duration>) {
    v.sort();
    match v.first() {
        None => println!("  {name:<22} no round ran alone"),
        Some(min) => println!(
            "  {name:<22} median {:>6.3} ms   min {:>6.3} ms   ({} rounds)",
            v[v.len() / 2].as_secs_f64() * 1e3,
            min.as_secs_f64() * 1e3,
            v.len()
        ),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let rounds: usize = args.next().map_or(Ok(30), |a| a.parse())?;
    let patterns: Vec<bool> = match args.next().as_deref() {
        None => vec![false, true],
        Some("burst") => vec![false],
        Some("each") => vec![true],
        Some(other) => return Err(format!("unknown pattern {other:?}: use burst or each").into()),
    };
    let topo: replicore::Topology = "numa:1 core:2 pu:1".parse()?;
    let replicore_pool = |r: usize| {
        replicore::ThreadPool::builder()
            .topology(topo.clone())
            .num_threads(2)
            .pin_workers(false)
            .replication_factor(r)
            .build()
    };
    let (r1, r0) = (replicore_pool(1)?, replicore_pool(0)?);
    let ry = rayon::ThreadPoolBuilder::new().num_threads(2).build()?;
    for each in patterns {
        let pattern = if each {
            "each spawn run at once"
        } else {
            "20,000 spawns, then the runs"
        };
        println!("{pattern}, {rounds} rounds per pool:");
        let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rounds {
            a.extend(round(&r1, each));
            b.extend(round(&r0, each));
            c.extend(round(&ry, each));
            // Let the sleepers wake before the next round.
            std::thread::sleep(ASLEEP + Duration::from_millis(5));
        }
        line("replicore, r = 1", a);
        line("replicore, r = 0", b);
        line("rayon", c);
    }
    Ok(())
}
