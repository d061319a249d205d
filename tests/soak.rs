//! The soak test: a pool on default settings survives thousands of blocking tasks, takes
//! over only blocked workers, stays within its thread bound, and loses or repeats nothing.
//!
//! One test in this file, because it counts the OS threads of the whole process.
//!
//! Uses `PoolStats::busy_expiries` (leases that went silent while the worker was running or
//! runnable; such workers are not taken over), read through [`busy_expiries`] only.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{compute_for, counters, die, not_once, os_threads};
use replicore::{PoolStats, ThreadPool};

/// The one place this file reads the new counter.
fn busy_expiries(s: &PoolStats) -> u64 {
    s.recovery.busy_expiries
}

/// Tasks of the mixed phase: `OUTSIDE` spawned with `ThreadPool::spawn`, of which every
/// `SPAWNER_EVERY`-th also spawns `CHILDREN` more with `replicore::spawn` from inside the pool.
const OUTSIDE: usize = 8_000;
const SPAWNER_EVERY: usize = 40;
const CHILDREN: usize = 10;
const TASKS: usize = OUTSIDE + OUTSIDE / SPAWNER_EVERY * CHILDREN;
/// Share of tasks that block (sleep) for a uniform 5..=50 ms. Only sleeps that outlast the
/// lease plus the detection delay cause a takeover: a rough model of 2 CPUs with 2 spare
/// threads gives ~1,100 takeovers in ~30 s at a 30 ms detection delay and ~580 in ~34 s at
/// 40 ms, against the 500 required.
const BLOCKING_SHARE: f64 = 0.25;
/// Every `COMPUTE_EVERY`-th task computes (spins) for 100 ms instead.
const COMPUTE_EVERY: usize = 500;
/// Seed of the task mix.
const SEED: u64 = 0x5eed_0010;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Quick,
    Block(Duration),
    Compute,
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn kind(id: usize) -> Kind {
    if id % COMPUTE_EVERY == 7 {
        return Kind::Compute;
    }
    let r = splitmix64(SEED ^ id as u64);
    let unit = (r >> 11) as f64 / (1u64 << 53) as f64;
    if unit < BLOCKING_SHARE {
        let ms = 5 + splitmix64(r) % 46;
        Kind::Block(Duration::from_millis(ms))
    } else {
        Kind::Quick
    }
}

fn run_kind(k: Kind) {
    match k {
        Kind::Quick => std::hint::black_box(()),
        Kind::Block(d) => std::thread::sleep(d),
        Kind::Compute => compute_for(Duration::from_millis(100)),
    }
}

/// A stage-by-stage watchdog on its own thread: if the current stage is not done by its
/// deadline, the process exits with the stage's name and the last state the test noted.
struct Watchdog {
    state: Arc<Mutex<(String, Instant, String)>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watchdog {
    fn start() -> Self {
        let state = Arc::new(Mutex::new((
            "start".to_owned(),
            Instant::now() + Duration::from_secs(30),
            String::new(),
        )));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (state.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !st.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(20));
                let (stage, deadline, note) = s.lock().unwrap().clone();
                if Instant::now() > deadline {
                    die(&format!(
                        "watchdog: soak stage '{stage}' not done by its deadline; last state: \
                         {note}"
                    ));
                }
            }
        });
        Watchdog {
            state,
            stop,
            thread: Some(thread),
        }
    }

    fn stage(&self, name: &str, limit: Duration) {
        let mut s = self.state.lock().unwrap();
        *s = (name.to_owned(), Instant::now() + limit, String::new());
    }

    fn note(&self, note: String) {
        self.state.lock().unwrap().2 = note;
    }

    fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

