//! The NFS server side as a host plan: the kernel server, its export directories, the exports
//! file and the re-export when it changed.
//!
//! # Where the exports go
//! hakube writes its exports to [`EXPORTS_FILE`] (`/etc/exports.d/hakube.exports`), not to
//! `/etc/exports`: nfs-utils reads every `*.exports` file in `/etc/exports.d` after
//! `/etc/exports`, so an administrator's own exports survive and hakube owns exactly one file it
//! can overwrite on every run. Debian does not create `/etc/exports.d`; the host plan
//! does.

use hakube_host_state::{Directory, Exec, File, HostPlan, Package, Service};

use crate::model::NfsSetup;

/// The exports file hakube owns on the NFS server.
pub const EXPORTS_FILE: &str = "/etc/exports.d/hakube.exports";
/// Its mode.
pub const EXPORTS_FILE_MODE: u32 = 0o644;
/// The Debian package of the kernel NFS server.
pub const SERVER_PACKAGE: &str = "nfs-kernel-server";
/// The systemd unit of the kernel NFS server.
pub const SERVER_SERVICE: &str = "nfs-server";

impl NfsSetup {
    /// The export directories with owner and mode: the StorageClass exports', then the plain
    /// exports'. Owners are numeric ids (the provisioner writes as `nobody`, 65534).
    #[must_use]
    pub fn server_directories(&self) -> Vec<Directory> {
        let input = self.input();
        input
            .exports
            .iter()
            .map(|e| (&e.path, e.directory_owner()))
            .chain(
                input
                    .plain_exports
                    .iter()
                    .map(|e| (&e.path, e.directory_owner())),
            )
            .map(|(path, o)| {
                Directory::new(path.to_string())
                    .mode(o.mode)
                    .owner(o.uid.to_string(), o.gid.to_string())
            })
            .collect()
    }

    /// The NFS VM's host plan: the kernel server installed; `/etc/exports.d` and the export
    /// directories with owner and mode (missing parents created); hakube's exports file; the
    /// server enabled and running; `exportfs -ra` when the exports file changed (the kernel's
    /// export table follows the files). `remote::verify_exports` (feature `remote`) then
    /// checks the live table against the model.
    ///
    /// ```
    /// use hakube_nfs_provisioning::{NfsInput, NfsServer, NfsSetup, ServerAddress, exports::HostName};
    /// let server = NfsServer {
    ///     name: HostName::new("nfs1")?,
    ///     address: ServerAddress::Ip("10.20.0.50".parse().expect("ip")),
    /// };
    /// let setup = NfsSetup::new(NfsInput::seed(server, "10.20.0.0/24".parse().expect("cidr"))?)?;
    /// let plan = setup.server_host_plan();
    /// plan.validate().expect("valid");
    /// assert!(plan.file_content("/etc/exports.d/hakube.exports").is_some());
    /// # Ok::<(), hakube_nfs_provisioning::Error>(())
    /// ```
    #[must_use]
    pub fn server_host_plan(&self) -> HostPlan {
        let mut plan = HostPlan::new(self.input().server.name.as_str())
            .package(Package::new(SERVER_PACKAGE))
            .directory(Directory::new("/etc/exports.d"));
        for d in self.server_directories() {
            plan = plan.directory(d);
        }
        plan.file(File::new(EXPORTS_FILE, self.exports_file().to_string()).mode(EXPORTS_FILE_MODE))
            .service(Service::new(SERVER_SERVICE))
            .exec(Exec::on_change(
                "exportfs",
                ["exportfs", "-ra"],
                [EXPORTS_FILE],
            ))
    }
}
