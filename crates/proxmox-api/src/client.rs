//! The client: authentication, the request loop with classified retries, and the
//! typed raw escape hatch.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore};
use tracing::{debug, warn};

use crate::error::is_lock_timeout_text;
use crate::transport::{
    Body, HttpRequest, HttpResponse, Method, ReqwestTransport, Transport, TransportError,
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
    /// A user and password with a TOTP second factor: PVE answers the password with a
    /// half-logged-in ticket (`NeedTFA`), and the client completes the login with a code
    /// from `totp` (`tfa-challenge` + `password=totp:CODE`). Renewal needs no code; a fresh
    /// login (after the ticket expired) asks `totp` again.
    PasswordTotp {
        /// `user@realm`.
        user: String,
        /// The password.
        password: Secret,
        /// Gives the current 6-digit code.
        totp: TotpSource,
    },
}

impl Credentials {
    fn user_and_password(&self) -> Option<(&String, &Secret)> {
        match self {
            Self::Token { .. } => None,
            Self::Password { user, password } | Self::PasswordTotp { user, password, .. } => {
                Some((user, password))
            }
        }
    }
}

/// Where the current TOTP code comes from: an authenticator, a prompt, a test.
#[derive(Clone)]
pub struct TotpSource(Arc<dyn Fn() -> Secret + Send + Sync>);

impl TotpSource {
    /// Codes from `f`, called once per fresh login.
    pub fn new(f: impl Fn() -> Secret + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }

    fn code(&self) -> Secret {
        (self.0)()
    }
}

impl core::fmt::Debug for TotpSource {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("TotpSource(***)")
    }
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
    /// The first and shortest poll interval.
    pub min_interval: Duration,
    /// The longest poll interval.
    pub max_interval: Duration,
    /// Interval as a share of the time already waited (0.05: at most 5 % late).
    pub fraction: f64,
    /// How long a fresh task may answer `no such task` before that is an error.
    pub unknown_grace: Duration,
    /// Lines of the task log attached to a failure.
    pub log_tail: usize,
    /// The least time between two status polls of one node, over all the tasks waited on
    /// there: 100 concurrent waits on a node cost at most `1 / node_gap` requests a second.
    pub node_gap: Duration,
    /// Share one `GET /nodes/{node}/tasks?source=active` among the waits on a node: a task
    /// listed as active needs no status request of its own; one that is not is then asked
    /// for its status (which also covers a task not listed yet).
    pub shared_active_list: bool,
}

