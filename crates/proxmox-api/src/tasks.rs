//! Task status, logs and waiting.

#[cfg(feature = "client")]
use std::time::Duration;

use serde::Deserialize;
#[cfg(feature = "client")]
use tokio::time::Instant;
#[cfg(feature = "client")]
use tracing::debug;

use crate::Upid;
#[cfg(feature = "client")]
use crate::transport::Method;
use crate::wire::de;
#[cfg(feature = "client")]
use crate::wire::{Params, segment};
#[cfg(feature = "client")]
use crate::{Client, Error};

/// `GET /nodes/{node}/tasks/{upid}/status`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[non_exhaustive]
pub struct TaskStatus {
    /// `running` or `stopped`.
    pub status: String,
    /// When stopped: `OK`, `WARNINGS: n`, or the error text.
    #[serde(default)]
    pub exitstatus: Option<String>,
    /// The task type.
    #[serde(rename = "type", default)]
    pub task_type: String,
    /// The object id.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub id: Option<String>,
    /// The node.
    #[serde(default)]
    pub node: String,
    /// Who started it.
    #[serde(default)]
    pub user: String,
    /// Start time (epoch seconds).
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub starttime: Option<u64>,
}

impl TaskStatus {
    #[cfg(feature = "client")]
    fn running() -> Self {
        Self {
            status: "running".into(),
            exitstatus: None,
            task_type: String::new(),
            id: None,
            node: String::new(),
            user: String::new(),
            starttime: None,
        }
    }

    /// True while the task runs.
    pub fn is_running(&self) -> bool {
        self.status == "running"
    }
}

/// One line of `GET /nodes/{node}/tasks/{upid}/log`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[non_exhaustive]
pub struct TaskLogLine {
    /// Line number, from 1.
    #[serde(deserialize_with = "de::u64")]
    pub n: u64,
    /// The text.
    pub t: String,
}

/// An entry of `GET /nodes/{node}/tasks` (the exit text is in `status` once stopped).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[non_exhaustive]
pub struct TaskListEntry {
    /// The task.
    pub upid: Upid,
    /// Task type.
    #[serde(rename = "type", default)]
    pub task_type: String,
    /// Object id.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub id: Option<String>,
    /// Exit status once stopped (`OK`, error text); `RUNNING` while active (PVE sets it
    /// for every entry of its active list that has none).
    #[serde(default)]
    pub status: Option<String>,
    /// End time, once stopped.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub endtime: Option<u64>,
}

impl TaskListEntry {
    /// True while the task runs.
    ///
    /// PVE lists a running task with `status: "RUNNING"` (pve-manager `PVE/API2/Tasks.pm`,
    /// `node_tasks`: `$task->{status} = 'RUNNING' if !$task->{status}`); an absent status or
    /// a lower-case `running` (older fakes and proxies) reads the same.
    pub fn is_active(&self) -> bool {
        self.endtime.is_none()
            && self
                .status
                .as_deref()
                .is_none_or(|s| s.eq_ignore_ascii_case("running"))
    }
}

/// The last `GET /nodes/{node}/tasks?source=active` of a node, shared by its waits.
#[cfg(feature = "client")]
#[derive(Default)]
pub(crate) struct ActiveList {
    last: tokio::sync::Mutex<Option<(Instant, std::sync::Arc<Vec<String>>)>>,
    /// Task waits on the node now.
    waiters: std::sync::atomic::AtomicUsize,
}

/// Counts a wait on a node while it lives.
#[cfg(feature = "client")]
struct Waiting(std::sync::Arc<ActiveList>);

#[cfg(feature = "client")]
impl Waiting {
    fn new(list: std::sync::Arc<ActiveList>) -> Self {
        list.waiters
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Self(list)
    }

    /// True if other waits run on the node too.
    fn shared(&self) -> bool {
        self.0.waiters.load(std::sync::atomic::Ordering::Relaxed) > 1
    }
}

