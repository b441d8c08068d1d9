//! What an LB VM needs besides the rendered files, as a host plan
//! ([`hakube_host_state::HostPlan`]): the packages, the script user keepalived runs its check
//! as, the files (each checked by the daemon that reads it before it goes live), and the
//! services, reloaded only when their file changed.

use hakube_host_state::{File, Group, HostPlan, Package, Service, User, Validate};

use crate::reference::{LbNodeFiles, RenderedFile};

/// Output of `keepalived -t -l` that means part of the config was dropped although the exit
/// status is 0 (keepalived 2.2.7, `vrrp_parser.c` / `global_parser.c`): a missing script user
/// ("Error setting global script uid/gid", "Unable to set default user ... - removing") and a
/// track script that was removed ("track script ... not found, ignoring...").
pub const KEEPALIVED_REJECT_OUTPUT: &[&str] = &["Error", "removing", "not found", "ignoring"];

fn file(f: &RenderedFile) -> File {
    File::new(f.path, f.contents.as_bytes()).mode(f.mode)
}

impl LbNodeFiles {
    /// The node's host plan: `haproxy` and `keepalived` installed; the script user (a system
    /// user and group, which no Debian package creates); the check script, then `haproxy.cfg`
    /// validated with `haproxy -c` and `keepalived.conf` with `keepalived -t` (rejected also
    /// on the output lines in [`KEEPALIVED_REJECT_OUTPUT`]); both services enabled, running,
    /// and reloaded when their config changed (HAProxy reloads without dropping connections;
    /// keepalived re-reads on SIGHUP).
    ///
    /// ```
    /// use std::net::IpAddr;
    /// use hakube_haproxy_config::reference::HaInput;
    /// let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
    /// let files = HaInput::new(ip("10.0.0.10"), 51)
    ///     .lb_subnet("10.0.0.0/24".parse().expect("net"))
    ///     .lb_node("lb1", ip("10.0.0.11"), "eth0")
    ///     .control_plane_node("m1", ip("10.0.0.21"))
    ///     .worker("w1", ip("10.0.0.31"))
    ///     .render()?;
    /// let plan = files[0].host_plan();
    /// plan.validate().expect("valid");
    /// assert!(plan.to_json().contains("keepalived_script"));
    /// # Ok::<(), hakube_haproxy_config::Error>(())
    /// ```
    #[must_use]
    pub fn host_plan(&self) -> HostPlan {
        let mut keepalived_validate = Validate::new(["keepalived", "-t", "-l", "-f", "%s"]);
        for frag in KEEPALIVED_REJECT_OUTPUT {
            keepalived_validate = keepalived_validate.reject_output(*frag);
        }
        HostPlan::new(&self.node)
            .package(Package::new("haproxy"))
            .package(Package::new("keepalived"))
            .group(Group::system(&self.script_user))
            .user(User::system(&self.script_user).group(&self.script_user))
            .file(file(&self.check_script))
            .file(
                file(&self.haproxy_cfg)
                    .validate(Validate::new(["haproxy", "-c", "-q", "-f", "%s"])),
            )
            .file(file(&self.keepalived_conf).validate(keepalived_validate))
            .service(Service::new("haproxy").reload_on([self.haproxy_cfg.path]))
            .service(Service::new("keepalived").reload_on([self.keepalived_conf.path]))
    }
}
