//! `broadcast`: run one closure once on every worker of a pool.

use std::sync::Arc;

use super::job::{HeapJob, JobResult};
use super::latch::CountLatch;
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
    let n = registry.num_threads();
    let shared = Shared {
        op,
        results: (0..n).map(|_| Mutex::new(None)).collect(),
        latch: CountLatch::new(Arc::clone(registry), worker.seat),
    };
    for index in 0..n {
        shared.latch.increment();
        let ptr = SharedPtr(&shared);
        let job = move || {
            let ptr = ptr;
            // SAFETY: the owner waits for our decrement before dropping `shared`.
            let shared = unsafe { &*ptr.0 };
            let ctx = BroadcastContext {
                index,
                num_threads: n,
            };
            let result = JobResult::call(|| (shared.op)(ctx));
            *shared.results[index].lock() = Some(result);
            // SAFETY: last use of `shared` by this job.
            unsafe { CountLatch::decrement(&shared.latch) };
        };
        // SAFETY: the job borrows `shared`, which outlives it (see above).
        let job_ref = unsafe { HeapJob::into_job_ref(job) };
        registry.slots[index].inbox.push(job_ref);
    }
    // Every worker must look at its inbox: wake them all.
    registry.sleep.wake_all();
    // SAFETY: drops the owner's reference; `shared` lives until after the wait.
    unsafe { CountLatch::decrement(&shared.latch) };
    worker.wait_until(&shared.latch.core);
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
