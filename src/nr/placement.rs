//! Where replicas live and which replica a thread uses.

use crate::{NodeId, Topology};

/// Makes one `D` per node. Outside loom each is built (and so first touched) by a thread pinned
/// to the node's first CPU, so the kernel's first-touch policy puts its pages on that node.
/// Pinning can be refused (a CPU outside the process's cpuset); the replica is then still built,
/// just without placement.
#[cfg(not(loom))]
pub(crate) fn allocate_per_node<D: Send>(
    topo: &Topology,
    init: &(impl Fn() -> D + Sync),
) -> Vec<Box<D>> {
    std::thread::scope(|s| {
        let builders: Vec<_> = topo
            .nodes()
            .iter()
            .map(|&node| {
                let os_cpu = topo.cpus_of(node).first().map(|&cpu| topo.os_cpu(cpu));
                s.spawn(move || {
                    if let Some(os_cpu) = os_cpu {
                        crate::topology::bind_current_thread(os_cpu);
                    }
                    Box::new(init())
                })
            })
            .collect();
        builders
            .into_iter()
            .map(|b| {
                b.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

/// Under loom there is no placement to model: build the replicas in place.
#[cfg(loom)]
pub(crate) fn allocate_per_node<D: Send>(
    topo: &Topology,
    init: &(impl Fn() -> D + Sync),
) -> Vec<Box<D>> {
    topo.nodes().iter().map(|_| Box::new(init())).collect()
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
