//! The HTTP seam: a [`Transport`] sends one request and returns the raw answer.
//! [`ReqwestTransport`] is the real one (rustls, no OpenSSL); tests can plug in others.

use core::fmt;
#[cfg(feature = "client")]
use std::time::Duration;

use core::future::Future;
use core::pin::Pin;

#[cfg(feature = "client")]
use crate::Error;
use crate::Secret;
use crate::error::BoxError;
#[cfg(feature = "client")]
use crate::tls::{TlsTrust, client_config};

/// A boxed, sendable future (what [`Transport::send`] returns).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An HTTP method used by the PVE API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Method {
    /// GET: reads; parameters in the query.
    Get,
    /// POST: creates and actions; form body.
    Post,
    /// PUT: updates; form body.
    Put,
    /// DELETE: removal; parameters in the query.
    Delete,
}

impl Method {
    /// The method's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Delete => "DELETE",
        }
    }

    /// True for methods whose parameters travel in the query string.
    pub fn params_in_query(self) -> bool {
        matches!(self, Self::Get | Self::Delete)
    }
}

/// One request, ready to send.
#[derive(Clone)]
pub struct HttpRequest {
    /// The method.
    pub method: Method,
    /// The full URL, query included.
    pub url: String,
    /// Extra headers; values are secrets (cookies, tokens) and never printed.
    pub headers: Vec<(&'static str, Secret)>,
    /// The body (POST and PUT): form-encoded, JSON or multipart.
    pub body: Option<Body>,
}

/// A request body and its content type.
#[derive(Clone, PartialEq, Eq)]
pub struct Body {
    /// `Content-Type` (`application/x-www-form-urlencoded`, `application/json`,
    /// `multipart/form-data; boundary=...`).
    pub content_type: String,
    /// The bytes.
    pub bytes: Vec<u8>,
}

impl Body {
    /// A form-encoded body.
    pub fn form(text: String) -> Self {
        Self {
            content_type: "application/x-www-form-urlencoded".into(),
            bytes: text.into_bytes(),
        }
    }

    /// A JSON body.
    pub fn json(value: &serde_json::Value) -> Self {
        Self {
            content_type: "application/json".into(),
            bytes: value.to_string().into_bytes(),
        }
    }
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Bodies carry passwords (login, cipassword): only their shape is printed.
        f.debug_struct("Body")
            .field("content_type", &self.content_type)
            .field("len", &self.bytes.len())
            .finish()
    }
}

impl HttpRequest {
    /// The body as text when it is a form (tests and logging of non-secret calls).
    pub fn form_text(&self) -> Option<&str> {
        self.body
            .as_ref()
            .filter(|b| b.content_type == "application/x-www-form-urlencoded")
            .and_then(|b| std::str::from_utf8(&b.bytes).ok())
    }
}

impl fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpRequest")
            .field("method", &self.method)
            .field("url", &self.url)
            .field(
                "headers",
                &self.headers.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
            )
            .field("body", &self.body)
            .finish()
    }
}

/// A raw answer.
#[derive(Clone, Debug)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// The reason phrase as sent (PVE puts its message there).
    pub reason: String,
    /// The body.
    pub body: Vec<u8>,
}

/// Why a request got no answer.
#[derive(Debug)]
#[non_exhaustive]
pub enum TransportError {
    /// The request never left (connect refused, DNS): safe to retry.
    NotSent(BoxError),
    /// The server's certificate was refused: not retryable.
    Tls(String),
    /// The request may have reached the server (timeout, reset mid-way).
    MaybeSent(BoxError),
}

/// Sends HTTP requests. Implementations must be cheap to share between tasks.
pub trait Transport: Send + Sync + 'static {
    /// Sends one request.
    fn send(&self, req: HttpRequest) -> BoxFuture<'_, Result<HttpResponse, TransportError>>;
}

/// The real transport: reqwest over rustls with the chosen [`TlsTrust`] (the `client` feature).
#[cfg(feature = "client")]
#[derive(Clone, Debug)]
pub struct ReqwestTransport {
    client: reqwest::Client,
}

#[cfg(feature = "client")]
impl ReqwestTransport {
    /// A transport trusting `trust`, with a per-request `timeout`.
    pub fn new(trust: &TlsTrust, timeout: Duration) -> Result<Self, Error> {
        let tls = client_config(trust)?;
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .http1_only()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .pool_idle_timeout(Duration::from_secs(30))
            .user_agent(concat!("hakube-proxmox-api/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Config {
                field: "http client",
                reason: e.to_string(),
            })?;
        Ok(Self { client })
    }
}

#[cfg(feature = "client")]
fn tls_reason(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(r) = err.downcast_ref::<rustls::Error>() {
            // Our own verifier's refusals (a pin mismatch) come as `General`, which rustls
            // prints as "unexpected error: ..."; they are expected, so say just the reason.
            return Some(match r {
                rustls::Error::General(reason) => reason.clone(),
                other => other.to_string(),
            });
        }
        // io::Error's source() skips the wrapped error itself: look inside.
        cur = match err
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => err.source(),
        };
    }
    None
}

#[cfg(feature = "client")]
impl Transport for ReqwestTransport {
    fn send(&self, req: HttpRequest) -> BoxFuture<'_, Result<HttpResponse, TransportError>> {
        Box::pin(async move {
            let method = match req.method {
                Method::Get => reqwest::Method::GET,
                Method::Post => reqwest::Method::POST,
                Method::Put => reqwest::Method::PUT,
                Method::Delete => reqwest::Method::DELETE,
            };
            let mut rb = self.client.request(method, &req.url);
            for (k, v) in &req.headers {
                rb = rb.header(*k, v.expose());
            }
            if let Some(body) = req.body {
                rb = rb
                    .header("Content-Type", body.content_type)
                    .body(body.bytes);
            }
            let classify = |e: reqwest::Error| {
                if let Some(r) = tls_reason(&e) {
                    TransportError::Tls(r)
                } else if e.is_connect() {
                    TransportError::NotSent(Box::new(e))
                } else {
                    TransportError::MaybeSent(Box::new(e))
                }
            };
            let resp = rb.send().await.map_err(classify)?;
            let status = resp.status();
            let reason = resp
                .extensions()
                .get::<hyper::ext::ReasonPhrase>()
                .map(|r| String::from_utf8_lossy(r.as_bytes()).into_owned())
                .or_else(|| status.canonical_reason().map(str::to_owned))
                .unwrap_or_default();
            let body = resp.bytes().await.map_err(classify)?;
            Ok(HttpResponse {
                status: status.as_u16(),
                reason,
                body: body.to_vec(),
            })
        })
    }
}
