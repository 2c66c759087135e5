//! Placeholder until the benchmark runner lands.
fn main() {}
