//! Pool benchmarks: replicore against rayon, tokio (multi-thread runtime) and chili (heartbeat
//! scheduling), same thread count, side by side in one criterion group per case. Every pool is
//! built once, outside `b.iter`.
//!
//! `cargo bench --bench pool`. fib, the tree sum, the unbalanced join and quicksort are
//! fork-join (`join`), which tokio does not have; fib, the tree sum and the unbalanced join also
//! run on chili. The spawn, ping-pong and yield cases compare against rayon and tokio.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{SyncSender, sync_channel};
use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};

const THREADS: usize = 2;
const SPAWNS: usize = 10_000;
const CHAIN: usize = 1_000;

fn replicore_pool() -> replicore::ThreadPool {
    replicore::ThreadPool::builder()
        .num_threads(THREADS)
        .build()
        .unwrap()
}

fn rayon_pool() -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(THREADS)
        .build()
        .unwrap()
}

/// chili's pool counts the calling thread: `thread_count` 2 is one pool thread plus the bench
/// thread, which runs the root of each `join` tree.
fn chili_pool() -> chili::ThreadPool {
    chili::ThreadPool::with_config(chili::Config {
        thread_count: std::num::NonZeroUsize::new(THREADS),
        ..Default::default()
    })
}

fn tokio_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(THREADS)
        .build()
        .unwrap()
}

fn configure<'a>(
    c: &'a mut Criterion,
    name: &str,
) -> criterion::BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut g = c.benchmark_group(name);
    g.sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    g
}

fn fib_replicore(n: u32) -> u64 {
    if n < 2 {
        return n as u64;
    }
    let (a, b) = replicore::join(|| fib_replicore(n - 1), || fib_replicore(n - 2));
    a + b
}

fn fib_rayon(n: u32) -> u64 {
    if n < 2 {
        return n as u64;
    }
    let (a, b) = rayon::join(|| fib_rayon(n - 1), || fib_rayon(n - 2));
    a + b
}

fn fib_chili(n: u32, s: &mut chili::Scope<'_>) -> u64 {
    if n < 2 {
        return n as u64;
    }
    let (a, b) = s.join(|s| fib_chili(n - 1, s), |s| fib_chili(n - 2, s));
    a + b
}

fn fib(c: &mut Criterion) {
    let (rp, ry, ch) = (replicore_pool(), rayon_pool(), chili_pool());
    let mut g = configure(c, "fib_30");
    g.bench_function("replicore", |b| b.iter(|| rp.install(|| fib_replicore(30))));
    g.bench_function("rayon", |b| b.iter(|| ry.install(|| fib_rayon(30))));
    g.bench_function("chili", |b| b.iter(|| fib_chili(30, &mut ch.scope())));
    g.finish();
}

/// A binary tree node, as in chili's own benchmark.
struct Node {
    val: u64,
    left: Option<Box<Node>>,
    right: Option<Box<Node>>,
}

impl Node {
    /// A full tree with `layers` layers: `2^layers - 1` nodes.
    fn tree(layers: u32) -> Node {
        Node {
            val: 1,
            left: (layers > 1).then(|| Box::new(Node::tree(layers - 1))),
            right: (layers > 1).then(|| Box::new(Node::tree(layers - 1))),
        }
    }
}

fn sum_replicore(node: &Node) -> u64 {
    let (l, r) = replicore::join(
        || node.left.as_deref().map_or(0, sum_replicore),
        || node.right.as_deref().map_or(0, sum_replicore),
    );
    node.val + l + r
}

fn sum_rayon(node: &Node) -> u64 {
    let (l, r) = rayon::join(
        || node.left.as_deref().map_or(0, sum_rayon),
        || node.right.as_deref().map_or(0, sum_rayon),
    );
    node.val + l + r
}

fn sum_chili(node: &Node, s: &mut chili::Scope<'_>) -> u64 {
    let (l, r) = s.join(
        |s| node.left.as_deref().map_or(0, |n| sum_chili(n, s)),
        |s| node.right.as_deref().map_or(0, |n| sum_chili(n, s)),
    );
    node.val + l + r
}

/// chili's own workload: the sum over a binary tree of 2^20 nodes (one `join` per node).
fn tree_sum(c: &mut Criterion) {
    let (rp, ry, ch) = (replicore_pool(), rayon_pool(), chili_pool());
    let tree = Node::tree(20);
    let nodes = (1u64 << 20) - 1;
    let mut g = configure(c, "tree_sum_2_20");
    g.bench_function("replicore", |b| {
        b.iter(|| assert_eq!(rp.install(|| sum_replicore(&tree)), nodes))
    });
    g.bench_function("rayon", |b| {
        b.iter(|| assert_eq!(ry.install(|| sum_rayon(&tree)), nodes))
    });
    g.bench_function("chili", |b| {
        b.iter(|| assert_eq!(sum_chili(&tree, &mut ch.scope()), nodes))
    });
    g.finish();
}

