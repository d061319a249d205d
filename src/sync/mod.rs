//! The one door to synchronisation primitives.
//!
//! Protocol code (leases, fencing, run-queue replication, the node-replication log, sleep/wake)
//! imports atomics, cells, locks and threads from here and never from `std` directly. Under
//! `RUSTFLAGS="--cfg loom"` every item is loom's, so the `loom-tests` crate model-checks the real
//! code rather than a copy of it. This follows tokio's `src/loom` shim.
//!
//! The wrappers give loom and non-loom builds one API:
//! - [`Mutex::lock`] returns the guard directly (no poisoning: a panicking task never holds one of
//!   our locks, and parking_lot has no poisoning either);
//! - [`Condvar::wait`] takes and returns the guard by value;
//! - [`UnsafeCell`] exposes `with`/`with_mut`, which loom needs to track accesses.

// A shim exports the whole vocabulary; not every build uses every word.
#![allow(dead_code, unused_imports)]

mod backoff;
mod bits;
pub(crate) use backoff::Backoff;
pub(crate) use bits::AtomicBits;

/// Items that exist only outside loom, as tokio's `cfg_not_loom!`: one marker for a run of items
/// instead of one `#[cfg(not(loom))]` each.
macro_rules! cfg_not_loom {
    ($($item:item)*) => { $( #[cfg(not(loom))] $item )* };
}
pub(crate) use cfg_not_loom;

#[cfg(loom)]
mod loom_impl;
#[cfg(not(loom))]
mod std_impl;

#[cfg(loom)]
pub(crate) use loom_impl::*;
#[cfg(not(loom))]
pub(crate) use std_impl::*;

/// The shim's mutex, for the protocol door (`replicore::__protocol`): the takeover sequence takes
/// replicas behind it.
#[cfg(loom)]
pub use loom_impl::Mutex as ShimMutex;
#[cfg(not(loom))]
pub use std_impl::Mutex as ShimMutex;

/// Re-exports for the `loom-tests` crate, which must build its models from the same types.
#[doc(hidden)]
pub mod export {
    #[cfg(loom)]
    pub use loom::{model, thread};
}
