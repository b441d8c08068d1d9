//! Fresh hosts ([`crate::LabBuilder::fresh_hosts`]): lab hosts that look like VMs just built
//! from a Debian 12 cloud image, so host-configuration code meets the state it meets on
//! real VMs: no packages' users, no runtime directories, packages not installed, services
//! not running.
//!
//! - **`/etc` is copy-on-write per host** (an overlay mount whose lower layer is the
//!   machine's `/etc`): whatever a host writes there (`useradd`, `/etc/default/...`, unit
//!   files) stays in that host. `/etc/passwd`, `/etc/group`, `/etc/shadow` and `/etc/gshadow`
//!   start with the machine's entries minus every user and group a package created that a
//!   cloud image does not have ([`BASE_USERS`], [`BASE_GROUPS`] are kept), so real `useradd`
//!   and `groupadd` work per host and `haproxy`, `keepalived_script`, `statd`... are absent.
//! - **`/run` is private** and empty (no `/run/haproxy`).
//! - **`apt-get`** installs only the packages of [`PACKAGES`] whose programs exist on this
//!   machine, and fails naming the others; installing runs what the package's Debian
//!   maintainer scripts do that matters here (users, groups, runtime directories, enabled
//!   units). Installs are recorded per host ([`crate::Host::installed_packages`]); a second
//!   install is a no-op. [`BASE_PACKAGES`] count as installed from the start.
//!   **`dpkg-query`** (`-W`, `-s`, `-l`) and **`dpkg -s/-l`** answer from that record.
//! - **`systemctl`** really starts, stops, restarts and reloads `haproxy`, `keepalived`,
//!   `vault`, `openbao` and `kubelet` in the host (as their Debian units do; a unit file in
//!   `/etc/systemd/system` with `ExecStart=` replaces the built-in command, so units the
//!   executor writes run too, with their `User=`, `Group=`, `KillSignal=`,
//!   `ConditionFileNotEmpty=`; `Type=oneshot` units run to completion on `start`; a program
//!   at a Debian path this machine lacks, such as `/usr/bin/bao`, runs from where the lab's
//!   `apt-get` linked it), runs `ExecStartPost=`/`ExecStopPost=` of the unit file and its
//!   drop-ins (also after a crash), reports `is-active`/`is-enabled`/`show`, and keeps the
//!   state of other known units (base units such as `ssh`, units of installed packages, unit
//!   files). Unknown units are "not found" (exit 5). Daemon output goes to
//!   [`crate::Host::log`]`("<unit>.service")`; pid files to the host's
//!   `/run/hakube-lab/units`.
//!
//! What a fresh host does not hide: the machine's programs stay visible at their paths
//! (`/usr/sbin/haproxy` exists before `apt-get install haproxy`), and package conffiles are
//! not written (`/etc/haproxy` starts empty). Services are enabled at install but not
//! started (Debian starts haproxy with its example config; here the first start is
//! explicit). `Restart=` is not emulated.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Users a Debian 12 cloud image has besides the static ones (uid < 100, and `nobody`):
/// kept in a fresh host's `/etc/passwd` when the machine has them.
pub const BASE_USERS: &[&str] = &[
    "_apt",
    "nobody",
    "systemd-network",
    "systemd-resolve",
    "systemd-timesync",
    "messagebus",
    "polkitd",
    "sshd",
];

/// Groups a Debian 12 cloud image has besides the static ones (gid < 100, and `nogroup`).
pub const BASE_GROUPS: &[&str] = &[
    "nogroup",
    "systemd-journal",
    "systemd-network",
    "systemd-resolve",
    "systemd-timesync",
    "messagebus",
    "polkitd",
    "_ssh",
    "netdev",
];

/// Packages a fresh host has from the start (a Debian 12 cloud image's, as far as host
/// configuration asks about them): `apt-get install` says "already the newest version" and
/// `dpkg-query` reports them installed.
pub const BASE_PACKAGES: &[&str] = &[
    "adduser",
    "apt",
    "bash",
    "ca-certificates",
    "coreutils",
    "curl",
    "dpkg",
    "gnupg",
    "gzip",
    "iproute2",
    "iputils-ping",
    "kmod",
    "openssh-client",
    "openssh-server",
    "openssl",
    "passwd",
    "procps",
    "python3",
    "sudo",
    "systemd",
    "tar",
    "util-linux",
];

