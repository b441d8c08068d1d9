//! The NFS server, its exports, and dynamic NFS volumes in Kubernetes.
//!
//! Work in progress: this crate is being built.
