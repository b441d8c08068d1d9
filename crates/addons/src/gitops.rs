//! The GitOps repository layout: one folder per component with its Helm values and a
//! `kustomization.yaml` (Kustomize `helmCharts` with pinned versions, plus plain manifests),
//! an example application with one overlay per environment, and a README.
//!
//! Everything is sorted and stable, so re-rendering an unchanged input is byte-identical and
//! Git history only shows real changes.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::model::AddonsInput;
use crate::steps::{Component, InstallStep};
use crate::versions::WHOAMI_IMAGE;
use crate::{ClusterFile, ComponentOutput, Error, calico, traefik, yaml};

/// The README at the root of `cluster/`.
pub const README: &str = "README.md";

fn kustomization(out: &ComponentOutput) -> Value {
    let dir = format!("{}/", out.component.dir());
    let strip = |p: &str| p.strip_prefix(&dir).unwrap_or(p).to_owned();
    let mut k = json!({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
    });
    if !out.helm.is_empty() {
        let charts: Vec<Value> = out
            .helm
            .iter()
            .map(|h| {
                json!({
                    "name": h.chart.name,
                    "repo": h.chart.repo,
                    "version": h.chart.version,
                    "releaseName": h.release,
                    "namespace": h.namespace,
                    "valuesFile": strip(&h.values_file),
                    "includeCRDs": true,
                })
            })
            .collect();
        k["helmCharts"] = Value::Array(charts);
    }
    if !out.resources.is_empty() {
        k["resources"] = out.resources.iter().map(|r| strip(r)).collect();
    }
    k
}

fn whoami_base(input: &AddonsInput) -> Vec<(String, Vec<Value>)> {
    let labels = json!({ "app.kubernetes.io/name": "whoami" });
    let deployment = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": "whoami", "labels": labels },
        "spec": {
            "replicas": 2,
            "selector": { "matchLabels": labels },
            "template": {
                "metadata": { "labels": labels },
                "spec": {
                    "securityContext": { "runAsNonRoot": true, "runAsUser": 65534 },
                    "containers": [{
                        "name": "whoami",
                        "image": WHOAMI_IMAGE,
                        "args": ["--port", "8080"],
                        "ports": [{ "name": "http", "containerPort": 8080 }],
                        "resources": {
                            "requests": { "cpu": "10m", "memory": "16Mi" },
                            "limits": { "memory": "64Mi" },
                        },
                        "securityContext": {
                            "allowPrivilegeEscalation": false,
                            "readOnlyRootFilesystem": true,
                            "capabilities": { "drop": ["ALL"] },
                        },
                    }],
                },
            },
        },
    });
    let service = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": { "name": "whoami", "labels": labels },
        "spec": {
            "selector": labels,
            "ports": [{ "name": "http", "port": 80, "targetPort": "http" }],
        },
    });
    let host = format!("whoami.{}", input.traefik.apps_domain);
    vec![
        ("apps/base/deployment.yaml".into(), vec![deployment]),
        ("apps/base/service.yaml".into(), vec![service]),
        (
            "apps/base/ingressroute.yaml".into(),
            vec![traefik::example_ingress_route(
                "whoami", &host, "whoami", 80,
            )],
        ),
        (
            "apps/base/kustomization.yaml".into(),
            vec![json!({
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": ["deployment.yaml", "ingressroute.yaml", "service.yaml"],
            })],
        ),
    ]
}

/// The example application (`apps/base`) and one overlay per environment
/// (`apps/overlays/<env>`: namespace, optional default-deny policies, per-environment host).
pub(crate) fn render_apps(input: &AddonsInput) -> Result<ComponentOutput, Error> {
    let mut docs = whoami_base(input);
    let mut steps = Vec::new();
    for env in &input.environments {
        let dir = format!("apps/overlays/{}", env.name);
        let mut resources = vec![json!("../../base"), json!("namespace.yaml")];
        docs.push((
            format!("{dir}/namespace.yaml"),
            vec![json!({
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {
                    "name": env.namespace,
                    "labels": { "hakube.io/environment": env.name },
                },
            })],
        ));
        if env.default_deny {
            docs.push((
                format!("{dir}/network-policies.yaml"),
                calico::default_deny_policies(&env.namespace),
            ));
            resources.push(json!("network-policies.yaml"));
        }
        let host = format!("whoami-{}.{}", env.name, input.traefik.apps_domain);
        let mut patches = vec![json!({
            "target": { "group": "traefik.io", "version": "v1alpha1", "kind": "IngressRoute", "name": "whoami" },
            "patch": yaml::to_yaml(&dir, &json!([{
                "op": "replace",
                "path": "/spec/routes/0/match",
                "value": format!("Host(`{host}`)"),
            }]))?,
        })];
        if let Some(group) = &env.worker_group {
            // The environment's pods run on its own workers: selected by the group label and
            // tolerating the group's taints (a prod taint keeps everything else off prod).
            let taints = input
                .worker_groups
                .iter()
                .find(|g| &g.name == group)
                .map(|g| g.taints.clone())
                .unwrap_or_default();
            let tolerations: Vec<Value> =
                taints.iter().map(crate::model::Taint::toleration).collect();
            patches.push(json!({
                "target": { "group": "apps", "version": "v1", "kind": "Deployment", "name": "whoami" },
                "patch": yaml::to_yaml(&dir, &json!([
                    {
                        "op": "add",
                        "path": "/spec/template/spec/nodeSelector",
                        "value": { traefik::WORKER_GROUP_LABEL: group },
                    },
                    {
                        "op": "add",
                        "path": "/spec/template/spec/tolerations",
                        "value": tolerations,
                    },
                ]))?,
            }));
        }
        docs.push((
            format!("{dir}/kustomization.yaml"),
            vec![json!({
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "namespace": env.namespace,
                "labels": [{ "pairs": { "hakube.io/environment": env.name } }],
                "resources": resources,
                "patches": patches,
            })],
        ));
        steps.push(InstallStep::ApplyKustomize {
            component: Component::Apps,
            dir,
        });
    }
    let files = docs
        .iter()
        .map(|(p, d)| Ok(ClusterFile::new(p.clone(), yaml::file(p, d)?)))
        .collect::<Result<Vec<_>, Error>>()?;
    Ok(ComponentOutput {
        component: Component::Apps,
        files,
        helm: vec![],
        resources: vec![],
        steps,
    })
}

