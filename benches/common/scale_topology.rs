//! The synthetic machine with `n` CPUs that the many-worker examples (`spawn_scale`,
//! `pool_idle`) and the `scale` bench run their pools on, so that their figures describe the
//! same machines.

use replicore::Topology;

/// A synthetic topology with `n` CPUs: up to 8 nodes, 2 PUs per core from 16 CPUs on; and its
/// spec string.
pub fn scale_topology(n: usize) -> (Topology, String) {
    let nodes = match n {
        0..=8 => 1,
        9..=32 => 2,
        33..=128 => 4,
        _ => 8,
    };
    let pus = if n >= 16 { 2 } else { 1 };
    let cores = (n / nodes / pus).max(1);
    let spec = format!("numa:{nodes} core:{cores} pu:{pus}");
    (spec.parse().expect("a valid synthetic topology"), spec)
}
