//! One progress view for the stages.
//!
//! On a terminal: a bar for the stage (its name, the hosts or VMs done out of those started,
//! the time) and one line per host or VM showing the step it is at, redrawn in place, with the
//! stage's other output printed above them. Otherwise (a pipe, a log file, CI): plain lines,
//! one per event, which is what tests and logs read.
//!
//! The stages print through [`say`] and report host events through [`host`], so both views
//! show the same events. `HAKUBE_PROGRESS=plain` forces plain lines on a terminal.
//!
//! indicatif draws the bars: it is the progress crate most Rust CLIs use (cargo-binstall,
//! rustup's successors, uv), keeps bars below lines printed through it, and hides itself when
//! the output is not a terminal.

use std::collections::BTreeMap;
use std::io::IsTerminal as _;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

/// Where a host is in its work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// It started this step (and is still in it).
    Working,
    /// It finished everything it had to do in this stage.
    Done,
    /// It failed (the message says why).
    Failed,
}

/// The view: bars on a terminal, plain lines otherwise.
struct View {
    bars: Option<Bars>,
}

struct Bars {
    multi: MultiProgress,
    stage: Mutex<Option<ProgressBar>>,
    hosts: Mutex<BTreeMap<String, ProgressBar>>,
}

fn view() -> &'static View {
    static VIEW: OnceLock<View> = OnceLock::new();
    VIEW.get_or_init(|| {
        let plain = std::env::var("HAKUBE_PROGRESS").is_ok_and(|v| v == "plain");
        let bars = (!plain && std::io::stdout().is_terminal()).then(|| Bars {
            multi: MultiProgress::new(),
            stage: Mutex::new(None),
            hosts: Mutex::new(BTreeMap::new()),
        });
        View { bars }
    })
}

/// Whether bars are drawn (standard output is a terminal).
#[must_use]
pub fn bars() -> bool {
    view().bars.is_some()
}

/// Prints a line: above the bars on a terminal, as is otherwise.
pub fn say(line: impl AsRef<str>) {
    let line = line.as_ref();
    match &view().bars {
        Some(b) => {
            let _ = b.multi.println(line);
        }
        None => println!("{line}"),
    }
}

/// A stage starts: on a terminal, its bar (the earlier stage's host lines are cleared).
pub fn stage(name: &str) {
    match &view().bars {
        Some(b) => {
            clear_hosts(b);
            let bar = b.multi.add(ProgressBar::new(0));
            bar.set_style(
                ProgressStyle::with_template("{spinner} {prefix:<10} {pos}/{len} done  {elapsed}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.set_prefix(name.to_owned());
            bar.enable_steady_tick(Duration::from_millis(120));
            if let Some(old) = lock(&b.stage).replace(bar) {
                old.finish_and_clear();
            }
        }
        None => println!("\n== {name}"),
    }
}

/// The stage ends with `line` (`== configure done: ...`).
pub fn stage_done(line: &str) {
    match &view().bars {
        Some(b) => {
            clear_hosts(b);
            if let Some(bar) = lock(&b.stage).take() {
                bar.finish_and_clear();
            }
            let _ = b.multi.println(line);
        }
        None => println!("{line}"),
    }
}

/// A host (or VM) event: on a terminal its line shows `step` (and the stage bar counts it when
/// done); otherwise `line` is printed, as the stages always printed it.
pub fn host(host: &str, step: &str, state: State, line: impl AsRef<str>) {
    let Some(b) = &view().bars else {
        println!("{}", line.as_ref());
        return;
    };
    let mut hosts = lock(&b.hosts);
    // A host that finished one phase (its host plan) and starts another (kubeadm) gets a new line.
    if state == State::Working
        && hosts.get(host).is_some_and(ProgressBar::is_finished)
        && let Some(old) = hosts.remove(host)
    {
        b.multi.remove(&old);
    }
    let bar = hosts.entry(host.to_owned()).or_insert_with(|| {
        let bar = b.multi.add(ProgressBar::new_spinner());
        bar.set_style(
            ProgressStyle::with_template("  {spinner} {prefix:<18} {wide_msg} {elapsed:>4}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_prefix(host.to_owned());
        bar.enable_steady_tick(Duration::from_millis(120));
        if let Some(stage) = lock(&b.stage).as_ref() {
            stage.inc_length(1);
        }
        bar
    });
    match state {
        State::Working => bar.set_message(step.to_owned()),
        State::Done | State::Failed => {
            if !bar.is_finished() {
                let mark = if state == State::Done {
                    "done"
                } else {
                    "FAILED"
                };
                bar.finish_with_message(format!("{mark}: {step}"));
                if let Some(stage) = lock(&b.stage).as_ref() {
                    stage.inc(1);
                }
            }
            if state == State::Failed {
                // A failure stays readable after the bars are gone.
                let _ = b.multi.println(line.as_ref());
            }
        }
    }
}

fn clear_hosts(b: &Bars) {
    for (_, bar) in std::mem::take(&mut *lock(&b.hosts)) {
        bar.finish_and_clear();
        b.multi.remove(&bar);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
