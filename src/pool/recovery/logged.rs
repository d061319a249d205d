//! Replicated (logged) jobs: a reference-counted header holding the job's single [`Claim`].
//!
//! With `replication_factor >= 1`, a heap job a worker queues on its own deque (`spawn`, scope
//! children) is wrapped in a [`Logged`] header and published to that CPU's op log before it
//! enters the deque, so the CPU's replicas know it until it is claimed. Copies of the handle may
//! then sit in the deque, the log, replicas and a successor's adoption list at once; the header's
//! `Claim` decides which copy runs (G2). The header owns the claim word, so a copy read after the
//! job ran still reads valid memory; only the claim winner touches the job itself.
//!
//! A `spawn` from a worker puts its closure **in** the header: one allocation per task, as with
//! `R = 0`. A scope child (whose closure borrows the scope, so it cannot be a `'static` trait
//! object) and an external `spawn` wrap the already boxed job's [`JobRef`] instead.
//!
//! A `join`'s queued half is never logged: it lives in its joiner's stack frame (see
//! the replication protocol's "Stack jobs" in `src/replication/README.md`), and `R = 0` pools log nothing, so they pay nothing.

use std::sync::Arc;

pub(crate) use crate::pool::job::{Handle, LoggedTask};
use crate::pool::job::{HeapJob, Job, JobRef, Starter};
use crate::replication::{Claim, Start};
use crate::sync::UnsafeCell;

/// Work that runs at most once, by whoever wins its header's claim.
pub(crate) trait RunOnce: Send + 'static {
    /// Runs the work.
    ///
    /// # Safety
    /// Called once, by the winner of the work's claim.
    unsafe fn run_once(self);

    /// The work as a plain queue job, for pools that log nothing.
    fn into_job_ref(self) -> JobRef;
}

impl RunOnce for JobRef {
    unsafe fn run_once(self) {
        // SAFETY: the claim winner owns this job's single start.
        unsafe { self.execute() }
    }

    fn into_job_ref(self) -> JobRef {
        self
    }
}

/// A `'static` closure given to `spawn` on a worker.
pub(crate) struct Spawned<F>(pub(crate) F);

impl<F: FnOnce() + Send + 'static> RunOnce for Spawned<F> {
    unsafe fn run_once(self) {
        (self.0)()
    }

    fn into_job_ref(self) -> JobRef {
        // SAFETY: the closure is `'static`, so it may run at any time.
        unsafe { HeapJob::into_job_ref(self.0) }
    }
}

/// A task's claim plus its work, in one allocation.
pub(crate) struct Logged<R> {
    claim: Claim,
    /// Taken out by the claim winner only.
    work: UnsafeCell<Option<R>>,
}

// SAFETY: `work` is moved out only by the single winner of `claim` (`run`), and otherwise only
// dropped with the header, when no other reference exists; every other access is to `claim`,
// which is atomic. So sharing the header needs only `R: Send`.
unsafe impl<R: Send> Sync for Logged<R> {}

/// Wraps `work` in a logged header.
pub(crate) fn logged<R: RunOnce>(work: R) -> Handle {
    Arc::new(Logged {
        claim: Claim::new(),
        work: UnsafeCell::new(Some(work)),
    })
}

/// A queue copy of `handle` (see [`LoggedTask::job_ref`]).
pub(crate) fn job_ref(handle: Handle) -> JobRef {
    handle.job_ref()
}

impl<R: RunOnce> LoggedTask for Logged<R> {
    fn claim(&self) -> &Claim {
        &self.claim
    }

    fn job_ref(self: Arc<Self>) -> JobRef {
        // SAFETY: the pointer comes from `Arc::into_raw` and is turned back into the `Arc` exactly
        // once, by `execute`; the header stays alive until then.
        unsafe { JobRef::new(Arc::into_raw(self)) }
    }

    unsafe fn run(&self) {
        // SAFETY: only the claim winner gets here, once (the caller's contract), so no other
        // access to `work` is in progress.
        let work = self.work.with_mut(|w| unsafe { (*w).take() });
        if let Some(work) = work {
            // SAFETY: forwarded: we won the claim.
            unsafe { work.run_once() }
        }
    }
}

impl<R: RunOnce> Logged<R> {
    /// Takes the work out of the header at `this`.
    ///
    /// # Safety
    /// `this` is alive, and the caller won its claim (so no other access to `work` is in
    /// progress).
    unsafe fn take_work(this: *const Self) -> Option<R> {
        // SAFETY: forwarded.
        unsafe { (*this).work.with_mut(|w| (*w).take()) }
    }
}

impl<R: RunOnce> Job for Logged<R> {
    unsafe fn execute(this: *const (), starter: Option<&dyn Starter>) {
        let this = this.cast::<Logged<R>>();
        // SAFETY: `this` came from `Arc::into_raw` in `job_ref`; each queue copy is executed once.
        let handle: Handle = unsafe { Arc::from_raw(this) };
        let Some(w) = starter else {
            if handle.claim().try_claim() {
                // SAFETY: we won the task's single claim, so this is its one start.
                unsafe { handle.run() }
            }
            return;
        };
        // A worker records the task in hand, then starts it through its lease check and the
        // claim (`CpuState::start`): a fenced worker never claims, it requeues. The in-hand
        // slot may take `handle` over (`kept` is then `None`); it keeps the header alive until
        // this worker's next start, which can only come from inside the work, so the work is
        // taken out first and the header is not touched after that.
        let (start, kept) = w.start(handle);
        match start {
            Start::Run => {
                // SAFETY: alive (above), and we won the claim.
                let work = unsafe { Self::take_work(this) };
                if let Some(work) = work {
                    // SAFETY: forwarded: we won the claim.
                    unsafe { work.run_once() }
                }
                drop(kept);
            }
            Start::AlreadyClaimed => drop(kept),
            Start::Fenced => {
                let handle = kept.unwrap_or_else(|| {
                    // SAFETY: alive (above: a fenced worker has not left); a new count for
                    // the copy the requeue needs.
                    unsafe {
                        Arc::increment_strong_count(this);
                        Arc::from_raw(this)
                    }
                });
                w.requeue(handle);
            }
        }
    }
}