impl Default for TaskPoll {
    fn default() -> Self {
        Self {
            min_interval: Duration::from_millis(100),
            max_interval: Duration::from_secs(2),
            fraction: 0.05,
            unknown_grace: Duration::from_secs(10),
            log_tail: 20,
            node_gap: Duration::from_millis(25),
            shared_active_list: true,
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

    /// Log in with user, password and a TOTP second factor.
    pub fn password_totp(
        mut self,
        user: impl Into<String>,
        password: Secret,
        totp: TotpSource,
    ) -> Self {
        self.credentials = Some(Credentials::PasswordTotp {
            user: user.into(),
            password,
            totp,
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
        let (base, host_port) = api_base(&self.url)?;
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
            Credentials::Password { user, .. } | Credentials::PasswordTotp { user, .. } => {
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
                poll_slots: StdMutex::new(HashMap::new()),
                active_lists: StdMutex::new(HashMap::new()),
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
    pub(crate) poll_slots: StdMutex<HashMap<String, tokio::time::Instant>>,
    pub(crate) active_lists: StdMutex<HashMap<String, Arc<crate::tasks::ActiveList>>>,
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

/// The API base (`https://host:port[/prefix]/api2/json`) and `host:port` of a URL as users
/// write it: `https://pve1:8006`, `https://[fd00::1]:8006`, `https://pve1` (PVE's port 8006,
/// not 443, unless the URL names a port), `https://proxy.example/pve/` (a path prefix kept).
pub(crate) fn api_base(raw: &str) -> Result<(String, String), Error> {
    let bad = |reason: String| Error::Config {
        field: "url",
        reason,
    };
    let raw = raw.trim();
    let url = url::Url::parse(raw).map_err(|e| bad(format!("{raw:?}: {e}")))?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err(bad(format!("scheme must be https, got {}", url.scheme())));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(
            "credentials in the URL would end up in logs; use the builder's credentials".into(),
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad(format!("{raw:?}: no query or fragment allowed")));
    }
    let host = match url.host() {
        Some(url::Host::Domain(d)) => d.to_owned(),
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        Some(url::Host::Ipv6(ip)) => format!("[{ip}]"),
        None => return Err(bad(format!("{raw:?}: no host"))),
    };
    // `Url` forgets a port equal to the scheme's default, so look at what was written.
    let after_scheme = raw.split_once("://").map_or(raw, |(_, r)| r);
    let authority = after_scheme
        .split(['/', '?', '#'])
        .next()
        .unwrap_or_default();
    let host_part = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let port_written = match host_part.rsplit_once(']') {
        Some((_, rest)) => rest.starts_with(':'),
        None => host_part.contains(':'),
    };
    let port = if port_written {
        url.port_or_known_default().unwrap_or(8006)
    } else {
        8006
    };
    let host_port = format!("{host}:{port}");
    let path = url.path().trim_end_matches('/');
    let prefix = path.strip_suffix("/api2/json").unwrap_or(path);
    Ok((
        format!("{}://{host_port}{prefix}/api2/json", url.scheme()),
        host_port,
    ))
}

tokio::task_local! {
    /// Nodes whose write permit the current task holds (see [`Client::with_node_permit`]).
    static HELD_NODES: Vec<String>;
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

    /// Runs `f` holding one of `node`'s write permits (the per-node concurrency limit),
    /// e.g. across a write and the wait for its task so that at most
    /// [`ClientBuilder::node_concurrency`] such sequences run on a node at once.
    ///
    /// Writes to `node` made inside `f` use the held permit instead of taking another,
    /// so this cannot deadlock however many permits are held. Spawned tasks do not
    /// inherit the permit.
    pub async fn with_node_permit<F: core::future::Future>(&self, node: &str, f: F) -> F::Output {
        if holds_node(node) {
            return f.await;
        }
        let _permit = self.node_permit(node).await;
        let mut held = HELD_NODES.try_with(Clone::clone).unwrap_or_default();
        held.push(node.to_owned());
        HELD_NODES.scope(held, f).await
    }

    async fn node_permit(&self, node: &str) -> OwnedSemaphorePermit {
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
        if self.inner.credentials.user_and_password().is_some() {
            let mut guard = self.inner.session.lock().await;
            *guard = Some(self.fetch_ticket(None).await?);
        }
        Ok(())
    }

    async fn fetch_ticket(&self, current: Option<&Session>) -> Result<Session, Error> {
        let Some((user, password)) = self.inner.credentials.user_and_password() else {
            unreachable_closed()
        };
        let totp = match &self.inner.credentials {
            Credentials::PasswordTotp { totp, .. } => Some(totp),
            _ => None,
        };
        // Renewal posts the current ticket as the password.
        let secret = current.map_or_else(|| password.clone(), |s| s.ticket.clone());
        let mut form = Params::new().set("username", user.as_str());
        if totp.is_some() && current.is_none() {
            // The PVE 7+ half-logged-in ticket format (the default since PVE 8).
            form.insert("new-format", true);
        }
        let form = format!("{}&password={}", form.encode(), form_secret(&secret));
        let t = match self.post_ticket(user, form).await {
            Err(Error::Auth { .. }) if current.is_some() => {
                // Renewal refused (expired meanwhile): log in afresh.
                return Box::pin(self.fetch_ticket(None)).await;
            }
            other => other?,
        };
        let need_tfa = t
            .need_tfa
            .as_ref()
            .is_some_and(|v| wire::de::bool_value(v).unwrap_or(true));
        let t = match (need_tfa, totp) {
            (false, _) => t,
            (true, Some(totp)) => {
                let form = format!(
                    "{}&tfa-challenge={}&password={}",
                    Params::new().set("username", user.as_str()).encode(),
                    form_secret(&Secret::new(t.ticket)),
                    form_secret(&Secret::new(format!("totp:{}", totp.code().expose()))),
                );
                let done = self.post_ticket(user, form).await?;
                if done
                    .need_tfa
                    .as_ref()
                    .is_some_and(|v| wire::de::bool_value(v).unwrap_or(true))
                {
                    return Err(Error::Auth {
                        user: user.clone(),
                        message: "the second factor was not accepted".into(),
                        status: None,
                    });
                }
                done
            }
            (true, None) => {
                return Err(Error::Auth {
                    user: user.clone(),
                    message: "the account needs a second factor: give a TOTP source \
                              (ClientBuilder::password_totp) or use an API token"
                        .into(),
                    status: None,
                });
            }
        };
        debug!(user = %user, renewed = current.is_some(), "logged in");
        Ok(Session {
            ticket: Secret::new(t.ticket),
            csrf: Secret::new(t.csrf),
            at: Instant::now(),
        })
    }

    /// One `POST /access/ticket`. A 401 is a refusal ([`Error::Auth`], never retried: PVE
    /// delays each by ~3 s and may lock the account); anything else that is not 2xx (a
    /// pveproxy 5xx, 595 no route, 596 broken pipe) is an [`Error::Api`], retried within the
    /// [`RetryPolicy`] because a login creates nothing.
    async fn post_ticket(&self, user: &str, form: String) -> Result<TicketAnswer, Error> {
        let path = "/access/ticket";
        let req = HttpRequest {
            method: Method::Post,
            url: format!("{}{path}", self.inner.base),
            headers: Vec::new(),
            body: Some(Body::form(form)),
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let err = match self.inner.transport.send(req.clone()).await {
                Ok(resp) if (200..300).contains(&resp.status) => {
                    let data =
                        wire::unwrap_envelope(&resp.body).map_err(|source| Error::Decode {
                            method: "POST",
                            path: path.into(),
                            source,
                        })?;
                    return wire::decode(data).map_err(|source| Error::Decode {
                        method: "POST",
                        path: path.into(),
                        source,
                    });
                }
                Ok(resp) => {
                    let body = wire::parse_error(&resp.reason, &resp.body);
                    if matches!(resp.status, 401 | 403) {
                        return Err(Error::Auth {
                            user: user.to_owned(),
                            message: body.message,
                            status: Some(resp.status),
                        });
                    }
                    let err = Error::Api {
                        method: "POST",
                        path: path.into(),
                        status: resp.status,
                        reason: resp.reason.trim().to_owned(),
                        message: body.message,
                        errors: body.errors,
                    };
                    if !matches!(resp.status, 500 | 502 | 503 | 504 | 595 | 596) {
                        return Err(err);
                    }
                    err
                }
                Err(e) => self.transport_error(Method::Post, path, e),
            };
            if attempt < self.inner.retry.max_attempts
                && matches!(
                    err,
                    Error::Connect { .. } | Error::Transport { .. } | Error::Api { .. }
                )
            {
                warn!(path, attempt, error = %err, "login failed; retrying");
                self.backoff(attempt).await;
                continue;
            }
            return Err(err);
        }
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
            Credentials::Password { .. } | Credentials::PasswordTotp { .. } => {
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
        self.request_envelope(method, path, params)
            .await
            .map(|e| e.data)
    }

    /// Sends a request with a JSON body (POST and PUT; PVE accepts
    /// `Content-Type: application/json` everywhere it accepts a form). Nested values are
    /// sent as they are, numbers and booleans typed.
    pub async fn request_json(
        &self,
        method: Method,
        path: &str,
        body: &Value,
    ) -> Result<Value, Error> {
        if method.params_in_query() {
            return Err(Error::Invalid {
                field: "body".into(),
                reason: format!("{} takes its parameters in the query", method.as_str()),
            });
        }
        self.send(method, path, None, Some(Body::json(body)))
            .await
            .map(|e| e.data)
    }

    /// Like [`Client::request`], with the whole envelope: `data` and the result attributes
    /// beside it, such as the `total` of a paged list.
    pub async fn request_envelope(
        &self,
        method: Method,
        path: &str,
        params: &Params,
    ) -> Result<wire::Envelope, Error> {
        if method.params_in_query() {
            let query = (!params.is_empty()).then(|| params.encode());
            self.send(method, path, query, None).await
        } else {
            self.send(method, path, None, Some(Body::form(params.encode())))
                .await
        }
    }

    /// Sends one request with a prepared body (a multipart upload).
    pub(crate) async fn send(
        &self,
        method: Method,
        path: &str,
        query: Option<String>,
        body: Option<Body>,
    ) -> Result<wire::Envelope, Error> {
        let _permit = match (method, path_node(path)) {
            (Method::Get, _) | (_, None) => None,
            (_, Some(node)) if holds_node(node) => None,
            (_, Some(node)) => Some(self.node_permit(node).await),
        };
        let url = match query {
            Some(q) => format!("{}{path}?{q}", self.inner.base),
            None => format!("{}{path}", self.inner.base),
        };
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
                body: body.clone(),
            };
            let started = Instant::now();
            let result = self.inner.transport.send(req).await;
            let err = match result {
                Ok(HttpResponse {
                    status,
                    reason,
                    body: answer,
                }) => {
                    debug!(
                        method = method.as_str(),
                        path,
                        status,
                        ms = started.elapsed().as_millis() as u64,
                        "pve request"
                    );
                    if (200..300).contains(&status) {
                        return wire::parse_envelope(&answer).map_err(|source| Error::Decode {
                            method: method.as_str(),
                            path: path.to_owned(),
                            source,
                        });
                    }
                    let parsed = wire::parse_error(&reason, &answer);
                    if status == 401
                        && relogins < MAX_RELOGINS
                        && refreshes < MAX_RELOGINS * 4
                        && self.inner.credentials.user_and_password().is_some()
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
                            && (matches!(status, 502 | 503 | 504 | 595 | 596)
                                || (*status == 500 && transient_500(message))))
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

/// True if this task runs inside [`Client::with_node_permit`] for `node`.
fn holds_node(node: &str) -> bool {
    HELD_NODES
        .try_with(|held| held.iter().any(|n| n == node))
        .unwrap_or(false)
}

/// A secret percent-encoded as a form value.
fn form_secret(s: &Secret) -> String {
    percent_encoding::utf8_percent_encode(s.expose(), percent_encoding::NON_ALPHANUMERIC)
        .to_string()
}

/// What `POST /access/ticket` answers.
#[derive(serde::Deserialize)]
struct TicketAnswer {
    ticket: String,
    #[serde(rename = "CSRFPreventionToken", default)]
    csrf: String,
    #[serde(rename = "NeedTFA", default)]
    need_tfa: Option<Value>,
}

/// A 500 to a GET worth repeating. PVE answers 500 for most errors, and most of those
/// are deterministic ("QEMU guest agent is not running", "VM 100 not running",
/// "Configuration file ... does not exist"): asking again the same moment gets the same
/// answer, so only the ones that say something was busy or unreachable are retried.
fn transient_500(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    [
        "got timeout",
        "timed out",
        "connection refused",
        "connection reset",
        "broken pipe",
        "no quorum",
        "temporarily unavailable",
        "try again",
        "proxy loop",
    ]
    .iter()
    .any(|needle| m.contains(needle))
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
        ) -> crate::transport::BoxFuture<'_, Result<HttpResponse, TransportError>> {
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
        assert!(seen[0].body.is_none());
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
            seen[0].form_text(),
            Some("username=root%40pam&password=pa%20ss%26word")
        );
        let names: Vec<_> = seen[1].headers.iter().map(|h| h.0).collect();
        assert_eq!(names, ["Cookie", "CSRFPreventionToken"]);
        assert_eq!(seen[1].headers[1].1.expose(), "CSRF1");
        assert_eq!(seen[1].form_text(), Some("onboot=1"));
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
            seen[1].form_text(),
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
    fn urls_as_users_write_them() {
        let base = |u: &str| api_base(u).unwrap();
        // IPv6 literal: one pair of brackets.
        assert_eq!(
            base("https://[::1]:8006"),
            ("https://[::1]:8006/api2/json".into(), "[::1]:8006".into())
        );
        assert_eq!(
            base("https://[fd00::1]").0,
            "https://[fd00::1]:8006/api2/json"
        );
        // No port: PVE's 8006, not https' 443; an explicit 443 is kept.
        assert_eq!(
            base("https://pve1.lab").0,
            "https://pve1.lab:8006/api2/json"
        );
        assert_eq!(
            base("https://pve1.lab:443").0,
            "https://pve1.lab:443/api2/json"
        );
        assert_eq!(base("https://[::1]:443/").0, "https://[::1]:443/api2/json");
        // A reverse proxy's path prefix is kept; a given /api2/json is not doubled.
        assert_eq!(
            base("https://proxy.example/pve/").0,
            "https://proxy.example:8006/pve/api2/json"
        );
        assert_eq!(
            base("https://proxy.example:443/pve/api2/json").0,
            "https://proxy.example:443/pve/api2/json"
        );
        assert_eq!(
            base("https://10.0.0.1:8006/api2/json/").0,
            "https://10.0.0.1:8006/api2/json"
        );
        for bad in [
            "https://root:pw@pve1:8006",
            "https://pve1:8006/?x=1",
            "pve1:8006",
            "ftp://pve1",
        ] {
            assert!(api_base(bad).is_err(), "{bad}");
        }
        assert!(
            !api_base("https://root:hunter2@pve1")
                .unwrap_err()
                .to_string()
                .contains("hunter2")
        );
    }

    #[tokio::test]
    async fn login_server_errors_are_not_bad_credentials() {
        // pveproxy answers 596 when pvedaemon is restarting, 595 when it cannot reach it,
        // 500/503 when overloaded: a login is safe to repeat, and none of them says
        // anything about the password.
        let (c, s) = client(
            password(),
            vec![
                err(596, "Broken pipe", ""),
                err(503, "Service Unavailable", ""),
                ok(TICKET),
                ok(r#"{"data":{"version":"9.1.3","release":"9.1","repoid":"x"}}"#),
            ],
        );
        let v: Value = c.get("/version", &Params::new()).await.unwrap();
        assert_eq!(v["release"], "9.1");
        assert_eq!(s.seen.lock().unwrap().len(), 4);
        // Out of attempts: an API error with the status, retryable, not Auth.
        let (c, _) = client(
            password(),
            vec![
                err(595, "No route to host", ""),
                err(595, "No route to host", ""),
                err(595, "No route to host", ""),
            ],
        );
        let e = c.login().await.unwrap_err();
        assert!(matches!(e, Error::Api { status: 595, .. }), "{e}");
        assert_eq!(e.retry(), crate::Retry::AfterObserve);
        // 401 stays "refused", and is asked once.
        let (c, s) = client(
            password(),
            vec![err(401, "authentication failure", r#"{"data":null}"#)],
        );
        assert!(matches!(
            c.login().await.unwrap_err(),
            Error::Auth {
                status: Some(401),
                ..
            }
        ));
        assert_eq!(s.seen.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn totp_second_factor() {
        // PVE 7+: the password answers a half-logged-in ticket with NeedTFA; the second
        // POST carries it as tfa-challenge and the code as password=totp:CODE.
        let creds = Credentials::PasswordTotp {
            user: "ops@pve".into(),
            password: Secret::new("pw"),
            totp: TotpSource::new(|| Secret::new("123456")),
        };
        let (c, s) = client(
            creds,
            vec![
                ok(
                    r#"{"data":{"ticket":"PVE:!tfa!{\"totp\":true}:abc","username":"ops@pve","NeedTFA":1,"CSRFPreventionToken":"x"}}"#,
                ),
                ok(TICKET),
                ok(r#"{"data":null}"#),
            ],
        );
        let () = c
            .post("/pools", &Params::new().set("poolid", "p"))
            .await
            .unwrap();
        let seen = s.seen.lock().unwrap().clone();
        assert_eq!(
            seen[0].form_text(),
            Some("username=ops%40pve&new-format=1&password=pw")
        );
        assert_eq!(
            seen[1].form_text(),
            Some(
                "username=ops%40pve&tfa-challenge=PVE%3A%21tfa%21%7B%22totp%22%3Atrue%7D%3Aabc&password=totp%3A123456"
            )
        );
        assert_eq!(seen[2].headers[1].1.expose(), "CSRF1");
        // Neither the code nor the password shows in Debug.
        let dbg = format!("{c:?} {:?}", seen[1]);
        assert!(!dbg.contains("123456") && !dbg.contains("pw\""), "{dbg}");
        // Without a TOTP source the account's need for one is said plainly.
        let (c, _) = client(
            password(),
            vec![ok(
                r#"{"data":{"ticket":"PVE:!tfa!x","NeedTFA":1,"CSRFPreventionToken":"x"}}"#,
            )],
        );
        let e = c.login().await.unwrap_err();
        assert!(e.to_string().contains("second factor"), "{e}");
    }

    #[tokio::test]
    async fn deterministic_500_on_get_is_not_retried() {
        // The guest agent not running is a 500 that stays a 500 until the guest boots:
        // one request, the error to the caller (who decides how to wait).
        let (c, s) = client(
            token(),
            vec![err(
                500,
                "QEMU guest agent is not running",
                r#"{"data":null,"message":"QEMU guest agent is not running\n"}"#,
            )],
        );
        let e = c
            .get::<Value>(
                "/nodes/pve/qemu/100/agent/network-get-interfaces",
                &Params::new(),
            )
            .await
            .unwrap_err();
        assert_eq!(e.status(), Some(500));
        assert_eq!(s.seen.lock().unwrap().len(), 1);
        // A 500 that says something was busy is retried.
        let (c, s) = client(
            token(),
            vec![
                err(500, "cluster not ready - no quorum?", ""),
                ok(r#"{"data":[]}"#),
            ],
        );
        let v: Vec<Value> = c.get("/cluster/resources", &Params::new()).await.unwrap();
        assert!(v.is_empty());
        assert_eq!(s.seen.lock().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn held_node_permit_is_reused_not_taken_twice() {
        let script = Arc::new(Script {
            answers: M::new(vec![ok(r#"{"data":null}"#), ok(r#"{"data":null}"#)].into()),
            seen: M::new(Vec::new()),
        });
        let c = ClientBuilder::new("https://pve.test:8006")
            .credentials(token())
            .node_concurrency(1)
            .transport(Arc::clone(&script) as Arc<dyn Transport>)
            .build()
            .unwrap();
        // With one permit per node, a write inside with_node_permit would wait for ever
        // if it took a second permit. The timeout only turns a hang into a failure.
        let run = c.with_node_permit("pve", async {
            let () = c
                .put(
                    "/nodes/pve/qemu/100/config",
                    &Params::new().set("onboot", true),
                )
                .await?;
            // Nested for the same node: still the one permit.
            c.with_node_permit("pve", async {
                c.put::<()>(
                    "/nodes/pve/qemu/100/config",
                    &Params::new().set("onboot", false),
                )
                .await
            })
            .await
        });
        tokio::time::timeout(Duration::from_secs(30), run)
            .await
            .expect("deadlock: a write inside with_node_permit took another permit")
            .unwrap();
        assert_eq!(script.seen.lock().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn delete_sends_only_chosen_options() {
        let upid = r#"{"data":"UPID:pve:00000001:00000002:00000003:qmdestroy:100:root@pam:"}"#;
        let (c, s) = client(token(), vec![ok(upid), ok(upid)]);
        c.qemu_delete("pve", 100, &crate::DeleteOptions::default())
            .await
            .unwrap();
        c.qemu_delete(
            "pve",
            100,
            &crate::DeleteOptions::default()
                .purge(true)
                .destroy_unreferenced_disks(false),
        )
        .await
        .unwrap();
        let seen = s.seen.lock().unwrap();
        assert!(
            seen[0].url.ends_with("/nodes/pve/qemu/100"),
            "{}",
            seen[0].url
        );
        assert!(
            seen[1]
                .url
                .ends_with("/qemu/100?purge=1&destroy-unreferenced-disks=0")
        );
    }

    fn log_page(from: u64, to: u64, total: u64) -> Result<HttpResponse, TransportError> {
        let lines: Vec<Value> = (from..to)
            .map(|i| serde_json::json!({"n": i + 1, "t": format!("line {}", i + 1)}))
            .collect();
        ok(&serde_json::json!({"data": lines, "total": total}).to_string())
    }

    #[tokio::test]
    async fn task_log_tail_past_5000_lines() {
        // A 7000-line log: PVE's read_task_log answers the page asked for and `total`.
        let upid: crate::Upid = "UPID:pve:00000001:00000002:00000003:qmclone:100:root@pam:"
            .parse()
            .unwrap();
        let (c, s) = client(
            token(),
            vec![log_page(0, 3, 7000), log_page(6997, 7000, 7000)],
        );
        let tail = c.task_log_tail(&upid, 3).await;
        assert_eq!(tail, ["line 6998", "line 6999", "line 7000"]);
        let seen = s.seen.lock().unwrap().clone();
        assert!(
            seen[0].url.ends_with("/log?start=0&limit=3"),
            "{}",
            seen[0].url
        );
        assert!(
            seen[1].url.ends_with("/log?start=6997&limit=3"),
            "{}",
            seen[1].url
        );
        drop(seen);
        // Paging by hand with total.
        let (c, _) = client(token(), vec![log_page(5000, 5002, 5002)]);
        let page = c.task_log_page(&upid, 5000, 500).await.unwrap();
        assert_eq!(
            (page.total, page.lines.len(), page.lines[1].n),
            (5002, 2, 5002)
        );
        // A short log: one request.
        let (c, s) = client(token(), vec![log_page(0, 2, 2)]);
        assert_eq!(c.task_log_tail(&upid, 20).await, ["line 1", "line 2"]);
        assert_eq!(s.seen.lock().unwrap().len(), 1);
    }

    const NO_SUCH_TASK: &str = r#"{"data":null,"errors":{"upid":"no such task\n"},"message":"Parameter verification failed.\n"}"#;

    #[tokio::test]
    async fn fresh_task_answering_no_such_task_is_waited_for() {
        // What pve-manager's Tasks.pm sends for a UPID whose task file is not there yet.
        let upid: crate::Upid = "UPID:pve:00000001:00000002:00000003:qmstart:100:root@pam:"
            .parse()
            .unwrap();
        let (c, s) = client(
            token(),
            vec![
                err(400, "Parameter verification failed.", NO_SUCH_TASK),
                err(400, "Parameter verification failed.", NO_SUCH_TASK),
                ok(
                    r#"{"data":{"status":"stopped","exitstatus":"OK","type":"qmstart","node":"pve"}}"#,
                ),
            ],
        );
        let done = c.wait_task(&upid).await.unwrap();
        assert_eq!(done.exitstatus, "OK");
        assert_eq!(s.seen.lock().unwrap().len(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn no_such_task_past_the_grace_is_an_error_and_polls_are_spaced_per_node() {
        let upid: crate::Upid = "UPID:pve:00000001:00000002:00000003:qmstart:100:root@pam:"
            .parse()
            .unwrap();
        let answers = (0..400)
            .map(|_| err(400, "Parameter verification failed.", NO_SUCH_TASK))
            .collect();
        let (c, s) = client(token(), answers);
        let e = c.wait_task(&upid).await.unwrap_err();
        let Error::Api { errors, .. } = &e else {
            panic!("{e}")
        };
        assert_eq!(errors["upid"], "no such task");
        let n = s.seen.lock().unwrap().len();
        // Within the 10 s grace, first poll after 100 ms, then at most one per 100 ms..
        assert!((5..=100).contains(&n), "{n} polls");

        // 50 waits on one node, all running: status GETs spaced node_gap (25 ms) apart.
        let running = r#"{"data":{"status":"running","type":"qmstart","node":"pve"}}"#;
        let script = Arc::new(Script {
            answers: M::new((0..2000).map(|_| ok(running)).collect()),
            seen: M::new(Vec::new()),
        });
        let c = ClientBuilder::new("https://pve.test:8006")
            .credentials(token())
            .task_poll(TaskPoll {
                shared_active_list: false,
                ..TaskPoll::default()
            })
            .transport(Arc::clone(&script) as Arc<dyn Transport>)
            .build()
            .unwrap();
        let s = script;
        let waits = (0..50).map(|i| {
            let c = c.clone();
            let u: crate::Upid =
                format!("UPID:pve:00000001:00000002:{i:08X}:qmstart:100:root@pam:")
                    .parse()
                    .unwrap();
            async move { c.wait_task_timeout(&u, Duration::from_secs(10)).await }
        });
        let outs = futures::future::join_all(waits).await;
        assert!(outs.iter().all(|o| matches!(o, Err(Error::Timeout { .. }))));
        let n = s.seen.lock().unwrap().len();
        // 10 s of virtual time / 25 ms = at most 400 polls for the node, plus each wait's
        // last look at its deadline; unthrottled, 50 waits at 100 ms would make 5000.
        assert!(n <= 400 + 50, "{n} status polls in 10 s on one node");
    }

    #[tokio::test]
    async fn hamigrate_waits_until_the_vm_left_its_node() {
        // PVE answers a migrate of an HA-managed VM with a `hamigrate` task that ends as
        // soon as the request is queued; the VM moves later.
        let upid: crate::Upid = "UPID:pve1:00000001:00000002:00000003:hamigrate:100:root@pam:"
            .parse()
            .unwrap();
        let on = |node: &str, lock: &str| {
            ok(
                &serde_json::json!({"data": [{"id": "qemu/100", "type": "qemu", "vmid": 100,
                "node": node, "status": "running", "hastate": "started", "lock": lock}]})
                .to_string(),
            )
        };
        let (c, s) = client(
            token(),
            vec![
                ok(
                    r#"{"data":{"status":"stopped","exitstatus":"OK","type":"hamigrate","node":"pve1"}}"#,
                ),
                on("pve1", ""),
                on("pve1", "migrate"),
                on("pve2", ""),
            ],
        );
        c.wait_task(&upid).await.unwrap();
        let seen = s.seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 4, "waited until the VM was on pve2, unlocked");
        assert!(seen[3].url.ends_with("/cluster/resources?type=vm"));
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
