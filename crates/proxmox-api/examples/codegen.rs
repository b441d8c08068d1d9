//! Regenerates `src/generated.rs` and `tests/generated_calls.rs` from the pinned PVE API
//! schema (see `codegen/gen.rs`).
//!
//! `cargo run -p hakube-proxmox-api --example codegen -- SCHEMA.json`
//! (the JSON inside fakepve's `fakepve/data/pve-api.json.gz`, decompressed).

#[path = "../codegen/gen.rs"]
#[allow(dead_code, reason = "shared with the freshness test")]
mod generator;

use sha2::{Digest, Sha256};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: codegen SCHEMA.json")?;
    let raw = std::fs::read(&path)?;
    let sum: String = Sha256::digest(&raw)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if sum != generator::SCHEMA_SHA256 {
        return Err(format!(
            "{path}: sha256 {sum}, not the pinned schema {}",
            generator::SCHEMA_SHA256
        )
        .into());
    }
    let schema: serde_json::Value = serde_json::from_slice(&raw)?;
    let crate_dir = env!("CARGO_MANIFEST_DIR");
    std::fs::write(
        format!("{crate_dir}/src/generated.rs"),
        generator::rustfmt(&generator::generate(&schema))?,
    )?;
    std::fs::write(
        format!("{crate_dir}/tests/generated_calls.rs"),
        generator::rustfmt(&generator::generate_test(&schema))?,
    )?;
    println!("wrote src/generated.rs and tests/generated_calls.rs");
    Ok(())
}
