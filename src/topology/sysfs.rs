//! Linux sysfs topology detection, following the kernel's documented layout
//! (`Documentation/admin-guide/cputopology.rst`, `ABI/stable/sysfs-devices-node`,
//! `ABI/testing/sysfs-devices-system-cpu`):
//!
//! - `sys/devices/system/cpu/online`: the online CPUs (a cpulist);
//! - `cpuN/topology/{thread_siblings_list | core_cpus_list, core_id, physical_package_id}`;
//! - `cpuN/cache/index*/{level,type,shared_cpu_list}`: L2/L3 sharing groups;
//! - `sys/devices/system/node/{online, nodeK/cpulist, nodeK/distance}`.
//!
//! Everything is read relative to a root directory so that fixtures (and containers with a
//! bind-mounted sysfs) can be parsed; the result is restricted to an affinity mask.

mod cpulist;

use super::{CpuDesc, CpuId, NodeId, Topology, TopologyError, TopologySource};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const CPU_DIR: &str = "sys/devices/system/cpu";
const NODE_DIR: &str = "sys/devices/system/node";

impl Topology {
    /// Reads the topology from a Linux sysfs tree mounted under `root` (`/` for this machine),
    /// keeping only online CPUs in `affinity` (`None`: every online CPU).
    ///
    /// This is what [`detect`](Self::detect) does on Linux with `root = /` and the process's
    /// affinity mask; call it directly to inspect another tree, such as a container's
    /// bind-mounted sysfs or a saved snapshot. Every missing or malformed file is a
    /// [`TopologyError::Sysfs`] naming the file.
    ///
    /// ```
    /// use replicore::Topology;
    /// use std::path::Path;
    /// if Path::new("/sys/devices/system/cpu/online").exists() {
    ///     let topo = Topology::from_sysfs_root(Path::new("/"), None)?;
    ///     assert!(topo.num_cpus() >= 1);
    /// }
    /// // A tree without sysfs is an error naming the missing file, not a panic.
    /// let err = Topology::from_sysfs_root(Path::new("/nonexistent"), None).unwrap_err();
    /// assert!(err.to_string().contains("online"));
    /// # Ok::<(), replicore::TopologyError>(())
    /// ```
    pub fn from_sysfs_root(
        root: &Path,
        affinity: Option<&[usize]>,
    ) -> Result<Topology, TopologyError> {
        detect_with_mask(root, affinity)
    }
}

/// Reads the topology under `root`, restricted to this process's affinity mask.
pub(crate) fn detect(root: &Path) -> Result<Topology, TopologyError> {
    let mask = affinity_mask();
    detect_with_mask(root, mask.as_deref())
}

/// The OS CPUs in this process's affinity mask (`Cpus_allowed_list` of `/proc/self/status`), if
/// it can be read.
pub(crate) fn affinity_mask() -> Option<Vec<usize>> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))?;
    cpulist::parse(line).ok()
}

fn sysfs_err(path: &Path, reason: impl Into<String>) -> TopologyError {
    TopologyError::Sysfs {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

fn read(path: &Path) -> Result<String, TopologyError> {
    std::fs::read_to_string(path).map_err(|e| sysfs_err(path, format!("cannot read it: {e}")))
}

/// Reads `path` if it exists; `Ok(None)` when it does not.
fn read_optional(path: &Path) -> Result<Option<String>, TopologyError> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(sysfs_err(path, format!("cannot read it: {e}"))),
    }
}

fn parse_list(path: &Path, text: &str) -> Result<Vec<usize>, TopologyError> {
    cpulist::parse(text).map_err(|reason| sysfs_err(path, reason))
}

fn read_list(path: &Path) -> Result<Vec<usize>, TopologyError> {
    parse_list(path, &read(path)?)
}

fn read_number(path: &Path) -> Result<u64, TopologyError> {
    let text = read(path)?;
    text.trim().parse::<u64>().map_err(|_| {
        sysfs_err(
            path,
            format!(
                "{:?} is not a number; expected one decimal integer",
                text.trim()
            ),
        )
    })
}

