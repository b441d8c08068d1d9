//! The local twin of a topology for `up --lab`: fakepve with the topology's Proxmox nodes and
//! templates whose VM starts power lab hosts at the planned addresses ([`hakube_lab::twin`]),
//! and a `helm` stand-in that creates what the charts would (needs root).

use std::path::{Path, PathBuf};

use hakube_lab::twin::{Twin, TwinSpec, TwinTemplate, TwinVm};
use hakube_topology::Cluster;

// The objects the charts would create, derived from the plan the same way the runner's tests
// derive them (the helm stand-in cannot render charts).
#[path = "../crates/addons/tests/support/mod.rs"]
mod chart_support;

/// What the twin is built from: the topology's Proxmox nodes, storage, templates and VMs.
///
/// # Errors
/// A message when the topology's network is not a /24 whose `.1` is the gateway (the twin's
/// machine takes `.1`).
pub fn spec(cluster: &Cluster) -> Result<TwinSpec, String> {
    let t = &cluster.topology;
    let net = t.network.cidr;
    let first = u32::from(net.network()) + 1;
    if net.prefix_len() != 24 || u32::from(t.network.gateway) != first {
        return Err(format!(
            "network: the local twin needs a /24 whose .1 is the gateway (this machine), not {net} via {}",
            t.network.gateway
        ));
    }
    let mut templates: Vec<TwinTemplate> = t
        .proxmox
        .nodes
        .iter()
        .filter_map(|n| {
            n.template.map(|vmid| TwinTemplate {
                vmid,
                node: n.name.clone(),
                name: format!("template-{vmid}"),
            })
        })
        .collect();
    if let Some(s) = &t.proxmox.template {
        templates.push(TwinTemplate {
            vmid: s.vmid,
            node: s.node.clone(),
            name: format!("template-{}", s.vmid),
        });
    }
    Ok(TwinSpec {
        tag: "twin".into(),
        subnet: net,
        nodes: t.proxmox.nodes.iter().map(|n| n.name.clone()).collect(),
        storage: t.proxmox.storage.clone(),
        bridge: t.proxmox.bridge.clone(),
        templates,
        vms: cluster
            .vms
            .iter()
            .map(|v| TwinVm {
                name: v.name.clone(),
                addr: v.address,
            })
            .collect(),
    })
}

/// Builds the twin of `cluster`.
///
/// # Errors
/// A message naming what is wrong (the network, root, fakepve).
pub fn start(cluster: &Cluster) -> Result<Twin, String> {
    let spec = spec(cluster)?;
    Twin::start(&spec).map_err(|e| format!("local twin: {}", crate::error_chain(&e)))
}

/// A `helm` stand-in for the plan in `plan_dir` (its log and the chart objects under `dir`).
///
/// # Errors
/// A message when the plan's steps cannot be read.
pub fn helm(plan_dir: &Path, dir: &Path) -> Result<PathBuf, String> {
    let plan = hakube_addons::run::Plan::read(plan_dir)
        .map_err(|e| format!("{}: {}", plan_dir.display(), crate::error_chain(&e)))?;
    let objects = chart_support::chart_objects(&plan, dir);
    Ok(chart_support::helm_wrapper(dir, &objects).0)
}

/// Runs the etcd backup CronJob's Job once on the master `node`, as the kubelet would run the
/// Pod the CronJob's schedule creates ([`Twin::run_pod`]): the CronJob is read from the
/// cluster's API (what `addons` applied), its Pod's init containers (`etcdctl snapshot save`,
/// the trial `etcdutl snapshot restore`) and container (the PKI archive, final names,
/// retention) run on the master with the `nfs` volume being the NFS VM's export. Nothing
/// here writes a snapshot itself: what lands on the export is what the CronJob's commands wrote.
///
/// # Errors
/// A message when the CronJob cannot be read or a container fails (naming it, with its output).
pub async fn run_etcd_backup(
    twin: &Twin,
    kubeconfig: &Path,
    node: &str,
) -> Result<hakube_lab::twin::PodRun, String> {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig)
        .map_err(|e| format!("{}: {e}", kubeconfig.display()))?;
    let config =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .map_err(|e| format!("{}: {e}", kubeconfig.display()))?;
    let client =
        kube::Client::try_from(config).map_err(|e| format!("{}: {e}", kubeconfig.display()))?;
    let api: kube::Api<k8s_openapi::api::batch::v1::CronJob> =
        kube::Api::namespaced(client, hakube_addons::etcd_backup::NAMESPACE);
    let cronjob = api
        .get("etcd-backup")
        .await
        .map_err(|e| format!("reading CronJob kube-system/etcd-backup: {e}"))?;
    let cronjob = serde_json::to_value(&cronjob).map_err(|e| e.to_string())?;
    let job = &cronjob["spec"]["jobTemplate"]["spec"];
    let mut pod = job["template"]["spec"].clone();
    if let Some(d) = job.get("activeDeadlineSeconds") {
        pod["activeDeadlineSeconds"] = d.clone();
    }
    let run = twin
        .run_pod(node, &pod)
        .map_err(|e| format!("etcd-backup job on {node}: {}", crate::error_chain(&e)))?;
    if !run.succeeded() {
        let last = run.containers.last();
        return Err(format!(
            "etcd-backup job on {node}: container {} exited {}: {}",
            last.map_or("?", |c| c.name.as_str()),
            last.map_or(-1, |c| c.status),
            last.map_or("", |c| c.output.trim())
        ));
    }
    Ok(run)
}
