//! The stages the `configure` and `up` binaries run, as library code.

pub mod configure;
