//! What each lab host keeps to itself: the directories mounted empty per host and the files
//! the lab writes per host. Both the builder (which sets them up) and [`crate::Host`] (which
//! refuses to reach any other path of the machine) read them.

/// Directories private to each host unless [`LabBuilder::private_dirs`](crate::LabBuilder::private_dirs) replaces the list.
/// Each starts empty in every host (so the machine's own `/usr/local/bin` is not visible
/// there: stand-ins only). Missing mount points are created as empty directories on the
/// machine.
pub const DEFAULT_PRIVATE_DIRS: &[&str] = &[
    "/etc/haproxy",
    "/etc/keepalived",
    "/etc/kubernetes",
    "/etc/exports.d",
    "/etc/sysctl.d",
    "/etc/modules-load.d",
    "/etc/systemd/system",
    "/var/lib/etcd",
    "/var/lib/kubelet",
    "/var/backups",
    "/srv/nfs",
    "/usr/local/bin",
    "/root/.ssh",
    "/run",
    "/tmp",
];

/// Files private to each host, always, with content written by the lab: `/etc/hosts` naming
/// every lab host, `/etc/resolv.conf` pointing at 127.0.0.1 (DNS lookups fail fast instead of
/// timing out), and a clean root `.bashrc` / `.profile` (the machine's may run slow tools, such
/// as pyenv, in every SSH session). A file is only made private where the machine has it.
pub const PRIVATE_FILES: &[&str] = &[
    "/etc/hosts",
    "/etc/resolv.conf",
    "/root/.bashrc",
    "/root/.profile",
];
