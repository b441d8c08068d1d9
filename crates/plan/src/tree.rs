//! The in-memory plan tree, writing it out and reading host plans back.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use hakube_host_state::{File, HostPlan};

use crate::Error;

/// Where a host's plan (every item, files by digest) is stored: `hosts/<vm>/host-plan.json`.
pub const HOST_PLAN_FILE: &str = "host-plan.json";

/// One file of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanFile {
    /// The contents.
    pub contents: Vec<u8>,
    /// Unix mode (e.g. `0o644`; secrets `0o600`).
    pub mode: u32,
}

/// Every file of a plan, by its path inside the plan directory (`/`-separated, sorted), and
/// every host's [`HostPlan`] (whose files are the tree's `hosts/<vm>/...` files).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlanTree {
    files: BTreeMap<String, PlanFile>,
    hosts: BTreeMap<String, HostPlan>,
}

/// What [`PlanTree::write_to`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteSummary {
    /// Files written.
    pub files: usize,
    /// Bytes written.
    pub bytes: u64,
}

fn check_rel(path: &str) -> Result<(), Error> {
    let bad = |reason| {
        Err(Error::BadPath {
            path: path.to_owned(),
            reason,
        })
    };
    if path.is_empty() || path.starts_with('/') {
        return bad("must be relative and non-empty");
    }
    if path.contains('\0') || path.contains('\\') {
        return bad("contains NUL or backslash");
    }
    if path
        .split('/')
        .any(|seg| seg.is_empty() || seg == "." || seg == "..")
    {
        return bad("must not contain `.`, `..` or empty segments");
    }
    Ok(())
}

impl PlanTree {
    /// Adds a file at a plan-relative path.
    ///
    /// # Errors
    /// [`Error::BadPath`] for a path that could escape the plan, [`Error::Conflict`] when the
    /// path is already taken.
    pub fn insert(
        &mut self,
        path: String,
        contents: impl Into<Vec<u8>>,
        mode: u32,
    ) -> Result<(), Error> {
        check_rel(&path)?;
        if self.files.contains_key(&path) {
            return Err(Error::Conflict { path });
        }
        self.files.insert(
            path,
            PlanFile {
                contents: contents.into(),
                mode,
            },
        );
        Ok(())
    }

    /// Adds a file a VM receives at `abs_path` (e.g. `/etc/haproxy/haproxy.cfg`), root-owned.
    /// A file only its owner may read (`mode & 0o077 == 0`) is a secret: never shown by the
    /// executor.
    ///
    /// # Errors
    /// As [`PlanTree::insert`]; also when `abs_path` is not absolute.
    pub fn host_file(
        &mut self,
        vm: &str,
        abs_path: &str,
        contents: impl Into<Vec<u8>>,
        mode: u32,
    ) -> Result<(), Error> {
        let mut file = File::new(abs_path, contents).mode(mode);
        file.secret = mode & 0o077 == 0;
        self.host_items(HostPlan::new(vm).file(file))
    }

    /// Appends a component's items to the VM's host plan; its files also become tree files
    /// `hosts/<vm>/<path>` (secret ones with mode 0600).
    ///
    /// # Errors
    /// As [`PlanTree::insert`]; also when a file's path is not absolute.
    pub fn host_items(&mut self, items: HostPlan) -> Result<(), Error> {
        let vm = items.host.clone();
        for f in items.files() {
            let Some(rel) = f.path.strip_prefix('/') else {
                return Err(Error::BadPath {
                    path: f.path.clone(),
                    reason: "a host path must be absolute",
                });
            };
            let mode = if f.secret { 0o600 } else { f.mode };
            self.insert(format!("hosts/{vm}/{rel}"), f.content.clone(), mode)?;
        }
        let plan = self
            .hosts
            .entry(vm.clone())
            .or_insert_with(|| HostPlan::new(vm));
        plan.items.extend(items.items);
        Ok(())
    }

    /// Checks every host plan and stores each as `hosts/<vm>/host-plan.json`. [`crate::render`]
    /// calls it last.
    ///
    /// # Errors
    /// [`Error::HostPlan`] naming the host, item and field.
    pub(crate) fn seal_host_plans(&mut self) -> Result<(), Error> {
        let plans: Vec<(String, String)> = self
            .hosts
            .values()
            .map(|p| p.validate().map(|()| (p.host.clone(), p.to_json())))
            .collect::<Result<_, _>>()?;
        for (vm, json) in plans {
            self.insert(format!("hosts/{vm}/{HOST_PLAN_FILE}"), json, 0o644)?;
        }
        Ok(())
    }

    /// The plan of one VM.
    #[must_use]
    pub fn host_plan(&self, vm: &str) -> Option<&HostPlan> {
        self.hosts.get(vm)
    }

