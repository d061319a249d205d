//! Per-CPU lease: an `(epoch, holder)` word, a heartbeat, and the fence.
//!
//! The owner renews with one relaxed store of `(epoch, beat)` into `heartbeat` (no RMW, no
//! syscall). The heartbeat carries the epoch so that a stalled, already-fenced owner that resumes
//! and renews cannot make its successor's lease look alive: the observer only counts beats whose
//! epoch is the lease's current one.
//!
//! The fence is a CAS on `word` from `(e, holder)` to `(e + 1, successor)`: exactly one successor
//! wins, and every later [`Lease::is_current`] check by the old owner reads `e + 1`. The owner's
//! check before each claim or push is a `SeqCst` load, and the fence is a `SeqCst` RMW, so the two
//! are totally ordered: an owner action either follows a check that preceded the fence, or sees
//! the fence.

use std::time::{Duration, Instant};

use crate::sync::atomic::{AtomicU64, Ordering};

fn pack(epoch: u32, low: u32) -> u64 {
    (u64::from(epoch) << 32) | u64::from(low)
}

fn unpack(word: u64) -> (u32, u32) {
    ((word >> 32) as u32, word as u32)
}

/// One CPU's lease. See `src/replication/README.md` for the protocol.
///
/// ```
/// use replicore::__protocol::Lease;
/// let lease = Lease::new(0);
/// let mut me = lease.owner_token();
/// me.renew(&lease);
/// assert!(lease.is_current(me.epoch()));
/// assert_eq!(lease.try_fence(0, 1), Ok(1));
/// assert!(!lease.is_current(me.epoch()), "the old owner now sees it is fenced");
/// ```
#[derive(Debug)]
pub struct Lease {
    /// `epoch << 32 | holder`.
    word: AtomicU64,
    /// `epoch << 32 | beat`, written only by the owner with relaxed stores.
    heartbeat: AtomicU64,
}

/// Why [`Lease::try_fence`] failed.
///
/// ```
/// use replicore::__protocol::{FenceError, Lease};
/// let lease = Lease::new(0);
/// assert_eq!(lease.try_fence(0, 1), Ok(1));
/// // A second successor that also saw epoch 0 expire loses the race.
/// let err = lease.try_fence(0, 2).unwrap_err();
/// assert_eq!(err, FenceError { observed: 0, found: 1 });
/// assert!(err.to_string().contains("already at epoch 1"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FenceError {
    /// The epoch the caller believed current.
    pub observed: u32,
    /// The epoch actually found: someone else already fenced.
    pub found: u32,
}

impl std::fmt::Display for FenceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cannot fence lease at epoch {}: it is already at epoch {} (another successor won); \
             only the current epoch can be fenced",
            self.observed, self.found
        )
    }
}

impl std::error::Error for FenceError {}

impl Lease {
    /// A lease at epoch 0 held by `holder` (a worker id).
    ///
    /// ```
    /// use replicore::__protocol::Lease;
    /// let lease = Lease::new(4);
    /// assert_eq!((lease.epoch(), lease.holder()), (0, 4));
    /// ```
    pub fn new(holder: u32) -> Self {
        Self {
            word: AtomicU64::new(pack(0, holder)),
            heartbeat: AtomicU64::new(pack(0, 0)),
        }
    }

    /// The current epoch.
    ///
    /// ```
    /// use replicore::__protocol::Lease;
    /// let lease = Lease::new(0);
    /// lease.try_fence(0, 1).unwrap();
    /// assert_eq!(lease.epoch(), 1);
    /// ```
    pub fn epoch(&self) -> u32 {
        unpack(self.word.load(Ordering::SeqCst)).0
    }

    /// The current holder.
    ///
    /// ```
    /// use replicore::__protocol::Lease;
    /// let lease = Lease::new(0);
    /// lease.try_fence(0, 5).unwrap();
    /// assert_eq!(lease.holder(), 5, "the successor holds it now");
    /// ```
    pub fn holder(&self) -> u32 {
        unpack(self.word.load(Ordering::SeqCst)).1
    }

    /// A token for whoever holds the lease now (the first owner, or a replacement after a fence).
    ///
    /// ```
    /// use replicore::__protocol::Lease;
    /// let lease = Lease::new(0);
    /// lease.try_fence(0, 1).unwrap();
    /// let replacement = lease.owner_token();
    /// assert_eq!((replacement.epoch(), replacement.holder()), (1, 1));
    /// ```
    pub fn owner_token(&self) -> OwnerToken {
        let (epoch, holder) = unpack(self.word.load(Ordering::SeqCst));
        OwnerToken {
            epoch,
            holder,
            beat: 0,
        }
    }

