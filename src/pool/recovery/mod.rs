//! Recovery: what lets the pool survive a stalled or dead worker with no task lost and none
//! started twice. The protocol itself (claim, lease, the `(epoch, seq)` log, the replica and
//! the one takeover sequence) is `crate::replication`; this folder is the pool's side of it.
//!
//! The scheduler (`registry`, `worker`, `join`, `scope`, ...) reaches recovery only through
//! [`seam`]: a worker renews its lease at its scheduling points, asks whether it is fenced,
//! publishes heap jobs to its CPU's log, and starts logged jobs through their claim. Everything
//! else happens here:
//!
//! | file | what |
//! |---|---|
//! | `state` | per-CPU lease, log, replicas, idle mark and owner thread; takeover counters |
//! | `seam` | the worker's side: renew, is-fenced, publish, start, park/retire marks |
//! | `logged` | logged jobs: a header with the task's single claim |
//! | `judge` | when a silent lease is a stall (blocked, not busy) |
//! | `probe` | the OS's view of a worker thread (state, CPU time) |
//! | `watch` | who looks at which lease, and when |
//! | `takeover` | the pool's hooks into the protocol's takeover sequence |
//! | `monitor` | the backstop thread: replica sync, pruning, expiry when no worker can look |
//! | `nap` | how the monitor waits: a tick while a worker runs, until woken while all are idle |
//! | `sources` | which queues a CPU's worker took from: what its takeover re-offers |
//! | `threads` | worker threads over the pool's life: seats, start, retire, join, shutdown |
//!
//! Dependencies run one way: `state`, `nap`, `sources`, `logged`, `judge`, `probe` and `threads` sit below the
//! registry (it owns their types); `takeover`, `watch`, `monitor` and `seam` sit above it and
//! below the worker.

pub(crate) mod judge;
pub(crate) mod logged;
pub(crate) mod monitor;
pub(crate) mod nap;
pub(crate) mod probe;
pub(crate) mod seam;
pub(crate) mod sources;
pub(crate) mod state;
pub(crate) mod takeover;
pub(crate) mod threads;
pub(crate) mod watch;
