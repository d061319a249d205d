//! The scale sweep: replicore against rayon as the worker count grows to 256 (synthetic
//! topologies from `numa:1` to `numa:8`), and the node-replication map against
//! node-replication 0.1.1 and `parking_lot::RwLock` from 1 to 8 synthetic nodes with 1 and 2
//! threads per node. Each point is a ratio of medians over alternating rounds, so a noisy
//! moment hits both contenders; the rounds are the `scale` bench's (`benches/common/`).

use crate::contender::Contender;
use crate::nr_scale::{CONTENDERS, Cell, Maps, Writes};
use crate::plot::Series;
use crate::scale_workloads::{CASES, pools, round};
use crate::{Settings, Sweep, median};
use std::error::Error;
use std::fmt::Write as _;
use std::time::Duration;

/// Idle time before each pool round, so that every worker has parked (as in the bench).
pub const IDLE: Duration = Duration::from_millis(20);

/// Ratios against a swept count, one line per case (> 1 means replicore is faster), and the
/// medians behind them.
pub struct RatioSweep {
    pub sweep: Sweep,
    /// A markdown table of the medians behind the ratios.
    pub table: String,
}

/// One round of `case` on `pool` after [`IDLE`].
fn idle_round<P: Contender>(pool: &P, case: &str) -> Duration {
    std::thread::sleep(IDLE);
    round(pool, case)
}

/// The pool cases at each worker count: rayon's median round time over replicore's.
pub fn pool_sweep(s: &Settings) -> Result<RatioSweep, Box<dyn Error>> {
    let sizes: Vec<usize> = if s.quick {
        vec![2, 8, 32]
    } else {
        vec![2, 8, 32, 64, 128, 256]
    };
    let reps = if s.quick { 3 } else { 7 };
    let mut series: Vec<Series> = CASES
        .iter()
        .map(|c| Series {
            name: c.to_string(),
            values: Vec::new(),
        })
        .collect();
    let mut table = String::from(
        "| workers | topology | case | replicore (median) | rayon (median) | rayon / replicore |\n\
         |---|---|---|---|---|---|\n",
    );
    for &n in &sizes {
        let (rp, ry, spec) = pools(n);
        for (i, case) in CASES.iter().enumerate() {
            eprintln!("  scale: {case}, {n} workers ({spec})");
            // One untimed round each, then alternate.
            idle_round(&rp, case);
            idle_round(&ry, case);
            let (mut ours, mut theirs) = (Vec::new(), Vec::new());
            for _ in 0..reps {
                ours.push(idle_round(&rp, case).as_secs_f64());
                theirs.push(idle_round(&ry, case).as_secs_f64());
            }
            let (ours, theirs) = (median(ours), median(theirs));
            let ratio = theirs / ours;
            series[i].values.push(ratio);
            let _ = writeln!(
                table,
                "| {n} | `{spec}` | {case} | {:.3} ms | {:.3} ms | {ratio:.2} |",
                ours * 1e3,
                theirs * 1e3
            );
        }
    }
    Ok(RatioSweep {
        sweep: Sweep {
            title: "Pool against rayon as workers grow (synthetic topologies)".into(),
            x_desc: "workers (on this machine's CPUs)".into(),
            y_desc: "rayon time / replicore time (> 1: replicore faster)".into(),
            xs: sizes,
            series,
        },
        table,
    })
}

/// The map cells at each node count; one sweep per baseline (node-replication 0.1.1, then the
/// RwLock), each point replicore's median throughput over the baseline's.
pub fn nr_sweeps(s: &Settings) -> Result<[RatioSweep; 2], Box<dyn Error>> {
    let node_counts: Vec<usize> = if s.quick {
        vec![1, 2]
    } else {
        vec![1, 2, 4, 8]
    };
    let reps = s.reps;
    // Up to 16 threads per round: half the per-thread ops of the other map sweeps. Shorter
    // rounds would mostly measure the cold cache left by the previous contender.
    let ops = s.nr_ops / 2;
    let mixes = [
        (0, Writes::Random),
        (10, Writes::Random),
        (10, Writes::Lockstep),
    ];
    let mut cells = Vec::new();
    for threads_per_node in [1, 2] {
        for (write_pct, writes) in mixes {
            cells.push((threads_per_node, write_pct, writes));
        }
    }
    let label = |&(threads_per_node, write_pct, writes): &(usize, u64, Writes)| {
        Cell {
            nodes: 1,
            threads_per_node,
            write_pct,
            writes,
        }
        .label()
    };
    let series = |cells: &[(usize, u64, Writes)]| -> Vec<Series> {
        cells
            .iter()
            .map(|c| Series {
                name: label(c),
                values: Vec::new(),
            })
            .collect()
    };
    // node-replication 0.1.1 runs the one-thread-per-node cells only (`Cell::contenders`).
    let mut vs_nr = series(&cells[..mixes.len()]);
    let mut vs_rw = series(&cells);
    let mut table = format!(
        "| topology | threads | mix | {} | replicore / node-replication | replicore / RwLock |\n\
         |---|---|---|---|---|---|---|---|\n",
        CONTENDERS
            .iter()
            .map(|c| format!("`{c}` M ops/s"))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    for &nodes in &node_counts {
        for (k, &(threads_per_node, write_pct, writes)) in cells.iter().enumerate() {
            let cell = Cell {
                nodes,
                threads_per_node,
                write_pct,
                writes,
            };
            eprintln!("  scale: map {} on {}", cell.label(), cell.spec());
            let maps = Maps::new(cell);
            let total = (ops * cell.threads() as u64) as f64 / 1e6;
            let contenders = cell.contenders();
            let mut rates: Vec<Vec<f64>> = vec![Vec::new(); contenders.len()];
            for which in contenders {
                maps.round(which, ops / 4); // warm-up
            }
            for _ in 0..reps {
                for (i, which) in contenders.iter().enumerate() {
                    rates[i].push(total / maps.round(which, ops).as_secs_f64().max(1e-9));
                }
            }
            let rate = |name: &str| {
                contenders
                    .iter()
                    .position(|c| *c == name)
                    .map(|i| median(rates[i].clone()))
            };
            let ours = rate("replicore").expect("replicore runs every cell");
            let rw = rate("parking_lot-rwlock").expect("the RwLock runs every cell");
            let nr = rate("node-replication-0.1.1");
            vs_rw[k].values.push(ours / rw);
            let (nr_cell, nr_ratio) = match nr {
                Some(nr) => {
                    vs_nr[k].values.push(ours / nr);
                    (format!("{nr:.1}"), format!("{:.2}", ours / nr))
                }
                None => ("not run".to_string(), "-".to_string()),
            };
            let _ = writeln!(
                table,
                "| `{}` | {} | {} | {ours:.1} | {nr_cell} | {rw:.1} | {nr_ratio} | {:.2} |",
                cell.spec(),
                cell.threads(),
                cell.label(),
                ours / rw
            );
        }
    }
    let sweep = |baseline: &str, series: Vec<Series>, table: String| RatioSweep {
        sweep: Sweep {
            title: format!("Hash map against {baseline} as nodes grow (synthetic)"),
            x_desc: "synthetic NUMA nodes (replicas)".into(),
            y_desc: format!("replicore / {baseline} throughput"),
            xs: node_counts.clone(),
            series,
        },
        table,
    };
    Ok([
        sweep("node-replication 0.1.1", vs_nr, table.clone()),
        sweep("parking_lot RwLock", vs_rw, table),
    ])
}