    /// Every VM's plan, by name.
    pub fn host_plans(&self) -> impl Iterator<Item = &HostPlan> {
        self.hosts.values()
    }

    /// Adds a cluster-level file under `cluster/<component>/<rel>`.
    ///
    /// # Errors
    /// As [`PlanTree::insert`].
    pub fn cluster_file(
        &mut self,
        component: &str,
        rel: &str,
        contents: impl Into<Vec<u8>>,
    ) -> Result<(), Error> {
        self.insert(format!("cluster/{component}/{rel}"), contents, 0o644)
    }

    /// A file by plan-relative path.
    #[must_use]
    pub fn get(&self, path: &str) -> Option<&PlanFile> {
        self.files.get(path)
    }

    /// Every file, sorted by path.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &PlanFile)> {
        self.files.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// How many files.
    #[must_use]
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether the plan is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// The files one VM receives: (absolute path on the VM, file).
    pub fn host_files<'a>(&'a self, vm: &str) -> impl Iterator<Item = (String, &'a PlanFile)> + 'a {
        let prefix = format!("hosts/{vm}/");
        self.files
            .iter()
            .filter_map(move |(k, v)| k.strip_prefix(&prefix).map(|rest| (format!("/{rest}"), v)))
    }

    /// Writes the plan to `dir`, replacing a previous plan there as a whole, except for what
    /// later stages keep beside it: files under `secrets/` the plan does not write itself
    /// (e.g. Vault's init keys, the admin kubeconfig) and `state/` ([`STATE_DIR`]).
    ///
    /// The tree is written to a sibling temporary directory first and renamed into place, so
    /// `dir` holds either the old plan or the new one, never a mix. An existing `dir` is only
    /// replaced when it is empty (but for `state/`) or holds a `plan.json` (a previous plan).
    ///
    /// Secrets other stages keep beside the plan's are carried over: a file under
    /// [`SECRETS_DIR`](crate::SECRETS_DIR) of the old plan is kept (with its mode) when the new
    /// plan writes no file in its directory, e.g. OpenBao's unseal keys at
    /// [`VAULT_KEYS_PATH`](crate::VAULT_KEYS_PATH), which no re-plan could give back. A
    /// directory the plan writes into is the plan's: a file it no longer holds there goes.
    ///
    /// # Errors
    /// [`Error::NotAPlanDir`] when `dir` holds something else, [`Error::Io`] on I/O failure
    /// (the old plan is then left as it was).
    pub fn write_to(&self, dir: &Path) -> Result<WriteSummary, Error> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::Io { path, source }
        };
        if dir.exists() {
            // Empty, or holding only the state a run keeps before its first plan (`up --lab`
            // describes its twin there).
            let mut entries = fs::read_dir(dir).map_err(io(dir))?;
            let empty = entries.all(|e| e.is_ok_and(|e| e.file_name() == STATE_DIR));
            if !empty && !dir.join("plan.json").is_file() {
                return Err(Error::NotAPlanDir {
                    path: dir.to_path_buf(),
                });
            }
        }
        let parent = dir
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        fs::create_dir_all(parent).map_err(io(parent))?;
        let name = dir
            .file_name()
            .map_or_else(|| "plan".into(), |n| n.to_string_lossy().into_owned());
        let staging = parent.join(format!(".{name}.new-{}", std::process::id()));
        let old = parent.join(format!(".{name}.old-{}", std::process::id()));
        // What later stages keep next to the plan survives a re-plan: secrets they generated
        // (the Vault init keys, the admin kubeconfig) and `state/` (what `up` finished).
        let result = self
            .write_tree(&staging)
            .and_then(|()| self.carry_over_kept(dir, &staging))
            .and_then(|()| carry_over(&dir.join(STATE_DIR), &staging.join(STATE_DIR)));
        if let Err(e) = result {
            let _ = fs::remove_dir_all(&staging);
            return Err(e);
        }
        if dir.exists() {
            fs::rename(dir, &old).map_err(io(dir))?;
        }
        if let Err(e) = fs::rename(&staging, dir) {
            let _ = fs::rename(&old, dir);
            let _ = fs::remove_dir_all(&staging);
            return Err(io(dir)(e));
        }
        let _ = fs::remove_dir_all(&old);
        Ok(WriteSummary {
            files: self.files.len(),
            bytes: self.files.values().map(|f| f.contents.len() as u64).sum(),
        })
    }

    /// Copies the old plan's kept secrets (see [`PlanTree::write_to`]) into `staging`.
    fn carry_over_kept(&self, old: &Path, staging: &Path) -> Result<(), Error> {
        let io = |path: PathBuf| move |source| Error::Io { path, source };
        let secrets = crate::secrets::SECRETS_DIR;
        let plan_dirs: std::collections::BTreeSet<&str> = self
            .files
            .keys()
            .filter_map(|p| p.rsplit_once('/').map(|(d, _)| d))
            .collect();
        let mut stack = vec![secrets.to_owned()];
        while let Some(rel) = stack.pop() {
            let entries = match fs::read_dir(old.join(&rel)) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io(old.join(&rel))(e)),
            };
            for entry in entries {
                let entry = entry.map_err(io(old.join(&rel)))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                let child = format!("{rel}/{name}");
                let kind = entry.file_type().map_err(io(entry.path()))?;
                if kind.is_dir() {
                    stack.push(child);
                } else if kind.is_file() && !plan_dirs.contains(rel.as_str()) {
                    let to = staging.join(&child);
                    let mut parent = to.parent();
                    while let Some(p) = parent.filter(|p| !p.exists()) {
                        fs::create_dir_all(p).map_err(io(p.to_path_buf()))?;
                        set_mode(p, 0o700).map_err(io(p.to_path_buf()))?;
                        parent = p.parent();
                    }
                    // fs::copy keeps the permission bits.
                    fs::copy(entry.path(), &to).map_err(io(to.clone()))?;
                }
            }
        }
        Ok(())
    }

    fn write_tree(&self, root: &Path) -> Result<(), Error> {
        let io = |path: PathBuf| move |source| Error::Io { path, source };
        let _ = fs::remove_dir_all(root);
        fs::create_dir_all(root).map_err(io(root.to_path_buf()))?;
        for (rel, file) in &self.files {
            let path = root.join(rel);
            if let Some(p) = path.parent() {
                fs::create_dir_all(p).map_err(io(p.to_path_buf()))?;
            }
            fs::write(&path, &file.contents).map_err(io(path.clone()))?;
            set_mode(&path, file.mode).map_err(io(path.clone()))?;
        }
        // Secrets live in their own folder, readable by the owner only (subfolders too).
        let secrets = root.join(crate::secrets::SECRETS_DIR);
        let mut dirs = vec![secrets];
        while let Some(d) = dirs.pop() {
            if !d.is_dir() {
                continue;
            }
            set_mode(&d, 0o700).map_err(io(d.clone()))?;
            for e in fs::read_dir(&d).map_err(io(d.clone()))?.flatten() {
                if e.path().is_dir() {
                    dirs.push(e.path());
                }
            }
        }
        Ok(())
    }
}

