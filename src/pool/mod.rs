//! The work-stealing thread pool.
//!
//! One worker per CPU of a [`Topology`](crate::Topology), each with a LIFO deque; one injector
//! per NUMA node for submissions from outside. An idle worker looks at its own deque, its node's
//! injector, same-node victims (from a random start), then remote nodes by distance, stealing
//! about half a remote victim's queue at once. With nothing found it spins briefly and parks
//! through the [`sleep`] protocol, which never lets a task sit while every worker sleeps.
//!
//! Layout, from the bottom up (no file imports one above it):
//! - leaves: [`job`] (type-erased jobs, logged-task handles), [`sleep`], `stats`, `generations`
//!   (a CPU's deques over time), `spawn_handler`;
//! - `recovery`'s state types (`state`, `logged`, `judge`, `probe`, `threads`);
//! - `registry`: shared per-pool state, one `WorkerPlace` per worker, and the recovery state;
//! - `latch`; `recovery`'s `takeover`, `watch`, `monitor` and `seam`;
//! - `worker` (the scheduling loop), which touches recovery only through the seam;
//! - `join`, `scope`, `broadcast`, `fifo`, `compat`; then `thread_pool` and `builder`.

pub(crate) mod job;
pub(crate) mod sleep;

// Under `--cfg loom` the pool builds on loom's primitives, like the rest of the crate (as
// tokio's runtime does), so a crate that model-checks its own code still sees this API. A pool
// then runs only inside a loom model; the loom suite models the protocol pieces instead.
mod broadcast;
mod builder;
mod compat;
mod fifo;
pub(crate) mod fork;
mod generations;
mod join;
mod latch;
pub(crate) mod recovery;
mod registry;
mod scope;
mod spawn_handler;
mod stats;
mod thread_pool;
mod worker;

pub use self::{
    broadcast::BroadcastContext,
    builder::{
        BuildError, DEFAULT_LEASE, DEFAULT_REPLICATION_FACTOR, MAX_REPLICATION_FACTOR, MAX_THREADS,
        MIN_LEASE, NUM_THREADS_ENV, ThreadPoolBuilder,
    },
    compat::{
        FnContext, broadcast, current_num_threads, current_thread_has_pending_tasks,
        in_place_scope, in_place_scope_fifo, join_context, max_num_threads, scope_fifo,
        spawn_broadcast, spawn_fifo, yield_local,
    },
    fifo::ScopeFifo,
    scope::Scope,
    spawn_handler::ThreadBuilder,
    stats::{PoolStats, SchedulerStats},
    thread_pool::ThreadPool,
};

mod global {
    use std::sync::{Arc, OnceLock};

    use super::registry::Registry;
    use super::{ThreadPool, ThreadPoolBuilder};

    /// The pool behind the free functions when called outside any pool: built by
    /// `ThreadPoolBuilder::build_global`, or on first use. Never shut down, so work spawned onto
    /// it always runs.
    static GLOBAL: OnceLock<ThreadPool> = OnceLock::new();

    pub(super) fn registry() -> &'static Arc<Registry> {
        let pool = GLOBAL.get_or_init(|| {
            ThreadPoolBuilder::new()
                .thread_name(|i| format!("replicore-global-{i}"))
                .build()
                .or_else(|_| {
                    // An unusable detected topology must not make the free functions fail.
                    ThreadPoolBuilder::new()
                        .topology(crate::Topology::fallback())
                        .pin_workers(false)
                        .build()
                })
                .unwrap_or_else(|e| panic!("replicore: cannot start the global pool: {e}"))
        });
        pool.registry()
    }

    pub(super) fn is_initialized() -> bool {
        GLOBAL.get().is_some()
    }

    /// Installs `pool` as the global pool; gives it back if one was installed first.
    pub(super) fn set(pool: ThreadPool) -> Result<(), ThreadPool> {
        GLOBAL.set(pool)
    }
}

/// The registry of the pool the caller runs on, or the global pool's.
///
/// Borrowed, not cloned: a clone and its drop are two locked instructions on a line every
/// spawning worker shares, once per `spawn` (the drop alone took two thirds of `spawn`'s own
/// samples in a profile of 20,000 spawns from a task). The borrow is as long-lived as [`WorkerThread::current`]'s:
/// the worker outlives every call made on its thread.
///
/// [`WorkerThread::current`]: worker::WorkerThread::current
fn current_registry() -> &'static std::sync::Arc<registry::Registry> {
    match worker::WorkerThread::current() {
        Some(w) => &w.registry,
        None => global::registry(),
    }
}

