//! The work-stealing thread pool (issue 3).

use crate::{CpuId, NodeId};

/// The CPU and node of the pool worker running on the calling thread, if it is one.
#[allow(dead_code)]
pub(crate) fn current_worker_location() -> Option<(CpuId, NodeId)> {
    None
}
