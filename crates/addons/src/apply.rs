//! Server-side apply of a component's plain manifests, through hakube's one applier
//! ([`hakube_kube_apply`], shared with hakube-nfs-provisioning).
//!
//! kube-rs applies one object at a time and knows nothing of ordering; the shared applier adds
//! what a tool must: every document is parsed and checked before anything is sent (bad input
//! applies nothing), CustomResourceDefinitions go first, then it waits until each is
//! `Established`, resolves kinds (discovery after the CRDs, so freshly created ones resolve),
//! applies Namespaces, then everything else in file order, all with the component's single
//! field manager. A server-side apply conflict (HTTP 409: another manager owns a field we set)
//! is reported as [`Error::ApplyConflict`] naming the object and the managers; we never
//! force.
//!
//! Every API call has a timeout. Helm releases, Kustomize folders, Secrets and Vault are not
//! handled here: the install runner ([`crate::run::Runner`]) performs every kind of step.

use std::time::Duration;

use hakube_kube_apply as ka;

use crate::{ClusterFile, Component, Error, InstallStep, Rendered, WorkloadKind};

/// Result of applying a component.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// Objects applied, in order, as `Kind namespace/name` or `Kind name`.
    pub applied: Vec<String>,
}

pub(crate) fn workload(kind: WorkloadKind) -> ka::Workload {
    match kind {
        WorkloadKind::Deployment => ka::Workload::Deployment,
        WorkloadKind::DaemonSet => ka::Workload::DaemonSet,
        WorkloadKind::StatefulSet => ka::Workload::StatefulSet,
    }
}

/// The shared applier's error as this crate's.
pub(crate) fn convert(component: Component, e: ka::Error) -> Error {
    match e {
        ka::Error::Manifest {
            origin,
            index,
            reason,
        } => Error::Manifest {
            path: origin,
            index,
            reason,
        },
        ka::Error::UnknownKind {
            api_version,
            kind,
            name,
        } => Error::UnknownKind {
            api_version,
            kind,
            name,
        },
        ka::Error::Conflict {
            object,
            field_manager,
            message,
            ..
        } => {
            let (kind, name) = object.split_once(' ').unwrap_or(("", object.as_str()));
            Error::ApplyConflict {
                component: component.dir().into(),
                kind: kind.into(),
                name: name.into(),
                field_manager,
                message,
            }
        }
        ka::Error::Kube {
            action,
            object,
            source,
        } => Error::Kube {
            action: format!("{action} {object}"),
            source,
        },
        ka::Error::CrdNotEstablished { name, waited } => Error::CrdNotEstablished {
            name,
            waited_secs: waited.as_secs(),
        },
        ka::Error::RolloutTimeout {
            kind,
            namespace,
            name,
            waited,
            state,
        } => Error::RolloutTimeout {
            kind: kind.to_string(),
            namespace,
            name,
            waited_secs: waited.as_secs(),
            state,
        },
        other => Error::Kube {
            action: other.to_string(),
            source: kube::Error::Service(other.to_string().into()),
        },
    }
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

    /// The shared applier with `component`'s field manager.
    fn shared(&self, component: Component) -> ka::Applier {
        ka::Applier::new(self.client.clone(), component.field_manager())
            .call_timeout(self.call_timeout)
            .crd_timeout(self.crd_timeout)
            .rollout_timeout(self.rollout_timeout)
            .poll_interval(self.poll_interval)
    }

    /// Apply `files` for `component` with its field manager: CRDs, wait Established, resolve
    /// kinds, Namespaces, then the rest.
    ///
    /// # Errors
    /// [`Error::Manifest`] before any call for a bad document, otherwise the API's
    /// answer naming the object ([`Error::ApplyConflict`], [`Error::UnknownKind`],
    /// [`Error::CrdNotEstablished`], [`Error::Kube`]).
    pub async fn apply(
        &self,
        component: Component,
        files: &[ClusterFile],
    ) -> Result<ApplyReport, Error> {
        let mut manifests = Vec::new();
        for f in files {
            manifests.extend(
                ka::Manifest::parse_yaml(&f.path, &f.contents)
                    .map_err(|e| convert(component, e))?,
            );
        }
        let report = self
            .shared(component)
            .apply(&manifests)
            .await
            .map_err(|e| convert(component, e))?;
        Ok(ApplyReport {
            applied: report.applied,
        })
    }

    /// Run one install step that this applier handles: [`InstallStep::Apply`] (with the files
    /// taken from `rendered`), [`InstallStep::WaitCrds`] and [`InstallStep::WaitRollout`].
    /// Other steps (Helm, Kustomize folders, Secrets, Vault) return `Ok(None)`:
    /// [`crate::run::Runner`] performs them.
    ///
    /// # Errors
    /// As [`Applier::apply`] and [`Applier::wait_rollout`].
    pub async fn run_step(
        &self,
        step: &InstallStep,
        rendered: &Rendered,
    ) -> Result<Option<ApplyReport>, Error> {
        match step {
            InstallStep::Apply { component, files } => {
                let mut chosen = Vec::new();
                for path in files {
                    let f = rendered
                        .cluster_files
                        .iter()
                        .find(|f| &f.path == path)
                        .ok_or_else(|| Error::Manifest {
                            path: path.clone(),
                            index: 0,
                            reason: "not among the rendered files".into(),
                        })?;
                    chosen.push(f.clone());
                }
                self.apply(*component, &chosen).await.map(Some)
            }
            InstallStep::WaitCrds { component, crds } => {
                let shared = self.shared(*component);
                for name in crds {
                    shared
                        .wait_established(name)
                        .await
                        .map_err(|e| convert(*component, e))?;
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

    /// Wait until a Deployment, DaemonSet or StatefulSet has rolled out: the controller saw the
    /// current generation and every replica is updated and available (for a Deployment, its
    /// `Available` condition too). A workload that does not exist yet (an operator creates it)
    /// is waited for too.
    ///
    /// # Errors
    /// [`Error::RolloutTimeout`] with the last state seen.
    pub async fn wait_rollout(
        &self,
        kind: WorkloadKind,
        namespace: &str,
        name: &str,
    ) -> Result<(), Error> {
        self.shared(Component::Apps)
            .wait_rollout(workload(kind), namespace, name)
            .await
            .map_err(|e| convert(Component::Apps, e))
    }
}
