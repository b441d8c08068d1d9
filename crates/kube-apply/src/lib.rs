//! Server-side apply of Kubernetes manifests with kube-rs, the one applier hakube's crates
//! share (hakube-addons and hakube-nfs-provisioning, each behind its `apply` feature).
//!
//! kube-rs applies one object at a time and knows nothing of ordering; [`Applier::apply`] adds
//! what a tool must:
//! - every document is parsed and checked before anything is sent (bad input applies nothing);
//! - CustomResourceDefinitions go first, then it waits until each is `Established`;
//! - built-in kinds resolve from a fixed table, other kinds through discovery, queried after
//!   the CRDs so that freshly created ones resolve;
//! - Namespaces next, then everything else in the order given, all with one field manager;
//! - a conflict (HTTP 409: another manager owns a field we set) is [`Error::Conflict`] naming
//!   the object, the other managers and the fields; fields are only taken over with
//!   [`Applier::force`];
//! - [`Applier::dry_run`] sends everything with `dryRun=All` (nothing changes, nothing waits);
//! - with [`Applier::track_changes`], each object is read just before it is applied, so the
//!   [`Report`] says which objects the apply created or changed (their `resourceVersion`
//!   moved; in a dry run, their content would) and a re-run can show that it changed nothing.
//!
//! [`Applier::wait_rollout`] waits until a Deployment, DaemonSet or StatefulSet has rolled
//! out (the controller saw the current generation, every replica updated and available, and
//! for a Deployment the `Available` condition). Every API call has a timeout.
//!
//! ```no_run
//! # async fn f(client: kube::Client) -> Result<(), hakube_kube_apply::Error> {
//! use hakube_kube_apply::{Applier, Manifest, Workload};
//! let manifests = Manifest::parse_yaml("app.yaml", "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: app\n")?;
//! let applier = Applier::new(client, "my-tool");
//! let report = applier.apply(&manifests).await?;
//! assert_eq!(report.applied, ["Namespace app"]);
//! applier.wait_rollout(Workload::Deployment, "app", "web").await?;
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{
    ConfigMap, Namespace, PersistentVolume, PersistentVolumeClaim, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::{ApiResource, Scope};
use serde_json::Value;
use tracing::{debug, info};

/// Why applying or waiting failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A document is not a Kubernetes object. Not retryable: fix the manifest. Nothing was sent.
    #[error("manifest `{origin}` document {index} is not a Kubernetes object: {reason}")]
    Manifest {
        /// Where the document came from (a file path or a caller's label).
        origin: String,
        /// Zero-based index of the document in it.
        index: usize,
        /// What is wrong.
        reason: String,
    },
    /// The API server does not serve the kind (its CRD is not installed). Retry after
    /// installing the CRD.
    #[error("API server does not serve {api_version} {kind} (object `{name}`)")]
    UnknownKind {
        /// `group/version`.
        api_version: String,
        /// Kind.
        kind: String,
        /// Object name.
        name: String,
    },
    /// Another field manager owns fields we set. Retrying fails again: resolve ownership or
    /// apply with [`Applier::force`] deliberately.
    #[error(
        "server-side apply conflict on {object} for field manager `{field_manager}` with {managers:?} on {fields:?}: {message}"
    )]
    Conflict {
        /// `Kind namespace/name` or `Kind name`.
        object: String,
        /// Our field manager.
        field_manager: String,
        /// The managers owning the conflicting fields.
        managers: Vec<String>,
        /// The conflicting fields (JSON paths as the API server names them).
        fields: Vec<String>,
        /// The API server's message.
        message: String,
    },
    /// Any other API failure. Safe to retry: server-side apply is idempotent.
    #[error("Kubernetes API call `{action} {object}` failed")]
    Kube {
        /// What was being done.
        action: Action,
        /// `Kind namespace/name` or `Kind name` (or the group/version for discovery).
        object: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
    /// An API call did not answer in time. Safe to retry.
    #[error("`{action} {object}`: no answer within {after:?}")]
    Timeout {
        /// What was being done.
        action: Action,
        /// The object.
        object: String,
        /// The timeout.
        after: Duration,
    },
    /// A CRD did not become Established in time. Safe to retry.
    #[error("CRD `{name}` not Established after {waited:?}")]
    CrdNotEstablished {
        /// CRD name.
        name: String,
        /// How long we waited.
        waited: Duration,
    },
    /// A workload did not roll out in time (or does not exist yet). Safe to retry: waiting has
    /// no side effects.
    #[error("{kind} `{namespace}/{name}` not rolled out after {waited:?}: {state}")]
    RolloutTimeout {
        /// Workload kind.
        kind: Workload,
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// How long we waited.
        waited: Duration,
        /// The last state seen, e.g. `2/3 updated, 1/3 available` or `not found`.
        state: String,
    },
}

