//! Topology detection through hwlocality (the `hwloc` feature).
//!
//! hwloc already merges sysfs, ACPI and CPUID knowledge, so this builds the same [`CpuDesc`]s as
//! the sysfs reader with the same conventions: a core or cache group is named by the smallest OS
//! CPU it contains, and only CPUs both in hwloc's allowed cpuset (cgroups) and in the process's
//! CPU binding (its affinity mask) are kept.

use super::{CpuDesc, CpuId, NodeId, Topology, TopologyError, TopologySource};
use hwlocality::cpu::binding::CpuBindingFlags;
use hwlocality::object::TopologyObject;
use hwlocality::object::distance::DistancesKind;
use hwlocality::object::types::ObjectType;
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// One hwloc topology per process: loading it walks sysfs (tens of milliseconds), and binding
/// threads needs one each time.
pub(crate) fn shared() -> Result<&'static hwlocality::Topology, TopologyError> {
    static TOPOLOGY: OnceLock<Result<hwlocality::Topology, String>> = OnceLock::new();
    TOPOLOGY
        .get_or_init(|| hwlocality::Topology::new().map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| TopologyError::Hwloc(format!("cannot load the hwloc topology: {e}")))
}

/// The smallest OS CPU of `obj`, used as the id of a core or cache instance.
fn first_cpu(obj: &TopologyObject) -> Option<usize> {
    Some(usize::from(obj.cpuset()?.first_set()?))
}

impl Topology {
    /// Builds the topology with hwloc: the PUs this process may run on, their cores, L2 and L3
    /// caches and NUMA nodes, and the OS-provided NUMA latency matrix when there is one
    /// (otherwise 10 local / 20 remote).
    ///
    /// [`detect`](Self::detect) tries this first when the `hwloc` feature is on.
    ///
    /// ```
    /// # #[cfg(feature = "hwloc")]
    /// # {
    /// let topo = replicore::Topology::from_hwloc()?;
    /// assert!(topo.num_cpus() >= 1);
    /// assert_eq!(topo.source(), replicore::TopologySource::Hwloc);
    /// # }
    /// # Ok::<(), replicore::TopologyError>(())
    /// ```
    pub fn from_hwloc() -> Result<Topology, TopologyError> {
        let topo = shared()?;
        let allowed = topo.allowed_cpuset();
        // hwloc's allowed set reflects cgroups but not `sched_setaffinity` (`taskset`), which the
        // process binding does; without one (unsupported OS) the allowed set alone decides.
        let bound = topo.cpu_binding(CpuBindingFlags::PROCESS).ok();
        // NUMA nodes hang off the CPU tree as memory children in hwloc 2, so a PU's node is the
        // node whose cpuset holds it; with several (e.g. DRAM plus HBM), the smallest os index.
        let mut nodes: Vec<(usize, &TopologyObject)> = topo
            .objects_with_type(ObjectType::NUMANode)
            .filter_map(|n| Some((n.os_index()?, n)))
            .collect();
        nodes.sort_by_key(|(os, _)| *os);
        let mut cpus = Vec::new();
        for pu in topo.objects_with_type(ObjectType::PU) {
            let Some(os) = pu.os_index() else { continue };
            if !allowed.is_set(os) || bound.as_ref().is_some_and(|b| !b.is_set(os)) {
                continue;
            }
            let node = nodes
                .iter()
                .find(|(_, n)| n.cpuset().is_some_and(|set| set.is_set(os)))
                .map_or(0, |(id, _)| *id);
            let ancestor = |ty| pu.first_ancestor_with_type(ty).and_then(first_cpu);
            cpus.push(CpuDesc {
                id: CpuId(os),
                node: NodeId(node),
                core: ancestor(ObjectType::Core).unwrap_or(os),
                l2: ancestor(ObjectType::L2Cache),
                l3: ancestor(ObjectType::L3Cache),
                os_cpu: os,
            });
        }
        let used: Vec<usize> = {
            let set: std::collections::BTreeSet<usize> = cpus.iter().map(|c| c.node.0).collect();
            set.into_iter().collect()
        };
        let distances = numa_latencies(topo, &used);
        Topology::from_parts(cpus, distances, TopologySource::Hwloc)
    }
}

/// The OS-provided NUMA latency matrix restricted to `nodes` (sorted os indexes), if hwloc has
/// one covering all of them with values that pass validation.
fn numa_latencies(topo: &hwlocality::Topology, nodes: &[usize]) -> Option<Vec<Vec<u32>>> {
    let kind = DistancesKind::FROM_OS | DistancesKind::MEANS_LATENCY;
    let matrices = topo
        .distances_with_type(Some(kind), ObjectType::NUMANode)
        .ok()?;
    matrices.iter().find_map(|m| {
        let mut value: BTreeMap<(usize, usize), u64> = BTreeMap::new();
        for ((from, to), d) in m.object_distances() {
            if let (Some(a), Some(b)) = (
                from.and_then(|o| o.os_index()),
                to.and_then(|o| o.os_index()),
            ) {
                value.insert((a, b), d);
            }
        }
        let matrix: Option<Vec<Vec<u32>>> = nodes
            .iter()
            .map(|&a| {
                nodes
                    .iter()
                    .map(|&b| u32::try_from(*value.get(&(a, b))?).ok())
                    .collect()
            })
            .collect();
        matrix.filter(|d| super::validate_distances(d, nodes.len()).is_ok())
    })
}

/// Pins the calling thread to `os_cpu` through hwloc. `false` when hwloc is unavailable or the
/// OS refuses (a CPU outside the allowed set).
pub(crate) fn bind_current_thread(os_cpu: usize) -> bool {
    let Ok(topo) = shared() else { return false };
    let mut set = hwlocality::cpu::cpuset::CpuSet::new();
    set.set(os_cpu);
    topo.bind_cpu(&set, CpuBindingFlags::THREAD).is_ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn hwloc_binds_a_thread_to_an_allowed_cpu() {
        let topo = super::Topology::from_hwloc().unwrap();
        let cpu = *topo.cpus().last().unwrap();
        let bound = std::thread::spawn(move || super::bind_current_thread(cpu.0))
            .join()
            .unwrap();
        assert!(bound, "hwloc refused to bind to allowed {cpu}");
    }
}
