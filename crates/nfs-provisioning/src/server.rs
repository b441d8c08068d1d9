//! The NFS server side as data: the files the VM receives, its export directories, and the named
//! steps that install the kernel server and (re)export.
//!
//! # Where the exports go
//! hakube writes its exports to [`EXPORTS_FILE`] (`/etc/exports.d/hakube.exports`), not to
//! `/etc/exports`: nfs-utils reads every `*.exports` file in `/etc/exports.d` after
//! `/etc/exports`, so an administrator's own exports survive and hakube owns exactly one file it
//! can overwrite on every run. Debian does not create `/etc/exports.d`; the `write-exports` step
//! does.

use crate::exports::ExportsFile;
use crate::model::NfsSetup;

/// The exports file hakube owns on the NFS server.
pub const EXPORTS_FILE: &str = "/etc/exports.d/hakube.exports";
/// Its mode.
pub const EXPORTS_FILE_MODE: u32 = 0o644;
/// The Debian package of the kernel NFS server.
pub const SERVER_PACKAGE: &str = "nfs-kernel-server";

/// A file the NFS VM receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFile {
    /// Absolute path on the VM.
    pub path: String,
    /// Full contents.
    pub contents: String,
    /// Permission bits.
    pub mode: u32,
}

/// A directory with owner and mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directory {
    /// Absolute path on the VM.
    pub path: String,
    /// Owner uid.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
    /// Permission bits.
    pub mode: u32,
}

/// One command as an argument vector (never a shell string built from input).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// Program and arguments.
    pub argv: Vec<String>,
}

impl Command {
    /// A command from its words.
    #[must_use]
    pub fn new<I, S>(argv: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            argv: argv.into_iter().map(Into::into).collect(),
        }
    }

    /// The command as one POSIX shell line, every word single-quoted where needed.
    #[must_use]
    pub fn to_shell(&self) -> String {
        self.argv
            .iter()
            .map(|w| shell_quote(w))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Quotes one word for a POSIX shell.
#[must_use]
pub fn shell_quote(word: &str) -> String {
    if !word.is_empty()
        && word.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-' | '=' | ':' | ',')
        })
    {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// What a step's output means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepKind {
    /// Changes the host; success is exit status 0.
    Change,
    /// Reads `exportfs -v`; its stdout must pass [`crate::exports::verify_live_exports`].
    VerifyExports,
}

/// A named, idempotent step: upload its files, then run its commands in order.
///
/// An uploader writes each file with its mode; its parent directory already exists (an earlier
/// step creates it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Stable name, e.g. `install-packages`.
    pub name: &'static str,
    /// What the step is for.
    pub description: &'static str,
    /// Files written before the commands run.
    pub files: Vec<HostFile>,
    /// Commands run in order; the first failure stops the step.
    pub commands: Vec<Command>,
    /// How to judge the result.
    pub kind: StepKind,
}

/// The server side of an [`NfsSetup`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerPlan {
    /// The NFS VM's name (`hosts/<name>/` in the plan tree).
    pub host: String,
    /// The files the VM receives.
    pub files: Vec<HostFile>,
    /// The export directories.
    pub directories: Vec<Directory>,
    /// The steps in order.
    pub steps: Vec<Step>,
    /// The exports the verification step expects.
    pub exports: ExportsFile,
}

impl NfsSetup {
    /// The files the NFS VM receives (today: the exports file), for `hosts/<vm>/<path>`.
    #[must_use]
    pub fn server_files(&self) -> Vec<HostFile> {
        vec![HostFile {
            path: EXPORTS_FILE.to_owned(),
            contents: self.exports_file().to_string(),
            mode: EXPORTS_FILE_MODE,
        }]
    }

    /// The export directories with owner and mode: the StorageClass exports', then the plain
    /// exports'.
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
            .map(|(path, o)| Directory {
                path: path.to_string(),
                uid: o.uid,
                gid: o.gid,
                mode: o.mode,
            })
            .collect()
    }

    /// The full server plan: install, directories, exports file, start, re-export, verify.
    #[must_use]
    pub fn server_plan(&self) -> ServerPlan {
        let files = self.server_files();
        let directories = self.server_directories();
        // Parents with `mkdir -p` (an existing parent keeps its owner and mode), then each export
        // directory with `install -d`, which also corrects owner and mode of an existing one.
        let mut parents: Vec<&str> = vec!["/etc/exports.d"];
        for d in &directories {
            if let Some((parent, _)) = d.path.rsplit_once('/')
                && !parent.is_empty()
                && !parents.contains(&parent)
            {
                parents.push(parent);
            }
        }
        let mut dir_commands = vec![Command::new(
            ["mkdir", "-p"].into_iter().chain(parents.iter().copied()),
        )];
        for d in &directories {
            dir_commands.push(Command::new([
                "install".to_owned(),
                "-d".to_owned(),
                "-o".to_owned(),
                d.uid.to_string(),
                "-g".to_owned(),
                d.gid.to_string(),
                "-m".to_owned(),
                format!("{:04o}", d.mode),
                d.path.clone(),
            ]));
        }
        let steps = vec![
            Step {
                name: "install-packages",
                description: "install the kernel NFS server",
                files: Vec::new(),
                commands: vec![Command::new([
                    "env",
                    "DEBIAN_FRONTEND=noninteractive",
                    "apt-get",
                    "install",
                    "-y",
                    "--no-install-recommends",
                    SERVER_PACKAGE,
                ])],
                kind: StepKind::Change,
            },
            Step {
                name: "create-export-directories",
                description: "create /etc/exports.d and the export directories with owner and mode",
                files: Vec::new(),
                commands: dir_commands,
                kind: StepKind::Change,
            },
            Step {
                name: "write-exports",
                description: "write hakube's exports file",
                files: files.clone(),
                commands: Vec::new(),
                kind: StepKind::Change,
            },
            Step {
                name: "start-server",
                description: "enable and start the NFS server",
                files: Vec::new(),
                commands: vec![Command::new([
                    "systemctl",
                    "enable",
                    "--now",
                    "nfs-server.service",
                ])],
                kind: StepKind::Change,
            },
            Step {
                name: "reexport",
                description: "re-read all exports files and sync the kernel's export table",
                files: Vec::new(),
                commands: vec![Command::new(["exportfs", "-ra"])],
                kind: StepKind::Change,
            },
            Step {
                name: "verify-exports",
                description: "check `exportfs -v` lists every export with the wanted options",
                files: Vec::new(),
                commands: vec![Command::new(["exportfs", "-v"])],
                kind: StepKind::VerifyExports,
            },
        ];
        ServerPlan {
            host: self.input().server.name.to_string(),
            files,
            directories,
            steps,
            exports: self.exports_file(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quoting() {
        assert_eq!(shell_quote("/srv/nfs"), "/srv/nfs");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
