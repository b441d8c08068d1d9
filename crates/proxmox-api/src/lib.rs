//! A typed, async Proxmox VE API client and an idempotent VM provisioner.
//!
//! Work in progress: this crate is being built.
