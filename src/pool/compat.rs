//! rayon-core parity: the free functions and `ThreadPool` methods that make moving a program
//! from rayon-core a rename. Each has rayon-core's documented semantics; the README's
//! "Migrating from rayon" section lists where replicore differs and why.

use std::marker::PhantomData;
use std::sync::Arc;

use super::broadcast::{
    BroadcastContext, broadcast_from_outside, broadcast_on_worker, spawn_broadcast_in,
};
use super::fifo::{ScopeFifo, spawn_fifo_in};
use super::join::join_on_worker;
use super::registry::Registry;
use super::scope::Scope;
use super::thread_pool::{ThreadPool, in_worker};
use super::worker::WorkerThread;
use super::{MAX_THREADS, Yield, current_registry, global};

/// The calling thread's worker, if it is one of `registry`'s.
fn worker_of(registry: &Arc<Registry>) -> Option<&'static WorkerThread> {
    WorkerThread::current().filter(|w| Arc::ptr_eq(&w.registry, registry))
}

/// What a [`join_context`] closure learns about where it runs.
///
/// ```
/// let pool = replicore::ThreadPool::builder().num_threads(2).build()?;
/// let (_, b) = pool.install(|| replicore::join_context(|_| (), |ctx| ctx.migrated()));
/// // replicore runs the second closure on the calling worker (rayon: the first); the other
/// // one may be taken by another worker.
/// assert!(!b, "the second closure runs on the thread that called join_context");
/// # Ok::<(), replicore::BuildError>(())
/// ```
#[derive(Debug)]
pub struct FnContext {
    migrated: bool,
    /// Not `Send`: it describes the thread running the closure.
    marker: PhantomData<*mut ()>,
}

impl FnContext {
    fn new(migrated: bool) -> Self {
        FnContext {
            migrated,
            marker: PhantomData,
        }
    }

    /// `true` if the closure runs on another thread than the one that called
    /// [`join_context`]: the first closure when another worker stole it (replicore offers the
    /// first closure to thieves, rayon the second), or either closure when `join_context` was
    /// called outside every pool (both then run on a global-pool worker).
    ///
    /// ```
    /// let (a, b) = replicore::join_context(|ctx| ctx.migrated(), |ctx| ctx.migrated());
    /// // Called outside any pool: both closures were sent to the global pool.
    /// assert!(a && b);
    /// ```
    pub fn migrated(&self) -> bool {
        self.migrated
    }
}

/// [`join`](crate::join), with each closure told whether it runs on another thread than the
/// caller ([`FnContext::migrated`]): useful to split work further only when it was stolen.
///
/// ```
/// fn sum(v: &[u64]) -> u64 {
///     if v.len() < 64 {
///         return v.iter().sum();
///     }
///     let (l, r) = v.split_at(v.len() / 2);
///     let (a, b) = replicore::join_context(|_| sum(l), |_| sum(r));
///     a + b
/// }
/// let v: Vec<u64> = (0..1000).collect();
/// assert_eq!(sum(&v), 499_500);
/// ```
pub fn join_context<A, B, RA, RB>(a: A, b: B) -> (RA, RB)
where
    A: FnOnce(FnContext) -> RA + Send,
    B: FnOnce(FnContext) -> RB + Send,
    RA: Send,
    RB: Send,
{
    fn on_worker<A, B, RA, RB>(w: &WorkerThread, injected: bool, a: A, b: B) -> (RA, RB)
    where
        A: FnOnce(FnContext) -> RA + Send,
        B: FnOnce(FnContext) -> RB + Send,
        RA: Send,
        RB: Send,
    {
        // A closure ran "migrated" when another thread ran it: compare the worker running it
        // with the one that forked it (a replacement after a takeover is another worker, too).
        // replicore offers A to thieves where rayon offers B (see `pool::join`); both halves
        // look, so each flag is right whichever half a thief ran.
        let home = std::ptr::from_ref(w) as usize;
        let migrated = move || {
            let here = WorkerThread::current().map_or(0, |h| std::ptr::from_ref(h) as usize);
            injected || here != home
        };
        join_on_worker(
            w,
            move || a(FnContext::new(migrated())),
            move || b(FnContext::new(migrated())),
        )
    }
    match WorkerThread::current() {
        Some(w) => on_worker(w, false, a, b),
        None => in_worker(global::registry(), |w| on_worker(w, true, a, b)),
    }
}