#[cfg(feature = "client")]
impl Drop for Waiting {
    fn drop(&mut self) {
        self.0
            .waiters
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// One page of a task log, with the number of lines the log has in all.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TaskLogPage {
    /// The lines asked for.
    pub lines: Vec<TaskLogLine>,
    /// Lines in the whole log (PVE's `total`); the page's length when the server did not say.
    pub total: u64,
}

/// A task that ended well.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TaskOutcome {
    /// The task.
    pub upid: Upid,
    /// `OK` or `WARNINGS: n`.
    pub exitstatus: String,
    /// The number of warnings (0 for `OK`).
    pub warnings: u32,
}

/// How a task's exit status reads.
#[cfg(feature = "client")]
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Exit {
    Ok,
    Warnings(u32),
    Failed(String),
}

#[cfg(feature = "client")]
pub(crate) fn classify_exit(exitstatus: &str) -> Exit {
    let s = exitstatus.trim();
    if s == "OK" {
        Exit::Ok
    } else if let Some(n) = s.strip_prefix("WARNINGS:") {
        Exit::Warnings(n.trim().parse().unwrap_or(1))
    } else {
        Exit::Failed(s.to_owned())
    }
}

#[cfg(feature = "client")]
fn task_path(upid: &Upid, what: &str) -> String {
    format!(
        "/nodes/{}/tasks/{}/{what}",
        segment(upid.node()),
        segment(upid.as_str())
    )
}

#[cfg(feature = "client")]
impl Client {
    /// `GET /nodes/{node}/tasks`: the node's tasks, optionally of one guest, optionally only
    /// the active ones.
    pub async fn node_tasks(
        &self,
        node: &str,
        vmid: Option<u32>,
        active_only: bool,
    ) -> Result<Vec<TaskListEntry>, Error> {
        let p = Params::new()
            .opt("vmid", vmid)
            .opt("source", active_only.then_some("active"))
            .set("limit", 500u32);
        let all: Vec<TaskListEntry> = self
            .get(&format!("/nodes/{}/tasks", segment(node)), &p)
            .await?;
        Ok(if active_only {
            all.into_iter().filter(TaskListEntry::is_active).collect()
        } else {
            all
        })
    }

    /// The task's status, asked on the node it runs on.
    pub async fn task_status(&self, upid: &Upid) -> Result<TaskStatus, Error> {
        self.get(&task_path(upid, "status"), &Params::new()).await
    }

    /// Lines of the task log from `start` (0-based), at most `limit`.
    pub async fn task_log(
        &self,
        upid: &Upid,
        start: u64,
        limit: u64,
    ) -> Result<Vec<TaskLogLine>, Error> {
        Ok(self.task_log_page(upid, start, limit).await?.lines)
    }

    /// A page of the task log from `start` (0-based), at most `limit` lines, with the
    /// log's `total`, so a caller can page through logs of any length.
    pub async fn task_log_page(
        &self,
        upid: &Upid,
        start: u64,
        limit: u64,
    ) -> Result<TaskLogPage, Error> {
        let path = task_path(upid, "log");
        let env = self
            .request_envelope(
                Method::Get,
                &path,
                &Params::new().set("start", start).set("limit", limit),
            )
            .await?;
        let lines: Vec<TaskLogLine> =
            crate::wire::decode(env.data).map_err(|source| Error::Decode {
                method: "GET",
                path: path.clone(),
                source,
            })?;
        let total = env
            .total
            .unwrap_or_else(|| start.saturating_add(lines.len() as u64));
        Ok(TaskLogPage { lines, total })
    }

    /// The last `n` lines of the task log (empty if the log cannot be read). Reads the
    /// log's `total` first, so this is right for logs of any length (two requests when the
    /// log is longer than `n`).
    pub async fn task_log_tail(&self, upid: &Upid, n: usize) -> Vec<String> {
        let n = n as u64;
        let Ok(first) = self.task_log_page(upid, 0, n.max(1)).await else {
            return Vec::new();
        };
        let page = if first.total > n {
            match self.task_log_page(upid, first.total - n, n).await {
                Ok(p) => p,
                Err(_) => return Vec::new(),
            }
        } else {
            first
        };
        let skip = (page.lines.len() as u64).saturating_sub(n) as usize;
        page.lines.into_iter().skip(skip).map(|l| l.t).collect()
    }