fn readme(input: &AddonsInput, outputs: &[ComponentOutput]) -> String {
    let mut s = format!(
        "# {} cluster add-ons\n\n\
         Rendered by hakube-addons from the topology: change the topology and re-render rather \
         than editing these files (rendering is deterministic, so `git diff` shows only real \
         changes).\n\n\
         One folder per component. Each has a `kustomization.yaml` that pins its Helm charts \
         (`helmCharts`, chart versions fixed) and lists its plain manifests, so any folder can \
         be rendered with `kubectl kustomize --enable-helm <folder>` (or \
         `kustomize build --enable-helm`). Custom resources need their CRDs Established \
         first: install in the order below, not in one `kubectl apply`.\n\n\
         ## Install order\n\n\
         The NFS provisioner (its own folder, rendered by hakube-nfs-provisioning) goes \
         after Calico and before Traefik. Commands are run from the folder containing \
         `cluster/`; `hakube` runs the same steps (server-side apply with one field manager \
         per component, waits for CRDs and rollouts).\n\n",
        input.cluster_name
    );
    let mut n = 0;
    for out in outputs {
        s.push_str(&format!("### {}\n\n", out.component.dir()));
        for step in &out.steps {
            n += 1;
            let what = match step {
                InstallStep::Helm(h) => format!(
                    "Helm release `{}` ({} {}) in `{}`",
                    h.release, h.chart.name, h.chart.version, h.namespace
                ),
                InstallStep::WaitCrds { crds, .. } => format!("Wait for CRDs {}", crds.join(", ")),
                InstallStep::Apply { files, .. } => {
                    format!("Server-side apply {}", files.join(", "))
                }
                InstallStep::ApplyKustomize { dir, .. } => {
                    format!("Server-side apply the Kustomize folder {dir}")
                }
                InstallStep::WaitRollout {
                    kind,
                    namespace,
                    name,
                    ..
                } => {
                    format!("Wait for {} {namespace}/{name}", kind.kubectl_name())
                }
                InstallStep::Secret {
                    namespace,
                    name,
                    generated,
                    from_files,
                    ..
                } => {
                    let kept: Vec<&str> = generated
                        .iter()
                        .chain(from_files.keys())
                        .map(String::as_str)
                        .collect();
                    format!(
                        "Create the Secret `{namespace}/{name}`; its secret keys ({}) are kept \
                         under `secrets/`, outside this tree",
                        kept.join(", ")
                    )
                }
                InstallStep::VaultBootstrap(v) => format!(
                    "Initialise Vault on `{}/{}` (keep the unseal keys and root token under \
                     `secrets/`, outside this tree), unseal every pod, then the PKI of \
                     `vault/PKI-BOOTSTRAP.md`",
                    v.pods.namespace,
                    v.pods.pods.first().map_or("", String::as_str)
                ),
                InstallStep::VaultKubernetesAuth(v) => format!(
                    "Configure Vault's Kubernetes auth (mount `{}`, role `{}`): the API server \
                     {} with its CA and a token of `{}/{}` as the reviewer JWT",
                    v.mount,
                    v.role,
                    v.kubernetes_host,
                    v.reviewer_namespace,
                    v.reviewer_service_account
                ),
            };
            s.push_str(&format!("{n}. {what}\n\n"));
            for argv in step.commands("cluster") {
                let line = hakube_host_state::shell_join(&argv);
                s.push_str(&format!("   ```sh\n   {line}\n   ```\n\n"));
            }
        }
    }
    s.push_str("## Environments\n\n| environment | namespace | StorageClass | default-deny |\n|---|---|---|---|\n");
    for env in &input.environments {
        s.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            env.name, env.namespace, env.storage_class, env.default_deny
        ));
    }
    s.push_str(
        "\nApply an environment with `kubectl apply --server-side -k cluster/apps/overlays/<env>`, \
         or point a GitOps controller (Argo CD, Flux) at that folder.\n\n\
         Secrets (Grafana admin, Vault TLS and CA, unseal keys) are never stored here.\n",
    );
    s
}

/// Add a `kustomization.yaml` to every component folder, the README, and sort everything.
pub(crate) fn assemble(
    input: &AddonsInput,
    outputs: &[ComponentOutput],
) -> Result<Vec<ClusterFile>, Error> {
    let mut files: BTreeMap<String, String> = BTreeMap::new();
    for out in outputs {
        for f in &out.files {
            files.insert(f.path.clone(), f.contents.clone());
        }
        if !out.helm.is_empty() || !out.resources.is_empty() {
            let path = format!("{}/kustomization.yaml", out.component.dir());
            files.insert(path.clone(), yaml::file(&path, &[kustomization(out)])?);
        }
    }
    files.insert(README.into(), readme(input, outputs));
    Ok(files
        .into_iter()
        .map(|(path, contents)| ClusterFile { path, contents })
        .collect())
}
