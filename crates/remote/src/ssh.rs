//! The russh implementation of [`RemoteExec`]: configuration, authentication, host key
//! checking, a connection pool with keepalive and reconnect.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex as StdMutex, Weak};
use std::time::Duration;

use async_trait::async_trait;
use russh::keys::{Algorithm, HashAlg, PrivateKeyWithHashAlg};
use russh::{ChannelMsg, client};
use tracing::Instrument as _;

use crate::hostkey::{HostKey, HostKeyPolicy, KnownHosts, KnownHostsVerdict};
use crate::sftp::{self, Fail, Sftp};
use crate::{
    Command, Error, ExitStatus, File, FileState, Output, PushOutcome, Secret, shell_quote,
};

/// How to authenticate.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Auth {
    /// A private key file in OpenSSH or PEM format, with its passphrase if encrypted.
    KeyFile {
        /// Path to the private key.
        path: PathBuf,
        /// Passphrase for an encrypted key (never logged).
        passphrase: Option<Secret>,
    },
    /// The keys of a running ssh-agent. `socket: None` uses `SSH_AUTH_SOCK`.
    Agent {
        /// The agent's Unix socket.
        socket: Option<PathBuf>,
    },
}

impl Auth {
    /// An unencrypted key file.
    #[must_use]
    pub fn key_file(path: impl Into<PathBuf>) -> Self {
        Self::KeyFile {
            path: path.into(),
            passphrase: None,
        }
    }

    /// The agent at `SSH_AUTH_SOCK`.
    #[must_use]
    pub fn agent() -> Self {
        Self::Agent { socket: None }
    }
}

/// Connection settings shared by every host of a pool.
#[derive(Debug, Clone)]
pub struct SshConfig {
    auth: Auth,
    host_keys: HostKeyPolicy,
    connect_timeout: Duration,
    command_timeout: Duration,
    keepalive_interval: Duration,
    keepalive_max: usize,
}

impl SshConfig {
    /// Settings with the given credentials and host key policy; timeouts default to 10 s
    /// (connect) and 300 s (per command), keepalive every 15 s, 3 missed keepalives drop the
    /// connection.
    #[must_use]
    pub fn new(auth: Auth, host_keys: HostKeyPolicy) -> Self {
        Self {
            auth,
            host_keys,
            connect_timeout: Duration::from_secs(10),
            command_timeout: Duration::from_secs(300),
            keepalive_interval: Duration::from_secs(15),
            keepalive_max: 3,
        }
    }

    /// Timeout for TCP connect + handshake + authentication.
    #[must_use]
    pub fn connect_timeout(mut self, t: Duration) -> Self {
        self.connect_timeout = t;
        self
    }

    /// Default timeout of a command (a [`Command::timeout`] overrides it).
    #[must_use]
    pub fn command_timeout(mut self, t: Duration) -> Self {
        self.command_timeout = t;
        self
    }

    /// Keepalive: a probe after `interval` of silence; `max` unanswered probes close the
    /// connection (in-flight commands then fail with [`Error::ConnectionLost`]).
    #[must_use]
    pub fn keepalive(mut self, interval: Duration, max: usize) -> Self {
        self.keepalive_interval = interval;
        self.keepalive_max = max;
        self
    }
}

/// One host to reach: a name (for logs and results), an address, a port and a login user.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    /// The host's name (e.g. the VM name).
    pub name: String,
    /// DNS name or IP address to dial.
    pub address: String,
    /// TCP port (22 by default).
    pub port: u16,
    /// Login user (`root` by default).
    pub user: String,
}

impl Target {
    /// A target on port 22 as root.
    #[must_use]
    pub fn new(name: impl Into<String>, address: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            address: address.into(),
            port: 22,
            user: "root".into(),
        }
    }

    /// Sets the port.
    #[must_use]
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Sets the login user (non-root users use `sudo -n` for commands that ask for it).
    #[must_use]
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.user = user.into();
        self
    }
}

/// A pool of SSH sessions, one per target, reused across steps.
///
/// Sessions connect lazily on first use and reconnect when the connection has dropped.
///
/// ```no_run
/// # async fn demo() -> Result<(), hakube_remote::Error> {
/// use hakube_remote::{Auth, Command, HostKeyPolicy, RemoteExec, SshConfig, SshPool, Target};
/// let pool = SshPool::new(SshConfig::new(
///     Auth::key_file("/root/.ssh/id_ed25519"),
///     HostKeyPolicy::KnownHosts("/root/.ssh/known_hosts".into()),
/// ));
/// let lb1 = pool.session(&Target::new("lb1", "10.0.0.11"));
/// let out = lb1.run_ok(&Command::new("uname").arg("-r")).await?;
/// println!("{}", out.stdout_lossy());
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct SshPool {
    config: Arc<SshConfig>,
    sessions: StdMutex<HashMap<Target, Arc<SshSession>>>,
}