/// The number of workers of the pool the caller runs on, or of the global pool outside every
/// pool (which builds the global pool if it does not exist yet).
///
/// ```
/// let pool = replicore::ThreadPool::builder().num_threads(3).build()?;
/// assert_eq!(pool.install(replicore::current_num_threads), 3);
/// assert!(replicore::current_num_threads() >= 1); // the global pool
/// # Ok::<(), replicore::BuildError>(())
/// ```
pub fn current_num_threads() -> usize {
    match WorkerThread::current() {
        Some(w) => w.registry.num_threads(),
        None => global::registry().num_threads(),
    }
}

/// The most workers one pool may have: [`MAX_THREADS`]. Unlike rayon, which lowers a larger
/// request to its maximum, replicore refuses it with
/// [`BuildError::TooManyThreads`](crate::BuildError::TooManyThreads).
///
/// ```
/// assert_eq!(replicore::max_num_threads(), replicore::MAX_THREADS);
/// ```
pub fn max_num_threads() -> usize {
    MAX_THREADS
}

/// Whether the calling worker's own deque holds queued tasks; `None` outside every pool.
///
/// ```
/// assert_eq!(replicore::current_thread_has_pending_tasks(), None);
/// let pool = replicore::ThreadPool::builder().num_threads(1).build()?;
/// let pending = pool.install(|| {
///     replicore::scope(|s| {
///         s.spawn(|_| ());
///         // The one worker is here, so the task is still in its deque.
///         replicore::current_thread_has_pending_tasks()
///     })
/// });
/// assert_eq!(pending, Some(true));
/// # Ok::<(), replicore::BuildError>(())
/// ```
pub fn current_thread_has_pending_tasks() -> Option<bool> {
    WorkerThread::current().map(WorkerThread::has_pending_tasks)
}

/// Like [`yield_now`](crate::yield_now), but only looks at the calling worker's own deque and
/// its broadcast inbox: it never steals. Returns `None` outside every pool. Also a scheduling
/// point (it renews the worker's lease).
///
/// ```
/// use std::sync::atomic::{AtomicBool, Ordering};
/// let pool = replicore::ThreadPool::builder().num_threads(1).build()?;
/// let ran = AtomicBool::new(false);
/// pool.install(|| {
///     replicore::scope(|s| {
///         s.spawn(|_| ran.store(true, Ordering::SeqCst));
///         assert_eq!(replicore::yield_local(), Some(replicore::Yield::Executed));
///         assert_eq!(replicore::yield_local(), Some(replicore::Yield::Idle));
///     })
/// });
/// assert!(ran.load(Ordering::SeqCst));
/// assert_eq!(replicore::yield_local(), None);
/// # Ok::<(), replicore::BuildError>(())
/// ```
pub fn yield_local() -> Option<Yield> {
    WorkerThread::current().map(WorkerThread::yield_local)
}

/// [`spawn`](crate::spawn) with FIFO priority: tasks spawned FIFO from one worker start in the
/// order they were spawned, as seen by that worker (a plain `spawn` is LIFO on its worker).
/// Outside every pool it goes to the global pool, as `spawn` does. A panic goes to the panic
/// handler. Takeover covers these tasks as it covers `spawn`'s (see the `fifo` module).
///
/// ```
/// let (tx, rx) = std::sync::mpsc::channel();
/// let pool = replicore::ThreadPool::builder().num_threads(1).build()?;
/// pool.install(|| {
///     for i in 0..3 {
///         let tx = tx.clone();
///         replicore::spawn_fifo(move || tx.send(i).unwrap());
///     }
/// });
/// let got: Vec<i32> = (0..3).map(|_| rx.recv().unwrap()).collect();
/// assert_eq!(got, [0, 1, 2]);
/// # Ok::<(), replicore::BuildError>(())
/// ```
pub fn spawn_fifo<F>(task: F)
where
    F: FnOnce() + Send + 'static,
{
    spawn_fifo_in(current_registry(), task);
}

