//! hwloc and sysfs must describe this machine the same way (the `hwloc` feature).
#![cfg(all(feature = "hwloc", target_os = "linux"))]

use replicore::{Topology, TopologySource};
use std::path::Path;

#[test]
fn hwloc_and_sysfs_agree_on_this_machine() {
    let hw = Topology::from_hwloc().expect("hwloc loads this machine");
    assert_eq!(hw.source(), TopologySource::Hwloc);
    // sysfs restricted to this process's affinity mask, as `detect` does without hwloc.
    let mask = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:").map(str::to_owned));
    let sys = match mask {
        Some(list) => {
            let mask = parse_simple_list(&list);
            Topology::from_sysfs_root(Path::new("/"), Some(&mask)).unwrap()
        }
        None => Topology::from_sysfs_root(Path::new("/"), None).unwrap(),
    };
    assert_eq!(hw.num_cpus(), sys.num_cpus(), "hwloc:\n{hw}\nsysfs:\n{sys}");
    assert_eq!(
        hw.num_nodes(),
        sys.num_nodes(),
        "hwloc:\n{hw}\nsysfs:\n{sys}"
    );
    assert_eq!(hw.cpus(), sys.cpus());
    for &cpu in hw.cpus() {
        assert_eq!(hw.node_of(cpu), sys.node_of(cpu), "{cpu}");
        // Both name cores and caches by their smallest CPU, so the nearest-first order (which
        // depends on SMT, L2, L3 and node groups) must match too.
        assert_eq!(hw.neighbours(cpu), sys.neighbours(cpu), "{cpu}");
    }
}

/// `0-3,8` as the kernel prints it (no strides in /proc/self/status).
fn parse_simple_list(list: &str) -> Vec<usize> {
    let mut out = Vec::new();
    for item in list.trim().split(',').filter(|s| !s.is_empty()) {
        match item.split_once('-') {
            Some((a, b)) => out.extend(a.parse::<usize>().unwrap()..=b.parse().unwrap()),
            None => out.push(item.parse().unwrap()),
        }
    }
    out
}

#[test]
fn detect_uses_hwloc_when_the_feature_is_on() {
    let topo = Topology::detect_machine().unwrap();
    assert_eq!(topo.source(), TopologySource::Hwloc);
}
