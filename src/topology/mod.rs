//! The machine model shared by the pool and node replication.
//!
//! A [`Topology`] is a set of logical CPUs ([`CpuId`]) grouped into NUMA nodes ([`NodeId`]), with
//! SMT-sibling and cache-sharing groups and a node distance matrix. It comes from the machine
//! ([`Topology::detect`]: Linux sysfs, or hwloc with the `hwloc` feature) or from a synthetic
//! description (`"numa:2 core:4 pu:2".parse()`), which is how multi-socket code paths run on a
//! small box. Nothing in replicore may assume a synthetic node is physically remote.

mod bind;
mod error;
#[cfg(feature = "hwloc")]
mod hwloc;
mod location;
mod spec;
mod sysfs;

pub(crate) use bind::{bind_current_thread, current_os_cpu};
pub use error::TopologyError;
/// The process's hwloc topology, shared with node replication's memory binding.
#[cfg(feature = "hwloc")]
pub(crate) use hwloc::shared as hwloc_topology;
pub(crate) use location::{current_location, set_current_location};

use std::collections::BTreeMap;
use std::fmt;

/// A logical CPU (a hardware thread, "PU" in hwloc terms): the thing a worker is pinned to.
///
/// For a detected topology this is the operating system's CPU number; for a synthetic one it is
/// `0..num_cpus()`.
///
/// ```
/// use replicore::{CpuId, Topology};
/// let topo = Topology::synthetic(1, 2, 1).unwrap();
/// assert_eq!(topo.cpus(), &[CpuId(0), CpuId(1)]);
/// ```
#[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct CpuId(pub usize);

/// A NUMA node.
///
/// ```
/// use replicore::{CpuId, NodeId, Topology};
/// let topo = Topology::synthetic(2, 1, 1).unwrap();
/// assert_eq!(topo.node_of(CpuId(1)), NodeId(1));
/// ```
#[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct NodeId(pub usize);

impl fmt::Display for CpuId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cpu{}", self.0)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node{}", self.0)
    }
}

/// Where a [`Topology`] came from.
///
/// ```
/// use replicore::{Topology, TopologySource};
/// assert_eq!(Topology::synthetic(1, 1, 1).unwrap().source(), TopologySource::Synthetic);
/// ```
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub enum TopologySource {
    /// Read from Linux sysfs.
    Sysfs,
    /// Built by hwlocality (the `hwloc` feature).
    Hwloc,
    /// No usable machine description: one node with `available_parallelism` CPUs.
    Fallback,
    /// Described by the user (a spec string, [`Topology::synthetic`] or `REPLICORE_TOPOLOGY`).
    Synthetic,
}

/// One logical CPU as the builders describe it, before validation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CpuDesc {
    pub(crate) id: CpuId,
    pub(crate) node: NodeId,
    /// Physical core: CPUs with the same `core` are SMT siblings.
    pub(crate) core: usize,
    /// L2 and L3 sharing groups (any id unique per cache instance), if known.
    pub(crate) l2: Option<usize>,
    pub(crate) l3: Option<usize>,
    /// The real OS CPU to pin to.
    pub(crate) os_cpu: usize,
}

/// The machine: CPUs, NUMA nodes, cache sharing and node distances.
///
/// ```
/// use replicore::{CpuId, NodeId, Topology};
/// let topo: Topology = "numa:2 core:2 pu:1".parse()?;
/// assert_eq!(topo.num_nodes(), 2);
/// assert_eq!(topo.num_cpus(), 4);
/// assert_eq!(topo.cpus_of(NodeId(1)), &[CpuId(2), CpuId(3)]);
/// assert_eq!(topo.distance(NodeId(0), NodeId(1)), 20);
/// // Nearest first: the same node before the other node.
/// assert_eq!(topo.neighbours(CpuId(0))[0], CpuId(1));
/// # Ok::<(), replicore::TopologyError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topology {
    /// Sorted by id.
    cpus: Vec<CpuDesc>,
    cpu_ids: Vec<CpuId>,
    /// Sorted node ids, and the CPUs of each (sorted), same order.
    node_ids: Vec<NodeId>,
    node_cpus: Vec<Vec<CpuId>>,
    /// `distances[i][j]` between `node_ids[i]` and `node_ids[j]`.
    distances: Vec<Vec<u32>>,
    source: TopologySource,
}

