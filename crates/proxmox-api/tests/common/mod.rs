//! Starts the fakepve harness (tests/harness/fakepve_harness.py) and talks to it.

#![allow(dead_code, reason = "each test binary uses a part")]

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use hakube_proxmox_api::{Client, ClientBuilder, RetryPolicy, Secret, TaskPoll, TlsTrust};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};
use tokio::sync::Mutex;

static NEXT: AtomicU32 = AtomicU32::new(0);

/// The workspace's venv python, or None (the test then skips, saying why).
pub fn python() -> Option<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let candidates = [
        std::env::var_os("HAKUBE_VENV").map(|v| PathBuf::from(v).join("bin/python")),
        Some(root.join(".venv/bin/python")),
    ];
    candidates.into_iter().flatten().find(|p| p.exists())
}

pub struct Fake {
    child: Child,
    io: Mutex<(ChildStdin, Lines<BufReader<ChildStdout>>)>,
    pub url: String,
    pub ca: String,
    pub fingerprint: String,
}

impl Fake {
    /// Starts a fake on its own loopback address and a free port; None if fakepve is missing.
    pub async fn start(time_scale: f64) -> Option<Self> {
        let Some(py) = python() else {
            eprintln!("SKIP: no venv with fakepve (run scripts/install-test-deps)");
            return None;
        };
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let host = format!("127.0.{}.{}", 10 + (std::process::id() % 200), 2 + n % 250);
        let script =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/harness/fakepve_harness.py");
        let mut child = tokio::process::Command::new(py)
            .arg(script)
            .args([
                "--host",
                &host,
                "--port",
                "0",
                "--time-scale",
                &time_scale.to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start fakepve harness");
        let stdin = child.stdin.take().expect("stdin");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let first = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .expect("harness start timeout")
            .expect("harness output")
            .expect("harness line");
        let hello: Value = serde_json::from_str(&first).expect("hello json");
        let ca_path = PathBuf::from(hello["ca"].as_str().expect("ca"));
        let ca = std::fs::read_to_string(&ca_path).expect("read ca");
        // The harness's temporary directory only holds the certificate, now in memory (its key
        // is gone once the server runs). Remove it here: `Drop` kills the harness, which then
        // cannot clean up after itself.
        if let Some(dir) = ca_path.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
        Some(Self {
            child,
            io: Mutex::new((stdin, lines)),
            url: hello["url"].as_str().expect("url").to_owned(),
            ca,
            fingerprint: hello["fingerprint"].as_str().expect("fp").to_owned(),
        })
    }

    /// Sends one command; panics on a harness error.
    pub async fn cmd(&self, cmd: Value) -> Value {
        let mut io = self.io.lock().await;
        let mut line = serde_json::to_string(&cmd).expect("json");
        line.push('\n');
        io.0.write_all(line.as_bytes()).await.expect("write");
        io.0.flush().await.expect("flush");
        let answer = io.1.next_line().await.expect("read").expect("line");
        let v: Value = serde_json::from_str(&answer).expect("answer json");
        if let Some(e) = v.get("error") {
            panic!("harness command {cmd} failed: {e}");
        }
        v["ok"].clone()
    }

    pub fn builder(&self) -> ClientBuilder {
        ClientBuilder::new(&self.url)
            .trust(TlsTrust::CaPem(self.ca.clone()))
            .timeout(Duration::from_secs(20))
            .retry_policy(RetryPolicy {
                max_attempts: 6,
                base_delay: Duration::from_millis(20),
                max_delay: Duration::from_millis(200),
            })
            .task_poll(TaskPoll {
                min_interval: Duration::from_millis(5),
                max_interval: Duration::from_millis(100),
                ..TaskPoll::default()
            })
    }

    /// A client logging in as root@pam / secret, trusting the fake's certificate.
    pub fn client(&self) -> Client {
        self.builder()
            .password("root@pam", Secret::new("secret"))
            .build()
            .expect("client")
    }

    /// Requests the fake saw from index `since`.
    pub async fn requests(&self, since: u64) -> Vec<(String, String, String)> {
        let v = self.cmd(json!({"op": "requests", "since": since})).await;
        v.as_array()
            .expect("list")
            .iter()
            .map(|r| {
                (
                    r["method"].as_str().unwrap_or("").to_owned(),
                    r["path"].as_str().unwrap_or("").to_owned(),
                    r["body"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect()
    }

    pub async fn request_count(&self) -> u64 {
        self.cmd(json!({"op": "request_count"}))
            .await
            .as_u64()
            .expect("count")
    }

    pub async fn vms(&self) -> Vec<Value> {
        self.cmd(json!({"op": "vms"}))
            .await
            .as_array()
            .expect("vms")
            .clone()
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// Mutating requests (anything but GET, and not the login).
pub fn mutating(reqs: &[(String, String, String)]) -> Vec<String> {
    reqs.iter()
        .filter(|(m, p, _)| m != "GET" && !p.ends_with("/access/ticket"))
        .map(|(m, p, _)| format!("{m} {p}"))
        .collect()
}