/// Units a fresh host has, enabled and active from the start (state only).
pub const BASE_UNITS: &[&str] = &[
    "ssh.service",
    "sshd.service",
    "cron.service",
    "systemd-networkd.service",
    "systemd-resolved.service",
    "systemd-timesyncd.service",
    "systemd-journald.service",
];

/// A system user a package's maintainer script creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SystemUser {
    /// The user name.
    pub name: &'static str,
    /// Its home directory (not created).
    pub home: &'static str,
    /// Whether a group of the same name is created as its primary group (`adduser --group`);
    /// otherwise its primary group is `nogroup`.
    pub own_group: bool,
}

/// A directory a package creates under `/run` (its `tmpfiles.d` entry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuntimeDir {
    /// The absolute path.
    pub path: &'static str,
    /// The mode.
    pub mode: u32,
    /// The owner.
    pub owner: &'static str,
    /// The group.
    pub group: &'static str,
}

/// A package the fresh hosts' `apt-get` can install.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Package {
    /// The Debian package name.
    pub name: &'static str,
    /// Its programs at their Debian paths. Installing fails unless each exists on this
    /// machine (at that path, on the test process's `PATH`, in a `.venv/bin` above the working
    /// directory, or where [`crate::LabBuilder::program`] says); one found elsewhere is linked
    /// into the host's `/usr/local/bin`.
    pub programs: &'static [&'static str],
    /// System users (and groups) its maintainer scripts create.
    pub users: &'static [SystemUser],
    /// Runtime directories it creates (tmpfiles.d).
    pub runtime_dirs: &'static [RuntimeDir],
    /// Units it enables on install.
    pub units: &'static [&'static str],
}

