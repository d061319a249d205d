//! Type-erased jobs: a pointer plus the function that runs it.
//!
//! `join` keeps the half it offers to thieves in a [`StackJob`] on the caller's stack (no
//! allocation per join); `spawn` and scope children use a boxed [`HeapJob`]. Either way the
//! queues carry only a [`JobRef`], two words.
//!
//! A stack job stays valid until its latch is set, and its owner never returns before that. A
//! worker that "crashes" (parks forever, per the fault model) keeps its stack, so another thread
//! that runs the job and sets the latch never touches freed memory.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};

use super::sleep::SleepLatch;
use crate::replication::{Claim, Start};
use crate::sync::{Arc, UnsafeCell};

/// A job that can be run once through a raw pointer.
pub trait Job {
    /// Runs the job. `starter` is the pool worker running it, if any: a logged job starts
    /// through it (see [`Starter`]); other jobs ignore it.
    ///
    /// # Safety
    /// `this` points to a live job that has not run yet, and the caller has won the right to run
    /// it (popped or stole its [`JobRef`]; a logged job's run also wins its claim first).
    unsafe fn execute(this: *const (), starter: Option<&dyn Starter>);
}

/// The pool worker running a job, as a *logged* job (one its CPU's replicas know, see
/// `pool::recovery`) needs to see it: the worker records the job in hand, checks its lease and
/// claims the job, in that order, before the job may run. The worker hands itself to the job
/// ([`JobRef::execute_on`]), so the job needs no thread-local to find it.
pub trait Starter {
    /// Starts `handle`: [`Start::Run`] if this thread won its claim. Returns the handle back,
    /// unless this worker's in-hand slot took it: the job stays alive then until this thread
    /// starts another one, so the caller may use it through a pointer until it runs a job.
    fn start(&self, handle: Handle) -> (Start, Option<Handle>);
    /// Queues a copy of a logged job this thread may not start (its lease was fenced).
    fn requeue(&self, handle: Handle);
}

/// What the replication protocol stores about a logged task: its claim, and how to queue a copy.
pub trait LoggedTask: Send + Sync {
    /// The task's single claim word.
    fn claim(&self) -> &Claim;

    /// A queue copy of this task: the returned [`JobRef`] owns one strong count, released when
    /// the copy is executed (whether or not it wins the claim).
    fn job_ref(self: std::sync::Arc<Self>) -> JobRef;

    /// Runs the task's work.
    ///
    /// # Safety
    /// Called once, by the winner of the claim.
    unsafe fn run(&self);
}

impl AsRef<Claim> for dyn LoggedTask {
    fn as_ref(&self) -> &Claim {
        self.claim()
    }
}

impl std::fmt::Debug for dyn LoggedTask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoggedTask")
            .field("claimed", &self.claim().is_claimed())
            .finish_non_exhaustive()
    }
}

/// The handle the replication protocol stores: a logged task's shared header.
pub type Handle = std::sync::Arc<dyn LoggedTask>;

/// A type-erased handle to a job: what the deques and injectors carry.
#[derive(Clone, Copy, Debug)]
pub struct JobRef {
    pointer: *const (),
    execute_fn: unsafe fn(*const (), Option<&dyn Starter>),
}

/// Two handles are the same job when they point at the same job memory.
impl PartialEq for JobRef {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self.pointer, other.pointer)
    }
}

impl Eq for JobRef {}

// SAFETY: a `JobRef` is only created for jobs whose closures are `Send`; the pointer is handed
// from one thread to another through the queues, which synchronise the hand-off.
unsafe impl Send for JobRef {}
// SAFETY: see `Send`; sharing the handle itself only copies two words.
unsafe impl Sync for JobRef {}

impl JobRef {
    /// Erases a job.
    ///
    /// # Safety
    /// `job` must stay valid until the job has run, and it must run at most once.
    pub unsafe fn new<T: Job>(job: *const T) -> JobRef {
        JobRef {
            pointer: job.cast(),
            execute_fn: <T as Job>::execute,
        }
    }

    /// Runs the job on a thread that is no pool worker (or for a job that is never logged).
    ///
    /// # Safety
    /// As for [`Job::execute`]: the job is live and this caller owns its one start.
    #[inline]
    pub unsafe fn execute(self) {
        // SAFETY: forwarded from the caller.
        unsafe { (self.execute_fn)(self.pointer, None) }
    }

    /// Runs the job on the pool worker `starter`.
    ///
    /// # Safety
    /// As for [`Job::execute`].
    #[inline]
    pub unsafe fn execute_on(self, starter: &dyn Starter) {
        // SAFETY: forwarded from the caller.
        unsafe { (self.execute_fn)(self.pointer, Some(starter)) }
    }
}