impl SshPool {
    /// An empty pool.
    #[must_use]
    pub fn new(config: SshConfig) -> Self {
        Self {
            config: Arc::new(config),
            sessions: StdMutex::new(HashMap::new()),
        }
    }

    /// The session for `target`, created (not yet connected) on first request.
    #[must_use]
    pub fn session(&self, target: &Target) -> Arc<SshSession> {
        let mut map = self
            .sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Arc::clone(map.entry(target.clone()).or_insert_with(|| {
            Arc::new(SshSession {
                target: target.clone(),
                config: Arc::clone(&self.config),
                conn: tokio::sync::Mutex::new(None),
                sftp: tokio::sync::Mutex::new(SftpSlot::Untried),
            })
        }))
    }

    /// Disconnects every session (they reconnect if used again).
    pub async fn close_all(&self) {
        let sessions: Vec<_> = {
            let map = self
                .sessions
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            map.values().cloned().collect()
        };
        for s in sessions {
            s.disconnect().await;
        }
    }
}

/// An SSH session to one host: implements [`RemoteExec`](crate::RemoteExec) over one multiplexed connection
/// (concurrent commands use separate channels).
pub struct SshSession {
    target: Target,
    config: Arc<SshConfig>,
    conn: tokio::sync::Mutex<Option<Arc<client::Handle<Client>>>>,
    sftp: tokio::sync::Mutex<SftpSlot>,
}

/// The SFTP state of a session, tied to one connection: a reconnect starts over.
enum SftpSlot {
    /// Not tried on the current connection.
    Untried,
    /// The server offers no usable SFTP on this connection: files go through the shell.
    Unavailable(Weak<client::Handle<Client>>),
    /// Open on this connection.
    Open(Weak<client::Handle<Client>>, Arc<Sftp>),
}

