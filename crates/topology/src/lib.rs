//! The hakube cluster topology: model, validation, placement and allocation, no I/O.
//!
//! Work in progress: this crate is being built.