/// The outcome of a job that someone else may have run.
#[derive(Debug)]
pub enum JobResult<R> {
    /// Not run yet.
    None,
    /// Returned normally.
    Ok(R),
    /// Panicked with this payload.
    Panic(Box<dyn Any + Send>),
}

impl<R> JobResult<R> {
    /// Runs `f`, catching a panic.
    pub fn call(f: impl FnOnce() -> R) -> Self {
        match catch_unwind(AssertUnwindSafe(f)) {
            Ok(r) => JobResult::Ok(r),
            Err(p) => JobResult::Panic(p),
        }
    }

    /// The value, or the job's panic re-raised in the caller.
    pub fn into_return_value(self) -> R {
        match self {
            JobResult::Ok(r) => r,
            JobResult::Panic(p) => resume_unwind(p),
            JobResult::None => unreachable!("a job's result is read only after its latch is set"),
        }
    }
}

/// Something a finished job signals. Setting it is the job's last access to its own memory.
pub trait Latch {
    /// Marks the latch set and wakes whoever waits on it.
    ///
    /// # Safety
    /// `this` is valid on entry; after the store that publishes "set", the waiter may free it, so
    /// implementations must not touch `*this` afterwards.
    unsafe fn set(this: *const Self);
}

/// A job living in its owner's stack frame: the half a `join` queues, `install`'s body.
#[derive(Debug)]
pub struct StackJob<L, F, R> {
    /// Set once `result` holds the outcome.
    pub latch: L,
    func: UnsafeCell<Option<F>>,
    result: UnsafeCell<JobResult<R>>,
}

impl<L: Latch, F: FnOnce() -> R + Send, R: Send> StackJob<L, F, R> {
    /// Wraps `func`, to be signalled through `latch`.
    pub fn new(func: F, latch: L) -> Self {
        StackJob {
            latch,
            func: UnsafeCell::new(Some(func)),
            result: UnsafeCell::new(JobResult::None),
        }
    }

    /// A handle for the queues.
    ///
    /// # Safety
    /// The job must outlive every use of the handle: its owner waits for the latch before
    /// dropping it (or runs it inline after taking the handle back).
    pub unsafe fn as_job_ref(&self) -> JobRef {
        // SAFETY: forwarded from the caller.
        unsafe { JobRef::new(self) }
    }

    /// Takes the closure out, for its owner to call in place once it popped the job back: no
    /// move of the job itself, which a thief may still be looking at the address of.
    ///
    /// # Safety
    /// The caller is the job's only user: its handle never reached a queue, or was popped back.
    #[inline]
    pub unsafe fn take_func(&self) -> F {
        // SAFETY: no other thread can reach the job (the caller's contract).
        unsafe { self.func.with_mut(|f| (*f).take()) }.expect("a job taken back has not run")
    }

    /// The outcome, value or panic, read in place once the latch is set (the job must not move
    /// while a thief may hold its handle).
    ///
    /// # Safety
    /// The latch is set: the run that wrote the result is over.
    pub unsafe fn take_result(&self) -> JobResult<R> {
        // SAFETY: the run finished and released the result by setting the latch (the caller's
        // contract); nobody else reads it.
        unsafe {
            self.result
                .with_mut(|r| std::mem::replace(&mut *r, JobResult::None))
        }
    }

    /// The outcome, once the latch is set.
    pub fn into_result(self) -> R {
        self.result.into_inner().into_return_value()
    }
}

impl<L: Latch, F: FnOnce() -> R + Send, R: Send> Job for StackJob<L, F, R> {
    unsafe fn execute(this: *const (), _: Option<&dyn Starter>) {
        let this = this.cast::<Self>();
        // SAFETY: the caller owns this job's single start, so no one else reads or writes `func`
        // or `result` until the latch below is set; the owner reads `result` only after that.
        unsafe {
            let func = (*this)
                .func
                .with_mut(|f| (*f).take())
                .expect("job started twice");
            let result = JobResult::call(func);
            (*this).result.with_mut(|r| *r = result);
            Latch::set(&raw const (*this).latch);
        }
    }
}

/// A boxed job that frees itself when it runs: `spawn`, scope children, broadcasts.
pub struct HeapJob<F> {
    func: F,
}