/// Runs `a` and `b`, potentially in parallel, on the current worker's pool (or the global pool
/// outside any pool). A panic in either is re-raised after both finished; if both panic, `a`'s.
///
/// On a worker, `b` runs first, on the calling thread, and `a` either runs after it (most joins:
/// two plain calls, when no other worker could take `a`) or is offered to other workers while
/// `b` runs. rayon runs `a` first and offers `b`; code should rely on neither order, and one half
/// must not wait for the other (see `ARCHITECTURE.md`, "A join").
///
/// ```
/// fn fib(n: u32) -> u64 {
///     if n < 2 { return n as u64; }
///     let (a, b) = replicore::join(|| fib(n - 1), || fib(n - 2));
///     a + b
/// }
/// assert_eq!(fib(20), 6765);
/// ```
#[inline]
pub fn join<A, B, RA, RB>(a: A, b: B) -> (RA, RB)
where
    A: FnOnce() -> RA + Send,
    B: FnOnce() -> RB + Send,
    RA: Send,
    RB: Send,
{
    match worker::WorkerThread::current() {
        Some(w) => join::join_on_worker(w, a, b),
        None => thread_pool::in_worker(global::registry(), |w| join::join_on_worker(w, a, b)),
    }
}

/// Creates a [`Scope`] on the current worker's pool (or the global pool outside any pool).
///
/// ```
/// let mut v = vec![0; 3];
/// replicore::scope(|s| {
///     for (i, x) in v.iter_mut().enumerate() {
///         s.spawn(move |_| *x = i);
///     }
/// });
/// assert_eq!(v, [0, 1, 2]);
/// ```
pub fn scope<'scope, OP, R>(op: OP) -> R
where
    OP: FnOnce(&Scope<'scope>) -> R + Send,
    R: Send,
{
    match worker::WorkerThread::current() {
        Some(w) => scope::scope_on_worker(w, op),
        None => thread_pool::in_worker(global::registry(), |w| scope::scope_on_worker(w, op)),
    }
}

/// Queues `task` on the current worker's pool (or the global pool outside any pool). It always
/// runs: the global pool is never shut down, and a pool drains accepted work before exiting.
///
/// ```
/// let (tx, rx) = std::sync::mpsc::channel();
/// replicore::spawn(move || tx.send("done").unwrap());
/// assert_eq!(rx.recv().unwrap(), "done");
/// ```
pub fn spawn<F>(task: F)
where
    F: FnOnce() + Send + 'static,
{
    thread_pool::spawn_in(current_registry(), task);
}

/// The index of the pool worker running the caller, or `None` outside any pool.
///
/// ```
/// assert_eq!(replicore::current_thread_index(), None);
/// let pool = replicore::ThreadPool::builder().num_threads(2).build()?;
/// assert!(pool.install(replicore::current_thread_index).is_some());
/// # Ok::<(), replicore::BuildError>(())
/// ```
pub fn current_thread_index() -> Option<usize> {
    worker::WorkerThread::current().map(|w| w.index)
}

/// What [`yield_now`] did.
///
/// ```
/// let pool = replicore::ThreadPool::builder().num_threads(1).build()?;
/// let y = pool.install(replicore::yield_now);
/// assert_eq!(y, Some(replicore::Yield::Idle), "nothing else was queued");
/// # Ok::<(), replicore::BuildError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Yield {
    /// One pending task was found and run to completion (with whatever it forked).
    Executed,
    /// No pending task was found: consider `std::thread::yield_now` in a polling loop.
    Idle,
}

/// Cooperatively yields to the pool: on a pool worker, finds one pending task (own deque, inbox,
/// injectors, then other workers, as an idle worker would) and runs it. Returns `None` on a
/// thread that is not a pool worker.
///
/// It is also a scheduling point: it renews the worker's lease. A long computation is not taken
/// over anyway where the pool can see that its thread is running (Linux); calling this now and
/// then (say, once per outer loop turn) also keeps it from being mistaken for a stalled worker
/// elsewhere, and lets the tasks queued behind it run meanwhile. A worker whose lease a
/// successor already fenced takes no new work here (G4) and returns `Some(Yield::Idle)`.
///
/// ```
/// use std::sync::atomic::{AtomicBool, Ordering};
/// let pool = replicore::ThreadPool::builder().num_threads(1).build()?;
/// let ran = AtomicBool::new(false);
/// pool.install(|| {
///     replicore::scope(|s| {
///         s.spawn(|_| ran.store(true, Ordering::SeqCst));
///         // The one worker is busy here, so the spawned task can only run through the yield.
///         while !ran.load(Ordering::SeqCst) {
///             replicore::yield_now();
///         }
///     })
/// });
/// assert_eq!(replicore::yield_now(), None, "not on a pool worker");
/// # Ok::<(), replicore::BuildError>(())
/// ```
pub fn yield_now() -> Option<Yield> {
    worker::WorkerThread::current().map(worker::WorkerThread::yield_now)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::{CpuId, NodeId};

    #[test]
    fn worker_location_follows_the_synthetic_topology() {
        let current_worker_location = crate::topology::current_location;
        assert_eq!(current_worker_location(), None);
        let topo: crate::Topology = "numa:2 core:1 pu:1".parse().unwrap();
        let pool = ThreadPool::builder().topology(topo).build().unwrap();
        let locations = pool.broadcast(|_| current_worker_location());
        assert_eq!(
            locations,
            vec![Some((CpuId(0), NodeId(0))), Some((CpuId(1), NodeId(1)))]
        );
    }
}
