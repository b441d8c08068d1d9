//! The server side: exports file and step list snapshots, exports(5) grammar, the `exportfs -v`
//! parser on recorded output, and the real `exportfs` where it can run (root, nfs-kernel-server
//! installed; the kernel module is not needed for `exportfs -ra` / `-v`).

mod common;

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use hakube_host_state::Item;
use hakube_nfs_provisioning::exports::{ExportsFile, parse_exportfs_verbose, verify_live_exports};
use hakube_nfs_provisioning::server::EXPORTS_FILE;
use hakube_nfs_provisioning::{Error, NfsSetup};

#[test]
fn exports_file_snapshots() {
    insta::assert_snapshot!("exports_seed", common::seed().exports_file().to_string());
    insta::assert_snapshot!(
        "exports_varied",
        common::varied().exports_file().to_string()
    );
}

#[test]
fn server_plan_snapshot() {
    let plan = common::varied().server_host_plan();
    plan.validate().expect("valid");
    assert_eq!(plan.files().count(), 1);
    assert!(plan.file_content(EXPORTS_FILE).is_some());
    insta::assert_snapshot!("server_host_plan_varied", plan.to_json());
}

/// A plain export (no StorageClass) is exported and created like the others: here the etcd
/// snapshots, root-writable by the three masters only, in a root-only directory.
#[test]
fn plain_export_is_exported_and_created_but_has_no_cluster_objects() {
    let setup = common::etcd_backup();
    let exports = setup.exports_file().to_string();
    insta::assert_snapshot!("exports_etcd_backup", exports);
    let line = exports
        .lines()
        .find(|l| l.starts_with("/srv/nfs/etcd-backup "))
        .expect("backup export line");
    let opts = "(rw,sync,no_subtree_check,no_root_squash)";
    assert_eq!(
        line,
        format!("/srv/nfs/etcd-backup 10.20.0.14/32{opts} 10.20.0.15/32{opts} 10.20.0.16/32{opts}")
    );
    let plan = setup.server_host_plan();
    insta::assert_snapshot!("server_host_plan_etcd_backup", plan.to_json());
    let dir = setup
        .server_directories()
        .into_iter()
        .find(|d| d.path == "/srv/nfs/etcd-backup")
        .expect("directory");
    assert_eq!(
        (dir.owner.as_deref(), dir.group.as_deref(), dir.mode),
        (Some("0"), Some("0"), 0o700)
    );
    // Nothing in the cluster: no provisioner, no StorageClass for it.
    assert_eq!(
        setup.cluster_files().expect("render"),
        common::seed().cluster_files().expect("render")
    );
}

// ---- exports(5) grammar, written from the man page, used when the real exportfs cannot run ----

/// Option keywords exports(5) documents (nfs-utils 2.6).
const FLAGS: &[&str] = &[
    "secure",
    "insecure",
    "rw",
    "ro",
    "async",
    "sync",
    "no_wdelay",
    "wdelay",
    "nohide",
    "hide",
    "crossmnt",
    "nocrossmnt",
    "subtree_check",
    "no_subtree_check",
    "insecure_locks",
    "secure_locks",
    "no_auth_nlm",
    "auth_nlm",
    "no_acl",
    "acl",
    "pnfs",
    "no_pnfs",
    "root_squash",
    "no_root_squash",
    "all_squash",
    "no_all_squash",
    "mp",
];
const KEYED: &[&str] = &[
    "anonuid",
    "anongid",
    "fsid",
    "sec",
    "refer",
    "replicas",
    "mountpoint",
    "mp",
    "xprtsec",
];

/// Checks one exports file against the exports(5) grammar: `path client(opts) ...`, comments,
/// no continuation lines, every option documented, numbers where numbers go, and no
/// contradictory pair in one option list.
fn check_exports_grammar(text: &str) -> Result<usize, String> {
    let mut entries = 0;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_end();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.ends_with('\\') {
            return Err(format!("line {}: continuation not expected", n + 1));
        }
        let mut words = line.split([' ', '\t']).filter(|w| !w.is_empty());
        let path = words.next().ok_or("empty")?;
        if !path.starts_with('/') {
            return Err(format!("line {}: path {path:?} not absolute", n + 1));
        }
        let mut clients = 0;
        for word in words {
            let open = word
                .find('(')
                .ok_or_else(|| format!("line {}: {word:?} has no options", n + 1))?;
            let (client, rest) = word.split_at(open);
            let opts = rest
                .strip_prefix('(')
                .and_then(|r| r.strip_suffix(')'))
                .ok_or_else(|| format!("line {}: bad parentheses in {word:?}", n + 1))?;
            if client.is_empty() || client.contains(['(', ')']) {
                return Err(format!("line {}: bad client in {word:?}", n + 1));
            }
            let mut seen = Vec::new();
            for opt in opts.split(',') {
                let key = match opt.split_once('=') {
                    Some((k, v)) => {
                        if !KEYED.contains(&k) {
                            return Err(format!("line {}: unknown option {k:?}", n + 1));
                        }
                        if matches!(k, "anonuid" | "anongid" | "fsid") && v.parse::<u32>().is_err()
                        {
                            return Err(format!("line {}: {k} needs a number", n + 1));
                        }
                        k
                    }
                    None if FLAGS.contains(&opt) => opt,
                    None => return Err(format!("line {}: unknown option {opt:?}", n + 1)),
                };
                seen.push(key);
            }
            for (a, b) in [
                ("rw", "ro"),
                ("sync", "async"),
                ("subtree_check", "no_subtree_check"),
                ("root_squash", "no_root_squash"),
            ] {
                if seen.contains(&a) && seen.contains(&b) {
                    return Err(format!("line {}: both {a} and {b}", n + 1));
                }
            }
            clients += 1;
        }
        if clients == 0 {
            return Err(format!("line {}: no clients", n + 1));
        }
        entries += 1;
    }
    Ok(entries)
}

