//! The Proxmox side of the plan: one provisioner [`VmSpec`](hakube_proxmox_api::provision::VmSpec)
//! per VM of the placed topology.

use hakube_topology::Cluster;

use crate::{Error, PlanOptions};

/// The provisioner's input for a placed cluster with hakube's policy
/// ([`PlanOptions::default`]); see [`vm_specs_with`].
///
/// # Errors
/// As [`vm_specs_with`].
pub fn vm_specs(
    cluster: &Cluster,
    ha: bool,
) -> Result<Vec<hakube_proxmox_api::provision::VmSpec>, Error> {
    vm_specs_with(cluster, ha, &PlanOptions::default())
}

/// The provisioner's input for a placed cluster: one [`VmSpec`](hakube_proxmox_api::provision::VmSpec) per VM.
///
/// Per-node templates are cloned locally; a shared template is cloned on its node with
/// `target`. Disks go to the topology's storage (full clones), grown to the VM's size.
/// The ownership tag is `hakube-<cluster name>`. The grown disk and the NIC model are
/// `options.proxmox`'s.
///
/// # Errors
/// [`Error::BadOption`] for an unusable option, [`Error::Component`] naming the VM whose size
/// or address does not fit the Proxmox API.
pub fn vm_specs_with(
    cluster: &Cluster,
    ha: bool,
    options: &PlanOptions,
) -> Result<Vec<hakube_proxmox_api::provision::VmSpec>, Error> {
    options.validate()?;
    let err = |vm: &str, what: String| Error::Component {
        component: "proxmox",
        source: format!("{vm}: {what}").into(),
    };
    let t = &cluster.topology;
    let prefix = t.network.cidr.prefix_len();
    let mut out = Vec::new();
    for vm in &cluster.vms {
        let mut s = hakube_proxmox_api::provision::VmSpec::new(
            &vm.name,
            &vm.proxmox_node,
            vm.vmid,
            vm.template_vmid,
        );
        s.clone_mode = hakube_proxmox_api::provision::CloneMode::Full;
        s.storage = Some(t.proxmox.storage.clone());
        s.cores = vm.size.cores;
        s.memory_mib = u32::try_from(vm.size.memory_mib)
            .map_err(|_| err(&vm.name, "memory_mib too large".into()))?;
        s.disk = Some((
            options.proxmox.disk.clone(),
            u32::try_from(vm.size.disk_gib)
                .map_err(|_| err(&vm.name, "disk_gib too large".into()))?,
        ));
        s.network = Some(hakube_proxmox_api::provision::NetSpec {
            model: options.proxmox.nic_model.clone(),
            bridge: t.proxmox.bridge.clone(),
            vlan: t.proxmox.vlan,
        });
        let ip = hakube_proxmox_api::cloudinit::IpConfig::static_v4(
            &format!("{}/{prefix}", vm.address),
            Some(std::net::IpAddr::V4(t.network.gateway)),
        )
        .map_err(|e| err(&vm.name, e.to_string()))?;
        s.cloud_init = Some(hakube_proxmox_api::provision::CloudInit {
            user: Some(t.ssh.user.clone()),
            ssh_keys: t.ssh.public_keys.clone(),
            ip: Some(ip),
            nameservers: t
                .network
                .dns
                .iter()
                .copied()
                .map(std::net::IpAddr::V4)
                .collect(),
            search_domains: t.network.search_domain.iter().cloned().collect(),
        });
        let mut tags = vec![format!("role-{}", vm.role.as_str())];
        if let Some(g) = &vm.group {
            tags.push(format!("group-{g}"));
        }
        s.tags = tags;
        s.role = Some(vm.role.as_str().to_owned());
        s.ha = ha && vm.role.anti_affine();
        s.agent = true;
        out.push(s);
    }
    Ok(out)
}
