//! Where replicas' memory goes: the binder is asked for each replica's node, on the thread that
//! then builds that replica; with the `hwloc` feature the binding targets the NUMA nodes of the
//! node's CPUs and the replica's pages are found there.

use replicore::nr::{Dispatch, MemoryBinder, NodeReplicated, NrBuilder};
use replicore::{NodeId, Topology};
use std::sync::{Arc, Mutex};
use std::thread::ThreadId;

/// A replica that remembers the thread that built it and owns a buffer it touched.
struct Placed {
    built_on: ThreadId,
    buf: Vec<u8>,
}

impl Placed {
    fn new() -> Self {
        Self {
            built_on: std::thread::current().id(),
            // Touch every page so that it is allocated under the building thread's policy.
            buf: vec![1u8; 4 << 20],
        }
    }
}

impl Dispatch for Placed {
    type ReadOp<'a> = ();
    type WriteOp = ();
    /// The building thread, and the buffer's address and length.
    type Response = (ThreadId, usize, usize);
    fn dispatch<'a>(&self, _: ()) -> Self::Response {
        (self.built_on, self.buf.as_ptr() as usize, self.buf.len())
    }
    fn dispatch_mut(&mut self, _: ()) -> Self::Response {
        self.dispatch(())
    }
}

#[derive(Default)]
struct Recording(Mutex<Vec<(NodeId, ThreadId)>>);

impl MemoryBinder for Recording {
    fn bind_current_thread(&self, _: &Topology, node: NodeId) -> Result<(), String> {
        self.0
            .lock()
            .unwrap()
            .push((node, std::thread::current().id()));
        Ok(())
    }
}

#[test]
fn binding_is_requested_on_each_replicas_node_by_its_builder() {
    for nodes in [1, 2, 4] {
        let topo = Topology::synthetic(nodes, 1, 1).unwrap();
        let rec = Arc::new(Recording::default());
        let nr: NodeReplicated<Placed> = NrBuilder::new(&topo)
            .memory_binder(rec.clone())
            .build(Placed::new)
            .unwrap();
        let calls = rec.0.lock().unwrap().clone();
        assert_eq!(calls.len(), nodes, "one request per replica: {calls:?}");
        for &node in topo.nodes() {
            let (built_on, _, _) = nr.register(node).unwrap().execute(());
            let bound: Vec<_> = calls.iter().filter(|(n, _)| *n == node).collect();
            assert_eq!(bound.len(), 1, "node {node:?} asked once: {calls:?}");
            assert_eq!(
                bound[0].1, built_on,
                "the binding was requested on the thread that built node {node:?}'s replica"
            );
        }
        assert_eq!(nr.stats().bound_replicas, nodes as u64);
    }
}

/// The OS NUMA nodes of an OS CPU, from sysfs (`cpuN/nodeM` links), independently of hwloc.
#[cfg(feature = "hwloc")]
fn sysfs_nodes_of(os_cpu: usize) -> Option<Vec<usize>> {
    let dir = std::fs::read_dir(format!("/sys/devices/system/cpu/cpu{os_cpu}")).ok()?;
    let mut v: Vec<usize> = dir
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.strip_prefix("node")?.parse().ok())
        .collect();
    v.sort();
    Some(v)
}

#[cfg(feature = "hwloc")]
#[test]
fn hwloc_binds_each_replica_to_the_nodes_of_its_cpus() {
    use hwlocality::memory::binding::MemoryBindingFlags;
    use hwlocality::memory::nodeset::NodeSet;
    use replicore::nr::HwlocBinder;

    let hw = hwlocality::Topology::new().unwrap();
    for spec in ["numa:2 core:1 pu:1", "numa:4 core:1 pu:1"] {
        let topo: Topology = spec.parse().unwrap();
        // Some sandboxes refuse memory policies (seccomp, no CAP_SYS_NICE): ask once on a
        // scratch thread, and only expect acceptance where the OS gives it.
        let allowed = std::thread::scope(|s| {
            s.spawn(|| HwlocBinder.bind_current_thread(&topo, topo.nodes()[0]))
                .join()
                .unwrap()
        });
        // The default binder with the feature on is hwloc's.
        let nr: NodeReplicated<Placed> = NrBuilder::new(&topo).build(Placed::new).unwrap();
        match &allowed {
            Ok(()) => assert_eq!(
                nr.stats().bound_replicas,
                topo.num_nodes() as u64,
                "hwloc accepted every binding"
            ),
            Err(e) => eprintln!("memory binding refused here ({e}); first touch only"),
        }
        for &node in topo.nodes() {
            let want = HwlocBinder.os_nodes(&topo, node).unwrap();
            let mut from_sysfs: Vec<usize> = Vec::new();
            for &cpu in topo.cpus_of(node) {
                if let Some(ns) = sysfs_nodes_of(topo.os_cpu(cpu)) {
                    from_sysfs.extend(ns);
                }
            }
            from_sysfs.sort();
            from_sysfs.dedup();
            if !from_sysfs.is_empty() {
                assert_eq!(want, from_sysfs, "node {node:?}: the node set of its CPUs");
            }
            let (_, addr, len) = nr.register(node).unwrap().execute(());
            // SAFETY: the buffer belongs to the replica, which lives (unchanged: no write ever
            // runs) until `nr` drops at the end of this loop's scope.
            let area = unsafe { std::slice::from_raw_parts(addr as *const u8, len) };
            match hw.area_memory_location::<[u8], NodeSet>(area, MemoryBindingFlags::empty()) {
                Ok(found) => {
                    let found: Vec<usize> = found.iter_set().map(usize::from).collect();
                    assert!(
                        !found.is_empty() && found.iter().all(|n| want.contains(n)),
                        "node {node:?}: pages on {found:?}, bound to {want:?}"
                    );
                }
                // Some kernels or containers do not report page locations.
                Err(e) => eprintln!("area_memory_location unavailable here: {e}"),
            }
        }
    }
}
