//! Sizing of a [`NodeReplicated`](super::NodeReplicated) and the errors it reports.

use crate::NodeId;
use std::fmt;
use std::time::Duration;

/// Sizes of the shared log and of combiner batches.
///
/// Every field has a default that suits a read-mostly structure; under `cfg(loom)` the defaults
/// shrink so that model checking stays small.
///
/// ```
/// use replicore::nr::NrConfig;
/// let cfg = NrConfig { log_size: 1024, max_batch: 32, lag_bound: 512 };
/// assert!(cfg.validate().is_ok());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NrConfig {
    /// Entries in the circular write log. A power of two, at least 2.
    pub log_size: usize,
    /// The most write operations one combiner appends as a single batch; `1..=log_size`.
    pub max_batch: usize,
    /// How far (in log entries) a replica may fall behind the log tail before a writer on another
    /// node replays the log into it; `1..=log_size`.
    pub lag_bound: usize,
}

impl Default for NrConfig {
    /// 1024 log entries, batches of up to 64, lag bound 512. The log is kept small on purpose:
    /// every write streams through it, and a log much larger than the cache evicts the
    /// structure itself (a 16k-entry log made single-thread hash-map writes about twice as slow
    /// as this one in a quick probe on the development box).
    fn default() -> Self {
        if cfg!(loom) {
            Self {
                log_size: 4,
                max_batch: 2,
                lag_bound: 4,
            }
        } else {
            Self {
                log_size: 1 << 10,
                max_batch: 64,
                lag_bound: 1 << 9,
            }
        }
    }
}

impl NrConfig {
    /// Checks that the sizes are possible.
    ///
    /// ```
    /// use replicore::nr::{NrConfig, NrError};
    /// let bad = NrConfig { log_size: 6, ..NrConfig::default() };
    /// assert_eq!(bad.validate(), Err(NrError::LogSizeNotPowerOfTwo { log_size: 6 }));
    /// ```
    pub fn validate(&self) -> Result<(), NrError> {
        if self.log_size < 2 || !self.log_size.is_power_of_two() {
            return Err(NrError::LogSizeNotPowerOfTwo {
                log_size: self.log_size,
            });
        }
        if self.max_batch == 0 || self.max_batch > self.log_size {
            return Err(NrError::BatchOutOfRange {
                max_batch: self.max_batch,
                log_size: self.log_size,
            });
        }
        if self.lag_bound == 0 || self.lag_bound > self.log_size {
            return Err(NrError::LagBoundOutOfRange {
                lag_bound: self.lag_bound,
                log_size: self.log_size,
            });
        }
        Ok(())
    }
}

/// What went wrong when building a [`NodeReplicated`](super::NodeReplicated) or registering a
/// thread with it.
///
/// ```
/// use replicore::{NodeId, Topology};
/// use replicore::nr::{NrError, ReplicatedCounter};
/// let topo = Topology::synthetic(2, 1, 1)?;
/// let counter = ReplicatedCounter::new(&topo)?;
/// let err = counter.register(NodeId(7)).err().unwrap();
/// assert_eq!(err, NrError::UnknownNode { node: NodeId(7), num_nodes: 2 });
/// println!("{err}");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NrError {
    /// `log_size` is not a power of two of at least 2.
    LogSizeNotPowerOfTwo {
        /// The rejected size.
        log_size: usize,
    },
    /// `max_batch` is 0 or larger than the log.
    BatchOutOfRange {
        /// The rejected batch size.
        max_batch: usize,
        /// The log size it was checked against.
        log_size: usize,
    },
    /// `lag_bound` is 0 or larger than the log.
    LagBoundOutOfRange {
        /// The rejected bound.
        lag_bound: usize,
        /// The log size it was checked against.
        log_size: usize,
    },
    /// The node is not one of the topology's nodes.
    UnknownNode {
        /// The node asked for.
        node: NodeId,
        /// How many nodes (and replicas) there are.
        num_nodes: usize,
    },
    /// The topology has no NUMA node to put a replica on.
    NoNodes,
    /// A helper's `batch` is 0 or larger than the log.
    HelperBatchOutOfRange {
        /// The rejected batch size.
        batch: usize,
        /// The log size it was checked against.
        log_size: usize,
    },
    /// A helper's `max_lag` is 0 or larger than the log.
    HelperMaxLagOutOfRange {
        /// The rejected lag.
        max_lag: usize,
        /// The log size it was checked against.
        log_size: usize,
    },
    /// A helper's `interval` is zero (a helper would spin) or over a minute.
    HelperIntervalOutOfRange {
        /// The rejected interval.
        interval: Duration,
    },
    /// A helper thread could not be started.
    HelperSpawn {
        /// The operating system's reason.
        reason: String,
    },
}

impl fmt::Display for NrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NrError::LogSizeNotPowerOfTwo { log_size } => write!(
                f,
                "log_size {log_size} is not allowed: it must be a power of two and at least 2"
            ),
            NrError::BatchOutOfRange {
                max_batch,
                log_size,
            } => write!(
                f,
                "max_batch {max_batch} is not allowed: it must be between 1 and the log size ({log_size})"
            ),
            NrError::LagBoundOutOfRange {
                lag_bound,
                log_size,
            } => write!(
                f,
                "lag_bound {lag_bound} is not allowed: it must be between 1 and the log size ({log_size})"
            ),
            NrError::UnknownNode { node, num_nodes } => write!(
                f,
                "node {} does not exist: the topology has nodes 0..{num_nodes}",
                node.0
            ),
            NrError::NoNodes => write!(f, "the topology has no NUMA node; at least one is needed"),
            NrError::HelperBatchOutOfRange { batch, log_size } => write!(
                f,
                "helper batch {batch} is not allowed: it must be between 1 and the log size ({log_size})"
            ),
            NrError::HelperMaxLagOutOfRange { max_lag, log_size } => write!(
                f,
                "helper max_lag {max_lag} is not allowed: it must be between 1 and the log size ({log_size})"
            ),
            NrError::HelperIntervalOutOfRange { interval } => write!(
                f,
                "helper interval {interval:?} is not allowed: it must be more than zero and at most 60 s"
            ),
            NrError::HelperSpawn { reason } => {
                write!(
                    f,
                    "could not start a node-replication helper thread: {reason}"
                )
            }
        }
    }
}

impl std::error::Error for NrError {}