    /// Waits for a task, with no deadline other than one hour.
    pub async fn wait_task(&self, upid: &Upid) -> Result<TaskOutcome, Error> {
        self.wait_task_timeout(upid, Duration::from_secs(3600))
            .await
    }

    /// Waits for a task to stop: polls its node with an interval growing with the time
    /// waited, and never more often than [`crate::TaskPoll::node_gap`] per node over all
    /// waits; a `no such task` right after creation is retried for
    /// [`crate::TaskPoll::unknown_grace`]. `WARNINGS: n` is success; any other exit status
    /// is [`Error::Task`] with the log tail.
    ///
    /// The HA tasks (`hastart`, `hastop`, `hamigrate`, `harelocate`) that PVE answers for
    /// HA-managed guests only queue a request for the HA manager and end at once; for them
    /// this also waits until the guest reached the requested state (running, stopped, on
    /// another node), within the same `timeout`.
    pub async fn wait_task_timeout(
        &self,
        upid: &Upid,
        timeout: Duration,
    ) -> Result<TaskOutcome, Error> {
        let started = Instant::now();
        let outcome = self.wait_worker(upid, timeout).await?;
        let left = timeout.saturating_sub(started.elapsed());
        let vmid = upid.id().parse::<u32>().ok();
        match (upid.task_type(), vmid) {
            ("hastart", Some(vmid)) => {
                self.wait_vm_status(upid.node(), vmid, "running", left)
                    .await?;
            }
            ("hastop", Some(vmid)) => {
                self.wait_vm_status(upid.node(), vmid, "stopped", left)
                    .await?;
            }
            ("hamigrate" | "harelocate", Some(vmid)) => {
                self.wait_vm_moved(vmid, upid.node(), left).await?;
            }
            _ => {}
        }
        Ok(outcome)
    }

    /// Waits for the next free status-poll slot of `node` (see [`crate::TaskPoll::node_gap`]).
    async fn poll_slot(&self, node: &str) {
        let gap = self.inner.poll.node_gap;
        if gap.is_zero() {
            return;
        }
        let at = {
            let mut slots = self
                .inner
                .poll_slots
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let now = tokio::time::Instant::now();
            let slot = slots.entry(node.to_owned()).or_insert(now);
            let at = (*slot).max(now);
            *slot = at + gap;
            at
        };
        tokio::time::sleep_until(at).await;
    }

    /// True if a listing of `upid`'s node's active tasks requested after `since` shows it;
    /// `None` when the listing cannot be had (then the status is asked directly).
    async fn listed_active(&self, upid: &Upid, since: Instant) -> Option<bool> {
        let upids = self.active_upids_since(upid.node(), since).await?;
        Some(upids.iter().any(|u| u == upid.as_str()))
    }

    /// The shared active-task listing of `node`.
    fn active_list(&self, node: &str) -> std::sync::Arc<ActiveList> {
        let mut lists = self
            .inner
            .active_lists
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        std::sync::Arc::clone(lists.entry(node.to_owned()).or_default())
    }

    /// The UPIDs of `node`'s active tasks, from a `GET /nodes/{node}/tasks?source=active`
    /// requested no earlier than `since`. Waits and re-observations on one node share the
    /// listing: who finds one taken after `since` uses it, else it asks (the others queue
    /// behind the lock and reuse the answer), within the node's poll gap
    /// ([`crate::TaskPoll::node_gap`]). `None` when the listing cannot be had.
    pub(crate) async fn active_upids_since(
        &self,
        node: &str,
        since: Instant,
    ) -> Option<std::sync::Arc<Vec<String>>> {
        let list = self.active_list(node);
        let mut guard = list.last.lock().await;
        if let Some((at, upids)) = guard.as_ref()
            && *at >= since
        {
            return Some(std::sync::Arc::clone(upids));
        }
        self.poll_slot(node).await;
        let at = Instant::now();
        let p = Params::new()
            .set("source", "active")
            .set("limit", 10_000u32);
        let all: Vec<TaskListEntry> = self
            .get(&format!("/nodes/{}/tasks", segment(node)), &p)
            .await
            .ok()?;
        let upids: std::sync::Arc<Vec<String>> = std::sync::Arc::new(
            all.into_iter()
                .filter(TaskListEntry::is_active)
                .map(|t| t.upid.as_str().to_owned())
                .collect(),
        );
        *guard = Some((at, std::sync::Arc::clone(&upids)));
        Some(upids)
    }

