//! Rendering: snapshots of every file, determinism, and the example input's shape.

use hakube_addons::{Rendered, example_input, render};

fn rendered() -> Rendered {
    render(&example_input()).expect("example input renders")
}

#[test]
fn every_cluster_file_matches_its_snapshot() {
    let out = rendered();
    assert!(out.cluster_files.len() > 10);
    for f in &out.cluster_files {
        insta::assert_snapshot!(
            format!("cluster__{}", f.path.replace('/', "__")),
            f.contents
        );
    }
}

#[test]
fn every_host_file_matches_its_snapshot() {
    let out = rendered();
    assert_eq!(out.host_files.len(), 3, "one vault.hcl per Vault VM");
    for f in &out.host_files {
        assert_eq!(f.path, "/etc/vault.d/vault.hcl");
        assert_eq!(f.mode, 0o640);
        insta::assert_snapshot!(format!("host__{}", f.host), f.contents);
    }
}

#[test]
fn install_steps_match_snapshot() {
    let out = rendered();
    let text: String = out
        .steps
        .iter()
        .map(|s| {
            let cmds: Vec<String> = s.commands("cluster").iter().map(|c| c.join(" ")).collect();
            format!("[{}] {}\n", s.component().dir(), cmds.join("\n    "))
        })
        .collect();
    insta::assert_snapshot!("install_steps", text);
}

#[test]
fn rendering_twice_is_byte_identical() {
    let a = rendered();
    let b = rendered();
    assert_eq!(a, b);
    let paths: Vec<&str> = a.cluster_files.iter().map(|f| f.path.as_str()).collect();
    let mut sorted = paths.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(
        paths, sorted,
        "files are sorted by path, without duplicates"
    );
}