/// Busy for `d` (no scheduling point): a leaf of real work.
fn compute_for(d: Duration) {
    let t0 = std::time::Instant::now();
    while t0.elapsed() < d {
        std::hint::spin_loop();
    }
}

/// The unbalanced join's leaves: the left half is one 10 ms leaf, the right half 1,000 leaves of
/// 10 µs split by halves, so that the right half is only fast if it starts at once elsewhere.
const LONG_LEAF: Duration = Duration::from_millis(10);
const SMALL_LEAVES: usize = 1_000;
const SMALL_LEAF: Duration = Duration::from_micros(10);

fn halves_replicore(n: usize) {
    if n == 1 {
        return compute_for(SMALL_LEAF);
    }
    replicore::join(|| halves_replicore(n / 2), || halves_replicore(n - n / 2));
}

fn halves_rayon(n: usize) {
    if n == 1 {
        return compute_for(SMALL_LEAF);
    }
    rayon::join(|| halves_rayon(n / 2), || halves_rayon(n - n / 2));
}

fn halves_chili(n: usize, s: &mut chili::Scope<'_>) {
    if n == 1 {
        return compute_for(SMALL_LEAF);
    }
    s.join(|s| halves_chili(n / 2, s), |s| halves_chili(n - n / 2, s));
}

/// Pure heartbeat scheduling's weak spot: a join whose first half is one long leaf.
fn unbalanced_join(c: &mut Criterion) {
    let (rp, ry, ch) = (replicore_pool(), rayon_pool(), chili_pool());
    let mut g = configure(c, "unbalanced_join");
    g.bench_function("replicore", |b| {
        b.iter(|| {
            rp.install(|| {
                replicore::join(|| compute_for(LONG_LEAF), || halves_replicore(SMALL_LEAVES))
            })
        })
    });
    g.bench_function("rayon", |b| {
        b.iter(|| {
            ry.install(|| rayon::join(|| compute_for(LONG_LEAF), || halves_rayon(SMALL_LEAVES)))
        })
    });
    g.bench_function("chili", |b| {
        b.iter(|| {
            ch.scope().join(
                |_| compute_for(LONG_LEAF),
                |s| halves_chili(SMALL_LEAVES, s),
            )
        })
    });
    g.finish();
}

/// Counts finished tasks down; the last one signals the waiting bench thread.
struct Countdown {
    left: AtomicUsize,
    done: SyncSender<()>,
}

impl Countdown {
    fn new(n: usize) -> (Arc<Self>, std::sync::mpsc::Receiver<()>) {
        let (done, rx) = sync_channel(1);
        (
            Arc::new(Countdown {
                left: AtomicUsize::new(n),
                done,
            }),
            rx,
        )
    }

    fn tick(&self) {
        if self.left.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.done.send(()).unwrap();
        }
    }
}

fn spawn_many(c: &mut Criterion) {
    let (rp, ry, rt) = (replicore_pool(), rayon_pool(), tokio_rt());
    let mut g = configure(c, "spawn_many_inside");
    g.bench_function("replicore", |b| {
        b.iter(|| {
            let (cd, rx) = Countdown::new(SPAWNS);
            rp.spawn(move || {
                for _ in 0..SPAWNS {
                    let cd = cd.clone();
                    replicore::spawn(move || cd.tick());
                }
            });
            rx.recv().unwrap();
        })
    });
    g.bench_function("rayon", |b| {
        b.iter(|| {
            let (cd, rx) = Countdown::new(SPAWNS);
            ry.spawn(move || {
                for _ in 0..SPAWNS {
                    let cd = cd.clone();
                    rayon::spawn(move || cd.tick());
                }
            });
            rx.recv().unwrap();
        })
    });
    g.bench_function("tokio", |b| {
        b.iter(|| {
            let (cd, rx) = Countdown::new(SPAWNS);
            rt.spawn(async move {
                for _ in 0..SPAWNS {
                    let cd = cd.clone();
                    tokio::spawn(async move { cd.tick() });
                }
            });
            rx.recv().unwrap();
        })
    });
    g.finish();

    let mut g = configure(c, "spawn_many_outside");
    g.bench_function("replicore", |b| {
        b.iter(|| {
            let (cd, rx) = Countdown::new(SPAWNS);
            for _ in 0..SPAWNS {
                let cd = cd.clone();
                rp.spawn(move || cd.tick());
            }
            rx.recv().unwrap();
        })
    });
    g.bench_function("rayon", |b| {
        b.iter(|| {
            let (cd, rx) = Countdown::new(SPAWNS);
            for _ in 0..SPAWNS {
                let cd = cd.clone();
                ry.spawn(move || cd.tick());
            }
            rx.recv().unwrap();
        })
    });
    g.bench_function("tokio", |b| {
        b.iter(|| {
            let (cd, rx) = Countdown::new(SPAWNS);
            for _ in 0..SPAWNS {
                let cd = cd.clone();
                rt.spawn(async move { cd.tick() });
            }
            rx.recv().unwrap();
        })
    });
    g.finish();
}

