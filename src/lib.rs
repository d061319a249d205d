//! # replicore
//!
//! A runtime for multicore and multi-socket machines, in two halves that share one
//! [`Topology`] model:
//!
//! 1. **A fault-tolerant work-stealing thread pool.** One worker per CPU, NUMA-aware stealing,
//!    and run queues replicated to neighbour CPUs so that a stalled or dead worker's core is
//!    taken over with no task lost and none started twice.
//! 2. **NUMA-aware replicated data structures** ([`nr`]): one replica of a sequential structure
//!    per NUMA node, a shared log ordering writes, and flat combining within a node.
//!
//! Both halves are model-checked with loom (`cargo loom`) and benchmarked with criterion.
//!
//! ```
//! use replicore::Topology;
//! // A synthetic two-socket machine, usable on any box.
//! let topo: Topology = "numa:2 core:2 pu:1".parse()?;
//! assert_eq!(topo.num_nodes(), 2);
//! # Ok::<(), replicore::TopologyError>(())
//! ```

pub mod topology;

pub(crate) mod sync;

pub(crate) mod pool;
pub mod replication;

pub mod nr;

pub mod fault;

pub use topology::{CpuId, NodeId, Topology, TopologyError, TopologySource};

#[cfg(not(loom))]
pub use pool::{
    BroadcastContext, BuildError, DEFAULT_LEASE, DEFAULT_REPLICATION_FACTOR,
    MAX_REPLICATION_FACTOR, MAX_THREADS, MIN_LEASE, PoolStats, Scope, ThreadPool,
    ThreadPoolBuilder, Yield, current_thread_index, join, scope, spawn, yield_now,
};

/// Crate internals that the `loom-tests` workspace member model-checks. Only built under
/// `--cfg loom`; not part of the public API.
#[cfg(loom)]
#[doc(hidden)]
pub mod __loom {
    pub use crate::pool::job::{HeapJob, Job, JobRef, JobResult, Latch, SharedJob, StackJob};
    pub use crate::pool::sleep::{CoreLatch, Sleep, Slept};
    pub use crate::replication::claim::Claim;
    pub use crate::replication::*;
}

/// Keeps the README's Rust examples compiling and true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