/// Distance the synthetic builders use within a node, as ACPI SLIT does.
///
/// ```
/// use replicore::topology::LOCAL_DISTANCE;
/// use replicore::{NodeId, Topology};
/// let topo = Topology::synthetic(2, 1, 1)?;
/// assert_eq!(topo.distance(NodeId(0), NodeId(0)), LOCAL_DISTANCE);
/// # Ok::<(), replicore::TopologyError>(())
/// ```
pub const LOCAL_DISTANCE: u32 = 10;
/// Distance the synthetic builders use between two different nodes.
///
/// ```
/// use replicore::topology::REMOTE_DISTANCE;
/// use replicore::{NodeId, Topology};
/// let topo = Topology::synthetic(2, 1, 1)?;
/// assert_eq!(topo.distance(NodeId(0), NodeId(1)), REMOTE_DISTANCE);
/// # Ok::<(), replicore::TopologyError>(())
/// ```
pub const REMOTE_DISTANCE: u32 = 20;

/// The environment variable that, when set, makes [`Topology::detect`] return its synthetic spec.
///
/// ```
/// use replicore::topology::TOPOLOGY_ENV;
/// // What `REPLICORE_TOPOLOGY="numa:2 core:2" cargo run ...` gives `Topology::detect`:
/// let spec = std::env::var(TOPOLOGY_ENV).unwrap_or_else(|_| "numa:2 core:2".to_string());
/// let topo: replicore::Topology = spec.parse()?;
/// assert!(topo.num_cpus() >= 1);
/// # Ok::<(), replicore::TopologyError>(())
/// ```
pub const TOPOLOGY_ENV: &str = "REPLICORE_TOPOLOGY";

impl Topology {
    /// Describes the machine this process runs on.
    ///
    /// - If `REPLICORE_TOPOLOGY` is set, its synthetic spec is parsed and returned instead (an
    ///   unparsable value is an error, not silently ignored).
    /// - With the `hwloc` feature, the topology comes from hwlocality.
    /// - Otherwise, on Linux, from sysfs, restricted to the process affinity mask.
    /// - When none of that is readable: one node with `available_parallelism` CPUs.
    ///
    /// ```
    /// let topo = replicore::Topology::detect()?;
    /// assert!(topo.num_cpus() >= 1);
    /// # Ok::<(), replicore::TopologyError>(())
    /// ```
    pub fn detect() -> Result<Topology, TopologyError> {
        if let Ok(spec) = std::env::var(TOPOLOGY_ENV) {
            return spec.parse::<Topology>().map_err(|e| TopologyError::Env {
                var: TOPOLOGY_ENV,
                source: Box::new(e),
            });
        }
        Self::detect_machine()
    }

    /// Detects the real machine, ignoring `REPLICORE_TOPOLOGY`.
    ///
    /// ```
    /// let topo = replicore::Topology::detect_machine()?;
    /// assert!(topo.num_nodes() >= 1);
    /// # Ok::<(), replicore::TopologyError>(())
    /// ```
    pub fn detect_machine() -> Result<Topology, TopologyError> {
        #[cfg(feature = "hwloc")]
        {
            if let Ok(topo) = Self::from_hwloc() {
                return Ok(topo);
            }
        }
        match sysfs::detect(std::path::Path::new("/")) {
            Ok(topo) => Ok(topo),
            Err(_) => Ok(Self::fallback()),
        }
    }

    /// One node holding `available_parallelism` CPUs with no cache information.
    ///
    /// ```
    /// let topo = replicore::Topology::fallback();
    /// assert_eq!(topo.num_nodes(), 1);
    /// ```
    pub fn fallback() -> Topology {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        let cpus = (0..n)
            .map(|i| CpuDesc {
                id: CpuId(i),
                node: NodeId(0),
                core: i,
                l2: None,
                l3: None,
                os_cpu: i,
            })
            .collect();
        Self::from_parts(cpus, None, TopologySource::Fallback)
            .expect("a one-node fallback topology is always valid")
    }

