//! Prints the detected topology (or `REPLICORE_TOPOLOGY`'s) as a tree, with each CPU's neighbours.
use replicore::Topology;

fn main() {
    let topo = match Topology::detect() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    print!("{topo}");
    println!("\nNeighbour order (nearest first):");
    for &cpu in topo.cpus() {
        let n: Vec<String> = topo.neighbours(cpu).iter().map(|c| c.to_string()).collect();
        println!("  {cpu} -> [{}]", n.join(", "));
    }
}
