//! Sysfs detection against the fixture trees in `tests/fixtures` (written by
//! `tests/fixtures/generate.py` from the kernel's documented layout).

use replicore::{CpuId, NodeId, Topology, TopologyError, TopologySource};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn load(name: &str, mask: Option<&[usize]>) -> Topology {
    Topology::from_sysfs_root(&fixture(name), mask)
        .unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

fn ids(cpus: &[CpuId]) -> Vec<usize> {
    cpus.iter().map(|c| c.0).collect()
}

#[test]
fn two_socket_counts_nodes_and_distances() {
    let topo = load("two_socket", None);
    assert_eq!(topo.source(), TopologySource::Sysfs);
    assert_eq!(topo.num_cpus(), 48);
    assert_eq!(topo.num_nodes(), 2);
    let node0: Vec<usize> = (0..12).chain(24..36).collect();
    let node1: Vec<usize> = (12..24).chain(36..48).collect();
    assert_eq!(ids(topo.cpus_of(NodeId(0))), node0);
    assert_eq!(ids(topo.cpus_of(NodeId(1))), node1);
    for cpu in [0, 11, 24, 35] {
        assert_eq!(topo.node_of(CpuId(cpu)), NodeId(0), "cpu{cpu}");
        assert_eq!(
            topo.os_cpu(CpuId(cpu)),
            cpu,
            "detected CPUs pin to themselves"
        );
    }
    for cpu in [12, 23, 36, 47] {
        assert_eq!(topo.node_of(CpuId(cpu)), NodeId(1), "cpu{cpu}");
    }
    assert_eq!(topo.distance(NodeId(0), NodeId(1)), 21);
    assert_eq!(topo.distance(NodeId(1), NodeId(0)), 21);
    assert_eq!(topo.distance(NodeId(1), NodeId(1)), 10);
}

#[test]
fn two_socket_neighbours_put_the_smt_sibling_first_then_the_socket() {
    let topo = load("two_socket", None);
    for &cpu in topo.cpus() {
        let sibling = CpuId((cpu.0 + 24) % 48);
        let n = topo.neighbours(cpu);
        assert_eq!(n.len(), 47);
        assert_eq!(n[0], sibling, "SMT sibling of {cpu} first (n and n+24)");
        let node = topo.node_of(cpu);
        assert!(
            n[..23].iter().all(|c| topo.node_of(*c) == node),
            "{cpu}: {n:?}"
        );
        assert!(
            n[23..].iter().all(|c| topo.node_of(*c) != node),
            "{cpu}: {n:?}"
        );
    }
}

#[test]
fn offline_cpus_and_cpuless_nodes_are_dropped_and_distances_reduced() {
    let topo = load("offline_and_mask", None);
    // CPUs 5 and 12-15 are offline: node 3 has no CPU left and node 4 is memory-only.
    assert_eq!(ids(topo.cpus()), vec![0, 1, 2, 3, 4, 6, 7, 8, 9, 10, 11]);
    assert_eq!(topo.nodes(), &[NodeId(0), NodeId(1), NodeId(2)]);
    assert_eq!(topo.cpu_index(CpuId(5)), None);
    assert_eq!(ids(topo.cpus_of(NodeId(1))), vec![4, 6, 7]);
    assert!(topo.cpus_of(NodeId(3)).is_empty());
    assert_eq!(topo.distance(NodeId(0), NodeId(1)), 16);
    assert_eq!(topo.distance(NodeId(0), NodeId(2)), 22);
    assert_eq!(topo.distance(NodeId(1), NodeId(2)), 16);
    // cpu4 lost its sibling: its nearest are the rest of node 1, then nodes 0 and 2 (both 16).
    let n = topo.neighbours(CpuId(4));
    assert_eq!(ids(&n[..2]), vec![6, 7]);
    assert_eq!(n.len(), 10);
    // Node 0 is nearer to node 1 (16) than to node 2 (22), so node 1 comes before node 2.
    let n0 = ids(&topo.neighbours(CpuId(0)));
    assert_eq!(n0[0], 1, "SMT sibling first");
    assert_eq!(&n0[3..6], &[4, 6, 7]);
    assert_eq!(&n0[6..], &[8, 9, 10, 11]);
}

#[test]
fn affinity_mask_restricts_cpus_and_nodes() {
    // 5 and 12 are offline, 1 and 8 alone in the mask of their core.
    let topo = load("offline_and_mask", Some(&[0, 1, 5, 8, 9, 12, 99]));
    assert_eq!(ids(topo.cpus()), vec![0, 1, 8, 9]);
    assert_eq!(topo.nodes(), &[NodeId(0), NodeId(2)]);
    assert_eq!(topo.distance(NodeId(0), NodeId(2)), 22);
    assert_eq!(ids(&topo.neighbours(CpuId(8))), vec![9, 0, 1]);
}

#[test]
fn a_mask_with_no_online_cpu_is_an_error() {
    let err =
        Topology::from_sysfs_root(&fixture("offline_and_mask"), Some(&[5, 12, 100])).unwrap_err();
    assert!(matches!(err, TopologyError::Sysfs { .. }), "{err:?}");
    assert!(err.to_string().contains("affinity mask"), "{err}");
}

#[test]
fn no_node_directory_means_one_node_and_cores_from_core_id() {
    let topo = load("no_node_dir", None);
    assert_eq!(topo.num_cpus(), 4);
    assert_eq!(topo.nodes(), &[NodeId(0)]);
    assert_eq!(topo.distance(NodeId(0), NodeId(0)), 10);
    // Without sibling lists, SMT siblings come from equal (package, core_id).
    assert_eq!(topo.neighbours(CpuId(0))[0], CpuId(1));
    assert_eq!(topo.neighbours(CpuId(3))[0], CpuId(2));
    assert_eq!(ids(&topo.neighbours(CpuId(2))), vec![3, 0, 1]);
}

#[test]
fn cache_groups_order_neighbours_l2_then_l3_then_node() {
    // L2 per pair of cores, L3 per half; only core_cpus_list (no thread_siblings_list).
    let topo = load("clustered", None);
    assert_eq!(topo.num_cpus(), 8);
    assert_eq!(ids(&topo.neighbours(CpuId(0))), vec![1, 2, 3, 4, 5, 6, 7]);
    assert_eq!(ids(&topo.neighbours(CpuId(5))), vec![4, 6, 7, 0, 1, 2, 3]);
    assert_eq!(ids(&topo.neighbours(CpuId(2))), vec![3, 0, 1, 4, 5, 6, 7]);
}

static COPIES: AtomicUsize = AtomicUsize::new(0);

/// A private copy of a fixture that a test may corrupt; removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn of(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!(
            "replicore-sysfs-{}-{}",
            std::process::id(),
            COPIES.fetch_add(1, Ordering::Relaxed)
        ));
        copy_dir(&fixture(name), &dir);
        Scratch(dir)
    }

    fn write(&self, rel: &str, text: &str) -> PathBuf {
        let path = self.0.join(rel);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn remove(&self, rel: &str) -> PathBuf {
        let path = self.0.join(rel);
        if path.is_dir() {
            std::fs::remove_dir_all(&path).unwrap();
        } else {
            std::fs::remove_file(&path).unwrap();
        }
        path
    }

    fn detect(&self) -> TopologyError {
        Topology::from_sysfs_root(&self.0, None).expect_err("corrupt tree must be rejected")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Asserts a `Sysfs` error naming `path`, whose reason contains `needle`.
fn assert_sysfs_error(err: TopologyError, path: &Path, needle: &str) {
    match &err {
        TopologyError::Sysfs { path: p, reason } => {
            assert_eq!(p, path, "error names the bad file: {err}");
            assert!(reason.contains(needle), "{needle:?} not in {reason:?}");
        }
        other => panic!(
            "expected a Sysfs error for {}, got {other:?}",
            path.display()
        ),
    }
}

const CPU: &str = "sys/devices/system/cpu";
const NODE: &str = "sys/devices/system/node";

#[test]
fn malformed_cpu_files_are_typed_errors_naming_the_file() {
    let s = Scratch::of("offline_and_mask");
    let p = s.write(&format!("{CPU}/online"), "0-3,x\n");
    assert_sysfs_error(s.detect(), &p, "expected decimal ids");
    s.write(&format!("{CPU}/online"), "3-0\n");
    assert_sysfs_error(s.detect(), &p, "reversed");
    s.write(&format!("{CPU}/online"), "0-4,6-11\n");

    let p = s.write(&format!("{CPU}/cpu2/topology/thread_siblings_list"), "3\n");
    assert_sysfs_error(s.detect(), &p, "missing from its own sibling list");
    s.write(
        &format!("{CPU}/cpu2/topology/thread_siblings_list"),
        "2-3\n",
    );

    let p = s.write(&format!("{CPU}/cpu1/cache/index3/type"), "Victim\n");
    assert_sysfs_error(s.detect(), &p, "expected Data, Instruction or Unified");
    s.write(&format!("{CPU}/cpu1/cache/index3/type"), "Unified\n");

    let p = s.write(&format!("{CPU}/cpu1/cache/index2/level"), "two\n");
    assert_sysfs_error(s.detect(), &p, "not a number");
    s.write(&format!("{CPU}/cpu1/cache/index2/level"), "2\n");

    let p = s.write(&format!("{CPU}/cpu1/cache/index2/shared_cpu_list"), "\n");
    assert_sysfs_error(s.detect(), &p, "empty list");
    s.write(&format!("{CPU}/cpu1/cache/index2/shared_cpu_list"), "0-1\n");

    let p = s.remove(&format!("{CPU}/cpu0/cache/index0/type"));
    assert_sysfs_error(s.detect(), &p, "cannot read");
}

#[test]
fn malformed_node_files_are_typed_errors_naming_the_file() {
    let s = Scratch::of("offline_and_mask");
    let p = s.write(&format!("{NODE}/node1/distance"), "16 10 16 22\n");
    assert_sysfs_error(s.detect(), &p, "expected one per online node");
    s.write(&format!("{NODE}/node1/distance"), "16 ten 16 22 30\n");
    assert_sysfs_error(s.detect(), &p, "expected decimal integers");
    s.write(&format!("{NODE}/node1/distance"), "17 10 16 22 30\n");
    assert_sysfs_error(s.detect(), &s.0.join(NODE), "asymmetric");
    s.write(&format!("{NODE}/node1/distance"), "16 10 16 22 30\n");

    let p = s.write(&format!("{NODE}/node2/cpulist"), "7-11\n");
    assert_sysfs_error(s.detect(), &p, "also in node1");
    s.write(&format!("{NODE}/node2/cpulist"), "9-11\n");
    assert_sysfs_error(s.detect(), &s.0.join(NODE), "cpu8 is in no online node");
    s.write(&format!("{NODE}/node2/cpulist"), "8-11\n");

    let p = s.remove(&format!("{NODE}/online"));
    assert_sysfs_error(s.detect(), &p, "cannot read");
    s.write(&format!("{NODE}/online"), "0-4\n");

    // Restored, the tree parses again: the errors above came from the corruptions alone.
    assert_eq!(
        Topology::from_sysfs_root(&s.0, None).unwrap(),
        load("offline_and_mask", None)
    );
}

#[test]
fn a_missing_tree_is_an_error_not_a_panic() {
    let err = Topology::from_sysfs_root(Path::new("/nonexistent/replicore"), None).unwrap_err();
    assert!(matches!(err, TopologyError::Sysfs { .. }), "{err:?}");
}

#[cfg(target_os = "linux")]
#[test]
fn this_machine_parses_and_matches_the_allowed_cpus() {
    let topo = Topology::from_sysfs_root(Path::new("/"), None).unwrap();
    assert!(topo.num_cpus() >= 1 && topo.num_nodes() >= 1);
    let detected = Topology::detect_machine().unwrap();
    assert!(detected.num_cpus() <= topo.num_cpus());
    #[cfg(not(feature = "hwloc"))]
    assert_eq!(detected.source(), TopologySource::Sysfs, "{detected}");
}

/// Every fixture file in turn is replaced by garbage: detection must either reject it with a
/// `Sysfs` error naming that file (or the node directory, for a node map that no longer covers
/// every CPU), or, for files it does not read, return the unchanged topology. Never a panic.
#[test]
fn garbage_in_any_file_is_rejected_or_ignored_never_a_panic() {
    let s = Scratch::of("offline_and_mask");
    let expected = load("offline_and_mask", None);
    let mut files = Vec::new();
    list_files(&s.0, &mut files);
    assert!(files.len() > 100, "fixture has {} files", files.len());
    let mut rejected = 0;
    for file in &files {
        let original = std::fs::read(file).unwrap();
        for garbage in [&b"x\n"[..], b"", b"\xff\xfe\n", b"-1\n", b"0-99999999\n"] {
            std::fs::write(file, garbage).unwrap();
            match Topology::from_sysfs_root(&s.0, None) {
                Ok(topo) => assert_eq!(topo, expected, "{} = {garbage:?}", file.display()),
                Err(TopologyError::Sysfs { path, reason }) => {
                    assert!(
                        path == *file || path == s.0.join(NODE),
                        "{} = {garbage:?} blamed {}: {reason}",
                        file.display(),
                        path.display()
                    );
                    rejected += 1;
                }
                Err(other) => panic!("{} = {garbage:?}: {other:?}", file.display()),
            }
        }
        std::fs::write(file, original).unwrap();
    }
    assert!(rejected > 100, "only {rejected} corruptions were noticed");
}

fn list_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            list_files(&path, out);
        } else {
            out.push(path);
        }
    }
}
