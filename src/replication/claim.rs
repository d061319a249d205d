//! The single atomic claim that starts a task.
//!
//! G2 (at most once) needs one linearization point per task start, no matter how many parties can
//! reach the task: its owner popping it, a thief stealing it, or a successor adopting it from a
//! replica after a takeover. Every path to "run this task" goes through [`Claim::try_claim`]; only
//! the caller that flips the word from `UNCLAIMED` runs the task. The `Acquire` on success pairs
//! with the `Release` in [`Claim::new`]'s publication by the spawner, so the winner sees the task's
//! payload.

use crate::sync::atomic::{AtomicUsize, Ordering};

const UNCLAIMED: usize = 0;
const CLAIMED: usize = 1;

/// A one-shot claim word. `try_claim` succeeds for exactly one caller.
///
/// ```
/// use replicore::replication::Claim;
/// let c = Claim::new();
/// assert!(!c.is_claimed());
/// assert!(c.try_claim());
/// assert!(!c.try_claim(), "a second start is refused");
/// ```
#[derive(Debug)]
pub struct Claim(AtomicUsize);

impl Default for Claim {
    fn default() -> Self {
        Self::new()
    }
}

impl AsRef<Claim> for Claim {
    fn as_ref(&self) -> &Claim {
        self
    }
}

impl Claim {
    /// A fresh, unclaimed word.
    ///
    /// ```
    /// use replicore::replication::Claim;
    /// let c = Claim::new();
    /// assert!(!c.is_claimed());
    /// ```
    pub fn new() -> Self {
        Self(AtomicUsize::new(UNCLAIMED))
    }

    /// Claims the task. Returns `true` for exactly one caller over the word's life.
    ///
    /// ```
    /// use replicore::replication::Claim;
    /// let c = Claim::new();
    /// // Four threads race to start the same task: exactly one wins.
    /// let winners: usize = std::thread::scope(|s| {
    ///     let racers: Vec<_> = (0..4).map(|_| s.spawn(|| c.try_claim())).collect();
    ///     racers.into_iter().map(|r| usize::from(r.join().unwrap())).sum()
    /// });
    /// assert_eq!(winners, 1);
    /// ```
    #[inline]
    pub fn try_claim(&self) -> bool {
        // A plain load first keeps losers from bouncing the cache line in exclusive mode.
        self.0.load(Ordering::Relaxed) == UNCLAIMED
            && self
                .0
                .compare_exchange(UNCLAIMED, CLAIMED, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
    }

    /// Whether someone already claimed it. A `false` may be stale by the time it is read.
    ///
    /// ```
    /// use replicore::replication::Claim;
    /// let c = Claim::new();
    /// assert!(c.try_claim());
    /// assert!(c.is_claimed());
    /// ```
    #[inline]
    pub fn is_claimed(&self) -> bool {
        self.0.load(Ordering::Acquire) != UNCLAIMED
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn exactly_one_of_many_threads_wins() {
        for _ in 0..200 {
            let claim = Claim::new();
            let wins = AtomicUsize::new(0);
            std::thread::scope(|s| {
                for _ in 0..4 {
                    s.spawn(|| {
                        if claim.try_claim() {
                            wins.fetch_add(1, Ordering::Relaxed);
                        }
                    });
                }
            });
            assert_eq!(wins.load(Ordering::Relaxed), 1);
            assert!(claim.is_claimed());
        }
    }
}
