//! Where replicas live and which replica a thread uses.

use crate::{NodeId, Topology};

/// Asks the operating system to place the calling thread's future memory allocations on a
/// node's memory. [`NodeReplicated`](super::NodeReplicated) calls it on the thread that builds
/// each replica (and on each background helper), after pinning that thread to the node's first
/// CPU; an `Err` leaves the thread on the kernel's first-touch policy, which the pinning already
/// points at the node.
///
/// With the `hwloc` feature the default is `HwlocBinder`; without it there is no binder and
/// placement is first touch alone. A custom binder (for example one that records its calls in a
/// test) is given through [`NrBuilder::memory_binder`](super::NrBuilder::memory_binder).
///
/// ```
/// use replicore::nr::{Counter, MemoryBinder, NrBuilder};
/// use replicore::{NodeId, Topology};
/// use std::sync::{Arc, Mutex};
///
/// #[derive(Default)]
/// struct Recording(Mutex<Vec<NodeId>>);
/// impl MemoryBinder for Recording {
///     fn bind_current_thread(&self, _: &Topology, node: NodeId) -> Result<(), String> {
///         self.0.lock().unwrap().push(node);
///         Ok(())
///     }
/// }
/// let topo = Topology::synthetic(2, 1, 1)?;
/// let rec = Arc::new(Recording::default());
/// let nr = NrBuilder::new(&topo).memory_binder(rec.clone()).build(|| Counter(0))?;
/// let mut seen = rec.0.lock().unwrap().clone();
/// seen.sort();
/// assert_eq!(seen, topo.nodes());
/// assert_eq!(nr.stats().bound_replicas, 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait MemoryBinder: Send + Sync {
    /// Binds the calling thread's future allocations to the memory of `node` of `topo`, or
    /// says why it cannot.
    fn bind_current_thread(&self, topo: &Topology, node: NodeId) -> Result<(), String>;
}

/// The `hwloc` feature's [`MemoryBinder`]: hwloc's `set_membind` for the calling thread, with
/// the `Bind` policy, to the NUMA nodes local to the node's CPUs (their OS CPU numbers mapped to
/// hwloc's node set, so a synthetic node lands on the real node of the CPUs it is mapped onto).
///
/// ```
/// # #[cfg(feature = "hwloc")]
/// # {
/// use replicore::nr::HwlocBinder;
/// let topo = replicore::Topology::detect()?;
/// let os_nodes = HwlocBinder.os_nodes(&topo, topo.nodes()[0])?;
/// assert!(!os_nodes.is_empty());
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[cfg(feature = "hwloc")]
#[derive(Debug, Clone, Copy, Default)]
pub struct HwlocBinder;

#[cfg(feature = "hwloc")]
impl HwlocBinder {
    /// The OS NUMA node numbers that memory of `node` is bound to: the nodes local to its CPUs.
    ///
    /// ```
    /// # #[cfg(feature = "hwloc")]
    /// # {
    /// # use replicore::nr::HwlocBinder;
    /// let topo: replicore::Topology = "numa:2 core:1 pu:1".parse()?;
    /// for &node in topo.nodes() {
    ///     assert!(!HwlocBinder.os_nodes(&topo, node)?.is_empty());
    /// }
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn os_nodes(&self, topo: &Topology, node: NodeId) -> Result<Vec<usize>, String> {
        Ok(self
            .nodeset(topo, node)?
            .iter_set()
            .map(usize::from)
            .collect())
    }

    fn nodeset(
        &self,
        topo: &Topology,
        node: NodeId,
    ) -> Result<hwlocality::memory::nodeset::NodeSet, String> {
        let hw = crate::topology::hwloc_topology().map_err(|e| e.to_string())?;
        let mut cpus = hwlocality::cpu::cpuset::CpuSet::new();
        for &cpu in topo.cpus_of(node) {
            cpus.set(topo.os_cpu(cpu));
        }
        let set = hwlocality::memory::nodeset::NodeSet::from_cpuset(hw, &cpus);
        if set.is_empty() {
            return Err(format!(
                "hwloc knows no NUMA node local to the CPUs of node {}",
                node.0
            ));
        }
        Ok(set)
    }
}

