//! The client: authentication, the request loop with classified retries, and the
//! typed raw escape hatch.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore};
use tracing::{debug, warn};

use crate::error::is_lock_timeout_text;
use crate::transport::{
    HttpRequest, HttpResponse, Method, ReqwestTransport, Transport, TransportError,
};
use crate::wire::{self, Params};
use crate::{Error, Secret, TlsTrust};

/// Fresh logins one request may make after its ticket is refused (a 401 is answered
/// before anything is done, so repeating is safe).
const MAX_RELOGINS: u32 = 3;

/// PVE tickets live 2 hours; renew well before.
pub const TICKET_RENEW_AFTER: Duration = Duration::from_secs(100 * 60);

/// How to log in.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Credentials {
    /// An API token: `user@realm!tokenid` and its secret. No CSRF token needed.
    Token {
        /// `user@realm!tokenid`.
        id: String,
        /// The token secret (a UUID).
        secret: Secret,
    },
    /// A user and password: the client logs in for a ticket, sends the CSRF token on
    /// writes and renews the ticket before its 2 h expiry.
    Password {
        /// `user@realm`.
        user: String,
        /// The password.
        password: Secret,
    },
}

/// Bounds for retrying requests that failed without being processed.
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// Delay before the second attempt; doubles each time.
    pub base_delay: Duration,
    /// Upper bound of one delay.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 6,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(5),
        }
    }
}

/// How task status is polled.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskPoll {
    /// The shortest poll interval.
    pub min_interval: Duration,
    /// The longest poll interval.
    pub max_interval: Duration,
    /// Interval as a share of the time already waited (0.05: at most 5 % late).
    pub fraction: f64,
    /// How long a fresh task may answer `no such task` before that is an error.
    pub unknown_grace: Duration,
    /// Lines of the task log attached to a failure.
    pub log_tail: usize,
}

impl Default for TaskPoll {
    fn default() -> Self {
        Self {
            min_interval: Duration::from_millis(20),
            max_interval: Duration::from_secs(2),
            fraction: 0.05,
            unknown_grace: Duration::from_secs(10),
            log_tail: 20,
        }
    }
}

/// Builds a [`Client`].
///
/// ```no_run
/// use hakube_proxmox_api::{ClientBuilder, Secret, TlsTrust};
/// # async fn f() -> Result<(), hakube_proxmox_api::Error> {
/// let fp = "AA:".repeat(31) + "AA";
/// let client = ClientBuilder::new("https://pve1.example:8006")
///     .token("hakube@pve!ci", Secret::new("0000-..."))
///     .trust(TlsTrust::Fingerprint(fp.parse()?))
///     .build()?;
/// println!("{}", client.version().await?.version);
/// # Ok(()) }
/// ```
#[derive(Clone)]
#[must_use]
pub struct ClientBuilder {
    url: String,
    credentials: Option<Credentials>,
    trust: TlsTrust,
    timeout: Duration,
    retry: RetryPolicy,
    poll: TaskPoll,
    node_concurrency: usize,
    transport: Option<Arc<dyn Transport>>,
    renew_after: Duration,
}

impl core::fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("url", &self.url)
            .field("credentials", &self.credentials)
            .field("trust", &self.trust)
            .finish_non_exhaustive()
    }
}

/// The default number of concurrent writes per node: pvedaemon has 3 workers.
pub const DEFAULT_NODE_CONCURRENCY: usize = 3;

