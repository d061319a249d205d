//! The pool handle and how calls get onto a worker.

use std::sync::Arc;
use std::thread::JoinHandle;

use super::broadcast::{BroadcastContext, broadcast_from_outside, broadcast_on_worker};
use super::job::StackJob;
use super::join::join_on_worker;
use super::latch::{LockLatch, SpinLatch};
use super::recovery::logged::Spawned;
use super::recovery::seam::publish_external;
use super::registry::Registry;
use super::scope::{Scope, scope_on_worker};
use super::stats::PoolStats;
use super::worker::WorkerThread;

/// A work-stealing thread pool with one worker per CPU of its [`Topology`](crate::Topology).
///
/// **Drop and shutdown.** Nothing accepted is ever dropped: the workers finish all accepted work,
/// including tasks those tasks spawn, before they exit. Dropping the pool tells them to do so and
/// returns at once, without waiting (as rayon-core's pool does), so a drop never deadlocks on
/// workers that wait for the dropping thread; the queued work still runs in the background.
/// [`shutdown`](Self::shutdown) is the call that waits for it all and joins the threads. The
/// one drop that may run work is that of a one-worker
/// [`use_current_thread`](crate::ThreadPoolBuilder::use_current_thread) pool on its building thread:
/// that thread is the only worker, so it runs the queued work before it leaves.
///
/// ```
/// let pool = replicore::ThreadPool::builder().num_threads(2).build()?;
/// let (a, b) = pool.join(|| 1 + 1, || 2 + 2);
/// assert_eq!((a, b), (2, 4));
/// # Ok::<(), replicore::BuildError>(())
/// ```
pub struct ThreadPool {
    registry: Arc<Registry>,
    monitor: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for ThreadPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThreadPool")
            .field("num_threads", &self.registry.num_threads())
            .finish_non_exhaustive()
    }
}

impl ThreadPool {
    pub(crate) fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    pub(crate) fn from_parts(registry: Arc<Registry>, monitor: JoinHandle<()>) -> Self {
        ThreadPool {
            registry,
            monitor: Some(monitor),
        }
    }

    /// Runs `op` on a worker of this pool and returns its result (re-raising its panic). Called
    /// from a worker of another pool, that worker keeps running its own pool's tasks meanwhile,
    /// so nested pools do not deadlock.
    ///
    /// ```
    /// let pool = replicore::ThreadPool::builder().num_threads(2).build()?;
    /// let idx = pool.install(|| replicore::current_thread_index());
    /// assert!(idx.unwrap() < 2);
    /// # Ok::<(), replicore::BuildError>(())
    /// ```
    pub fn install<OP, R>(&self, op: OP) -> R
    where
        OP: FnOnce() -> R + Send,
        R: Send,
    {
        in_worker(&self.registry, |_| op())
    }

    /// Runs `a` and `b`, potentially in parallel, and returns both results. A panic in either is
    /// re-raised after both have finished. As with [`join`](crate::join), `b` runs first on the
    /// worker and `a` may be offered to the others.
    ///
    /// ```
    /// let pool = replicore::ThreadPool::builder().num_threads(2).build()?;
    /// assert_eq!(pool.join(|| "a", || "b"), ("a", "b"));
    /// # Ok::<(), replicore::BuildError>(())
    /// ```
    pub fn join<A, B, RA, RB>(&self, a: A, b: B) -> (RA, RB)
    where
        A: FnOnce() -> RA + Send,
        B: FnOnce() -> RB + Send,
        RA: Send,
        RB: Send,
    {
        in_worker(&self.registry, |w| join_on_worker(w, a, b))
    }

