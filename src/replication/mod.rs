//! Run-queue replication, leases, fencing and takeover: the protocol core the pool's recovery
//! runs on. Crate-internal; `loom-tests` and the doc examples reach it through the hidden
//! `replicore::__protocol` door.
//!
//! The protocol, the call order for the worker loop, thief, monitor and successor, and why
//! G1–G5 hold under crashes and stalls at every line, are in `src/replication/README.md`
//! (included below).
//!
#![doc = include_str!("README.md")]

pub(crate) mod claim;
mod cpu;
mod lease;
mod log;
mod recorder;
mod replica;
mod stamp;
mod stats;
mod tagged_cell;
mod takeover;

pub use claim::Claim;
pub use cpu::{CpuState, Fenced, Start};
pub use lease::{FenceError, Lease, LeaseObserver, LeaseState, OwnerToken};
pub use log::{DEFAULT_LOG_CAPACITY, LogRead, OpLog};
pub use recorder::{Recorded, Recorder};
pub use replica::{Applied, Claimable, PRUNE_AT, Replica, SyncReport};
pub use stamp::Stamp;
pub use stats::{RecoveryStats, ReplicationStats};
pub use takeover::{FencePoint, Outcome, Recovery, Takeover, adopt, fence, lock_within, take_over};