impl ClientBuilder {
    /// A builder for the API at `url` (`https://host:8006`, with or without `/api2/json`).
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            credentials: None,
            trust: TlsTrust::default(),
            timeout: Duration::from_secs(60),
            retry: RetryPolicy::default(),
            poll: TaskPoll::default(),
            node_concurrency: DEFAULT_NODE_CONCURRENCY,
            transport: None,
            renew_after: TICKET_RENEW_AFTER,
        }
    }

    /// Renew the ticket once it is this old (default [`TICKET_RENEW_AFTER`]; PVE tickets
    /// live 2 h).
    pub fn ticket_renew_after(mut self, d: Duration) -> Self {
        self.renew_after = d;
        self
    }

    /// Log in with an API token (`user@realm!tokenid`).
    pub fn token(mut self, id: impl Into<String>, secret: Secret) -> Self {
        self.credentials = Some(Credentials::Token {
            id: id.into(),
            secret,
        });
        self
    }

    /// Log in with user and password (ticket auth).
    pub fn password(mut self, user: impl Into<String>, password: Secret) -> Self {
        self.credentials = Some(Credentials::Password {
            user: user.into(),
            password,
        });
        self
    }

    /// Set the credentials.
    pub fn credentials(mut self, c: Credentials) -> Self {
        self.credentials = Some(c);
        self
    }

    /// Which certificates to trust (default: the system roots).
    pub fn trust(mut self, trust: TlsTrust) -> Self {
        self.trust = trust;
        self
    }

    /// Timeout of one HTTP request (default 60 s).
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }

    /// Retry bounds.
    pub fn retry_policy(mut self, r: RetryPolicy) -> Self {
        self.retry = r;
        self
    }

    /// Task polling.
    pub fn task_poll(mut self, p: TaskPoll) -> Self {
        self.poll = p;
        self
    }

    /// Concurrent writes per node (default [`DEFAULT_NODE_CONCURRENCY`]).
    pub fn node_concurrency(mut self, n: usize) -> Self {
        self.node_concurrency = n;
        self
    }

    /// Use another transport (tests).
    pub fn transport(mut self, t: Arc<dyn Transport>) -> Self {
        self.transport = Some(t);
        self
    }

    /// Checks the settings and builds the client (no request is made).
    pub fn build(self) -> Result<Client, Error> {
        let url = url::Url::parse(self.url.trim()).map_err(|e| Error::Config {
            field: "url",
            reason: format!("{:?}: {e}", self.url),
        })?;
        if !matches!(url.scheme(), "https" | "http") {
            return Err(Error::Config {
                field: "url",
                reason: format!("scheme must be https, got {}", url.scheme()),
            });
        }
        let host = url.host_str().ok_or_else(|| Error::Config {
            field: "url",
            reason: "no host".into(),
        })?;
        let port = url.port_or_known_default().unwrap_or(8006);
        let host_port = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let base = format!("{}://{host_port}/api2/json", url.scheme());
        let credentials = self.credentials.ok_or_else(|| Error::Config {
            field: "credentials",
            reason: "give an API token or a user and password".into(),
        })?;
        match &credentials {
            Credentials::Token { id, secret } => {
                if !id.contains('@') || !id.contains('!') {
                    return Err(Error::Config {
                        field: "token id",
                        reason: format!("{id:?} is not of the form user@realm!tokenid"),
                    });
                }
                if secret.expose().is_empty() {
                    return Err(Error::Config {
                        field: "token secret",
                        reason: "empty".into(),
                    });
                }
            }
            Credentials::Password { user, .. } => {
                if user.is_empty() {
                    return Err(Error::Config {
                        field: "user",
                        reason: "empty".into(),
                    });
                }
            }
        }
        if self.node_concurrency == 0 {
            return Err(Error::Config {
                field: "node concurrency",
                reason: "must be at least 1".into(),
            });
        }
        let transport = match self.transport {
            Some(t) => t,
            None => Arc::new(ReqwestTransport::new(&self.trust, self.timeout)?),
        };
        Ok(Client {
            inner: Arc::new(Inner {
                base,
                host: host_port,
                transport,
                credentials,
                session: Mutex::new(None),
                retry: self.retry,
                poll: self.poll,
                node_concurrency: self.node_concurrency,
                node_limits: StdMutex::new(HashMap::new()),
                seq: AtomicU64::new(0),
                version: Mutex::new(None),
                renew_after: self.renew_after,
            }),
        })
    }
}

#[derive(Clone)]
struct Session {
    ticket: Secret,
    csrf: Secret,
    at: Instant,
}

pub(crate) struct Inner {
    base: String,
    host: String,
    transport: Arc<dyn Transport>,
    credentials: Credentials,
    session: Mutex<Option<Session>>,
    retry: RetryPolicy,
    pub(crate) poll: TaskPoll,
    node_concurrency: usize,
    node_limits: StdMutex<HashMap<String, Arc<Semaphore>>>,
    seq: AtomicU64,
    pub(crate) version: Mutex<Option<crate::api::VersionInfo>>,
    renew_after: Duration,
}

