//! Helper threads end with their structure. Alone in its binary so that no other test's helpers
//! are counted.

mod common;

use common::{wait_until, within};
use replicore::Topology;
use replicore::nr::{Counter, HelperConfig, NrBuilder, ReplicatedCounter};
use std::time::Duration;

/// Threads of this process whose name starts with the helpers' (`/proc/self/task/*/comm`);
/// `None` where the directory does not exist.
fn helper_threads() -> Option<usize> {
    let tasks = std::fs::read_dir("/proc/self/task").ok()?;
    Some(
        tasks
            .filter_map(|e| e.ok())
            .filter_map(|e| std::fs::read_to_string(e.path().join("comm")).ok())
            .filter(|name| name.starts_with("replicore-nr-he"))
            .count(),
    )
}

#[test]
fn helpers_stop_when_the_structure_is_dropped() {
    within(Duration::from_secs(60), "helpers stop on drop", || {
        for nodes in [1, 2, 4] {
            let topo = Topology::synthetic(nodes, 1, 1).unwrap();
            let c = ReplicatedCounter::from(
                NrBuilder::new(&topo)
                    .helper(HelperConfig::default())
                    .build(Counter::default)
                    .unwrap(),
            );
            // A thread names itself when it starts, so its name may show up a little later.
            wait_until(
                Duration::from_secs(30),
                "one named helper per node",
                || helper_threads().is_none_or(|n| n == nodes),
                || format!("{:?} helper threads, want {nodes}", helper_threads()),
            );
            let h = c.register(topo.nodes()[0]).unwrap();
            for _ in 0..1000 {
                h.add(1);
            }
            drop(h);
            // Drop joins the helpers, so they are gone when it returns; the wait only covers
            // the kernel's bookkeeping of exited threads.
            drop(c);
            wait_until(
                Duration::from_secs(30),
                "helper threads gone",
                || helper_threads().is_none_or(|n| n == 0),
                || format!("{:?} helper threads left", helper_threads()),
            );
        }
    });
}
