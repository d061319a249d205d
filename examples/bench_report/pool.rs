//! Pool sweeps: fork-join (fib via `join`) and spawn throughput against the thread count, for
//! replicore, rayon and tokio, each built with the same number of threads.

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

/// Runs both pool sweeps over the given thread counts.
pub fn sweeps(s: &Settings, threads: &[usize]) -> Result<(Sweep, Sweep), Box<dyn Error>> {
    let mut fib = Sweep::new(
        &format!("Pool: fib({FIB_N}) via join"),
        "worker threads",
        &format!("fib({FIB_N}) runs per second"),
        threads.to_vec(),
        &["replicore", "rayon"],
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
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(t)
            .build()?;
        let runs = s.fib_runs;

        fib.push(
            0,
            rate_median(s.reps, || {
                timed(|| {
                    for _ in 0..runs {
                        black_box(rp.install(|| fib_replicore(black_box(FIB_N))));
                    }
                    Ok(runs as f64)
                })
            })?,
        );
        fib.push(
            1,
            rate_median(s.reps, || {
                timed(|| {
                    for _ in 0..runs {
                        black_box(ry.install(|| fib_rayon(black_box(FIB_N))));
                    }
                    Ok(runs as f64)
                })
            })?,
        );

        let n = s.spawns;
        let millions = n as f64 / 1e6;
        spawn.push(
            0,
            rate_median(s.reps, || {
                timed(|| {
                    let (cd, rx) = Countdown::new(n);
                    rp.spawn(move || {
                        for _ in 0..n {
                            let cd = cd.clone();
                            replicore::spawn(move || cd.tick());
                        }
                    });
                    wait(&rx)?;
                    Ok(millions)
                })
            })?,
        );
        spawn.push(
            1,
            rate_median(s.reps, || {
                timed(|| {
                    let (cd, rx) = Countdown::new(n);
                    ry.spawn(move || {
                        for _ in 0..n {
                            let cd = cd.clone();
                            rayon::spawn(move || cd.tick());
                        }
                    });
                    wait(&rx)?;
                    Ok(millions)
                })
            })?,
        );
        spawn.push(
            2,
            rate_median(s.reps, || {
                timed(|| {
                    let (cd, rx) = Countdown::new(n);
                    rt.spawn(async move {
                        for _ in 0..n {
                            let cd = cd.clone();
                            tokio::spawn(async move { cd.tick() });
                        }
                    });
                    wait(&rx)?;
                    Ok(millions)
                })
            })?,
        );
    }
    Ok((fib, spawn))
}
