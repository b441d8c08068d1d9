//! Node preparation as a host plan ([`HostPlan`]): packages, files, services and guarded
//! commands, applied by the host-plan executor; a second run changes nothing.
//!
//! Follows the upstream kubeadm install guide and kubespray: swap off (and kept off), kernel
//! modules `overlay` and `br_netfilter` loaded before the sysctls that need them, containerd
//! with `SystemdCgroup = true` (matching the kubelet's `cgroupDriver: systemd`) and the pause
//! image kubeadm expects, the pkgs.k8s.io repository of the pinned minor version, kubelet,
//! kubeadm and kubectl at the pinned version and held, the NFS client (the kubelet mounts the
//! NFS-backed volumes and the etcd snapshot export with `mount.nfs`), and (on control planes)
//! the images pulled ahead of `kubeadm init`/`join`.

use hakube_host_state::{Directory, Exec, File, HostPlan, Package, Service};

use crate::input::{CONTAINERD_SOCKET, KubernetesVersion};

/// What node preparation needs to know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrepInput {
    /// Pinned Kubernetes version.
    pub kubernetes_version: KubernetesVersion,
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
    pub fn new(kubernetes_version: KubernetesVersion, control_plane: bool) -> Self {
        Self {
            kubernetes_version,
            package_revision: "1.1".into(),
            pause_image: "registry.k8s.io/pause:3.10".into(),
            cri_socket: CONTAINERD_SOCKET.into(),
            pre_pull_images: control_plane,
            image_repository: None,
            nfs_client: true,
        }
    }
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

/// Where `image-pull` records that the images of a version are present (kubeadm's own
/// directory, so `kubeadm reset` forgets it with the rest).
fn images_marker(version: KubernetesVersion) -> String {
    format!("/etc/kubernetes/.hakube-images-pulled-{version}")
}

fn sh(script: impl Into<String>) -> [String; 3] {
    ["sh".into(), "-c".into(), script.into()]
}