impl fmt::Debug for SshSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SshSession")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl SshSession {
    /// A session for one target (prefer [`SshPool::session`], which reuses connections).
    #[must_use]
    pub fn new(target: Target, config: SshConfig) -> Self {
        Self {
            target,
            config: Arc::new(config),
            conn: tokio::sync::Mutex::new(None),
            sftp: tokio::sync::Mutex::new(SftpSlot::Untried),
        }
    }

    /// The target.
    #[must_use]
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Connects now (otherwise the first command connects). Useful to surface host key and
    /// authentication errors before any step runs.
    ///
    /// # Errors
    /// [`Error::Connect`], [`Error::UnknownHostKey`], [`Error::HostKeyChanged`], [`Error::Auth`].
    pub async fn connect(&self) -> Result<(), Error> {
        self.handle(false).await.map(|_| ())
    }

    /// Closes the connection, if any.
    pub async fn disconnect(&self) {
        if let Some(h) = self.conn.lock().await.take() {
            let _ = h
                .disconnect(russh::Disconnect::ByApplication, "", "en")
                .await;
        }
    }

    async fn handle(&self, force_new: bool) -> Result<Arc<client::Handle<Client>>, Error> {
        let mut slot = self.conn.lock().await;
        if let Some(h) = slot.as_ref()
            && !h.is_closed()
            && !force_new
        {
            return Ok(Arc::clone(h));
        }
        if slot.is_some() {
            tracing::info!(host = %self.target.name, "reconnecting");
        }
        *slot = None;
        let h = Arc::new(
            tokio::time::timeout(
                self.config.connect_timeout,
                connect(&self.target, &self.config),
            )
            .await
            .map_err(|_| Error::Connect {
                host: self.target.name.clone(),
                addr: format!("{}:{}", self.target.address, self.target.port),
                reason: format!("timed out after {:?}", self.config.connect_timeout),
            })??,
        );
        *slot = Some(Arc::clone(&h));
        Ok(h)
    }

    /// Opens a session channel; on a dropped connection reconnects once (nothing was sent yet,
    /// so this is safe).
    async fn open_channel(
        &self,
        command: &Command,
        timeout: Duration,
    ) -> Result<russh::Channel<client::Msg>, Error> {
        let timed_out = || Error::Timeout {
            host: self.target.name.clone(),
            command: command.redacted(),
            timeout,
        };
        // Connecting is bounded by the connect timeout; opening the channel by the command's.
        let h = self.handle(false).await?;
        match tokio::time::timeout(timeout, h.channel_open_session()).await {
            Ok(Ok(c)) => Ok(c),
            Err(_) => Err(timed_out()),
            Ok(Err(e)) => {
                tracing::debug!(host = %self.target.name, error = %e, "channel open failed; reconnecting");
                let h = self.handle(true).await?;
                tokio::time::timeout(timeout, h.channel_open_session())
                    .await
                    .map_err(|_| timed_out())?
                    .map_err(|e| Error::Connect {
                        host: self.target.name.clone(),
                        addr: format!("{}:{}", self.target.address, self.target.port),
                        reason: format!("cannot open a channel: {e}"),
                    })
            }
        }
    }

    fn file_error(&self, op: &'static str, path: &str, out: &Output) -> Error {
        Error::RemoteFile {
            host: self.target.name.clone(),
            op,
            path: path.to_owned(),
            reason: format!("{}: {}", out.status, out.stderr_lossy().trim()),
        }
    }

    async fn connection_closed(&self) -> bool {
        self.conn
            .lock()
            .await
            .as_ref()
            .is_none_or(|h| h.is_closed())
    }

    /// The connection's SFTP session, started on first use; `None` when the server offers no
    /// usable SFTP (then files go through the shell).
    ///
    /// # Errors
    /// Connection errors (the shell path would meet them too).
    async fn sftp(&self) -> Result<Option<Arc<Sftp>>, Error> {
        let h = self.handle(false).await?;
        let mut slot = self.sftp.lock().await;
        let current =
            |w: &Weak<client::Handle<Client>>| w.upgrade().is_some_and(|c| Arc::ptr_eq(&c, &h));
        match &*slot {
            SftpSlot::Open(w, s) if current(w) => return Ok(Some(Arc::clone(s))),
            SftpSlot::Unavailable(w) if current(w) => return Ok(None),
            _ => {}
        }
        let timeout = self.config.command_timeout;
        let started = tokio::time::timeout(timeout, async {
            let channel = h
                .channel_open_session()
                .await
                .map_err(|e| format!("cannot open a channel: {e}"))?;
            Sftp::start(channel, timeout).await
        })
        .await
        .unwrap_or_else(|_| Err(format!("no answer in {timeout:?}")));
        let weak = Arc::downgrade(&h);
        match started {
            Ok(Some(s)) => {
                let s = Arc::new(s);
                *slot = SftpSlot::Open(weak, Arc::clone(&s));
                Ok(Some(s))
            }
            Ok(None) => {
                tracing::debug!(host = %self.target.name, "no sftp subsystem with posix-rename; files go through the shell");
                *slot = SftpSlot::Unavailable(weak);
                Ok(None)
            }
            Err(reason) => {
                tracing::debug!(host = %self.target.name, %reason, "sftp unavailable; files go through the shell");
                *slot = SftpSlot::Unavailable(weak);
                Ok(None)
            }
        }
    }

    /// Runs one SFTP operation under the command timeout. `Ok(None)`: the SFTP channel broke
    /// (it is dropped; the caller uses the shell, which reports a dead connection properly).
    async fn sftp_op<T>(
        &self,
        op: &'static str,
        path: &str,
        work: impl std::future::Future<Output = Result<T, Fail>>,
    ) -> Result<Option<T>, Error> {
        let timeout = self.config.command_timeout;
        let result = tokio::time::timeout(timeout, work).await;
        match result {
            Ok(Ok(v)) => Ok(Some(v)),
            Ok(Err(Fail::Status(reason))) => Err(Error::RemoteFile {
                host: self.target.name.clone(),
                op,
                path: path.to_owned(),
                reason,
            }),
            Ok(Err(Fail::Transport(reason))) => {
                tracing::debug!(host = %self.target.name, %reason, op, path, "sftp channel broke; using the shell");
                *self.sftp.lock().await = SftpSlot::Untried;
                Ok(None)
            }
            Err(_) => {
                *self.sftp.lock().await = SftpSlot::Untried;
                Err(Error::Timeout {
                    host: self.target.name.clone(),
                    command: format!("sftp {op} {path}"),
                    timeout,
                })
            }
        }
    }

    /// Whether a file operation may use SFTP: as the login user (no `sudo`, or root), and no
    /// owner or group by name.
    fn sftp_fits(&self, sudo: bool, named_owner: bool) -> bool {
        (!sudo || crate::RemoteExec::is_root(self)) && !named_owner
    }

    /// Idempotent push over SFTP; `Ok(None)`: use the shell.
    async fn push_sftp(&self, file: &File, sudo: bool) -> Result<Option<PushOutcome>, Error> {
        let Some(s) = self.sftp().await? else {
            return Ok(None);
        };
        let path = file.path.as_str();
        let Some(existing) = self.sftp_op("upload", path, s.existing(path)).await? else {
            return Ok(None);
        };
        let outcome = match sftp::outcome(existing.as_ref(), &file.content, file.mode) {
            Some(o) => o,
            // A large file of the same size: let the host hash it.
            None => crate::diff_file(self, file, sudo).await?,
        };
        let done = match outcome {
            PushOutcome::Unchanged => Some(()),
            PushOutcome::MetadataChanged => {
                self.sftp_op("upload", path, s.chmod(path, file.mode))
                    .await?
            }
            PushOutcome::Created | PushOutcome::ContentChanged => {
                self.sftp_op(
                    "upload",
                    path,
                    s.write_atomic(path, &file.content, file.mode, &temp_tag()),
                )
                .await?
            }
        };
        Ok(done.map(|()| outcome))
    }

    async fn exec(&self, command: &Command) -> Result<Output, Error> {
        let line = command.to_shell(crate::RemoteExec::is_root(self))?;
        let timeout = command
            .timeout_value()
            .unwrap_or(self.config.command_timeout);
        let channel = self.open_channel(command, timeout).await?;
        let (mut read, write) = channel.split();
        let host = &self.target.name;
        let lost = |reason: String| Error::ConnectionLost {
            host: host.clone(),
            command: command.redacted(),
            reason,
        };
        let work = async {
            write
                .exec(true, line.into_bytes())
                .await
                .map_err(|e| lost(e.to_string()))?;
            let feed = async {
                if let Some(input) = command.stdin_bytes() {
                    write
                        .data(input)
                        .await
                        .map_err(|e| lost(format!("writing stdin: {e}")))?;
                }
                write
                    .eof()
                    .await
                    .map_err(|e| lost(format!("closing stdin: {e}")))
            };
            let collect = async {
                let mut stdout = Vec::new();
                let mut stderr = Vec::new();
                let mut status = None;
                while let Some(msg) = read.wait().await {
                    match msg {
                        ChannelMsg::Data { data } => stdout.extend_from_slice(&data),
                        ChannelMsg::ExtendedData { data, ext: 1 } => {
                            stderr.extend_from_slice(&data);
                        }
                        ChannelMsg::ExitStatus { exit_status } => {
                            status = Some(ExitStatus::Code(exit_status));
                        }
                        ChannelMsg::ExitSignal {
                            signal_name,
                            core_dumped,
                            ..
                        } => {
                            status = Some(ExitStatus::Signal {
                                name: sig_name(&signal_name),
                                core_dumped,
                            });
                        }
                        ChannelMsg::Close => break,
                        _ => {}
                    }
                }
                (stdout, stderr, status)
            };
            let (fed, (stdout, stderr, status)) = tokio::join!(feed, collect);
            Ok::<_, Error>((fed, stdout, stderr, status))
        };
        let result = tokio::time::timeout(timeout, work).await;
        let Ok(result) = result else {
            let _ = write.close().await;
            return Err(Error::Timeout {
                host: host.clone(),
                command: command.redacted(),
                timeout,
            });
        };
        let (fed, stdout, stderr, status) = result?;
        match status {
            Some(status) => Ok(Output {
                stdout,
                stderr,
                status,
            }),
            None => {
                // The channel ended without a status. If the connection is going down, say so
                // (the transport may need a moment to notice after the channel did).
                for _ in 0..10 {
                    if self.connection_closed().await {
                        return Err(lost("connection closed".into()));
                    }
                    tokio::time::sleep(Duration::from_millis(25)).await;
                }
                // Stdin errors matter only when nothing else explains the failure.
                fed?;
                Err(Error::NoExitStatus {
                    host: host.clone(),
                    command: command.redacted(),
                })
            }
        }
    }
}