    /// A synthetic machine of `nodes` NUMA nodes × `cores_per_node` cores × `pus_per_core` SMT
    /// threads, with distances 10 (local) and 20 (remote). Each core has a private L2 and each node
    /// one shared L3. Synthetic CPUs map round-robin onto the real CPUs this process may use.
    ///
    /// ```
    /// let topo = replicore::Topology::synthetic(4, 2, 1)?;
    /// assert_eq!(topo.num_cpus(), 8);
    /// assert!(replicore::Topology::synthetic(0, 2, 1).is_err());
    /// # Ok::<(), replicore::TopologyError>(())
    /// ```
    pub fn synthetic(
        nodes: usize,
        cores_per_node: usize,
        pus_per_core: usize,
    ) -> Result<Topology, TopologyError> {
        spec::build_synthetic(nodes, cores_per_node, pus_per_core, None)
    }

    /// Replaces the node distance matrix. It must be `num_nodes() × num_nodes()`, symmetric, with
    /// the smallest value of each row on the diagonal.
    ///
    /// ```
    /// let topo = replicore::Topology::synthetic(2, 1, 1)?
    ///     .with_distances(vec![vec![10, 32], vec![32, 10]])?;
    /// assert_eq!(topo.distance(replicore::NodeId(0), replicore::NodeId(1)), 32);
    /// # Ok::<(), replicore::TopologyError>(())
    /// ```
    pub fn with_distances(mut self, distances: Vec<Vec<u32>>) -> Result<Topology, TopologyError> {
        validate_distances(&distances, self.node_ids.len())?;
        self.distances = distances;
        Ok(self)
    }

    /// Validates CPU descriptions and builds the derived indexes. `distances` defaults to
    /// 10/20 and is indexed by the sorted node ids.
    pub(crate) fn from_parts(
        mut cpus: Vec<CpuDesc>,
        distances: Option<Vec<Vec<u32>>>,
        source: TopologySource,
    ) -> Result<Topology, TopologyError> {
        if cpus.is_empty() {
            return Err(TopologyError::Empty {
                what: "CPUs",
                hint: "a topology needs at least one CPU in at least one node",
            });
        }
        cpus.sort_by_key(|c| c.id);
        if let Some(w) = cpus.windows(2).find(|w| w[0].id == w[1].id) {
            return Err(TopologyError::DuplicateCpu { cpu: w[0].id.0 });
        }
        let mut by_node: BTreeMap<NodeId, Vec<CpuId>> = BTreeMap::new();
        for c in &cpus {
            by_node.entry(c.node).or_default().push(c.id);
        }
        let node_ids: Vec<NodeId> = by_node.keys().copied().collect();
        let node_cpus: Vec<Vec<CpuId>> = by_node.into_values().collect();
        let distances = match distances {
            Some(d) => {
                validate_distances(&d, node_ids.len())?;
                d
            }
            None => default_distances(node_ids.len()),
        };
        let cpu_ids = cpus.iter().map(|c| c.id).collect();
        Ok(Topology {
            cpus,
            cpu_ids,
            node_ids,
            node_cpus,
            distances,
            source,
        })
    }

    /// Number of logical CPUs.
    ///
    /// ```
    /// assert_eq!(replicore::Topology::synthetic(2, 2, 2).unwrap().num_cpus(), 8);
    /// ```
    pub fn num_cpus(&self) -> usize {
        self.cpus.len()
    }

    /// Number of NUMA nodes that hold at least one usable CPU.
    ///
    /// ```
    /// assert_eq!(replicore::Topology::synthetic(2, 2, 2).unwrap().num_nodes(), 2);
    /// ```
    pub fn num_nodes(&self) -> usize {
        self.node_ids.len()
    }

    /// All CPUs, in increasing id order.
    ///
    /// ```
    /// use replicore::CpuId;
    /// let topo = replicore::Topology::synthetic(1, 3, 1).unwrap();
    /// assert_eq!(topo.cpus(), &[CpuId(0), CpuId(1), CpuId(2)]);
    /// ```
    pub fn cpus(&self) -> &[CpuId] {
        &self.cpu_ids
    }

