//! What an LB node needs besides the rendered files, as data an executor turns into host
//! work: packages, the script user, directories, the files with their modes, the checks a
//! candidate config must pass before it replaces the live one, and the services with the
//! changes that reload or restart them. Obtained from [`LbNodeFiles::host_needs`].
//!
//! ```
//! use hakube_haproxy_config::{HaInput, needs::CheckKind};
//! use std::net::IpAddr;
//!
//! let ip = |s: &str| s.parse::<IpAddr>().unwrap();
//! let nodes = HaInput::new(ip("10.0.0.10"), 51)
//!     .lb_node("lb1", ip("10.0.0.11"), "eth0")
//!     .control_plane_node("cp1", ip("10.0.0.21"))
//!     .render()?;
//! let needs = nodes[0].host_needs();
//! assert_eq!(needs.packages, ["haproxy", "keepalived", "curl"]);
//! assert_eq!(needs.users[0].name, "keepalived_script");
//! let check = &needs.checks[0];
//! assert_eq!(check.argv("/etc/haproxy/haproxy.cfg.new"),
//!            ["haproxy", "-c", "-f", "/etc/haproxy/haproxy.cfg.new"]);
//! assert!(needs.checks[1].judge(Some(0), "").is_ok());
//! // keepalived -t exits 0 while it drops a track script: the output decides.
//! assert!(needs.checks[1].judge(Some(0), "WARNING - script_user keepalived_script not found").is_err());
//! assert_eq!(needs.checks[1].kind, CheckKind::KeepalivedTest);
//! # Ok::<(), hakube_haproxy_config::Error>(())
//! ```

use crate::reference::{
    CHECK_SCRIPT_PATH, HAPROXY_CFG_PATH, HAPROXY_DROPIN_PATH, KEEPALIVED_CONF_PATH, LbNodeFiles,
    RenderedFile,
};

/// Everything an LB node needs, in the order an executor applies it: packages, users,
/// directories, files (each validated by its [`ConfigCheck`] before it goes live), services.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LbHostNeeds {
    /// Debian packages: `haproxy`, `keepalived`, and `curl` (the check script's client).
    pub packages: Vec<&'static str>,
    /// System users (with a group of the same name) that must exist: keepalived's
    /// `script_user`. keepalived drops the health check without it (and `keepalived -t`
    /// still exits 0).
    pub users: Vec<SystemUser>,
    /// Directories with owner and mode. `/run/haproxy` comes with the package (tmpfiles.d)
    /// but is listed so a host whose `/run` lost it gets it back.
    pub directories: Vec<Directory>,
    /// The rendered files, in install order, owner root:root with their modes.
    pub files: Vec<RenderedFile>,
    /// Checks a candidate file must pass before it replaces the live one.
    pub checks: Vec<ConfigCheck>,
    /// Services, in start order (HAProxy before keepalived, so keepalived never claims the
    /// VIP for a node whose HAProxy does not run).
    pub services: Vec<ServiceNeed>,
}

/// A system user (`useradd --system --user-group --no-create-home --home-dir HOME --shell
/// SHELL NAME`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemUser {
    /// The user name (its group has the same name).
    pub name: String,
    /// Its home directory (not created).
    pub home: &'static str,
    /// Its shell.
    pub shell: &'static str,
}

/// A directory with owner, group and mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directory {
    /// The absolute path.
    pub path: &'static str,
    /// The mode (e.g. `0o2775`).
    pub mode: u32,
    /// The owner.
    pub owner: &'static str,
    /// The group.
    pub group: &'static str,
}

/// How a [`ConfigCheck`]'s result is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckKind {
    /// Exit status 0 means valid (`haproxy -c`).
    ExitStatus,
    /// `keepalived -t`: valid only when it printed no diagnostic. Its exit status alone does
    /// not tell: keepalived 2.2.7 has been seen exiting 0 while it dropped a `vrrp_script` it
    /// cannot run (a missing `script_user`, an unsafe script path; issue 13), and with
    /// `enable_script_security` it ends every clean config test with SIGTERM (status 143;
    /// acassen/keepalived#2587, fixed in 2.2.8).
    KeepalivedTest,
}

/// A check a candidate config file must pass before it replaces the live one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigCheck {
    /// The live path the checked file is for.
    pub path: &'static str,
    /// The command; the candidate file's path is appended.
    pub command: Vec<&'static str>,
    /// How to judge the result.
    pub kind: CheckKind,
}

impl ConfigCheck {
    /// The argv that checks `candidate`.
    #[must_use]
    pub fn argv(&self, candidate: &str) -> Vec<String> {
        self.command
            .iter()
            .map(|&a| a.to_owned())
            .chain([candidate.to_owned()])
            .collect()
    }