/// The packages fresh hosts can install, each modelled on its Debian 12 maintainer scripts
/// (`/var/lib/dpkg/info/<pkg>.postinst`, `/usr/lib/tmpfiles.d/<pkg>.conf`) or, for
/// `vault` and `openbao`, on the upstream packages' post-install scripts.
pub const PACKAGES: &[Package] = &[
    Package {
        name: "haproxy",
        programs: &["/usr/sbin/haproxy"],
        // haproxy.postinst: adduser --system --home /var/lib/haproxy --no-create-home --group haproxy
        users: &[SystemUser {
            name: "haproxy",
            home: "/var/lib/haproxy",
            own_group: true,
        }],
        // /usr/lib/tmpfiles.d/haproxy.conf: d /run/haproxy 2775 haproxy haproxy -
        runtime_dirs: &[RuntimeDir {
            path: "/run/haproxy",
            mode: 0o2775,
            owner: "haproxy",
            group: "haproxy",
        }],
        units: &["haproxy.service"],
    },
    Package {
        name: "keepalived",
        programs: &["/usr/sbin/keepalived"],
        users: &[],
        runtime_dirs: &[],
        units: &["keepalived.service"],
    },
    Package {
        name: "nfs-common",
        programs: &["/sbin/mount.nfs"],
        // nfs-common.postinst: adduser --system --home /var/lib/nfs --no-create-home statd
        users: &[SystemUser {
            name: "statd",
            home: "/var/lib/nfs",
            own_group: false,
        }],
        runtime_dirs: &[],
        units: &[],
    },
    Package {
        name: "rpcbind",
        programs: &["/usr/sbin/rpcbind"],
        // rpcbind.postinst: adduser --system --home /run/rpcbind --no-create-home _rpc
        users: &[SystemUser {
            name: "_rpc",
            home: "/run/rpcbind",
            own_group: false,
        }],
        // /usr/lib/tmpfiles.d/rpcbind.conf: D /run/rpcbind 0755 _rpc root
        runtime_dirs: &[RuntimeDir {
            path: "/run/rpcbind",
            mode: 0o755,
            owner: "_rpc",
            group: "root",
        }],
        units: &["rpcbind.service"],
    },
    Package {
        name: "nfs-kernel-server",
        // Depends on nfs-common and rpcbind: their users come along.
        programs: &["/usr/sbin/exportfs", "/sbin/mount.nfs"],
        users: &[
            SystemUser {
                name: "statd",
                home: "/var/lib/nfs",
                own_group: false,
            },
            SystemUser {
                name: "_rpc",
                home: "/run/rpcbind",
                own_group: false,
            },
        ],
        runtime_dirs: &[RuntimeDir {
            path: "/run/rpcbind",
            mode: 0o755,
            owner: "_rpc",
            group: "root",
        }],
        units: &["nfs-server.service", "nfs-kernel-server.service"],
    },
    Package {
        name: "openbao",
        programs: &["/usr/bin/bao"],
        users: &[SystemUser {
            name: "openbao",
            home: "/etc/openbao",
            own_group: true,
        }],
        runtime_dirs: &[],
        units: &["openbao.service"],
    },
    Package {
        name: "vault",
        programs: &["/usr/bin/vault"],
        // HashiCorp's postinst: useradd --system --home /etc/vault.d --shell /bin/false vault
        users: &[SystemUser {
            name: "vault",
            home: "/etc/vault.d",
            own_group: true,
        }],
        runtime_dirs: &[],
        units: &["vault.service"],
    },
    Package {
        name: "rsync",
        programs: &["/usr/bin/rsync"],
        users: &[],
        runtime_dirs: &[],
        units: &[],
    },
    Package {
        name: "ca-certificates",
        programs: &["/usr/sbin/update-ca-certificates"],
        users: &[],
        runtime_dirs: &[],
        units: &[],
    },
    Package {
        name: "curl",
        programs: &["/usr/bin/curl"],
        users: &[],
        runtime_dirs: &[],
        units: &[],
    },
    Package {
        name: "gpg",
        programs: &["/usr/bin/gpg"],
        users: &[],
        runtime_dirs: &[],
        units: &[],
    },
    // The Kubernetes node packages (Debian's containerd, pkgs.k8s.io's kubelet, kubeadm,
    // kubectl). This machine has none of their programs: a lab that wants them installable
    // names stand-ins with `LabBuilder::program` (the local twin does).
    Package {
        name: "containerd",
        programs: &["/usr/bin/containerd"],
        users: &[],
        runtime_dirs: &[],
        units: &["containerd.service"],
    },
    Package {
        name: "kubelet",
        programs: &["/usr/bin/kubelet"],
        users: &[],
        runtime_dirs: &[],
        units: &["kubelet.service"],
    },
    Package {
        name: "kubeadm",
        programs: &["/usr/bin/kubeadm"],
        users: &[],
        runtime_dirs: &[],
        units: &[],
    },
    Package {
        name: "kubectl",
        programs: &["/usr/bin/kubectl"],
        users: &[],
        runtime_dirs: &[],
        units: &[],
    },
    Package {
        name: "etcd-client",
        programs: &["/usr/bin/etcdctl"],
        users: &[],
        runtime_dirs: &[],
        units: &[],
    },
];

/// Keeps the lines of a passwd/shadow (`kind` = `Users`) or group/gshadow (`Groups`) file
/// whose entry a cloud image has: static ids (< 100, 65534) and the base names. For shadow
/// files (no id field), `keep` names the entries kept from the matching passwd/group file.
pub(crate) fn filter_db(
    text: &str,
    base: &[&str],
    keep: Option<&[String]>,
) -> (String, Vec<String>) {
    let mut out = String::new();
    let mut kept = Vec::new();
    for line in text.lines() {
        let mut fields = line.split(':');
        let Some(name) = fields.next() else { continue };
        let ok = match keep {
            Some(names) => names.iter().any(|n| n == name),
            None => {
                let id: Option<u32> = fields.nth(1).and_then(|f| f.parse().ok());
                base.contains(&name) || id.is_some_and(|id| id < 100 || id == 65534)
            }
        };
        if ok {
            kept.push(name.to_owned());
            out.push_str(line);
            out.push('\n');
        }
    }
    (out, kept)
}

