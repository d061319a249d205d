//! Topology detection through hwlocality (the `hwloc` feature). (Being filled in: see issue 2.)

use super::{Topology, TopologyError};

impl Topology {
    /// Builds the topology with hwloc.
    ///
    /// ```
    /// # #[cfg(feature = "hwloc")]
    /// let _ = replicore::Topology::from_hwloc();
    /// ```
    pub fn from_hwloc() -> Result<Topology, TopologyError> {
        Err(TopologyError::Hwloc("not implemented yet".into()))
    }
}
