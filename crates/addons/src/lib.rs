//! Cluster add-ons: Calico, Traefik, observability, cert-manager with Vault, etcd backup, GitOps layout.
//!
//! Work in progress: this crate is being built.
