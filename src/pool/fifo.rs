//! FIFO spawning: [`spawn_fifo`](crate::spawn_fifo), [`ScopeFifo`] and
//! [`scope_fifo`](crate::scope_fifo).
//!
//! **The promise** (rayon's): tasks spawned FIFO from one worker start in the order they were
//! spawned, as seen by that worker; other workers may take some of them meanwhile.
//!
//! **How.** Each worker's deque is LIFO. A FIFO spawn on worker position `i` puts the task itself into
//! a FIFO queue of position `i` (the pool's, or the scope's), then pushes onto the deque a small
//! *token* job whose only work is "take the oldest task of position `i`'s FIFO queue and run it".
//! Whichever token runs first, and whoever runs it (the owner popping its newest, a thief
//! stealing its oldest), it runs the oldest task: so the tasks start in FIFO order, and the owner
//! sees them in the order they were spawned. There is exactly one token per queued task, and a
//! token takes exactly one task, so every task runs once.
//!
//! **Takeover.** The token is an ordinary heap job: [`WorkerThread::push_heap`] publishes it to
//! the CPU's op log before it enters the deque, exactly as a `spawn` or a scope child. If the
//! worker stalls or crashes, its CPU's replicas know the token, the takeover adopts it, and its
//! single claim makes it run once (G1, G2). The task itself need not be logged: it sits in a FIFO
//! queue that lives in the registry (or in the scope, which outlives all its tasks), not on the
//! stalled thread, and the adopted token reaches it by position, wherever the token runs. A
//! fenced worker's token push is redirected to the injector like any other push (G4); its task is
//! already in the position's FIFO queue. A task whose token was claimed is as good as started: a
//! crash in between is a crash inside a running task, which no guarantee restarts.
//!
//! From a thread that is not a worker of the pool, a FIFO spawn is an ordinary external
//! submission (as rayon does): it goes to the pool's injector, logged like an external `spawn`.

use std::marker::PhantomData;
use std::sync::Arc;

use super::job::HeapJob;
use super::recovery::logged::Spawned;
use super::registry::{FifoQueues, Registry};
use super::scope::Scope;
use super::worker::WorkerThread;

/// `spawn_fifo` on `registry`.
pub(crate) fn spawn_fifo_in<F>(registry: &Arc<Registry>, task: F)
where
    F: FnOnce() + Send + 'static,
{
    match WorkerThread::current() {
        Some(w) if Arc::ptr_eq(&w.registry, registry) => {
            let job = move || {
                if let Err(payload) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(task)) {
                    // Tasks run only on workers of the pool they were spawned on.
                    if let Some(w) = WorkerThread::current() {
                        w.registry.handle_panic(payload);
                    }
                }
            };
            // SAFETY: the closure is `'static`, so it may run at any time.
            registry
                .fifo
                .push(w.index, unsafe { HeapJob::into_job_ref(job) });
            let position = w.index;
            let token = move || {
                let w = WorkerThread::current().expect("a pool's jobs run on its workers");
                // SAFETY: one token per task, queued after its task (just above).
                unsafe { w.registry.fifo.run_oldest(position) }
            };
            w.push_heap(Spawned(token), true);
        }
        _ => super::thread_pool::spawn_in(registry, task),
    }
}

/// A scope whose tasks, spawned from one worker, start in the order they were spawned (see
/// [`scope_fifo`](crate::scope_fifo)); created by [`scope_fifo`](crate::scope_fifo),
/// [`in_place_scope_fifo`](crate::in_place_scope_fifo) or the same methods of
/// [`ThreadPool`](crate::ThreadPool).
///
/// ```
/// use std::sync::Mutex;
/// let pool = replicore::ThreadPool::builder().num_threads(1).build()?;
/// let order = Mutex::new(Vec::new());
/// pool.scope_fifo(|s| {
///     for i in 0..4 {
///         let order = &order;
///         s.spawn_fifo(move |_| order.lock().unwrap().push(i));
///     }
/// });
/// // One worker: it sees its FIFO tasks in the order they were spawned.
/// assert_eq!(*order.lock().unwrap(), [0, 1, 2, 3]);
/// # Ok::<(), replicore::BuildError>(())
/// ```
pub struct ScopeFifo<'scope> {
    base: Scope<'scope>,
    /// One FIFO queue per worker position of the scope's pool; tokens pushed by `spawn_fifo` reach
    /// them by position.
    fifos: FifoQueues,
    /// Invariant in `'scope`, as `Scope`.
    marker: PhantomData<&'scope mut &'scope ()>,
}

