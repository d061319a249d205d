//! `join` on a worker: push B, run A, then pop B back (the common, uncontended case) or run
//! other work until whoever stole B finishes it.

use super::job::{JobResult, StackJob};
use super::latch::SpinLatch;
use super::worker::WorkerThread;

pub(crate) fn join_on_worker<A, B, RA, RB>(worker: &WorkerThread, a: A, b: B) -> (RA, RB)
where
    A: FnOnce() -> RA + Send,
    B: FnOnce() -> RB + Send,
    RA: Send,
    RB: Send,
{
    if worker.is_fenced() {
        // A fenced worker enqueues nothing under its old epoch (G4), and it could never pop B
        // back: it would wait for B by stealing other work, nesting frames without bound. So it
        // runs both halves itself, one after the other.
        let result_a = JobResult::call(a);
        let result_b = JobResult::call(b);
        return (result_a.into_return_value(), result_b.into_return_value());
    }
    // B lives in this frame; nothing here returns or unwinds before B has run and its latch is
    // set (or we popped it back and run it ourselves), so the stack job never dangles.
    let job_b = StackJob::new(b, SpinLatch::new(&worker.registry, worker.index));
    // SAFETY: see above: the frame outlives every use of the handle.
    let job_b_ref = unsafe { job_b.as_job_ref() };
    worker.push(job_b_ref);
    // A's panic is caught so that B is still waited for; it is re-raised at the end.
    let result_a = JobResult::call(a);
    while !job_b.latch.core.probe() {
        match worker.pop() {
            Some(job) if job == job_b_ref => {
                // Popped back: no one else can reach B any more, run it here without the latch.
                worker.count_inline();
                let result_b = JobResult::call(|| job_b.run_inline());
                return (result_a.into_return_value(), result_b.into_return_value());
            }
            // B was stolen; this is older work of ours, run it while we wait.
            Some(job) => worker.execute(job),
            None => {
                worker.wait_until(&job_b.latch.core);
                break;
            }
        }
    }
    let ra = result_a.into_return_value();
    (ra, job_b.into_result())
}