    /// All nodes, in increasing id order.
    ///
    /// ```
    /// use replicore::NodeId;
    /// let topo = replicore::Topology::synthetic(2, 1, 1).unwrap();
    /// assert_eq!(topo.nodes(), &[NodeId(0), NodeId(1)]);
    /// ```
    pub fn nodes(&self) -> &[NodeId] {
        &self.node_ids
    }

    /// Where this description came from.
    ///
    /// ```
    /// let t = replicore::Topology::fallback();
    /// assert_eq!(t.source(), replicore::TopologySource::Fallback);
    /// ```
    pub fn source(&self) -> TopologySource {
        self.source
    }

    /// Position of `cpu` in [`cpus`](Self::cpus), or `None` if it is not part of this topology.
    ///
    /// ```
    /// use replicore::CpuId;
    /// let topo = replicore::Topology::synthetic(1, 2, 1).unwrap();
    /// assert_eq!(topo.cpu_index(CpuId(1)), Some(1));
    /// assert_eq!(topo.cpu_index(CpuId(7)), None);
    /// ```
    pub fn cpu_index(&self, cpu: CpuId) -> Option<usize> {
        self.cpu_ids.binary_search(&cpu).ok()
    }

    /// Position of `node` in [`nodes`](Self::nodes), or `None` if it is not part of this topology.
    ///
    /// ```
    /// use replicore::NodeId;
    /// let topo = replicore::Topology::synthetic(2, 1, 1).unwrap();
    /// assert_eq!(topo.node_index(NodeId(1)), Some(1));
    /// ```
    pub fn node_index(&self, node: NodeId) -> Option<usize> {
        self.node_ids.binary_search(&node).ok()
    }

    fn cpu(&self, cpu: CpuId) -> &CpuDesc {
        match self.cpu_index(cpu) {
            Some(i) => &self.cpus[i],
            None => panic!(
                "{cpu} is not part of this topology (it has {:?})",
                self.cpu_ids
            ),
        }
    }

    /// The node `cpu` belongs to.
    ///
    /// # Panics
    /// If `cpu` is not part of this topology; use [`cpu_index`](Self::cpu_index) to check first.
    ///
    /// ```
    /// use replicore::{CpuId, NodeId};
    /// let topo = replicore::Topology::synthetic(2, 2, 1).unwrap();
    /// assert_eq!(topo.node_of(CpuId(3)), NodeId(1));
    /// ```
    pub fn node_of(&self, cpu: CpuId) -> NodeId {
        self.cpu(cpu).node
    }

    /// The CPUs of `node`, in increasing order; empty for an unknown node.
    ///
    /// ```
    /// use replicore::{CpuId, NodeId};
    /// let topo = replicore::Topology::synthetic(2, 2, 1).unwrap();
    /// assert_eq!(topo.cpus_of(NodeId(0)), &[CpuId(0), CpuId(1)]);
    /// assert!(topo.cpus_of(NodeId(9)).is_empty());
    /// ```
    pub fn cpus_of(&self, node: NodeId) -> &[CpuId] {
        match self.node_index(node) {
            Some(i) => &self.node_cpus[i],
            None => &[],
        }
    }

    /// The SLIT-style distance between two nodes (10 = local).
    ///
    /// # Panics
    /// If either node is not part of this topology.
    ///
    /// ```
    /// use replicore::NodeId;
    /// let topo = replicore::Topology::synthetic(2, 1, 1).unwrap();
    /// assert_eq!(topo.distance(NodeId(0), NodeId(0)), 10);
    /// ```
    pub fn distance(&self, a: NodeId, b: NodeId) -> u32 {
        let idx = |n: NodeId| match self.node_index(n) {
            Some(i) => i,
            None => panic!(
                "{n} is not part of this topology (it has {:?})",
                self.node_ids
            ),
        };
        self.distances[idx(a)][idx(b)]
    }