#[test]
fn grammar_checker_rejects_what_exportfs_rejects() {
    assert!(check_exports_grammar("/srv a(rw,bogus)\n").is_err());
    assert!(check_exports_grammar("/srv a(rw,ro)\n").is_err());
    assert!(check_exports_grammar("srv a(rw)\n").is_err());
    assert!(check_exports_grammar("/srv a((rw)\n").is_err());
    assert!(check_exports_grammar("/srv a(fsid=x)\n").is_err());
    assert_eq!(check_exports_grammar("# c\n/srv a(rw) b(ro)\n"), Ok(1));
}

// ---- exportfs -v parser on output recorded from the real exportfs (nfs-utils 2.6.2) ----

#[test]
fn parses_recorded_exportfs_verbose() {
    let text = include_str!("fixtures/exportfs-v-mixed.txt");
    let live = parse_exportfs_verbose(text).expect("parses");
    assert_eq!(live.len(), 6);
    let prod: Vec<_> = live
        .iter()
        .filter(|l| l.path == "/srv/nfs/k8s-prod")
        .collect();
    assert_eq!(prod.len(), 2);
    assert_eq!(prod[1].client, "10.20.0.7/32");
    assert!(prod[1].has("no_root_squash"));
    let nonprod = live
        .iter()
        .find(|l| l.path == "/srv/nfs/k8s-nonprod")
        .expect("nonprod");
    assert!(nonprod.has("all_squash") && nonprod.has("async"));
    assert_eq!(nonprod.values["anonuid"], "1000");
    assert!(live.iter().any(|l| l.client == "<world>" && l.has("ro")));
    assert!(live.iter().any(|l| l.client == "fd00:20::/64"));
}

#[test]
fn verification_reports_missing_and_different_exports() {
    let setup = common::seed();
    let file = setup.exports_file();
    let ok = "/srv/nfs/k8s-prod\n\t\t10.20.0.0/24(sync,wdelay,hide,no_subtree_check,sec=sys,rw,root_squash,no_all_squash)\n\
              /srv/nfs/k8s-nonprod\n\t\t10.20.0.0/24(sync,wdelay,hide,no_subtree_check,sec=sys,rw,root_squash,no_all_squash)\n";
    verify_live_exports(&file, &parse_exportfs_verbose(ok).expect("parse")).expect("matches");

    let missing = &ok[..ok.find("/srv/nfs/k8s-nonprod").expect("second")];
    let err = verify_live_exports(&file, &parse_exportfs_verbose(missing).expect("parse"))
        .expect_err("missing");
    assert!(
        err.to_string()
            .starts_with("export /srv/nfs/k8s-nonprod for client 10.20.0.0/24: not exported"),
        "{err}"
    );

    let squashed = ok.replacen("root_squash", "no_root_squash", 1);
    let err = verify_live_exports(&file, &parse_exportfs_verbose(&squashed).expect("parse"))
        .expect_err("differs");
    assert_eq!(
        err.to_string(),
        "export /srv/nfs/k8s-prod for client 10.20.0.0/24: missing root_squash"
    );
}

// ---- the real exportfs ----

/// Why the real exportfs cannot run here, if it cannot.
fn real_exportfs_unavailable() -> Option<String> {
    if !common::is_root() {
        return Some("not root (needs mount namespaces)".into());
    }
    if !Path::new("/usr/sbin/exportfs").exists() {
        return Some("/usr/sbin/exportfs missing (apt-get install nfs-kernel-server)".into());
    }
    if Path::new("/proc/fs/nfsd/exports").exists() {
        // exportfs would push the test's exports into the machine's running kernel server.
        return Some("a kernel NFS server is active on this machine; not touching it".into());
    }
    if !Path::new("/var/lib/nfs").is_dir() {
        return Some("/var/lib/nfs missing".into());
    }
    None
}

