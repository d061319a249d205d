//! `join` on a worker: two plain calls when forking cannot help (see `fork`); otherwise push B,
//! run A, then pop B back or run other work until whoever stole B finishes it.

use super::job::{JobResult, SharedJob, StackJob};
use super::latch::SpinLatch;
use super::worker::WorkerThread;

#[inline]
pub(crate) fn join_on_worker<A, B, RA, RB>(worker: &WorkerThread, a: A, b: B) -> (RA, RB)
where
    A: FnOnce() -> RA + Send,
    B: FnOnce() -> RB + Send,
    RA: Send,
    RB: Send,
{
    if !worker.forks.should_fork(&worker.registry.hunger) {
        // Two calls (see `fork`): B first, as chili does, then A. B's panic is caught so that
        // A still runs, as when B is queued; A's own panic unwinds from here, and wins, as in a
        // forked join.
        let result_b = JobResult::call(b);
        let ra = a();
        return (ra, result_b.into_return_value());
    }
    let result = join_forked(worker, a, b);
    worker.forks.closed();
    result
}

/// A panicked and B is ours to run (popped back): B still runs (as rayon's does), then A's panic
/// wins.
#[cold]
#[inline(never)]
fn after_panic<RA, RB>(result_a: JobResult<RA>, b: impl FnOnce() -> RB) -> (RA, RB) {
    let _ = JobResult::call(b);
    match result_a {
        JobResult::Panic(p) => std::panic::resume_unwind(p),
        _ => unreachable!("only a panic leads here"),
    }
}

/// A `join` that forks: push B, run A, then pop B back (the common case) or run other work
/// until whoever stole B finishes it. Out of line, so that the plain-call path around it keeps
/// a small frame.
#[inline(never)]
fn join_forked<A, B, RA, RB>(worker: &WorkerThread, a: A, b: B) -> (RA, RB)
where
    A: FnOnce() -> RA + Send,
    B: FnOnce() -> RB + Send,
    RA: Send,
    RB: Send,
{
    // The one lease check of this join (G4): a fenced worker queues nothing on its own deque.
    if worker.is_fenced() {
        return join_fenced(worker, a, b);
    }
    // B lives in this frame; nothing here returns or unwinds before B has run and its latch is
    // set (or we popped it back and run it ourselves), so the stack job never dangles.
    let job_b = StackJob::new(b, SpinLatch::new(&worker.registry, worker.seat));
    // SAFETY: see above: the frame outlives every use of the handle.
    let job_b_ref = unsafe { job_b.as_job_ref() };
    worker.push_unfenced(job_b_ref);
    // A's panic is caught so that B is still waited for; it is re-raised at the end.
    let result_a = JobResult::call(a);
    while !job_b.latch.core.probe() {
        match worker.pop_own(job_b_ref) {
            Some(job) if job == job_b_ref => {
                // Popped back: no one else can reach B any more, run it here without the latch.
                worker.count_inline();
                // SAFETY: popped back, so this thread is B's only user.
                let b = unsafe { job_b.take_func() };
                return match result_a {
                    JobResult::Ok(ra) => (ra, b()),
                    result_a => after_panic(result_a, b),
                };
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
    // SAFETY: the loop above ends only once the latch is set.
    (ra, unsafe { job_b.take_result() })
}

/// `join` on a worker whose lease a successor has fenced: typically a task that blocked for longer
/// than the lease (or, off Linux, computed that long) without a scheduling point, and runs again.
///
/// B is redirected to the node's injector, where the replacement and every other worker can take
/// it, so the rest of the task's tree stays parallel; the fenced worker goes on with A. Since a
/// fenced worker never pops, it cannot take B back from a queue; instead B sits in a
/// [`SharedJob`] whose claim decides between the queued handle and [`SharedJob::take_back`]. If
/// nobody took B while A ran, this worker runs it (finishing its own running task, which G4
/// allows: B never was in an epoch's queue). Otherwise it waits for B without taking other work
/// (see `WorkerThread::wait_for`).
#[cold]
#[inline(never)]
fn join_fenced<A, B, RA, RB>(worker: &WorkerThread, a: A, b: B) -> (RA, RB)
where
    A: FnOnce() -> RA + Send,
    B: FnOnce() -> RB + Send,
    RA: Send,
    RB: Send,
{
    let job_b = SharedJob::new(b);
    // SAFETY: B's borrows outlive its run: we either take B back below and run it here, or wait
    // for `done`, which its queued run sets after its last use of the closure.
    worker.redirect(unsafe { SharedJob::job_ref(&job_b) });
    let result_a = JobResult::call(a);
    let rb = match job_b.take_back() {
        Some(b) => {
            worker.count_inline();
            JobResult::call(b)
        }
        None => {
            worker.wait_until(job_b.done());
            JobResult::call(|| job_b.take_result())
        }
    };
    (result_a.into_return_value(), rb.into_return_value())
}
