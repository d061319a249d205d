//! The names of the fault points. Always compiled: the scheduler names them unconditionally.

use std::fmt;
use std::str::FromStr;

/// A place in the worker loop (or the protocol it calls) where a fault can be injected.
///
/// ```
/// use replicore::fault::FaultPoint;
/// let p: FaultPoint = "after-claim".parse()?;
/// assert_eq!(p, FaultPoint::AfterClaim);
/// assert_eq!(p.to_string(), "after-claim");
/// # Ok::<(), replicore::fault::ParseFaultPointError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FaultPoint {
    /// Before the owner pops from its deque.
    BeforePop,
    /// After the owner popped a task, before recording it in hand.
    AfterPop,
    /// After the popped task is recorded in the in-hand slot.
    AfterTakeInHand,
    /// Before the fencing check and claim that start a task.
    BeforeClaim,
    /// After the claim, before running the task.
    AfterClaim,
    /// Between publishing a push to the log and pushing into the deque.
    MidPush,
    /// In the middle of stealing from another CPU's deque.
    MidSteal,
    /// Inside a takeover (before and after the fence).
    InsideTakeover,
    /// While a replica applies a batch of ops.
    ReplicaApply,
}

impl FaultPoint {
    /// Every point, in loop order.
    ///
    /// ```
    /// use replicore::fault::FaultPoint;
    /// // Every point has a distinct name that parses back to it.
    /// for p in FaultPoint::ALL {
    ///     assert_eq!(p.name().parse::<FaultPoint>(), Ok(p));
    /// }
    /// ```
    pub const ALL: [FaultPoint; 9] = [
        FaultPoint::BeforePop,
        FaultPoint::AfterPop,
        FaultPoint::AfterTakeInHand,
        FaultPoint::BeforeClaim,
        FaultPoint::AfterClaim,
        FaultPoint::MidPush,
        FaultPoint::MidSteal,
        FaultPoint::InsideTakeover,
        FaultPoint::ReplicaApply,
    ];

    /// The point's kebab-case name.
    ///
    /// ```
    /// use replicore::fault::FaultPoint;
    /// assert_eq!(FaultPoint::MidSteal.name(), "mid-steal");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            FaultPoint::BeforePop => "before-pop",
            FaultPoint::AfterPop => "after-pop",
            FaultPoint::AfterTakeInHand => "after-take-in-hand",
            FaultPoint::BeforeClaim => "before-claim",
            FaultPoint::AfterClaim => "after-claim",
            FaultPoint::MidPush => "mid-push",
            FaultPoint::MidSteal => "mid-steal",
            FaultPoint::InsideTakeover => "inside-takeover",
            FaultPoint::ReplicaApply => "replica-apply",
        }
    }
}

impl fmt::Display for FaultPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An unknown fault-point name.
///
/// ```
/// use replicore::fault::FaultPoint;
/// let err = "mid-pop".parse::<FaultPoint>().unwrap_err();
/// assert_eq!(err.0, "mid-pop");
/// assert!(err.to_string().contains("expected one of"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseFaultPointError(pub String);

impl fmt::Display for ParseFaultPointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown fault point {:?}; expected one of ", self.0)?;
        for (i, p) in FaultPoint::ALL.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(p.name())?;
        }
        Ok(())
    }
}

impl std::error::Error for ParseFaultPointError {}

impl FromStr for FaultPoint {
    type Err = ParseFaultPointError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FaultPoint::ALL
            .into_iter()
            .find(|p| p.name() == s.trim())
            .ok_or_else(|| ParseFaultPointError(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_bad_names_are_typed_errors() {
        for p in FaultPoint::ALL {
            assert_eq!(p.name().parse::<FaultPoint>(), Ok(p));
        }
        let err = "after-lunch".parse::<FaultPoint>().unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("after-lunch") && msg.contains("mid-steal"),
            "{msg}"
        );
    }
}