/// An async Proxmox VE API client. Cheap to clone; clones share the session,
/// the per-node limits and the connection pool.
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

impl core::fmt::Debug for Client {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.inner.base)
            .field("credentials", &self.inner.credentials)
            .finish_non_exhaustive()
    }
}

/// The node a path addresses (`/nodes/{node}/...`).
fn path_node(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("/nodes/")?;
    let node = rest.split('/').next()?;
    (!node.is_empty() && rest.contains('/')).then_some(node)
}

fn invalid_ticket(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("invalid pve ticket") || m.contains("no ticket")
}

impl Client {
    /// The API base URL (`https://host:port/api2/json`).
    pub fn base_url(&self) -> &str {
        &self.inner.base
    }

    /// A permit of the node's concurrency limit; hold it while a write or task runs there.
    pub async fn node_permit(&self, node: &str) -> OwnedSemaphorePermit {
        let sem = {
            let mut map = self
                .inner
                .node_limits
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            Arc::clone(
                map.entry(node.to_owned())
                    .or_insert_with(|| Arc::new(Semaphore::new(self.inner.node_concurrency))),
            )
        };
        match sem.acquire_owned().await {
            Ok(p) => p,
            Err(_) => unreachable_closed(),
        }
    }

    /// Logs in now (password credentials); a no-op for tokens. Requests log in on
    /// demand, so calling this is optional; it surfaces bad credentials early.
    pub async fn login(&self) -> Result<(), Error> {
        if let Credentials::Password { .. } = &self.inner.credentials {
            let mut guard = self.inner.session.lock().await;
            *guard = Some(self.fetch_ticket(None).await?);
        }
        Ok(())
    }

    async fn fetch_ticket(&self, current: Option<&Session>) -> Result<Session, Error> {
        let Credentials::Password { user, password } = &self.inner.credentials else {
            unreachable_closed()
        };
        // Renewal posts the current ticket as the password.
        let secret = current.map_or_else(|| password.clone(), |s| s.ticket.clone());
        let form = format!(
            "{}&password={}",
            Params::new().set("username", user.as_str()).encode(),
            percent_encoding::utf8_percent_encode(
                secret.expose(),
                percent_encoding::NON_ALPHANUMERIC
            )
        );
        let req = HttpRequest {
            method: Method::Post,
            url: format!("{}/access/ticket", self.inner.base),
            headers: Vec::new(),
            form: Some(form),
        };
        let path = "/access/ticket";
        let mut attempt = 0;
        let resp = loop {
            attempt += 1;
            match self.inner.transport.send(req.clone()).await {
                Ok(r) => break r,
                Err(e) => {
                    let err = self.transport_error(Method::Post, path, e);
                    // A login is safe to repeat: it creates nothing.
                    if attempt < self.inner.retry.max_attempts
                        && matches!(err, Error::Connect { .. } | Error::Transport { .. })
                    {
                        self.backoff(attempt).await;
                        continue;
                    }
                    return Err(err);
                }
            }
        };
        if !(200..300).contains(&resp.status) {
            let body = wire::parse_error(&resp.reason, &resp.body);
            if current.is_some() {
                // Renewal refused (expired meanwhile): log in afresh.
                return Box::pin(self.fetch_ticket(None)).await;
            }
            return Err(Error::Auth {
                user: user.clone(),
                message: body.message,
                status: Some(resp.status),
            });
        }
        #[derive(serde::Deserialize)]
        struct Ticket {
            ticket: String,
            #[serde(rename = "CSRFPreventionToken")]
            csrf: String,
            #[serde(rename = "NeedTFA", default)]
            need_tfa: Option<Value>,
        }
        let data = wire::unwrap_envelope(&resp.body).map_err(|source| Error::Decode {
            method: "POST",
            path: path.into(),
            source,
        })?;
        let t: Ticket = wire::decode(data).map_err(|source| Error::Decode {
            method: "POST",
            path: path.into(),
            source,
        })?;
        if t.need_tfa
            .is_some_and(|v| wire::de::bool_value(&v).unwrap_or(true))
        {
            return Err(Error::Auth {
                user: user.clone(),
                message: "the account needs a second factor; use an API token".into(),
                status: None,
            });
        }
        debug!(user = %user, renewed = current.is_some(), "logged in");
        Ok(Session {
            ticket: Secret::new(t.ticket),
            csrf: Secret::new(t.csrf),
            at: Instant::now(),
        })
    }

