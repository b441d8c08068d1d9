//! An in-memory, recording fake of [`RemoteExec`] for unit tests of orchestration logic
//! (feature `testing`).
//!
//! A [`FakeHost`] keeps a file system in a map, records every call, and answers commands from
//! canned responses matched by prefix of the command line (as [`Command::to_shell`] renders it
//! for this host). Unmatched commands succeed with empty output.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use hakube_remote::testing::{Call, FakeHost};
//! use hakube_remote::{push_file, Command, File, Output, PushOutcome, RemoteExec};
//! let host = FakeHost::new("cp1");
//! host.respond("kubeadm version", Output::ok("v1.32.0\n"));
//! let out = host.run_ok(&Command::new("kubeadm").arg("version")).await.unwrap();
//! assert_eq!(out.stdout_lossy(), "v1.32.0\n");
//! let f = File::new("/etc/kubernetes/kubeadm.yaml", "kind: InitConfiguration\n");
//! assert_eq!(push_file(&host, &f, false).await.unwrap(), PushOutcome::Created);
//! assert_eq!(push_file(&host, &f, false).await.unwrap(), PushOutcome::Unchanged);
//! assert_eq!(host.file("/etc/kubernetes/kubeadm.yaml").unwrap(), b"kind: InitConfiguration\n");
//! assert_eq!(host.commands(), vec!["kubeadm version".to_owned()]);
//! assert!(host.calls().contains(&Call::Upload("/etc/kubernetes/kubeadm.yaml".into())));
//! # });
//! ```

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use sha2::{Digest, Sha256};

use crate::{Command, Error, ExitStatus, File, FileState, Output, RemoteExec};

/// One recorded call on a [`FakeHost`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Call {
    /// `run` with the rendered command line (secrets included: it is a test fake).
    Run(String),
    /// `upload` of this path.
    Upload(String),
    /// `read_file` of this path.
    Read(String),
    /// `file_state` of this path.
    Stat(String),
}

/// A file in the fake's file system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeFile {
    /// Content.
    pub content: Vec<u8>,
    /// Mode bits.
    pub mode: u32,
    /// Owner.
    pub owner: String,
    /// Group.
    pub group: String,
}

#[derive(Debug, Default)]
struct State {
    files: BTreeMap<String, FakeFile>,
    calls: Vec<Call>,
    responses: Vec<(String, Output)>,
    stdin: Vec<(String, Vec<u8>)>,
    down: bool,
}

/// An in-memory host. See the [module docs](self).
#[derive(Debug)]
pub struct FakeHost {
    name: String,
    root: bool,
    state: Mutex<State>,
}

impl FakeHost {
    /// A reachable host logged in as root, with an empty file system.
    #[must_use]
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            root: true,
            state: Mutex::new(State::default()),
        }
    }

    /// Logs in as a non-root user (commands asking for sudo get `sudo -n --`).
    #[must_use]
    pub fn non_root(mut self) -> Self {
        self.root = false;
        self
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Puts a file (owned by root:root) into the fake file system.
    pub fn put_file(&self, path: impl Into<String>, content: impl Into<Vec<u8>>, mode: u32) {
        self.state().files.insert(
            path.into(),
            FakeFile {
                content: content.into(),
                mode,
                owner: "root".into(),
                group: "root".into(),
            },
        );
    }

    /// A file's content, if present.
    #[must_use]
    pub fn file(&self, path: &str) -> Option<Vec<u8>> {
        self.state().files.get(path).map(|f| f.content.clone())
    }

    /// A file with its metadata, if present.
    #[must_use]
    pub fn file_meta(&self, path: &str) -> Option<FakeFile> {
        self.state().files.get(path).cloned()
    }

    /// Answers every command whose rendered line starts with `prefix` with `output`. Later
    /// registrations win over earlier ones.
    pub fn respond(&self, prefix: impl Into<String>, output: Output) {
        self.state().responses.push((prefix.into(), output));
    }

    /// Makes commands starting with `prefix` exit with `code` and `stderr`.
    pub fn fail(&self, prefix: impl Into<String>, code: u32, stderr: &str) {
        self.respond(
            prefix,
            Output {
                stdout: Vec::new(),
                stderr: stderr.as_bytes().to_vec(),
                status: ExitStatus::Code(code),
            },
        );
    }

    /// Takes the host down (every call fails with [`Error::ConnectionLost`]) or brings it back.
    pub fn set_down(&self, down: bool) {
        self.state().down = down;
    }

    /// Every call so far, in order.
    #[must_use]
    pub fn calls(&self) -> Vec<Call> {
        self.state().calls.clone()
    }

    /// The rendered command lines run so far, in order.
    #[must_use]
    pub fn commands(&self) -> Vec<String> {
        self.state()
            .calls
            .iter()
            .filter_map(|c| match c {
                Call::Run(l) => Some(l.clone()),
                _ => None,
            })
            .collect()
    }

    /// Standard input given to commands, as (command line, bytes).
    #[must_use]
    pub fn stdin_seen(&self) -> Vec<(String, Vec<u8>)> {
        self.state().stdin.clone()
    }

    fn check_up(&self, what: &str) -> Result<(), Error> {
        if self.state().down {
            return Err(Error::ConnectionLost {
                host: self.name.clone(),
                command: what.to_owned(),
                reason: "fake host is down".into(),
            });
        }
        Ok(())
    }
}

