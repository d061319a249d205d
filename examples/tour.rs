//! The replicore tour: what the runtime sees on this machine and what it does with it.
//!
//! Run with `cargo run --release --example tour`; set `REPLICORE_TOPOLOGY="numa:2 core:2 pu:1"`
//! to act out a two-socket machine.
use replicore::Topology;

fn section(title: &str) {
    println!(
        "\n== {title} {}",
        "=".repeat(70usize.saturating_sub(title.len()))
    );
}

fn main() {
    section("1. Topology");
    let topo = match Topology::detect() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    print!("{topo}");
    println!("Successor order (who replicates and takes over each CPU's queue, nearest first):");
    for &cpu in topo.cpus().iter().take(16) {
        let n: Vec<String> = topo
            .neighbours(cpu)
            .iter()
            .take(3)
            .map(|c| c.to_string())
            .collect();
        println!("  {cpu} -> {}", n.join(", "));
    }
}