    async fn auth_headers(
        &self,
        method: Method,
        force_new: bool,
    ) -> Result<Vec<(&'static str, Secret)>, Error> {
        match &self.inner.credentials {
            Credentials::Token { id, secret } => Ok(vec![(
                "Authorization",
                Secret::new(format!("PVEAPIToken={id}={}", secret.expose())),
            )]),
            Credentials::Password { .. } => {
                let mut guard = self.inner.session.lock().await;
                let session = match guard.as_ref() {
                    Some(_) if force_new => self.fetch_ticket(None).await?,
                    Some(s) if s.at.elapsed() >= self.inner.renew_after => {
                        self.fetch_ticket(Some(s)).await?
                    }
                    Some(s) => s.clone(),
                    None => self.fetch_ticket(None).await?,
                };
                *guard = Some(session.clone());
                drop(guard);
                let mut h = vec![(
                    "Cookie",
                    Secret::new(format!("PVEAuthCookie={}", session.ticket.expose())),
                )];
                if method != Method::Get {
                    h.push(("CSRFPreventionToken", session.csrf));
                }
                Ok(h)
            }
        }
    }

    fn transport_error(&self, method: Method, path: &str, e: TransportError) -> Error {
        match e {
            TransportError::NotSent(source) => Error::Connect {
                host: self.inner.host.clone(),
                source,
            },
            TransportError::Tls(reason) => Error::Tls {
                host: self.inner.host.clone(),
                reason,
            },
            TransportError::MaybeSent(source) => Error::Transport {
                method: method.as_str(),
                path: path.to_owned(),
                source,
            },
        }
    }

    async fn backoff(&self, attempt: u32) {
        let r = &self.inner.retry;
        let exp = r
            .base_delay
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
        let capped = exp.min(r.max_delay);
        // Jitter from 50 % to 100 %, without a random number generator.
        let n = self.inner.seq.fetch_add(1, Ordering::Relaxed);
        let nanos =
            u64::from(Instant::now().elapsed().subsec_nanos()) ^ n.wrapping_mul(0x9E37_79B9);
        let share = 0.5 + (nanos % 1000) as f64 / 2000.0;
        tokio::time::sleep(capped.mul_f64(share)).await;
    }

