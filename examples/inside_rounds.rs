//! Round by round, where the time of the scale sweep's `inside` case goes: one task on a worker
//! spawns 20,000 empty tasks, replicore and rayon alternating, every round after an idle pause
//! (so it starts from parked workers, as in the sweep).
//!
//! ```sh
//! cargo run --release --example inside_rounds                # 2 workers, 20 rounds, 20 ms idle
//! cargo run --release --example inside_rounds -- 2 40 50 0   # workers, rounds, idle ms, r
//! ```
//!
//! The last argument is replicore's replication factor (default: the builder's, 1 whenever a
//! worker has a neighbour); `0` turns the op log off, which shows what replication costs per
//! task.
//!
//! Each round prints the spawn loop's time, the whole round's (until the last task ran) and how
//! many of the tasks the spawning worker ran itself. The summary splits the rounds into those
//! where the spawner ran at least 99% of the tasks ("alone": the other workers never got going,
//! often because Linux woke them onto the spawner's CPU) and the rest ("shared"), with the median
//! round of each: it tells a per-task cost on the spawner's own path from the cost of handing
//! tasks to other workers.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crossbeam_utils::CachePadded;

// Shared with the sweep, which uses more of them than this example does.
#[path = "../benches/common/contender.rs"]
mod contender;
#[path = "../benches/common/scale_topology.rs"]
mod scale_topology;
#[allow(dead_code)]
#[path = "../benches/common/scale_workloads.rs"]
mod scale_workloads;
use contender::Contender;
use scale_workloads::{TASKS, pools_replicating, wait_for};

/// One round: (spawn loop, whole round, tasks the spawner ran).
struct Round {
    spawning: Duration,
    total: Duration,
    by_spawner: usize,
}

/// The `inside` round of `scale_workloads::round`, plus a per-worker count of the tasks run (one
/// cache line per worker, so the count adds no shared line).
fn round<P: Contender>(pool: &P, workers: usize, index: fn() -> Option<usize>) -> Round {
    let ran: Arc<Vec<CachePadded<AtomicUsize>>> = Arc::new(
        (0..workers)
            .map(|_| CachePadded::new(AtomicUsize::new(0)))
            .collect(),
    );
    let done = Arc::new(AtomicUsize::new(0));
    let t = Instant::now();
    let (spawning, spawner) = pool.install(|| {
        for _ in 0..TASKS {
            let (ran, done) = (Arc::clone(&ran), Arc::clone(&done));
            P::spawn_here(move || {
                ran[index().expect("a pool worker")].fetch_add(1, Ordering::Relaxed);
                done.fetch_add(1, Ordering::Release);
            });
        }
        (t.elapsed(), index().expect("a pool worker"))
    });
    wait_for(&done, TASKS);
    Round {
        spawning,
        total: t.elapsed(),
        by_spawner: ran[spawner].load(Ordering::Relaxed),
    }
}

fn median_ms(mut v: Vec<Duration>) -> String {
    if v.is_empty() {
        return "-".into();
    }
    v.sort();
    format!("{:.2} ms", v[v.len() / 2].as_secs_f64() * 1e3)
}

fn summary(name: &str, rounds: &[Round]) {
    let alone = |r: &&Round| r.by_spawner * 100 >= TASKS * 99;
    let (a, s): (Vec<&Round>, Vec<&Round>) = rounds.iter().partition(alone);
    println!(
        "{name:<9} all {} rounds: {} | alone {} rounds: {} | shared {} rounds: {}",
        rounds.len(),
        median_ms(rounds.iter().map(|r| r.total).collect()),
        a.len(),
        median_ms(a.iter().map(|r| r.total).collect()),
        s.len(),
        median_ms(s.iter().map(|r| r.total).collect()),
    );
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, default: u64| -> Result<u64, std::num::ParseIntError> {
        args.get(i).map_or(Ok(default), |a| a.parse())
    };
    let (workers, rounds, idle) = (arg(0, 2)? as usize, arg(1, 20)?, arg(2, 20)?);
    let r = args.get(3).map(|r| r.parse::<usize>()).transpose()?;
    // The builder's message, not its Debug form, for a factor the topology cannot hold.
    let (rp, ry, spec) = pools_replicating(workers, r).map_err(|e| e.to_string())?;
    println!(
        "{workers} workers ({spec}), replication factor {}, {TASKS} spawns from a task, \
         {idle} ms idle before each",
        rp.replication_factor()
    );
    println!("round  contender  spawn loop  whole round  run by the spawner");
    let (mut r, mut y) = (Vec::new(), Vec::new());
    for i in 0..rounds {
        // Alternate the contenders, so that a noisy moment hits both.
        std::thread::sleep(Duration::from_millis(idle));
        r.push(round(&rp, workers, replicore::current_thread_index));
        std::thread::sleep(Duration::from_millis(idle));
        y.push(round(&ry, workers, rayon::current_thread_index));
        for (name, x) in [("replicore", r.last()), ("rayon", y.last())] {
            let x = x.expect("just pushed");
            println!(
                "{i:>5}  {name:<9}  {:>7.2} ms  {:>8.2} ms  {:>6} of {TASKS}",
                x.spawning.as_secs_f64() * 1e3,
                x.total.as_secs_f64() * 1e3,
                x.by_spawner
            );
        }
    }
    summary("replicore", &r);
    summary("rayon", &y);
    Ok(())
}
