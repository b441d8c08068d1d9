//! Typed kubeadm v1beta4 configuration and an HA bootstrap orchestrator.
//!
//! Work in progress: this crate is being built.
