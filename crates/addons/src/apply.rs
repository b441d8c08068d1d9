//! Server-side apply with kube-rs (filled in below).
