//! Port-forwards to pods through the API server, each served on a local port of 127.0.0.1, as
//! `kubectl port-forward` does: the way the runner reaches in-cluster Vault's pods one by one
//! (init and unseal are per pod, and no other path from outside the cluster reaches a single
//! pod).
//!
//! Each accepted local connection gets its own `pods/<name>/portforward` WebSocket (kube-rs
//! [`kube::Api::portforward`]: one stream per port per WebSocket), so an HTTP client may open
//! as many connections as it likes. The tunnel lives as long as its [`PodTunnel`].

use std::net::{Ipv4Addr, SocketAddr};

use k8s_openapi::api::core::v1::Pod;
use tokio::net::TcpListener;

use crate::Error;

/// A local end of port-forwards to one port of one pod.
#[derive(Debug)]
pub struct PodTunnel {
    namespace: String,
    pod: String,
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl PodTunnel {
    /// Opens a tunnel to `port` of `namespace/pod`. One port-forward is made at once, so a
    /// missing pod or an API server that refuses port-forwards (RBAC: `create` on
    /// `pods/portforward`) is an error here, naming the pod.
    ///
    /// # Errors
    /// [`Error::Kube`] with the API's answer, or when no local port can be bound.
    pub async fn open(
        client: kube::Client,
        namespace: &str,
        pod: &str,
        port: u16,
    ) -> Result<Self, Error> {
        let api: kube::Api<Pod> = kube::Api::namespaced(client, namespace);
        let action = format!("port-forward to pod {namespace}/{pod} port {port}");
        let first = api
            .portforward(pod, &[port])
            .await
            .map_err(|source| Error::Kube {
                action: action.clone(),
                source,
            })?;
        first.abort();
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .map_err(|e| Error::Kube {
                action: action.clone(),
                source: kube::Error::Service(format!("bind a local port: {e}").into()),
            })?;
        let addr = listener.local_addr().map_err(|e| Error::Kube {
            action: action.clone(),
            source: kube::Error::Service(e.to_string().into()),
        })?;
        let (name, ns) = (pod.to_owned(), namespace.to_owned());
        let task = tokio::spawn(async move {
            while let Ok((mut local, _)) = listener.accept().await {
                let (api, name, ns) = (api.clone(), name.clone(), ns.clone());
                tokio::spawn(async move {
                    let mut forwarder = match api.portforward(&name, &[port]).await {
                        Ok(f) => f,
                        Err(e) => {
                            tracing::warn!(pod = %format!("{ns}/{name}"), error = %e, "port-forward refused");
                            return;
                        }
                    };
                    if let Some(mut remote) = forwarder.take_stream(port)
                        && let Err(e) = tokio::io::copy_bidirectional(&mut local, &mut remote).await
                    {
                        tracing::debug!(pod = %format!("{ns}/{name}"), error = %e, "port-forward stream ended");
                    }
                    forwarder.abort();
                });
            }
        });
        Ok(Self {
            namespace: namespace.to_owned(),
            pod: pod.to_owned(),
            addr,
            task,
        })
    }

    /// The local address (`127.0.0.1:<port>`).
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://127.0.0.1:<port>`: the pod's TLS service as a local URL (its certificate
    /// must name 127.0.0.1, as in-cluster Vault's does).
    #[must_use]
    pub fn https_url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The pod's name.
    #[must_use]
    pub fn pod(&self) -> &str {
        &self.pod
    }

    /// The pod's namespace.
    #[must_use]
    pub fn namespace(&self) -> &str {
        &self.namespace
    }
}

impl Drop for PodTunnel {
    fn drop(&mut self) {
        self.task.abort();
    }
}