#[async_trait]
impl RemoteExec for FakeHost {
    fn host(&self) -> &str {
        &self.name
    }

    fn address(&self) -> &str {
        &self.name
    }

    fn is_root(&self) -> bool {
        self.root
    }

    async fn run(&self, command: &Command) -> Result<Output, Error> {
        let line = command.to_shell(self.root)?;
        self.check_up(&command.redacted())?;
        let mut st = self.state();
        st.calls.push(Call::Run(line.clone()));
        if let Some(input) = command.stdin_bytes() {
            st.stdin.push((line.clone(), input.to_vec()));
        }
        let out = st
            .responses
            .iter()
            .rev()
            .find(|(p, _)| line.starts_with(p.as_str()))
            .map_or_else(|| Output::ok(Vec::new()), |(_, o)| o.clone());
        Ok(out)
    }

    async fn upload(&self, file: &File, _sudo: bool) -> Result<(), Error> {
        crate::exec::check_file(file)?;
        self.check_up(&format!("upload {}", file.path))?;
        let mut st = self.state();
        st.calls.push(Call::Upload(file.path.clone()));
        let old = st.files.get(&file.path).cloned();
        let login = if self.root { "root" } else { "user" };
        st.files.insert(
            file.path.clone(),
            FakeFile {
                content: file.content.clone(),
                mode: file.mode,
                owner: file
                    .owner
                    .clone()
                    .or_else(|| old.as_ref().map(|o| o.owner.clone()))
                    .unwrap_or_else(|| login.into()),
                group: file
                    .group
                    .clone()
                    .or_else(|| old.as_ref().map(|o| o.group.clone()))
                    .unwrap_or_else(|| login.into()),
            },
        );
        Ok(())
    }

    async fn read_file(&self, path: &str, _sudo: bool) -> Result<Vec<u8>, Error> {
        self.check_up(&format!("read {path}"))?;
        let mut st = self.state();
        st.calls.push(Call::Read(path.to_owned()));
        st.files
            .get(path)
            .map(|f| f.content.clone())
            .ok_or_else(|| Error::RemoteFile {
                host: self.name.clone(),
                op: "read",
                path: path.to_owned(),
                reason: "No such file or directory".into(),
            })
    }

    async fn file_state(&self, path: &str, _sudo: bool) -> Result<Option<FileState>, Error> {
        self.check_up(&format!("stat {path}"))?;
        let mut st = self.state();
        st.calls.push(Call::Stat(path.to_owned()));
        Ok(st.files.get(path).map(|f| FileState {
            sha256: hex::encode(Sha256::digest(&f.content)),
            mode: f.mode,
            owner: f.owner.clone(),
            group: f.group.clone(),
        }))
    }
}
