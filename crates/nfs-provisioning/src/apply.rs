//! Applying the cluster objects with kube-rs server-side apply (the effectful edge of the
//! crate, behind the `apply` feature), through hakube's one applier ([`hakube_kube_apply`],
//! shared with hakube-addons).
//!
//! [`apply`] sends every object of [`NfsSetup::cluster_objects`] in order (Namespace and RBAC
//! first, then Deployments, then StorageClasses) as a server-side apply patch with one field
//! manager, [`FIELD_MANAGER`]. To avoid half-applied state it first sends the whole set with
//! `dryRun=All`: a conflict with another field manager, a rejected field or a missing
//! permission stops the run before anything changed. It then applies for real and waits,
//! bounded, until each provisioner Deployment is available.
//!
//! A conflict (HTTP 409) becomes [`Error::FieldManagerConflict`] naming the object and the other
//! managers. hakube never takes fields over silently; [`ApplyOptions::force`] does so explicitly.

use core::time::Duration;

use hakube_kube_apply as ka;
use kube::Client;
use tracing::{Instrument, info_span};

use crate::cluster::ClusterObject;
use crate::error::{Error, Result};
use crate::model::NfsSetup;

/// The one field manager hakube-nfs applies with.
pub const FIELD_MANAGER: &str = "hakube-nfs";

/// How to apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyOptions {
    /// Only validate on the server (`dryRun=All`); change nothing and do not wait.
    pub dry_run: bool,
    /// Take over fields owned by other managers (`force=true`). Off by default.
    pub force: bool,
    /// Timeout of each API request.
    pub request_timeout: Duration,
    /// How long to wait for each Deployment to become available.
    pub wait_timeout: Duration,
    /// Pause between availability polls.
    pub poll_interval: Duration,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        Self {
            dry_run: false,
            force: false,
            request_timeout: Duration::from_secs(30),
            wait_timeout: Duration::from_secs(180),
            poll_interval: Duration::from_secs(2),
        }
    }
}

/// What [`apply`] did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ApplyReport {
    /// `Kind name` of every object validated by the server-side dry run, in order.
    pub validated: Vec<String>,
    /// `Kind name` of every object applied for real, in order (empty for a dry run).
    pub applied: Vec<String>,
    /// `namespace/name` of every Deployment seen available.
    pub available: Vec<String>,
}

fn label(o: &ClusterObject) -> String {
    format!("{} {}", o.kind(), o.qualified_name())
}

/// The object named by the shared applier's `Kind namespace/name` label: its static kind and
/// qualified name.
fn named(objects: &[ClusterObject], object: &str) -> (&'static str, String) {
    match objects.iter().find(|o| label(o) == object) {
        Some(o) => (o.kind(), o.qualified_name()),
        None => (
            "object",
            object.split_once(' ').map_or(object, |(_, n)| n).to_owned(),
        ),
    }
}

/// The shared applier's error as this crate's.
fn convert(objects: &[ClusterObject], e: ka::Error) -> Error {
    match e {
        ka::Error::Conflict {
            object,
            managers,
            fields,
            ..
        } => {
            let (kind, name) = named(objects, &object);
            Error::FieldManagerConflict {
                kind,
                name,
                managers,
                fields,
            }
        }
        ka::Error::Kube {
            action,
            object,
            source,
        } => {
            let (kind, name) = named(objects, &object);
            Error::Kube {
                action: action.as_str(),
                kind,
                name,
                source,
            }
        }
        ka::Error::Timeout {
            action,
            object,
            after,
        } => {
            let (kind, name) = named(objects, &object);
            Error::Timeout {
                action: action.as_str(),
                kind,
                name,
                after,
            }
        }
        ka::Error::RolloutTimeout {
            namespace,
            name,
            waited,
            state,
            ..
        } => Error::DeploymentNotAvailable {
            namespace,
            name,
            waited,
            last_state: state,
        },
        // Rendered objects are well-formed and of built-in kinds: a bug if reached.
        other => Error::Kube {
            action: "apply",
            kind: "object",
            name: String::new(),
            source: kube::Error::Service(other.to_string().into()),
        },
    }
}

fn manifest(index: usize, o: &ClusterObject) -> Result<ka::Manifest> {
    let body = match o {
        ClusterObject::Namespace(x) => serde_json::to_value(x),
        ClusterObject::ServiceAccount(x) => serde_json::to_value(x),
        ClusterObject::ClusterRole(x) => serde_json::to_value(x),
        ClusterObject::ClusterRoleBinding(x) => serde_json::to_value(x),
        ClusterObject::Deployment(x) => serde_json::to_value(x.as_ref()),
        ClusterObject::StorageClass(x) => serde_json::to_value(x),
    };
    body.map(|b| ka::Manifest::new(o.file_name(), index, b))
        .map_err(|e| Error::Kube {
            action: "serialise",
            kind: o.kind(),
            name: o.qualified_name(),
            source: kube::Error::SerdeError(e),
        })
}

/// Applies the cluster objects of `setup`; see the module docs for the sequence.
///
/// # Errors
/// [`Error::FieldManagerConflict`] on a 409 from another manager, [`Error::Kube`] for any other
/// API error, [`Error::DeploymentNotAvailable`] when the wait runs out. Nothing is applied for
/// real when the dry-run pass fails.
pub async fn apply(
    client: &Client,
    setup: &NfsSetup,
    options: &ApplyOptions,
) -> Result<ApplyReport> {
    let objects = setup.cluster_objects();
    let manifests = objects
        .iter()
        .enumerate()
        .map(|(i, o)| manifest(i, o))
        .collect::<Result<Vec<_>>>()?;
    let applier = ka::Applier::new(client.clone(), FIELD_MANAGER)
        .force(options.force)
        .call_timeout(options.request_timeout)
        .rollout_timeout(options.wait_timeout)
        .poll_interval(options.poll_interval);
    let mut report = ApplyReport::default();

    let dry = applier
        .clone()
        .dry_run(true)
        .apply(&manifests)
        .instrument(info_span!("dry-run", field_manager = FIELD_MANAGER))
        .await
        .map_err(|e| convert(&objects, e))?;
    report.validated = dry.applied;
    if options.dry_run {
        return Ok(report);
    }

    let done = applier
        .apply(&manifests)
        .instrument(info_span!("apply", field_manager = FIELD_MANAGER))
        .await
        .map_err(|e| convert(&objects, e))?;
    report.applied = done.applied;

    for obj in &objects {
        if let ClusterObject::Deployment(d) = obj {
            let ns = d.metadata.namespace.clone().unwrap_or_default();
            let name = d.metadata.name.clone().unwrap_or_default();
            applier
                .wait_rollout(ka::Workload::Deployment, &ns, &name)
                .instrument(info_span!("wait", deployment = %format!("{ns}/{name}")))
                .await
                .map_err(|e| convert(&objects, e))?;
            report.available.push(format!("{ns}/{name}"));
        }
    }
    Ok(report)
}
