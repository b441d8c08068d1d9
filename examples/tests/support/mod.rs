//! Shared by the tests that run the example binaries as an operator would.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

/// The example binary `name` as the code stands: `cargo build --example <name>` once per test
/// process, with the profile and target directory of this test binary (a no-op when `cargo
/// test` already built it; `cargo test --test <file>` alone builds no examples, and a binary
/// left from an earlier build would test old code).
pub fn example_binary(name: &str) -> PathBuf {
    static BUILT: OnceLock<Mutex<Vec<(String, PathBuf)>>> = OnceLock::new();
    let built = BUILT.get_or_init(|| Mutex::new(Vec::new()));
    let mut built = built
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((_, path)) = built.iter().find(|(n, _)| n == name) {
        return path.clone();
    }
    // target/<profile dir>/deps/<this test>
    let exe = std::env::current_exe().expect("current exe");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps");
    // `cargo test` builds with the `test` profile (its output is in `debug/`), `cargo bench`
    // with `bench` (in `release/`): build with the same, so nothing is rebuilt.
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => "test",
        Some("release") => "bench",
        Some(other) => other,
    };
    let started = Instant::now();
    let mut cargo = Command::new(env!("CARGO"));
    // Drop what cargo sets for this test process (CARGO_MANIFEST_DIR, CARGO_PKG_*, ...): build
    // scripts that watch such variables (ring watches CARGO_MANIFEST_DIR) would otherwise see
    // a change and rebuild half the tree, here and again in the next plain `cargo test`.
    for (var, _) in std::env::vars_os() {
        let name = var.to_string_lossy();
        if name == "CARGO_MANIFEST_DIR"
            || name == "CARGO_MANIFEST_PATH"
            || name == "CARGO_CRATE_NAME"
            || name == "CARGO_PRIMARY_PACKAGE"
            || name == "CARGO_TARGET_TMPDIR"
            || name == "CARGO_RUSTC_CURRENT_DIR"
            || name.starts_with("CARGO_PKG_")
            || name.starts_with("CARGO_BIN_")
        {
            cargo.env_remove(&var);
        }
    }
    let out = cargo
        .args(["build", "-q", "-p", "hakube-examples", "--example", name])
        .args([
            "--message-format",
            "json",
            "--profile",
            profile,
            "--target-dir",
        ])
        .arg(profile_dir.parent().expect("target dir"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stderr(Stdio::inherit())
        .output()
        .expect("run cargo build");
    assert!(
        out.status.success(),
        "cargo build --example {name} --profile {profile} failed"
    );
    let path = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["target"]["name"] == name)
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .unwrap_or_else(|| panic!("cargo reported no {name} executable"));
    eprintln!(
        "example {name}: cargo build --profile {profile} took {:.2}s",
        started.elapsed().as_secs_f64()
    );
    built.push((name.to_owned(), path.clone()));
    path
}
