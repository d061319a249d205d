//! Pool benchmarks (issue 3).
fn main() {}
