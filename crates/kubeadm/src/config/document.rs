use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{
    ClusterConfiguration, InitConfiguration, JoinConfiguration, KUBE_PROXY_API_VERSION,
    KUBEADM_API_VERSION, KUBELET_API_VERSION, KubeProxyConfiguration, KubeletConfiguration,
    ResetConfiguration, UpgradeConfiguration,
};
use crate::error::{Error, Result};

/// One typed document of a kubeadm configuration stream.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Document {
    /// `kubeadm.k8s.io/v1beta4` InitConfiguration.
    Init(Box<InitConfiguration>),
    /// `kubeadm.k8s.io/v1beta4` ClusterConfiguration.
    Cluster(Box<ClusterConfiguration>),
    /// `kubeadm.k8s.io/v1beta4` JoinConfiguration.
    Join(Box<JoinConfiguration>),
    /// `kubeadm.k8s.io/v1beta4` ResetConfiguration.
    Reset(Box<ResetConfiguration>),
    /// `kubeadm.k8s.io/v1beta4` UpgradeConfiguration.
    Upgrade(Box<UpgradeConfiguration>),
    /// `kubelet.config.k8s.io/v1beta1` KubeletConfiguration.
    Kubelet(Box<KubeletConfiguration>),
    /// `kubeproxy.config.k8s.io/v1alpha1` KubeProxyConfiguration.
    KubeProxy(Box<KubeProxyConfiguration>),
}

impl Document {
    /// The document's `apiVersion`.
    #[must_use]
    pub fn api_version(&self) -> &'static str {
        match self {
            Self::Init(_)
            | Self::Cluster(_)
            | Self::Join(_)
            | Self::Reset(_)
            | Self::Upgrade(_) => KUBEADM_API_VERSION,
            Self::Kubelet(_) => KUBELET_API_VERSION,
            Self::KubeProxy(_) => KUBE_PROXY_API_VERSION,
        }
    }

    /// The document's `kind`.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Init(_) => "InitConfiguration",
            Self::Cluster(_) => "ClusterConfiguration",
            Self::Join(_) => "JoinConfiguration",
            Self::Reset(_) => "ResetConfiguration",
            Self::Upgrade(_) => "UpgradeConfiguration",
            Self::Kubelet(_) => "KubeletConfiguration",
            Self::KubeProxy(_) => "KubeProxyConfiguration",
        }
    }

    /// This document as YAML, `apiVersion` and `kind` first.
    ///
    /// # Errors
    /// [`Error::Render`] if the serializer rejects a value.
    pub fn to_yaml(&self) -> Result<String> {
        match self {
            Self::Init(b) => self.tagged(b.as_ref()),
            Self::Cluster(b) => self.tagged(b.as_ref()),
            Self::Join(b) => self.tagged(b.as_ref()),
            Self::Reset(b) => self.tagged(b.as_ref()),
            Self::Upgrade(b) => self.tagged(b.as_ref()),
            Self::Kubelet(b) => self.tagged(b.as_ref()),
            Self::KubeProxy(b) => self.tagged(b.as_ref()),
        }
    }

    fn tagged<T: Serialize>(&self, body: &T) -> Result<String> {
        #[derive(Serialize)]
        struct Tagged<'a, T> {
            #[serde(rename = "apiVersion")]
            api_version: &'static str,
            kind: &'static str,
            #[serde(flatten)]
            body: &'a T,
        }
        serde_saphyr::to_string(&Tagged {
            api_version: self.api_version(),
            kind: self.kind(),
            body,
        })
        .map_err(|e| Error::Render {
            kind: self.kind(),
            reason: e.to_string(),
        })
    }

    /// The document of one already-parsed YAML/JSON object, dispatched on `apiVersion`/`kind`.
    ///
    /// # Errors
    /// [`Error::UnknownDocument`] for an unsupported pair, [`Error::Parse`] (with the field path)
    /// when the body does not fit the type.
    pub fn from_value(index: usize, value: serde_json::Value) -> Result<Self> {
        let serde_json::Value::Object(mut map) = value else {
            return Err(Error::Parse {
                index,
                kind: "?".into(),
                reason: "a document must be a mapping".into(),
            });
        };
        let take = |map: &mut serde_json::Map<String, serde_json::Value>, key: &str| match map
            .remove(key)
        {
            Some(serde_json::Value::String(s)) => s,
            _ => String::new(),
        };
        let api_version = take(&mut map, "apiVersion");
        let kind = take(&mut map, "kind");
        let body = serde_json::Value::Object(map);
        fn body_of<T: DeserializeOwned>(
            index: usize,
            kind: &str,
            body: serde_json::Value,
        ) -> Result<Box<T>> {
            serde_path_to_error::deserialize(body)
                .map(Box::new)
                .map_err(|e| Error::Parse {
                    index,
                    kind: kind.to_owned(),
                    reason: format!("{}: {}", e.path(), e.inner()),
                })
        }
        Ok(match (api_version.as_str(), kind.as_str()) {
            (KUBEADM_API_VERSION, "InitConfiguration") => Self::Init(body_of(index, &kind, body)?),
            (KUBEADM_API_VERSION, "ClusterConfiguration") => {
                Self::Cluster(body_of(index, &kind, body)?)
            }
            (KUBEADM_API_VERSION, "JoinConfiguration") => Self::Join(body_of(index, &kind, body)?),
            (KUBEADM_API_VERSION, "ResetConfiguration") => {
                Self::Reset(body_of(index, &kind, body)?)
            }
            (KUBEADM_API_VERSION, "UpgradeConfiguration") => {
                Self::Upgrade(body_of(index, &kind, body)?)
            }
            (KUBELET_API_VERSION, "KubeletConfiguration") => {
                Self::Kubelet(body_of(index, &kind, body)?)
            }
            (KUBE_PROXY_API_VERSION, "KubeProxyConfiguration") => {
                Self::KubeProxy(body_of(index, &kind, body)?)
            }
            _ => {
                return Err(Error::UnknownDocument {
                    index,
                    api_version,
                    kind,
                });
            }
        })
    }
}