fn chain_replicore(n: usize, done: SyncSender<()>) {
    if n == 0 {
        done.send(()).unwrap();
    } else {
        replicore::spawn(move || chain_replicore(n - 1, done));
    }
}

fn chain_rayon(n: usize, done: SyncSender<()>) {
    if n == 0 {
        done.send(()).unwrap();
    } else {
        rayon::spawn(move || chain_rayon(n - 1, done));
    }
}

fn chain_tokio(n: usize, done: SyncSender<()>) {
    if n == 0 {
        done.send(()).unwrap();
    } else {
        tokio::spawn(async move { chain_tokio(n - 1, done) });
    }
}

fn chained_spawn(c: &mut Criterion) {
    let (rp, ry, rt) = (replicore_pool(), rayon_pool(), tokio_rt());
    let mut g = configure(c, "chained_spawn");
    g.bench_function("replicore", |b| {
        b.iter(|| {
            let (tx, rx) = sync_channel(1);
            rp.spawn(move || chain_replicore(CHAIN, tx));
            rx.recv().unwrap();
        })
    });
    g.bench_function("rayon", |b| {
        b.iter(|| {
            let (tx, rx) = sync_channel(1);
            ry.spawn(move || chain_rayon(CHAIN, tx));
            rx.recv().unwrap();
        })
    });
    g.bench_function("tokio", |b| {
        b.iter(|| {
            let (tx, rx) = sync_channel(1);
            rt.spawn(async move { chain_tokio(CHAIN, tx) });
            rx.recv().unwrap();
        })
    });
    g.finish();
}

/// Lomuto partition around the last element; returns the pivot's final index.
fn partition(v: &mut [u32]) -> usize {
    let pivot = v.len() - 1;
    let mut i = 0;
    for j in 0..pivot {
        if v[j] <= v[pivot] {
            v.swap(i, j);
            i += 1;
        }
    }
    v.swap(i, pivot);
    i
}

macro_rules! quicksort_with {
    ($name:ident, $join:path) => {
        fn $name(v: &mut [u32]) {
            if v.len() <= 1024 {
                v.sort_unstable();
                return;
            }
            let mid = partition(v);
            let (lo, hi) = v.split_at_mut(mid);
            $join(|| $name(lo), || $name(&mut hi[1..]));
        }
    };
}
quicksort_with!(quicksort_replicore, replicore::join);
quicksort_with!(quicksort_rayon, rayon::join);

fn random_u32s(n: usize) -> Vec<u32> {
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u32
        })
        .collect()
}

