//! Without default features the crate builds without an HTTP stack, TLS or async runtime:
//! `cargo tree -p hakube-proxmox-api --no-default-features -e normal` lists none of them.

#[test]
fn no_default_features_pull_no_http_tls_or_runtime() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args([
            "tree",
            "-p",
            "hakube-proxmox-api",
            "--no-default-features",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8_lossy(&out.stdout);
    assert!(tree.contains("hakube-proxmox-api"), "{tree}");
    for banned in ["reqwest", "hyper", "rustls", "tokio", "h2 ", "ring"] {
        assert!(
            !tree.lines().any(|l| l.starts_with(banned)),
            "{banned} is built without the client feature:\n{tree}"
        );
    }
}
