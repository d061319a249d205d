//! Fault plans: which worker stalls or crashes at which point. Only with `fault-injection`.

use std::cell::RefCell;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use super::FaultPoint;
use super::rng::{splitmix64, unit};

/// What to do at a point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Stall(Duration),
    Crash,
    /// A random crash; already counted when its cap was checked.
    CountedCrash,
}

#[derive(Debug)]
struct Rule {
    point: FaultPoint,
    worker: usize,
    /// Fires the `nth` time (from 1) that worker reaches that point.
    nth: u64,
    action: Action,
}

#[derive(Debug, Default)]
struct Shared {
    /// One flag per explicit rule: each explicit rule fires once.
    fired: Vec<AtomicBool>,
    /// Per explicit rule, how often its worker reached its point so far.
    reached: Vec<AtomicU64>,
    stalls: AtomicU64,
    crashes: AtomicU64,
    /// Where the last crash happened, for tests that check what a crash there may cost.
    last_crash: std::sync::Mutex<Option<(FaultPoint, usize)>>,
}

/// A reproducible fault schedule. Clones share their counters.
///
/// Explicit rules fire once each: `stall` and `crash` the first time that worker reaches that
/// point, `stall_at` and `crash_at` the n-th time. A random plan draws, at every point every worker reaches, a splitmix64 value from
/// `(seed, point, worker, n-th point reached by this thread)`: with probability `rate` a fault
/// fires, a crash one time in four (at most [`FaultPlan::max_crashes`] crashes per plan, default 1,
/// so that a live worker always remains, as G3 requires) and otherwise a stall of up to
/// [`FaultPlan::max_stall`] (default 5 ms).
///
/// ```
/// use std::time::Duration;
/// use replicore::fault::{FaultPlan, FaultPoint};
/// let plan = FaultPlan::random(42, 0.01)?
///     .stall(FaultPoint::MidSteal, 1, Duration::from_millis(3))
///     .crash(FaultPoint::AfterTakeInHand, 0);
/// assert!(FaultPlan::random(42, 1.5).is_err());
/// assert_eq!(plan.counts().crashes, 0);
/// # Ok::<(), replicore::fault::FaultPlanError>(())
/// ```
#[derive(Debug, Clone)]
pub struct FaultPlan {
    rules: Arc<Vec<Rule>>,
    random: Option<(u64, f64)>,
    max_stall: Duration,
    max_crashes: u64,
    shared: Arc<Shared>,
}

/// A rejected fault plan parameter.
///
/// ```
/// use replicore::fault::FaultPlan;
/// let err = FaultPlan::random(1, -0.5).unwrap_err();
/// assert!(err.to_string().contains("0.0..=1.0"));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct FaultPlanError {
    rate: f64,
}

impl fmt::Display for FaultPlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "fault rate {} is not allowed: it must be a probability in 0.0..=1.0",
            self.rate
        )
    }
}

impl std::error::Error for FaultPlanError {}

/// Faults fired so far by a plan (and all its clones).
///
/// ```
/// use std::time::Duration;
/// use replicore::fault::{enter, leave, point, FaultPlan, FaultPoint};
/// let plan = FaultPlan::none().stall(FaultPoint::BeforePop, 0, Duration::ZERO);
/// enter(&plan);
/// point(FaultPoint::BeforePop, 0);
/// leave();
/// let counts = plan.counts();
/// assert_eq!((counts.stalls, counts.crashes), (1, 0));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultCounts {
    /// Stalls performed.
    pub stalls: u64,
    /// Threads crashed (parked for good).
    pub crashes: u64,
}

impl FaultPlan {
    /// No faults.
    ///
    /// ```
    /// use replicore::fault::{enter, leave, point, FaultPlan, FaultPoint};
    /// let plan = FaultPlan::none();
    /// enter(&plan);
    /// for p in FaultPoint::ALL {
    ///     point(p, 0); // nothing fires
    /// }
    /// leave();
    /// assert_eq!(plan.counts(), Default::default());
    /// ```
    pub fn none() -> Self {
        Self {
            rules: Arc::new(Vec::new()),
            random: None,
            max_stall: Duration::from_millis(5),
            max_crashes: 1,
            shared: Arc::new(Shared::default()),
        }
    }