/// Applies the host plan's file, directories and `exportfs -ra` inside a private mount
/// namespace (/etc an overlay, /srv a tmpfs, /var/lib/nfs a temporary directory), so the
/// machine is untouched, with the real `install` and `exportfs`; the full plan runs over SSH
/// with the executor in `tests/lab.rs`. Returns `exportfs -v`.
fn run_plan_with_real_exportfs(setup: &NfsSetup) -> String {
    let tmp = tempfile::tempdir().expect("tempdir");
    let t = tmp.path();
    for d in ["up", "work", "varlib", "files"] {
        std::fs::create_dir_all(t.join(d)).expect("mkdir");
    }
    let plan = setup.server_host_plan();
    let mut script = format!(
        "set -e\nmount -t overlay overlay -o lowerdir=/etc,upperdir={t}/up,workdir={t}/work /etc\n\
         mount -t tmpfs hakube-test /srv\nmount --bind {t}/varlib /var/lib/nfs\n: > /etc/exports\n\
         echo 10.20.0.21 node1 >> /etc/hosts\n",
        t = t.display()
    );
    let mut dirs = Vec::new();
    for (i, item) in plan.items.iter().enumerate() {
        match item {
            Item::Directory(d) => {
                writeln!(
                    script,
                    "install -d -m {:o} -o {} -g {} {}",
                    d.mode,
                    d.owner.as_deref().unwrap_or("0"),
                    d.group.as_deref().unwrap_or("0"),
                    d.path
                )
                .expect("fmt");
                dirs.push(d.clone());
            }
            Item::File(f) => {
                let local = t.join("files").join(i.to_string());
                std::fs::write(&local, &f.content).expect("write");
                writeln!(
                    script,
                    "install -m {:o} {} {}",
                    f.mode,
                    local.display(),
                    f.path
                )
                .expect("fmt");
            }
            Item::Exec(e) => writeln!(script, "{}", e.argv.join(" ")).expect("fmt"),
            _ => {}
        }
    }
    writeln!(script, "exportfs -v > {}/verify.out", t.display()).expect("fmt");
    writeln!(
        script,
        "stat -c '%n %u:%g %a' {}",
        dirs.iter()
            .map(|d| d.path.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    )
    .expect("fmt");
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .output()
        .expect("unshare");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "plan failed: {stderr}");
    assert!(
        !stderr.contains("exportfs:"),
        "exportfs complained about the rendered file: {stderr}"
    );
    let stat = String::from_utf8_lossy(&out.stdout).into_owned();
    for d in &dirs {
        let want = format!(
            "{} {}:{} {:o}",
            d.path,
            d.owner.as_deref().unwrap_or("0"),
            d.group.as_deref().unwrap_or("0"),
            d.mode
        );
        assert!(stat.contains(&want), "want {want} in {stat}");
    }
    std::fs::read_to_string(t.join("verify.out")).expect("verify output")
}

#[test]
fn rendered_exports_are_valid() {
    let cases: [(&str, ExportsFile, NfsSetup); 3] = [
        ("seed", common::seed().exports_file(), common::seed()),
        ("varied", common::varied().exports_file(), common::varied()),
        (
            "etcd-backup",
            common::etcd_backup().exports_file(),
            common::etcd_backup(),
        ),
    ];
    for (name, file, setup) in cases {
        let text = file.to_string();
        let entries = check_exports_grammar(&text).expect("grammar");
        assert_eq!(entries, file.lines.len());
        println!("{name}: exports validated by the exports(5) grammar checker ({entries} entries)");
        match real_exportfs_unavailable() {
            Some(why) => println!("{name}: real exportfs NOT run: {why}; grammar check only"),
            None => {
                let verify = run_plan_with_real_exportfs(&setup);
                let live = parse_exportfs_verbose(&verify).expect("parse real exportfs -v");
                verify_live_exports(&file, &live).expect("live exports match the model");
                println!(
                    "{name}: exports validated by the REAL exportfs (exportfs -ra, then exportfs -v parsed: {} live exports match)",
                    live.len()
                );
            }
        }
    }
}

#[test]
fn bad_input_errors_are_clear() {
    let mut input = common::seed_input();
    input.exports[1].path =
        hakube_nfs_provisioning::exports::ExportPath::new("/srv/nfs").expect("path");
    let err = NfsSetup::new(input).expect_err("nested");
    assert!(matches!(err, Error::OverlappingExports { .. }));
    assert_eq!(
        err.to_string(),
        "export /srv/nfs/k8s-prod overlaps export /srv/nfs (the same directory or nested inside it)"
    );
    let err = hakube_nfs_provisioning::exports::ExportPath::new("srv/nfs").expect_err("relative");
    assert_eq!(
        err.to_string(),
        "export path \"srv/nfs\" is not absolute (it must start with '/')"
    );
}