/// A random suffix for temporary file names (16 hex digits).
fn temp_tag() -> String {
    use ring::rand::SecureRandom as _;
    let mut bytes = [0u8; 8];
    if ring::rand::SystemRandom::new().fill(&mut bytes).is_err() {
        // Practically unreachable; exclusive creation still refuses a clash.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        bytes = (nanos as u64).to_le_bytes();
    }
    hex::encode(bytes)
}

/// Files up to this size are pushed in one round trip (content sent even if unchanged).
const ONE_TRIP_PUSH_MAX: usize = 256 * 1024;

/// Shell that writes stdin to `$p` atomically: temp file in the same directory, mode, owner,
/// rename. Parent directories are created.
fn write_script(file: &File) -> String {
    let chown = match (&file.owner, &file.group) {
        (Some(o), Some(g)) => format!("chown -- {} \"$t\"; ", shell_quote(&format!("{o}:{g}"))),
        (Some(o), None) => format!("chown -- {} \"$t\"; ", shell_quote(o)),
        (None, Some(g)) => format!("chgrp -- {} \"$t\"; ", shell_quote(g)),
        (None, None) => String::new(),
    };
    // Without execute/setuid bits the mode comes from the umask at creation (one process
    // less per file); otherwise chmod afterwards.
    let (umask, chmod) = if file.mode & 0o7111 == 0 {
        (format!("umask {:03o}; ", 0o777 & !file.mode), String::new())
    } else {
        (String::new(), format!("chmod {:o} -- \"$t\"; ", file.mode))
    };
    // The temp file name is derived from the shell's pid; a leftover of that name is removed
    // first, then the file is created with noclobber (O_CREAT|O_EXCL), so a file planted in
    // between makes the write fail rather than be written through.
    format!(
        "d=${{p%/*}}; [ -d \"${{d:-/}}\" ] || mkdir -p -- \"$d\"; t=\"$p.hakube.$$\"; \
         trap 'rm -f -- \"$t\"' EXIT; {{ [ ! -e \"$t\" ] && [ ! -L \"$t\" ]; }} || rm -f -- \"$t\"; \
         set -C; {umask}cat > \"$t\"; {chmod}{chown}mv -f -- \"$t\" \"$p\"; trap - EXIT",
    )
}

