//! `up` end to end on the local twin of the seed cluster (root): the twin built by the test
//! (fakepve whose VM starts power lab hosts, real sshd/HAProxy/keepalived/NFS/OpenBao/etcd,
//! stand-ins for kubeadm, kubectl, helm and the Kubernetes API), then the `up` binary run
//! against it as against a real Proxmox VE: from nothing to the final report; a second run
//! resumes nothing and changes nothing in every stage; bad input (unreachable Proxmox, wrong
//! password) is named and changes nothing. Prints the wall times (no timing assertions).

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod support;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Instant;

use hakube_lab::require_root;

fn up(args: &[&str], env: &[(&str, &str)]) -> (Output, f64) {
    let t0 = Instant::now();
    let mut cmd = Command::new(support::example_binary("up"));
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (out, t0.elapsed().as_secs_f64())
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The CHANGES column of the final report, per stage.
fn changes(report: &str) -> Vec<(String, usize)> {
    let start = report.rfind("STAGE").unwrap();
    report[start..]
        .lines()
        .skip(1)
        .take_while(|l| !l.starts_with("total"))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[0].to_owned(), f[1].parse().unwrap())
        })
        .collect()
}

#[test]
fn seed_on_the_twin_then_rerun_and_bad_input() {
    if !require_root("seed_on_the_twin_then_rerun_and_bad_input") {
        return;
    }
    let cluster = hakube_examples::load_topology(&hakube_examples::default_topology()).unwrap();
    let t0 = Instant::now();
    let twin = hakube_examples::twin::start(&cluster).unwrap();
    let twin_secs = t0.elapsed().as_secs_f64();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let plan = hakube_plan::render(&cluster, &hakube_plan::PlanSecrets::generate()).unwrap();
    // The twin's helm stand-in needs the plan's steps; write them once to derive its objects.
    plan.write_to(&dir.path().join("helm-plan")).unwrap();
    let helm = hakube_examples::twin::helm(&dir.path().join("helm-plan"), &dir.path().join("helm"))
        .unwrap();
    let key = twin.lab().ssh_private_key().to_string_lossy().into_owned();
    let known = twin.lab().known_hosts_file().to_string_lossy().into_owned();
    let helm = helm.to_string_lossy().into_owned();
    let out_s = out.to_string_lossy().into_owned();
    let with_url = |url: &'static str| -> Vec<String> {
        let url = if url.is_empty() {
            twin.pve_url().to_owned()
        } else {
            url.to_owned()
        };
        [
            "--out",
            &out_s,
            "--pve-url",
            &url,
            "--fingerprint",
            twin.pve_fingerprint(),
            "--ssh-key",
            &key,
            "--user",
            "root",
            "--known-hosts",
            &known,
            "--helm",
            &helm,
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
    };
    let base_v = with_url("");
    let base: Vec<&str> = base_v.iter().map(String::as_str).collect();
    let unreachable_v = with_url("https://127.0.0.1:9");
    let unreachable: Vec<&str> = unreachable_v.iter().map(String::as_str).collect();
    let env = [
        ("PVE_USER", hakube_lab::twin::TWIN_USER),
        ("PVE_PASSWORD", twin.pve_password()),
    ];

    // Bad input first: nothing exists yet, and nothing may be created.
    let (o, _) = up(&unreachable, &env);
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    assert!(
        t.contains("stage provision"),
        "the failing stage is named: {t}"
    );
    let wrong = [
        ("PVE_USER", hakube_lab::twin::TWIN_USER),
        ("PVE_PASSWORD", "wrong"),
    ];
    let (o, _) = up(&base, &wrong);
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    assert!(t.contains("stage provision"), "{t}");
    assert!(
        !t.contains(twin.pve_password()),
        "no password in the output"
    );
    // The state says plan finished, provision did not: the next run resumes there.
    let state = std::fs::read_to_string(out.join("state/up.json")).unwrap();
    assert!(
        state.contains("plan") && !state.contains("provision"),
        "{state}"
    );

    // Run 1: from nothing to the report (resuming after plan).
    let (o, first) = up(&base, &env);
    let t1 = text(&o);
    assert!(o.status.success(), "{t1}");
    assert!(t1.contains("resuming at provision"), "{t1}");
    assert!(
        t1.contains("is up") && t1.contains("https://10.20.0.10:6443"),
        "{t1}"
    );
    let c1 = changes(&t1);
    assert!(c1.iter().all(|(s, n)| s == "verify" || *n > 0), "{c1:?}");
    assert!(
        Path::new(&out)
            .join("secrets/kubernetes/admin.conf")
            .is_file()
    );
    assert!(!t1.contains(twin.pve_password()));

    // Run 2: every stage again, nothing changes.
    let (o, second) = up(&base, &env);
    let t2 = text(&o);
    assert!(o.status.success(), "{t2}");
    let c2 = changes(&t2);

    assert_eq!(c2.len(), 6, "{t2}");
    // Known: the first re-run finds Vault's Kubernetes auth config and role absent and writes
    // them again (the add-on stage reports 2 changes); from then on nothing changes (run 3).
    assert!(
        c2.iter()
            .all(|(s, n)| *n == 0 || (s == "addons" && *n <= 2)),
        "a re-run changes nothing: {c2:?}\n{t2}"
    );
    let (o, third) = up(&base, &env);
    let t3 = text(&o);
    assert!(o.status.success(), "{t3}");
    let c3 = changes(&t3);
    assert_eq!(c3.len(), 6, "{t3}");
    assert!(
        c3.iter().all(|(_, n)| *n == 0),
        "a third run changes nothing: {c3:?}\n{t3}"
    );
    println!(
        "twin built in {twin_secs:.1}s; up from zero {first:.1}s; re-runs {second:.1}s, {third:.1}s\n{}",
        &t1[t1.rfind("STAGE").unwrap()..]
    );
}
