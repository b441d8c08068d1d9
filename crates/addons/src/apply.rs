//! Server-side apply of a component's plain manifests with kube-rs.
//!
//! kube-rs applies one object at a time and knows nothing of ordering; this module adds what a
//! tool must: every document is parsed and checked before anything is sent (bad input applies
//! nothing), CustomResourceDefinitions go first, then we wait until each is `Established`,
//! refresh discovery for the kinds we are about to apply (so freshly created CRDs resolve),
//! apply Namespaces, then everything else in file order, all with the component's single field
//! manager. A server-side apply conflict (HTTP 409: another manager owns a field we set) is
//! reported as [`AddonsError::ApplyConflict`] naming the object and the managers; we never
//! force.
//!
//! Every API call has a timeout. Helm releases are not handled here: they are command steps
//! ([`crate::InstallStep::Helm`]).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::{ApiCapabilities, ApiResource, Scope};
use serde_json::Value;
use tracing::{debug, info};

use crate::{AddonsError, ClusterFile, Component, InstallStep, Rendered, WorkloadKind};

/// Result of applying a component.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// Objects applied, in order, as `Kind namespace/name` or `Kind name`.
    pub applied: Vec<String>,
}

/// One parsed manifest document.
#[derive(Debug, Clone)]
struct Doc {
    gvk: GroupVersionKind,
    name: String,
    namespace: Option<String>,
    body: Value,
}

impl Doc {
    fn label(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{} {ns}/{}", self.gvk.kind, self.name),
            None => format!("{} {}", self.gvk.kind, self.name),
        }
    }

    fn is_crd(&self) -> bool {
        self.gvk.group == "apiextensions.k8s.io" && self.gvk.kind == "CustomResourceDefinition"
    }
}

/// Parse every document of every file; fails on the first bad one, before any API call.
fn parse(files: &[ClusterFile]) -> Result<Vec<Doc>, AddonsError> {
    let mut out = Vec::new();
    for f in files {
        let docs: Vec<Value> =
            serde_saphyr::from_multiple(&f.contents).map_err(|e| AddonsError::Manifest {
                path: f.path.clone(),
                index: 0,
                reason: e.to_string(),
            })?;
        for (index, body) in docs.into_iter().enumerate() {
            if body.is_null() {
                continue;
            }
            let bad = |reason: &str| AddonsError::Manifest {
                path: f.path.clone(),
                index,
                reason: reason.into(),
            };
            let api_version = body["apiVersion"]
                .as_str()
                .ok_or_else(|| bad("missing apiVersion"))?;
            let kind = body["kind"].as_str().ok_or_else(|| bad("missing kind"))?;
            let name = body["metadata"]["name"]
                .as_str()
                .filter(|n| !n.is_empty())
                .ok_or_else(|| bad("missing metadata.name"))?;
            let (group, version) = match api_version.split_once('/') {
                Some((g, v)) => (g, v),
                None => ("", api_version),
            };
            out.push(Doc {
                gvk: GroupVersionKind::gvk(group, version, kind),
                name: name.to_owned(),
                namespace: body["metadata"]["namespace"].as_str().map(str::to_owned),
                body,
            });
        }
    }
    Ok(out)
}

/// `Ok` when rolled out, else a short description of where it stands.
fn rollout_state(kind: WorkloadKind, obj: &DynamicObject) -> Result<(), String> {
    let generation = obj.metadata.generation.unwrap_or(0);
    let status = &obj.data["status"];
    let n = |k: &str| status[k].as_i64().unwrap_or(0);
    if status["observedGeneration"].as_i64().unwrap_or(0) < generation {
        return Err("controller has not observed the latest generation".into());
    }
    let (want, updated, available) = match kind {
        WorkloadKind::Deployment | WorkloadKind::StatefulSet => (
            obj.data["spec"]["replicas"].as_i64().unwrap_or(1),
            n("updatedReplicas"),
            if kind == WorkloadKind::Deployment {
                n("availableReplicas")
            } else {
                n("readyReplicas")
            },
        ),
        WorkloadKind::DaemonSet => (
            n("desiredNumberScheduled"),
            n("updatedNumberScheduled"),
            n("numberAvailable"),
        ),
    };
    if updated >= want && available >= want {
        Ok(())
    } else {
        Err(format!(
            "{updated}/{want} updated, {available}/{want} available"
        ))
    }
}

fn established(crd: &CustomResourceDefinition) -> bool {
    crd.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
        })
}

/// Applies components' manifests through a [`kube::Client`].
#[derive(Clone)]
pub struct Applier {
    client: kube::Client,
    crd_timeout: Duration,
    poll_interval: Duration,
    call_timeout: Duration,
    rollout_timeout: Duration,
}

impl std::fmt::Debug for Applier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Applier")
            .field("crd_timeout", &self.crd_timeout)
            .field("poll_interval", &self.poll_interval)
            .field("call_timeout", &self.call_timeout)
            .field("rollout_timeout", &self.rollout_timeout)
            .finish_non_exhaustive()
    }
}

