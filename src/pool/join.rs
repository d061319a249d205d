//! `join` on a worker. `B` always runs first, on this worker; `A` is either called after it (the
//! common case, see `fork`) or *offered*: pushed onto this worker's deque while `B` runs, then
//! popped back, or, if a thief took it, waited for while running other work.
//!
//! rayon runs `A` here and offers `B`. replicore runs the halves the other way round, as chili
//! does: with most joins being plain calls, one order for both paths keeps a recursive walk in
//! one direction (see the README's rayon table for what that is worth and what it changes).

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
    if !worker.should_fork() {
        // Two calls. B's panic is caught so that A still runs; A's own panic unwinds from here
        // and wins, as rayon documents when both panic.
        let result_b = JobResult::call(b);
        let ra = a();
        return (ra, result_b.into_return_value());
    }
    let (result_b, result_a) = join_forked(worker, b, a);
    // A's panic first: it wins when both panic.
    (result_a.into_return_value(), result_b.into_return_value())
}

/// A `join` that forks: push `offered`, run `here`, then pop `offered` back (the common case) or
/// run other work until whoever stole it finishes it. Returns both outcomes, panics caught. Out
/// of line, so that the plain-call path around it keeps a small frame.
#[inline(never)]
fn join_forked<H, O, RH, RO>(
    worker: &WorkerThread,
    here: H,
    offered: O,
) -> (JobResult<RH>, JobResult<RO>)
where
    H: FnOnce() -> RH + Send,
    O: FnOnce() -> RO + Send,
    RH: Send,
    RO: Send,
{
    // The one lease check of this join (G4): a fenced worker queues nothing on its own deque.
    if worker.is_fenced() {
        return join_fenced(worker, here, offered);
    }
    // The offered half lives in this frame; nothing here returns or unwinds before it has run
    // and its latch is set (or we popped it back and run it ourselves), so the stack job never
    // dangles.
    let job = StackJob::new(offered, SpinLatch::new(&worker.registry, worker.seat));
    // SAFETY: see above: the frame outlives every use of the handle.
    let job_ref = unsafe { job.as_job_ref() };
    worker.push_unfenced(job_ref);
    // The half run here catches its panic so that the offered one is still run or waited for.
    let result_here = JobResult::call(here);
    while !job.latch.core.probe() {
        match worker.pop_own(job_ref) {
            Some(popped) if popped == job_ref => {
                // Popped back: no one else can reach it any more, run it here without the latch.
                worker.count_inline();
                // SAFETY: popped back, so this thread is the job's only user.
                let offered = unsafe { job.take_func() };
                return (result_here, JobResult::call(offered));
            }
            // Stolen; this is older work of ours, run it while we wait.
            Some(popped) => worker.execute(popped),
            None => {
                worker.wait_until(&job.latch.core);
                break;
            }
        }
    }
    // SAFETY: the loop above ends only once the latch is set.
    (result_here, unsafe { job.take_result() })
}

/// `join` on a worker whose lease a successor has fenced: typically a task that blocked for longer
/// than the lease (or, off Linux, computed that long) without a scheduling point, and runs again.
///
/// The offered half is redirected to the node's injector, where the replacement and every other
/// worker can take it, so the rest of the task's tree stays parallel; the fenced worker goes on
/// with the other. Since a fenced worker never pops, it cannot take the half back from a queue;
/// instead it sits in a [`SharedJob`] whose claim decides between the queued handle and
/// [`SharedJob::take_back`]. If nobody took it meanwhile, this worker runs it (finishing its own
/// running task, which G4 allows: the half never was in an epoch's queue). Otherwise it waits for
/// it without taking other work (see `WorkerThread::wait_for`).
#[cold]
#[inline(never)]
fn join_fenced<H, O, RH, RO>(
    worker: &WorkerThread,
    here: H,
    offered: O,
) -> (JobResult<RH>, JobResult<RO>)
where
    H: FnOnce() -> RH + Send,
    O: FnOnce() -> RO + Send,
    RH: Send,
    RO: Send,
{
    let job = SharedJob::new(offered);
    // SAFETY: the closure's borrows outlive its run: we either take it back below and run it
    // here, or wait for `done`, which its queued run sets after its last use of the closure.
    worker.redirect(unsafe { SharedJob::job_ref(&job) });
    let result_here = JobResult::call(here);
    let result_offered = match job.take_back() {
        Some(offered) => {
            worker.count_inline();
            JobResult::call(offered)
        }
        None => {
            worker.wait_until(job.done());
            JobResult::call(|| job.take_result())
        }
    };
    (result_here, result_offered)
}