/// Renders documents as one `---`-separated YAML stream.
///
/// ```
/// use hakube_kubeadm::config::{Document, KubeletConfiguration, parse_documents, render_documents};
/// let kubelet = KubeletConfiguration { cgroup_driver: Some("systemd".into()), ..Default::default() };
/// let yaml = render_documents(&[Document::Kubelet(Box::new(kubelet))])?;
/// assert!(yaml.starts_with("apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n"));
/// assert_eq!(parse_documents(&yaml)?.len(), 1);
/// # Ok::<(), hakube_kubeadm::Error>(())
/// ```
///
/// # Errors
/// [`Error::Render`] if a value cannot be serialised.
pub fn render_documents(docs: &[Document]) -> Result<String> {
    let mut out = String::new();
    for (i, doc) in docs.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        out.push_str(&doc.to_yaml()?);
        if !out.ends_with('\n') {
            out.push('\n');
        }
    }
    Ok(out)
}

/// Parses a `---`-separated YAML stream into typed documents (empty documents are skipped).
///
/// # Errors
/// [`Error::Parse`] for invalid YAML or a body that does not fit its type,
/// [`Error::UnknownDocument`] for an unsupported `apiVersion`/`kind`.
pub fn parse_documents(yaml: &str) -> Result<Vec<Document>> {
    let values: Vec<serde_json::Value> =
        serde_saphyr::from_multiple(yaml).map_err(|e| Error::Parse {
            index: 0,
            kind: "?".into(),
            reason: e.to_string(),
        })?;
    values
        .into_iter()
        .filter(|v| !v.is_null())
        .enumerate()
        .map(|(i, v)| Document::from_value(i, v))
        .collect()
}
