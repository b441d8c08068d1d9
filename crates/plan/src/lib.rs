//! Composes the hakube crates: renders the whole plan tree from one topology.
//!
//! Work in progress: this crate is being built.
