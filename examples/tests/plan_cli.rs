//! The `plan` example as an operator runs it: on the seed, and on a broken topology.

#![allow(clippy::unwrap_used)]

mod support;

use std::process::Command;

/// Runs the `plan` example binary as the code stands (see `support::example_binary`).
fn plan(args: &[&str]) -> std::process::Output {
    Command::new(support::example_binary("plan"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap()
}

#[test]
fn seed_plan_writes_the_tree() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = plan(&["--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("master-1") && stdout.contains("pve1"),
        "{stdout}"
    );
    assert!(out.join("plan.json").is_file());
    assert!(out.join("hosts/lb-1/etc/hosts").is_file());
}

#[test]
fn invalid_topology_exits_non_zero_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let seed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/seed-cluster.yaml")).unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, seed.replace("count: 3 # masters", "count: 2")).unwrap();
    let out = dir.path().join("out");
    let o = plan(&[bad.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(!o.status.success());
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("bad.yaml:")
            && stderr.contains("control_plane.count")
            && stderr.contains("quorum"),
        "{stderr}"
    );
    assert!(!out.exists(), "an invalid topology must write nothing");
}

#[test]
fn re_planning_keeps_secrets_and_gives_the_same_tree() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let read_all = |root: &std::path::Path| {
        let mut files = std::collections::BTreeMap::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    files.insert(
                        p.strip_prefix(root).unwrap().to_path_buf(),
                        std::fs::read(&p).unwrap(),
                    );
                }
            }
        }
        files
    };
    assert!(plan(&["--out", out.to_str().unwrap()]).status.success());
    let first = read_all(&out);
    assert!(plan(&["--out", out.to_str().unwrap()]).status.success());
    assert_eq!(
        first,
        read_all(&out),
        "a second plan must write the same bytes"
    );
    assert!(first.contains_key(std::path::Path::new("secrets/kubeadm.env")));
    // The secrets sit outside the GitOps tree, readable by the owner only.
    let secrets = std::fs::read_to_string(out.join("secrets/kubeadm.env")).unwrap();
    let token = secrets
        .lines()
        .find_map(|l| l.strip_prefix("TOKEN="))
        .unwrap();
    for (path, contents) in &first {
        if path.starts_with("cluster") {
            assert!(
                !String::from_utf8_lossy(contents).contains(token),
                "{}: a secret in the GitOps tree",
                path.display()
            );
        }
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &str| std::fs::metadata(out.join(p)).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode("secrets"), 0o700);
    assert_eq!(mode("secrets/kubeadm.env"), 0o600);
}

#[test]
fn provision_specs_follow_the_placed_seed() {
    let cluster = hakube_examples::load_topology(&hakube_examples::default_topology()).unwrap();
    let specs = hakube_plan::vm_specs(&cluster, true).unwrap();
    assert_eq!(specs.len(), cluster.vms.len());
    for (spec, vm) in specs.iter().zip(&cluster.vms) {
        assert_eq!(
            (spec.name.as_str(), spec.node.as_str(), spec.vmid),
            (vm.name.as_str(), vm.proxmox_node.as_str(), vm.vmid)
        );
        assert_eq!(spec.template, vm.template_vmid);
        assert_eq!(u64::from(spec.memory_mib), vm.size.memory_mib);
        assert_eq!(spec.ha, vm.role.anti_affine(), "{}", vm.name);
    }
}
