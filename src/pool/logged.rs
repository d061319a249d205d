//! Replicated (logged) jobs: a reference-counted header holding the job's single [`Claim`].
//!
//! With `replication_factor >= 1`, a heap job a worker queues on its own deque (`spawn`, scope
//! children) is wrapped in an `Arc<LoggedJob>` and published to that CPU's op log before it enters
//! the deque, so the CPU's replicas know it until it is claimed. Copies of the handle may then sit
//! in the deque, the log, replicas and a successor's adoption list at once; the header's `Claim`
//! decides which copy runs (G2). The header owns the claim word, so a copy read after the job ran
//! still reads valid memory; only the claim winner touches the job itself.
//!
//! `join`'s second half is never logged: it lives in its joiner's stack frame (see
//! `src/replication/README.md`, "Stack jobs"), and `R = 0` pools log nothing, so they pay nothing.

use std::sync::Arc;

use super::job::{Job, JobRef};
use super::worker::WorkerThread;
use crate::replication::{Claim, Start};

/// A job's claim plus the job. Queues carry it as a [`JobRef`] that owns one strong count.
pub(crate) struct LoggedJob {
    claim: Claim,
    job: JobRef,
}

impl std::fmt::Debug for LoggedJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoggedJob")
            .field("claimed", &self.claim.is_claimed())
            .finish_non_exhaustive()
    }
}

impl AsRef<Claim> for LoggedJob {
    fn as_ref(&self) -> &Claim {
        &self.claim
    }
}

/// The handle the replication protocol stores.
pub(crate) type Handle = Arc<LoggedJob>;

impl LoggedJob {
    /// Wraps `job` (a heap job: it must be valid until it runs, with no frame waiting on it
    /// being popped back).
    pub(crate) fn new(job: JobRef) -> Handle {
        Arc::new(LoggedJob {
            claim: Claim::new(),
            job,
        })
    }

    /// A queue copy of `handle`: the returned [`JobRef`] owns one strong count, released when
    /// the copy is executed (whether or not it wins the claim).
    pub(crate) fn job_ref(handle: Handle) -> JobRef {
        // SAFETY: the pointer comes from `Arc::into_raw` and is turned back into the `Arc` exactly
        // once, by `execute`; the header stays alive until then.
        unsafe { JobRef::new(Arc::into_raw(handle)) }
    }
}

impl Job for LoggedJob {
    unsafe fn execute(this: *const ()) {
        // SAFETY: `this` came from `Arc::into_raw` in `job_ref`; each queue copy is executed once.
        let handle = unsafe { Arc::from_raw(this.cast::<LoggedJob>()) };
        let won = match WorkerThread::current() {
            // A worker records the task in hand, then starts it through its lease check and the
            // claim (`CoreState::start`): a fenced worker never claims, it redirects.
            Some(w) => match w.start_logged(&handle) {
                Start::Run => true,
                Start::AlreadyClaimed => false,
                Start::Fenced => {
                    w.registry.inject(LoggedJob::job_ref(handle));
                    return;
                }
            },
            None => handle.claim.try_claim(),
        };
        if won {
            // SAFETY: we won the job's single claim, so this is its one start; the job is alive
            // because no one else ran it.
            unsafe { handle.job.execute() }
        }
    }
}
