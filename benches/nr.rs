//! Node-replication benchmarks (issue 5).
fn main() {}