    /// "Am I still at epoch `epoch`?" One `SeqCst` load, ordered against every fence.
    ///
    /// ```
    /// use replicore::__protocol::Lease;
    /// let lease = Lease::new(0);
    /// assert!(lease.is_current(0));
    /// lease.try_fence(0, 1).unwrap();
    /// assert!(!lease.is_current(0));
    /// ```
    #[inline]
    pub fn is_current(&self, epoch: u32) -> bool {
        unpack(self.word.load(Ordering::SeqCst)).0 == epoch
    }

    /// Fences the owner of `observed_epoch`: CAS `(e, _) -> (e + 1, successor)`. Returns the new
    /// epoch, or a [`FenceError`] if the epoch already moved (exactly one successor wins).
    ///
    /// ```
    /// use replicore::__protocol::Lease;
    /// let lease = Lease::new(0);
    /// // Two successors race to fence epoch 0: exactly one wins.
    /// let wins: usize = std::thread::scope(|s| {
    ///     let racers: Vec<_> = (1..=2)
    ///         .map(|id| {
    ///             let lease = &lease;
    ///             s.spawn(move || lease.try_fence(0, id).is_ok())
    ///         })
    ///         .collect();
    ///     racers.into_iter().map(|r| usize::from(r.join().unwrap())).sum()
    /// });
    /// assert_eq!(wins, 1);
    /// assert_eq!(lease.epoch(), 1);
    /// ```
    pub fn try_fence(&self, observed_epoch: u32, successor: u32) -> Result<u32, FenceError> {
        let mut cur = self.word.load(Ordering::SeqCst);
        loop {
            let (epoch, _) = unpack(cur);
            if epoch != observed_epoch {
                return Err(FenceError {
                    observed: observed_epoch,
                    found: epoch,
                });
            }
            let next = pack(epoch.wrapping_add(1), successor);
            match self
                .word
                .compare_exchange(cur, next, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => return Ok(epoch.wrapping_add(1)),
                Err(now) => cur = now,
            }
        }
    }

    /// The raw heartbeat, `epoch << 32 | beat`.
    ///
    /// ```
    /// use replicore::__protocol::Lease;
    /// let lease = Lease::new(0);
    /// let before = lease.heartbeat();
    /// lease.owner_token().renew(&lease);
    /// assert_ne!(lease.heartbeat(), before);
    /// ```
    pub fn heartbeat(&self) -> u64 {
        self.heartbeat.load(Ordering::Relaxed)
    }
}

/// What the owner keeps on its stack: its epoch and its beat counter.
///
/// ```
/// use replicore::__protocol::Lease;
/// let lease = Lease::new(7);
/// let mut t = lease.owner_token();
/// assert_eq!((t.epoch(), t.holder()), (0, 7));
/// t.renew(&lease);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct OwnerToken {
    epoch: u32,
    holder: u32,
    beat: u32,
}

impl OwnerToken {
    /// The token of the owner of `epoch`, held by `holder` (built from a won fence).
    pub(crate) fn at(epoch: u32, holder: u32) -> Self {
        Self {
            epoch,
            holder,
            beat: 0,
        }
    }

    /// The epoch this owner runs under.
    ///
    /// ```
    /// use replicore::__protocol::Lease;
    /// let lease = Lease::new(0);
    /// let old = lease.owner_token();
    /// lease.try_fence(old.epoch(), 1).unwrap();
    /// assert!(!lease.is_current(old.epoch()), "the old owner's epoch is no longer current");
    /// ```
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// This owner's worker id.
    ///
    /// ```
    /// use replicore::__protocol::Lease;
    /// assert_eq!(Lease::new(9).owner_token().holder(), 9);
    /// ```
    pub fn holder(&self) -> u32 {
        self.holder
    }

    /// Renews the lease: one relaxed store, no RMW. Call at every scheduling point.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use replicore::__protocol::{Lease, LeaseObserver, LeaseState};
    /// let lease = Lease::new(0);
    /// let mut me = lease.owner_token();
    /// let (t0, len) = (Instant::now(), Duration::from_millis(20));
    /// let mut monitor = LeaseObserver::new(t0);
    /// monitor.observe(&lease, t0, len);
    /// me.renew(&lease); // a scheduling point
    /// assert_eq!(monitor.observe(&lease, t0 + len, len), LeaseState::Alive);
    /// ```
    #[inline]
    pub fn renew(&mut self, lease: &Lease) {
        self.beat = self.beat.wrapping_add(1);
        lease
            .heartbeat
            .store(pack(self.epoch, self.beat), Ordering::Relaxed);
    }
}

