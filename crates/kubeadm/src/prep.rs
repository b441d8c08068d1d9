//! Node preparation as data: a list of named steps, each with the files it writes and the
//! shell commands it runs, in order. Every command is safe to run again.
//!
//! Follows the upstream kubeadm install guide and kubespray: swap off (and kept off), kernel
//! modules `overlay` and `br_netfilter` loaded before the sysctls that need them, containerd
//! with `SystemdCgroup = true` (matching the kubelet's `cgroupDriver: systemd`) and the pause
//! image kubeadm expects, the pkgs.k8s.io repository of the pinned minor version, kubelet,
//! kubeadm and kubectl at the pinned version and held, the NFS client (the kubelet mounts the
//! NFS-backed volumes and the etcd snapshot export with `mount.nfs`), and (on control planes)
//! the images pulled ahead of `kubeadm init`/`join`.

use crate::error::Result;
use crate::input::{CONTAINERD_SOCKET, parse_version};
use crate::render::RenderedFile;

/// What node preparation needs to know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrepInput {
    /// Pinned Kubernetes version, `v1.MINOR.PATCH`.
    pub kubernetes_version: String,
    /// Debian revision of the pkgs.k8s.io packages (`1.1` gives `kubeadm=1.33.2-1.1`).
    pub package_revision: String,
    /// The pause image containerd should use (must match `kubeadm config images list`).
    pub pause_image: String,
    /// CRI socket kubeadm talks to.
    pub cri_socket: String,
    /// Pull the control-plane images ahead of time (control-plane nodes).
    pub pre_pull_images: bool,
    /// Image registry override, as in the cluster input.
    pub image_repository: Option<String>,
    /// Install the NFS client (`nfs-common`), needed to mount NFS volumes.
    pub nfs_client: bool,
}

impl PrepInput {
    /// Defaults for a version: revision `1.1`, `registry.k8s.io/pause:3.10`, containerd.
    #[must_use]
    pub fn new(kubernetes_version: impl Into<String>, control_plane: bool) -> Self {
        Self {
            kubernetes_version: kubernetes_version.into(),
            package_revision: "1.1".into(),
            pause_image: "registry.k8s.io/pause:3.10".into(),
            cri_socket: CONTAINERD_SOCKET.into(),
            pre_pull_images: control_plane,
            image_repository: None,
            nfs_client: true,
        }
    }
}

/// One named preparation step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrepStep {
    /// Short name (`swap`, `kernel-modules`, ...), used in progress output.
    pub name: &'static str,
    /// Files written before the commands run.
    pub files: Vec<RenderedFile>,
    /// Shell commands (`sh -c`), run in order as root; each must succeed.
    pub commands: Vec<String>,
}

/// Where the kernel module list goes.
pub const MODULES_LOAD_PATH: &str = "/etc/modules-load.d/k8s.conf";
/// Where the sysctls go.
pub const SYSCTL_PATH: &str = "/etc/sysctl.d/99-kubernetes.conf";
/// The apt source of pkgs.k8s.io.
pub const APT_SOURCE_PATH: &str = "/etc/apt/sources.list.d/kubernetes.list";
/// The pkgs.k8s.io signing key (dearmored).
pub const APT_KEYRING_PATH: &str = "/etc/apt/keyrings/kubernetes-apt-keyring.gpg";
/// containerd's configuration.
pub const CONTAINERD_CONFIG_PATH: &str = "/etc/containerd/config.toml";

fn file(path: &str, contents: String) -> RenderedFile {
    RenderedFile {
        path: path.into(),
        mode: 0o644,
        contents,
    }
}

