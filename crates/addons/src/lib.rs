//! Cluster add-ons for a kubeadm cluster behind HAProxy on one L2 Proxmox network: Calico,
//! Traefik, observability (Prometheus, Grafana, Loki with Grafana Alloy), cert-manager with
//! Vault, an etcd backup CronJob, and the GitOps repository layout that holds them.
//!
//! The core is pure: [`render`] turns an [`AddonsInput`] into a [`Rendered`] set of files
//! (relative paths under `cluster/`) and an ordered list of [`InstallStep`]s; the Vault VMs'
//! host plans come from `hakube_vault::host`, composed by `hakube-plan`. [`validate`] and [`cross_check`] catch settings that would cause outages
//! (a Calico pool outside kubeadm's pod subnet, Traefik NodePorts HAProxy does not target,
//! PROXY protocol trusted from the wrong addresses, Prometheus on NFS). The effectful part
//! (feature `apply`) is the install runner, [`run::Runner`]: it performs every step of a
//! plan in order (server-side apply with one field manager per component, Kustomize builds,
//! `helm upgrade --install --atomic --wait` at the pinned versions, CRD and rollout waits,
//! Secrets whose values stay under the plan's `secrets/`, Vault's Kubernetes auth), reports
//! per step what changed (a re-run: nothing), and stops at the first failing step, named with
//! the object and the API's answer.
//!
//! Entry points:
//! - [`render`]`(&AddonsInput) -> Result<Rendered>`: the GitOps tree ([`Rendered::cluster_files`],
//!   relative to `cluster/`) and the ordered [`Rendered::steps`] (serializable).
//! - [`validate`] (input) and [`cross_check`] (rendered or hand-edited files): every problem found,
//!   including every Helm values file against its chart's rules at the pinned version
//!   ([`chart_schema`]), every-node DaemonSets tolerating every taint, and Traefik running on
//!   exactly the nodes HAProxy sends ingress to ([`AddonsInput::ingress_nodes`]).
//! - [`check_install_order`]: every namespaced object comes after its namespace.
//! - [`run::Runner`]`::run(&`[`run::Plan`]`)`: every step of a written plan
//!   (`cluster/install-steps.json`), with progress per step ([`run::Progress`]) and a dry run;
//!   [`apply::Applier`] applies one component's manifests.
//! - Per component, the pure builders: [`calico`], [`traefik`], [`observability`], [`vault`],
//!   [`certmanager`], [`etcd_backup`], [`gitops`], [`storage`] (the NFS provisioner's place in
//!   the order, node-local volumes); pinned charts in [`versions`].
//!
//! Secrets never enter the GitOps tree: a [`InstallStep::Secret`] names the keys whose values
//! the runner generates and keeps under the plan's [`SECRETS_DIR`] (or reads from files an
//! earlier stage keeps there, such as Vault's CA). No step is left to a human: kubelet serving
//! certificates are approved by kubelet-csr-approver ([`KubeletCsrApproval`]'s default) and
//! Vault's Kubernetes auth is an [`InstallStep::VaultKubernetesAuth`] step; with Vault in the
//! cluster, its init, unseal and PKI are an [`InstallStep::VaultBootstrap`] step, run through
//! port-forwards to the pods ([`tunnel`]; kube-rs's `ws` feature).
//!
//! Features: `apply` (default) enables [`apply`] and [`run`] and pulls in kube-rs (and
//! hakube-vault's client for the Kubernetes auth step); like every library using
//! k8s-openapi it then needs the final binary to pick a Kubernetes version feature
//! (`k8s-openapi = { features = ["latest"] }`). With `default-features = false` the crate is
//! the pure renderer only.
//!
//! ```
//! # fn demo(input: &hakube_addons::AddonsInput) {
//! use hakube_addons::{render, Component};
//!
//! let out = render(input).expect("a valid input");
//! assert!(out.cluster_files.iter().any(|f| f.path == "traefik/values.yaml"));
//! assert_eq!(out.steps[0].component(), Component::Calico);
//! # }
//! ```

