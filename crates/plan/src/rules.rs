//! Rules checked on the composed plan, where each side of a contract between two components is
//! visible: Traefik's nodes against HAProxy's ingress backends, every scrape target against
//! what the target binds, the install order against every namespace (the NFS provisioner's
//! folder included), and no secret in the GitOps tree `cluster/`.
//!
//! A broken rule is a bug in hakube (the components are composed from one topology), so the
//! plan is refused with [`Error::Component`] naming the rule.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use hakube_addons::{AddonsInput, ClusterFile, Rendered};
use hakube_topology::{Cluster, RoleKind, Vm};
use serde_json::Value;

use crate::secrets::{PlanSecrets, SECRETS_DIR};
use crate::{Error, PlanTree};

fn broken(rule: &str, message: String) -> Error {
    Error::Component {
        component: "plan rules",
        source: format!("{rule}: {message}").into(),
    }
}

/// The add-ons' contracts with the rest of the plan (run once the add-ons are rendered).
pub(crate) fn check_addons(
    cluster: &Cluster,
    input: &AddonsInput,
    rendered: &Rendered,
    tree: &PlanTree,
) -> Result<(), Error> {
    traefik_on_ingress_nodes(cluster, input)?;
    scrape_targets_are_bound(cluster, rendered, tree)?;
    namespaces_first(rendered, tree)
}

/// Traefik runs exactly on the nodes HAProxy sends ingress to.
fn traefik_on_ingress_nodes(cluster: &Cluster, input: &AddonsInput) -> Result<(), Error> {
    let haproxy: BTreeSet<String> = crate::haproxy::input(cluster)
        .workers
        .iter()
        .map(|w| w.address.to_string())
        .collect();
    let traefik: BTreeSet<String> = input
        .ingress_nodes()
        .iter()
        .map(|h| h.address.to_string())
        .collect();
    if haproxy != traefik {
        return Err(broken(
            "traefik-on-ingress-nodes",
            format!(
                "HAProxy sends ingress to {haproxy:?} but Traefik runs on {traefik:?}: with externalTrafficPolicy Local the others are always DOWN"
            ),
        ));
    }
    Ok(())
}

fn yaml_docs(text: &[u8]) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(&String::from_utf8_lossy(text)).unwrap_or_default()
}

/// Every `(address, port)` a VM's files say it listens on: HAProxy `bind` lines, and for a
/// control-plane VM kubeadm's etcd `listen-metrics-urls` (from the ClusterConfiguration, which
/// `kubeadm init` stores for every control-plane member: only the first master's files hold
/// it). An unspecified address (`*`, `0.0.0.0`) is returned as such.
fn bound(cluster: &Cluster, tree: &PlanTree, vm: &Vm) -> BTreeSet<(String, u16)> {
    let mut out = BTreeSet::new();
    let mut files: Vec<(String, &crate::PlanFile)> = tree.host_files(&vm.name).collect();
    if vm.role == RoleKind::ControlPlane {
        for m in cluster.vms_with_role(RoleKind::ControlPlane) {
            files.extend(
                tree.host_files(&m.name)
                    .filter(|(p, _)| p.starts_with("/etc/kubernetes/kubeadm/")),
            );
        }
    }
    for (path, file) in files {
        if path == "/etc/haproxy/haproxy.cfg" {
            for line in String::from_utf8_lossy(&file.contents).lines() {
                let mut words = line.split_whitespace();
                if words.next() == Some("bind")
                    && let Some(addr) = words.next()
                    && let Some((host, port)) = addr.rsplit_once(':')
                    && let Ok(port) = port.parse()
                {
                    out.insert((host.to_owned(), port));
                }
            }
        } else if path.starts_with("/etc/kubernetes/kubeadm/") {
            let mut stack: Vec<Value> = yaml_docs(&file.contents);
            while let Some(v) = stack.pop() {
                match v {
                    Value::Object(m) => {
                        if m.get("name").and_then(Value::as_str) == Some("listen-metrics-urls")
                            && let Some(urls) = m.get("value").and_then(Value::as_str)
                        {
                            for url in urls.split(',') {
                                let hostport = url
                                    .trim()
                                    .trim_start_matches("http://")
                                    .trim_start_matches("https://");
                                if let Some((host, port)) = hostport.rsplit_once(':')
                                    && let Ok(port) = port.trim_end_matches('/').parse()
                                {
                                    out.insert((host.to_owned(), port));
                                }
                            }
                        }
                        stack.extend(m.into_iter().map(|(_, v)| v));
                    }
                    Value::Array(a) => stack.extend(a),
                    _ => {}
                }
            }
        }
    }
    out
}