    /// Creates a [`Scope`] whose spawned tasks may borrow from the caller's stack; returns once
    /// all of them finished, re-raising the first panic.
    ///
    /// ```
    /// let pool = replicore::ThreadPool::builder().num_threads(2).build()?;
    /// let data = vec![1, 2, 3];
    /// let mut sum = 0;
    /// pool.scope(|s| s.spawn(|_| sum = data.iter().sum()));
    /// assert_eq!(sum, 6);
    /// # Ok::<(), replicore::BuildError>(())
    /// ```
    pub fn scope<'scope, OP, R>(&self, op: OP) -> R
    where
        OP: FnOnce(&Scope<'scope>) -> R + Send,
        R: Send,
    {
        in_worker(&self.registry, |w| scope_on_worker(w, op))
    }

    /// Queues `task` to run on the pool, without waiting. A panic in it goes to the panic handler
    /// (or stderr); the worker survives.
    ///
    /// ```
    /// let pool = replicore::ThreadPool::builder().num_threads(2).build()?;
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// pool.spawn(move || tx.send(7).unwrap());
    /// assert_eq!(rx.recv().unwrap(), 7);
    /// # Ok::<(), replicore::BuildError>(())
    /// ```
    pub fn spawn<F>(&self, task: F)
    where
        F: FnOnce() + Send + 'static,
    {
        spawn_in(&self.registry, task);
    }

    /// Runs `op` once on every worker and returns the results in worker-index order.
    ///
    /// ```
    /// let pool = replicore::ThreadPool::builder().num_threads(2).build()?;
    /// assert_eq!(pool.broadcast(|ctx| ctx.index() * 10), vec![0, 10]);
    /// # Ok::<(), replicore::BuildError>(())
    /// ```
    pub fn broadcast<OP, R>(&self, op: OP) -> Vec<R>
    where
        OP: Fn(BroadcastContext) -> R + Sync,
        R: Send,
    {
        match WorkerThread::current() {
            None => broadcast_from_outside(&self.registry, &op),
            Some(_) => in_worker(&self.registry, |w| broadcast_on_worker(w, &op)),
        }
    }

    /// The number of workers.
    ///
    /// ```
    /// let pool = replicore::ThreadPool::builder().num_threads(2).build()?;
    /// assert_eq!(pool.current_num_threads(), 2);
    /// # Ok::<(), replicore::BuildError>(())
    /// ```
    pub fn current_num_threads(&self) -> usize {
        self.registry.num_threads()
    }

    /// How many neighbour CPUs replicate each CPU's run queue (see
    /// [`ThreadPoolBuilder::replication_factor`](crate::ThreadPoolBuilder::replication_factor)).
    ///
    /// ```
    /// let pool = replicore::ThreadPool::builder().num_threads(2).build()?;
    /// assert_eq!(pool.replication_factor(), 1);
    /// let solo = replicore::ThreadPool::builder().num_threads(1).build()?;
    /// assert_eq!(solo.replication_factor(), 0, "no neighbour to replicate to");
    /// # Ok::<(), replicore::BuildError>(())
    /// ```
    pub fn replication_factor(&self) -> usize {
        self.registry.config.replication_factor
    }

    /// The lease after which a blocked worker that reached no scheduling point is taken over
    /// (see [`ThreadPoolBuilder::lease`](crate::ThreadPoolBuilder::lease)).
    ///
    /// ```
    /// let pool = replicore::ThreadPool::builder().num_threads(1).build()?;
    /// assert_eq!(pool.lease(), replicore::DEFAULT_LEASE);
    /// # Ok::<(), replicore::BuildError>(())
    /// ```
    pub fn lease(&self) -> std::time::Duration {
        self.registry.config.lease
    }

    /// The cap on replacement worker threads (see [`ThreadPoolBuilder::max_spare_threads`](crate::ThreadPoolBuilder::max_spare_threads)).
    ///
    /// ```
    /// let pool = replicore::ThreadPool::builder().num_threads(2).build()?;
    /// assert_eq!(pool.max_spare_threads(), 2);
    /// # Ok::<(), replicore::BuildError>(())
    /// ```
    pub fn max_spare_threads(&self) -> usize {
        self.registry.config.max_spare_threads
    }

    /// A snapshot of the scheduler counters, summed over the workers.
    ///
    /// ```
    /// let pool = replicore::ThreadPool::builder().num_threads(2).build()?;
    /// pool.install(|| ());
    /// assert!(pool.stats().scheduler.injector_pops >= 1);
    /// # Ok::<(), replicore::BuildError>(())
    /// ```
    pub fn stats(&self) -> PoolStats {
        let mut total = PoolStats::default();
        for place in self.registry.workers.iter() {
            total.scheduler.add(&place.stats);
        }
        total.recovery = self.registry.recovery.protocol.snapshot();
        total
    }

    /// Waits for all accepted work (including work it spawns), then stops and joins the workers.
    ///
    /// "All accepted work" includes tasks spawned, after this call began, by tasks still running
    /// on workers that a takeover fenced: shutdown waits for those workers to finish their task.
    /// Called on one of the pool's own workers (the pool was moved into one of its tasks), it
    /// cannot wait for its own thread: it then behaves like a drop. Called on the thread that
    /// built the pool with [`use_current_thread`](crate::ThreadPoolBuilder::use_current_thread)
    /// (outside the pool's tasks), that thread first runs queued work, then leaves the pool
    /// (its queued tasks go to the other workers), and then waits as usual.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    /// let pool = replicore::ThreadPool::builder().num_threads(2).build()?;
    /// let n = Arc::new(AtomicUsize::new(0));
    /// for _ in 0..100 {
    ///     let n = n.clone();
    ///     pool.spawn(move || { n.fetch_add(1, Ordering::Relaxed); });
    /// }
    /// pool.shutdown();
    /// assert_eq!(n.load(Ordering::Relaxed), 100);
    /// # Ok::<(), replicore::BuildError>(())
    /// ```
    pub fn shutdown(mut self) {
        // On the thread that built a `use_current_thread` pool, that thread is worker 0: it
        // runs what it can find, leaves the pool, and then waits like any other thread.
        WorkerThread::leave_caller(&self.registry, true);
        if self.on_own_worker() {
            return; // `drop` tells the workers to drain.
        }
        self.registry.shut_down(self.monitor.take());
    }

    fn on_own_worker(&self) -> bool {
        WorkerThread::current().is_some_and(|w| Arc::ptr_eq(&w.registry, &self.registry))
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        // The workers drain every queue and exit by themselves; the monitor keeps watching them
        // meanwhile and exits after the last one (see `monitor`). Nothing here waits, except on
        // the thread that built a `use_current_thread` pool of one worker: that thread is the
        // only worker, so it runs the queued work before it leaves the pool.
        WorkerThread::leave_caller(&self.registry, self.registry.num_threads() == 1);
        self.registry.terminate();
        drop(self.monitor.take());
    }
}

/// Runs `op` on a worker of `registry`: directly if we are one, else by injecting a job and
/// waiting (a foreign worker keeps working meanwhile; any other thread blocks).
pub(crate) fn in_worker<OP, R>(registry: &Arc<Registry>, op: OP) -> R
where
    OP: FnOnce(&WorkerThread) -> R + Send,
    R: Send,
{
    match WorkerThread::current() {
        Some(w) if Arc::ptr_eq(&w.registry, registry) => op(w),
        Some(w) => {
            let job = StackJob::new(
                || op(WorkerThread::current().expect("injected jobs run on workers")),
                SpinLatch::cross(&w.registry, w.seat),
            );
            // SAFETY: `job` outlives the handle: we wait for its latch before returning.
            registry.inject(unsafe { job.as_job_ref() });
            w.wait_until(&job.latch.core);
            job.into_result()
        }
        None => {
            let job = StackJob::new(
                || op(WorkerThread::current().expect("injected jobs run on workers")),
                LockLatch::default(),
            );
            // SAFETY: `job` outlives the handle: we block on its latch before returning.
            registry.inject(unsafe { job.as_job_ref() });
            job.latch.wait();
            job.into_result()
        }
    }
}

/// Queues a `'static` task on `registry`: onto our own deque if we are its worker, else onto the
/// injector of our node.
pub(crate) fn spawn_in<F>(registry: &Arc<Registry>, task: F)
where
    F: FnOnce() + Send + 'static,
{
    let job = move || {
        if let Err(payload) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(task)) {
            // Spawned jobs run only on workers of the pool they were spawned on.
            if let Some(w) = WorkerThread::current() {
                w.registry.handle_panic(payload);
            }
        }
    };
    match WorkerThread::current() {
        // The closure goes straight into the logged header: one allocation per task.
        Some(w) if Arc::ptr_eq(&w.registry, registry) => w.push_heap(Spawned(job), true),
        _ => publish_external(registry, Spawned(job)),
    }
}