#[cfg(feature = "apply")]
pub mod apply;
pub mod calico;
pub mod certmanager;
pub mod chart_schema;
mod error;
pub mod etcd_backup;
pub mod gitops;
pub mod model;
pub mod observability;
#[cfg(feature = "apply")]
pub mod run;
pub mod steps;
pub mod storage;
pub mod traefik;
#[cfg(feature = "apply")]
pub mod tunnel;
mod validate;
pub mod vault;
pub mod versions;
mod yaml;

pub use error::Error;
pub use model::{
    AddonsInput, CalicoInput, Encapsulation, EnvironmentInput, EtcdBackupInput, HaproxyInput, Host,
    KubeletCsrApproval, LogAgent, LoggingInput, MonitoringInput, NetworkInput, ProvisionerInput,
    StorageInput, Taint, TaintEffect, TraefikInput, TraefikWorkload, VaultInput, VaultPlacement,
    VolumeChoice, WorkerGroup,
};
pub use steps::{
    Component, HelmRelease, InstallStep, SECRETS_DIR, VaultBootstrap, VaultKubernetesAuth,
    VaultPods, WorkloadKind, secret_value_path, vault_secrets,
};
pub use validate::{check_install_order, cross_check, validate};
pub use yaml::HEADER;

/// A file of the GitOps tree, relative to `cluster/` (the one type every renderer of cluster
/// objects emits).
pub use hakube_host_state::ClusterFile;

/// Everything [`render`] produces. Deterministic: rendering the same input twice gives
/// byte-identical files in the same (sorted) order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The GitOps tree, sorted by path; the plan writes it under `cluster/`.
    pub cluster_files: Vec<ClusterFile>,
    /// Install steps in bootstrap order.
    pub steps: Vec<InstallStep>,
}

/// What one component module renders.
#[derive(Debug, Clone)]
pub(crate) struct ComponentOutput {
    pub(crate) component: Component,
    /// Files of the component's folder (without `kustomization.yaml`).
    pub(crate) files: Vec<ClusterFile>,
    /// Charts (become `helmCharts:` in the kustomization).
    pub(crate) helm: Vec<HelmRelease>,
    /// Plain manifests (become `resources:` in the kustomization).
    pub(crate) resources: Vec<String>,
    /// Install steps.
    pub(crate) steps: Vec<InstallStep>,
}

/// Render every enabled add-on. Fails on the first problem [`validate`] finds, or when the
/// rendered output fails [`cross_check`].
pub fn render(input: &AddonsInput) -> Result<Rendered, Error> {
    if let Some(first) = validate(input).into_iter().next() {
        return Err(first);
    }
    let mut outputs = vec![calico::render(input)?];
    outputs.extend(storage::render_provisioner(input));
    outputs.push(traefik::render(input)?);
    if let Some(m) = &input.monitoring {
        outputs.push(observability::render_monitoring(input, m)?);
    }
    outputs.extend(observability::render_csr_approver_alone(input)?);
    if let Some(l) = &input.logging {
        outputs.push(observability::render_logging(input, l)?);
    }
    if let Some(v) = &input.vault {
        if let Some(out) = vault::render(input, v, &certmanager::vault_login())? {
            outputs.push(out);
        }
        outputs.push(certmanager::render(input, v)?);
    }
    if let Some(b) = &input.etcd_backup {
        outputs.push(etcd_backup::render(b)?);
    }
    outputs.push(gitops::render_apps(input)?);

    let steps = outputs.iter().flat_map(|o| o.steps.clone()).collect();
    let cluster_files = gitops::assemble(input, &outputs)?;
    let rendered = Rendered {
        cluster_files,
        steps,
    };
    if let Some(first) = cross_check(input, &rendered.cluster_files)
        .into_iter()
        .next()
    {
        return Err(first);
    }
    // The provisioner's files come from another crate: the composing layer checks the whole
    // order (with them) again.
    let own: Vec<InstallStep> = rendered
        .steps
        .iter()
        .filter(|s| s.component() != Component::Nfs)
        .cloned()
        .collect();
    if let Some(first) = check_install_order(&own, &rendered.cluster_files)
        .into_iter()
        .next()
    {
        return Err(first);
    }
    Ok(rendered)
}