/// A `*const ScopeFifo` that may cross threads: the scope outlives all its tasks and tokens.
struct FifoPtr<'scope>(*const ScopeFifo<'scope>);
// SAFETY: a `ScopeFifo` is used from several threads only through its `Scope` (atomics and an
// `Arc`) and its injectors, and its owner waits until every task holding this pointer has
// finished; a token's last use of it (taking a task) comes before its task finishes.
unsafe impl Send for FifoPtr<'_> {}
// SAFETY: as for `Send`; sharing the pointer only copies it.
unsafe impl Sync for FifoPtr<'_> {}

impl<'scope> FifoPtr<'scope> {
    /// The scope (a method, so that closures capture the whole `Send` wrapper).
    ///
    /// # Safety
    /// The scope is still alive: its owner has not finished waiting.
    unsafe fn get(&self) -> &ScopeFifo<'scope> {
        // SAFETY: forwarded from the caller.
        unsafe { &*self.0 }
    }
}

impl<'scope> ScopeFifo<'scope> {
    pub(super) fn new(registry: Arc<Registry>, owner: Option<&WorkerThread>) -> Self {
        let n = registry.num_threads();
        ScopeFifo {
            base: Scope::new(registry, owner),
            fifos: FifoQueues::new(n),
            marker: PhantomData,
        }
    }

    /// Runs `op` as the owner, waits for every task, re-raises the first panic.
    pub(super) fn complete<R>(&self, owner: Option<&WorkerThread>, op: impl FnOnce() -> R) -> R {
        self.base.complete(owner, op)
    }

    /// Spawns `body` into the scope with FIFO priority: tasks spawned from one worker start in
    /// the order they were spawned, as seen by that worker (see [`scope_fifo`](crate::scope_fifo)).
    /// The task may borrow anything that outlives the scope; a panic in it is re-raised by the
    /// scope after every task finished.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// let count = AtomicUsize::new(0);
    /// replicore::scope_fifo(|s| {
    ///     s.spawn_fifo(|s| {
    ///         count.fetch_add(1, Ordering::SeqCst);
    ///         s.spawn_fifo(|_| { count.fetch_add(1, Ordering::SeqCst); });
    ///     });
    /// });
    /// assert_eq!(count.load(Ordering::SeqCst), 2);
    /// ```
    pub fn spawn_fifo<F>(&self, body: F)
    where
        F: FnOnce(&ScopeFifo<'scope>) + Send + 'scope,
    {
        let this = FifoPtr(self);
        let f = move || {
            let this = this;
            // SAFETY: the scope's owner waits for this task, so `*this.0` is alive.
            body(unsafe { &*this.0 })
        };
        // SAFETY: the task borrows only data outliving `'scope`, and the scope waits for it.
        let task = unsafe { self.base.child(f) };
        match WorkerThread::current() {
            Some(w) if Arc::ptr_eq(&w.registry, self.base.registry()) => {
                self.fifos.push(w.index, task);
                let position = w.index;
                let this = FifoPtr(self);
                let token = move || {
                    let this = this;
                    // SAFETY: our task is in the queue and the scope waits for it, so the scope
                    // is alive; one token per task, queued after it.
                    unsafe { (*this.0).fifos.run_oldest(position) }
                };
                // SAFETY: the token borrows the scope, which outlives it (see `FifoPtr`).
                w.push_heap(unsafe { HeapJob::into_job_ref(token) }, false);
            }
            _ => self.base.queue(task),
        }
    }

    /// As [`Scope::spawn_broadcast`]: runs `body` once on every worker of the scope's pool,
    /// and the scope waits for all of those runs.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// let pool = replicore::ThreadPool::builder().num_threads(2).build()?;
    /// let calls = AtomicUsize::new(0);
    /// pool.scope_fifo(|s| s.spawn_broadcast(|_, _| { calls.fetch_add(1, Ordering::SeqCst); }));
    /// assert_eq!(calls.load(Ordering::SeqCst), 2);
    /// # Ok::<(), replicore::BuildError>(())
    /// ```
    pub fn spawn_broadcast<F>(&self, body: F)
    where
        F: Fn(&ScopeFifo<'scope>, super::BroadcastContext) + Send + Sync + 'scope,
    {
        let this = FifoPtr(self);
        self.base.spawn_broadcast(move |_, ctx| {
            // SAFETY: the scope's owner waits for every broadcast run, so the scope is alive.
            body(unsafe { this.get() }, ctx)
        });
    }
}

/// Shows the same as [`Scope`]'s `Debug`.
///
/// ```
/// replicore::scope_fifo(|s| assert!(format!("{s:?}").starts_with("ScopeFifo")));
/// ```
impl std::fmt::Debug for ScopeFifo<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScopeFifo")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}