    /// The UPIDs of the active tasks of guest `vmid` on `node`, from the node's listing
    /// shared as in [`Client::wait_task`] (one request for all the guests of a node that
    /// ask at about the same time), requested no earlier than `since`.
    pub(crate) async fn guest_active_tasks_since(
        &self,
        node: &str,
        vmid: u32,
        since: Instant,
    ) -> Result<Vec<String>, Error> {
        let id = vmid.to_string();
        let Some(upids) = self.active_upids_since(node, since).await else {
            // The shared listing failed: ask for this guest's tasks alone (and surface
            // that request's error).
            return Ok(self
                .node_tasks(node, Some(vmid), true)
                .await?
                .into_iter()
                .filter(|t| t.id.as_deref() == Some(id.as_str()))
                .map(|t| t.upid.to_string())
                .collect());
        };
        Ok(upids
            .iter()
            .filter(|u| u.parse::<Upid>().is_ok_and(|u| u.id() == id))
            .cloned()
            .collect())
    }

    async fn wait_worker(&self, upid: &Upid, timeout: Duration) -> Result<TaskOutcome, Error> {
        let poll = self.inner.poll.clone();
        let started = Instant::now();
        // A task that was just started is still running: the first look waits a little.
        tokio::time::sleep(poll.min_interval.min(timeout)).await;
        let waiting = Waiting::new(self.active_list(upid.node()));
        // Later looks go through the node's shared listing. So does the first one when other
        // waits run on the node: a listing requested after the task was created shows it
        // while it runs (PVE adds a worker to the active list before answering its UPID),
        // so a running task costs no status request of its own (500 VMs on 50 nodes: 4 -> 2
        // status requests per VM). A lone wait asks its task's status at once.
        let mut last_look = started;
        let mut first = true;
        loop {
            let listed = if poll.shared_active_list && (!first || waiting.shared()) {
                self.listed_active(upid, last_look).await
            } else {
                None
            };
            first = false;
            let look = Instant::now();
            let status = if listed == Some(true) {
                None
            } else {
                // A task the (throttled) listing no longer shows is asked once for its exit
                // status, without queueing for a poll slot: that request is one per task,
                // not per look, and ten tasks ending together on a node would otherwise
                // wait node_gap each in turn (250 ms for the tenth).
                if listed.is_none() {
                    self.poll_slot(upid.node()).await;
                }
                Some(self.task_status(upid).await)
            };
            last_look = look;
            match status.unwrap_or_else(|| Ok(TaskStatus::running())) {
                Ok(st) if !st.is_running() => {
                    let exit = st.exitstatus.unwrap_or_else(|| "unknown".into());
                    debug!(upid = %upid, exit = %exit, "task stopped");
                    return match classify_exit(&exit) {
                        Exit::Ok => Ok(TaskOutcome {
                            upid: upid.clone(),
                            exitstatus: exit,
                            warnings: 0,
                        }),
                        Exit::Warnings(n) => Ok(TaskOutcome {
                            upid: upid.clone(),
                            exitstatus: exit,
                            warnings: n,
                        }),
                        Exit::Failed(text) => Err(Error::Task {
                            upid: Box::new(upid.clone()),
                            exitstatus: text,
                            log_tail: self.task_log_tail(upid, poll.log_tail).await,
                        }),
                    };
                }
                Ok(_) => {}
                Err(e) if is_no_such_task(&e) => {
                    if started.elapsed() > poll.unknown_grace {
                        return Err(e);
                    }
                    debug!(upid = %upid, "task not known yet");
                }
                Err(e) => return Err(e),
            }
            let waited = started.elapsed();
            if waited >= timeout {
                return Err(Error::Timeout {
                    what: format!("task {upid}"),
                    seconds: waited.as_secs_f64(),
                });
            }
            let interval = waited
                .mul_f64(poll.fraction)
                .clamp(poll.min_interval, poll.max_interval);
            tokio::time::sleep(interval).await;
        }
    }
}

