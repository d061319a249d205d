//! Scopes: spawned children may borrow from the enclosing stack; the scope returns only after
//! all of them finished, then re-raises the first panic.

use std::any::Any;
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::Arc;

use super::job::HeapJob;
use super::latch::CountLatch;
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
        self.latch.increment();
        let this = ScopePtr(self);
        let job = move || {
            let this = this;
            // SAFETY: the scope's owner waits for our decrement, so `*this.0` is alive.
            let scope = unsafe { &*this.0 };
            if let Err(payload) = catch_unwind(AssertUnwindSafe(|| body(scope))) {
                scope.store_panic(payload);
            }
            // SAFETY: last use of the scope by this child.
            unsafe { CountLatch::decrement(&scope.latch) };
        };
        // SAFETY: the closure borrows only data outliving `'scope`, and the scope waits for it.
        let job_ref = unsafe { HeapJob::into_job_ref(job) };
        match WorkerThread::current() {
            Some(w) if Arc::ptr_eq(&w.registry, &self.registry) => w.push_heap(job_ref, false),
            _ => self.registry.inject(job_ref),
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

/// Runs `op` with a fresh scope on worker `worker`, waits for every child, re-raises panics.
pub(crate) fn scope_on_worker<'scope, OP, R>(worker: &WorkerThread, op: OP) -> R
where
    OP: FnOnce(&Scope<'scope>) -> R,
{
    let scope = Scope {
        registry: Arc::clone(&worker.registry),
        latch: CountLatch::new(Arc::clone(&worker.registry), worker.seat),
        panic: AtomicPtr::new(std::ptr::null_mut()),
        marker: PhantomData,
    };
    let result = catch_unwind(AssertUnwindSafe(|| op(&scope)));
    // SAFETY: drops the owner's own reference; `scope` lives until after the wait below.
    unsafe { CountLatch::decrement(&scope.latch) };
    worker.wait_until(&scope.latch.core);
    let panic = scope.panic.swap(std::ptr::null_mut(), Ordering::Acquire);
    match result {
        Err(payload) => resume_unwind(payload),
        Ok(_) if !panic.is_null() => {
            // SAFETY: stored by `store_panic` from `Box::into_raw`, taken out once by the swap.
            let payload = unsafe { Box::from_raw(panic) };
            resume_unwind(*payload)
        }
        Ok(r) => r,
    }
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