/// Removes members that are not kept users from a group/gshadow file's member lists
/// (group: `name:x:gid:members`; gshadow: `name:password:admins:members`).
pub(crate) fn prune_members(text: &str, users: &[String]) -> String {
    let prune = |f: &str| {
        f.split(',')
            .filter(|m| users.iter().any(|u| u == m))
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut out = String::new();
    for line in text.lines() {
        let mut fields: Vec<String> = line.split(':').map(str::to_owned).collect();
        if fields.len() == 4 {
            fields[3] = prune(&fields[3]);
            if fields[2].parse::<u32>().is_err() {
                fields[2] = prune(&fields[2]);
            }
        }
        out.push_str(&fields.join(":"));
        out.push('\n');
    }
    out
}

/// Where a package's program is on this machine: `None` when missing.
pub(crate) fn find_program(debian_path: &str, overrides: &[(String, PathBuf)]) -> Option<PathBuf> {
    let name = Path::new(debian_path).file_name()?.to_str()?;
    if let Some((_, p)) = overrides
        .iter()
        .find(|(k, _)| k == debian_path || k == name)
    {
        return p.is_file().then(|| p.clone());
    }
    if Path::new(debian_path).is_file() {
        return Some(PathBuf::from(debian_path));
    }
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Ok(cwd) = std::env::current_dir() {
        dirs.extend(cwd.ancestors().map(|a| a.join(".venv/bin")));
    }
    dirs.into_iter()
        .map(|d| d.join(name))
        .find(|p| p.is_file() && !p.starts_with("/usr/local/bin"))
}

fn sh_list(items: &[&str]) -> String {
    items.join(" ")
}

/// The settings and package functions every host's stand-in scripts share (computed once per
/// lab: it looks for the packages' programs).
pub(crate) fn shared_prelude(overrides: &[(String, PathBuf)]) -> String {
    let q = |s: &str| crate::util::sh_quote(s);
    let mut s = String::new();
    let _ = writeln!(s, "BASE_PACKAGES={}", q(&sh_list(BASE_PACKAGES)));
    let _ = writeln!(s, "BASE_UNITS={}", q(&sh_list(BASE_UNITS)));
    let unit_packages: Vec<String> = PACKAGES
        .iter()
        .flat_map(|p| p.units.iter().map(move |u| format!("{u}={}", p.name)))
        .collect();
    let _ = writeln!(s, "UNIT_PACKAGES={}", q(&unit_packages.join(" ")));

    let names: Vec<&str> = PACKAGES.iter().map(|p| p.name).collect();
    let _ = writeln!(
        s,
        "known() {{ case \"$1\" in {}) return 0 ;; esac; return 1; }}",
        names.join("|")
    );
    s.push_str("missing() {\n  case \"$1\" in\n");
    for p in PACKAGES {
        let absent: Vec<&str> = p
            .programs
            .iter()
            .filter(|prog| find_program(prog, overrides).is_none())
            .copied()
            .collect();
        if !absent.is_empty() {
            let _ = writeln!(s, "    {}) echo {} ;;", p.name, q(&absent.join(" ")));
        }
    }
    s.push_str("  esac\n}\n");
    s.push_str("postinst() {\n  case \"$1\" in\n");
    for p in PACKAGES {
        let _ = writeln!(s, "    {})", p.name);
        for prog in p.programs {
            if let Some(found) = find_program(prog, overrides)
                && found != Path::new(prog)
            {
                let name = Path::new(prog)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let _ = writeln!(
                    s,
                    "      ln -sf {} {} || return 1",
                    q(&found.to_string_lossy()),
                    q(&format!("/usr/local/bin/{name}"))
                );
            }
        }
        for u in p.users {
            let group = if u.own_group {
                let _ = writeln!(
                    s,
                    "      getent group {n} >/dev/null || groupadd --system {n} || return 1",
                    n = u.name
                );
                u.name
            } else {
                "nogroup"
            };
            let _ = writeln!(
                s,
                "      getent passwd {n} >/dev/null || useradd --system --gid {group} \
                 --home-dir {home} --no-create-home --shell /usr/sbin/nologin {n} || return 1",
                n = u.name,
                home = u.home
            );
        }
        for d in p.runtime_dirs {
            let _ = writeln!(
                s,
                "      install -d -m {:o} -o {} -g {} {} || return 1",
                d.mode, d.owner, d.group, d.path
            );
        }
        for unit in p.units {
            let _ = writeln!(
                s,
                "      mkdir -p /etc/systemd/system/multi-user.target.wants && ln -sf \
                 /lib/systemd/system/{unit} /etc/systemd/system/multi-user.target.wants/{unit}"
            );
        }
        s.push_str("      ;;\n");
    }
    s.push_str("  esac\n  return 0\n}\n");
    s
}

/// The stand-in scripts of a fresh host: (command, script). `shared` is
/// [`shared_prelude`]'s result.
pub(crate) fn stand_ins(host_dir: &Path, shared: &str) -> Vec<(&'static str, String)> {
    let q = |s: &str| crate::util::sh_quote(s);
    let with = |cmd: &'static str, body: &str| {
        let self_path = host_dir.join("stand-ins").join(cmd);
        (
            cmd,
            format!(
                "#!/bin/sh\nHOST_DIR={}\nSELF={}\n{shared}{body}",
                q(&host_dir.to_string_lossy()),
                q(&self_path.to_string_lossy())
            ),
        )
    };
    vec![
        with("systemctl", include_str!("stand_ins/systemctl.sh")),
        with("apt-get", include_str!("stand_ins/apt-get.sh")),
        with("apt", include_str!("stand_ins/apt-get.sh")),
        with("dpkg-query", include_str!("stand_ins/dpkg-query.sh")),
        with("apt-mark", include_str!("stand_ins/apt-mark.sh")),
        with(
            "dpkg",
            &format!(
                "case \"${{1:-}}\" in\n  -s|--status|-l|--list|-W|--show) ;;\n  \
                 --compare-versions|--print-architecture) exec /usr/bin/dpkg \"$@\" ;;\n  \
                 *) echo \"hakube-lab: dpkg $* is not available in a lab host\" >&2; exit 2 ;;\nesac\n{}",
                include_str!("stand_ins/dpkg-query.sh")
            ),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\n\
        daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n\
        nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n\
        sshd:x:103:65534::/run/sshd:/usr/sbin/nologin\n\
        haproxy:x:106:106::/var/lib/haproxy:/usr/sbin/nologin\n\
        cloudsdk:x:1000:1000::/home/cloudsdk:/bin/bash\n";

    #[test]
    fn package_users_are_dropped() {
        let (out, kept) = filter_db(PASSWD, BASE_USERS, None);
        assert_eq!(kept, ["root", "daemon", "nobody", "sshd"]);
        assert!(!out.contains("haproxy") && !out.contains("cloudsdk"));
        let shadow = "root:*:1::::::\nhaproxy:!:1::::::\nsshd:!:1::::::\n";
        let (s, _) = filter_db(shadow, BASE_USERS, Some(&kept));
        assert_eq!(s, "root:*:1::::::\nsshd:!:1::::::\n");
    }

    #[test]
    fn group_members_are_pruned() {
        let users = vec!["root".to_owned()];
        assert_eq!(
            prune_members("ssl-cert:x:103:postgres,root\nadm:x:4:\n", &users),
            "ssl-cert:x:103:root\nadm:x:4:\n"
        );
        assert_eq!(
            prune_members("ssl-cert:!::postgres\n", &users),
            "ssl-cert:!::\n"
        );
    }

    #[test]
    fn every_package_is_modelled_consistently() {
        for p in PACKAGES {
            assert!(!p.programs.is_empty(), "{}", p.name);
            assert!(p.programs.iter().all(|x| x.starts_with('/')), "{}", p.name);
            for d in p.runtime_dirs {
                assert!(d.path.starts_with("/run/"), "{}", p.name);
            }
        }
    }
}