/// [`detect`] with an explicit affinity mask (`None`: no restriction), so fixtures can test it.
pub(crate) fn detect_with_mask(
    root: &Path,
    affinity: Option<&[usize]>,
) -> Result<Topology, TopologyError> {
    let cpu_dir = root.join(CPU_DIR);
    let online_path = cpu_dir.join("online");
    let online = read_list(&online_path)?;
    if online.is_empty() {
        return Err(sysfs_err(
            &online_path,
            "no CPU is online; expected a cpulist such as `0-3`",
        ));
    }
    let usable: Vec<usize> = match affinity {
        Some(mask) => {
            let mut mask = mask.to_vec();
            mask.sort_unstable();
            online
                .into_iter()
                .filter(|c| mask.binary_search(c).is_ok())
                .collect()
        }
        None => online,
    };
    if usable.is_empty() {
        return Err(sysfs_err(
            &online_path,
            format!(
                "no online CPU is in the affinity mask {:?}; at least one usable CPU is needed",
                affinity.unwrap_or_default()
            ),
        ));
    }
    let Nodes { node_of, distances } = read_nodes(root, &usable)?;
    let mut cores = CoreIds::default();
    let mut cpus = Vec::with_capacity(usable.len());
    for &cpu in &usable {
        let dir = cpu_dir.join(format!("cpu{cpu}"));
        let node = *node_of.get(&cpu).ok_or_else(|| {
            sysfs_err(
                &root.join(NODE_DIR),
                format!("online cpu{cpu} is in no online node's cpulist; every CPU needs a node"),
            )
        })?;
        let (l2, l3) = read_caches(&dir.join("cache"))?;
        cpus.push(CpuDesc {
            id: CpuId(cpu),
            node: NodeId(node),
            core: cores.core_of(cpu, &dir.join("topology"))?,
            l2,
            l3,
            os_cpu: cpu,
        });
    }
    Topology::from_parts(cpus, Some(distances), TopologySource::Sysfs)
}

/// The NUMA side of the machine, restricted to the usable CPUs.
struct Nodes {
    /// Usable CPU → its node.
    node_of: BTreeMap<usize, usize>,
    /// Distances between the nodes that hold a usable CPU, indexed by their sorted ids.
    distances: Vec<Vec<u32>>,
}

/// Maps each usable CPU to its node and reduces the distance matrix to the nodes that hold a
/// usable CPU. Without a `node` directory the machine is one node 0.
fn read_nodes(root: &Path, usable: &[usize]) -> Result<Nodes, TopologyError> {
    let node_dir = root.join(NODE_DIR);
    if !node_dir.is_dir() {
        return Ok(Nodes {
            node_of: usable.iter().map(|&c| (c, 0)).collect(),
            distances: vec![vec![super::LOCAL_DISTANCE]],
        });
    }
    let online = read_list(&node_dir.join("online"))?;
    let mut node_of = BTreeMap::new();
    // Positions (in `online`) of the nodes that hold a usable CPU.
    let mut kept = Vec::new();
    for (pos, &node) in online.iter().enumerate() {
        let path = node_dir.join(format!("node{node}/cpulist"));
        let mut has_usable = false;
        for cpu in read_list(&path)? {
            if usable.binary_search(&cpu).is_ok() {
                if let Some(other) = node_of.insert(cpu, node) {
                    return Err(sysfs_err(
                        &path,
                        format!("cpu{cpu} is also in node{other}; a CPU belongs to one node"),
                    ));
                }
                has_usable = true;
            }
        }
        if has_usable {
            kept.push(pos);
        }
    }
    let mut distances = Vec::with_capacity(kept.len());
    for &pos in &kept {
        let path = node_dir.join(format!("node{}/distance", online[pos]));
        let text = read(&path)?;
        let row: Vec<u32> = text
            .split_whitespace()
            .map(|v| v.parse::<u32>())
            .collect::<Result<_, _>>()
            .map_err(|_| {
                sysfs_err(
                    &path,
                    format!("{:?} is not a row of distances; expected decimal integers separated by spaces", text.trim()),
                )
            })?;
        if row.len() != online.len() {
            return Err(sysfs_err(
                &path,
                format!(
                    "row has {} distance(s) but {} node(s) are online; expected one per online node",
                    row.len(),
                    online.len()
                ),
            ));
        }
        distances.push(kept.iter().map(|&p| row[p]).collect());
    }
    super::validate_distances(&distances, kept.len())
        .map_err(|e| sysfs_err(&node_dir, format!("bad node distances: {e}")))?;
    Ok(Nodes { node_of, distances })
}