fn sig_name(sig: &russh::Sig) -> String {
    match sig {
        russh::Sig::Custom(s) => s.clone(),
        other => format!("{other:?}"),
    }
}

#[async_trait]
impl crate::RemoteExec for SshSession {
    fn host(&self) -> &str {
        &self.target.name
    }

    fn address(&self) -> &str {
        &self.target.address
    }

    fn is_root(&self) -> bool {
        self.target.user == "root"
    }

    async fn run(&self, command: &Command) -> Result<Output, Error> {
        let span = tracing::debug_span!("ssh.run", host = %self.target.name, command = %command.redacted());
        async {
            let out = self.exec(command).await;
            match &out {
                Ok(o) => tracing::debug!(status = %o.status, stdout = o.stdout.len(), stderr = o.stderr.len(), "done"),
                Err(e) => tracing::debug!(error = %e, "failed"),
            }
            out
        }
        .instrument(span)
        .await
    }

    async fn upload(&self, file: &File, sudo: bool) -> Result<(), Error> {
        crate::exec::check_file(file)?;
        if self.sftp_fits(sudo, file.owner.is_some() || file.group.is_some())
            && let Some(s) = self.sftp().await?
            && self
                .sftp_op(
                    "upload",
                    &file.path,
                    s.write_atomic(&file.path, &file.content, file.mode, &temp_tag()),
                )
                .await?
                .is_some()
        {
            return Ok(());
        }
        let script = format!(
            "set -e; p={}; {}",
            shell_quote(&file.path),
            write_script(file)
        );
        let cmd = Command::shell(script)
            .stdin(file.content.clone())
            .sudo(sudo);
        let out = crate::RemoteExec::run(self, &cmd).await?;
        if !out.success() {
            return Err(self.file_error("upload", &file.path, &out));
        }
        Ok(())
    }