/// What an API call was doing (named in errors).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Action {
    /// A server-side apply patch.
    Apply,
    /// A server-side apply patch with `dryRun=All`.
    DryRunApply,
    /// A GET.
    Get,
    /// API discovery of a group/version.
    Discover,
}

impl Action {
    /// The action as a word.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Apply => "apply",
            Self::DryRunApply => "dry-run apply",
            Self::Get => "get",
            Self::Discover => "discover",
        }
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Kinds of workload a rollout wait can target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Workload {
    /// apps/v1 Deployment.
    Deployment,
    /// apps/v1 DaemonSet.
    DaemonSet,
    /// apps/v1 StatefulSet.
    StatefulSet,
}

impl std::fmt::Display for Workload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Deployment => "Deployment",
            Self::DaemonSet => "DaemonSet",
            Self::StatefulSet => "StatefulSet",
        })
    }
}

/// One Kubernetes object to apply.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// Where it came from (a file path or a caller's label), for errors.
    pub origin: String,
    /// Its index in that origin.
    pub index: usize,
    /// The object.
    pub body: Value,
}

impl Manifest {
    /// An object from a value.
    #[must_use]
    pub fn new(origin: impl Into<String>, index: usize, body: Value) -> Self {
        Self {
            origin: origin.into(),
            index,
            body,
        }
    }

    /// Every document of a YAML text (empty documents skipped).
    ///
    /// # Errors
    /// [`Error::Manifest`] when the text is not YAML.
    pub fn parse_yaml(origin: &str, text: &str) -> Result<Vec<Self>, Error> {
        let docs: Vec<Value> = serde_saphyr::from_multiple(text).map_err(|e| Error::Manifest {
            origin: origin.to_owned(),
            index: 0,
            reason: e.to_string(),
        })?;
        Ok(docs
            .into_iter()
            .enumerate()
            .filter(|(_, d)| !d.is_null())
            .map(|(index, body)| Self::new(origin, index, body))
            .collect())
    }
}

/// What [`Applier::apply`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// `Kind namespace/name` or `Kind name` of every object sent, in order.
    pub applied: Vec<String>,
    /// Those of [`applied`](Self::applied) that the apply created or changed (in a dry run:
    /// would create or change): their `resourceVersion` moved, or the object did not exist.
    /// The others were already as applied; a re-run of the same manifests lists none here.
    /// Without [`Applier::track_changes`] every applied object is listed.
    pub changed: Vec<String>,
}

impl Report {
    /// How many applied objects were already as applied.
    #[must_use]
    pub fn unchanged(&self) -> usize {
        self.applied.len().saturating_sub(self.changed.len())
    }
}

/// A checked object.
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

    fn is_namespace(&self) -> bool {
        self.gvk.group.is_empty() && self.gvk.kind == "Namespace"
    }
}

fn check(m: &Manifest) -> Result<Doc, Error> {
    let bad = |reason: &str| Error::Manifest {
        origin: m.origin.clone(),
        index: m.index,
        reason: reason.into(),
    };
    let body = &m.body;
    let api_version = body["apiVersion"]
        .as_str()
        .ok_or_else(|| bad("missing apiVersion"))?;
    let kind = body["kind"].as_str().ok_or_else(|| bad("missing kind"))?;
    let name = body["metadata"]["name"]
        .as_str()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| bad("missing metadata.name"))?;
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    Ok(Doc {
        gvk: GroupVersionKind::gvk(group, version, kind),
        name: name.to_owned(),
        namespace: body["metadata"]["namespace"].as_str().map(str::to_owned),
        body: body.clone(),
    })
}