/// Runs `op` once on every worker of the caller's pool (the global pool outside every pool) and
/// returns the results in worker-index order, re-raising the first panic. See
/// [`ThreadPool::broadcast`].
///
/// ```
/// let pool = replicore::ThreadPool::builder().num_threads(2).build()?;
/// let seen = pool.install(|| replicore::broadcast(|ctx| ctx.index()));
/// assert_eq!(seen, [0, 1]);
/// # Ok::<(), replicore::BuildError>(())
/// ```
pub fn broadcast<OP, R>(op: OP) -> Vec<R>
where
    OP: Fn(BroadcastContext) -> R + Sync,
    R: Send,
{
    match WorkerThread::current() {
        Some(w) => broadcast_on_worker(w, &op),
        None => broadcast_from_outside(global::registry(), &op),
    }
}

/// Queues `op` to run once on every worker of the caller's pool (the global pool outside every
/// pool), without waiting. A panic in a call goes to the panic handler.
///
/// ```
/// let (tx, rx) = std::sync::mpsc::channel();
/// let pool = replicore::ThreadPool::builder().num_threads(2).build()?;
/// pool.install(|| {
///     let tx = std::sync::Mutex::new(tx);
///     replicore::spawn_broadcast(move |ctx| tx.lock().unwrap().send(ctx.index()).unwrap());
/// });
/// let mut got = vec![rx.recv().unwrap(), rx.recv().unwrap()];
/// got.sort();
/// assert_eq!(got, [0, 1]);
/// # Ok::<(), replicore::BuildError>(())
/// ```
pub fn spawn_broadcast<OP>(op: OP)
where
    OP: Fn(BroadcastContext) + Send + Sync + 'static,
{
    spawn_broadcast_in(current_registry(), op);
}