    /// Sends a request and returns the envelope's `data` (`Value::Null` for `null`).
    ///
    /// Retries, bounded by the [`RetryPolicy`]: connection failures that never reached
    /// the server; lock timeouts (the server did nothing); for GET also 5xx/595/596 and
    /// broken answers. A write that may have been processed is returned as an error
    /// ([`crate::Retry::AfterObserve`]), never repeated. An expired ticket is renewed
    /// once and the request repeated (a 401 is answered before anything is done).
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        params: &Params,
    ) -> Result<Value, Error> {
        let _permit = match (method, path_node(path)) {
            (Method::Get, _) | (_, None) => None,
            (_, Some(node)) => Some(self.node_permit(node).await),
        };
        let url = if method.params_in_query() && !params.is_empty() {
            format!("{}{path}?{}", self.inner.base, params.encode())
        } else {
            format!("{}{path}", self.inner.base)
        };
        let form = (!method.params_in_query()).then(|| params.encode());
        let mut attempt = 0u32;
        // Logins this request made after its ticket was refused, and retries with a
        // ticket another request had already renewed.
        let mut relogins = 0u32;
        let mut refreshes = 0u32;
        loop {
            attempt += 1;
            let headers = self.auth_headers(method, false).await?;
            let used_cookie = headers
                .iter()
                .find(|(k, _)| *k == "Cookie")
                .map(|(_, v)| v.expose().to_owned());
            let req = HttpRequest {
                method,
                url: url.clone(),
                headers,
                form: form.clone(),
            };
            let started = Instant::now();
            let result = self.inner.transport.send(req).await;
            let err = match result {
                Ok(HttpResponse {
                    status,
                    reason,
                    body,
                }) => {
                    debug!(
                        method = method.as_str(),
                        path,
                        status,
                        ms = started.elapsed().as_millis() as u64,
                        "pve request"
                    );
                    if (200..300).contains(&status) {
                        return wire::unwrap_envelope(&body).map_err(|source| Error::Decode {
                            method: method.as_str(),
                            path: path.to_owned(),
                            source,
                        });
                    }
                    let parsed = wire::parse_error(&reason, &body);
                    if status == 401
                        && relogins < MAX_RELOGINS
                        && refreshes < MAX_RELOGINS * 4
                        && matches!(self.inner.credentials, Credentials::Password { .. })
                        && invalid_ticket(&parsed.message)
                    {
                        let mut guard = self.inner.session.lock().await;
                        let current = guard
                            .as_ref()
                            .map(|s| format!("PVEAuthCookie={}", s.ticket.expose()));
                        if current.is_some() && current != used_cookie {
                            // Another request logged in again meanwhile: use its ticket.
                            refreshes += 1;
                        } else {
                            relogins += 1;
                            warn!(path, "ticket refused; logging in again");
                            *guard = Some(self.fetch_ticket(None).await?);
                        }
                        drop(guard);
                        attempt -= 1;
                        continue;
                    }
                    if status == 401
                        && let Credentials::Token { id, .. } = &self.inner.credentials
                    {
                        // A refused token: say which token and which server, not the path.
                        Error::Auth {
                            user: id.clone(),
                            message: format!(
                                "{} (API token refused by {})",
                                parsed.message, self.inner.host
                            ),
                            status: Some(status),
                        }
                    } else {
                        Error::Api {
                            method: method.as_str(),
                            path: path.to_owned(),
                            status,
                            reason: reason.trim().to_owned(),
                            message: parsed.message,
                            errors: parsed.errors,
                        }
                    }
                }
                Err(e) => self.transport_error(method, path, e),
            };
            let retry = match &err {
                Error::Connect { .. } => true,
                Error::Transport { .. } => method == Method::Get,
                Error::Api {
                    status, message, ..
                } => {
                    is_lock_timeout_text(message)
                        || (method == Method::Get
                            && matches!(status, 500 | 502 | 503 | 504 | 595 | 596)
                            && !err.is_not_found())
                }
                _ => false,
            };
            if retry && attempt < self.inner.retry.max_attempts {
                warn!(method = method.as_str(), path, attempt, error = %err, "retrying");
                self.backoff(attempt).await;
                continue;
            }
            return Err(err);
        }
    }

    /// Typed GET: parameters in the query, `data` decoded into `T`.
    pub async fn get<T: DeserializeOwned>(&self, path: &str, params: &Params) -> Result<T, Error> {
        self.typed(Method::Get, path, params).await
    }

    /// Typed POST: form body, `data` decoded into `T` (`()` for `null`).
    pub async fn post<T: DeserializeOwned>(&self, path: &str, params: &Params) -> Result<T, Error> {
        self.typed(Method::Post, path, params).await
    }

    /// Typed PUT: form body, `data` decoded into `T`.
    pub async fn put<T: DeserializeOwned>(&self, path: &str, params: &Params) -> Result<T, Error> {
        self.typed(Method::Put, path, params).await
    }

    /// Typed DELETE: parameters in the query, `data` decoded into `T`.
    pub async fn delete<T: DeserializeOwned>(
        &self,
        path: &str,
        params: &Params,
    ) -> Result<T, Error> {
        self.typed(Method::Delete, path, params).await
    }

    async fn typed<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        params: &Params,
    ) -> Result<T, Error> {
        let data = self.request(method, path, params).await?;
        wire::decode(data).map_err(|source| Error::Decode {
            method: method.as_str(),
            path: path.to_owned(),
            source,
        })
    }
}

