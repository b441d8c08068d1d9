//! `cargo run --example plan`: renders the plan tree for a topology.
fn main() {}
