//! temp
#[path = "../benches/common/nr_scale.rs"]
#[allow(dead_code)]
mod nr_scale;
use nr_scale::*;
fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let who = a[0].clone();
    let nodes: usize = a[1].parse().unwrap();
    let tpn: usize = a[2].parse().unwrap();
    let w: u64 = a[3].parse().unwrap();
    let writes = if a[4] == "lockstep" {
        Writes::Lockstep
    } else {
        Writes::Random
    };
    let ops = 1_000_000;
    let maps = Maps::new(Cell {
        nodes,
        threads_per_node: tpn,
        write_pct: w,
        writes,
    });
    let mut v = vec![];
    for _ in 0..9 {
        let d = maps.round(&who, ops);
        v.push((ops * (nodes * tpn) as u64) as f64 / d.as_secs_f64() / 1e6);
    }
    v.sort_by(f64::total_cmp);
    println!(
        "{who} numa:{nodes} core:{tpn} w{w} {}: median {:.1} M ops/s (min {:.1} max {:.1})",
        a[4], v[4], v[0], v[8]
    );
}
