//! Fault injection: named points in the worker loop where a worker can be made to stall or crash.
//!
//! The hook [`point`] and the [`FaultPoint`] names always exist so the scheduler can call them
//! unconditionally; without the `fault-injection` feature `point` is an empty `#[inline(always)]`
//! function and compiles to nothing. With the feature, a worker thread `enter`s a
//! `FaultPlan` and every `point` it reaches consults that plan.
//!
//! **Which worker id a point is addressed with.** A point fires on the thread doing the work,
//! under that thread's fault id: worker `i` of a pool of `n` threads is `i`, and replacement
//! threads (started after takeovers) are `n`, `n + 1`, … in the order they start; an id is never
//! reused, so a replacement never replays another thread's faults. That includes the points
//! inside the replication protocol, and
//! [`FaultPoint::InsideTakeover`] and [`FaultPoint::ReplicaApply`]: a takeover is driven by
//! whichever worker found the lease expired (or, as a backstop, by the pool's monitor thread,
//! which never enters a plan), and the points fire on that worker under its id. A takeover
//! reaches `InsideTakeover` three times: before the fence, right after it, and after adoption
//! before the replacement starts.
//!
//! ```
//! use replicore::fault::{point, FaultPoint};
//! // Free without the feature; consults the thread's plan with it.
//! point(FaultPoint::BeforePop, 0);
//! ```

mod names;
pub use names::{FaultPoint, ParseFaultPointError};

#[cfg(feature = "fault-injection")]
mod plan;
#[cfg(feature = "fault-injection")]
mod rng;
#[cfg(feature = "fault-injection")]
pub use plan::{FaultCounts, FaultPlan, FaultPlanError, enter, leave};

#[cfg(feature = "fault-injection")]
thread_local! {
    /// The fault id the pool gave the calling thread (`usize::MAX`: none).
    static THREAD_ID: std::cell::Cell<usize> = const { std::cell::Cell::new(usize::MAX) };
}

/// Records the calling pool thread's fault id, for the points of code that does not know which
/// thread runs it (the replication protocol).
#[inline(always)]
#[cfg_attr(loom, allow(dead_code))] // the pool, its only caller, is not built under loom
pub(crate) fn set_thread_id(_id: usize) {
    #[cfg(feature = "fault-injection")]
    THREAD_ID.with(|t| t.set(_id));
}

/// A point reached by the calling thread, under the fault id the pool gave it, or `fallback` on
/// a thread outside any pool (the loom models and doc examples address protocol points by the
/// lease holder).
#[inline(always)]
pub(crate) fn point_here(point_name: FaultPoint, fallback: usize) {
    #[cfg(feature = "fault-injection")]
    {
        let id = THREAD_ID.with(std::cell::Cell::get);
        point(point_name, if id == usize::MAX { fallback } else { id });
    }
    #[cfg(not(feature = "fault-injection"))]
    let _ = (point_name, fallback);
}

/// Whether thread `id` crashed at a fault point; never true without the feature.
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub(crate) fn thread_crashed(_id: std::thread::ThreadId) -> bool {
    false
}

#[cfg(feature = "fault-injection")]
#[cfg_attr(loom, allow(unused_imports))] // the pool, its only user, is not built under loom
pub(crate) use plan::thread_crashed;

/// A fault-injection point reached by `worker`. Without the `fault-injection` feature this does
/// nothing and is compiled out.
///
/// ```
/// replicore::fault::point(replicore::fault::FaultPoint::AfterClaim, 3);
/// ```
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn point(_point: FaultPoint, _worker: usize) {}

/// A fault-injection point reached by `worker`: stalls or crashes (parks forever) the calling
/// thread if the plan it [`enter`]ed says so.
///
/// ```
/// use replicore::fault::{enter, point, FaultPlan, FaultPoint};
/// use std::time::Duration;
/// let plan = FaultPlan::none().stall(FaultPoint::AfterClaim, 3, Duration::from_millis(1));
/// enter(&plan);
/// point(FaultPoint::AfterClaim, 3); // sleeps 1 ms
/// assert_eq!(plan.counts().stalls, 1);
/// ```
#[cfg(feature = "fault-injection")]
pub fn point(point: FaultPoint, worker: usize) {
    plan::fire(point, worker);
}
