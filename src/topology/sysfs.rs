//! Linux sysfs topology detection. (Being filled in: see issue 2.)

use super::{Topology, TopologyError};
use std::path::Path;

/// Reads the topology under `root` (normally `/`; tests pass a fixture tree).
pub(crate) fn detect(root: &Path) -> Result<Topology, TopologyError> {
    Err(TopologyError::Sysfs {
        path: root.join("sys/devices/system/cpu"),
        reason: "sysfs detection not implemented yet".into(),
    })
}

/// The OS CPUs in this process's affinity mask, if it can be read.
pub(crate) fn affinity_mask() -> Option<Vec<usize>> {
    None
}