    async fn push(&self, file: &File, sudo: bool) -> Result<PushOutcome, Error> {
        crate::exec::check_file(file)?;
        if self.sftp_fits(sudo, file.owner.is_some() || file.group.is_some())
            && let Some(outcome) = self.push_sftp(file, sudo).await?
        {
            return Ok(outcome);
        }
        if file.content.len() > ONE_TRIP_PUSH_MAX {
            // Large file: compare first, send only if needed.
            let outcome = crate::diff_file(self, file, sudo).await?;
            if outcome.changed() {
                crate::RemoteExec::upload(self, file, sudo).await?;
            }
            return Ok(outcome);
        }
        // Small file: one round trip that compares and writes only if needed.
        let (fmt, want) = match (&file.owner, &file.group) {
            (Some(o), Some(g)) => ("%a %U %G", format!("{:o} {o} {g}", file.mode)),
            (Some(o), None) => ("%a %U", format!("{:o} {o}", file.mode)),
            (None, Some(g)) => ("%a %G", format!("{:o} {g}", file.mode)),
            (None, None) => ("%a", format!("{:o}", file.mode)),
        };
        let script = format!(
            "set -e; p={p}; r=created; if [ -e \"$p\" ]; then h=$(sha256sum < \"$p\"); \
             if [ \"${{h%% *}}\" = {sha} ]; then \
             if [ \"$(stat -L -c '{fmt}' -- \"$p\")\" = {want} ]; then cat > /dev/null; echo unchanged; exit 0; fi; \
             r=meta; else r=content; fi; fi; {write}; echo $r",
            p = shell_quote(&file.path),
            sha = file.sha256(),
            want = shell_quote(&want),
            write = write_script(file),
        );
        let cmd = Command::shell(script)
            .stdin(file.content.clone())
            .sudo(sudo);
        let out = crate::RemoteExec::run(self, &cmd).await?;
        if !out.success() {
            return Err(self.file_error("upload", &file.path, &out));
        }
        match out.stdout_lossy().trim() {
            "unchanged" => Ok(PushOutcome::Unchanged),
            "created" => Ok(PushOutcome::Created),
            "content" => Ok(PushOutcome::ContentChanged),
            "meta" => Ok(PushOutcome::MetadataChanged),
            other => Err(Error::RemoteFile {
                host: self.target.name.clone(),
                op: "upload",
                path: file.path.clone(),
                reason: format!("unexpected output {other:?}"),
            }),
        }
    }

    async fn read_file(&self, path: &str, sudo: bool) -> Result<Vec<u8>, Error> {
        if self.sftp_fits(sudo, false)
            && let Some(s) = self.sftp().await?
            && let Some(data) = self.sftp_op("read", path, s.read(path)).await?
        {
            return Ok(data);
        }
        let out = crate::RemoteExec::run(self, &Command::new("cat").arg("--").arg(path).sudo(sudo))
            .await?;
        if !out.success() {
            return Err(Error::RemoteFile {
                host: self.target.name.clone(),
                op: "read",
                path: path.to_owned(),
                reason: out.stderr_lossy().trim().to_owned(),
            });
        }
        Ok(out.stdout)
    }

    async fn file_state(&self, path: &str, sudo: bool) -> Result<Option<FileState>, Error> {
        let script = format!(
            "p={}; if [ -e \"$p\" ]; then stat -L -c '%a %U %G' -- \"$p\" && sha256sum < \"$p\"; else echo absent; fi",
            shell_quote(path)
        );
        let out = crate::RemoteExec::run(self, &Command::shell(script).sudo(sudo)).await?;
        let text = out.stdout_lossy();
        let fail = |reason: String| Error::RemoteFile {
            host: self.target.name.clone(),
            op: "stat",
            path: path.to_owned(),
            reason,
        };
        if !out.success() {
            return Err(fail(out.stderr_lossy().trim().to_owned()));
        }
        parse_file_state(&text).map_err(|()| fail(format!("unexpected output {text:?}")))
    }
}

/// Parses the output of the `file_state` script.
pub(crate) fn parse_file_state(text: &str) -> Result<Option<FileState>, ()> {
    let mut lines = text.lines();
    let first = lines.next().ok_or(())?;
    if first == "absent" {
        return Ok(None);
    }
    let mut f = first.split(' ');
    let (Some(mode), Some(owner), Some(group)) = (f.next(), f.next(), f.next()) else {
        return Err(());
    };
    let mode = u32::from_str_radix(mode, 8).map_err(|_| ())?;
    let sha = lines
        .next()
        .and_then(|l| l.split_whitespace().next())
        .ok_or(())?;
    if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(());
    }
    Ok(Some(FileState {
        sha256: sha.to_ascii_lowercase(),
        mode,
        owner: owner.into(),
        group: group.into(),
    }))
}

/// The russh event handler: host key verification only.
struct Client {
    target: Target,
    policy: HostKeyPolicy,
    known: Option<KnownHosts>,
}

#[derive(Debug)]
enum ClientError {
    Ssh(russh::Error),
    HostKey(Error),
}

impl From<russh::Error> for ClientError {
    fn from(e: russh::Error) -> Self {
        Self::Ssh(e)
    }
}

