//! Running one step on many hosts with a concurrency bound, keep-going or fail-fast, a result
//! per host and progress reporting.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::StreamExt as _;
use tracing::Instrument as _;

use crate::{Error, RemoteExec};

/// What to do when a host fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailureMode {
    /// Run every host; report each failure.
    KeepGoing,
    /// Start no new host after the first failure (hosts already running finish; the others
    /// report [`Error::Skipped`]).
    FailFast,
}

/// Fan-out settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FanOut {
    /// At most this many hosts at once (at least 1).
    pub concurrency: usize,
    /// Keep going or stop at the first failure.
    pub failure: FailureMode,
}

impl FanOut {
    /// At most `concurrency` hosts at once, keep going on failures.
    #[must_use]
    pub fn new(concurrency: usize) -> Self {
        Self {
            concurrency: concurrency.max(1),
            failure: FailureMode::KeepGoing,
        }
    }

    /// Stop starting hosts after the first failure.
    #[must_use]
    pub fn fail_fast(mut self) -> Self {
        self.failure = FailureMode::FailFast;
        self
    }
}

impl Default for FanOut {
    /// 16 hosts at once, keep going.
    fn default() -> Self {
        Self::new(16)
    }
}

/// The result of a step on one host.
#[derive(Debug)]
pub struct HostResult<T> {
    /// The host's name.
    pub host: String,
    /// What the step returned, or why it failed (or [`Error::Skipped`]).
    pub result: Result<T, Error>,
}

/// Receives progress events from fan-outs and the plan executor. Every event is also emitted
/// as a `tracing` event with `step` and `host` fields.
pub trait Progress: Send + Sync {
    /// A host started a step.
    fn started(&self, step: &str, host: &str) {
        let _ = (step, host);
    }

    /// A host finished a step; `error` is `None` on success.
    fn finished(&self, step: &str, host: &str, error: Option<&Error>) {
        let _ = (step, host, error);
    }
}

/// A [`Progress`] that ignores events (tracing events are still emitted).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {}

/// Runs `f` on every host, at most `opts.concurrency` at a time, and returns one result per
/// host in the order of `hosts`.
///
/// Each call runs inside a tracing span `step` carrying `step` and `host`.
///
/// ```
/// # #[cfg(feature = "testing")] {
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use std::sync::Arc;
/// use hakube_remote::{fan_out, Command, FanOut, NoProgress, RemoteExec};
/// use hakube_remote::testing::FakeHost;
/// let hosts: Vec<Arc<dyn RemoteExec>> =
///     vec![Arc::new(FakeHost::new("a")), Arc::new(FakeHost::new("b"))];
/// let results = fan_out(&hosts, "uptime", &FanOut::new(8), &NoProgress, |h| async move {
///     h.run_ok(&Command::new("uptime")).await
/// })
/// .await;
/// assert!(results.iter().all(|r| r.result.is_ok()));
/// # }); }
/// ```
pub async fn fan_out<T, F, Fut>(
    hosts: &[Arc<dyn RemoteExec>],
    step: &str,
    opts: &FanOut,
    progress: &dyn Progress,
    f: F,
) -> Vec<HostResult<T>>
where
    F: Fn(Arc<dyn RemoteExec>) -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    let failed = AtomicBool::new(false);
    let failed = &failed;
    let f = &f;
    let mut results: Vec<(usize, HostResult<T>)> = futures::stream::iter(hosts.iter().enumerate())
        .map(|(i, h)| async move {
            let host = h.host().to_owned();
            if opts.failure == FailureMode::FailFast && failed.load(Ordering::SeqCst) {
                tracing::info!(step, host = %host, "skipped after an earlier failure");
                let err = Error::Skipped { host: host.clone() };
                progress.finished(step, &host, Some(&err));
                return (
                    i,
                    HostResult {
                        host,
                        result: Err(err),
                    },
                );
            }
            let span = tracing::info_span!("step", step, host = %host);
            let result = async {
                tracing::debug!("started");
                progress.started(step, &host);
                let result = f(Arc::clone(h)).await;
                match &result {
                    Ok(_) => tracing::debug!("finished"),
                    Err(e) => tracing::warn!(error = %e, "failed"),
                }
                progress.finished(step, &host, result.as_ref().err());
                result
            }
            .instrument(span)
            .await;
            if result.is_err() {
                failed.store(true, Ordering::SeqCst);
            }
            (i, HostResult { host, result })
        })
        .buffer_unordered(opts.concurrency.max(1))
        .collect()
        .await;
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}
