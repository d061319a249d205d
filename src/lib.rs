//! # replicore
//!
//! A runtime for multicore and multi-socket machines, in two halves that share one
//! [`Topology`] model of the machine (CPUs, caches, NUMA nodes):
//!
//! 1. **A work-stealing thread pool that survives stalled and dead workers** ([`ThreadPool`]).
//!    It has a rayon-style API ([`join`], [`scope`], [`spawn`], [`ThreadPool::install`],
//!    [`ThreadPool::broadcast`], [`yield_now`]) and NUMA-aware stealing. Each worker holds a
//!    lease on its CPU; when a worker stops making progress, a neighbour worker (or a low-rate
//!    monitor) fences it and adopts its queued tasks, so none is lost and none starts twice.
//! 2. **NUMA-aware replicated data structures** ([`nr`]): one replica of a plain sequential
//!    structure per NUMA node, a shared log that orders writes, and flat combining within a
//!    node, so reads stay on the local node.
//!
//! Use rayon for data parallelism and tokio for async I/O; use replicore when CPU-bound tasks
//! may block or stall a worker and queued work must still run exactly once, when the pool should
//! follow the machine's NUMA layout, or for a read-mostly structure replicated per node. The
//! README compares it with rayon, tokio, Go's scheduler and node-replication, with measured
//! figures and the current limitations.
//!
//! ## The pool
//!
//! ```
//! use replicore::ThreadPool;
//! let pool = ThreadPool::builder().num_threads(2).build()?;
//! // Fork-join inside the pool: both halves may run in parallel.
//! let sum = pool.install(|| {
//!     let (a, b) = replicore::join(|| (0..1000u64).sum::<u64>(), || (1000..2000u64).sum::<u64>());
//!     a + b
//! });
//! assert_eq!(sum, (0..2000u64).sum());
//! // Borrowing tasks that all finish before `scope` returns.
//! let mut parts = [0u64; 4];
//! pool.scope(|s| {
//!     for (i, p) in parts.iter_mut().enumerate() {
//!         s.spawn(move |_| *p = i as u64 * 10);
//!     }
//! });
//! assert_eq!(parts, [0, 10, 20, 30]);
//! # Ok::<(), replicore::BuildError>(())
//! ```
//!
//! Guarantees (G1–G5, see `ARCHITECTURE.md`): every accepted task runs, also across shutdown
//! (G1, with the crash-coverage gaps listed in the README), no task starts twice (G2), a worker
//! *blocked* for a whole lease is taken over within about two leases, any number of times in a
//! pool's life, while a worker that is merely busy computing is left alone (G3), a fenced worker
//! cannot act under its old ownership and its later pushes are redirected (G4), and a panicking
//! task kills neither its worker nor other tasks: [`join`] and [`scope`] re-raise it, [`spawn`]
//! hands it to the panic handler (G5). The protocol is described in `src/replication/README.md`.
//!
//! ## Node replication
//!
//! ```
//! use replicore::{Topology, nr::ReplicatedHashMap};
//! // Two replicas on a synthetic two-node machine, usable on any box.
//! let topo = Topology::synthetic(2, 1, 1)?;
//! let map = ReplicatedHashMap::new(&topo)?;
//! let on_node0 = map.register(topo.nodes()[0])?;
//! let on_node1 = map.register(topo.nodes()[1])?;
//! on_node0.insert(7u64, 49u64);
//! assert_eq!(on_node1.get(&7), Some(49)); // linearizable across replicas
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Your own structure: implement [`nr::Dispatch`] and wrap it in [`nr::NodeReplicated`].
//!
//! ## The machine
//!
//! [`Topology::detect`] reads Linux sysfs (or hwloc with the `hwloc` feature) and honours the
//! `REPLICORE_TOPOLOGY` environment variable, which describes a synthetic machine:
//!
//! ```
//! use replicore::Topology;
//! let topo: Topology = "numa:2 core:2 pu:1".parse()?;
//! assert_eq!(topo.num_nodes(), 2);
//! # Ok::<(), replicore::TopologyError>(())
//! ```
//!
//! ## Modules and features
//!
//! - [`topology`]: the machine model, detection, synthetic specs, neighbour order.
//! - [`nr`]: node replication, [`nr::ReplicatedHashMap`], [`nr::ReplicatedCounter`].
//! - [`fault`]: fault plans for tests; the injection points only exist with the
//!   `fault-injection` feature.
//!
//! Every protocol is model-checked with loom (`cargo loom`) through an internal shim, and
//! benchmarked with criterion against rayon, tokio, dashmap and node-replication.

pub mod topology;

pub(crate) mod sync;

pub(crate) mod pool;
pub(crate) mod replication;

pub mod nr;

pub mod fault;

pub use topology::{CpuId, NodeId, Topology, TopologyError, TopologySource};

pub use replication::RecoveryStats;

pub use pool::{
    BroadcastContext, BuildError, DEFAULT_LEASE, DEFAULT_REPLICATION_FACTOR, FnContext,
    MAX_REPLICATION_FACTOR, MAX_THREADS, MIN_LEASE, NUM_THREADS_ENV, PoolStats, SchedulerStats,
    Scope, ScopeFifo, ThreadBuilder, ThreadPool, ThreadPoolBuilder, Yield, broadcast,
    current_num_threads, current_thread_has_pending_tasks, current_thread_index, in_place_scope,
    in_place_scope_fifo, join, join_context, max_num_threads, scope, scope_fifo, spawn,
    spawn_broadcast, spawn_fifo, yield_local, yield_now,
};

/// The one door to protocol internals: what the `loom-tests` workspace member model-checks and
/// what the protocol's own doc examples use. Not part of the public API; no stability promise.
#[doc(hidden)]
pub mod __protocol {
    pub use crate::pool::fork::{FORK_WINDOW, ForkWindow, Hunger, LOOK_EVERY};
    pub use crate::pool::job::{
        Handle, HeapJob, Job, JobRef, JobResult, Latch, LoggedTask, SharedJob, StackJob, Starter,
    };
    pub use crate::pool::recovery::nap::{IdleMark, MonitorNap};
    pub use crate::pool::recovery::sources::TakeSources;
    pub use crate::pool::sleep::{Sleep, SleepLatch, Slept};
    pub use crate::replication::*;
    pub use crate::sync::ShimMutex as Mutex;
}

/// Keeps the README's Rust examples compiling and true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