/// Samples the process's OS thread count every ~2 ms until stopped; keeps the maximum.
struct Sampler {
    max: Arc<AtomicUsize>,
    samples: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sampler {
    fn start() -> Self {
        let max = Arc::new(AtomicUsize::new(0));
        let samples = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (m, n, st) = (max.clone(), samples.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !st.load(Ordering::SeqCst) {
                if let Some(t) = os_threads() {
                    m.fetch_max(t, Ordering::SeqCst);
                    n.fetch_add(1, Ordering::SeqCst);
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        Sampler {
            max,
            samples,
            stop,
            thread: Some(thread),
        }
    }

    /// Stops sampling; returns (max threads seen, samples taken).
    fn stop(mut self) -> (usize, usize) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        (
            self.max.load(Ordering::SeqCst),
            self.samples.load(Ordering::SeqCst),
        )
    }
}

#[test]
fn soak_blocking_and_computing_tasks_on_default_settings() {
    let t_start = Instant::now();
    let watchdog = Watchdog::start();
    let sampler = Sampler::start();
    // Everything this test starts besides the pool runs by now: the harness's threads, the
    // watchdog and the sampler.
    let baseline = os_threads();

    watchdog.stage("build the pool", Duration::from_secs(10));
    let pool = ThreadPool::builder().build().unwrap();
    let n = pool.current_num_threads();
    let spares = pool.max_spare_threads();
    let mut failures: Vec<String> = Vec::new();

    // Phase 1: computing tasks only, nothing else queued. No takeover may happen, and the
    // silent leases must be counted as busy.
    watchdog.stage("compute-only phase", Duration::from_secs(30));
    let before = pool.stats();
    let computing = 2 * n;
    let computed = Arc::new(AtomicUsize::new(0));
    for _ in 0..computing {
        let computed = computed.clone();
        pool.spawn(move || {
            compute_for(Duration::from_millis(100));
            computed.fetch_add(1, Ordering::SeqCst);
        });
    }
    while computed.load(Ordering::SeqCst) < computing {
        watchdog.note(format!(
            "{} of {computing} computing tasks done; {:?}",
            computed.load(Ordering::SeqCst),
            pool.stats()
        ));
        std::thread::sleep(Duration::from_millis(5));
    }
    let after = pool.stats();
    if after.recovery.takeovers != before.recovery.takeovers {
        failures.push(format!(
            "computing tasks caused {} takeovers (busy workers must not be taken over); {after:?}",
            after.recovery.takeovers - before.recovery.takeovers
        ));
    }
    if busy_expiries(&after) <= busy_expiries(&before) {
        failures.push(format!(
            "{computing} tasks computing 100 ms each on a 20 ms lease counted no busy expiry; \
             {after:?}"
        ));
    }
    if !failures.is_empty() {
        eprintln!("soak: compute phase: {failures:?}");
    }

    // Phase 2: the mixed load.
    watchdog.stage("mixed phase", Duration::from_secs(120));
    let t_mixed = Instant::now();
    let runs = counters(TASKS);
    let blocking = (0..TASKS)
        .filter(|&i| matches!(kind(i), Kind::Block(_)))
        .count();
    let computing_mixed = (0..TASKS).filter(|&i| kind(i) == Kind::Compute).count();
    for id in 0..OUTSIDE {
        let runs = runs.clone();
        pool.spawn(move || {
            if id % SPAWNER_EVERY == 0 {
                let first = OUTSIDE + id / SPAWNER_EVERY * CHILDREN;
                for child in first..first + CHILDREN {
                    let runs = runs.clone();
                    replicore::spawn(move || {
                        run_kind(kind(child));
                        runs[child].fetch_add(1, Ordering::SeqCst);
                    });
                }
            }
            run_kind(kind(id));
            runs[id].fetch_add(1, Ordering::SeqCst);
        });
    }
    loop {
        let done = runs
            .iter()
            .filter(|r| r.load(Ordering::SeqCst) >= 1)
            .count();
        if done == TASKS {
            break;
        }
        watchdog.note(format!(
            "{done} of {TASKS} tasks ran; {:?}; earlier failures: {failures:?}",
            pool.stats()
        ));
        std::thread::sleep(Duration::from_millis(10));
    }
    let mixed_elapsed = t_mixed.elapsed();

    // The pool still answers.
    watchdog.stage("install at the end", Duration::from_secs(20));
    let answer = pool.install(|| 42);
    let stats = pool.stats();
    watchdog.stage("shutdown", Duration::from_secs(30));
    watchdog.note(format!("{stats:?}"));
    pool.shutdown();
    let (max_threads, samples) = sampler.stop();
    watchdog.stop();

    let bound = baseline.map(|b| b + n + spares + 1);
    eprintln!(
        "soak: {TASKS} tasks ({blocking} blocking 5-50 ms, {computing_mixed} computing 100 ms) \
         + {computing} compute-only; takeovers {}, busy_expiries {}, replacement_threads {}, \
         takeovers_without_replacement {}; max OS threads {max_threads} (bound {bound:?}: \
         baseline {baseline:?} + {n} workers + {spares} spares + 1 monitor; {samples} samples); \
         mixed phase {mixed_elapsed:?}, total {:?}",
        stats.recovery.takeovers,
        busy_expiries(&stats),
        stats.recovery.replacement_threads,
        stats.recovery.takeovers_without_replacement,
        t_start.elapsed()
    );

    assert_eq!(answer, 42);
    let (bad, examples) = not_once(&runs);
    assert_eq!(
        bad, 0,
        "{bad} tasks did not run exactly once: (task, runs) {examples:?}"
    );
    assert!(
        blocking * 10 >= TASKS,
        "the mix must block in at least 10% of the tasks: {blocking} of {TASKS}"
    );
    if let Some(bound) = bound {
        assert!(samples > 100, "the thread sampler barely ran: {samples}");
        assert!(
            max_threads <= bound,
            "the process had {max_threads} OS threads at one sample; the bound is {bound} \
             (baseline {baseline:?} + {n} workers + {spares} spare threads + 1 monitor); {stats:?}"
        );
    }
    assert!(
        stats.recovery.takeovers >= 500,
        "only {} takeovers for {blocking} blocking tasks; {stats:?}",
        stats.recovery.takeovers
    );
    assert!(failures.is_empty(), "compute-only phase: {failures:?}");
}