/// PVE's answer for a UPID whose task file does not exist (yet): a parameter error,
/// `400 Parameter verification failed.` with `errors.upid = "no such task"`
/// (pve-manager `PVE/API2/Tasks.pm`, `raise_param_exc({ upid => "no such task" })`).
/// Older or proxied answers carrying the text in the message are accepted too.
#[cfg(feature = "client")]
pub(crate) fn is_no_such_task(e: &Error) -> bool {
    match e {
        Error::Api {
            status,
            message,
            errors,
            ..
        } => {
            errors
                .get("upid")
                .is_some_and(|m| m.contains("no such task"))
                || (*status == 400 && message.contains("no such task"))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "client")]
    #[test]
    fn exit_statuses() {
        assert_eq!(classify_exit("OK"), Exit::Ok);
        assert_eq!(classify_exit("WARNINGS: 3"), Exit::Warnings(3));
        assert_eq!(
            classify_exit("clone failed: cfs-lock 'storage-x' error: got lock request timeout"),
            Exit::Failed(
                "clone failed: cfs-lock 'storage-x' error: got lock request timeout".into()
            )
        );
        assert_eq!(
            classify_exit("interrupted by signal"),
            Exit::Failed("interrupted by signal".into())
        );
    }

    #[test]
    fn status_shapes() {
        // Shapes of the recorded PVE 6.2 / 7.4 task status answers.
        let running: TaskStatus = serde_json::from_str(
            r#"{"type":"qmclone","status":"running","pstart":6060,"starttime":1606311390,"pid":47202,
            "upid":"UPID:pve:0000B862:000017AC:5FBE5ADE:qmclone:100:root@pam:","node":"pve","user":"root@pam","id":"100"}"#,
        )
        .unwrap();
        assert!(running.is_running());
        assert_eq!(running.starttime, Some(1_606_311_390));
        let stopped: TaskStatus = serde_json::from_str(
            r#"{"exitstatus":"OK","status":"stopped","type":"qmclone","id":100,"node":"pve","user":"root@pam"}"#,
        )
        .unwrap();
        assert!(!stopped.is_running());
        assert_eq!(stopped.id.as_deref(), Some("100"));
        // `GET /nodes/{node}/tasks?source=active` on PVE: a running task says `RUNNING`
        // (pve-manager PVE/API2/Tasks.pm); one that ended carries its exit status.
        let listed: Vec<TaskListEntry> = serde_json::from_str(
            r#"[{"upid":"UPID:pve1:0000B862:000017AC:5FBE5ADE:qmclone:100:root@pam:","node":"pve1",
              "pid":47202,"pstart":6060,"starttime":1606311390,"type":"qmclone","id":"100",
              "user":"root@pam","status":"RUNNING"},
             {"upid":"UPID:pve1:0000B863:000017AD:5FBE5ADF:qmstart:101:root@pam:","node":"pve1",
              "starttime":1606311391,"type":"qmstart","id":"101","user":"root@pam",
              "endtime":1606311395,"status":"start failed: QEMU exited with code 1"}]"#,
        )
        .unwrap();
        assert!(listed[0].is_active());
        assert!(!listed[1].is_active());
        let log: Vec<TaskLogLine> = serde_json::from_str(
            r#"[{"n":1,"t":"create full clone of drive scsi0"},{"n":"2","t":"TASK OK"}]"#,
        )
        .unwrap();
        assert_eq!(log[1].n, 2);
    }
}