/// Every Prometheus scrape target is an address its target binds.
fn scrape_targets_are_bound(
    cluster: &Cluster,
    rendered: &Rendered,
    tree: &PlanTree,
) -> Result<(), Error> {
    let Some(values) = rendered
        .cluster_files
        .iter()
        .find(|f| f.path == hakube_addons::observability::PROMETHEUS_VALUES)
    else {
        return Ok(());
    };
    let values = yaml_docs(values.contents.as_bytes());
    let jobs: Vec<Value> = values
        .first()
        .and_then(|v| v["extraScrapeConfigs"].as_str())
        .map(|s| serde_saphyr::from_str(s).unwrap_or_default())
        .unwrap_or_default();
    for job in &jobs {
        let name = job["job_name"].as_str().unwrap_or("?");
        for target in job["static_configs"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|c| c["targets"].as_array().cloned().unwrap_or_default())
        {
            let target = target.as_str().unwrap_or_default();
            let (host, port) = target
                .rsplit_once(':')
                .and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?)))
                .ok_or_else(|| {
                    broken(
                        "scrape-target-is-bound",
                        format!("job {name}: `{target}` is not host:port"),
                    )
                })?;
            let vm = host
                .parse::<Ipv4Addr>()
                .ok()
                .and_then(|a| cluster.vms.iter().find(|v| v.address == a))
                .ok_or_else(|| {
                    broken(
                        "scrape-target-is-bound",
                        format!("job {name}: `{target}` is no VM of the cluster"),
                    )
                })?;
            let binds = bound(cluster, tree, vm);
            let ok = binds.iter().any(|(h, p)| {
                *p == port && (h == host || h == "*" || h == "0.0.0.0" || h.is_empty())
            });
            if !ok {
                return Err(broken(
                    "scrape-target-is-bound",
                    format!(
                        "job {name} scrapes {target} but {} ({:?}) binds only {binds:?} there",
                        vm.name, vm.role
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Every namespaced object comes after its namespace, over the whole install order (the NFS
/// provisioner's folder, rendered by another crate, included).
fn namespaces_first(rendered: &Rendered, tree: &PlanTree) -> Result<(), Error> {
    let mut files: Vec<ClusterFile> = rendered.cluster_files.clone();
    for (path, file) in tree.iter() {
        if let Some(rel) = path.strip_prefix("cluster/")
            && !files.iter().any(|f| f.path == rel)
        {
            files.push(ClusterFile {
                path: rel.to_owned(),
                contents: String::from_utf8_lossy(&file.contents).into_owned(),
            });
        }
    }
    match hakube_addons::check_install_order(&rendered.steps, &files)
        .into_iter()
        .next()
    {
        Some(e) => Err(broken("namespace-before-its-objects", e.to_string())),
        None => Ok(()),
    }
}

/// No secret in the GitOps tree: nothing under `cluster/` holds a secret value of the plan,
/// a Secret object, or a mode that hides it from others (a sign it holds a secret); the
/// secrets themselves are under [`SECRETS_DIR`].
pub(crate) fn no_secret_in_gitops_tree(
    tree: &PlanTree,
    secrets: &PlanSecrets,
    vault_tls: Option<&hakube_vault::certs::TlsBundle>,
) -> Result<(), Error> {
    let mut values = vec![
        secrets.kubeadm.token.expose().to_owned(),
        secrets.kubeadm.certificate_key.expose().to_owned(),
        secrets.grafana_admin_password.expose().to_owned(),
    ];
    if let Some(tls) = vault_tls {
        values.push(tls.ca_key.expose().trim().to_owned());
        values.extend(tls.nodes.values().map(|c| c.key.expose().trim().to_owned()));
    }
    for (path, file) in tree.iter().filter(|(p, _)| p.starts_with("cluster/")) {
        let text = String::from_utf8_lossy(&file.contents);
        if values
            .iter()
            .any(|v| !v.is_empty() && text.contains(v.as_str()))
        {
            return Err(broken(
                "no-secret-in-gitops-tree",
                format!("{path} holds a secret of the plan (keep it under {SECRETS_DIR}/)"),
            ));
        }
        if file.mode & 0o044 == 0 {
            return Err(broken(
                "no-secret-in-gitops-tree",
                format!(
                    "{path} has mode {:o}: secrets belong under {SECRETS_DIR}/",
                    file.mode
                ),
            ));
        }
        if (path.ends_with(".yaml") || path.ends_with(".yml"))
            && yaml_docs(&file.contents)
                .iter()
                .any(|d| d["kind"] == "Secret" && d["apiVersion"] == "v1")
        {
            return Err(broken(
                "no-secret-in-gitops-tree",
                format!("{path} holds a Secret object"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// An error with its causes, as the binaries print it.
    fn chain(e: &Error) -> String {
        let mut text = e.to_string();
        let mut src = std::error::Error::source(e);
        while let Some(s) = src {
            text.push_str(": ");
            text.push_str(&s.to_string());
            src = s.source();
        }
        text
    }

    fn seed() -> (Cluster, PlanSecrets, PlanTree) {
        let text = include_str!("../../../examples/seed-cluster.yaml");
        let cluster = hakube_topology::load(text, "seed-cluster.yaml").unwrap();
        let secrets = PlanSecrets::generate();
        let tree = crate::render(&cluster, &secrets).unwrap();
        (cluster, secrets, tree)
    }

    /// The tree with one file's contents replaced.
    fn edited(tree: &PlanTree, path: &str, f: impl Fn(&str) -> String) -> PlanTree {
        let mut out = PlanTree::default();
        for (p, file) in tree.iter() {
            let contents = if p == path {
                f(&String::from_utf8_lossy(&file.contents)).into_bytes()
            } else {
                file.contents.clone()
            };
            out.insert(p.to_owned(), contents, file.mode).unwrap();
        }
        out
    }

    #[test]
    fn a_scrape_target_nobody_binds_is_refused() {
        let (cluster, _, tree) = seed();
        let rendered = hakube_addons::render(&crate::addons::input(
            &cluster,
            &crate::PlanOptions::default(),
        ))
        .unwrap();
        assert!(scrape_targets_are_bound(&cluster, &rendered, &tree).is_ok());
        // HAProxy's exporter on 127.0.0.1, as it was: Prometheus cannot reach it.
        let local = edited(&tree, "hosts/lb-2/etc/haproxy/haproxy.cfg", |t| {
            t.replace("bind 10.20.0.12:8404", "bind 127.0.0.1:8404")
        });
        let err = scrape_targets_are_bound(&cluster, &rendered, &local)
            .map_err(|e| chain(&e))
            .unwrap_err();
        assert!(
            err.contains("10.20.0.12:8404") && err.contains("lb-2"),
            "{err}"
        );
        // etcd's metrics on localhost only (kubeadm's default).
        let etcd = edited(
            &tree,
            "hosts/master-1/etc/kubernetes/kubeadm/kubeadm-config.yaml",
            |t| t.replace("http://0.0.0.0:2381", "http://127.0.0.1:2381"),
        );
        let err = scrape_targets_are_bound(&cluster, &rendered, &etcd)
            .map_err(|e| chain(&e))
            .unwrap_err();
        assert!(err.contains(":2381"), "{err}");
    }

    #[test]
    fn a_secret_in_the_gitops_tree_is_refused() {
        let (_, secrets, tree) = seed();
        assert!(no_secret_in_gitops_tree(&tree, &secrets, None).is_ok());
        // Where kubeadm's secrets used to be.
        let mut old = tree.clone();
        old.insert(
            "cluster/kubeadm/secrets.env".into(),
            secrets.to_env(),
            0o600,
        )
        .unwrap();
        let err = no_secret_in_gitops_tree(&old, &secrets, None)
            .map_err(|e| chain(&e))
            .unwrap_err();
        assert!(err.contains("cluster/kubeadm/secrets.env"), "{err}");
        // A Secret object, whatever its values.
        let mut obj = tree.clone();
        obj.insert(
            "cluster/monitoring/grafana-admin.yaml".into(),
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: grafana-admin\nstringData:\n  admin-password: hunter2\n",
            0o644,
        )
        .unwrap();
        assert!(no_secret_in_gitops_tree(&obj, &secrets, None).is_err());
    }
}
