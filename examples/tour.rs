//! The replicore tour: what the runtime sees on this machine and what it does with it.
//!
//! Run with `cargo run --release --example tour`; set `REPLICORE_TOPOLOGY="numa:2 core:2 pu:1"`
//! to act out a two-socket machine.
use indicatif::{HumanCount, ProgressBar, ProgressDrawTarget, ProgressStyle};
use replicore::nr::{NrConfig, ReplicatedHashMap};
use replicore::{ThreadPool, Topology};
use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

fn section(title: &str) {
    println!(
        "\n== {title} {}",
        "=".repeat(70usize.saturating_sub(title.len()))
    );
}

fn main() {
    section("1. Topology");
    let topo = match Topology::detect() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    print!("{topo}");
    let threads = topo.num_cpus();
    println!("Successor order (who replicates and takes over each CPU's queue, nearest first):");
    for &cpu in topo.cpus().iter().take(16) {
        let n: Vec<String> = topo
            .neighbours(cpu)
            .iter()
            .take(3)
            .map(|c| c.to_string())
            .collect();
        println!("  {cpu} -> {}", n.join(", "));
    }

    section("2. A parallel workload: quicksort of 10M keys");
    // The default lease (20 ms): the sort's first partitions scan millions of keys with no
    // scheduling point. The pool sees that the worker's thread is running (not blocked), so it
    // leaves it alone: the busy leases are counted, and no takeover happens.
    let pool = match ThreadPool::builder().topology(topo.clone()).build() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let keys = random_keys(SORT_KEYS, 0x5eed);
    let mut seq = keys.clone();
    let seq_time = sort_with_progress("sequential", &mut seq, |v, placed| {
        quicksort(v, false, placed)
    });
    let mut par = keys;
    let par_time = sort_with_progress("replicore", &mut par, |v, placed| {
        pool.install(|| quicksort(v, true, placed))
    });
    assert!(
        par.windows(2).all(|w| w[0] <= w[1]),
        "parallel sort is sorted"
    );
    assert_eq!(par, seq, "parallel and sequential sorts agree");
    println!(
        "sequential {:>8.1} ms | replicore on {threads} workers {:>8.1} ms | speed-up {:.2}x",
        seq_time.as_secs_f64() * 1e3,
        par_time.as_secs_f64() * 1e3,
        seq_time.as_secs_f64() / par_time.as_secs_f64()
    );
    let stats = pool.stats();
    println!(
        "pool stats: {} tasks, {} local pops, {} steals ({} from another node), {} parks, {} takeovers, \
         {} leases silent while computing (busy, not taken over)",
        stats.scheduler.tasks_executed,
        stats.scheduler.local_pops,
        stats.scheduler.steals_same_node + stats.scheduler.steals_remote_node,
        stats.scheduler.steals_remote_node,
        stats.scheduler.parks,
        stats.recovery.takeovers,
        stats.recovery.busy_expiries
    );
    pool.shutdown();

    section("3. A worker blocked by a task, and the takeover that rescues its queue");
    takeover_demo(&topo);

    section("4. Node replication: a read-mostly map (5% writes)");
    map_mix(&topo, threads);
}

/// Keys sorted in section 2.
const SORT_KEYS: usize = 10_000_000;

/// Runs `sort` on `keys` while a progress bar shows how many keys have reached their final
/// position, and returns how long the sort took.
///
/// The sort only bumps a relaxed counter (once per leaf and once per pivot, a few thousand times
/// in all); a separate ticker thread reads it and redraws the bar, so drawing never runs on the
/// sort's own threads. When stdout is not a terminal (a CI log, `| cat`) the bar is hidden and one
/// plain line is printed at the end instead.
fn sort_with_progress(
    label: &str,
    keys: &mut [u64],
    sort: impl FnOnce(&mut [u64], &AtomicUsize),
) -> Duration {
    let bar = ProgressBar::with_draw_target(Some(keys.len() as u64), ProgressDrawTarget::stdout())
        .with_style(
            ProgressStyle::with_template(
                "{prefix:>10} [{wide_bar}] {human_pos:>10}/{human_len} keys placed {msg}",
            )
            .expect("the progress template is valid")
            .progress_chars("=> "),
        )
        .with_prefix(label.to_string());
    let placed = AtomicUsize::new(0);
    let finished = AtomicBool::new(false);
    let elapsed = std::thread::scope(|s| {
        let ticker = s.spawn(|| {
            while !finished.load(Relaxed) {
                bar.set_position(placed.load(Relaxed) as u64);
                // Parked rather than slept, so the ticker ends as soon as the sort does.
                std::thread::park_timeout(Duration::from_millis(50));
            }
        });
        let start = Instant::now();
        sort(keys, &placed);
        let elapsed = start.elapsed();
        finished.store(true, Relaxed);
        ticker.thread().unpark();
        elapsed
    });
    let placed = placed.load(Relaxed);
    bar.set_position(placed as u64);
    let ms = format!("{:.1} ms", elapsed.as_secs_f64() * 1e3);
    if bar.is_hidden() {
        println!(
            "{label:>10}: {} of {} keys placed in {ms}",
            HumanCount(placed as u64),
            HumanCount(keys.len() as u64)
        );
    } else {
        bar.finish_with_message(ms);
    }
    elapsed
}

