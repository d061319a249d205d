//! Pool sweeps: fork-join (fib via `join`) and spawn throughput against the thread count, for
//! replicore, rayon and tokio (and chili, heartbeat scheduling, for fib), each built with the
//! same number of threads.

use crate::{Settings, Sweep, rate_median, timed};
use std::error::Error;
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

/// fib(FIB_N) through `join` with no sequential cutoff: every call is a fork.
const FIB_N: u32 = 25;

fn fib_replicore(n: u32) -> u64 {
    if n < 2 {
        return u64::from(n);
    }
    let (a, b) = replicore::join(|| fib_replicore(n - 1), || fib_replicore(n - 2));
    a + b
}

fn fib_chili(n: u32, s: &mut chili::Scope<'_>) -> u64 {
    if n < 2 {
        return n as u64;
    }
    let (a, b) = s.join(|s| fib_chili(n - 1, s), |s| fib_chili(n - 2, s));
    a + b
}

fn fib_rayon(n: u32) -> u64 {
    if n < 2 {
        return u64::from(n);
    }
    let (a, b) = rayon::join(|| fib_rayon(n - 1), || fib_rayon(n - 2));
    a + b
}

/// Counts finished tasks down; the last one wakes the measuring thread.
struct Countdown {
    left: AtomicUsize,
    done: SyncSender<()>,
}

impl Countdown {
    fn new(n: usize) -> (Arc<Self>, Receiver<()>) {
        let (done, rx) = sync_channel(1);
        let left = AtomicUsize::new(n);
        (Arc::new(Countdown { left, done }), rx)
    }

    fn tick(&self) {
        if self.left.fetch_sub(1, Ordering::AcqRel) == 1 {
            // The receiver outlives every task: the measuring thread waits on it.
            let _ = self.done.send(());
        }
    }
}

/// Waits for a countdown, turning a vanished sender (a lost task) into an error.
fn wait(rx: &Receiver<()>) -> Result<(), Box<dyn Error>> {
    rx.recv()
        .map_err(|_| "a spawned task was lost: the countdown never reached zero".into())
}

/// The median rate of `s.reps` timed repetitions of `body` (after one untimed warm-up); `body`
/// returns the work it did. Every contender's point goes through this one loop.
fn measure(
    s: &Settings,
    mut body: impl FnMut() -> Result<f64, Box<dyn Error>>,
) -> Result<f64, Box<dyn Error>> {
    rate_median(s.reps, || timed(&mut body))
}

/// fib(FIB_N) runs per second, `s.fib_runs` per repetition; `fib` runs one on the contender.
fn fib_rate(s: &Settings, fib: impl Fn(u32) -> u64) -> Result<f64, Box<dyn Error>> {
    measure(s, || {
        for _ in 0..s.fib_runs {
            black_box(fib(black_box(FIB_N)));
        }
        Ok(s.fib_runs as f64)
    })
}

/// Million tasks per second for `s.spawns` spawns from inside one task, timed until the last
/// has run; `fan_out(n, countdown)` starts that spawning task on the contender.
fn spawn_rate(
    s: &Settings,
    fan_out: impl Fn(usize, Arc<Countdown>),
) -> Result<f64, Box<dyn Error>> {
    let n = s.spawns;
    measure(s, || {
        let (cd, rx) = Countdown::new(n);
        fan_out(n, cd);
        wait(&rx)?;
        Ok(n as f64 / 1e6)
    })
}

/// Runs both pool sweeps over the given thread counts.
pub fn sweeps(s: &Settings, threads: &[usize]) -> Result<(Sweep, Sweep), Box<dyn Error>> {
    let mut fib = Sweep::new(
        &format!("Pool: fib({FIB_N}) via join"),
        "worker threads",
        &format!("fib({FIB_N}) runs per second"),
        threads.to_vec(),
        &["replicore", "rayon", "chili"],
    );
    let mut spawn = Sweep::new(
        &format!("Pool: {} spawns from inside a task", s.spawns),
        "worker threads",
        "million tasks per second",
        threads.to_vec(),
        &["replicore", "rayon", "tokio"],
    );
    for &t in threads {
        eprintln!("  pool, {t} thread(s)");
        let rp = replicore::ThreadPool::builder().num_threads(t).build()?;
        let ry = rayon::ThreadPoolBuilder::new().num_threads(t).build()?;
        // chili counts the calling thread among its `thread_count`.
        let ch = chili::ThreadPool::with_config(chili::Config {
            thread_count: std::num::NonZeroUsize::new(t),
            ..Default::default()
        });
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(t)
            .build()?;

        fib.push(0, fib_rate(s, |n| rp.install(|| fib_replicore(n)))?);
        fib.push(1, fib_rate(s, |n| ry.install(|| fib_rayon(n)))?);
        fib.push(2, fib_rate(s, |n| fib_chili(n, &mut ch.scope()))?);

        spawn.push(
            0,
            spawn_rate(s, |n, cd| {
                rp.spawn(move || {
                    for _ in 0..n {
                        let cd = cd.clone();
                        replicore::spawn(move || cd.tick());
                    }
                })
            })?,
        );
        spawn.push(
            1,
            spawn_rate(s, |n, cd| {
                ry.spawn(move || {
                    for _ in 0..n {
                        let cd = cd.clone();
                        rayon::spawn(move || cd.tick());
                    }
                })
            })?,
        );
        spawn.push(
            2,
            spawn_rate(s, |n, cd| {
                // The fan-out task is detached; the countdown says when its children are done.
                drop(rt.spawn(async move {
                    for _ in 0..n {
                        let cd = cd.clone();
                        tokio::spawn(async move { cd.tick() });
                    }
                }));
            })?,
        );
    }
    Ok((fib, spawn))
}
