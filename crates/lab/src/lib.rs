//! A multi-host test lab built from Linux network namespaces, each host with its own sshd.
//!
//! Work in progress: this crate is being built.
