//! The cluster side as k8s-openapi objects, and their YAML for `cluster/nfs/` of the plan tree.
//!
//! # Subdir provisioner ([`Backend::SubdirProvisioner`])
//! One Deployment per export (`<class>-provisioner`), each with its own `PROVISIONER_NAME`
//! (`hakube.io/<class>`, equal to its StorageClass's `provisioner`), `NFS_SERVER`, `NFS_PATH`,
//! the export mounted at `/persistentvolumes`, one replica, strategy `Recreate` and
//! `ENABLE_LEADER_ELECTION=false`. With leader election off and a single replica the provisioner
//! needs no leader-locking Role, so none is rendered; `Recreate` guarantees two provisioners never
//! run at once during a rollout. A shared ServiceAccount gets a ClusterRole with exactly the
//! provisioner's needs (see [`PROVISIONER_RBAC`]).
//!
//! # csi-driver-nfs ([`Backend::CsiDriverNfs`])
//! Only the StorageClasses are rendered (`provisioner: nfs.csi.k8s.io`, parameters `server`,
//! `share`, `subDir`, `onDelete`). The driver itself (controller, node DaemonSet, CSIDriver
//! object) is installed by its Helm chart (`csi-driver-nfs`, chart 4.13.x from
//! kubernetes-csi/csi-driver-nfs) before these classes are used.
//!
//! # Data policies
//! | policy | reclaimPolicy | subdir parameters | csi parameters |
//! |---|---|---|---|
//! | Retain | Retain | `onDelete: retain`, `archiveOnDelete: "true"` | `onDelete: retain` |
//! | Archive | Delete | `archiveOnDelete: "true"` | `onDelete: archive` |
//! | Delete | Delete | `onDelete: delete`, `archiveOnDelete: "false"` | `onDelete: delete` |
//!
//! Volume directories are named after the claim ([`volume_dir`]): `<namespace>.<pvc name>`
//! directly under the export for the subdir provisioner (`pathPattern`), `<namespace>/<pvc
//! name>` for csi-driver-nfs (`subDir`), so a claim re-created with the same namespace and name
//! on a rebuilt cluster finds its old data (see [`crate::backup`]). The subdir provisioner's
//! layout is flat because v4.0.2 (the last release) deletes and archives
//! `/persistentvolumes/<basename of the volume path>` (`Delete` in
//! `cmd/nfs-subdir-external-provisioner/provisioner.go`): under a nested pattern that directory
//! does not exist, so `onDelete: delete` removed nothing and a re-created claim got the old
//! data. A namespace holds no `.`, so `<namespace>.<name>` is unambiguous.

use std::collections::BTreeMap;

use hakube_host_state::ClusterFile;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy};
use k8s_openapi::api::core::v1::{
    Container, EnvVar, NFSVolumeSource, Namespace, PodSpec, PodTemplateSpec, ResourceRequirements,
    SecurityContext, ServiceAccount, Volume, VolumeMount,
};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, RoleRef, Subject};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use crate::error::{Error, Result};
use crate::model::{Backend, DataPolicy, ExportSpec, NfsSetup};

/// Debian packages every Kubernetes node needs to mount NFS volumes (`mount.nfs`). Without them
/// the provisioner pod and every NFS-backed pod stay in `ContainerCreating`.
pub const NODE_PACKAGES: &[&str] = &["nfs-common"];

/// Where the lead puts [`NfsSetup::cluster_files`] in the plan tree.
pub const CLUSTER_DIR: &str = "cluster/nfs";
/// The ServiceAccount, ClusterRole and ClusterRoleBinding name.
pub const PROVISIONER_ACCOUNT: &str = "nfs-provisioner";
/// The ClusterRole (and binding) name.
pub const PROVISIONER_CLUSTER_ROLE: &str = "hakube-nfs-provisioner";
/// The provisioner's mount point for its export (hard-coded in the provisioner).
pub const PROVISIONER_MOUNT_PATH: &str = "/persistentvolumes";
/// The CSI driver name of csi-driver-nfs.
pub const CSI_DRIVER_NAME: &str = "nfs.csi.k8s.io";
/// The annotation marking the default StorageClass.
pub const DEFAULT_CLASS_ANNOTATION: &str = "storageclass.kubernetes.io/is-default-class";