impl<F: FnOnce() + Send> HeapJob<F> {
    /// Boxes `func` and returns its handle. The box is freed when the job runs.
    ///
    /// # Safety
    /// Everything `func` borrows must outlive the job's run; for `'static` closures this holds
    /// trivially, and scopes wait for all their children.
    pub unsafe fn into_job_ref(func: F) -> JobRef {
        let job = Box::into_raw(Box::new(HeapJob { func }));
        // SAFETY: the box stays alive until `execute` reclaims it, exactly once.
        unsafe { JobRef::new(job) }
    }
}

impl<F: FnOnce() + Send> Job for HeapJob<F> {
    unsafe fn execute(this: *const (), _: Option<&dyn Starter>) {
        // SAFETY: `this` came from `Box::into_raw` in `into_job_ref` and runs once.
        let job = unsafe { Box::from_raw(this.cast::<Self>().cast_mut()) };
        (job.func)();
    }
}

/// A job reachable from two places at once: a shared queue, and its creator, who may take it back.
///
/// A fenced worker's `join` cannot push the half it offers onto its own deque (G4) and cannot
/// count on popping it back from the injector it redirects it to, so that half goes into one of
/// these: whoever wins its [`Claim`] first runs it, the creator through
/// [`SharedJob::take_back`] or anyone else through the queued [`JobRef`]. The loser of the claim
/// only drops its reference. The allocation is
/// reference-counted because the queued handle may be dropped long after the creator's frame is
/// gone (when the creator took the job back); by then `func` is `None`, so nothing the closure
/// borrowed is touched again.
pub struct SharedJob<F, R> {
    claim: Claim,
    func: UnsafeCell<Option<F>>,
    result: UnsafeCell<JobResult<R>>,
    /// Set once `result` holds a queued run's outcome.
    done: SleepLatch,
}

impl<F: FnOnce() -> R + Send, R: Send> SharedJob<F, R> {
    /// Wraps `func`, unclaimed.
    pub fn new(func: F) -> Arc<Self> {
        Arc::new(SharedJob {
            claim: Claim::new(),
            func: UnsafeCell::new(Some(func)),
            result: UnsafeCell::new(JobResult::None),
            done: SleepLatch::new(),
        })
    }

    /// A handle for a queue, holding its own reference to the job.
    ///
    /// # Safety
    /// Everything `func` borrows must stay valid until the job has run through this handle or
    /// [`take_back`](Self::take_back) returned it; the creator waits for [`done`](Self::done)
    /// when it lost the claim.
    pub unsafe fn job_ref(this: &Arc<Self>) -> JobRef {
        let raw = Arc::into_raw(Arc::clone(this));
        // SAFETY: the reference leaked into `raw` keeps the job alive until `execute` takes it
        // back; the caller vouches for the borrows.
        unsafe { JobRef::new(raw) }
    }

    /// The closure, if the creator wins the claim: then no queued run will ever start it.
    pub fn take_back(&self) -> Option<F> {
        if !self.claim.try_claim() {
            return None;
        }
        // SAFETY: the claim is won once, so nobody else reads or writes `func`.
        Some(unsafe { self.func.with_mut(|f| (*f).take()) }.expect("a won claim finds the job"))
    }

    /// Set once a queued run has stored its outcome (only after the creator lost the claim).
    pub fn done(&self) -> &SleepLatch {
        &self.done
    }

    /// The outcome of the queued run, its panic re-raised; call only after [`done`](Self::done)
    /// is set.
    pub fn take_result(&self) -> R {
        assert!(
            self.done.probe(),
            "a shared job's result is read after it is done"
        );
        // SAFETY: `done` is set after the runner's last write to `result` (`Release` in `set`,
        // `Acquire` in `probe`), and the runner never touches `result` again.
        let result = unsafe {
            self.result
                .with_mut(|r| std::mem::replace(&mut *r, JobResult::None))
        };
        result.into_return_value()
    }
}

impl<F: FnOnce() -> R + Send, R: Send> Job for SharedJob<F, R> {
    unsafe fn execute(this: *const (), _: Option<&dyn Starter>) {
        // SAFETY: `this` came from `Arc::into_raw` in `job_ref`, and a queued handle runs once,
        // so this takes back exactly the reference it leaked.
        let job = unsafe { Arc::from_raw(this.cast::<Self>()) };
        if !job.claim.try_claim() {
            return;
        }
        // SAFETY: we won the one claim, so we alone touch `func` and `result` until `done`.
        unsafe {
            let func = job
                .func
                .with_mut(|f| (*f).take())
                .expect("a won claim finds the job");
            let result = JobResult::call(func);
            job.result.with_mut(|r| *r = result);
        }
        // The creator polls `done` (a fenced worker never parks), so no wake-up is owed.
        job.done.set();
    }
}

/// The text of a panic payload, if it has one.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "<non-string payload>"
    }
}
