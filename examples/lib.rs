//! Shared helpers for the hakube example binaries.