    /// Judges the check's result from its exit code (`None`: killed by a signal) and its
    /// combined stdout and stderr.
    ///
    /// # Errors
    /// The reason the candidate is refused: the exit status, or for `keepalived -t` the
    /// diagnostic lines it printed.
    pub fn judge(&self, exit_code: Option<i32>, output: &str) -> Result<(), String> {
        match self.kind {
            CheckKind::ExitStatus => match exit_code {
                Some(0) => Ok(()),
                other => Err(format!(
                    "`{}` refused {}: {}\n{}",
                    self.command.join(" "),
                    self.path,
                    status_text(other),
                    output.trim()
                )),
            },
            CheckKind::KeepalivedTest => {
                let diagnostics: Vec<&str> = output
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && *l != "Terminated" && !l.contains("NOTICE:"))
                    .collect();
                let status_ok = matches!(exit_code, Some(0 | 143) | None);
                if status_ok && diagnostics.is_empty() {
                    Ok(())
                } else {
                    Err(format!(
                        "`{}` refused {} ({}): {}",
                        self.command.join(" "),
                        self.path,
                        status_text(exit_code),
                        if diagnostics.is_empty() {
                            output.trim().to_owned()
                        } else {
                            diagnostics.join("\n")
                        }
                    ))
                }
            }
        }
    }
}

fn status_text(code: Option<i32>) -> String {
    code.map_or_else(|| "killed by a signal".to_owned(), |c| format!("exit {c}"))
}

/// A service and what it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceNeed {
    /// The systemd unit.
    pub unit: &'static str,
    /// Enabled at boot.
    pub enabled: bool,
    /// Running after configuration.
    pub running: bool,
    /// Files whose change needs `systemctl daemon-reload` first.
    pub daemon_reload_when_changed: Vec<&'static str>,
    /// Files whose change needs a restart (after the daemon-reload).
    pub restart_when_changed: Vec<&'static str>,
    /// Files whose change needs a reload (HAProxy re-executes with the new config and keeps
    /// its connections; keepalived re-reads its config on SIGHUP and keeps its state).
    pub reload_when_changed: Vec<&'static str>,
}

impl LbNodeFiles {
    /// What this node needs besides its files, as data for an executor (see [`crate::needs`]).
    #[must_use]
    pub fn host_needs(&self) -> LbHostNeeds {
        LbHostNeeds {
            packages: vec!["haproxy", "keepalived", "curl"],
            users: vec![SystemUser {
                name: self.script_user.clone(),
                home: "/nonexistent",
                shell: "/usr/sbin/nologin",
            }],
            directories: vec![
                Directory {
                    path: "/run/haproxy",
                    mode: 0o2775,
                    owner: "haproxy",
                    group: "haproxy",
                },
                // keepalived's script security: every directory above a script root-owned
                // and not writable by others.
                Directory {
                    path: "/etc/keepalived",
                    mode: 0o755,
                    owner: "root",
                    group: "root",
                },
                Directory {
                    path: "/etc/systemd/system/haproxy.service.d",
                    mode: 0o755,
                    owner: "root",
                    group: "root",
                },
            ],
            files: self.files().into_iter().cloned().collect(),
            checks: vec![
                ConfigCheck {
                    path: HAPROXY_CFG_PATH,
                    command: vec!["haproxy", "-c", "-f"],
                    kind: CheckKind::ExitStatus,
                },
                ConfigCheck {
                    path: KEEPALIVED_CONF_PATH,
                    command: vec!["keepalived", "-t", "-f"],
                    kind: CheckKind::KeepalivedTest,
                },
            ],
            services: vec![
                ServiceNeed {
                    unit: "haproxy.service",
                    enabled: true,
                    running: true,
                    daemon_reload_when_changed: vec![HAPROXY_DROPIN_PATH],
                    restart_when_changed: vec![HAPROXY_DROPIN_PATH],
                    reload_when_changed: vec![HAPROXY_CFG_PATH],
                },
                ServiceNeed {
                    unit: "keepalived.service",
                    enabled: true,
                    running: true,
                    daemon_reload_when_changed: Vec::new(),
                    restart_when_changed: Vec::new(),
                    reload_when_changed: vec![KEEPALIVED_CONF_PATH, CHECK_SCRIPT_PATH],
                },
            ],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keepalived() -> ConfigCheck {
        ConfigCheck {
            path: KEEPALIVED_CONF_PATH,
            command: vec!["keepalived", "-t", "-f"],
            kind: CheckKind::KeepalivedTest,
        }
    }

    #[test]
    fn keepalived_test_is_judged_by_its_output() {
        let k = keepalived();
        assert!(k.judge(Some(0), "").is_ok());
        assert!(k.judge(Some(143), "Terminated\n").is_ok());
        assert!(k.judge(None, "").is_ok());
        let err = k
            .judge(
                Some(0),
                "Unable to set uid to keepalived_script\nSCRIPT_ID chk_haproxy disabled\n",
            )
            .unwrap_err();
        assert!(err.contains("chk_haproxy disabled"), "{err}");
        assert!(k.judge(Some(1), "").is_err());
    }

    #[test]
    fn haproxy_check_is_judged_by_its_status() {
        let h = ConfigCheck {
            path: HAPROXY_CFG_PATH,
            command: vec!["haproxy", "-c", "-f"],
            kind: CheckKind::ExitStatus,
        };
        assert!(h.judge(Some(0), "Configuration file is valid").is_ok());
        let err = h.judge(Some(1), "[ALERT] parsing").unwrap_err();
        assert!(err.contains("exit 1") && err.contains("[ALERT]"), "{err}");
    }
}
