//! Synthetic topologies: `"numa:2 core:4 pu:2".parse::<Topology>()` and `Topology::synthetic`.

use super::{CpuDesc, CpuId, NodeId, Topology, TopologyError, TopologySource};
use std::str::FromStr;

/// Upper bound on synthetic CPUs: large enough for any real machine, small enough that a typo
/// such as `core:100000000` is an error rather than an allocation failure.
pub(crate) const MAX_SYNTHETIC_CPUS: usize = 1 << 16;

pub(crate) fn build_synthetic(
    nodes: usize,
    cores_per_node: usize,
    pus_per_core: usize,
    distances: Option<Vec<Vec<u32>>>,
) -> Result<Topology, TopologyError> {
    for (what, v) in [
        ("nodes", nodes),
        ("cores per node", cores_per_node),
        ("PUs per core", pus_per_core),
    ] {
        if v == 0 {
            return Err(TopologyError::Empty {
                what,
                hint: "nodes, cores per node and PUs per core must each be at least 1",
            });
        }
    }
    let total = nodes
        .checked_mul(cores_per_node)
        .and_then(|x| x.checked_mul(pus_per_core))
        .filter(|&t| t <= MAX_SYNTHETIC_CPUS)
        .ok_or(TopologyError::TooLarge {
            what: "synthetic CPUs (nodes × cores × PUs)",
            value: nodes
                .saturating_mul(cores_per_node)
                .saturating_mul(pus_per_core),
            max: MAX_SYNTHETIC_CPUS,
        })?;
    let real = Topology::allowed_os_cpus();
    let cpus = (0..total)
        .map(|i| {
            let core = i / pus_per_core;
            let node = core / cores_per_node;
            CpuDesc {
                id: CpuId(i),
                node: NodeId(node),
                core,
                l2: Some(core),
                l3: Some(node),
                os_cpu: real[i % real.len()],
            }
        })
        .collect();
    Topology::from_parts(cpus, distances, TopologySource::Synthetic)
}

impl FromStr for Topology {
    type Err = TopologyError;

    /// Parses a synthetic spec such as `"numa:2 core:4 pu:2"`.
    fn from_str(spec: &str) -> Result<Topology, TopologyError> {
        let err = |reason: String| TopologyError::Parse {
            spec: spec.to_string(),
            reason,
        };
        let (mut nodes, mut cores, mut pus, mut distances) = (None, None, None, None);
        if spec.trim().is_empty() {
            return Err(err("the spec is empty".into()));
        }
        for token in spec.split_whitespace() {
            let (key, value) = token
                .split_once(':')
                .ok_or_else(|| err(format!("`{token}` is not a `key:value` pair")))?;
            let slot = match key.to_ascii_lowercase().as_str() {
                "numa" | "node" | "nodes" => &mut nodes,
                "core" | "cores" => &mut cores,
                "pu" | "pus" | "smt" => &mut pus,
                "distances" | "distance" => {
                    if distances.is_some() {
                        return Err(err(format!("`{key}` is given twice")));
                    }
                    distances = Some(parse_distances(value).map_err(err)?);
                    continue;
                }
                other => return Err(err(format!("unknown key `{other}`"))),
            };
            if slot.is_some() {
                return Err(err(format!("`{key}` is given twice")));
            }
            let n: usize = value.parse().map_err(|_| {
                err(format!(
                    "`{value}` in `{token}` is not a non-negative whole number"
                ))
            })?;
            *slot = Some(n);
        }
        let nodes = nodes.ok_or_else(|| err("`numa:N` is missing".into()))?;
        let cores = cores.ok_or_else(|| err("`core:N` is missing".into()))?;
        build_synthetic(nodes, cores, pus.unwrap_or(1), distances)
    }
}

fn parse_distances(value: &str) -> Result<Vec<Vec<u32>>, String> {
    value
        .split('/')
        .map(|row| {
            row.split(',')
                .map(|d| {
                    d.parse::<u32>()
                        .map_err(|_| format!("distance `{d}` in `{value}` is not a whole number"))
                })
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_specs() {
        let t: Topology = "numa:2 core:4 pu:2".parse().unwrap();
        assert_eq!((t.num_nodes(), t.num_cpus()), (2, 16));
        assert_eq!(t.source(), TopologySource::Synthetic);
        let t: Topology = "  node:4   core:2 ".parse().unwrap();
        assert_eq!((t.num_nodes(), t.num_cpus()), (4, 8));
        let t: Topology = "numa:2 core:1 distances:10,21/21,10".parse().unwrap();
        assert_eq!(t.distance(NodeId(0), NodeId(1)), 21);
        assert_eq!(
            t,
            "NUMA:2 CORE:1 pu:1 distances:10,21/21,10".parse().unwrap()
        );
    }

    #[test]
    fn bad_specs_each_name_their_problem() {
        let table: &[(&str, &str)] = &[
            ("", "empty"),
            ("numa:2", "`core:N` is missing"),
            ("core:2", "`numa:N` is missing"),
            ("numa:two core:1", "`two`"),
            ("numa:-1 core:1", "`-1`"),
            ("numa:2 core:1 numa:3", "given twice"),
            ("numa:2 core:1 socket:1", "unknown key `socket`"),
            ("numa 2 core:1", "not a `key:value` pair"),
            ("numa:0 core:1", "no nodes"),
            ("numa:1 core:0", "no cores per node"),
            ("numa:1 core:1 pu:0", "no PUs per core"),
            ("numa:100000 core:100000", "at most"),
            ("numa:2 core:1 distances:10,20/21,10", "asymmetric"),
            ("numa:2 core:1 distances:10,20", "must be 2×2"),
            ("numa:2 core:1 distances:10,x/20,10", "`x`"),
            ("numa:2 core:1 distances:10,5/5,10", "invalid"),
        ];
        for (spec, needle) in table {
            let e = spec
                .parse::<Topology>()
                .expect_err(&format!("{spec:?} must fail"));
            let msg = e.to_string();
            assert!(msg.contains(needle), "{spec:?}: {msg:?} lacks {needle:?}");
        }
        let parse = "numa:x core:1".parse::<Topology>().unwrap_err().to_string();
        assert!(
            parse.contains("numa:2 core:4 pu:2"),
            "names the accepted form: {parse}"
        );
    }

    #[test]
    fn synthetic_cpus_map_round_robin_onto_real_ones() {
        let real = Topology::allowed_os_cpus();
        let t = Topology::synthetic(4, 2, 1).unwrap();
        for (i, &c) in t.cpus().iter().enumerate() {
            assert_eq!(t.os_cpu(c), real[i % real.len()]);
        }
    }
}