    /// The OS CPU that a worker for `cpu` is pinned to. For a detected topology it is `cpu` itself;
    /// a synthetic CPU maps round-robin onto the CPUs this process may run on.
    ///
    /// ```
    /// use replicore::CpuId;
    /// let topo = replicore::Topology::synthetic(1, 1, 1).unwrap();
    /// let _real = topo.os_cpu(CpuId(0));
    /// ```
    pub fn os_cpu(&self, cpu: CpuId) -> usize {
        self.cpu(cpu).os_cpu
    }

    /// Every other CPU, nearest first: SMT siblings, then CPUs sharing an L2, then an L3, then the
    /// rest of the node, then other nodes by increasing distance.
    ///
    /// Ties are broken by a rotation that starts just after `cpu`, so that the first successor of
    /// each CPU is a different CPU and takeovers spread instead of piling onto CPU 0.
    ///
    /// ```
    /// use replicore::CpuId;
    /// let topo: replicore::Topology = "numa:2 core:2 pu:2".parse().unwrap();
    /// let n = topo.neighbours(CpuId(0));
    /// assert_eq!(n[0], CpuId(1)); // SMT sibling
    /// assert!(n[..3].iter().all(|c| c.0 < 4)); // then the rest of node 0
    /// assert_eq!(n.len(), 7);
    /// ```
    pub fn neighbours(&self, cpu: CpuId) -> Vec<CpuId> {
        let me = self.cpu(cpu);
        let me_idx = self.cpu_index(cpu).expect("checked by self.cpu");
        let n = self.cpus.len();
        let my_node = self.node_index(me.node).expect("node of a known CPU");
        let mut others: Vec<(u8, u32, usize, CpuId)> = self
            .cpus
            .iter()
            .enumerate()
            .filter(|(_, c)| c.id != cpu)
            .map(|(i, c)| {
                let level = if c.node != me.node {
                    4
                } else if c.core == me.core {
                    0
                } else if me.l2.is_some() && c.l2 == me.l2 {
                    1
                } else if me.l3.is_some() && c.l3 == me.l3 {
                    2
                } else {
                    3
                };
                let node_idx = self.node_index(c.node).expect("node of a known CPU");
                let dist = self.distances[my_node][node_idx];
                let rotation = (i + n - me_idx) % n;
                (level, dist, rotation, c.id)
            })
            .collect();
        others.sort_unstable();
        others.into_iter().map(|(.., id)| id).collect()
    }

    /// Real CPUs this process may run on, used to map synthetic CPUs for pinning.
    pub(crate) fn allowed_os_cpus() -> Vec<usize> {
        match sysfs::affinity_mask() {
            Some(mask) if !mask.is_empty() => mask,
            _ => {
                let n = std::thread::available_parallelism().map_or(1, |n| n.get());
                (0..n).collect()
            }
        }
    }
}

fn default_distances(n: usize) -> Vec<Vec<u32>> {
    (0..n)
        .map(|i| {
            (0..n)
                .map(|j| {
                    if i == j {
                        LOCAL_DISTANCE
                    } else {
                        REMOTE_DISTANCE
                    }
                })
                .collect()
        })
        .collect()
}

#[allow(clippy::needless_range_loop)] // `i` and `j` index both d[i][j] and d[j][i]
pub(crate) fn validate_distances(d: &[Vec<u32>], nodes: usize) -> Result<(), TopologyError> {
    if d.len() != nodes || d.iter().any(|row| row.len() != nodes) {
        return Err(TopologyError::DistanceShape {
            nodes,
            rows: d.len(),
            cols: d.iter().map(Vec::len).collect(),
        });
    }
    for (i, row) in d.iter().enumerate() {
        for (j, &ij) in row.iter().enumerate() {
            let ji = d[j][i];
            if ij != ji {
                return Err(TopologyError::AsymmetricDistances { i, j, ij, ji });
            }
            if ij == 0 || (i != j && ij < row[i]) {
                return Err(TopologyError::BadDistance { i, j, value: ij });
            }
        }
    }
    Ok(())
}