    /// A seeded random mix of stalls and crashes at every point; `rate` is the probability that a
    /// point fires and must be in `0.0..=1.0`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use replicore::fault::FaultPlan;
    /// // Every point fires, but stalls are capped at zero and crashes at none: safe to run anywhere.
    /// let plan = FaultPlan::random(7, 1.0)?.max_stall(Duration::ZERO).max_crashes(0);
    /// let pool = replicore::ThreadPool::builder().num_threads(2).fault_plan(plan.clone()).build().unwrap();
    /// assert_eq!(pool.install(|| replicore::join(|| 1, || 2)), (1, 2));
    /// pool.shutdown();
    /// assert!(plan.counts().stalls > 0);
    /// assert!(FaultPlan::random(7, f64::NAN).is_err());
    /// # Ok::<(), replicore::fault::FaultPlanError>(())
    /// ```
    pub fn random(seed: u64, rate: f64) -> Result<Self, FaultPlanError> {
        if !(0.0..=1.0).contains(&rate) {
            return Err(FaultPlanError { rate });
        }
        Ok(Self {
            random: Some((seed, rate)),
            ..Self::none()
        })
    }

    /// Adds: `worker` stalls for `dur` the first time it reaches `point`.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use replicore::fault::{enter, leave, point, FaultPlan, FaultPoint};
    /// let plan = FaultPlan::none().stall(FaultPoint::AfterPop, 2, Duration::from_millis(2));
    /// enter(&plan);
    /// let t = Instant::now();
    /// point(FaultPoint::AfterPop, 1); // another worker: nothing
    /// point(FaultPoint::AfterPop, 2); // stalls 2 ms
    /// point(FaultPoint::AfterPop, 2); // fires once only
    /// leave();
    /// assert!(t.elapsed() >= Duration::from_millis(2));
    /// assert_eq!(plan.counts().stalls, 1);
    /// ```
    pub fn stall(self, point: FaultPoint, worker: usize, dur: Duration) -> Self {
        self.stall_at(point, worker, 1, dur)
    }

    /// Adds: `worker` crashes (parks forever) the first time it reaches `point`.
    ///
    /// ```
    /// use replicore::fault::{enter, point, FaultPlan, FaultPoint};
    /// let plan = FaultPlan::none().crash(FaultPoint::AfterClaim, 0);
    /// let p = plan.clone();
    /// // The crashed thread parks forever; it is left behind, never joined.
    /// std::thread::spawn(move || {
    ///     enter(&p);
    ///     point(FaultPoint::AfterClaim, 0);
    ///     unreachable!("a crashed thread never comes back");
    /// });
    /// while plan.counts().crashes == 0 {
    ///     std::thread::yield_now();
    /// }
    /// assert_eq!(plan.last_crash(), Some((FaultPoint::AfterClaim, 0)));
    /// ```
    pub fn crash(self, point: FaultPoint, worker: usize) -> Self {
        self.crash_at(point, worker, 1)
    }

    /// Adds: `worker` stalls for `dur` the `nth` time (counting from 1) it reaches `point`. A
    /// takeover reaches [`FaultPoint::InsideTakeover`] three times (before the fence, after it,
    /// and after adoption), so `nth` picks the step.
    ///
    /// ```
    /// use std::time::Duration;
    /// use replicore::fault::{enter, point, FaultPlan, FaultPoint};
    /// let plan = FaultPlan::none().stall_at(FaultPoint::MidSteal, 0, 2, Duration::from_micros(1));
    /// enter(&plan);
    /// point(FaultPoint::MidSteal, 0);
    /// assert_eq!(plan.counts().stalls, 0);
    /// point(FaultPoint::MidSteal, 0);
    /// assert_eq!(plan.counts().stalls, 1);
    /// ```
    pub fn stall_at(self, point: FaultPoint, worker: usize, nth: u64, dur: Duration) -> Self {
        self.with_rule(Rule {
            point,
            worker,
            nth: nth.max(1),
            action: Action::Stall(dur),
        })
    }

