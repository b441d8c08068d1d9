//! Fails when regenerating `src/generated.rs` or `tests/generated_calls.rs` from the pinned
//! schema would change them (run `cargo run -p hakube-proxmox-api --example codegen --
//! SCHEMA.json` and commit). The schema is the one fakepve ships; the test skips, saying
//! why, when the venv with fakepve is missing.

#![allow(clippy::unwrap_used, reason = "test")]

#[path = "../codegen/gen.rs"]
#[allow(dead_code, reason = "shared with the codegen example")]
mod generator;

mod common;

use sha2::{Digest, Sha256};

#[test]
fn generated_code_is_fresh() {
    let Some(py) = common::python() else {
        eprintln!("SKIP: no venv with fakepve (run scripts/install-test-deps)");
        return;
    };
    let out = std::process::Command::new(py)
        .args([
            "-c",
            "import gzip, os, sys, fakepve; sys.stdout.buffer.write(gzip.open(os.path.join(os.path.dirname(fakepve.__file__), 'data', 'pve-api.json.gz')).read())",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sum: String = Sha256::digest(&out.stdout)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        sum,
        generator::SCHEMA_SHA256,
        "the installed fakepve ships another schema than the pinned one: pin fakepve==0.5.0 or re-pin"
    );
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let dir = env!("CARGO_MANIFEST_DIR");
    for (file, fresh) in [
        ("src/generated.rs", generator::generate(&schema)),
        (
            "tests/generated_calls.rs",
            generator::generate_test(&schema),
        ),
    ] {
        let fresh = generator::rustfmt(&fresh).unwrap();
        let checked_in = std::fs::read_to_string(format!("{dir}/{file}")).unwrap();
        assert!(
            fresh == checked_in,
            "{file} is stale: regenerate with `cargo run -p hakube-proxmox-api --example codegen -- SCHEMA.json`"
        );
    }
}