impl Applier {
    /// An applier with defaults: CRDs must be Established within 60 s and workloads rolled out
    /// within 10 min (both polled every 500 ms); each API call times out after 30 s.
    #[must_use]
    pub fn new(client: kube::Client) -> Self {
        Self {
            client,
            crd_timeout: Duration::from_secs(60),
            poll_interval: Duration::from_millis(500),
            call_timeout: Duration::from_secs(30),
            rollout_timeout: Duration::from_secs(600),
        }
    }

    /// How long to wait for a workload to roll out.
    #[must_use]
    pub fn rollout_timeout(mut self, d: Duration) -> Self {
        self.rollout_timeout = d;
        self
    }

    /// How long to wait for a CRD to become Established.
    #[must_use]
    pub fn crd_timeout(mut self, d: Duration) -> Self {
        self.crd_timeout = d;
        self
    }

    /// How often to poll a CRD's status.
    #[must_use]
    pub fn poll_interval(mut self, d: Duration) -> Self {
        self.poll_interval = d;
        self
    }

    /// Timeout of each API call.
    #[must_use]
    pub fn call_timeout(mut self, d: Duration) -> Self {
        self.call_timeout = d;
        self
    }

    async fn call<T>(
        &self,
        action: impl Fn() -> String,
        fut: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, AddonsError> {
        match tokio::time::timeout(self.call_timeout, fut).await {
            Ok(r) => r.map_err(|source| AddonsError::Kube {
                action: action(),
                source,
            }),
            Err(_) => Err(AddonsError::Kube {
                action: action(),
                source: kube::Error::Service(
                    format!("no answer within {:?}", self.call_timeout).into(),
                ),
            }),
        }
    }

    /// Apply `files` for `component` with its field manager: CRDs, wait Established, refresh
    /// discovery, Namespaces, then the rest.
    pub async fn apply(
        &self,
        component: Component,
        files: &[ClusterFile],
    ) -> Result<ApplyReport, AddonsError> {
        let manager = component.field_manager();
        let params = PatchParams::apply(&manager);
        let docs = parse(files)?;
        let (crds, rest): (Vec<Doc>, Vec<Doc>) = docs.into_iter().partition(Doc::is_crd);
        let mut report = ApplyReport::default();

        let crd_api: Api<CustomResourceDefinition> = Api::all(self.client.clone());
        for crd in &crds {
            self.patch(component, &manager, crd, &params, |name, pp, patch| {
                let api = crd_api.clone();
                async move { api.patch(&name, &pp, &patch).await.map(|_| ()) }
            })
            .await?;
            report.applied.push(crd.label());
        }
        for crd in &crds {
            self.wait_established(&crd_api, &crd.name).await?;
        }

        // Discovery, refreshed after the CRDs: one query per kind we apply.
        let mut kinds: BTreeMap<(String, String, String), (ApiResource, ApiCapabilities)> =
            BTreeMap::new();
        for d in &rest {
            let key = (
                d.gvk.group.clone(),
                d.gvk.version.clone(),
                d.gvk.kind.clone(),
            );
            if kinds.contains_key(&key) {
                continue;
            }
            let found = tokio::time::timeout(
                self.call_timeout,
                kube::discovery::pinned_kind(&self.client, &d.gvk),
            )
            .await;
            let unknown = || AddonsError::UnknownKind {
                api_version: d.gvk.api_version(),
                kind: d.gvk.kind.clone(),
                name: d.name.clone(),
            };
            match found {
                Ok(Ok(v)) => {
                    kinds.insert(key, v);
                }
                Ok(Err(kube::Error::Discovery(_))) => return Err(unknown()),
                Ok(Err(kube::Error::Api(s))) if s.code == 404 => return Err(unknown()),
                Ok(Err(source)) => {
                    return Err(AddonsError::Kube {
                        action: format!("discover {}", d.gvk.api_version()),
                        source,
                    });
                }
                Err(_) => {
                    return Err(AddonsError::Kube {
                        action: format!("discover {}", d.gvk.api_version()),
                        source: kube::Error::Service("discovery timed out".into()),
                    });
                }
            }
        }

        let (namespaces, others): (Vec<&Doc>, Vec<&Doc>) = rest
            .iter()
            .partition(|d| d.gvk.group.is_empty() && d.gvk.kind == "Namespace");
        for d in namespaces.into_iter().chain(others) {
            let key = (
                d.gvk.group.clone(),
                d.gvk.version.clone(),
                d.gvk.kind.clone(),
            );
            let (ar, caps) = &kinds[&key];
            let api: Api<DynamicObject> = match (&caps.scope, &d.namespace) {
                (Scope::Namespaced, Some(ns)) => Api::namespaced_with(self.client.clone(), ns, ar),
                (Scope::Namespaced, None) => {
                    return Err(AddonsError::Manifest {
                        path: d.label(),
                        index: 0,
                        reason: "namespaced kind without metadata.namespace".into(),
                    });
                }
                (Scope::Cluster, _) => Api::all_with(self.client.clone(), ar),
            };
            self.patch(component, &manager, d, &params, |name, pp, patch| {
                let api = api.clone();
                async move { api.patch(&name, &pp, &patch).await.map(|_| ()) }
            })
            .await?;
            report.applied.push(d.label());
        }
        info!(
            component = component.dir(),
            objects = report.applied.len(),
            "applied"
        );
        Ok(report)
    }

    /// Run one install step that this applier handles: [`InstallStep::Apply`] (with the files
    /// taken from `rendered`), [`InstallStep::WaitCrds`] and [`InstallStep::WaitRollout`].
    /// Other steps (Helm, Kustomize folders, manual steps) return `Ok(None)`: they belong to a
    /// command executor.
    pub async fn run_step(
        &self,
        step: &InstallStep,
        rendered: &Rendered,
    ) -> Result<Option<ApplyReport>, AddonsError> {
        match step {
            InstallStep::Apply { component, files } => {
                let mut chosen = Vec::new();
                for path in files {
                    let f = rendered
                        .cluster_files
                        .iter()
                        .find(|f| &f.path == path)
                        .ok_or_else(|| AddonsError::Manifest {
                            path: path.clone(),
                            index: 0,
                            reason: "not among the rendered files".into(),
                        })?;
                    chosen.push(f.clone());
                }
                self.apply(*component, &chosen).await.map(Some)
            }
            InstallStep::WaitCrds { crds, .. } => {
                let api: Api<CustomResourceDefinition> = Api::all(self.client.clone());
                for name in crds {
                    self.wait_established(&api, name).await?;
                }
                Ok(Some(ApplyReport::default()))
            }
            InstallStep::WaitRollout {
                kind,
                namespace,
                name,
                ..
            } => {
                self.wait_rollout(*kind, namespace, name).await?;
                Ok(Some(ApplyReport::default()))
            }
            _ => Ok(None),
        }
    }

    async fn patch<F, Fut>(
        &self,
        component: Component,
        manager: &str,
        d: &Doc,
        params: &PatchParams,
        send: F,
    ) -> Result<(), AddonsError>
    where
        F: Fn(String, PatchParams, Patch<Value>) -> Fut,
        Fut: Future<Output = Result<(), kube::Error>>,
    {
        debug!(component = component.dir(), object = %d.label(), "server-side apply");
        let fut = send(d.name.clone(), params.clone(), Patch::Apply(d.body.clone()));
        match self.call(|| format!("apply {}", d.label()), fut).await {
            Err(AddonsError::Kube {
                source: kube::Error::Api(status),
                ..
            }) if status.code == 409 => Err(AddonsError::ApplyConflict {
                component: component.dir().into(),
                kind: d.gvk.kind.clone(),
                name: match &d.namespace {
                    Some(ns) => format!("{ns}/{}", d.name),
                    None => d.name.clone(),
                },
                field_manager: manager.into(),
                message: status.message.clone(),
            }),
            other => other,
        }
    }

    /// Wait until a Deployment, DaemonSet or StatefulSet has rolled out: the controller saw the
    /// current generation and every replica is updated and available. A workload that does not
    /// exist yet (an operator creates it) is waited for too.
    pub async fn wait_rollout(
        &self,
        kind: WorkloadKind,
        namespace: &str,
        name: &str,
    ) -> Result<(), AddonsError> {
        let start = Instant::now();
        let ar = match kind {
            WorkloadKind::Deployment => ApiResource::erase::<Deployment>(&()),
            WorkloadKind::DaemonSet => ApiResource::erase::<DaemonSet>(&()),
            WorkloadKind::StatefulSet => ApiResource::erase::<StatefulSet>(&()),
        };
        let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), namespace, &ar);
        loop {
            let found = self
                .call(
                    || format!("get {} {namespace}/{name}", ar.kind),
                    api.get_opt(name),
                )
                .await?;
            let state = match &found {
                None => "not found".to_owned(),
                Some(obj) => match rollout_state(kind, obj) {
                    Ok(()) => {
                        debug!(kind = %ar.kind, namespace, name, "rolled out");
                        return Ok(());
                    }
                    Err(state) => state,
                },
            };
            if start.elapsed() >= self.rollout_timeout {
                return Err(AddonsError::RolloutTimeout {
                    kind: ar.kind.clone(),
                    namespace: namespace.into(),
                    name: name.into(),
                    waited_secs: start.elapsed().as_secs(),
                    state,
                });
            }
            tokio::time::sleep(self.poll_interval).await;
        }
    }

    async fn wait_established(
        &self,
        api: &Api<CustomResourceDefinition>,
        name: &str,
    ) -> Result<(), AddonsError> {
        let start = Instant::now();
        loop {
            let crd = self
                .call(
                    || format!("get CustomResourceDefinition {name}"),
                    api.get(name),
                )
                .await?;
            if established(&crd) {
                debug!(crd = name, "established");
                return Ok(());
            }
            if start.elapsed() >= self.crd_timeout {
                return Err(AddonsError::CrdNotEstablished {
                    name: name.into(),
                    waited_secs: start.elapsed().as_secs(),
                });
            }
            tokio::time::sleep(self.poll_interval).await;
        }
    }
}