#[cfg(feature = "hwloc")]
impl MemoryBinder for HwlocBinder {
    fn bind_current_thread(&self, topo: &Topology, node: NodeId) -> Result<(), String> {
        use hwlocality::memory::binding::{MemoryBindingFlags, MemoryBindingPolicy};
        let set = self.nodeset(topo, node)?;
        let hw = crate::topology::hwloc_topology().map_err(|e| e.to_string())?;
        hw.bind_memory(&set, MemoryBindingPolicy::Bind, MemoryBindingFlags::THREAD)
            .map_err(|e| e.to_string())
    }
}

/// The binder used when none is given: hwloc's with the `hwloc` feature, none without.
pub(crate) fn default_binder() -> Option<std::sync::Arc<dyn MemoryBinder>> {
    #[cfg(feature = "hwloc")]
    {
        Some(std::sync::Arc::new(HwlocBinder))
    }
    #[cfg(not(feature = "hwloc"))]
    {
        None
    }
}

/// Pins the calling thread to `node`'s first CPU and binds its allocations to the node's
/// memory. Returns whether the memory binding was accepted.
#[cfg(not(loom))]
pub(crate) fn settle_on(topo: &Topology, node: NodeId, binder: Option<&dyn MemoryBinder>) -> bool {
    if let Some(&cpu) = topo.cpus_of(node).first() {
        crate::topology::bind_current_thread(topo.os_cpu(cpu));
    }
    binder.is_some_and(|b| b.bind_current_thread(topo, node).is_ok())
}

/// Makes one `D` per node. Outside loom each is built (and so first touched) by a thread pinned
/// to the node's first CPU whose allocations are bound to the node's memory when `binder`
/// accepts, so its pages land on that node either way. Pinning can be refused (a CPU outside
/// the process's cpuset); the replica is then still built, just without placement. Also
/// returns how many replicas had their memory binding accepted.
#[cfg(not(loom))]
pub(crate) fn allocate_per_node<D: Send>(
    topo: &Topology,
    init: &(impl Fn() -> D + Sync),
    binder: Option<&dyn MemoryBinder>,
) -> (Vec<Box<D>>, usize) {
    std::thread::scope(|s| {
        let builders: Vec<_> = topo
            .nodes()
            .iter()
            .map(|&node| {
                s.spawn(move || {
                    // Placement first: `init` allocates the replica.
                    let ok = settle_on(topo, node, binder);
                    (Box::new(init()), ok)
                })
            })
            .collect();
        let mut bound = 0;
        let replicas = builders
            .into_iter()
            .map(|b| {
                let (d, ok) = b
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                bound += usize::from(ok);
                d
            })
            .collect();
        (replicas, bound)
    })
}

/// Under loom there is no placement to model: build the replicas in place.
#[cfg(loom)]
pub(crate) fn allocate_per_node<D: Send>(
    topo: &Topology,
    init: &(impl Fn() -> D + Sync),
    _binder: Option<&dyn MemoryBinder>,
) -> (Vec<Box<D>>, usize) {
    (topo.nodes().iter().map(|_| Box::new(init())).collect(), 0)
}

/// The node for the calling thread; see [`NodeReplicated::register_current`] for the rule.
/// `next` yields a fresh round-robin ticket.
///
/// [`NodeReplicated::register_current`]: super::NodeReplicated::register_current
pub(crate) fn node_of_current_thread(topo: &Topology, next: impl FnOnce() -> usize) -> NodeId {
    if let Some((_, node)) = crate::topology::current_location() {
        return node;
    }
    let mut candidates: Vec<NodeId> = match crate::topology::current_os_cpu() {
        Some(os) => topo
            .cpus()
            .iter()
            .filter(|&&cpu| topo.os_cpu(cpu) == os)
            .map(|&cpu| topo.node_of(cpu))
            .collect(),
        None => Vec::new(),
    };
    candidates.sort();
    candidates.dedup();
    match candidates.len() {
        1 => candidates[0],
        0 => topo.nodes()[next() % topo.num_nodes()],
        k => candidates[next() % k],
    }
}