impl fmt::Display for Topology {
    /// Draws the topology as a tree: nodes, cores (SMT groups) and CPUs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "Topology ({:?}): {} node(s), {} CPU(s)",
            self.source,
            self.num_nodes(),
            self.num_cpus()
        )?;
        for (ni, node) in self.node_ids.iter().enumerate() {
            let last_node = ni + 1 == self.node_ids.len();
            let row: Vec<String> = self.distances[ni].iter().map(u32::to_string).collect();
            writeln!(
                f,
                "{} {node}  (distances: {})",
                if last_node { "└─" } else { "├─" },
                row.join(" ")
            )?;
            let mut cores: BTreeMap<usize, Vec<&CpuDesc>> = BTreeMap::new();
            for c in self.cpus.iter().filter(|c| c.node == *node) {
                cores.entry(c.core).or_default().push(c);
            }
            let ncores = cores.len();
            for (ci, (core, pus)) in cores.into_iter().enumerate() {
                let pus: Vec<String> = pus
                    .iter()
                    .map(|c| {
                        if self.source == TopologySource::Synthetic {
                            format!("{} (os cpu {})", c.id, c.os_cpu)
                        } else {
                            c.id.to_string()
                        }
                    })
                    .collect();
                writeln!(
                    f,
                    "{}  {} core {core}: {}",
                    if last_node { " " } else { "│" },
                    if ci + 1 == ncores { "└─" } else { "├─" },
                    pus.join(", ")
                )?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neighbours_put_smt_sibling_first_then_node_then_remote() {
        let topo: Topology = "numa:2 core:2 pu:2".parse().unwrap();
        for &cpu in topo.cpus() {
            let n = topo.neighbours(cpu);
            assert_eq!(n.len(), topo.num_cpus() - 1);
            let sibling = CpuId(cpu.0 ^ 1);
            assert_eq!(n[0], sibling, "SMT sibling of {cpu} first");
            let same_node = topo.cpus_of(topo.node_of(cpu)).len() - 1;
            assert!(
                n[..same_node]
                    .iter()
                    .all(|c| topo.node_of(*c) == topo.node_of(cpu))
            );
            assert!(
                n[same_node..]
                    .iter()
                    .all(|c| topo.node_of(*c) != topo.node_of(cpu))
            );
        }
    }

    #[test]
    fn neighbours_are_deterministic_and_spread() {
        let topo = Topology::synthetic(1, 4, 1).unwrap();
        assert_eq!(topo.neighbours(CpuId(2)), topo.neighbours(CpuId(2)));
        let firsts: std::collections::BTreeSet<_> =
            topo.cpus().iter().map(|&c| topo.neighbours(c)[0]).collect();
        assert_eq!(firsts.len(), 4, "each CPU's first successor differs");
        assert_eq!(
            topo.neighbours(CpuId(2)),
            vec![CpuId(3), CpuId(0), CpuId(1)]
        );
    }

    #[test]
    fn remote_nodes_are_ordered_by_distance() {
        let topo = Topology::synthetic(3, 1, 1)
            .unwrap()
            .with_distances(vec![vec![10, 30, 20], vec![30, 10, 20], vec![20, 20, 10]])
            .unwrap();
        assert_eq!(topo.neighbours(CpuId(0)), vec![CpuId(2), CpuId(1)]);
    }

    #[test]
    fn bad_distance_matrices_are_rejected() {
        let t = Topology::synthetic(2, 1, 1).unwrap();
        let asym = t.clone().with_distances(vec![vec![10, 20], vec![21, 10]]);
        assert!(matches!(
            asym,
            Err(TopologyError::AsymmetricDistances { .. })
        ));
        let shape = t.clone().with_distances(vec![vec![10, 20]]);
        assert!(matches!(shape, Err(TopologyError::DistanceShape { .. })));
        let zero = t.with_distances(vec![vec![0, 20], vec![20, 0]]);
        assert!(matches!(zero, Err(TopologyError::BadDistance { .. })));
    }

    #[test]
    fn display_draws_a_tree() {
        let topo: Topology = "numa:2 core:2 pu:1".parse().unwrap();
        let s = topo.to_string();
        assert!(s.contains("2 node(s), 4 CPU(s)"), "{s}");
        assert!(s.contains("node1"), "{s}");
    }
}
