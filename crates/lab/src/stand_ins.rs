//! Stand-ins for cluster software that cannot run here, for tests and local twins: a
//! Kubernetes API server ([`kube_apiserver`], python3 standard library only), `helm`
//! ([`helm`], python3 with PyYAML), `kubeadm` and `kubectl` ([`kubeadm_script`],
//! [`kubectl_script`], python3 with PyYAML, for either the twin's cluster or the
//! [`OPERATION_LOG_API`] that flow tests read), plus [`ApiServer`], which starts the API
//! stand-in on a local address with a fresh CA (openssl CLI), a bearer token and a kubeconfig.
//!
//! The API stand-in serves discovery, GET/LIST/DELETE/POST/PUT, server-side apply (field
//! managers, conflicts, dry runs; `resourceVersion` moves only on change), TokenRequests, CRDs
//! that become Established and workloads reported rolled out; it keeps its objects in
//! `<state dir>/state.json` and logs each request (method, path, status, milliseconds) to a
//! file. The `helm` stand-in checks `upgrade --install --atomic --wait --version` and the
//! values file, and records releases as helm's own Secrets in that API. See the scripts'
//! headers for details.
//!
//! ```no_run
//! let dir = std::env::temp_dir().join("api-stand-in");
//! let api = hakube_lab::stand_ins::ApiServer::start(&dir, "127.0.0.1:16443".parse()?)?;
//! println!("kubeconfig: {}", api.kubeconfig().display());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::io::Write as _;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The Kubernetes API server stand-in (`kube-apiserver.py`): run it with
/// `--listen ADDR:PORT --cert F --key F --token-file F --state-dir D [--log F]` (objects in
/// `D/state.json`), or with kube-apiserver's own flag names and `--etcd-servers URL` (objects
/// in etcd under `/registry/`, shared by every stand-in on that etcd; see the script's docs).
#[must_use]
pub fn kube_apiserver() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/stand_ins/kube-apiserver.py")
}

/// The `helm` stand-in (an executable named `helm`; put its directory first on `PATH` or
/// pass the path). `HAKUBE_HELM_LOG` records its argv, `HAKUBE_HELM_OBJECTS` names a
/// directory of `<release>.json` objects it applies as the chart would.
#[must_use]
pub fn helm() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/stand_ins/helm")
}

/// The `kubeadm` stand-in's source (`kubeadm.py`), in [`ClusterApi::Cluster`] mode.
const KUBEADM_PY: &str = include_str!("stand_ins/kubeadm.py");
/// The `kubectl` stand-in's source (`kubectl.py`), in [`ClusterApi::Cluster`] mode.
const KUBECTL_PY: &str = include_str!("stand_ins/kubectl.py");
/// The line of both scripts that selects their mode.
const API_LINE: &str = "API = \"cluster\"\n";

/// The cluster the `kubeadm` and `kubectl` stand-ins work against (the scripts' headers say
/// what each mode does).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClusterApi {
    /// A cluster shaped like kubeadm's: `init` makes the PKI and runs etcd and the API
    /// stand-in ([`kube_apiserver`]) as static Pods through the twin's kubelet; joins go
    /// through discovery with the CA pin, control-plane joins add an etcd member. The twin's.
    Cluster,
    /// [`OPERATION_LOG_API`] at the control-plane endpoint (plain HTTP): no etcd, kubelet or
    /// systemd needed on the hosts; every operation is logged for tests to assert on.
    OperationLog,
}

impl ClusterApi {
    fn line(self) -> &'static str {
        match self {
            Self::Cluster => API_LINE,
            Self::OperationLog => "API = \"operation-log\"\n",
        }
    }
}

/// The `kubeadm` stand-in (a python3 script with PyYAML, `#!/usr/bin/python3`) working
/// against `api`: install it as `kubeadm`, e.g. with [`crate::Lab::stand_in`]. It checks the
/// arguments and the v1beta4 configuration as kubeadm v1.33 does and answers `init`
/// (`--upload-certs`), `init phase upload-certs`, `join`, `reset -f`, `token list|create|delete`,
/// `config images pull` and `version` with output shaped like the real one's.
#[must_use]
pub fn kubeadm_script(api: ClusterApi) -> String {
    KUBEADM_PY.replacen(API_LINE, api.line(), 1)
}

/// The `kubectl` stand-in (python3 with PyYAML) working against `api`: `get nodes`, `label
/// node`, and with [`ClusterApi::OperationLog`] `apply` (recorded as the CNI).
#[must_use]
pub fn kubectl_script(api: ClusterApi) -> String {
    KUBECTL_PY.replacen(API_LINE, api.line(), 1)
}