/// The preparation steps of one node.
///
/// ```
/// use hakube_kubeadm::prep::{PrepInput, node_prep_steps};
/// let steps = node_prep_steps(&PrepInput::new("v1.33.2", true))?;
/// let names: Vec<_> = steps.iter().map(|s| s.name).collect();
/// assert_eq!(names, ["swap", "kernel-modules", "sysctl", "containerd", "kubernetes-repo", "kubernetes-packages", "nfs-client", "image-pull"]);
/// # Ok::<(), hakube_kubeadm::Error>(())
/// ```
///
/// # Errors
/// [`crate::Error::InvalidInput`] naming `kubernetes_version` when it is not `v1.MINOR.PATCH`.
pub fn node_prep_steps(input: &PrepInput) -> Result<Vec<PrepStep>> {
    let (major, minor, patch) = parse_version(&input.kubernetes_version)?;
    let repo = format!("https://pkgs.k8s.io/core:/stable:/v{major}.{minor}/deb/");
    let pkg_version = format!("{major}.{minor}.{patch}-{}", input.package_revision);
    let pkgs = ["kubelet", "kubeadm", "kubectl"];
    let pinned: Vec<String> = pkgs.iter().map(|p| format!("{p}={pkg_version}")).collect();
    let mut steps = vec![
        PrepStep {
            name: "swap",
            files: vec![],
            commands: vec![
                "swapoff -a".into(),
                r"sed -ri '/\sswap\s/s/^#?/#/' /etc/fstab".into(),
                "systemctl mask swap.target".into(),
            ],
        },
        PrepStep {
            name: "kernel-modules",
            files: vec![file(MODULES_LOAD_PATH, "overlay\nbr_netfilter\n".into())],
            commands: vec!["modprobe overlay".into(), "modprobe br_netfilter".into()],
        },
        PrepStep {
            name: "sysctl",
            files: vec![file(
                SYSCTL_PATH,
                "net.bridge.bridge-nf-call-iptables = 1\n\
                 net.bridge.bridge-nf-call-ip6tables = 1\n\
                 net.ipv4.ip_forward = 1\n"
                    .into(),
            )],
            commands: vec!["sysctl --system".into()],
        },
        PrepStep {
            name: "containerd",
            files: vec![],
            commands: vec![
                "DEBIAN_FRONTEND=noninteractive apt-get install -y containerd".into(),
                "mkdir -p /etc/containerd".into(),
                format!(
                    "containerd config default \
                     | sed -e 's/SystemdCgroup = false/SystemdCgroup = true/' \
                     -e 's#sandbox_image = .*#sandbox_image = \"{pause}\"#' \
                     > {cfg}.hakube-new \
                     && grep -q 'SystemdCgroup = true' {cfg}.hakube-new \
                     && if cmp -s {cfg}.hakube-new {cfg}; then rm -f {cfg}.hakube-new; \
                     else mv {cfg}.hakube-new {cfg} && systemctl restart containerd; fi",
                    pause = input.pause_image,
                    cfg = CONTAINERD_CONFIG_PATH,
                ),
                "systemctl enable --now containerd".into(),
            ],
        },
        PrepStep {
            name: "kubernetes-repo",
            files: vec![file(
                APT_SOURCE_PATH,
                format!("deb [signed-by={APT_KEYRING_PATH}] {repo} /\n"),
            )],
            commands: vec![
                "DEBIAN_FRONTEND=noninteractive apt-get install -y apt-transport-https ca-certificates curl gpg".into(),
                "mkdir -p -m 755 /etc/apt/keyrings".into(),
                format!("curl -fsSL {repo}Release.key | gpg --dearmor --yes -o {APT_KEYRING_PATH}"),
                "apt-get update".into(),
            ],
        },
        PrepStep {
            name: "kubernetes-packages",
            files: vec![],
            commands: vec![
                format!(
                    "DEBIAN_FRONTEND=noninteractive apt-get install -y --allow-change-held-packages {}",
                    pinned.join(" ")
                ),
                format!("apt-mark hold {}", pkgs.join(" ")),
                "systemctl enable kubelet".into(),
            ],
        },
    ];
    if input.nfs_client {
        steps.push(PrepStep {
            name: "nfs-client",
            files: vec![],
            commands: vec!["DEBIAN_FRONTEND=noninteractive apt-get install -y nfs-common".into()],
        });
    }
    if input.pre_pull_images {
        let mut cmd = format!(
            "kubeadm config images pull --kubernetes-version {} --cri-socket {}",
            input.kubernetes_version, input.cri_socket
        );
        if let Some(repo) = &input.image_repository {
            cmd.push_str(&format!(" --image-repository {repo}"));
        }
        steps.push(PrepStep {
            name: "image-pull",
            files: vec![],
            commands: vec![cmd],
        });
    }
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_and_packages_follow_the_pinned_version() {
        let steps = node_prep_steps(&PrepInput::new("v1.31.9", false)).unwrap();
        assert!(!steps.iter().any(|s| s.name == "image-pull"));
        let repo = steps.iter().find(|s| s.name == "kubernetes-repo").unwrap();
        assert!(
            repo.files[0]
                .contents
                .contains("/core:/stable:/v1.31/deb/ /")
        );
        let pk = steps
            .iter()
            .find(|s| s.name == "kubernetes-packages")
            .unwrap();
        assert!(pk.commands[0].contains("kubeadm=1.31.9-1.1"));
        assert!(pk.commands[1].starts_with("apt-mark hold"));
        let c = steps.iter().find(|s| s.name == "containerd").unwrap();
        assert!(
            c.commands
                .iter()
                .any(|c| c.contains("SystemdCgroup = true"))
        );
        // Modules load before the sysctls that only exist once br_netfilter is loaded.
        let pos = |n| steps.iter().position(|s| s.name == n).unwrap();
        assert!(pos("kernel-modules") < pos("sysctl"));
        assert!(node_prep_steps(&PrepInput::new("1.31", false)).is_err());
        // Every node gets the NFS client unless told otherwise.
        let nfs = steps.iter().find(|s| s.name == "nfs-client").unwrap();
        assert_eq!(
            nfs.commands,
            ["DEBIAN_FRONTEND=noninteractive apt-get install -y nfs-common"]
        );
        let mut without = PrepInput::new("v1.31.9", false);
        without.nfs_client = false;
        assert!(
            !node_prep_steps(&without)
                .unwrap()
                .iter()
                .any(|s| s.name == "nfs-client")
        );
    }

    #[test]
    fn every_command_is_valid_shell() {
        for s in node_prep_steps(&PrepInput::new("v1.33.2", true)).unwrap() {
            for c in &s.commands {
                let st = std::process::Command::new("sh")
                    .args(["-n", "-c", c])
                    .status()
                    .unwrap();
                assert!(st.success(), "{}: {c}", s.name);
            }
        }
    }
}