/// The built-in kinds hakube applies, resolved without discovery: (resource, namespaced).
fn builtin(gvk: &GroupVersionKind) -> Option<(ApiResource, bool)> {
    fn ar<K: kube::Resource<DynamicType = ()>>(namespaced: bool) -> Option<(ApiResource, bool)> {
        Some((ApiResource::erase::<K>(&()), namespaced))
    }
    match (gvk.group.as_str(), gvk.version.as_str(), gvk.kind.as_str()) {
        ("", "v1", "Namespace") => ar::<Namespace>(false),
        ("", "v1", "ServiceAccount") => ar::<ServiceAccount>(true),
        ("", "v1", "ConfigMap") => ar::<ConfigMap>(true),
        ("", "v1", "Secret") => ar::<Secret>(true),
        ("", "v1", "Service") => ar::<Service>(true),
        ("", "v1", "PersistentVolume") => ar::<PersistentVolume>(false),
        ("", "v1", "PersistentVolumeClaim") => ar::<PersistentVolumeClaim>(true),
        ("apps", "v1", "Deployment") => ar::<Deployment>(true),
        ("apps", "v1", "DaemonSet") => ar::<DaemonSet>(true),
        ("apps", "v1", "StatefulSet") => ar::<StatefulSet>(true),
        ("batch", "v1", "Job") => ar::<Job>(true),
        ("batch", "v1", "CronJob") => ar::<CronJob>(true),
        ("rbac.authorization.k8s.io", "v1", "Role") => ar::<Role>(true),
        ("rbac.authorization.k8s.io", "v1", "RoleBinding") => ar::<RoleBinding>(true),
        ("rbac.authorization.k8s.io", "v1", "ClusterRole") => ar::<ClusterRole>(false),
        ("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding") => {
            ar::<ClusterRoleBinding>(false)
        }
        ("storage.k8s.io", "v1", "StorageClass") => ar::<StorageClass>(false),
        ("networking.k8s.io", "v1", "NetworkPolicy") => ar::<NetworkPolicy>(true),
        ("apiextensions.k8s.io", "v1", "CustomResourceDefinition") => {
            ar::<CustomResourceDefinition>(false)
        }
        _ => None,
    }
}

/// `Ok` when rolled out, else where it stands.
fn rollout_state(kind: Workload, obj: &Value) -> Result<(), String> {
    let num = |p: &str| obj.pointer(p).and_then(Value::as_i64);
    let generation = num("/metadata/generation").unwrap_or(0);
    let observed = num("/status/observedGeneration").unwrap_or(-1);
    if observed < generation {
        return Err(format!(
            "the controller has not observed the latest generation ({observed} of {generation})"
        ));
    }
    let (want, updated, available) = match kind {
        Workload::Deployment => (
            num("/spec/replicas").unwrap_or(1),
            num("/status/updatedReplicas").unwrap_or(0),
            num("/status/availableReplicas").unwrap_or(0),
        ),
        Workload::StatefulSet => (
            num("/spec/replicas").unwrap_or(1),
            num("/status/updatedReplicas").unwrap_or(0),
            num("/status/readyReplicas").unwrap_or(0),
        ),
        Workload::DaemonSet => (
            num("/status/desiredNumberScheduled").unwrap_or(0),
            num("/status/updatedNumberScheduled").unwrap_or(0),
            num("/status/numberAvailable").unwrap_or(0),
        ),
    };
    let mut state = format!("{updated}/{want} updated, {available}/{want} available");
    let mut ready = updated >= want && available >= want;
    if kind == Workload::Deployment {
        let condition = obj
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .and_then(|cs| cs.iter().find(|c| c["type"] == "Available"));
        let available_true = condition.is_some_and(|c| c["status"] == "True");
        let message = condition
            .and_then(|c| c["message"].as_str())
            .unwrap_or("no Available condition yet");
        state = format!("{state}: {message}");
        ready &= available_true;
    }
    if ready { Ok(()) } else { Err(state) }
}

/// An object without the fields the API server maintains on every write (what a dry run
/// compares).
fn content(obj: &DynamicObject) -> Value {
    let mut v = serde_json::to_value(obj).unwrap_or_default();
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        for k in ["managedFields", "resourceVersion", "generation"] {
            m.remove(k);
        }
    }
    v
}

fn established(crd: &Value) -> bool {
    crd.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Established" && c["status"] == "True")
        })
}

/// Applies manifests through a [`kube::Client`] with one field manager.
#[derive(Clone)]
pub struct Applier {
    client: kube::Client,
    field_manager: String,
    force: bool,
    dry_run: bool,
    track_changes: bool,
    call_timeout: Duration,
    crd_timeout: Duration,
    rollout_timeout: Duration,
    poll_interval: Duration,
}

