//! A replicated counter: the smallest useful [`Dispatch`].

use super::{Dispatch, Handle, NodeReplicated, NrError};
use crate::Topology;
use std::ops::Deref;

/// The sequential counter that [`ReplicatedCounter`] replicates.
///
/// ```
/// use replicore::nr::{Counter, CounterWrite, Dispatch};
/// let mut c = Counter::default();
/// assert_eq!(c.dispatch_mut(CounterWrite::Add(2)), 2);
/// ```
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Counter(pub u64);

/// Reads of a [`Counter`].
///
/// ```
/// use replicore::nr::{Counter, CounterRead, Dispatch};
/// assert_eq!(Counter(5).dispatch(CounterRead::Get), 5);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CounterRead {
    /// The current value.
    Get,
}

/// Writes of a [`Counter`].
///
/// ```
/// use replicore::nr::{Counter, CounterWrite, Dispatch};
/// assert_eq!(Counter(5).dispatch_mut(CounterWrite::Add(1)), 6);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CounterWrite {
    /// Adds (wrapping) and returns the new value.
    Add(u64),
}

impl Dispatch for Counter {
    type ReadOp<'a> = CounterRead;
    type WriteOp = CounterWrite;
    type Response = u64;
    fn dispatch<'a>(&self, op: CounterRead) -> u64 {
        match op {
            CounterRead::Get => self.0,
        }
    }
    fn dispatch_mut(&mut self, op: CounterWrite) -> u64 {
        match op {
            CounterWrite::Add(n) => {
                self.0 = self.0.wrapping_add(n);
                self.0
            }
        }
    }
}

/// A counter replicated per node: increments return the new value, and those values are unique
/// because the log orders every increment.
///
/// ```
/// use replicore::nr::ReplicatedCounter;
/// let topo = replicore::Topology::synthetic(2, 1, 1)?;
/// let counter = ReplicatedCounter::new(&topo)?;
/// let h = counter.register(topo.nodes()[1])?;
/// assert_eq!(h.add(1), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ReplicatedCounter(NodeReplicated<Counter>);

impl ReplicatedCounter {
    /// A counter at 0 with one replica per node of `topo`.
    ///
    /// ```
    /// # use replicore::nr::ReplicatedCounter;
    /// let topo = replicore::Topology::synthetic(1, 1, 1)?;
    /// assert_eq!(ReplicatedCounter::new(&topo)?.num_replicas(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(topo: &Topology) -> Result<Self, NrError> {
        NodeReplicated::new(topo, Counter::default).map(Self)
    }

    /// A counter with explicit sizes.
    ///
    /// ```
    /// # use replicore::nr::{NrConfig, ReplicatedCounter};
    /// let topo = replicore::Topology::synthetic(1, 1, 1)?;
    /// let cfg = NrConfig { log_size: 8, max_batch: 2, lag_bound: 4 };
    /// assert_eq!(ReplicatedCounter::with_config(&topo, cfg)?.config(), cfg);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_config(topo: &Topology, config: super::NrConfig) -> Result<Self, NrError> {
        NodeReplicated::with_config(topo, config, Counter::default).map(Self)
    }
}

impl From<NodeReplicated<Counter>> for ReplicatedCounter {
    /// Wraps a counter built with [`NrBuilder`](super::NrBuilder) (for example with helpers).
    ///
    /// ```
    /// # use replicore::nr::{Counter, HelperConfig, NrBuilder, ReplicatedCounter};
    /// let topo = replicore::Topology::synthetic(2, 1, 1)?;
    /// let nr = NrBuilder::new(&topo).helper(HelperConfig::default()).build(Counter::default)?;
    /// let counter = ReplicatedCounter::from(nr);
    /// assert_eq!(counter.register(topo.nodes()[0])?.add(2), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn from(nr: NodeReplicated<Counter>) -> Self {
        Self(nr)
    }
}

impl Deref for ReplicatedCounter {
    type Target = NodeReplicated<Counter>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl Handle<'_, Counter> {
    /// Adds `n` and returns the counter's new value.
    ///
    /// ```
    /// # use replicore::nr::ReplicatedCounter;
    /// # let topo = replicore::Topology::synthetic(1, 1, 1)?;
    /// # let counter = ReplicatedCounter::new(&topo)?;
    /// let h = counter.register(topo.nodes()[0])?;
    /// assert_eq!(h.add(3), 3);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn add(&self, n: u64) -> u64 {
        self.execute_mut(CounterWrite::Add(n))
    }

    /// The current value (linearizable).
    ///
    /// ```
    /// # use replicore::nr::ReplicatedCounter;
    /// # let topo = replicore::Topology::synthetic(1, 1, 1)?;
    /// # let counter = ReplicatedCounter::new(&topo)?;
    /// assert_eq!(counter.register(topo.nodes()[0])?.get(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get(&self) -> u64 {
        self.execute(CounterRead::Get)
    }
}