/// Reads one VM's plan back from a written plan directory: `hosts/<vm>/host-plan.json` and the
/// files it names. What [`PlanTree::write_to`] wrote reads back equal to what was rendered.
///
/// # Errors
/// [`Error::Io`] when the JSON file cannot be read, [`Error::HostPlan`] when it is malformed, a
/// file is missing or its bytes differ from the recorded digest.
pub fn read_host_plan(dir: &Path, vm: &str) -> Result<HostPlan, Error> {
    let host_dir = dir.join("hosts").join(vm);
    let json_path = host_dir.join(HOST_PLAN_FILE);
    let json = fs::read_to_string(&json_path).map_err(|source| Error::Io {
        path: json_path.clone(),
        source,
    })?;
    let plan = HostPlan::from_json(&json, |abs| {
        let rel = abs.strip_prefix('/')?;
        fs::read(host_dir.join(rel)).ok()
    })?;
    if plan.host != vm {
        return Err(Error::BadPath {
            path: json_path.display().to_string(),
            reason: "the host plan names another host",
        });
    }
    Ok(plan)
}

/// Reads every VM's plan from a written plan directory (the VMs with a `host-plan.json`).
///
/// # Errors
/// As [`read_host_plan`].
pub fn read_host_plans(dir: &Path) -> Result<Vec<HostPlan>, Error> {
    let hosts = dir.join("hosts");
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { path, source }
    };
    let mut names: Vec<String> = fs::read_dir(&hosts)
        .map_err(io(&hosts))?
        .filter_map(Result::ok)
        .filter(|e| e.path().join(HOST_PLAN_FILE).is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names.iter().map(|vm| read_host_plan(dir, vm)).collect()
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode(_: &Path, _: u32) -> std::io::Result<()> {
    Ok(())
}

/// The directory of a plan directory where runners record what they finished (`up`'s stages).
/// Like the secrets it is kept when the plan is written again.
pub const STATE_DIR: &str = "state";

/// Copies every file under `from` that `to` lacks into `to` (same relative path and mode).
fn carry_over(from: &Path, to: &Path) -> Result<(), Error> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { path, source }
    };
    let Ok(entries) = fs::read_dir(from) else {
        return Ok(());
    };
    for entry in entries {
        let entry = entry.map_err(io(from))?;
        let src = entry.path();
        let dst = to.join(entry.file_name());
        let ty = entry.file_type().map_err(io(&src))?;
        if ty.is_dir() {
            if !dst.exists() {
                fs::create_dir_all(&dst).map_err(io(&dst))?;
                let mode = entry.metadata().map_err(io(&src))?.permissions();
                fs::set_permissions(&dst, mode).map_err(io(&dst))?;
            }
            carry_over(&src, &dst)?;
        } else if ty.is_file() && !dst.exists() {
            fs::create_dir_all(to).map_err(io(to))?;
            fs::copy(&src, &dst).map_err(io(&src))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_cannot_escape() {
        let mut t = PlanTree::default();
        for bad in [
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a//b",
            "",
            "a/./b",
            "a/",
        ] {
            assert!(t.insert(bad.into(), "x", 0o644).is_err(), "{bad}");
        }
        assert!(t.host_file("vm", "relative", "x", 0o644).is_err());
        t.host_file("vm", "/etc/hosts", "x", 0o644).unwrap();
        assert!(matches!(
            t.host_file("vm", "/etc/hosts", "y", 0o644),
            Err(Error::Conflict { .. })
        ));
    }

    #[test]
    fn write_replaces_a_previous_plan_only() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let mut t = PlanTree::default();
        t.insert("plan.json".into(), "{}", 0o644).unwrap();
        t.host_file("vm", "/etc/secret", "s", 0o600).unwrap();
        t.write_to(&out).unwrap();
        let mode = {
            use std::os::unix::fs::PermissionsExt;
            fs::metadata(out.join("hosts/vm/etc/secret"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode, 0o600);
        // A stale file from an older plan disappears.
        fs::write(out.join("stale"), "x").unwrap();
        t.write_to(&out).unwrap();
        assert!(!out.join("stale").exists());
        // Secrets another stage keeps beside the plan's survive a re-plan; a file in a
        // directory the plan writes into does not.
        t.insert("secrets/kubeadm.env".into(), "T=1", 0o600)
            .unwrap();
        t.write_to(&out).unwrap();
        fs::create_dir_all(out.join("secrets/vault")).unwrap();
        fs::write(out.join("secrets/vault/init.json"), "{}").unwrap();
        set_mode(&out.join("secrets/vault/init.json"), 0o600).unwrap();
        fs::write(out.join("secrets/stale.env"), "x").unwrap();
        t.write_to(&out).unwrap();
        let kept = out.join("secrets/vault/init.json");
        assert_eq!(fs::read_to_string(&kept).unwrap(), "{}");
        let mode = |p: &Path| {
            use std::os::unix::fs::PermissionsExt;
            fs::metadata(p).unwrap().permissions().mode() & 0o777
        };
        assert_eq!(mode(&kept), 0o600);
        assert_eq!(mode(&out.join("secrets/vault")), 0o700);
        assert!(!out.join("secrets/stale.env").exists());
        // A directory that is not a plan is never replaced.
        let other = dir.path().join("home");
        fs::create_dir(&other).unwrap();
        fs::write(other.join("precious"), "x").unwrap();
        assert!(matches!(t.write_to(&other), Err(Error::NotAPlanDir { .. })));
        // A directory holding only a run's state (before its first plan) gets the plan, and
        // keeps the state.
        let fresh = dir.path().join("fresh");
        fs::create_dir_all(fresh.join(STATE_DIR)).unwrap();
        fs::write(fresh.join(STATE_DIR).join("twin.json"), "{}").unwrap();
        t.write_to(&fresh).unwrap();
        assert!(fresh.join("plan.json").is_file());
        assert_eq!(
            fs::read_to_string(fresh.join(STATE_DIR).join("twin.json")).unwrap(),
            "{}"
        );
        assert!(other.join("precious").exists());
    }

    #[test]
    fn secrets_and_state_of_later_stages_survive_a_replan() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let mut t = PlanTree::default();
        t.insert("plan.json".into(), "{}", 0o644).unwrap();
        t.insert("secrets/kubeadm.env".into(), "TOKEN=new", 0o600)
            .unwrap();
        t.write_to(&out).unwrap();
        fs::create_dir_all(out.join("secrets/vault")).unwrap();
        fs::write(out.join("secrets/vault/init.json"), "{}").unwrap();
        fs::write(out.join("secrets/kubeadm.env"), "TOKEN=old").unwrap();
        fs::create_dir_all(out.join("state")).unwrap();
        fs::write(out.join("state/up.json"), "{}").unwrap();
        t.write_to(&out).unwrap();
        assert!(out.join("secrets/vault/init.json").is_file());
        assert!(out.join("state/up.json").is_file());
        // What the plan writes itself is the plan's.
        assert_eq!(
            fs::read_to_string(out.join("secrets/kubeadm.env")).unwrap(),
            "TOKEN=new"
        );
    }
}
