//! `broadcast`: run one closure once on every worker of a pool.

use std::sync::Arc;

use super::job::{HeapJob, JobRef, JobResult};
use super::latch::CountLatch;
use super::registry::Registry;
use super::worker::WorkerThread;
use crate::sync::Mutex;

/// What a broadcast closure learns about the worker running it.
///
/// ```
/// let pool = replicore::ThreadPool::builder().num_threads(2).build()?;
/// let mut seen = pool.broadcast(|ctx| (ctx.index(), ctx.num_threads()));
/// seen.sort();
/// assert_eq!(seen, vec![(0, 2), (1, 2)]);
/// # Ok::<(), replicore::BuildError>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct BroadcastContext {
    index: usize,
    num_threads: usize,
}

impl BroadcastContext {
    /// The index of the worker running this call, in `0..num_threads()`.
    ///
    /// ```
    /// let pool = replicore::ThreadPool::builder().num_threads(1).build()?;
    /// assert_eq!(pool.broadcast(|ctx| ctx.index()), vec![0]);
    /// # Ok::<(), replicore::BuildError>(())
    /// ```
    pub fn index(&self) -> usize {
        self.index
    }

    /// The number of workers in the pool, which is the number of calls.
    ///
    /// ```
    /// let pool = replicore::ThreadPool::builder().num_threads(2).build()?;
    /// assert_eq!(pool.broadcast(|ctx| ctx.num_threads()), vec![2, 2]);
    /// # Ok::<(), replicore::BuildError>(())
    /// ```
    pub fn num_threads(&self) -> usize {
        self.num_threads
    }
}

struct Shared<'f, F, R> {
    op: &'f F,
    results: Vec<Mutex<Option<JobResult<R>>>>,
    latch: CountLatch,
}

struct SharedPtr<'f, F, R>(*const Shared<'f, F, R>);
// SAFETY: `Shared` is touched from several workers only through `&F` (`F: Sync`), per-worker
// mutexes and the count latch; the owner waits for every job before it drops `Shared`.
unsafe impl<F: Sync, R: Send> Send for SharedPtr<'_, F, R> {}

/// On worker `worker`: queues one job into every worker's inbox, runs until all are done, and
/// returns the results in worker order (re-raising the first panic).
pub(crate) fn broadcast_on_worker<F, R>(worker: &WorkerThread, op: &F) -> Vec<R>
where
    F: Fn(BroadcastContext) -> R + Sync,
    R: Send,
{
    let registry = &worker.registry;
    let latch = CountLatch::new(Arc::clone(registry), worker.seat);
    broadcast_with(registry, op, latch, |latch| worker.wait_until(&latch.core))
}

/// From a thread outside every pool: queues the jobs straight into the inboxes and blocks until
/// all are done. rayon first sends the broadcast itself to a worker, which then queues the jobs;
/// queuing them here saves that hop, a wake-up and a context switch on the way in.
pub(crate) fn broadcast_from_outside<F, R>(registry: &Registry, op: &F) -> Vec<R>
where
    F: Fn(BroadcastContext) -> R + Sync,
    R: Send,
{
    broadcast_with(
        registry,
        op,
        CountLatch::blocking(),
        CountLatch::wait_blocking,
    )
}

/// The broadcast itself: one job per worker, counted on `latch`, which `wait` waits for.
fn broadcast_with<F, R>(
    registry: &Registry,
    op: &F,
    latch: CountLatch,
    wait: impl FnOnce(&CountLatch),
) -> Vec<R>
where
    F: Fn(BroadcastContext) -> R + Sync,
    R: Send,
{
    let n = registry.num_threads();
    debug_assert!(n > 0);
    let shared = Shared {
        op,
        results: (0..n).map(|_| Mutex::new(None)).collect(),
        latch,
    };
    push_to_inboxes(registry, |ctx| {
        shared.latch.increment();
        let ptr = SharedPtr(&shared);
        let job = move || {
            let ptr = ptr;
            // SAFETY: the owner waits for our decrement before dropping `shared`.
            let shared = unsafe { &*ptr.0 };
            let result = JobResult::call(|| (shared.op)(ctx));
            *shared.results[ctx.index()].lock() = Some(result);
            // SAFETY: last use of `shared` by this job.
            unsafe { CountLatch::decrement(&shared.latch) };
        };
        // SAFETY: the job borrows `shared`, which outlives it (see above).
        unsafe { HeapJob::into_job_ref(job) }
    });
    // SAFETY: drops the owner's reference; `shared` lives until after the wait.
    unsafe { CountLatch::decrement(&shared.latch) };
    wait(&shared.latch);
    let results: Vec<JobResult<R>> = shared
        .results
        .into_iter()
        .map(|m| m.lock().take().expect("every broadcast job ran"))
        .collect();
    results
        .into_iter()
        .map(JobResult::into_return_value)
        .collect()
}

/// Queues one job per worker into that worker's inbox, made by `job_for` from the worker's
/// context, then wakes every worker (each must look at its own inbox).
///
/// Broadcast jobs are not published to any CPU's op log: a job for worker `i` must run on CPU
/// position `i`, and an adopted copy would be re-offered to the shared injectors, where any worker
/// could run it under the wrong index. They are recoverable another way: a worker's inbox belongs
/// to its position in the registry, not to its thread, and a fenced worker never takes from it.
/// When a stalled worker's CPU is taken over, its replacement (same position) drains the
/// inbox. What this does not cover is a worker that *crashes* between taking a broadcast job
/// from its inbox and finishing it (the README lists this under G1).
pub(crate) fn push_to_inboxes(
    registry: &Registry,
    mut job_for: impl FnMut(BroadcastContext) -> JobRef,
) {
    let num_threads = registry.num_threads();
    for index in 0..num_threads {
        let job = job_for(BroadcastContext { index, num_threads });
        registry.workers[index].inbox.push(job);
    }
    registry.sleep.wake_all();
}

/// `spawn_broadcast` on `registry`: queues `op` for every worker without waiting. A panic in a
/// call goes to the pool's panic handler (or stderr), as a panic in `spawn` does.
pub(crate) fn spawn_broadcast_in<OP>(registry: &Registry, op: OP)
where
    OP: Fn(BroadcastContext) + Send + Sync + 'static,
{
    let op = Arc::new(op);
    push_to_inboxes(registry, |ctx| {
        let op = Arc::clone(&op);
        let job = move || {
            if let Err(payload) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| op(ctx)))
                && let Some(w) = WorkerThread::current()
            {
                // Inbox jobs run only on workers of the pool they were queued on.
                w.registry.handle_panic(payload);
            }
        };
        // SAFETY: the closure is `'static`, so it may run at any time.
        unsafe { HeapJob::into_job_ref(job) }
    });
}