impl Params {
    /// Parameters from a flat serde struct or map: booleans become `1`/`0`,
    /// `None` fields are left out, nested values are an error.
    ///
    /// ```
    /// #[derive(serde::Serialize)]
    /// struct Start { timeout: Option<u32>, skiplock: bool }
    /// let p = hakube_proxmox_api::Params::from_serialize(&Start { timeout: None, skiplock: true })?;
    /// assert_eq!(p.encode(), "skiplock=1");
    /// # Ok::<(), hakube_proxmox_api::Error>(())
    /// ```
    pub fn from_serialize<T: Serialize>(value: &T) -> Result<Self, Error> {
        let v = serde_json::to_value(value).map_err(|e| Error::Invalid {
            field: "params".into(),
            reason: e.to_string(),
        })?;
        let Value::Object(map) = v else {
            return Err(Error::Invalid {
                field: "params".into(),
                reason: "expected a struct or map".into(),
            });
        };
        let mut p = Self::new();
        for (k, v) in map {
            match v {
                Value::Null => {}
                Value::Bool(b) => p.insert(&k, b),
                Value::Number(n) => p.insert(&k, n.to_string()),
                Value::String(s) => p.insert(&k, s),
                Value::Array(_) | Value::Object(_) => {
                    return Err(Error::Invalid {
                        field: k,
                        reason: "nested values cannot be form-encoded".into(),
                    });
                }
            }
        }
        Ok(p)
    }
}