    /// Adds: `worker` crashes (parks forever) the `nth` time (counting from 1) it reaches
    /// `point`.
    ///
    /// ```
    /// use replicore::fault::{FaultPlan, FaultPoint};
    /// // The driver of a takeover dies right after it won the fence.
    /// let plan = FaultPlan::none().crash_at(FaultPoint::InsideTakeover, 1, 2);
    /// assert_eq!(plan.counts().crashes, 0);
    /// ```
    pub fn crash_at(self, point: FaultPoint, worker: usize, nth: u64) -> Self {
        self.with_rule(Rule {
            point,
            worker,
            nth: nth.max(1),
            action: Action::Crash,
        })
    }

    /// Longest random stall (default 5 ms).
    ///
    /// ```
    /// use std::time::Duration;
    /// use replicore::fault::FaultPlan;
    /// let plan = FaultPlan::random(3, 0.05)?.max_stall(Duration::from_micros(200));
    /// # let _ = plan;
    /// # Ok::<(), replicore::fault::FaultPlanError>(())
    /// ```
    pub fn max_stall(mut self, dur: Duration) -> Self {
        self.max_stall = dur;
        self
    }

    /// Most random crashes this plan performs (default 1).
    ///
    /// ```
    /// use replicore::fault::FaultPlan;
    /// // Stalls only: a random plan that never crashes a worker.
    /// let plan = FaultPlan::random(3, 0.05)?.max_crashes(0);
    /// # let _ = plan;
    /// # Ok::<(), replicore::fault::FaultPlanError>(())
    /// ```
    pub fn max_crashes(mut self, n: u64) -> Self {
        self.max_crashes = n;
        self
    }

    /// Faults fired so far.
    ///
    /// ```
    /// use std::time::Duration;
    /// use replicore::fault::{enter, leave, point, FaultPlan, FaultPoint};
    /// let plan = FaultPlan::none().stall(FaultPoint::MidPush, 0, Duration::ZERO);
    /// let clone = plan.clone();
    /// enter(&clone);
    /// point(FaultPoint::MidPush, 0);
    /// leave();
    /// assert_eq!(plan.counts().stalls, 1, "clones share their counters");
    /// ```
    pub fn counts(&self) -> FaultCounts {
        FaultCounts {
            stalls: self.shared.stalls.load(Relaxed),
            crashes: self.shared.crashes.load(Relaxed),
        }
    }