/// [`scope`](crate::scope) with FIFO priority: tasks spawned with [`ScopeFifo::spawn_fifo`]
/// from one worker start in the order they were spawned, as seen by that worker (a plain scope
/// is LIFO on each worker). Runs on the caller's pool, or the global pool outside every pool.
///
/// ```
/// let mut v = vec![0; 3];
/// replicore::scope_fifo(|s| {
///     for (i, x) in v.iter_mut().enumerate() {
///         s.spawn_fifo(move |_| *x = i);
///     }
/// });
/// assert_eq!(v, [0, 1, 2]);
/// ```
pub fn scope_fifo<'scope, OP, R>(op: OP) -> R
where
    OP: FnOnce(&ScopeFifo<'scope>) -> R + Send,
    R: Send,
{
    match WorkerThread::current() {
        Some(w) => scope_fifo_on_worker(w, op),
        None => in_worker(global::registry(), |w| scope_fifo_on_worker(w, op)),
    }
}

fn scope_fifo_on_worker<'scope, OP, R>(w: &WorkerThread, op: OP) -> R
where
    OP: FnOnce(&ScopeFifo<'scope>) -> R,
{
    let scope = ScopeFifo::new(Arc::clone(&w.registry), Some(w));
    scope.complete(Some(w), || op(&scope))
}

/// A scope whose closure runs on the calling thread itself, not on a pool worker (so `op` need
/// not be `Send`); its tasks go to the caller's pool, or the global pool outside every pool. It
/// returns once every task finished, re-raising the first panic. Waiting, a worker runs other
/// tasks; any other thread blocks.
///
/// ```
/// use std::rc::Rc;
/// let local = Rc::new(5); // not Send: fine, `op` runs here
/// let mut out = 0;
/// let slot = &mut out;
/// replicore::in_place_scope(|s| {
///     let v = *local;
///     s.spawn(move |_| *slot = v * 2);
/// });
/// assert_eq!(out, 10);
/// ```
pub fn in_place_scope<'scope, OP, R>(op: OP) -> R
where
    OP: FnOnce(&Scope<'scope>) -> R,
{
    in_place_scope_on(current_registry(), op)
}

/// [`in_place_scope`] with FIFO priority, as [`scope_fifo`] is to [`scope`](crate::scope).
///
/// ```
/// let mut v = vec![0; 3];
/// replicore::in_place_scope_fifo(|s| {
///     for (i, x) in v.iter_mut().enumerate() {
///         s.spawn_fifo(move |_| *x = i + 1);
///     }
/// });
/// assert_eq!(v, [1, 2, 3]);
/// ```
pub fn in_place_scope_fifo<'scope, OP, R>(op: OP) -> R
where
    OP: FnOnce(&ScopeFifo<'scope>) -> R,
{
    in_place_scope_fifo_on(current_registry(), op)
}

fn in_place_scope_on<'scope, OP, R>(registry: &Arc<Registry>, op: OP) -> R
where
    OP: FnOnce(&Scope<'scope>) -> R,
{
    let owner = WorkerThread::current();
    let scope = Scope::new(Arc::clone(registry), owner);
    scope.complete(owner, || op(&scope))
}

fn in_place_scope_fifo_on<'scope, OP, R>(registry: &Arc<Registry>, op: OP) -> R
where
    OP: FnOnce(&ScopeFifo<'scope>) -> R,
{
    let owner = WorkerThread::current();
    let scope = ScopeFifo::new(Arc::clone(registry), owner);
    scope.complete(owner, || op(&scope))
}

impl super::ThreadPoolBuilder {
    /// Builds the pool and makes it the global pool: the one the free functions
    /// ([`join`](crate::join), [`spawn`](crate::spawn), ...) use outside every pool. Optional:
    /// without it, the global pool is built with the defaults on first use.
    ///
    /// # Errors
    ///
    /// [`BuildError::GlobalPoolAlreadyInitialized`](crate::BuildError::GlobalPoolAlreadyInitialized)
    /// if the global pool exists already (an earlier `build_global`, or a free function called
    /// outside every pool before); any error of [`build`](Self::build).
    ///
    /// ```no_run
    /// // `no_run`: doc tests share no process, but a test binary does, and only its first
    /// // `build_global` can succeed.
    /// replicore::ThreadPoolBuilder::new().num_threads(2).build_global()?;
    /// assert_eq!(replicore::current_num_threads(), 2);
    /// let again = replicore::ThreadPoolBuilder::new().build_global();
    /// assert!(matches!(again, Err(replicore::BuildError::GlobalPoolAlreadyInitialized)));
    /// # Ok::<(), replicore::BuildError>(())
    /// ```
    pub fn build_global(self) -> Result<(), super::BuildError> {
        if global::is_initialized() {
            return Err(super::BuildError::GlobalPoolAlreadyInitialized);
        }
        let pool = self.build()?;
        global::set(pool).map_err(|lost| {
            // Another thread installed one meanwhile: ours never accepted work.
            lost.shutdown();
            super::BuildError::GlobalPoolAlreadyInitialized
        })
    }
}

impl ThreadPool {
    /// The index of the calling worker if it is one of **this** pool's, else `None`.
    ///
    /// ```
    /// let pool = replicore::ThreadPool::builder().num_threads(2).build()?;
    /// let other = replicore::ThreadPool::builder().num_threads(1).build()?;
    /// assert_eq!(pool.current_thread_index(), None);
    /// assert!(pool.install(|| pool.current_thread_index()).unwrap() < 2);
    /// assert_eq!(other.install(|| pool.current_thread_index()), None);
    /// # Ok::<(), replicore::BuildError>(())
    /// ```
    pub fn current_thread_index(&self) -> Option<usize> {
        worker_of(self.registry()).map(|w| w.index)
    }

    /// Whether the calling worker, if it is one of this pool's, has tasks queued in its own
    /// deque; `None` on any other thread.
    ///
    /// ```
    /// let pool = replicore::ThreadPool::builder().num_threads(1).build()?;
    /// assert_eq!(pool.current_thread_has_pending_tasks(), None);
    /// assert_eq!(pool.install(|| pool.current_thread_has_pending_tasks()), Some(false));
    /// # Ok::<(), replicore::BuildError>(())
    /// ```
    pub fn current_thread_has_pending_tasks(&self) -> Option<bool> {
        worker_of(self.registry()).map(WorkerThread::has_pending_tasks)
    }

    /// [`yield_now`](crate::yield_now), if the caller is one of this pool's workers; else
    /// `None`.
    ///
    /// ```
    /// let pool = replicore::ThreadPool::builder().num_threads(1).build()?;
    /// assert_eq!(pool.yield_now(), None);
    /// assert_eq!(pool.install(|| pool.yield_now()), Some(replicore::Yield::Idle));
    /// # Ok::<(), replicore::BuildError>(())
    /// ```
    pub fn yield_now(&self) -> Option<Yield> {
        worker_of(self.registry()).map(WorkerThread::yield_now)
    }

    /// [`yield_local`](crate::yield_local), if the caller is one of this pool's workers; else
    /// `None`.
    ///
    /// ```
    /// let pool = replicore::ThreadPool::builder().num_threads(1).build()?;
    /// assert_eq!(pool.yield_local(), None);
    /// assert_eq!(pool.install(|| pool.yield_local()), Some(replicore::Yield::Idle));
    /// # Ok::<(), replicore::BuildError>(())
    /// ```
    pub fn yield_local(&self) -> Option<Yield> {
        worker_of(self.registry()).map(WorkerThread::yield_local)
    }

    /// [`spawn`](Self::spawn) with FIFO priority (see [`spawn_fifo`](crate::spawn_fifo)).
    ///
    /// ```
    /// let pool = replicore::ThreadPool::builder().num_threads(2).build()?;
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// pool.spawn_fifo(move || tx.send(7).unwrap());
    /// assert_eq!(rx.recv().unwrap(), 7);
    /// # Ok::<(), replicore::BuildError>(())
    /// ```
    pub fn spawn_fifo<F>(&self, task: F)
    where
        F: FnOnce() + Send + 'static,
    {
        spawn_fifo_in(self.registry(), task);
    }

    /// Queues `op` to run once on every worker of this pool, without waiting; a panic in a
    /// call goes to the panic handler. See [`spawn_broadcast`](crate::spawn_broadcast).
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    /// let pool = replicore::ThreadPool::builder().num_threads(2).build()?;
    /// let calls = Arc::new(AtomicUsize::new(0));
    /// let c = calls.clone();
    /// pool.spawn_broadcast(move |_| { c.fetch_add(1, Ordering::SeqCst); });
    /// pool.shutdown(); // waits for accepted work
    /// assert_eq!(calls.load(Ordering::SeqCst), 2);
    /// # Ok::<(), replicore::BuildError>(())
    /// ```
    pub fn spawn_broadcast<OP>(&self, op: OP)
    where
        OP: Fn(BroadcastContext) + Send + Sync + 'static,
    {
        spawn_broadcast_in(self.registry(), op);
    }

    /// [`scope`](Self::scope) with FIFO priority (see [`scope_fifo`](crate::scope_fifo)).
    ///
    /// ```
    /// let pool = replicore::ThreadPool::builder().num_threads(2).build()?;
    /// let mut v = [0; 2];
    /// pool.scope_fifo(|s| {
    ///     let (a, b) = v.split_at_mut(1);
    ///     s.spawn_fifo(|_| a[0] = 1);
    ///     s.spawn_fifo(|_| b[0] = 2);
    /// });
    /// assert_eq!(v, [1, 2]);
    /// # Ok::<(), replicore::BuildError>(())
    /// ```
    pub fn scope_fifo<'scope, OP, R>(&self, op: OP) -> R
    where
        OP: FnOnce(&ScopeFifo<'scope>) -> R + Send,
        R: Send,
    {
        in_worker(self.registry(), |w| scope_fifo_on_worker(w, op))
    }

    /// A scope whose closure runs on the calling thread, with its tasks on this pool (see
    /// [`in_place_scope`](crate::in_place_scope)).
    ///
    /// ```
    /// let pool = replicore::ThreadPool::builder().num_threads(2).build()?;
    /// let mut idx = None;
    /// pool.in_place_scope(|s| s.spawn(|_| idx = replicore::current_thread_index()));
    /// assert!(idx.unwrap() < 2, "the task ran on the pool");
    /// # Ok::<(), replicore::BuildError>(())
    /// ```
    pub fn in_place_scope<'scope, OP, R>(&self, op: OP) -> R
    where
        OP: FnOnce(&Scope<'scope>) -> R,
    {
        in_place_scope_on(self.registry(), op)
    }

    /// [`in_place_scope`](Self::in_place_scope) with FIFO priority.
    ///
    /// ```
    /// let pool = replicore::ThreadPool::builder().num_threads(2).build()?;
    /// let mut v = [0; 2];
    /// pool.in_place_scope_fifo(|s| {
    ///     let (a, b) = v.split_at_mut(1);
    ///     s.spawn_fifo(|_| a[0] = 1);
    ///     s.spawn_fifo(|_| b[0] = 2);
    /// });
    /// assert_eq!(v, [1, 2]);
    /// # Ok::<(), replicore::BuildError>(())
    /// ```
    pub fn in_place_scope_fifo<'scope, OP, R>(&self, op: OP) -> R
    where
        OP: FnOnce(&ScopeFifo<'scope>) -> R,
    {
        in_place_scope_fifo_on(self.registry(), op)
    }
}