fn unreachable_closed() -> ! {
    // The semaphores are never closed, and fetch_ticket is only called for password credentials.
    panic!("internal invariant broken in hakube-proxmox-api client")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;
    use std::sync::Mutex as M;

    /// A transport answering from a script and recording requests.
    struct Script {
        answers: M<VecDeque<Result<HttpResponse, TransportError>>>,
        seen: M<Vec<HttpRequest>>,
    }

    impl Transport for Script {
        fn send(
            &self,
            req: HttpRequest,
        ) -> futures::future::BoxFuture<'_, Result<HttpResponse, TransportError>> {
            self.seen.lock().unwrap().push(req);
            let a = self
                .answers
                .lock()
                .unwrap()
                .pop_front()
                .expect("script exhausted");
            Box::pin(async move { a })
        }
    }

    fn ok(body: &str) -> Result<HttpResponse, TransportError> {
        Ok(HttpResponse {
            status: 200,
            reason: "OK".into(),
            body: body.as_bytes().to_vec(),
        })
    }

    fn err(status: u16, reason: &str, body: &str) -> Result<HttpResponse, TransportError> {
        Ok(HttpResponse {
            status,
            reason: reason.into(),
            body: body.as_bytes().to_vec(),
        })
    }

    fn client(
        creds: Credentials,
        answers: Vec<Result<HttpResponse, TransportError>>,
    ) -> (Client, Arc<Script>) {
        let script = Arc::new(Script {
            answers: M::new(answers.into()),
            seen: M::new(Vec::new()),
        });
        let c = ClientBuilder::new("https://pve.test:8006")
            .credentials(creds)
            .retry_policy(RetryPolicy {
                max_attempts: 3,
                base_delay: Duration::from_millis(1),
                max_delay: Duration::from_millis(2),
            })
            .transport(Arc::clone(&script) as Arc<dyn Transport>)
            .build()
            .unwrap();
        (c, script)
    }

    fn token() -> Credentials {
        Credentials::Token {
            id: "hakube@pve!ci".into(),
            secret: Secret::new("s3cret"),
        }
    }

    fn password() -> Credentials {
        Credentials::Password {
            user: "root@pam".into(),
            password: Secret::new("pa ss&word"),
        }
    }

    const TICKET: &str = r#"{"data":{"ticket":"PVE:root@pam:AAA::sig","CSRFPreventionToken":"CSRF1","username":"root@pam","cap":{}}}"#;

    #[tokio::test]
    async fn token_header_and_query_for_delete() {
        let (c, s) = client(
            token(),
            vec![ok(
                r#"{"data":"UPID:pve:00000001:00000002:00000003:qmdestroy:100:root@pam:"}"#,
            )],
        );
        let upid: crate::Upid = c
            .delete("/nodes/pve/qemu/100", &Params::new().set("purge", true))
            .await
            .unwrap();
        assert_eq!(upid.task_type(), "qmdestroy");
        let seen = s.seen.lock().unwrap();
        assert_eq!(
            seen[0].url,
            "https://pve.test:8006/api2/json/nodes/pve/qemu/100?purge=1"
        );
        assert!(seen[0].form.is_none());
        assert_eq!(seen[0].headers[0].0, "Authorization");
        assert_eq!(
            seen[0].headers[0].1.expose(),
            "PVEAPIToken=hakube@pve!ci=s3cret"
        );
        // Secrets never show in Debug.
        assert!(!format!("{:?} {c:?}", seen[0]).contains("s3cret"));
    }

    #[tokio::test]
    async fn ticket_login_csrf_and_relogin_on_expiry() {
        let (c, s) = client(
            password(),
            vec![
                ok(TICKET),
                ok(r#"{"data":null}"#),
                err(
                    401,
                    "permission denied - invalid PVE ticket",
                    r#"{"data":null}"#,
                ),
                ok(TICKET),
                ok(r#"{"data":null}"#),
            ],
        );
        let () = c
            .put(
                "/nodes/pve/qemu/100/config",
                &Params::new().set("onboot", true),
            )
            .await
            .unwrap();
        let () = c
            .put(
                "/nodes/pve/qemu/100/config",
                &Params::new().set("onboot", true),
            )
            .await
            .unwrap();
        let seen = s.seen.lock().unwrap();
        assert_eq!(seen.len(), 5);
        assert!(seen[0].url.ends_with("/access/ticket"));
        assert_eq!(
            seen[0].form.as_deref(),
            Some("username=root%40pam&password=pa%20ss%26word")
        );
        let names: Vec<_> = seen[1].headers.iter().map(|h| h.0).collect();
        assert_eq!(names, ["Cookie", "CSRFPreventionToken"]);
        assert_eq!(seen[1].headers[1].1.expose(), "CSRF1");
        assert_eq!(seen[1].form.as_deref(), Some("onboot=1"));
        assert!(seen[3].url.ends_with("/access/ticket"));
        assert!(!format!("{c:?}").contains("pa ss"));
    }

    #[tokio::test]
    async fn ticket_renewed_before_expiry_with_the_ticket_as_password() {
        let script = Arc::new(Script {
            answers: M::new(
                vec![
                    ok(TICKET),
                    ok(r#"{"data":{"ticket":"PVE:root@pam:BBB::sig2","CSRFPreventionToken":"CSRF2"}}"#),
                    ok(r#"{"data":null}"#),
                ]
                .into(),
            ),
            seen: M::new(Vec::new()),
        });
        let c = ClientBuilder::new("https://pve.test:8006")
            .credentials(password())
            .ticket_renew_after(Duration::ZERO)
            .transport(Arc::clone(&script) as Arc<dyn Transport>)
            .build()
            .unwrap();
        c.login().await.unwrap();
        let () = c
            .post("/pools", &Params::new().set("poolid", "p"))
            .await
            .unwrap();
        let seen = script.seen.lock().unwrap();
        assert!(seen[1].url.ends_with("/access/ticket"));
        assert_eq!(
            seen[1].form.as_deref(),
            Some("username=root%40pam&password=PVE%3Aroot%40pam%3AAAA%3A%3Asig")
        );
        assert_eq!(
            seen[2].headers[0].1.expose(),
            "PVEAuthCookie=PVE:root@pam:BBB::sig2"
        );
        assert_eq!(seen[2].headers[1].1.expose(), "CSRF2");
    }

    #[tokio::test]
    async fn bad_password_is_auth_error() {
        let (c, _) = client(
            password(),
            vec![err(401, "authentication failure", r#"{"data":null}"#)],
        );
        let e = c
            .get::<Value>("/version", &Params::new())
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Auth { .. }), "{e}");
        assert!(!e.to_string().contains("pa ss"));
    }

    #[tokio::test]
    async fn refused_token_names_the_token_and_server_not_the_secret() {
        let (c, s) = client(
            token(),
            vec![err(401, "authentication failure", r#"{"data":null}"#)],
        );
        let e = c
            .get::<Value>("/version", &Params::new())
            .await
            .unwrap_err();
        let Error::Auth { user, .. } = &e else {
            panic!("{e}");
        };
        let Credentials::Token { id, secret } = token() else {
            unreachable!()
        };
        assert_eq!(*user, id);
        let text = e.to_string();
        assert!(text.contains("API token refused by"), "{text}");
        assert!(!text.contains(secret.expose()), "{text}");
        // Not retried: a refused token stays refused.
        assert_eq!(s.seen.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn lock_timeout_retried_even_for_writes() {
        let (c, s) = client(
            token(),
            vec![
                err(
                    500,
                    "can't lock file '/var/lock/qemu-server/lock-9000.conf' - got timeout",
                    r#"{"data":null}"#,
                ),
                ok(r#"{"data":"UPID:pve:00000001:00000002:00000003:qmclone:9000:root@pam:"}"#),
            ],
        );
        let _: crate::Upid = c
            .post(
                "/nodes/pve/qemu/9000/clone",
                &Params::new().set("newid", 101u32),
            )
            .await
            .unwrap();
        assert_eq!(s.seen.lock().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn ambiguous_write_not_repeated_but_get_is() {
        let (c, s) = client(
            token(),
            vec![
                err(596, "Broken pipe", ""),
                err(502, "Bad Gateway", "<html></html>"),
                ok(r#"{"data":{"version":"9.1.3","release":"9.1","repoid":"x"}}"#),
                err(
                    500,
                    "something odd",
                    r#"{"data":null,"message":"something odd\n"}"#,
                ),
                Err(TransportError::MaybeSent("reset".into())),
            ],
        );
        let v: Value = c.get("/version", &Params::new()).await.unwrap();
        assert_eq!(v["version"], "9.1.3");
        let e = c
            .post::<Value>("/nodes/pve/qemu/100/status/start", &Params::new())
            .await
            .unwrap_err();
        assert_eq!(e.retry(), crate::Retry::AfterObserve);
        let e = c
            .post::<Value>("/nodes/pve/qemu/100/status/start", &Params::new())
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Transport { .. }));
        assert_eq!(e.retry(), crate::Retry::AfterObserve);
        assert_eq!(s.seen.lock().unwrap().len(), 5);
    }

    #[tokio::test]
    async fn connect_errors_retried_then_reported() {
        let (c, s) = client(
            token(),
            vec![
                Err(TransportError::NotSent("refused".into())),
                Err(TransportError::NotSent("refused".into())),
                Err(TransportError::NotSent("refused".into())),
            ],
        );
        let e = c
            .post::<Value>("/pools", &Params::new().set("poolid", "k8s"))
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Connect { .. }), "{e}");
        assert_eq!(s.seen.lock().unwrap().len(), 3);
    }

    #[tokio::test]
    async fn param_errors_kept() {
        let (c, _) = client(
            token(),
            vec![err(
                400,
                "Parameter verification failed.",
                r#"{"data":null,"errors":{"sshkeys":"invalid urlencoded string: ssh-rsa AAAA+x\n"}}"#,
            )],
        );
        let e = c
            .put::<()>("/nodes/pve/qemu/100/config", &Params::new())
            .await
            .unwrap_err();
        let Error::Api { status, errors, .. } = &e else {
            panic!("{e}")
        };
        assert_eq!(*status, 400);
        assert_eq!(
            errors["sshkeys"],
            "invalid urlencoded string: ssh-rsa AAAA+x"
        );
        assert_eq!(e.retry(), crate::Retry::Never);
    }

    #[test]
    fn builder_validation() {
        let e = ClientBuilder::new("ftp://x")
            .token("a@b!c", Secret::new("s"))
            .build()
            .unwrap_err();
        assert!(e.to_string().contains("url"), "{e}");
        let e = ClientBuilder::new("https://x:8006").build().unwrap_err();
        assert!(e.to_string().contains("credentials"), "{e}");
        let e = ClientBuilder::new("https://x:8006")
            .token("root@pam", Secret::new("s"))
            .build()
            .unwrap_err();
        assert!(e.to_string().contains("user@realm!tokenid"), "{e}");
        assert_eq!(path_node("/nodes/pve1/qemu"), Some("pve1"));
        assert_eq!(path_node("/nodes"), None);
        assert_eq!(path_node("/cluster/resources"), None);
    }
}
