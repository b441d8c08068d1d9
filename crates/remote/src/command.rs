//! Commands, their quoting (done here and nowhere else), and their results.

use std::fmt;
use std::time::Duration;

use crate::Error;
use hakube_host_state::{Secret, shell_quote};

#[derive(Clone, PartialEq, Eq)]
struct Word {
    value: String,
    secret: bool,
}

impl Word {
    fn shown(&self) -> String {
        if self.secret {
            "***".to_owned()
        } else {
            shell_quote(&self.value)
        }
    }
}

/// A command to run on a remote host: a program with arguments, environment variables,
/// optional standard input, a timeout and an optional `sudo`.
///
/// Arguments are plain strings: quoting for the remote shell happens in one place
/// ([`Command::to_shell`]). For pipelines or redirections use [`Command::shell`], which runs a
/// script with `sh -c` (the script itself is passed as one quoted argument).
///
/// Values added with [`Command::secret_arg`] or [`Command::secret_env`] are sent to the host but
/// shown as `***` in logs, `Debug`, `Display` and error messages.
///
/// ```
/// use hakube_remote::Command;
/// let cmd = Command::new("systemctl").arg("reload").arg("haproxy").sudo(true);
/// assert_eq!(cmd.to_shell(false).unwrap(), "sudo -n -- systemctl reload haproxy");
/// // root needs no sudo
/// assert_eq!(cmd.to_shell(true).unwrap(), "systemctl reload haproxy");
/// let cmd = Command::shell("echo a | tr a b").env("LC_ALL", "C");
/// assert_eq!(cmd.to_shell(true).unwrap(), "env LC_ALL=C sh -c 'echo a | tr a b'");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Command {
    program: Word,
    args: Vec<Word>,
    env: Vec<(String, Word)>,
    stdin: Option<Vec<u8>>,
    timeout: Option<Duration>,
    sudo: bool,
}

impl Command {
    /// A command running `program` (looked up in the remote `PATH`).
    #[must_use]
    pub fn new(program: impl Into<String>) -> Self {
        Self {
            program: Word {
                value: program.into(),
                secret: false,
            },
            args: Vec::new(),
            env: Vec::new(),
            stdin: None,
            timeout: None,
            sudo: false,
        }
    }

    /// A shell script run as `sh -c SCRIPT` (for pipes, redirections, `&&`).
    #[must_use]
    pub fn shell(script: impl Into<String>) -> Self {
        Self::new("sh").arg("-c").arg(script)
    }

    /// Appends one argument.
    #[must_use]
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(Word {
            value: arg.into(),
            secret: false,
        });
        self
    }

    /// Appends several arguments.
    #[must_use]
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(|a| Word {
            value: a.into(),
            secret: false,
        }));
        self
    }

    /// Appends an argument that is shown as `***` everywhere but on the wire.
    #[must_use]
    pub fn secret_arg(mut self, arg: &Secret) -> Self {
        self.args.push(Word {
            value: arg.expose().to_owned(),
            secret: true,
        });
        self
    }

    /// Sets an environment variable for the command (passed with `env NAME=VALUE`, so it works
    /// whatever the server's `AcceptEnv`, and survives `sudo`).
    #[must_use]
    pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((
            name.into(),
            Word {
                value: value.into(),
                secret: false,
            },
        ));
        self
    }

    /// Sets an environment variable whose value is shown as `***` everywhere but on the wire.
    /// Note that the value is visible on the remote host's process list while the command runs;
    /// prefer [`Command::stdin`] for long-lived secrets.
    #[must_use]
    pub fn secret_env(mut self, name: impl Into<String>, value: &Secret) -> Self {
        self.env.push((
            name.into(),
            Word {
                value: value.expose().to_owned(),
                secret: true,
            },
        ));
        self
    }

    /// Bytes written to the command's standard input (then end-of-file).
    #[must_use]
    pub fn stdin(mut self, data: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(data.into());
        self
    }

    /// Overrides the session's default command timeout for this command.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Runs the command through `sudo -n` when the login user is not root.
    #[must_use]
    pub fn sudo(mut self, sudo: bool) -> Self {
        self.sudo = sudo;
        self
    }

    /// The program.
    #[must_use]
    pub fn program(&self) -> &str {
        &self.program.value
    }

    /// The arguments, in order (secret ones included: do not log them).
    pub fn arg_values(&self) -> impl Iterator<Item = &str> {
        self.args.iter().map(|w| w.value.as_str())
    }

    /// The environment variables, in order (secret values included: do not log them).
    pub fn env_values(&self) -> impl Iterator<Item = (&str, &str)> {
        self.env.iter().map(|(k, w)| (k.as_str(), w.value.as_str()))
    }

    /// Standard input, if any.
    #[must_use]
    pub fn stdin_bytes(&self) -> Option<&[u8]> {
        self.stdin.as_deref()
    }

    /// The per-command timeout, if set.
    #[must_use]
    pub fn timeout_value(&self) -> Option<Duration> {
        self.timeout
    }

    /// Whether the command asks for sudo.
    #[must_use]
    pub fn wants_sudo(&self) -> bool {
        self.sudo
    }

    fn validate(&self) -> Result<(), Error> {
        if self.program.value.is_empty() {
            return Err(Error::InvalidCommand {
                field: "program".into(),
                reason: "empty".into(),
            });
        }
        for (name, _) in &self.env {
            let mut chars = name.chars();
            let ok = chars
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !ok {
                return Err(Error::InvalidCommand {
                    field: format!("env.{name}"),
                    reason: "not a shell identifier ([A-Za-z_][A-Za-z0-9_]*)".into(),
                });
            }
        }
        if self
            .args
            .iter()
            .chain([&self.program])
            .any(|w| w.value.contains('\0'))
            || self.env.iter().any(|(_, w)| w.value.contains('\0'))
        {
            return Err(Error::InvalidCommand {
                field: "args".into(),
                reason: "contains a NUL byte".into(),
            });
        }
        Ok(())
    }

    fn render(&self, as_root: bool, show: impl Fn(&Word) -> String) -> String {
        let mut parts: Vec<String> = Vec::new();
        if self.sudo && !as_root {
            parts.extend(["sudo".into(), "-n".into(), "--".into()]);
        }
        if !self.env.is_empty() {
            parts.push("env".into());
            for (name, value) in &self.env {
                parts.push(format!("{name}={}", show(value)));
            }
        }
        parts.push(show(&self.program));
        parts.extend(self.args.iter().map(&show));
        parts.join(" ")
    }

    /// The command line sent to the remote shell, with every word quoted. `as_root` tells
    /// whether the login user is root (then `sudo` is left out).
    ///
    /// # Errors
    /// [`Error::InvalidCommand`] for an empty program, an environment variable name that is not
    /// a shell identifier, or a NUL byte in any word.
    pub fn to_shell(&self, as_root: bool) -> Result<String, Error> {
        self.validate()?;
        Ok(self.render(as_root, |w| shell_quote(&w.value)))
    }

    /// The command line as it may be logged: secret words replaced by `***`.
    #[must_use]
    pub fn redacted(&self) -> String {
        self.render(true, Word::shown)
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Command")
            .field("line", &self.redacted())
            .field("stdin_len", &self.stdin.as_ref().map(Vec::len))
            .field("timeout", &self.timeout)
            .field("sudo", &self.sudo)
            .finish()
    }
}

