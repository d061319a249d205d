//! Where the calling thread runs, as recorded by whoever placed it there.
//!
//! A pool worker records its CPU and node when it starts. Node replication reads the record to
//! pick the calling thread's replica, so neither half of the crate needs to know about the
//! other: both only know the topology.

use super::{CpuId, NodeId};

crate::sync::cfg_not_loom! {
    use std::cell::Cell;

    thread_local! {
        static HERE: Cell<Option<(CpuId, NodeId)>> = const { Cell::new(None) };
    }

    /// Records (or, with `None`, forgets) the calling thread's CPU and node.
    pub(crate) fn set_current_location(location: Option<(CpuId, NodeId)>) {
        HERE.with(|h| h.set(location));
    }

    /// The calling thread's recorded CPU and node, if whoever started it placed it.
    pub(crate) fn current_location() -> Option<(CpuId, NodeId)> {
        HERE.with(Cell::get)
    }
}

/// Under loom no thread is placed (models run the protocol pieces on loom threads, which share
/// one OS thread, so a thread-local would be shared too).
#[cfg(loom)]
pub(crate) fn current_location() -> Option<(CpuId, NodeId)> {
    None
}

/// Under loom nothing is recorded (see `current_location`).
#[cfg(loom)]
pub(crate) fn set_current_location(_: Option<(CpuId, NodeId)>) {}