/// Tasks queued behind the blocking task in section 3.
const QUEUED_BEHIND_BLOCKER: usize = 16;

/// One worker queues tasks on its own deque and then blocks in a syscall for 10 leases, while
/// every other worker is busy with a task that never yields (so nobody is idle to steal). Only a
/// takeover can run the queued tasks before the blocker wakes; each must run exactly once.
fn takeover_demo(topo: &Topology) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
    use std::time::Duration;

    // Takeover needs a neighbour CPU; on a 1-CPU machine act out a 2-CPU one.
    let topo = if topo.num_cpus() >= 2 {
        topo.clone()
    } else {
        Topology::synthetic(1, 2, 1).expect("a 1 x 2 x 1 synthetic topology is valid")
    };
    let lease = Duration::from_millis(10);
    let pool = match ThreadPool::builder().topology(topo).lease(lease).build() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let workers = pool.current_num_threads();
    let runs: Arc<Vec<AtomicUsize>> = Arc::new(
        (0..QUEUED_BEHIND_BLOCKER)
            .map(|_| AtomicUsize::new(0))
            .collect(),
    );
    let done = Arc::new(AtomicUsize::new(0));
    let blocker_awake = Arc::new(AtomicBool::new(false));
    let ran_while_blocked = Arc::new(AtomicUsize::new(0));
    let t0 = Instant::now();
    let hogs_running = Arc::new(AtomicUsize::new(0));
    for _ in 0..workers - 1 {
        let (done, hogs_running) = (done.clone(), hogs_running.clone());
        pool.spawn(move || {
            hogs_running.fetch_add(1, SeqCst);
            while done.load(SeqCst) < QUEUED_BEHIND_BLOCKER && t0.elapsed() < Duration::from_secs(5)
            {
                std::hint::spin_loop();
            }
        });
    }
    while hogs_running.load(SeqCst) < workers - 1 && t0.elapsed() < Duration::from_secs(5) {
        std::thread::yield_now();
    }
    {
        let (runs, done, awake, during) = (
            runs.clone(),
            done.clone(),
            blocker_awake.clone(),
            ran_while_blocked.clone(),
        );
        pool.spawn(move || {
            for i in 0..QUEUED_BEHIND_BLOCKER {
                let (runs, done, awake, during) =
                    (runs.clone(), done.clone(), awake.clone(), during.clone());
                replicore::spawn(move || {
                    runs[i].fetch_add(1, SeqCst);
                    if !awake.load(SeqCst) {
                        during.fetch_add(1, SeqCst);
                    }
                    done.fetch_add(1, SeqCst);
                });
            }
            std::thread::sleep(lease * 10);
            awake.store(true, SeqCst);
        });
    }
    pool.install(|| ()); // a round trip: the pool is live
    let stats = loop {
        let s = pool.stats();
        if (done.load(SeqCst) == QUEUED_BEHIND_BLOCKER && blocker_awake.load(SeqCst))
            || t0.elapsed() > Duration::from_secs(10)
        {
            break s;
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    let once = runs.iter().filter(|r| r.load(SeqCst) == 1).count();
    let twice = runs.iter().filter(|r| r.load(SeqCst) > 1).count();
    println!(
        "{workers} workers, lease {lease:?}: one task queued {QUEUED_BEHIND_BLOCKER} tasks, then slept for 10 leases; the others spun."
    );
    println!(
        "{} of {QUEUED_BEHIND_BLOCKER} queued tasks ran while their worker was still blocked; {once} ran exactly once, {twice} more than once, {} never.",
        ran_while_blocked.load(SeqCst),
        QUEUED_BEHIND_BLOCKER - once - twice
    );
    println!(
        "pool stats: {} lease expiries, {} takeovers, {} tasks recovered from a replica, {} replacement threads, {} fenced actions refused",
        stats.recovery.lease_expiries,
        stats.recovery.takeovers,
        stats.recovery.tasks_recovered_from_replica,
        stats.recovery.replacement_threads,
        stats.recovery.fenced_rejections
    );
    if twice > 0 || once != QUEUED_BEHIND_BLOCKER {
        eprintln!("error: a queued task was lost or ran twice");
        std::process::exit(1);
    }
    pool.shutdown();
}

/// Keys in the map, operations per thread, and the share of writes for section 3.
const MAP_KEYS: u64 = 100_000;
const MAP_OPS_PER_THREAD: usize = 2_000_000;
const MAP_WRITE_PERCENT: u64 = 5;

/// Runs the same uniform-key mix on a `ReplicatedHashMap` and on `RwLock<HashMap>`, one thread per
/// CPU, and prints both throughputs and their ratio.
fn map_mix(topo: &Topology, threads: usize) {
    let init: HashMap<u64, u64> = (0..MAP_KEYS).map(|k| (k, k)).collect();
    let replicated = match ReplicatedHashMap::with_contents(topo, NrConfig::default(), &init) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let locked = RwLock::new(init);
    let nr_rate = run_mix(threads, |t, op| {
        let h = replicated
            .register_current()
            .expect("register a map handle");
        mix_loop(t, op, |write, k| {
            if write {
                h.insert(k, k);
            } else {
                std::hint::black_box(h.get(&k));
            }
        })
    });
    let lock_rate = run_mix(threads, |t, op| {
        mix_loop(t, op, |write, k| {
            if write {
                locked.write().expect("lock").insert(k, k);
            } else {
                std::hint::black_box(locked.read().expect("lock").get(&k).copied());
            }
        })
    });
    println!(
        "{} replica(s), {threads} thread(s), {} ops each: ReplicatedHashMap {:>6.1} M ops/s | RwLock<HashMap> {:>6.1} M ops/s | ratio {:.2}x",
        replicated.num_replicas(),
        MAP_OPS_PER_THREAD,
        nr_rate / 1e6,
        lock_rate / 1e6,
        nr_rate / lock_rate
    );
    let stats = replicated.stats();
    println!(
        "nr stats: {} combiner batches (avg {:.1} ops), {} log wraps, {} helping events, max replica lag {}",
        stats.combiner_batches,
        stats.average_batch_size,
        stats.log_wraps,
        stats.helping_events,
        stats.max_replica_lag
    );
}

/// Runs `body(thread, ops)` on `threads` scoped threads and returns operations per second.
fn run_mix(threads: usize, body: impl Fn(usize, usize) + Sync) -> f64 {
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            let body = &body;
            s.spawn(move || body(t, MAP_OPS_PER_THREAD));
        }
    });
    (threads * MAP_OPS_PER_THREAD) as f64 / start.elapsed().as_secs_f64()
}