/// The preparation of one node as a host plan ([`HostPlan`]), applied by the host-plan
/// executor (`hakube_remote::apply_host_plans`). Every item is guarded, so a second run changes
/// nothing.
///
/// ```
/// use hakube_kubeadm::prep::{PrepInput, node_prep_plan};
/// let plan = node_prep_plan("master-1", &PrepInput::new("v1.33.2".parse()?, true));
/// plan.validate().expect("valid");
/// let names: Vec<String> = plan.items.iter().map(ToString::to_string).collect();
/// assert!(names.contains(&"package kubeadm".to_owned()));
/// assert!(names.contains(&"exec image-pull".to_owned()));
/// # Ok::<(), hakube_kubeadm::Error>(())
/// ```
#[must_use]
pub fn node_prep_plan(host: &str, input: &PrepInput) -> HostPlan {
    let v = input.kubernetes_version;
    let (major, minor, patch) = (v.major(), v.minor(), v.patch());
    let repo = format!("https://pkgs.k8s.io/core:/stable:/v{major}.{minor}/deb/");
    let pkg_version = format!("{major}.{minor}.{patch}-{}", input.package_revision);
    let cfg = CONTAINERD_CONFIG_PATH;
    let pause = &input.pause_image;
    let mut plan = HostPlan::new(host)
        .exec(Exec::unless(
            "swap-off",
            sh(r"swapoff -a && sed -ri '/\sswap\s/s/^#?/#/' /etc/fstab && systemctl mask swap.target"),
            sh(r#"test -z "$(swapon --noheadings --show)" && ! grep -Eq '^[^#]\S*\s+\S+\s+swap\s' /etc/fstab"#),
        ))
        .file(File::new(MODULES_LOAD_PATH, "overlay\nbr_netfilter\n"))
        .exec(Exec::on_change(
            "kernel-modules",
            ["modprobe", "-a", "overlay", "br_netfilter"],
            [MODULES_LOAD_PATH],
        ))
        .file(File::new(
            SYSCTL_PATH,
            "net.bridge.bridge-nf-call-iptables = 1\n\
             net.bridge.bridge-nf-call-ip6tables = 1\n\
             net.ipv4.ip_forward = 1\n",
        ))
        .exec(Exec::on_change("sysctl", ["sysctl", "--system"], [SYSCTL_PATH]))
        .package(Package::new("containerd"))
        // containerd's defaults depend on its version, so the config is generated on the node
        // (as the kubeadm install guide does) and corrected, not shipped.
        .exec(Exec::unless(
            "containerd-config",
            sh(format!(
                "mkdir -p /etc/containerd && containerd config default \
                 | sed -e 's/SystemdCgroup = false/SystemdCgroup = true/' \
                 -e 's#sandbox_image = .*#sandbox_image = \"{pause}\"#' > {cfg}.hakube-new \
                 && grep -q 'SystemdCgroup = true' {cfg}.hakube-new \
                 && mv {cfg}.hakube-new {cfg} && systemctl restart containerd"
            )),
            sh(format!(
                "grep -q 'SystemdCgroup = true' {cfg} && grep -qF 'sandbox_image = \"{pause}\"' {cfg}"
            )),
        ))
        .service(Service::new("containerd"))
        .package(Package::new("ca-certificates"))
        .package(Package::new("curl"))
        .package(Package::new("gpg"))
        .directory(Directory::new("/etc/apt/keyrings").mode(0o755))
        .exec(Exec::creates(
            "kubernetes-apt-key",
            sh(format!(
                "curl -fsSL {repo}Release.key | gpg --dearmor --yes -o {APT_KEYRING_PATH}"
            )),
            APT_KEYRING_PATH,
        ))
        .file(File::new(
            APT_SOURCE_PATH,
            format!("deb [signed-by={APT_KEYRING_PATH}] {repo} /\n"),
        ));
    for p in ["kubelet", "kubeadm", "kubectl"] {
        plan = plan.package(Package::new(p).version(&pkg_version).hold());
    }
    plan = plan.service(Service::enabled_only("kubelet"));
    if input.nfs_client {
        plan = plan.package(Package::new("nfs-common"));
    }
    if input.pre_pull_images {
        let marker = images_marker(input.kubernetes_version);
        let mut pull = format!(
            "kubeadm config images pull --kubernetes-version {} --cri-socket {}",
            input.kubernetes_version, input.cri_socket
        );
        if let Some(repo) = &input.image_repository {
            pull.push_str(&format!(" --image-repository {repo}"));
        }
        plan = plan.exec(Exec::creates(
            "image-pull",
            sh(format!("{pull} && touch {marker}")),
            marker.clone(),
        ));
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use hakube_host_state::Item;

    fn names(plan: &HostPlan) -> Vec<String> {
        plan.items.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn repo_and_packages_follow_the_pinned_version() {
        let plan = node_prep_plan("w1", &PrepInput::new(KubernetesVersion::new(31, 9), false));
        plan.validate().unwrap();
        let n = names(&plan);
        assert!(!n.contains(&"exec image-pull".to_owned()));
        let source = plan.file_content(APT_SOURCE_PATH).unwrap();
        assert!(String::from_utf8_lossy(source).contains("/core:/stable:/v1.31/deb/ /"));
        let kubeadm = plan
            .items
            .iter()
            .find_map(|i| match i {
                Item::Package(p) if p.name == "kubeadm" => Some(p),
                _ => None,
            })
            .unwrap();
        assert_eq!(kubeadm.version.as_deref(), Some("1.31.9-1.1"));
        assert!(kubeadm.hold);
        // Modules load before the sysctls that only exist once br_netfilter is loaded; the
        // repository comes before its packages.
        let pos = |x: &str| n.iter().position(|s| s == x).unwrap();
        assert!(pos("exec kernel-modules") < pos("exec sysctl"));
        assert!(pos(&format!("file {APT_SOURCE_PATH}")) < pos("package kubelet"));
        assert!(pos("package containerd") < pos("exec containerd-config"));
        assert!(n.contains(&"package nfs-common".to_owned()));
        let mut without = PrepInput::new(KubernetesVersion::new(31, 9), false);
        without.nfs_client = false;
        assert!(!names(&node_prep_plan("w1", &without)).contains(&"package nfs-common".to_owned()));
    }

    #[test]
    fn control_planes_pull_images_once_per_version() {
        let plan = node_prep_plan("m1", &PrepInput::new(KubernetesVersion::new(33, 2), true));
        let pull = plan
            .items
            .iter()
            .find_map(|i| match i {
                Item::Exec(e) if e.name == "image-pull" => Some(e),
                _ => None,
            })
            .unwrap();
        assert_eq!(
            pull.creates.as_deref(),
            Some("/etc/kubernetes/.hakube-images-pulled-v1.33.2")
        );
        assert!(pull.argv[2].contains("--kubernetes-version v1.33.2"));
    }

    #[test]
    fn every_shell_script_is_valid_shell() {
        let plan = node_prep_plan("m1", &PrepInput::new(KubernetesVersion::new(33, 2), true));
        for item in &plan.items {
            let Item::Exec(e) = item else { continue };
            for argv in std::iter::once(&e.argv).chain(e.unless.as_ref()) {
                if argv[0] != "sh" {
                    continue;
                }
                let st = std::process::Command::new("sh")
                    .args(["-n", "-c", &argv[2]])
                    .status()
                    .unwrap();
                assert!(st.success(), "{}: {}", e.name, argv[2]);
            }
        }
    }
}
