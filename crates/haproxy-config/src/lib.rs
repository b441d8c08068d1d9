//! Typed HAProxy and keepalived configuration, rendered for a highly available Kubernetes API and ingress.
//!
//! Work in progress: this crate is being built.