    /// The point and worker of the most recent crash, if any.
    ///
    /// ```
    /// use replicore::fault::FaultPlan;
    /// assert_eq!(FaultPlan::none().last_crash(), None);
    /// ```
    pub fn last_crash(&self) -> Option<(FaultPoint, usize)> {
        *self
            .shared
            .last_crash
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a rule added with [`stall`](Self::stall), [`crash`](Self::crash),
    /// [`stall_at`](Self::stall_at) or [`crash_at`](Self::crash_at) for `worker` at `point`
    /// has fired. A test that plans a fault at the `nth` visit of a point can check that the
    /// run got that far before it expects what the fault causes (a takeover, say): a worker
    /// that the scheduler kept away from the point never reaches it.
    ///
    /// ```
    /// use std::time::Duration;
    /// use replicore::fault::{enter, leave, point, FaultPlan, FaultPoint};
    /// let plan = FaultPlan::none().stall_at(FaultPoint::MidPush, 1, 2, Duration::ZERO);
    /// enter(&plan);
    /// point(FaultPoint::MidPush, 1);
    /// assert!(!plan.has_fired(FaultPoint::MidPush, 1), "one visit of two");
    /// point(FaultPoint::MidPush, 1);
    /// leave();
    /// assert!(plan.has_fired(FaultPoint::MidPush, 1));
    /// assert!(!plan.has_fired(FaultPoint::MidPush, 0), "no rule for worker 0");
    /// ```
    pub fn has_fired(&self, point: FaultPoint, worker: usize) -> bool {
        self.rules
            .iter()
            .zip(self.shared.fired.iter())
            .any(|(r, fired)| r.point == point && r.worker == worker && fired.load(Relaxed))
    }

    fn with_rule(self, rule: Rule) -> Self {
        // Rebuild rather than mutate: clones handed out earlier keep their own rule set.
        let mut rules: Vec<Rule> = self
            .rules
            .iter()
            .map(|r| Rule {
                point: r.point,
                worker: r.worker,
                nth: r.nth,
                action: r.action,
            })
            .collect();
        rules.push(rule);
        let shared = Shared {
            fired: (0..rules.len()).map(|_| AtomicBool::new(false)).collect(),
            reached: (0..rules.len()).map(|_| AtomicU64::new(0)).collect(),
            stalls: AtomicU64::new(self.shared.stalls.load(Relaxed)),
            crashes: AtomicU64::new(self.shared.crashes.load(Relaxed)),
            last_crash: std::sync::Mutex::new(None),
        };
        Self {
            rules: Arc::new(rules),
            shared: Arc::new(shared),
            ..self
        }
    }

    fn decide(&self, point: FaultPoint, worker: usize, n: u64) -> Option<Action> {
        for (i, r) in self.rules.iter().enumerate() {
            if r.point == point
                && r.worker == worker
                && self.shared.reached[i].fetch_add(1, Relaxed) + 1 == r.nth
                && !self.shared.fired[i].swap(true, Relaxed)
            {
                return Some(r.action);
            }
        }
        let (seed, rate) = self.random?;
        let x = splitmix64(seed ^ splitmix64(point as u64 + 1) ^ ((worker as u64) << 40) ^ n);
        if unit(x) >= rate {
            return None;
        }
        let y = splitmix64(x);
        if unit(y) < 0.25
            && self
                .shared
                .crashes
                .fetch_update(Relaxed, Relaxed, |c| {
                    (c < self.max_crashes).then_some(c + 1)
                })
                .is_ok()
        {
            return Some(Action::CountedCrash);
        }
        Some(Action::Stall(self.max_stall.mul_f64(unit(splitmix64(y)))))
    }
}

thread_local! {
    static CURRENT: RefCell<Option<(FaultPlan, u64)>> = const { RefCell::new(None) };
}

/// Makes the calling thread follow `plan` at every [`point`](super::point) it reaches.
///
/// ```
/// use std::time::Duration;
/// use replicore::fault::{enter, leave, point, FaultPlan, FaultPoint};
/// let plan = FaultPlan::none().stall(FaultPoint::MidSteal, 0, Duration::ZERO);
/// std::thread::spawn({
///     let plan = plan.clone();
///     move || {
///         enter(&plan); // only this thread follows the plan
///         point(FaultPoint::MidSteal, 0);
///         leave();
///     }
/// })
/// .join()
/// .unwrap();
/// assert_eq!(plan.counts().stalls, 1);
/// ```
pub fn enter(plan: &FaultPlan) {
    CURRENT.with(|c| *c.borrow_mut() = Some((plan.clone(), 0)));
}

/// Stops fault injection on the calling thread.
///
/// ```
/// use std::time::Duration;
/// use replicore::fault::{enter, leave, point, FaultPlan, FaultPoint};
/// let plan = FaultPlan::none().stall(FaultPoint::BeforeClaim, 0, Duration::ZERO);
/// enter(&plan);
/// leave();
/// point(FaultPoint::BeforeClaim, 0); // no longer consulted
/// assert_eq!(plan.counts().stalls, 0);
/// ```
pub fn leave() {
    CURRENT.with(|c| *c.borrow_mut() = None);
}

pub(super) fn fire(point: FaultPoint, worker: usize) {
    let decided = CURRENT.with(|c| {
        let mut c = c.borrow_mut();
        let (plan, n) = c.as_mut()?;
        *n += 1;
        let action = plan.decide(point, worker, *n)?;
        Some((plan.shared.clone(), action))
    });
    let Some((shared, action)) = decided else {
        return;
    };
    if matches!(action, Action::Crash | Action::CountedCrash) {
        *shared.last_crash.lock().unwrap_or_else(|e| e.into_inner()) = Some((point, worker));
    }
    match action {
        Action::CountedCrash => park_forever(),
        Action::Stall(d) => {
            shared.stalls.fetch_add(1, Relaxed);
            std::thread::sleep(d);
        }
        Action::Crash => {
            shared.crashes.fetch_add(1, Relaxed);
            park_forever()
        }
    }
}

/// Threads stopped for good by a crash, so that pool shutdown does not wait for them.
static CRASHED: std::sync::Mutex<Vec<std::thread::ThreadId>> = std::sync::Mutex::new(Vec::new());

/// Whether thread `id` crashed at a fault point (it will never return).
#[cfg_attr(loom, allow(dead_code))] // the pool, its only user, is not built under loom
pub(crate) fn thread_crashed(id: std::thread::ThreadId) -> bool {
    CRASHED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .contains(&id)
}

/// A crash: the thread stops here for good; its stack stays valid (ARCHITECTURE.md, fault model).
fn park_forever() -> ! {
    CRASHED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(std::thread::current().id());
    loop {
        std::thread::park();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_is_validated() {
        for bad in [-0.1, 1.01, f64::NAN, f64::INFINITY] {
            let e = FaultPlan::random(1, bad).unwrap_err();
            assert!(e.to_string().contains("0.0..=1.0"));
        }
        assert!(FaultPlan::random(1, 0.0).is_ok() && FaultPlan::random(1, 1.0).is_ok());
    }

    #[test]
    fn random_plans_are_reproducible_and_capped() {
        let draws = |seed| {
            let p = FaultPlan::random(seed, 0.3).unwrap().max_crashes(0);
            (0..200u64)
                .map(|n| p.decide(FaultPoint::ALL[(n % 9) as usize], 2, n))
                .collect::<Vec<_>>()
        };
        assert_eq!(draws(7), draws(7));
        assert_ne!(draws(7), draws(8));
        let fired = draws(7).iter().filter(|a| a.is_some()).count();
        assert!((20..=100).contains(&fired), "rate 0.3 of 200 gave {fired}");
        assert!(
            draws(7)
                .iter()
                .all(|a| !matches!(a, Some(Action::CountedCrash)))
        );
    }

    #[test]
    fn explicit_rules_fire_once_for_their_worker() {
        let plan = FaultPlan::none().stall(FaultPoint::MidPush, 1, Duration::from_micros(10));
        assert_eq!(plan.decide(FaultPoint::MidPush, 0, 1), None);
        assert!(plan.decide(FaultPoint::MidPush, 1, 1).is_some());
        assert_eq!(plan.decide(FaultPoint::MidPush, 1, 2), None);
    }

    #[test]
    fn crash_parks_the_thread_for_good() {
        let plan = FaultPlan::none().crash(FaultPoint::AfterClaim, 4);
        let p = plan.clone();
        let reached_after = Arc::new(AtomicBool::new(false));
        let r = reached_after.clone();
        std::thread::spawn(move || {
            enter(&p);
            super::super::point(FaultPoint::AfterClaim, 4);
            r.store(true, Relaxed);
        });
        while plan.counts().crashes == 0 {
            std::thread::yield_now();
        }
        std::thread::sleep(Duration::from_millis(20));
        assert!(!reached_after.load(Relaxed));
    }
}