/// The cluster of [`ClusterApi::OperationLog`] (python3 standard library only): run it as
/// `python3 FILE ADDR PORT` where the control-plane endpoint points. It keeps members, the
/// bootstrap token, the uploaded-certs key, the CA pin, whether a CNI was applied and node
/// labels; refuses joins as a real cluster would; logs every operation with its node and the
/// `Host` it was sent to; `GET /state` returns it all as JSON. Joins of the nodes named in
/// `/etc/kubernetes/fake-api-fail` (on its host) fail.
pub const OPERATION_LOG_API: &str = include_str!("stand_ins/operation-log-api.py");

/// Why the API stand-in did not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StandInError {
    /// A file could not be written, or a program not started. Retry after fixing it.
    #[error("{what}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// `openssl` failed. Not retryable.
    #[error("openssl {args}: {stderr}")]
    Openssl {
        /// Its arguments.
        args: String,
        /// Its standard error.
        stderr: String,
    },
    /// The server did not listen in time; its log says why. Safe to retry.
    #[error("the API stand-in did not listen on {addr} within 10 s: {log}")]
    NotListening {
        /// The address.
        addr: SocketAddr,
        /// Its output.
        log: String,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> StandInError {
    let what = what.into();
    move |source| StandInError::Io { what, source }
}

fn openssl(dir: &Path, args: &[&str]) -> Result<(), StandInError> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(io("running openssl"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(StandInError::Openssl {
            args: args.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}

/// The files a stand-in API server uses: a CA, a server certificate for its address, a
/// bearer token and a kubeconfig naming all three, under one directory.
#[derive(Debug, Clone)]
pub struct ApiServerFiles {
    /// The directory.
    pub dir: PathBuf,
    /// The address it serves.
    pub addr: SocketAddr,
    /// The CA certificate (PEM) clients trust.
    pub ca_cert: PathBuf,
    /// The server certificate (PEM).
    pub cert: PathBuf,
    /// Its key.
    pub key: PathBuf,
    /// The bearer token file.
    pub token_file: PathBuf,
    /// The kubeconfig (server, CA data, token).
    pub kubeconfig: PathBuf,
    /// The object store.
    pub state_dir: PathBuf,
    /// The request log.
    pub log: PathBuf,
}

impl ApiServerFiles {
    /// Creates a CA, a server certificate for `addr`'s IP (and `localhost`), a random token
    /// and the kubeconfig under `dir`; files that exist are kept (so a restart keeps trust).
    ///
    /// # Errors
    /// When a file cannot be written or openssl fails.
    pub fn create(dir: &Path, addr: SocketAddr) -> Result<Self, StandInError> {
        Self::create_behind(dir, addr, addr, &[])
    }

    /// Like [`create`](Self::create) for a stand-in listening on `listen` that clients reach
    /// at `public` (a VIP in front of it, e.g. HAProxy on `VIP:6443`): the certificate names
    /// both addresses and `dns_names`, the kubeconfig points at `public`.
    ///
    /// # Errors
    /// When a file cannot be written or openssl fails.
    pub fn create_behind(
        dir: &Path,
        listen: SocketAddr,
        public: SocketAddr,
        dns_names: &[&str],
    ) -> Result<Self, StandInError> {
        let addr = listen;
        std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
        let f = Self {
            dir: dir.to_owned(),
            addr,
            ca_cert: dir.join("ca.crt"),
            cert: dir.join("tls.crt"),
            key: dir.join("tls.key"),
            token_file: dir.join("token"),
            kubeconfig: dir.join("kubeconfig"),
            state_dir: dir.join("state"),
            log: dir.join("requests.log"),
        };
        if !f.ca_cert.exists() {
            let ec = [
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
            ];
            let mut a = vec!["req", "-x509"];
            a.extend(ec);
            a.extend([
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                "-days",
                "30",
                "-subj",
                "/CN=kubernetes-stand-in-ca",
            ]);
            openssl(dir, &a)?;
            let mut a = vec!["req"];
            a.extend(ec);
            a.extend([
                "-keyout",
                "tls.key",
                "-out",
                "tls.csr",
                "-subj",
                "/CN=kube-apiserver",
            ]);
            openssl(dir, &a)?;
            std::fs::write(
                dir.join("ext"),
                format!(
                    "subjectAltName=IP:{},IP:{},DNS:localhost,DNS:kubernetes.default.svc{}\n\
                     basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
                    addr.ip(),
                    public.ip(),
                    dns_names
                        .iter()
                        .map(|d| format!(",DNS:{d}"))
                        .collect::<String>()
                ),
            )
            .map_err(io("writing ext"))?;
            openssl(
                dir,
                &[
                    "x509",
                    "-req",
                    "-in",
                    "tls.csr",
                    "-CA",
                    "ca.crt",
                    "-CAkey",
                    "ca.key",
                    "-CAcreateserial",
                    "-out",
                    "tls.crt",
                    "-days",
                    "30",
                    "-extfile",
                    "ext",
                ],
            )?;
        }
        if !f.token_file.exists() {
            let mut bytes = [0u8; 16];
            std::fs::File::open("/dev/urandom")
                .and_then(|mut r| std::io::Read::read_exact(&mut r, &mut bytes))
                .map_err(io("reading /dev/urandom"))?;
            let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            std::fs::write(&f.token_file, token).map_err(io("writing the token"))?;
        }
        let ca = std::fs::read(&f.ca_cert).map_err(io("reading the CA"))?;
        let token = std::fs::read_to_string(&f.token_file).map_err(io("reading the token"))?;
        let kubeconfig = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: stand-in\n  cluster:\n    server: https://{public}\n    certificate-authority-data: {}\nusers:\n- name: admin\n  user:\n    token: {}\ncontexts:\n- name: stand-in\n  context:\n    cluster: stand-in\n    user: admin\ncurrent-context: stand-in\n",
            b64(&ca),
            token.trim()
        );
        let mut k = std::fs::File::create(&f.kubeconfig).map_err(io("writing the kubeconfig"))?;
        k.write_all(kubeconfig.as_bytes())
            .map_err(io("writing the kubeconfig"))?;
        Ok(f)
    }

    /// The stand-in's arguments (after the script's path).
    #[must_use]
    pub fn args(&self) -> Vec<String> {
        let p = |p: &Path| p.display().to_string();
        vec![
            "--listen".into(),
            self.addr.to_string(),
            "--cert".into(),
            p(&self.cert),
            "--key".into(),
            p(&self.key),
            "--token-file".into(),
            p(&self.token_file),
            "--state-dir".into(),
            p(&self.state_dir),
            "--log".into(),
            p(&self.log),
        ]
    }
}

fn b64(data: &[u8]) -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for c in data.chunks(3) {
        let n = c.iter().fold(0u32, |a, b| (a << 8) | u32::from(*b)) << (8 * (3 - c.len()));
        for i in 0..4 {
            if i <= c.len() {
                s.push(char::from(T[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                s.push('=');
            }
        }
    }
    s
}

/// The API stand-in running on this machine (killed on drop).
#[derive(Debug)]
pub struct ApiServer {
    files: ApiServerFiles,
    child: Child,
}

impl ApiServer {
    /// Creates the files under `dir` ([`ApiServerFiles::create`]) and starts the stand-in on
    /// `addr`, waiting until it accepts connections. Its state survives a restart on the
    /// same `dir`.
    ///
    /// # Errors
    /// As [`ApiServerFiles::create`], or when it does not listen within 10 s.
    pub fn start(dir: &Path, addr: SocketAddr) -> Result<Self, StandInError> {
        let files = ApiServerFiles::create(dir, addr)?;
        let out = std::fs::File::create(dir.join("server.out")).map_err(io("server.out"))?;
        let err = out.try_clone().map_err(io("server.out"))?;
        let child = Command::new("python3")
            .arg(kube_apiserver())
            .args(files.args())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(io("starting python3"))?;
        let mut server = Self { files, child };
        let start = Instant::now();
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            let exited = server.child.try_wait().ok().flatten().is_some();
            if exited || start.elapsed() > Duration::from_secs(10) {
                return Err(StandInError::NotListening {
                    addr,
                    log: std::fs::read_to_string(dir.join("server.out")).unwrap_or_default(),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(server)
    }

    /// Its files.
    #[must_use]
    pub fn files(&self) -> &ApiServerFiles {
        &self.files
    }

    /// The kubeconfig naming it.
    #[must_use]
    pub fn kubeconfig(&self) -> &Path {
        &self.files.kubeconfig
    }

    /// The request log's lines (`METHOD PATH?QUERY STATUS MILLISECONDS`).
    #[must_use]
    pub fn requests(&self) -> Vec<String> {
        std::fs::read_to_string(&self.files.log)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Stops it (SIGKILL); its state stays in the state directory.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubeadm_and_kubectl_switch_mode_on_their_one_api_line() {
        for script in [KUBEADM_PY, KUBECTL_PY] {
            assert_eq!(script.matches(API_LINE).count(), 1);
        }
        for api in [ClusterApi::Cluster, ClusterApi::OperationLog] {
            for text in [kubeadm_script(api), kubectl_script(api)] {
                assert!(text.starts_with("#!/usr/bin/python3\n"));
                assert_eq!(
                    text.contains("API = \"operation-log\"\n"),
                    api == ClusterApi::OperationLog
                );
                // Valid python whatever the mode.
                let mut child = Command::new("python3")
                    .args(["-c", "import ast, sys; ast.parse(sys.stdin.read())"])
                    .stdin(Stdio::piped())
                    .spawn()
                    .expect("python3 runs");
                child
                    .stdin
                    .take()
                    .expect("piped")
                    .write_all(text.as_bytes())
                    .expect("written");
                assert!(child.wait().expect("exits").success());
            }
        }
    }

    #[test]
    fn base64_matches_the_rfc_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(b64(i.as_bytes()), o);
        }
    }
}
