//! What an LB node needs besides the rendered files, as a host plan
//! ([`hakube_host_state::HostPlan`]) that the host-plan executor applies: packages, the script
//! user, directories, the files (each checked by the daemon that reads it before it replaces
//! the live one), and the services with the changes that reload or restart them. Obtained from
//! [`LbNodeFiles::host_plan`].
//!
//! ```
//! use hakube_haproxy_config::HaInput;
//! use hakube_host_state::Item;
//! use std::net::IpAddr;
//!
//! let ip = |s: &str| s.parse::<IpAddr>().unwrap();
//! let nodes = HaInput::new(ip("10.0.0.10"), 51)
//!     .lb_node("lb1", ip("10.0.0.11"), "eth0")
//!     .control_plane_node("cp1", ip("10.0.0.21"))
//!     .render()?;
//! let plan = nodes[0].host_plan();
//! plan.validate().expect("valid");
//! let names: Vec<String> = plan.items.iter().map(ToString::to_string).collect();
//! assert!(names.contains(&"user keepalived_script".to_owned()));
//! // keepalived -t exits 0 while it drops a track script: its output decides.
//! let keepalived = plan.files().find(|f| f.path == "/etc/keepalived/keepalived.conf").unwrap();
//! let check = keepalived.validate.as_ref().unwrap();
//! assert!(check.judge(0, "").is_ok());
//! assert!(check.judge(0, "WARNING - script_user keepalived_script not found").is_err());
//! # Ok::<(), hakube_haproxy_config::Error>(())
//! ```

use hakube_host_state::{Directory, Group, HostPlan, Package, Service, User, Validate};

use crate::reference::{
    CHECK_SCRIPT_PATH, HAPROXY_CFG_PATH, HAPROXY_DROPIN_PATH, KEEPALIVED_CONF_PATH, LbNodeFiles,
};

/// The check `haproxy.cfg` must pass: `haproxy -c`, judged by its exit status.
#[must_use]
pub fn haproxy_check() -> Validate {
    Validate::new(["haproxy", "-c", "-f", "%s"])
}

/// The check `keepalived.conf` must pass: `keepalived -t`, judged by its output. Its exit
/// status alone does not tell: keepalived 2.2.7 exits 0 while it drops a `vrrp_script` it
/// cannot run (a missing `script_user`, an unsafe script path; issue 13), and with
/// `enable_script_security` it ends every clean config test with SIGTERM (status 143;
/// acassen/keepalived#2587, fixed in 2.2.8). So: status 0 or 143, and no line of output other
/// than `NOTICE:` chatter and the shell's `Terminated`.
#[must_use]
pub fn keepalived_check() -> Validate {
    Validate::new(["keepalived", "-t", "-f", "%s"])
        .ok_status([143])
        .quiet(["NOTICE:", "Terminated"])
}

impl LbNodeFiles {
    /// The node's host plan, in the order it is applied:
    /// - packages `haproxy`, `keepalived`, and `curl` (the check script's client);
    /// - keepalived's `script_user` as a system user with its own group: keepalived drops the
    ///   health check without it (and `keepalived -t` still exits 0);
    /// - `/run/haproxy` (2775 haproxy:haproxy; the package's tmpfiles.d makes it, listed so a
    ///   host whose `/run` lost it gets it back), `/etc/keepalived` (keepalived's script
    ///   security wants every directory above a script root-owned and not writable by
    ///   others), and the `haproxy.service` drop-in directory;
    /// - the files, `haproxy.cfg` checked by [`haproxy_check`] and `keepalived.conf` by
    ///   [`keepalived_check`] before they go live;
    /// - HAProxy before keepalived (so keepalived never claims the VIP for a node whose
    ///   HAProxy does not run): HAProxy restarted when its drop-in changed (after systemd
    ///   re-read it), reloaded when its config changed (it re-executes and keeps its
    ///   connections); keepalived reloaded (SIGHUP, keeps its VRRP state) when its config or
    ///   check script changed.
    #[must_use]
    pub fn host_plan(&self) -> HostPlan {
        let user = self.script_user.as_str();
        let mut plan = HostPlan::new(&self.node)
            .package(Package::new("haproxy"))
            .package(Package::new("keepalived"))
            .package(Package::new("curl"))
            .group(Group::system(user))
            .user(
                User::system(user)
                    .group(user)
                    .home("/nonexistent")
                    .shell("/usr/sbin/nologin"),
            )
            .directory(
                Directory::new("/run/haproxy")
                    .mode(0o2775)
                    .owner("haproxy", "haproxy"),
            )
            .directory(Directory::new("/etc/keepalived").owner("root", "root"))
            .directory(
                Directory::new("/etc/systemd/system/haproxy.service.d").owner("root", "root"),
            );
        for f in self.files() {
            plan = plan.file(f.clone());
        }
        plan.service(
            Service::new("haproxy")
                .restart_on([HAPROXY_DROPIN_PATH])
                .reload_on([HAPROXY_CFG_PATH]),
        )
        .service(Service::new("keepalived").reload_on([KEEPALIVED_CONF_PATH, CHECK_SCRIPT_PATH]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keepalived_test_is_judged_by_its_output() {
        let k = keepalived_check();
        assert!(k.judge(0, "").is_ok());
        assert!(k.judge(143, "Terminated\n").is_ok());
        let err = k
            .judge(
                0,
                "Unable to set uid to keepalived_script\nSCRIPT_ID chk_haproxy disabled\n",
            )
            .unwrap_err()
            .to_string();
        assert!(err.contains("chk_haproxy disabled"), "{err}");
        assert!(k.judge(1, "").is_err());
    }

    #[test]
    fn haproxy_check_is_judged_by_its_status() {
        let h = haproxy_check();
        assert!(h.judge(0, "Configuration file is valid").is_ok());
        let err = h.judge(1, "[ALERT] parsing").unwrap_err().to_string();
        assert!(err.contains("exit status 1"), "{err}");
    }
}