/// What the subdir provisioner does with the API, as (API group, resource, verbs). The
/// ClusterRole grants exactly this: it watches nodes (topology), creates and deletes PVs for
/// claims of its class, updates claims (annotations), reads StorageClasses and records events.
pub const PROVISIONER_RBAC: &[(&str, &str, &[&str])] = &[
    ("", "nodes", &["get", "list", "watch"]),
    (
        "",
        "persistentvolumes",
        &["get", "list", "watch", "create", "delete"],
    ),
    (
        "",
        "persistentvolumeclaims",
        &["get", "list", "watch", "update"],
    ),
    (
        "storage.k8s.io",
        "storageclasses",
        &["get", "list", "watch"],
    ),
    ("", "events", &["create", "update", "patch"]),
];

/// The subdir provisioner's `pathPattern`: flat, see [`volume_dir`].
pub const SUBDIR_PATH_PATTERN: &str = "${.PVC.namespace}.${.PVC.name}";
/// The Kustomization listing the cluster objects, beside them in [`CLUSTER_DIR`].
pub const KUSTOMIZATION_FILE: &str = "kustomization.yaml";

/// The directory, relative to its export, that holds the volume of claim `namespace/name`.
#[must_use]
pub fn volume_dir(backend: Backend, namespace: &str, name: &str) -> String {
    match backend {
        Backend::SubdirProvisioner => format!("{namespace}.{name}"),
        Backend::CsiDriverNfs => format!("{namespace}/{name}"),
    }
}

/// One cluster object, in apply order when listed by [`NfsSetup::cluster_objects`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ClusterObject {
    /// The provisioner namespace.
    Namespace(Namespace),
    /// The provisioner ServiceAccount.
    ServiceAccount(ServiceAccount),
    /// The provisioner ClusterRole.
    ClusterRole(ClusterRole),
    /// Its binding to the ServiceAccount.
    ClusterRoleBinding(ClusterRoleBinding),
    /// One provisioner Deployment.
    Deployment(Box<Deployment>),
    /// One StorageClass.
    StorageClass(StorageClass),
}

impl ClusterObject {
    /// The object's kind.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Namespace(_) => "Namespace",
            Self::ServiceAccount(_) => "ServiceAccount",
            Self::ClusterRole(_) => "ClusterRole",
            Self::ClusterRoleBinding(_) => "ClusterRoleBinding",
            Self::Deployment(_) => "Deployment",
            Self::StorageClass(_) => "StorageClass",
        }
    }

    /// The object's metadata.
    #[must_use]
    pub fn metadata(&self) -> &ObjectMeta {
        match self {
            Self::Namespace(o) => &o.metadata,
            Self::ServiceAccount(o) => &o.metadata,
            Self::ClusterRole(o) => &o.metadata,
            Self::ClusterRoleBinding(o) => &o.metadata,
            Self::Deployment(o) => &o.metadata,
            Self::StorageClass(o) => &o.metadata,
        }
    }

    /// The name.
    #[must_use]
    pub fn name(&self) -> &str {
        self.metadata().name.as_deref().unwrap_or_default()
    }

    /// `namespace/name` for namespaced objects, `name` otherwise.
    #[must_use]
    pub fn qualified_name(&self) -> String {
        match &self.metadata().namespace {
            Some(ns) => format!("{ns}/{}", self.name()),
            None => self.name().to_owned(),
        }
    }

    /// The file name under [`CLUSTER_DIR`]: a two-digit apply-order prefix, the kind, the name.
    #[must_use]
    pub fn file_name(&self) -> String {
        let order = match self {
            Self::Namespace(_) => "00",
            Self::ServiceAccount(_) => "01",
            Self::ClusterRole(_) => "02",
            Self::ClusterRoleBinding(_) => "03",
            Self::Deployment(_) => "10",
            Self::StorageClass(_) => "20",
        };
        format!(
            "{order}-{}-{}.yaml",
            self.kind().to_ascii_lowercase(),
            self.name()
        )
    }

    /// The object as YAML.
    ///
    /// # Errors
    /// [`Error::Yaml`] if serialisation fails (a bug).
    pub fn to_yaml(&self) -> Result<String> {
        let res = match self {
            Self::Namespace(o) => serde_saphyr::to_string(o),
            Self::ServiceAccount(o) => serde_saphyr::to_string(o),
            Self::ClusterRole(o) => serde_saphyr::to_string(o),
            Self::ClusterRoleBinding(o) => serde_saphyr::to_string(o),
            Self::Deployment(o) => serde_saphyr::to_string(o),
            Self::StorageClass(o) => serde_saphyr::to_string(o),
        };
        res.map_err(|source| Error::Yaml {
            file: self.file_name(),
            source,
        })
    }
}

