//! The plan's pictures of the placed topology: the seed's Mermaid (snapshot, and Mermaid's own
//! parser when Node.js is here), the SVG (well-formed XML naming every VM and address,
//! hostile text escaped), and the committed `docs/seed-topology.svg` kept current.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{cluster, seed, text};
use hakube_plan::diagram::{MERMAID_PATH, SVG_PATH, mermaid, svg};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every text node of an SVG document, parsed by a strict XML parser.
fn svg_texts(doc: &str) -> Vec<String> {
    let xml = roxmltree::Document::parse(doc).unwrap_or_else(|e| panic!("not XML: {e}\n{doc}"));
    let root = xml.root_element();
    assert_eq!(root.tag_name().name(), "svg");
    assert_eq!(
        root.tag_name().namespace(),
        Some("http://www.w3.org/2000/svg")
    );
    root.descendants()
        .filter(|n| n.has_tag_name("text"))
        .map(|n| n.text().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn seed_mermaid_snapshot() {
    insta::assert_snapshot!("seed_topology_mmd", mermaid(&cluster()));
}

#[test]
fn the_plan_holds_both_pictures_outside_the_gitops_tree() {
    let tree = seed();
    let cluster = cluster();
    assert_eq!(text(&tree, MERMAID_PATH), mermaid(&cluster));
    assert_eq!(text(&tree, SVG_PATH), svg(&cluster));
    assert!(!MERMAID_PATH.starts_with("cluster/") && !SVG_PATH.starts_with("cluster/"));
}

#[test]
fn seed_svg_is_xml_naming_every_vm_and_address() {
    let cluster = cluster();
    let texts = svg_texts(&svg(&cluster));
    for vm in &cluster.vms {
        // The name is a line of its own (the box title); the address starts the next one.
        assert!(
            texts.iter().any(|t| t == &vm.name),
            "no {} in the SVG",
            vm.name
        );
        let addr = format!("{} · vmid {}", vm.address, vm.vmid);
        assert!(texts.contains(&addr), "no {addr:?} in the SVG");
    }
    for node in ["pve1", "pve2", "pve3"] {
        assert!(texts.contains(&format!("Proxmox node {node}")), "{node}");
    }
    for want in [
        "VIP 10.20.0.10",
        "kube-apiserver :6443",
        ":80 → :30080 · :443 → :30443",
        "/srv/nfs/k8s-prod → StorageClass nfs-prod (Retain)",
        "observability (in the cluster)",
    ] {
        assert!(texts.iter().any(|t| t == want), "no {want:?} in {texts:#?}");
    }
    // The Mermaid form names the same VMs.
    let mmd = mermaid(&cluster);
    for vm in &cluster.vms {
        assert!(mmd.contains(&format!("[\"{}<br/>{} · vmid", vm.name, vm.address)));
    }
}

/// Names nothing else validates (a hand-built `Cluster`): markup characters reach both
/// forms escaped, and read back unchanged from the SVG.
#[test]
fn hostile_text_is_escaped() {
    let hostile = r#"a<b&c"d'e>#|f"#;
    let mut cluster = cluster();
    cluster.vms[0].name = hostile.to_owned();
    cluster.topology.proxmox.nodes[0].name = format!("pve<{hostile}");
    for vm in &mut cluster.vms {
        if vm.proxmox_node == "pve1" {
            vm.proxmox_node = format!("pve<{hostile}");
        }
    }
    cluster.topology.cluster.name = format!("</title>{hostile}");

    let doc = svg(&cluster);
    let texts = svg_texts(&doc);
    assert!(texts.iter().any(|t| t == hostile), "{texts:#?}");
    assert!(texts.contains(&format!("Proxmox node pve<{hostile}")));
    assert!(!doc.contains("a<b") && !doc.contains("</title>a"), "{doc}");
    assert!(doc.contains("a&lt;b&amp;c&quot;d&apos;e&gt;#|f"), "{doc}");

    let mmd = mermaid(&cluster);
    assert!(
        mmd.contains("a#lt;b#amp;c#quot;d'e#gt;#35;#124;f<br/>"),
        "{mmd}"
    );
    for raw in ["a<b", "b&c", "c\"d", "e>#", "#|f"] {
        assert!(!mmd.contains(raw), "raw {raw:?} in\n{mmd}");
    }
    // Mermaid ids stay plain.
    assert!(mmd.contains("vm_a_b_c_d_e___f[\""), "{mmd}");
    mermaid_parses("hostile", &mmd);
}

#[test]
fn docs_seed_svg_is_what_plan_draws() {
    let path = repo_root().join("docs/seed-topology.svg");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == svg(&cluster()),
        "{} is stale: run `cargo run --example plan` and copy out/{SVG_PATH} there",
        path.display()
    );
}

#[test]
fn seed_mermaid_passes_mermaids_parser() {
    mermaid_parses("seed", &mermaid(&cluster()));
}

/// Runs Mermaid's own parser (`scripts/mermaid-check`, installed by scripts/install-test-deps)
/// on `text`. Skips, saying why, when Node.js or the checker's packages are missing, unless
/// `HAKUBE_LAB_STRICT=1` (as under `scripts/test` as root, i.e. CI).
fn mermaid_parses(what: &str, text: &str) {
    let dir = repo_root().join("scripts/mermaid-check");
    let node = Command::new("node").arg("--version").output();
    let missing = if node.is_err() {
        Some("no `node` on PATH")
    } else if !dir.join("node_modules/mermaid/package.json").is_file() {
        Some("scripts/mermaid-check/node_modules missing")
    } else {
        None
    };
    if let Some(why) = missing {
        assert!(
            std::env::var(hakube_lab::STRICT_ENV).as_deref() != Ok("1"),
            "Mermaid's parser cannot run ({why}; scripts/install-test-deps installs it)"
        );
        eprintln!(
            "SKIP Mermaid parser check of {what}: {why} (scripts/install-test-deps installs it)"
        );
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join(format!("{what}.mmd"));
    std::fs::write(&file, text).unwrap();
    let out = Command::new("node")
        .arg(dir.join("check.mjs"))
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "Mermaid rejects the {what} diagram:\n{}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // And the checker does reject broken input, so a pass means something.
    let bad = tmp.path().join("bad.mmd");
    std::fs::write(&bad, "flowchart TB\n    a[\"x\"\"] --> |\n").unwrap();
    let out = Command::new("node")
        .arg(dir.join("check.mjs"))
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success(), "the checker accepted broken Mermaid");
}