/// How a remote command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExitStatus {
    /// It exited with this code (0 is success).
    Code(u32),
    /// It was killed by a signal.
    Signal {
        /// The signal name without `SIG` (`KILL`, `TERM`, ...).
        name: String,
        /// Whether it dumped core.
        core_dumped: bool,
    },
}

impl ExitStatus {
    /// True for exit code 0.
    #[must_use]
    pub fn success(&self) -> bool {
        matches!(self, Self::Code(0))
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Code(c) => write!(f, "exit code {c}"),
            Self::Signal { name, core_dumped } => {
                write!(f, "signal SIG{name}")?;
                if *core_dumped {
                    f.write_str(" (core dumped)")?;
                }
                Ok(())
            }
        }
    }
}

/// What a finished command produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// Everything written to standard output.
    pub stdout: Vec<u8>,
    /// Everything written to standard error.
    pub stderr: Vec<u8>,
    /// How it ended.
    pub status: ExitStatus,
}

impl Output {
    /// A successful output with the given stdout (handy in fakes and tests).
    #[must_use]
    pub fn ok(stdout: impl Into<Vec<u8>>) -> Self {
        Self {
            stdout: stdout.into(),
            stderr: Vec::new(),
            status: ExitStatus::Code(0),
        }
    }

    /// True when the command exited with code 0.
    #[must_use]
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// Standard output, lossily decoded as UTF-8.
    #[must_use]
    pub fn stdout_lossy(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Standard error, lossily decoded as UTF-8.
    #[must_use]
    pub fn stderr_lossy(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    /// `Ok(self)` on success, else [`Error::CommandFailed`] naming the host and command.
    ///
    /// # Errors
    /// [`Error::CommandFailed`] when the status is not exit code 0.
    pub fn check(self, host: &str, command: &Command) -> Result<Self, Error> {
        if self.success() {
            return Ok(self);
        }
        let stderr = self.stderr_lossy();
        let tail: String = {
            let t = stderr.trim_end();
            let start = t.char_indices().rev().nth(499).map_or(0, |(i, _)| i);
            t[start..].to_owned()
        };
        Err(Error::CommandFailed {
            host: host.to_owned(),
            command: command.redacted(),
            status: self.status,
            stderr: tail,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `sh -c LINE` locally and returns its stdout: the real check that quoting round-trips.
    fn sh_words(line: &str) -> Vec<String> {
        let script = format!("for w in {line}; do printf '%s\\0' \"$w\"; done");
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&script)
            .output()
            .expect("sh runs");
        assert!(
            out.status.success(),
            "sh failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
            .split(|b| *b == 0)
            .filter(|s| !s.is_empty())
            .map(|s| String::from_utf8(s.to_vec()).expect("utf8"))
            .collect()
    }

    const NASTY: &[&str] = &[
        "plain",
        "with space",
        "it's",
        "''",
        "\"double\"",
        "$HOME",
        "$(rm -rf /)",
        "`id`",
        "a;b&&c||d|e",
        "new\nline",
        "tab\there",
        "back\\slash",
        "*",
        "?",
        "[a-z]",
        "~root",
        "a=b",
        "-n",
        "--",
        "!bang",
        "#hash",
        "{a,b}",
        "ünïcödé ✓",
        "'\\''",
        "trailing\\",
        "%s %d",
        ">redirect",
        "<in",
    ];

    #[test]
    fn quoting_round_trips_through_a_real_shell() {
        for word in NASTY {
            let got = sh_words(&shell_quote(word));
            assert_eq!(
                got,
                vec![(*word).to_owned()],
                "word {word:?} quoted as {}",
                shell_quote(word)
            );
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// Any words without NUL reach the program unchanged, in order, as separate arguments.
        #[test]
        fn any_words_round_trip(words in proptest::collection::vec("[^\\x00]{0,12}", 1..6)) {
            let cmd = Command::new("printf").arg("%s\\0").args(words.clone());
            let line = cmd.to_shell(true).expect("valid");
            let out = std::process::Command::new("sh").arg("-c").arg(&line).output().expect("sh");
            let mut got: Vec<String> = out
                .stdout
                .split(|b| *b == 0)
                .map(|s| String::from_utf8(s.to_vec()).expect("utf8"))
                .collect();
            proptest::prop_assert_eq!(got.pop(), Some(String::new()));
            proptest::prop_assert_eq!(got, words);
        }
    }

    #[test]
    fn empty_word_is_kept() {
        let line = format!("x {} y", shell_quote(""));
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("set -- {line}; echo $#"))
            .output()
            .expect("sh");
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "3");
    }

    #[test]
    fn command_line_passes_args_and_env_verbatim() {
        let mut cmd = Command::new("sh")
            .arg("-c")
            .arg(r#"printf '%s\0' "$V" "$@""#)
            .arg("sh");
        for w in NASTY {
            cmd = cmd.arg(*w);
        }
        let cmd = cmd.env("V", "v a l'ue$x");
        let line = cmd.to_shell(true).expect("valid");
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&line)
            .output()
            .expect("sh");
        let words: Vec<String> = out
            .stdout
            .split(|b| *b == 0)
            .map(|s| String::from_utf8(s.to_vec()).expect("utf8"))
            .collect();
        let mut want = vec!["v a l'ue$x".to_owned()];
        want.extend(NASTY.iter().map(|s| (*s).to_owned()));
        want.push(String::new()); // after the last NUL
        assert_eq!(words, want);
    }

    #[test]
    fn sudo_only_for_non_root() {
        let cmd = Command::new("id").sudo(true).env("A", "1");
        assert_eq!(cmd.to_shell(false).expect("valid"), "sudo -n -- env A=1 id");
        assert_eq!(cmd.to_shell(true).expect("valid"), "env A=1 id");
        assert_eq!(Command::new("id").to_shell(false).expect("valid"), "id");
    }

    #[test]
    fn secrets_are_redacted_but_sent() {
        let s = Secret::new("hunter2");
        let cmd = Command::new("login")
            .secret_arg(&s)
            .secret_env("TOKEN", &s)
            .stdin("x");
        assert_eq!(cmd.redacted(), "env TOKEN=*** login ***");
        assert!(!format!("{cmd:?}").contains("hunter2"));
        assert!(!format!("{cmd}").contains("hunter2"));
        assert_eq!(format!("{s:?} {s}"), "*** ***");
        assert!(cmd.to_shell(true).expect("valid").contains("hunter2"));
    }

    #[test]
    fn invalid_fields_are_named() {
        let err = Command::new("x")
            .env("BAD NAME", "1")
            .to_shell(true)
            .expect_err("invalid");
        assert!(err.to_string().contains("env.BAD NAME"), "{err}");
        let err = Command::new("x")
            .env("1X", "1")
            .to_shell(true)
            .expect_err("invalid");
        assert!(matches!(err, Error::InvalidCommand { .. }));
        let err = Command::new("").to_shell(true).expect_err("invalid");
        assert!(err.to_string().contains("program"), "{err}");
        let err = Command::new("x")
            .arg("a\0b")
            .to_shell(true)
            .expect_err("invalid");
        assert!(err.to_string().contains("NUL"), "{err}");
    }

    #[test]
    fn output_check_reports_status_and_stderr() {
        let out = Output {
            stdout: vec![],
            stderr: b"boom\n".to_vec(),
            status: ExitStatus::Code(3),
        };
        let err = out.check("h1", &Command::new("false")).expect_err("fails");
        assert_eq!(err.to_string(), "h1: `false` failed with exit code 3: boom");
        let sig = ExitStatus::Signal {
            name: "KILL".into(),
            core_dumped: false,
        };
        assert_eq!(sig.to_string(), "signal SIGKILL");
        assert!(!sig.success());
    }
}