impl std::fmt::Debug for Applier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Applier")
            .field("field_manager", &self.field_manager)
            .field("force", &self.force)
            .field("dry_run", &self.dry_run)
            .field("track_changes", &self.track_changes)
            .field("call_timeout", &self.call_timeout)
            .field("crd_timeout", &self.crd_timeout)
            .field("rollout_timeout", &self.rollout_timeout)
            .field("poll_interval", &self.poll_interval)
            .finish_non_exhaustive()
    }
}

impl Applier {
    /// An applier with defaults: no force, no dry run, 30 s per API call, CRDs Established
    /// within 60 s, rollouts within 10 min, polled every 500 ms.
    #[must_use]
    pub fn new(client: kube::Client, field_manager: impl Into<String>) -> Self {
        Self {
            client,
            field_manager: field_manager.into(),
            force: false,
            dry_run: false,
            track_changes: false,
            call_timeout: Duration::from_secs(30),
            crd_timeout: Duration::from_secs(60),
            rollout_timeout: Duration::from_secs(600),
            poll_interval: Duration::from_millis(500),
        }
    }

    /// The field manager.
    #[must_use]
    pub fn field_manager(&self) -> &str {
        &self.field_manager
    }

    /// Take over fields owned by other managers (`force=true`). Off by default.
    #[must_use]
    pub fn force(mut self, force: bool) -> Self {
        self.force = force;
        self
    }

