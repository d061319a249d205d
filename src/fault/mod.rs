//! Fault injection: named points in the worker loop where a worker can be made to stall or crash.
//!
//! The hook [`point`] and the [`FaultPoint`] names always exist so the scheduler can call them
//! unconditionally; without the `fault-injection` feature `point` is an empty `#[inline(always)]`
//! function and compiles to nothing. With the feature, a worker thread [`enter`]s a
//! [`FaultPlan`] and every `point` it reaches consults that plan.
//!
//! **Which worker id a point is addressed with.** A point fires on the thread doing the work,
//! under that thread's fault id: worker `i` of a pool of `n` threads is `i`, and a replacement thread
//! (started after a takeover) is `n + k`, where `k` is the number of spare threads alive when it
//! started (0 for the first). That includes
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

/// Whether thread `id` crashed at a fault point; never true without the feature.
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub(crate) fn thread_crashed(_id: std::thread::ThreadId) -> bool {
    false
}

#[cfg(feature = "fault-injection")]
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
