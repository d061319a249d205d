//! Scopes: spawned children may borrow from the enclosing stack; the scope returns only after
//! all of them finished, then re-raises the first panic.

use std::any::Any;
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::Arc;

use super::broadcast::{BroadcastContext, push_to_inboxes};
use super::job::{HeapJob, JobRef};
use super::latch::CountLatch;
use super::recovery::seam::publish_external;
use super::registry::Registry;
use super::worker::WorkerThread;
use crate::sync::atomic::{AtomicPtr, Ordering};

/// A scope in which tasks borrowing from the enclosing stack can be spawned; created by
/// [`ThreadPool::scope`](crate::ThreadPool::scope) or [`scope`](crate::scope).
///
/// ```
/// let mut parts = [0u64; 4];
/// replicore::scope(|s| {
///     for (i, p) in parts.iter_mut().enumerate() {
///         s.spawn(move |_| *p = i as u64 * 10);
///     }
/// });
/// assert_eq!(parts, [0, 10, 20, 30]);
/// ```
pub struct Scope<'scope> {
    registry: Arc<Registry>,
    latch: CountLatch,
    /// The first child panic, boxed twice so it fits one pointer.
    panic: AtomicPtr<Box<dyn Any + Send>>,
    /// Invariant in `'scope`, as `std::thread::Scope`.
    marker: PhantomData<&'scope mut &'scope ()>,
}

/// A `*const Scope` that may cross threads: the scope outlives all its children.
struct ScopePtr<'scope>(*const Scope<'scope>);
// SAFETY: `Scope` is used from several threads only through its atomics and `Arc`, and its owner
// waits until every child holding this pointer has finished.
unsafe impl Send for ScopePtr<'_> {}
// SAFETY: as for `Send`; sharing the pointer only copies it.
unsafe impl Sync for ScopePtr<'_> {}