/// The path of `name` in [`CLUSTER_DIR`], relative to `cluster/` as a [`ClusterFile`]'s is
/// (`nfs/<name>`).
pub(crate) fn gitops_path(name: &str) -> String {
    let dir = CLUSTER_DIR.strip_prefix("cluster/").unwrap_or(CLUSTER_DIR);
    format!("{dir}/{name}")
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn common_labels() -> BTreeMap<String, String> {
    labels(&[
        ("app.kubernetes.io/part-of", "hakube-nfs"),
        ("app.kubernetes.io/managed-by", "hakube"),
    ])
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

impl NfsSetup {
    /// The `provisioner` name of an export's StorageClass.
    #[must_use]
    pub fn provisioner_name(&self, export: &ExportSpec) -> String {
        match self.input().cluster.backend {
            Backend::SubdirProvisioner => format!("hakube.io/{}", export.storage_class),
            Backend::CsiDriverNfs => CSI_DRIVER_NAME.to_owned(),
        }
    }

    /// Every cluster object in apply order: Namespace, ServiceAccount, ClusterRole, its binding,
    /// the Deployments, then the StorageClasses. For [`Backend::CsiDriverNfs`] only the
    /// StorageClasses. Plain exports ([`crate::PlainExport`]) have none, so an input with only
    /// plain exports has no cluster objects at all.
    #[must_use]
    pub fn cluster_objects(&self) -> Vec<ClusterObject> {
        let mut out = Vec::new();
        if self.input().cluster.backend == Backend::SubdirProvisioner
            && !self.input().exports.is_empty()
        {
            out.push(ClusterObject::Namespace(self.namespace()));
            out.push(ClusterObject::ServiceAccount(self.service_account()));
            out.push(ClusterObject::ClusterRole(cluster_role()));
            out.push(ClusterObject::ClusterRoleBinding(
                self.cluster_role_binding(),
            ));
            for e in &self.input().exports {
                out.push(ClusterObject::Deployment(Box::new(self.deployment(e))));
            }
        }
        for e in &self.input().exports {
            out.push(ClusterObject::StorageClass(self.storage_class(e)));
        }
        out
    }

    /// The YAML files for `cluster/nfs/` ([`CLUSTER_DIR`]), one document each, in apply
    /// order (paths `nfs/<file>`, relative to `cluster/`).
    ///
    /// # Errors
    /// [`Error::Yaml`] if serialisation fails (a bug).
    pub fn cluster_files(&self) -> Result<Vec<ClusterFile>> {
        self.cluster_objects()
            .iter()
            .map(|o| Ok(ClusterFile::new(gitops_path(&o.file_name()), o.to_yaml()?)))
            .collect()
    }

    /// `kustomization.yaml` for [`CLUSTER_DIR`]: every file of [`NfsSetup::cluster_files`] as
    /// a resource, in apply order, so the folder builds with `kubectl kustomize` and a GitOps
    /// controller can apply it. `None` when there are no cluster objects.
    ///
    /// # Errors
    /// [`Error::Yaml`] if a manifest cannot be serialised (a bug).
    pub fn kustomization(&self) -> Result<Option<ClusterFile>> {
        let files = self.cluster_files()?;
        if files.is_empty() {
            return Ok(None);
        }
        let mut s = String::from(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n",
        );
        for f in &files {
            s.push_str(&format!("- {}\n", f.file_name()));
        }
        Ok(Some(ClusterFile::new(gitops_path(KUSTOMIZATION_FILE), s)))
    }

    fn namespace(&self) -> Namespace {
        let mut l = common_labels();
        // The provisioner mounts an NFS volume: allowed by the baseline profile, not restricted.
        l.insert(
            "pod-security.kubernetes.io/enforce".to_owned(),
            "baseline".to_owned(),
        );
        Namespace {
            metadata: ObjectMeta {
                name: Some(self.input().cluster.namespace.to_string()),
                labels: Some(l),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        }
    }

    fn service_account(&self) -> ServiceAccount {
        ServiceAccount {
            metadata: ObjectMeta {
                name: Some(PROVISIONER_ACCOUNT.to_owned()),
                namespace: Some(self.input().cluster.namespace.to_string()),
                labels: Some(common_labels()),
                ..ObjectMeta::default()
            },
            ..ServiceAccount::default()
        }
    }

    fn cluster_role_binding(&self) -> ClusterRoleBinding {
        ClusterRoleBinding {
            metadata: ObjectMeta {
                name: Some(PROVISIONER_CLUSTER_ROLE.to_owned()),
                labels: Some(common_labels()),
                ..ObjectMeta::default()
            },
            role_ref: cluster_role_ref(),
            subjects: Some(vec![Subject {
                kind: "ServiceAccount".to_owned(),
                name: PROVISIONER_ACCOUNT.to_owned(),
                namespace: Some(self.input().cluster.namespace.to_string()),
                ..Subject::default()
            }]),
        }
    }

    fn deployment(&self, e: &ExportSpec) -> Deployment {
        let input = self.input();
        let name = format!("{}-provisioner", e.storage_class);
        let selector = labels(&[
            ("app.kubernetes.io/name", "nfs-subdir-external-provisioner"),
            ("app.kubernetes.io/instance", e.storage_class.as_str()),
        ]);
        let mut all_labels = common_labels();
        all_labels.extend(selector.clone());
        let env = |name: &str, value: String| EnvVar {
            name: name.to_owned(),
            value: Some(value),
            ..EnvVar::default()
        };
        let quantities = |cpu: &str, mem: &str| {
            BTreeMap::from([
                ("cpu".to_owned(), Quantity(cpu.to_owned())),
                ("memory".to_owned(), Quantity(mem.to_owned())),
            ])
        };
        let container = Container {
            name: "nfs-subdir-external-provisioner".to_owned(),
            image: Some(input.cluster.image.clone()),
            image_pull_policy: Some("IfNotPresent".to_owned()),
            env: Some(vec![
                env("PROVISIONER_NAME", self.provisioner_name(e)),
                env("NFS_SERVER", input.server.address.to_string()),
                env("NFS_PATH", e.path.to_string()),
                env("ENABLE_LEADER_ELECTION", "false".to_owned()),
            ]),
            volume_mounts: Some(vec![VolumeMount {
                name: "nfs-root".to_owned(),
                mount_path: PROVISIONER_MOUNT_PATH.to_owned(),
                ..VolumeMount::default()
            }]),
            resources: Some(ResourceRequirements {
                requests: Some(quantities("10m", "32Mi")),
                limits: Some(quantities("100m", "128Mi")),
                ..ResourceRequirements::default()
            }),
            security_context: Some(SecurityContext {
                allow_privilege_escalation: Some(false),
                ..SecurityContext::default()
            }),
            ..Container::default()
        };
        let spec = DeploymentSpec {
            replicas: Some(1),
            selector: LabelSelector {
                match_labels: Some(selector),
                ..LabelSelector::default()
            },
            strategy: Some(DeploymentStrategy {
                type_: Some("Recreate".to_owned()),
                ..DeploymentStrategy::default()
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(all_labels.clone()),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    service_account_name: Some(PROVISIONER_ACCOUNT.to_owned()),
                    containers: vec![container],
                    volumes: Some(vec![Volume {
                        name: "nfs-root".to_owned(),
                        nfs: Some(NFSVolumeSource {
                            server: input.server.address.to_string(),
                            path: e.path.to_string(),
                            ..NFSVolumeSource::default()
                        }),
                        ..Volume::default()
                    }]),
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        };
        // `Deployment.spec` is optional up to Kubernetes 1.36 and required from 1.37.
        k8s_openapi::k8s_if_le_1_36! {
            let spec = Some(spec);
        }
        Deployment {
            metadata: ObjectMeta {
                name: Some(name),
                namespace: Some(input.cluster.namespace.to_string()),
                labels: Some(all_labels),
                ..ObjectMeta::default()
            },
            spec,
            ..Deployment::default()
        }
    }

    fn storage_class(&self, e: &ExportSpec) -> StorageClass {
        let input = self.input();
        let reclaim = match e.data_policy {
            DataPolicy::Retain => "Retain",
            DataPolicy::Archive | DataPolicy::Delete => "Delete",
        };
        let params: &[(&str, &str)] = match (input.cluster.backend, e.data_policy) {
            (Backend::SubdirProvisioner, DataPolicy::Retain) => {
                &[("onDelete", "retain"), ("archiveOnDelete", "true")]
            }
            (Backend::SubdirProvisioner, DataPolicy::Archive) => &[("archiveOnDelete", "true")],
            (Backend::SubdirProvisioner, DataPolicy::Delete) => {
                &[("onDelete", "delete"), ("archiveOnDelete", "false")]
            }
            (Backend::CsiDriverNfs, DataPolicy::Retain) => &[("onDelete", "retain")],
            (Backend::CsiDriverNfs, DataPolicy::Archive) => &[("onDelete", "archive")],
            (Backend::CsiDriverNfs, DataPolicy::Delete) => &[("onDelete", "delete")],
        };
        let mut parameters = labels(params);
        match input.cluster.backend {
            Backend::SubdirProvisioner => {
                parameters.insert("pathPattern".to_owned(), SUBDIR_PATH_PATTERN.to_owned());
            }
            Backend::CsiDriverNfs => {
                parameters.insert("server".to_owned(), input.server.address.to_string());
                parameters.insert("share".to_owned(), e.path.to_string());
                parameters.insert(
                    "subDir".to_owned(),
                    "${pvc.metadata.namespace}/${pvc.metadata.name}".to_owned(),
                );
            }
        }
        let annotations = (input.cluster.default_class.as_ref() == Some(&e.storage_class))
            .then(|| labels(&[(DEFAULT_CLASS_ANNOTATION, "true")]));
        StorageClass {
            metadata: ObjectMeta {
                name: Some(e.storage_class.to_string()),
                labels: Some(common_labels()),
                annotations,
                ..ObjectMeta::default()
            },
            provisioner: self.provisioner_name(e),
            parameters: Some(parameters),
            reclaim_policy: Some(reclaim.to_owned()),
            mount_options: (!input.cluster.mount_options.is_empty()).then(|| {
                input
                    .cluster
                    .mount_options
                    .iter()
                    .map(|o| o.as_str().to_owned())
                    .collect()
            }),
            volume_binding_mode: Some("Immediate".to_owned()),
            ..StorageClass::default()
        }
    }
}

fn cluster_role_ref() -> RoleRef {
    let api_group = "rbac.authorization.k8s.io".to_owned();
    // `RoleRef.apiGroup` is required up to Kubernetes 1.36 and optional from 1.37.
    k8s_openapi::k8s_if_ge_1_37! {
        let api_group = Some(api_group);
    }
    RoleRef {
        api_group,
        kind: "ClusterRole".to_owned(),
        name: PROVISIONER_CLUSTER_ROLE.to_owned(),
    }
}

fn cluster_role() -> ClusterRole {
    ClusterRole {
        metadata: ObjectMeta {
            name: Some(PROVISIONER_CLUSTER_ROLE.to_owned()),
            labels: Some(common_labels()),
            ..ObjectMeta::default()
        },
        rules: Some(
            PROVISIONER_RBAC
                .iter()
                .map(|(group, resource, verbs)| PolicyRule {
                    api_groups: Some(strings(&[group])),
                    resources: Some(strings(&[resource])),
                    verbs: strings(verbs),
                    ..PolicyRule::default()
                })
                .collect(),
        ),
        ..ClusterRole::default()
    }
}
