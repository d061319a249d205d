//! The single atomic claim that starts a task.
//!
//! G2 (at most once) needs one linearization point per task start, no matter how many parties can
//! reach the task: its owner popping it, a thief stealing it, or a successor adopting it from a
//! replica after a takeover. Every path to "run this task" goes through [`Claim::try_claim`]; only
//! the caller that flips the word from `UNCLAIMED` runs the task. The claim orders nothing about the
//! task's payload: whoever reaches the task got its handle through a queue, a log slot or a
//! replica, whose own release/acquire pair (the deque's push and steal, the log's publish) makes
//! the payload visible. The claim's `AcqRel` success only orders the winner against the other
//! claimants, and `is_claimed`'s `Acquire` lets a loser see that the task is taken.

use crate::sync::atomic::{AtomicU64, Ordering};

const UNCLAIMED: u64 = 0;
/// Claimed by a caller that did not say who it is ([`Claim::try_claim`]). Bit 0 clear, so it
/// is never a named claim (those all have bit 0 set, worker 0 in epoch 0 included).
const ANONYMOUS: u64 = 2;

/// A one-shot claim word, which is also the task's header record of *who* took it.
///
/// `try_claim` succeeds for exactly one caller. A worker claims with [`Claim::try_claim_as`], so
/// the word then records the claimer's worker id and lease epoch: that is how a thief's take of
/// another CPU's task is recorded. The victim CPU's log has a single writer, its owner, so a
/// thief never writes to it; the header is the one place both sides already touch. The owner's
/// start of its own task is recorded here too, and nowhere else: replicas drop started tasks by
/// reading their claims (see `Replica::sync`).
///
/// ```
/// use replicore::__protocol::Claim;
/// let c = Claim::new();
/// assert!(!c.is_claimed());
/// assert!(c.try_claim_as(3, 7));
/// assert!(!c.try_claim(), "a second start is refused");
/// assert_eq!(c.claimer(), Some((3, 7)));
/// ```
#[derive(Debug)]
pub struct Claim {
    /// `UNCLAIMED`, `ANONYMOUS`, or `epoch << 32 | holder << 1 | 1`.
    word: AtomicU64,
}

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
    /// use replicore::__protocol::Claim;
    /// let c = Claim::new();
    /// assert!(!c.is_claimed());
    /// ```
    pub fn new() -> Self {
        Self {
            word: AtomicU64::new(UNCLAIMED),
        }
    }

    /// Claims the task. Returns `true` for exactly one caller over the word's life.
    ///
    /// ```
    /// use replicore::__protocol::Claim;
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
        self.claim_with(ANONYMOUS)
    }

    /// Claims the task as worker `holder` under lease epoch `epoch` (`holder < 2^31`), recording
    /// both in the word. Returns `true` for exactly one caller over the word's life.
    #[inline]
    pub fn try_claim_as(&self, holder: u32, epoch: u32) -> bool {
        self.claim_with((u64::from(epoch) << 32) | (u64::from(holder & 0x7fff_ffff) << 1) | 1)
    }

    #[inline]
    fn claim_with(&self, tag: u64) -> bool {
        // A plain load first keeps losers from bouncing the cache line in exclusive mode.
        self.word.load(Ordering::Relaxed) == UNCLAIMED
            && self
                .word
                .compare_exchange(UNCLAIMED, tag, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
    }

    /// Whether someone already claimed it. A `false` may be stale by the time it is read.
    ///
    /// ```
    /// use replicore::__protocol::Claim;
    /// let c = Claim::new();
    /// assert!(c.try_claim());
    /// assert!(c.is_claimed());
    /// ```
    #[inline]
    pub fn is_claimed(&self) -> bool {
        self.word.load(Ordering::Acquire) != UNCLAIMED
    }

    /// The `(holder, epoch)` that claimed the task through [`Claim::try_claim_as`], if any.
    ///
    /// ```
    /// use replicore::__protocol::Claim;
    /// let c = Claim::new();
    /// assert!(c.try_claim_as(0, 0));
    /// assert_eq!(c.claimer(), Some((0, 0)));
    /// let anonymous = Claim::new();
    /// assert!(anonymous.try_claim());
    /// assert_eq!(anonymous.claimer(), None, "claimed, by nobody it can name");
    /// ```
    pub fn claimer(&self) -> Option<(u32, u32)> {
        match self.word.load(Ordering::Acquire) {
            UNCLAIMED | ANONYMOUS => None,
            w => Some((((w >> 1) & 0x7fff_ffff) as u32, (w >> 32) as u32)),
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

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