fn quicksort(c: &mut Criterion) {
    let (rp, ry) = (replicore_pool(), rayon_pool());
    let data = random_u32s(1_000_000);
    let mut g = configure(c, "quicksort_1m");
    g.bench_function("replicore", |b| {
        b.iter_batched_ref(
            || data.clone(),
            |v| rp.install(|| quicksort_replicore(v)),
            BatchSize::LargeInput,
        )
    });
    g.bench_function("rayon", |b| {
        b.iter_batched_ref(
            || data.clone(),
            |v| ry.install(|| quicksort_rayon(v)),
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

fn scope_fanout(c: &mut Criterion) {
    let (rp, ry, rt) = (replicore_pool(), rayon_pool(), tokio_rt());
    let mut g = configure(c, "scope_fanout_10k");
    g.bench_function("replicore", |b| {
        b.iter(|| {
            let n = AtomicUsize::new(0);
            rp.scope(|s| {
                for _ in 0..SPAWNS {
                    s.spawn(|_| {
                        n.fetch_add(1, Ordering::Relaxed);
                    });
                }
            });
            assert_eq!(n.into_inner(), SPAWNS);
        })
    });
    g.bench_function("rayon", |b| {
        b.iter(|| {
            let n = AtomicUsize::new(0);
            ry.scope(|s| {
                for _ in 0..SPAWNS {
                    s.spawn(|_| {
                        n.fetch_add(1, Ordering::Relaxed);
                    });
                }
            });
            assert_eq!(n.into_inner(), SPAWNS);
        })
    });
    // tokio has no borrowing scope: the closest is a JoinSet of 'static tasks awaited together.
    g.bench_function("tokio", |b| {
        b.iter(|| {
            let n = Arc::new(AtomicUsize::new(0));
            let n2 = n.clone();
            rt.block_on(async move {
                let mut set = tokio::task::JoinSet::new();
                for _ in 0..SPAWNS {
                    let n = n2.clone();
                    set.spawn(async move {
                        n.fetch_add(1, Ordering::Relaxed);
                    });
                }
                while set.join_next().await.is_some() {}
            });
            assert_eq!(n.load(Ordering::Relaxed), SPAWNS);
        })
    });
    g.finish();
}

const PINGS: usize = 1_000;
const YIELDERS: usize = 200;
const YIELDS: usize = 100;

/// One ping: spawn the pong, then wait for its answer by yielding to the pool. A thread pool has
/// no `await`: replicore and rayon wait with `yield_now`, which runs queued tasks (often the pong
/// itself) meanwhile; tokio awaits a oneshot. 1000 pings from outside, concurrently.
fn ping_pong(c: &mut Criterion) {
    use std::sync::atomic::AtomicBool;
    let (rp, ry, rt) = (replicore_pool(), rayon_pool(), tokio_rt());
    let mut g = configure(c, "ping_pong_1k");
    g.bench_function("replicore", |b| {
        b.iter(|| {
            let (cd, rx) = Countdown::new(PINGS);
            for _ in 0..PINGS {
                let cd = cd.clone();
                rp.spawn(move || {
                    let answered = Arc::new(AtomicBool::new(false));
                    let pong = answered.clone();
                    replicore::spawn(move || pong.store(true, Ordering::Release));
                    while !answered.load(Ordering::Acquire) {
                        if replicore::yield_now() == Some(replicore::Yield::Idle) {
                            std::thread::yield_now();
                        }
                    }
                    cd.tick();
                });
            }
            rx.recv().unwrap();
        })
    });
    g.bench_function("rayon", |b| {
        b.iter(|| {
            let (cd, rx) = Countdown::new(PINGS);
            for _ in 0..PINGS {
                let cd = cd.clone();
                ry.spawn(move || {
                    let answered = Arc::new(AtomicBool::new(false));
                    let pong = answered.clone();
                    rayon::spawn(move || pong.store(true, Ordering::Release));
                    while !answered.load(Ordering::Acquire) {
                        if rayon::yield_now() == Some(rayon::Yield::Idle) {
                            std::thread::yield_now();
                        }
                    }
                    cd.tick();
                });
            }
            rx.recv().unwrap();
        })
    });
    g.bench_function("tokio", |b| {
        b.iter(|| {
            let (cd, rx) = Countdown::new(PINGS);
            for _ in 0..PINGS {
                let cd = cd.clone();
                rt.spawn(async move {
                    let (tx, answer) = tokio::sync::oneshot::channel();
                    tokio::spawn(async move { tx.send(()).unwrap() });
                    answer.await.unwrap();
                    cd.tick();
                });
            }
            rx.recv().unwrap();
        })
    });
    g.finish();
}

/// 200 tasks from outside, each yielding to its scheduler 100 times (tokio's `yield_many`
/// shape). replicore and rayon run another queued task inside each yield when there is one;
/// tokio re-queues the yielding task.
fn yield_many(c: &mut Criterion) {
    let (rp, ry, rt) = (replicore_pool(), rayon_pool(), tokio_rt());
    let mut g = configure(c, "yield_many");
    g.bench_function("replicore", |b| {
        b.iter(|| {
            let (cd, rx) = Countdown::new(YIELDERS);
            for _ in 0..YIELDERS {
                let cd = cd.clone();
                rp.spawn(move || {
                    for _ in 0..YIELDS {
                        std::hint::black_box(replicore::yield_now());
                    }
                    cd.tick();
                });
            }
            rx.recv().unwrap();
        })
    });
    g.bench_function("rayon", |b| {
        b.iter(|| {
            let (cd, rx) = Countdown::new(YIELDERS);
            for _ in 0..YIELDERS {
                let cd = cd.clone();
                ry.spawn(move || {
                    for _ in 0..YIELDS {
                        std::hint::black_box(rayon::yield_now());
                    }
                    cd.tick();
                });
            }
            rx.recv().unwrap();
        })
    });
    g.bench_function("tokio", |b| {
        b.iter(|| {
            let (cd, rx) = Countdown::new(YIELDERS);
            for _ in 0..YIELDERS {
                let cd = cd.clone();
                rt.spawn(async move {
                    for _ in 0..YIELDS {
                        tokio::task::yield_now().await;
                    }
                    cd.tick();
                });
            }
            rx.recv().unwrap();
        })
    });
    g.finish();
}

criterion_group!(
    benches,
    fib,
    tree_sum,
    unbalanced_join,
    spawn_many,
    chained_spawn,
    quicksort,
    scope_fanout,
    ping_pong,
    yield_many
);
criterion_main!(benches);
