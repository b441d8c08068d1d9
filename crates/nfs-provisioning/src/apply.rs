//! Applying the cluster objects with kube-rs server-side apply (the effectful edge of the crate).
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

use core::fmt::Debug;
use core::time::Duration;
use std::future::Future;

use k8s_openapi::NamespaceResourceScope;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::{Instrument, info, info_span};

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
    /// How long to wait for all Deployments to become available.
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
    let mut report = ApplyReport::default();

    let mut dry = PatchParams::apply(FIELD_MANAGER).dry_run();
    dry.force = options.force;
    for obj in &objects {
        apply_object(client, obj, &dry, options.request_timeout)
            .instrument(info_span!("dry-run", kind = obj.kind(), name = %obj.qualified_name()))
            .await?;
        report
            .validated
            .push(format!("{} {}", obj.kind(), obj.qualified_name()));
    }
    if options.dry_run {
        return Ok(report);
    }

    let mut params = PatchParams::apply(FIELD_MANAGER);
    params.force = options.force;
    for obj in &objects {
        apply_object(client, obj, &params, options.request_timeout)
            .instrument(info_span!("apply", kind = obj.kind(), name = %obj.qualified_name()))
            .await?;
        info!(kind = obj.kind(), name = %obj.qualified_name(), "applied");
        report
            .applied
            .push(format!("{} {}", obj.kind(), obj.qualified_name()));
    }

    let deadline = tokio::time::Instant::now() + options.wait_timeout;
    for obj in &objects {
        if let ClusterObject::Deployment(d) = obj {
            let ns = d.metadata.namespace.clone().unwrap_or_default();
            let name = d.metadata.name.clone().unwrap_or_default();
            wait_available(client, &ns, &name, deadline, options)
                .instrument(info_span!("wait", deployment = %format!("{ns}/{name}")))
                .await?;
            report.available.push(format!("{ns}/{name}"));
        }
    }
    Ok(report)
}

async fn apply_object(
    client: &Client,
    obj: &ClusterObject,
    params: &PatchParams,
    timeout: Duration,
) -> Result<()> {
    let c = client.clone();
    match obj {
        ClusterObject::Namespace(o) => patch(obj, Api::all(c), o, params, timeout).await,
        ClusterObject::ServiceAccount(o) => {
            patch(obj, namespaced(c, obj), o, params, timeout).await
        }
        ClusterObject::ClusterRole(o) => patch(obj, Api::all(c), o, params, timeout).await,
        ClusterObject::ClusterRoleBinding(o) => patch(obj, Api::all(c), o, params, timeout).await,
        ClusterObject::Deployment(o) => {
            patch(obj, namespaced(c, obj), o.as_ref(), params, timeout).await
        }
        ClusterObject::StorageClass(o) => patch(obj, Api::all(c), o, params, timeout).await,
    }
}

fn namespaced<K>(client: Client, obj: &ClusterObject) -> Api<K>
where
    K: Resource<Scope = NamespaceResourceScope>,
    K::DynamicType: Default,
{
    Api::namespaced(
        client,
        obj.metadata().namespace.as_deref().unwrap_or("default"),
    )
}

async fn patch<K>(
    obj: &ClusterObject,
    api: Api<K>,
    value: &K,
    params: &PatchParams,
    timeout: Duration,
) -> Result<()>
where
    K: Resource + Clone + DeserializeOwned + Serialize + Debug,
{
    let action = if params.dry_run {
        "dry-run apply"
    } else {
        "apply"
    };
    let res = with_timeout(
        obj.kind(),
        obj.qualified_name(),
        action,
        timeout,
        api.patch(obj.name(), params, &Patch::Apply(value)),
    )
    .await?;
    res.map(drop)
        .map_err(|e| kube_error(action, obj.kind(), obj.qualified_name(), e))
}

async fn with_timeout<T>(
    kind: &'static str,
    name: String,
    action: &'static str,
    timeout: Duration,
    fut: impl Future<Output = T>,
) -> Result<T> {
    tokio::time::timeout(timeout, fut)
        .await
        .map_err(|_| Error::Timeout {
            action,
            kind,
            name,
            after: timeout,
        })
}