/// The monitor's view of one lease: judges "the heartbeat has not moved for a full lease".
///
/// `Instant` only times the lease; it orders nothing. `now` is a parameter so that tests can
/// drive the clock.
///
/// ```
/// use std::time::{Duration, Instant};
/// use replicore::__protocol::{Lease, LeaseObserver, LeaseState};
/// let lease = Lease::new(0);
/// let t0 = Instant::now();
/// let mut obs = LeaseObserver::new(t0);
/// let len = Duration::from_millis(20);
/// assert_eq!(obs.observe(&lease, t0, len), LeaseState::Alive);
/// assert_eq!(obs.observe(&lease, t0 + len, len), LeaseState::Expired { epoch: 0 });
/// ```
#[derive(Debug, Clone)]
pub struct LeaseObserver {
    last: Option<(u32, u64)>,
    since: Instant,
}

/// The observer's verdict.
///
/// ```
/// use std::time::{Duration, Instant};
/// use replicore::__protocol::{Lease, LeaseObserver, LeaseState};
/// let lease = Lease::new(0);
/// let (t0, len) = (Instant::now(), Duration::from_millis(20));
/// let mut monitor = LeaseObserver::new(t0);
/// assert_eq!(monitor.observe(&lease, t0, len), LeaseState::Alive);
/// if let LeaseState::Expired { epoch } = monitor.observe(&lease, t0 + len, len) {
///     assert_eq!(lease.try_fence(epoch, 1), Ok(1));
/// }
/// assert_eq!(lease.epoch(), 1);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseState {
    /// The current holder renewed within the last lease.
    Alive,
    /// No renewal under `epoch` for a full lease: fence `epoch`.
    Expired {
        /// The epoch to pass to [`Lease::try_fence`].
        epoch: u32,
    },
}

impl LeaseObserver {
    /// Starts observing at `now`.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use replicore::__protocol::{Lease, LeaseObserver, LeaseState};
    /// let mut monitor = LeaseObserver::new(Instant::now());
    /// // The first sample always grants a full lease.
    /// let len = Duration::from_millis(5);
    /// assert_eq!(monitor.observe(&Lease::new(0), Instant::now(), len), LeaseState::Alive);
    /// ```
    pub fn new(now: Instant) -> Self {
        Self {
            last: None,
            since: now,
        }
    }

    /// Samples the lease at `now` with lease length `lease`.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use replicore::__protocol::{Lease, LeaseObserver, LeaseState};
    /// let lease = Lease::new(0);
    /// let (t0, len) = (Instant::now(), Duration::from_millis(20));
    /// let mut monitor = LeaseObserver::new(t0);
    /// monitor.observe(&lease, t0, len);
    /// assert_eq!(monitor.observe(&lease, t0 + len / 2, len), LeaseState::Alive, "half a lease");
    /// assert_eq!(monitor.observe(&lease, t0 + len, len), LeaseState::Expired { epoch: 0 });
    /// ```
    pub fn observe(&mut self, lease: &Lease, now: Instant, lease_len: Duration) -> LeaseState {
        let epoch = lease.epoch();
        let hb = lease.heartbeat();
        let (hb_epoch, _) = unpack(hb);
        // A beat counts only if it is the current epoch's: a fenced owner's renewals are noise.
        let sample = (epoch, if hb_epoch == epoch { hb } else { 0 });
        if self.last != Some(sample) {
            // Movement (or a new epoch, or a fresh observer): the holder gets a full lease from now.
            self.last = Some(sample);
            self.since = now;
            return LeaseState::Alive;
        }
        if now.saturating_duration_since(self.since) >= lease_len {
            LeaseState::Expired { epoch }
        } else {
            LeaseState::Alive
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn stale_owner_renewals_do_not_keep_successor_alive() {
        let lease = Lease::new(0);
        let mut old = lease.owner_token();
        let len = Duration::from_millis(10);
        let t0 = Instant::now();
        let mut obs = LeaseObserver::new(t0);
        assert_eq!(obs.observe(&lease, t0, len), LeaseState::Alive);
        assert_eq!(lease.try_fence(0, 1), Ok(1));
        assert_eq!(
            lease.try_fence(0, 2),
            Err(FenceError {
                observed: 0,
                found: 1
            })
        );
        // The new epoch gets a full lease from the first sample that sees it.
        assert_eq!(obs.observe(&lease, t0 + len, len), LeaseState::Alive);
        for i in 1..5 {
            old.renew(&lease);
            let now = t0 + len + len * i / 4;
            let _ = obs.observe(&lease, now, len);
        }
        assert_eq!(
            obs.observe(&lease, t0 + len * 2, len),
            LeaseState::Expired { epoch: 1 }
        );
        let mut new = lease.owner_token();
        assert_eq!((new.epoch(), new.holder()), (1, 1));
        new.renew(&lease);
        assert_eq!(obs.observe(&lease, t0 + len * 2, len), LeaseState::Alive);
        assert!(
            FenceError {
                observed: 0,
                found: 1
            }
            .to_string()
            .contains("epoch 1")
        );
    }
}