impl Client {
    fn verify(&self, key: &HostKey) -> Result<(), Error> {
        let host = &self.target.name;
        let (addr, port) = (&self.target.address, self.target.port);
        let unknown = || Error::UnknownHostKey {
            host: host.clone(),
            fingerprint: key.fingerprint(),
        };
        match &self.policy {
            HostKeyPolicy::DangerAcceptAny => {
                tracing::warn!(host = %host, fingerprint = %key.fingerprint(), "accepting host key without verification (DangerAcceptAny)");
                Ok(())
            }
            HostKeyPolicy::Pinned(keys) => {
                if keys.contains(key) {
                    Ok(())
                } else {
                    Err(Error::HostKeyChanged {
                        host: host.clone(),
                        fingerprint: key.fingerprint(),
                        source_desc: format!("the {} pinned key(s)", keys.len()),
                    })
                }
            }
            HostKeyPolicy::KnownHosts(path) | HostKeyPolicy::AcceptNew(path) => {
                let known = self.known.as_ref().ok_or_else(unknown)?;
                let mut verdict = known.check(addr, port, key);
                if verdict == KnownHostsVerdict::Unknown && *addr != self.target.name {
                    verdict = known.check(&self.target.name, port, key);
                }
                match verdict {
                    KnownHostsVerdict::Match { .. } => Ok(()),
                    KnownHostsVerdict::Mismatch { line } | KnownHostsVerdict::Revoked { line } => {
                        Err(Error::HostKeyChanged {
                            host: host.clone(),
                            fingerprint: key.fingerprint(),
                            source_desc: format!("{} line {line}", path.display()),
                        })
                    }
                    KnownHostsVerdict::Unknown => {
                        if matches!(self.policy, HostKeyPolicy::AcceptNew(_)) {
                            KnownHosts::append(path, addr, port, key)?;
                            tracing::info!(host = %host, fingerprint = %key.fingerprint(), file = %path.display(), "accepted and recorded new host key");
                            Ok(())
                        } else {
                            Err(unknown())
                        }
                    }
                }
            }
        }
    }
}

impl client::Handler for Client {
    type Error = ClientError;

    async fn check_server_key(
        &mut self,
        key: &russh::keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let russh::keys::PublicKeyOrCertificate::PublicKey { key, .. } = key else {
            return Err(ClientError::HostKey(Error::UnknownHostKey {
                host: self.target.name.clone(),
                fingerprint: "(host certificate; certificates are not supported)".into(),
            }));
        };
        let blob = key.to_bytes().map_err(russh::Error::from)?;
        let hk = HostKey::from_blob(key.algorithm().as_str(), blob).map_err(|()| {
            ClientError::HostKey(Error::InvalidKey {
                what: "server host key".into(),
                reason: "malformed".into(),
            })
        })?;
        self.verify(&hk).map_err(ClientError::HostKey)?;
        Ok(true)
    }
}

fn key_type(alg: &Algorithm) -> &str {
    match alg {
        Algorithm::Rsa { .. } => "ssh-rsa",
        other => other.as_str(),
    }
}

fn load_known(policy: &HostKeyPolicy) -> Result<Option<KnownHosts>, Error> {
    match policy {
        HostKeyPolicy::KnownHosts(p) | HostKeyPolicy::AcceptNew(p) => KnownHosts::load(p).map(Some),
        _ => Ok(None),
    }
}

async fn connect(target: &Target, config: &SshConfig) -> Result<client::Handle<Client>, Error> {
    let addr = format!("{}:{}", target.address, target.port);
    let conn_err = |reason: String| Error::Connect {
        host: target.name.clone(),
        addr: addr.clone(),
        reason,
    };
    let known = load_known(&config.host_keys)?;

    // Ask for a host key type we can verify, as OpenSSH does.
    let mut preferred = russh::Preferred::default();
    let wanted: Vec<String> = match (&config.host_keys, &known) {
        (HostKeyPolicy::Pinned(keys), _) => keys.iter().map(|k| k.algorithm().to_owned()).collect(),
        (_, Some(kh)) => {
            let mut a = kh.algorithms_for(&target.address, target.port);
            a.extend(kh.algorithms_for(&target.name, target.port));
            a
        }
        _ => Vec::new(),
    };
    if !wanted.is_empty() {
        let all = preferred.key.to_vec();
        let (mut first, rest): (Vec<_>, Vec<_>) = all
            .into_iter()
            .partition(|a| wanted.iter().any(|w| w == key_type(a)));
        first.extend(rest);
        preferred.key = first.into();
    }

    let russh_config = Arc::new(client::Config {
        keepalive_interval: Some(config.keepalive_interval),
        keepalive_max: config.keepalive_max,
        inactivity_timeout: None,
        nodelay: true,
        preferred,
        ..Default::default()
    });
    let handler = Client {
        target: target.clone(),
        policy: config.host_keys.clone(),
        known,
    };
    let mut handle = match client::connect(russh_config, addr.as_str(), handler).await {
        Ok(h) => h,
        Err(ClientError::HostKey(e)) => return Err(e),
        Err(ClientError::Ssh(e)) => return Err(conn_err(e.to_string())),
    };
    authenticate(&mut handle, target, &config.auth).await?;
    tracing::debug!(host = %target.name, %addr, "connected");
    Ok(handle)
}

