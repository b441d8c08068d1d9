//! Provisioning (in progress).