/// `ops` operations on uniform pseudo-random keys, `MAP_WRITE_PERCENT`% of them writes.
fn mix_loop(thread: usize, ops: usize, mut op: impl FnMut(bool, u64)) {
    let mut x = 0x2545_f491_4f6c_dd1d ^ (thread as u64 + 1);
    for _ in 0..ops {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        op(x % 100 < MAP_WRITE_PERCENT, (x >> 8) % MAP_KEYS);
    }
}

/// Deterministic pseudo-random keys (splitmix64), so every run sorts the same input.
fn random_keys(n: usize, mut seed: u64) -> Vec<u64> {
    (0..n)
        .map(|_| {
            seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = seed;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        })
        .collect()
}

/// Quicksort; with `parallel` the two halves go through `replicore::join`, otherwise they run one
/// after the other, so both timings run the same algorithm (progress counting included).
///
/// `placed` counts keys in their final position: each pivot adds one and each sorted leaf adds
/// its length, so it reaches `v.len()` exactly when the sort is done.
fn quicksort(v: &mut [u64], parallel: bool, placed: &AtomicUsize) {
    if v.len() <= 4096 {
        v.sort_unstable();
        placed.fetch_add(v.len(), Relaxed);
        return;
    }
    let mid = partition(v);
    placed.fetch_add(1, Relaxed);
    let (lo, hi) = v.split_at_mut(mid);
    let hi = &mut hi[1..];
    if parallel {
        replicore::join(
            || quicksort(lo, true, placed),
            || quicksort(hi, true, placed),
        );
    } else {
        quicksort(lo, false, placed);
        quicksort(hi, false, placed);
    }
}

/// Lomuto partition around the median of three; returns the pivot's final index.
fn partition(v: &mut [u64]) -> usize {
    let last = v.len() - 1;
    let mid = v.len() / 2;
    if v[mid] < v[0] {
        v.swap(mid, 0);
    }
    if v[last] < v[0] {
        v.swap(last, 0);
    }
    if v[mid] < v[last] {
        v.swap(mid, last);
    }
    let pivot = v[last];
    let mut store = 0;
    for i in 0..last {
        if v[i] < pivot {
            v.swap(i, store);
            store += 1;
        }
    }
    v.swap(store, last);
    store
}