async fn authenticate(
    handle: &mut client::Handle<Client>,
    target: &Target,
    auth: &Auth,
) -> Result<(), Error> {
    let auth_err = |reason: String| Error::Auth {
        host: target.name.clone(),
        user: target.user.clone(),
        reason,
    };
    match auth {
        Auth::KeyFile { path, passphrase } => {
            let key = load_private_key(path, passphrase.as_ref())?;
            let hash = if matches!(key.algorithm(), Algorithm::Rsa { .. }) {
                handle
                    .best_supported_rsa_hash()
                    .await
                    .map_err(|e| auth_err(e.to_string()))?
                    .flatten()
            } else {
                None
            };
            let res = handle
                .authenticate_publickey(
                    target.user.clone(),
                    PrivateKeyWithHashAlg::new(Arc::new(key), hash),
                )
                .await
                .map_err(|e| auth_err(e.to_string()))?;
            if res.success() {
                Ok(())
            } else {
                Err(auth_err(format!("key {} refused", path.display())))
            }
        }
        Auth::Agent { socket } => {
            let mut agent = match socket {
                Some(p) => russh::keys::agent::client::AgentClient::connect_uds(p).await,
                None => russh::keys::agent::client::AgentClient::connect_env().await,
            }
            .map_err(|e| auth_err(format!("cannot reach ssh-agent: {e}")))?;
            let ids = agent
                .request_identities()
                .await
                .map_err(|e| auth_err(format!("ssh-agent: {e}")))?;
            let mut tried = 0;
            for id in ids {
                let russh::keys::agent::AgentIdentity::PublicKey { key, .. } = id else {
                    continue;
                };
                tried += 1;
                let hash: Option<HashAlg> = if matches!(key.algorithm(), Algorithm::Rsa { .. }) {
                    handle
                        .best_supported_rsa_hash()
                        .await
                        .map_err(|e| auth_err(e.to_string()))?
                        .flatten()
                } else {
                    None
                };
                match handle
                    .authenticate_publickey_with(target.user.clone(), key, hash, &mut agent)
                    .await
                {
                    Ok(r) if r.success() => return Ok(()),
                    Ok(_) => {}
                    Err(e) => tracing::debug!(host = %target.name, error = %e, "agent key failed"),
                }
            }
            Err(auth_err(format!(
                "none of the {tried} ssh-agent keys was accepted"
            )))
        }
    }
}

fn load_private_key(
    path: &Path,
    passphrase: Option<&Secret>,
) -> Result<russh::keys::PrivateKey, Error> {
    russh::keys::load_secret_key(path, passphrase.map(Secret::expose)).map_err(|e| {
        Error::InvalidKey {
            what: path.display().to_string(),
            reason: e.to_string(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_file_state_output() {
        assert_eq!(parse_file_state("absent\n"), Ok(None));
        let sha = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let got = parse_file_state(&format!("640 root haproxy\n{sha}  -\n")).expect("parses");
        assert_eq!(
            got,
            Some(FileState {
                sha256: sha.into(),
                mode: 0o640,
                owner: "root".into(),
                group: "haproxy".into()
            })
        );
        assert!(parse_file_state("").is_err());
        assert!(parse_file_state("644 root\n").is_err());
        assert!(parse_file_state("644 root root\nnothex  -\n").is_err());
    }

    #[test]
    fn config_debug_hides_passphrase() {
        let cfg = SshConfig::new(
            Auth::KeyFile {
                path: "/k".into(),
                passphrase: Some(Secret::new("sesame")),
            },
            HostKeyPolicy::DangerAcceptAny,
        );
        let dbg = format!("{cfg:?}");
        assert!(!dbg.contains("sesame") && dbg.contains("***"), "{dbg}");
    }
}