/// Gives each physical core one id: the smallest CPU among its SMT siblings.
#[derive(Default)]
struct CoreIds {
    /// `(physical_package_id, core_id)` → core id, for kernels without sibling lists.
    by_package_core: BTreeMap<(u64, u64), usize>,
}

impl CoreIds {
    fn core_of(&mut self, cpu: usize, topo_dir: &Path) -> Result<usize, TopologyError> {
        for name in ["thread_siblings_list", "core_cpus_list"] {
            let path = topo_dir.join(name);
            if let Some(text) = read_optional(&path)? {
                let siblings = parse_list(&path, &text)?;
                if !siblings.contains(&cpu) {
                    return Err(sysfs_err(
                        &path,
                        format!(
                            "cpu{cpu} is missing from its own sibling list {:?}",
                            text.trim()
                        ),
                    ));
                }
                return Ok(siblings[0]);
            }
        }
        // Older layouts: siblings are CPUs with the same core_id in the same package.
        let package = read_number(&topo_dir.join("physical_package_id"))?;
        let core_id = read_number(&topo_dir.join("core_id"))?;
        Ok(*self
            .by_package_core
            .entry((package, core_id))
            .or_insert(cpu))
    }
}

/// The L2 and L3 groups of one CPU: the smallest CPU sharing each unified or data cache. A CPU
/// without a `cache` directory (some VMs) has no cache information, which is not an error.
fn read_caches(cache_dir: &Path) -> Result<(Option<usize>, Option<usize>), TopologyError> {
    let entries = match std::fs::read_dir(cache_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((None, None)),
        Err(e) => return Err(sysfs_err(cache_dir, format!("cannot list it: {e}"))),
    };
    let mut indexes: Vec<PathBuf> = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| sysfs_err(cache_dir, format!("cannot list it: {e}")))?;
        let is_index = entry
            .file_name()
            .to_str()
            .and_then(|n| n.strip_prefix("index"))
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        if is_index {
            indexes.push(entry.path());
        }
    }
    indexes.sort();
    let (mut l2, mut l3) = (None, None);
    for dir in indexes {
        let type_path = dir.join("type");
        let kind = read(&type_path)?;
        match kind.trim() {
            "Instruction" => continue,
            "Data" | "Unified" => {}
            other => {
                return Err(sysfs_err(
                    &type_path,
                    format!("unknown cache type {other:?}; expected Data, Instruction or Unified"),
                ));
            }
        }
        let slot = match read_number(&dir.join("level"))? {
            2 => &mut l2,
            3 => &mut l3,
            _ => continue,
        };
        let shared_path = dir.join("shared_cpu_list");
        let shared = read_list(&shared_path)?;
        let Some(&first) = shared.first() else {
            return Err(sysfs_err(
                &shared_path,
                "empty list; a cache is shared by at least the CPU it belongs to",
            ));
        };
        *slot = Some(first);
    }
    Ok((l2, l3))
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #[test]
    fn affinity_mask_is_the_set_the_scheduler_reports() {
        let mask = super::affinity_mask().expect("/proc/self/status has Cpus_allowed_list");
        let mut expected: Vec<usize> = core_affinity::get_core_ids()
            .expect("sched_getaffinity works")
            .into_iter()
            .map(|c| c.id)
            .collect();
        expected.sort_unstable();
        assert_eq!(mask, expected);
    }
}
