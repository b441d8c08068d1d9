//! Remote execution over SSH: commands, idempotent file pushes, fan-out and a plan executor.
//!
//! Work in progress: this crate is being built.
