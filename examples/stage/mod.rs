//! The stages of building a cluster, as library code the thin binaries call.

pub mod addons;