/// Turns a kube error into this crate's, recognising server-side apply conflicts.
fn kube_error(action: &'static str, kind: &'static str, name: String, err: kube::Error) -> Error {
    if let kube::Error::Api(status) = &err
        && status.code == 409
    {
        let causes = status
            .details
            .as_ref()
            .map(|d| d.causes.as_slice())
            .unwrap_or_default();
        let mut managers: Vec<String> = Vec::new();
        let mut fields = Vec::new();
        for cause in causes.iter().filter(|c| c.reason == "FieldManagerConflict") {
            // The API server writes `conflict with "<manager>"` (plus ` using <apiVersion>` for
            // managers that wrote with an update rather than an apply).
            let manager = cause
                .message
                .split('"')
                .nth(1)
                .unwrap_or(cause.message.as_str())
                .to_owned();
            if !managers.contains(&manager) {
                managers.push(manager);
            }
            fields.push(cause.field.clone());
        }
        if !managers.is_empty() {
            return Error::FieldManagerConflict {
                kind,
                name,
                managers,
                fields,
            };
        }
    }
    Error::Kube {
        action,
        kind,
        name,
        source: err,
    }
}

/// Polls a Deployment until it is available: the controller has seen the current generation,
/// every wanted replica is updated and available, and the `Available` condition is `True`.
async fn wait_available(
    client: &Client,
    ns: &str,
    name: &str,
    deadline: tokio::time::Instant,
    options: &ApplyOptions,
) -> Result<()> {
    let api: Api<k8s_openapi::api::apps::v1::Deployment> = Api::namespaced(client.clone(), ns);
    let start = tokio::time::Instant::now();
    let qualified = format!("{ns}/{name}");
    loop {
        let d = with_timeout(
            "Deployment",
            qualified.clone(),
            "get",
            options.request_timeout,
            api.get(name),
        )
        .await?
        .map_err(|e| kube_error("get", "Deployment", qualified.clone(), e))?;
        // Read through JSON: the shape of `Deployment.spec` differs between Kubernetes versions.
        let v = serde_json::to_value(&d).unwrap_or_default();
        let (ready, state) = availability(&v);
        if ready {
            info!(deployment = %qualified, "available");
            return Ok(());
        }
        if tokio::time::Instant::now() + options.poll_interval > deadline {
            return Err(Error::DeploymentNotAvailable {
                namespace: ns.to_owned(),
                name: name.to_owned(),
                waited: start.elapsed(),
                last_state: state,
            });
        }
        tokio::time::sleep(options.poll_interval).await;
    }
}

/// (available?, a short description of the state) from a Deployment as JSON.
fn availability(v: &serde_json::Value) -> (bool, String) {
    let num = |p: &str| v.pointer(p).and_then(serde_json::Value::as_i64);
    let wanted = num("/spec/replicas").unwrap_or(1);
    let generation = num("/metadata/generation").unwrap_or(0);
    let observed = num("/status/observedGeneration").unwrap_or(-1);
    let updated = num("/status/updatedReplicas").unwrap_or(0);
    let available = num("/status/availableReplicas").unwrap_or(0);
    let condition = v
        .pointer("/status/conditions")
        .and_then(serde_json::Value::as_array)
        .and_then(|cs| {
            cs.iter()
                .find(|c| c.get("type").and_then(serde_json::Value::as_str) == Some("Available"))
        });
    let cond_true = condition
        .and_then(|c| c.get("status"))
        .and_then(serde_json::Value::as_str)
        == Some("True");
    let message = condition
        .and_then(|c| c.get("message"))
        .and_then(serde_json::Value::as_str)
        .unwrap_or("no Available condition yet");
    let ready = observed >= generation && updated >= wanted && available >= wanted && cond_true;
    (
        ready,
        format!(
            "{available}/{wanted} available, {updated} updated, observed generation {observed} of {generation}: {message}"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn availability_needs_all_signals() {
        let ok = serde_json::json!({
            "metadata": {"generation": 2},
            "spec": {"replicas": 1},
            "status": {"observedGeneration": 2, "updatedReplicas": 1, "availableReplicas": 1,
                       "conditions": [{"type": "Available", "status": "True", "message": "ok"}]}
        });
        assert!(availability(&ok).0);
        let mut old = ok.clone();
        old["status"]["observedGeneration"] = 1.into();
        assert!(!availability(&old).0);
        let mut none = ok;
        none["status"]["availableReplicas"] = 0.into();
        let (ready, state) = availability(&none);
        assert!(!ready);
        assert!(state.starts_with("0/1 available"), "{state}");
    }
}