    /// Only validate on the server (`dryRun=All`): change nothing, wait for nothing.
    #[must_use]
    pub fn dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }

    /// Read each object just before applying it, so that [`Report::changed`] names only the
    /// objects the apply created or changed (one GET more per object). Off by default.
    #[must_use]
    pub fn track_changes(mut self, track: bool) -> Self {
        self.track_changes = track;
        self
    }

    /// Timeout of each API call.
    #[must_use]
    pub fn call_timeout(mut self, d: Duration) -> Self {
        self.call_timeout = d;
        self
    }

    /// How long to wait for a CRD to become Established.
    #[must_use]
    pub fn crd_timeout(mut self, d: Duration) -> Self {
        self.crd_timeout = d;
        self
    }

    /// How long to wait for a workload to roll out.
    #[must_use]
    pub fn rollout_timeout(mut self, d: Duration) -> Self {
        self.rollout_timeout = d;
        self
    }

    /// Pause between status polls.
    #[must_use]
    pub fn poll_interval(mut self, d: Duration) -> Self {
        self.poll_interval = d;
        self
    }

    async fn call<T>(
        &self,
        action: Action,
        object: &str,
        fut: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, Error> {
        match tokio::time::timeout(self.call_timeout, fut).await {
            Ok(r) => r.map_err(|source| Error::Kube {
                action,
                object: object.to_owned(),
                source,
            }),
            Err(_) => Err(Error::Timeout {
                action,
                object: object.to_owned(),
                after: self.call_timeout,
            }),
        }
    }

    /// Applies `manifests`: all checked first, CRDs (then Established unless a dry run),
    /// Namespaces, then the rest in the order given.
    ///
    /// # Errors
    /// [`Error::Manifest`] before any call for a bad document; [`Error::UnknownKind`],
    /// [`Error::Conflict`], [`Error::Kube`], [`Error::Timeout`], [`Error::CrdNotEstablished`]
    /// naming the object. Objects before the failing one stay applied (apply is idempotent:
    /// re-run after fixing the cause).
    pub async fn apply(&self, manifests: &[Manifest]) -> Result<Report, Error> {
        let docs = manifests.iter().map(check).collect::<Result<Vec<_>, _>>()?;
        let mut params = PatchParams::apply(&self.field_manager);
        params.force = self.force;
        if self.dry_run {
            params = params.dry_run();
        }
        let (crds, rest): (Vec<Doc>, Vec<Doc>) = docs.into_iter().partition(Doc::is_crd);
        let mut report = Report::default();
        let crd_api: Api<CustomResourceDefinition> = Api::all(self.client.clone());
        for crd in &crds {
            let api: Api<DynamicObject> = Api::all_with(
                self.client.clone(),
                &ApiResource::erase::<CustomResourceDefinition>(&()),
            );
            if self.patch(&api, crd, &params).await? {
                report.changed.push(crd.label());
            }
            report.applied.push(crd.label());
        }
        if !self.dry_run {
            for crd in &crds {
                self.wait_established_with(&crd_api, &crd.name).await?;
            }
        }

        let mut kinds: BTreeMap<(String, String, String), (ApiResource, bool)> = BTreeMap::new();
        for d in &rest {
            let key = (
                d.gvk.group.clone(),
                d.gvk.version.clone(),
                d.gvk.kind.clone(),
            );
            if kinds.contains_key(&key) {
                continue;
            }
            let resolved = match builtin(&d.gvk) {
                Some(r) => r,
                None => self.discover(d).await?,
            };
            kinds.insert(key, resolved);
        }

        let (namespaces, others): (Vec<&Doc>, Vec<&Doc>) =
            rest.iter().partition(|d| d.is_namespace());
        for d in namespaces.into_iter().chain(others) {
            let key = (
                d.gvk.group.clone(),
                d.gvk.version.clone(),
                d.gvk.kind.clone(),
            );
            let (ar, namespaced) = &kinds[&key];
            let api: Api<DynamicObject> = match (namespaced, &d.namespace) {
                (true, Some(ns)) => Api::namespaced_with(self.client.clone(), ns, ar),
                (true, None) => {
                    return Err(Error::Manifest {
                        origin: d.label(),
                        index: 0,
                        reason: "namespaced kind without metadata.namespace".into(),
                    });
                }
                (false, _) => Api::all_with(self.client.clone(), ar),
            };
            if self.patch(&api, d, &params).await? {
                report.changed.push(d.label());
            }
            report.applied.push(d.label());
        }
        info!(
            field_manager = %self.field_manager,
            objects = report.applied.len(),
            changed = report.changed.len(),
            dry_run = self.dry_run,
            "applied"
        );
        Ok(report)
    }

    async fn discover(&self, d: &Doc) -> Result<(ApiResource, bool), Error> {
        let unknown = || Error::UnknownKind {
            api_version: d.gvk.api_version(),
            kind: d.gvk.kind.clone(),
            name: d.name.clone(),
        };
        let found = tokio::time::timeout(
            self.call_timeout,
            kube::discovery::pinned_kind(&self.client, &d.gvk),
        )
        .await;
        match found {
            Ok(Ok((ar, caps))) => Ok((ar, caps.scope == Scope::Namespaced)),
            Ok(Err(kube::Error::Discovery(_))) => Err(unknown()),
            Ok(Err(kube::Error::Api(s))) if s.code == 404 => Err(unknown()),
            Ok(Err(source)) => Err(Error::Kube {
                action: Action::Discover,
                object: d.gvk.api_version(),
                source,
            }),
            Err(_) => Err(Error::Timeout {
                action: Action::Discover,
                object: d.gvk.api_version(),
                after: self.call_timeout,
            }),
        }
    }

    /// One server-side apply; `true` when it created or changed the object (compared with the
    /// object read just before: its `resourceVersion`, or in a dry run its content), or when
    /// changes are not tracked.
    async fn patch(
        &self,
        api: &Api<DynamicObject>,
        d: &Doc,
        params: &PatchParams,
    ) -> Result<bool, Error> {
        let action = if params.dry_run {
            Action::DryRunApply
        } else {
            Action::Apply
        };
        let before = if self.track_changes {
            self.call(Action::Get, &d.label(), api.get_opt(&d.name))
                .await?
        } else {
            None
        };
        debug!(object = %d.label(), %action, "server-side apply");
        let patch = Patch::Apply(d.body.clone());
        let fut = api.patch(&d.name, params, &patch);
        match self.call(action, &d.label(), fut).await {
            Ok(after) => Ok(match before {
                None => true,
                Some(before) if params.dry_run => content(&before) != content(&after),
                Some(before) => before.metadata.resource_version != after.metadata.resource_version,
            }),
            Err(Error::Kube {
                source: kube::Error::Api(status),
                ..
            }) if status.code == 409 => {
                let causes = status
                    .details
                    .as_ref()
                    .map(|x| x.causes.as_slice())
                    .unwrap_or_default();
                let mut managers: Vec<String> = Vec::new();
                let mut fields = Vec::new();
                for cause in causes.iter().filter(|c| c.reason == "FieldManagerConflict") {
                    // `conflict with "<manager>"` (plus ` using <apiVersion>` for updates).
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
                Err(Error::Conflict {
                    object: d.label(),
                    field_manager: self.field_manager.clone(),
                    managers,
                    fields,
                    message: status.message.clone(),
                })
            }
            Err(e) => Err(e),
        }
    }

    /// Waits until the CRD `name` is Established.
    ///
    /// # Errors
    /// [`Error::CrdNotEstablished`] when the wait runs out; API errors as [`Error::Kube`].
    pub async fn wait_established(&self, name: &str) -> Result<(), Error> {
        let api: Api<CustomResourceDefinition> = Api::all(self.client.clone());
        self.wait_established_with(&api, name).await
    }

    async fn wait_established_with(
        &self,
        api: &Api<CustomResourceDefinition>,
        name: &str,
    ) -> Result<(), Error> {
        let start = Instant::now();
        let object = format!("CustomResourceDefinition {name}");
        loop {
            let crd = self.call(Action::Get, &object, api.get(name)).await?;
            if established(&serde_json::to_value(&crd).unwrap_or_default()) {
                debug!(crd = name, "established");
                return Ok(());
            }
            if start.elapsed() >= self.crd_timeout {
                return Err(Error::CrdNotEstablished {
                    name: name.into(),
                    waited: start.elapsed(),
                });
            }
            tokio::time::sleep(self.poll_interval).await;
        }
    }

    /// Waits until a workload has rolled out. One that does not exist yet (an operator or a
    /// chart creates it) is waited for too.
    ///
    /// # Errors
    /// [`Error::RolloutTimeout`] with the last state seen; API errors as [`Error::Kube`].
    pub async fn wait_rollout(
        &self,
        kind: Workload,
        namespace: &str,
        name: &str,
    ) -> Result<(), Error> {
        let start = Instant::now();
        let ar = match kind {
            Workload::Deployment => ApiResource::erase::<Deployment>(&()),
            Workload::DaemonSet => ApiResource::erase::<DaemonSet>(&()),
            Workload::StatefulSet => ApiResource::erase::<StatefulSet>(&()),
        };
        let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), namespace, &ar);
        let object = format!("{kind} {namespace}/{name}");
        loop {
            let found = self.call(Action::Get, &object, api.get_opt(name)).await?;
            let state = match &found {
                None => "not found".to_owned(),
                Some(obj) => {
                    match rollout_state(kind, &serde_json::to_value(obj).unwrap_or_default()) {
                        Ok(()) => {
                            info!(%kind, namespace, name, "rolled out");
                            return Ok(());
                        }
                        Err(state) => state,
                    }
                }
            };
            if start.elapsed() + self.poll_interval > self.rollout_timeout {
                return Err(Error::RolloutTimeout {
                    kind,
                    namespace: namespace.into(),
                    name: name.into(),
                    waited: start.elapsed(),
                    state,
                });
            }
            tokio::time::sleep(self.poll_interval).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_deployment_needs_every_signal() {
        let ok = json!({
            "metadata": {"generation": 2},
            "spec": {"replicas": 1},
            "status": {"observedGeneration": 2, "updatedReplicas": 1, "availableReplicas": 1,
                       "conditions": [{"type": "Available", "status": "True", "message": "ok"}]}
        });
        assert!(rollout_state(Workload::Deployment, &ok).is_ok());
        let mut old = ok.clone();
        old["status"]["observedGeneration"] = 1.into();
        assert!(rollout_state(Workload::Deployment, &old).is_err());
        let mut none = ok.clone();
        none["status"]["availableReplicas"] = 0.into();
        let state = rollout_state(Workload::Deployment, &none).unwrap_err();
        assert!(state.starts_with("1/1 updated, 0/1 available"), "{state}");
        let mut no_condition = ok;
        no_condition["status"]["conditions"] = json!([]);
        assert!(rollout_state(Workload::Deployment, &no_condition).is_err());
    }

    #[test]
    fn a_daemonset_counts_scheduled_pods() {
        let ds = |updated: i64, available: i64| {
            json!({
                "metadata": {"generation": 1},
                "status": {"observedGeneration": 1, "desiredNumberScheduled": 3,
                           "updatedNumberScheduled": updated, "numberAvailable": available}
            })
        };
        assert!(rollout_state(Workload::DaemonSet, &ds(3, 3)).is_ok());
        assert_eq!(
            rollout_state(Workload::DaemonSet, &ds(3, 2)).unwrap_err(),
            "3/3 updated, 2/3 available"
        );
    }

    #[test]
    fn bad_documents_are_named_before_anything_is_sent() {
        let m = Manifest::parse_yaml("x.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n")
            .expect("YAML");
        let err = check(&m[0]).unwrap_err().to_string();
        assert!(
            err.contains("x.yaml") && err.contains("metadata.name"),
            "{err}"
        );
    }
}