impl<'scope> Scope<'scope> {
    /// Spawns `body` into the scope. It may borrow anything that outlives the scope, and gets the
    /// scope to spawn more.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// let count = AtomicUsize::new(0);
    /// replicore::scope(|s| {
    ///     s.spawn(|s| {
    ///         count.fetch_add(1, Ordering::Relaxed);
    ///         s.spawn(|_| {
    ///             count.fetch_add(1, Ordering::Relaxed);
    ///         });
    ///     });
    /// });
    /// assert_eq!(count.load(Ordering::Relaxed), 2);
    /// ```
    pub fn spawn<F>(&self, body: F)
    where
        F: FnOnce(&Scope<'scope>) + Send + 'scope,
    {
        let this = ScopePtr(self);
        let f = move || {
            let this = this;
            // SAFETY: the scope's owner waits for this child, so `*this.0` is alive.
            body(unsafe { &*this.0 })
        };
        // SAFETY: the closure borrows only data outliving `'scope`, and the scope waits for it.
        let job = unsafe { self.child(f) };
        self.queue(job);
    }

    /// Runs `body` once on every worker of the scope's pool, with that worker's
    /// [`BroadcastContext`]. Like [`spawn`](Self::spawn), it does not wait: the scope waits for
    /// all of those runs and re-raises the first panic. Each worker runs it once its own deque
    /// is empty, before it steals.
    ///
    /// The jobs wait in the workers' per-CPU inboxes, which belong to the position, not to the
    /// thread: if a worker stalls and its CPU is taken over, the replacement runs the job, with
    /// the same index.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// let pool = replicore::ThreadPool::builder().num_threads(2).build()?;
    /// let calls = AtomicUsize::new(0);
    /// pool.scope(|s| {
    ///     s.spawn_broadcast(|_, ctx| {
    ///         assert_eq!(ctx.num_threads(), 2);
    ///         calls.fetch_add(1, Ordering::SeqCst);
    ///     });
    /// });
    /// assert_eq!(calls.load(Ordering::SeqCst), 2);
    /// # Ok::<(), replicore::BuildError>(())
    /// ```
    pub fn spawn_broadcast<F>(&self, body: F)
    where
        F: Fn(&Scope<'scope>, BroadcastContext) + Send + Sync + 'scope,
    {
        let body = Arc::new(body);
        push_to_inboxes(&self.registry, |ctx| {
            let body = Arc::clone(&body);
            let this = ScopePtr(self);
            let f = move || {
                let this = this;
                // SAFETY: the scope's owner waits for this child, so `*this.0` is alive.
                body(unsafe { &*this.0 }, ctx)
            };
            // SAFETY: as in `spawn`: the job borrows data outliving `'scope`, and the scope
            // waits for it.
            unsafe { self.child(f) }
        });
    }

    /// A scope on pool `registry` whose owner is `owner` (the calling thread's worker, of any
    /// pool), or the calling thread itself when it is no worker.
    pub(super) fn new(registry: Arc<Registry>, owner: Option<&WorkerThread>) -> Self {
        Scope {
            latch: match owner {
                Some(w) => CountLatch::new(Arc::clone(&w.registry), w.seat),
                None => CountLatch::blocking(),
            },
            registry,
            panic: AtomicPtr::new(std::ptr::null_mut()),
            marker: PhantomData,
        }
    }

    /// The pool this scope's tasks run on.
    pub(super) fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// Counts `f` as a child of this scope and boxes it into a job that stores its panic and
    /// drops its count when it ends. The caller queues the job.
    ///
    /// # Safety
    /// Everything `f` borrows outlives `'scope` (the scope waits for the job).
    pub(super) unsafe fn child<F>(&self, f: F) -> JobRef
    where
        F: FnOnce() + Send + 'scope,
    {
        self.latch.increment();
        let this = ScopePtr(self);
        let job = move || {
            let this = this;
            // SAFETY: the scope's owner waits for our decrement, so `*this.0` is alive.
            let scope = unsafe { &*this.0 };
            if let Err(payload) = catch_unwind(AssertUnwindSafe(f)) {
                scope.store_panic(payload);
            }
            // SAFETY: last use of the scope by this child.
            unsafe { CountLatch::decrement(&scope.latch) };
        };
        // SAFETY: the closure borrows only data outliving `'scope`, and the scope waits for it.
        unsafe { HeapJob::into_job_ref(job) }
    }

    /// Queues a child job: onto the calling worker's deque (published to its CPU's op log) when
    /// it is a worker of this scope's pool, else onto the pool's injector (and, with replication
    /// on, into the pool's list of external submissions, as an external `spawn`).
    pub(super) fn queue(&self, job: JobRef) {
        match WorkerThread::current() {
            Some(w) if Arc::ptr_eq(&w.registry, &self.registry) => w.push_heap(job, false),
            _ => publish_external(&self.registry, job),
        }
    }

    /// Runs `op` as the scope's owner, waits for every child, re-raises the first panic
    /// (`op`'s own first). `owner` is the one given to [`new`](Self::new).
    pub(super) fn complete<R>(&self, owner: Option<&WorkerThread>, op: impl FnOnce() -> R) -> R {
        let result = catch_unwind(AssertUnwindSafe(op));
        // SAFETY: drops the owner's own reference; `self` lives until after the wait below.
        unsafe { CountLatch::decrement(&self.latch) };
        match owner {
            Some(w) => w.wait_until(&self.latch.core),
            None => self.latch.wait_blocking(),
        }
        let panic = self.panic.swap(std::ptr::null_mut(), Ordering::Acquire);
        match result {
            Err(payload) => resume_unwind(payload),
            Ok(_) if !panic.is_null() => {
                // SAFETY: stored by `store_panic` from `Box::into_raw`, taken out once by the
                // swap.
                let payload = unsafe { Box::from_raw(panic) };
                resume_unwind(*payload)
            }
            Ok(r) => r,
        }
    }

    fn store_panic(&self, payload: Box<dyn Any + Send>) {
        let boxed = Box::into_raw(Box::new(payload));
        if self
            .panic
            .compare_exchange(
                std::ptr::null_mut(),
                boxed,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_err()
        {
            // SAFETY: we just created it and lost the race, so no one else has it.
            drop(unsafe { Box::from_raw(boxed) });
        }
    }
}

/// Shows the pool's size, the children not yet finished (plus one for the owner until it waits)
/// and whether a child has panicked.
///
/// ```
/// replicore::scope(|s| {
///     let text = format!("{s:?}");
///     assert!(text.starts_with("Scope"), "{text}");
/// });
/// ```
impl std::fmt::Debug for Scope<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scope")
            .field("num_threads", &self.registry.num_threads())
            .field("pending", &self.latch.pending())
            .field("panicked", &!self.panic.load(Ordering::Relaxed).is_null())
            .finish_non_exhaustive()
    }
}

/// Runs `op` with a fresh scope on worker `worker`, waits for every child, re-raises panics.
pub(crate) fn scope_on_worker<'scope, OP, R>(worker: &WorkerThread, op: OP) -> R
where
    OP: FnOnce(&Scope<'scope>) -> R,
{
    let scope = Scope::new(Arc::clone(&worker.registry), Some(worker));
    scope.complete(Some(worker), || op(&scope))
}

impl Drop for Scope<'_> {
    fn drop(&mut self) {
        let panic = self.panic.swap(std::ptr::null_mut(), Ordering::Acquire);
        if !panic.is_null() {
            // SAFETY: as in `scope_on_worker`: a stored, not yet taken, child panic.
            drop(unsafe { Box::from_raw(panic) });
        }
    }
}
