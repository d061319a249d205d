//! Background propagation: one optional helper thread per node replays the log into its node's
//! replica in bounded batches, so that a replica whose threads are idle (or only read) does not
//! fall far behind, and its next read or write finds little to replay.
//!
//! A helper parks between rounds, never spins: it wakes when its timeout expires, or earlier
//! when a writer on another node sees the replica more than `max_lag` entries behind and unparks
//! it. On waking it replays up to the tail it saw, `batch` entries per hold of the replica's
//! write lock, and parks again. A round that finds nothing to do doubles the timeout, up to 64
//! times `interval`, so an idle structure costs a few wake-ups a second.
//!
//! The helper is only ever *extra*: writers still replay into a replica that holds the log's
//! head back (`lag_bound`), so a helper that is slow to be scheduled costs latency, never
//! progress. A lost wake-up (a writer that read the helper as running just before it parked) is
//! covered by the timeout.

use super::config::NrError;
use std::time::Duration;

/// Settings of the background helpers (see [`NrBuilder::helper`](super::NrBuilder::helper)).
///
/// ```
/// use replicore::nr::HelperConfig;
/// use std::time::Duration;
/// let cfg = HelperConfig { batch: 32, max_lag: 64, interval: Duration::from_millis(2) };
/// assert!(cfg.validate(1024).is_ok());
/// assert!(HelperConfig { batch: 0, ..cfg }.validate(1024).is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HelperConfig {
    /// The most log entries a helper applies per hold of its replica's write lock; the node's
    /// readers wait at most that long for it. `1..=log_size`.
    pub batch: usize,
    /// A writer on another node wakes the helper once the replica is more than this many entries
    /// behind the log tail. `1..=log_size`.
    pub max_lag: usize,
    /// How long a helper parks when nobody wakes it; an idle replica catches up within about
    /// this long after the last write (up to 64 times it once the structure has been idle).
    /// Non-zero, at most one minute.
    pub interval: Duration,
}

impl Default for HelperConfig {
    /// Batches of 64 entries, woken at a lag of 128, 5 ms timeout.
    fn default() -> Self {
        Self {
            batch: 64,
            max_lag: 128,
            interval: Duration::from_millis(5),
        }
    }
}

impl HelperConfig {
    /// Checks the settings against a log of `log_size` entries.
    ///
    /// ```
    /// use replicore::nr::{HelperConfig, NrError};
    /// let bad = HelperConfig { batch: 0, ..HelperConfig::default() };
    /// assert_eq!(bad.validate(1024), Err(NrError::HelperBatchOutOfRange { batch: 0, log_size: 1024 }));
    /// ```
    pub fn validate(&self, log_size: usize) -> Result<(), NrError> {
        if self.batch == 0 || self.batch > log_size {
            return Err(NrError::HelperBatchOutOfRange {
                batch: self.batch,
                log_size,
            });
        }
        if self.max_lag == 0 || self.max_lag > log_size {
            return Err(NrError::HelperMaxLagOutOfRange {
                max_lag: self.max_lag,
                log_size,
            });
        }
        if self.interval.is_zero() || self.interval > Duration::from_secs(60) {
            return Err(NrError::HelperIntervalOutOfRange {
                interval: self.interval,
            });
        }
        Ok(())
    }
}

/// What a writer needs to wake a node's helper, and what the helper loop reads.
#[cfg(not(loom))]
pub(crate) struct Wakers {
    pub(crate) config: HelperConfig,
    pub(crate) stop: std::sync::atomic::AtomicBool,
    /// Per replica: set while its helper is parked; a writer that clears it owes an unpark.
    pub(crate) parked: Box<[crossbeam_utils::CachePadded<std::sync::atomic::AtomicBool>]>,
    /// Per replica: its helper thread, set once the thread is spawned.
    pub(crate) threads: Box<[std::sync::OnceLock<std::thread::Thread>]>,
}

#[cfg(not(loom))]
impl Wakers {
    pub(crate) fn new(config: HelperConfig, replicas: usize) -> Self {
        use std::sync::atomic::AtomicBool;
        Self {
            config,
            stop: AtomicBool::new(false),
            parked: (0..replicas)
                .map(|_| crossbeam_utils::CachePadded::new(AtomicBool::new(false)))
                .collect(),
            threads: (0..replicas).map(|_| std::sync::OnceLock::new()).collect(),
        }
    }

    /// Wakes replica `r`'s helper if it is parked. Returns whether this call woke it.
    pub(crate) fn wake(&self, r: usize) -> bool {
        use std::sync::atomic::Ordering;
        // Look before the swap so that writers which find the helper awake (the common case
        // under load) do not pull its line away with a locked instruction.
        if self.parked[r].load(Ordering::Relaxed) && self.parked[r].swap(false, Ordering::AcqRel) {
            if let Some(t) = self.threads[r].get() {
                t.unpark();
            }
            return true;
        }
        false
    }

    /// Stops every helper: they see `stop` at their next wake, which this forces.
    pub(crate) fn stop_all(&self) {
        use std::sync::atomic::Ordering;
        self.stop.store(true, Ordering::Release);
        for t in self.threads.iter().filter_map(|t| t.get()) {
            t.unpark();
        }
    }
}

/// Under loom no helper thread runs (loom cannot model a timed park); the helper's replay step,
/// `Shared::helper_step`, is model-checked directly.
#[cfg(loom)]
pub(crate) struct Wakers {
    pub(crate) config: HelperConfig,
}

#[cfg(loom)]
impl Wakers {
    pub(crate) fn new(config: HelperConfig, _replicas: usize) -> Self {
        Self { config }
    }

    pub(crate) fn wake(&self, _r: usize) -> bool {
        false
    }
}
