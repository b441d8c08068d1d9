//! Guest agent commands, storage uploads and VMID allocation.

#[cfg(feature = "client")]
use std::future::Future;

use serde::Deserialize;
#[cfg(feature = "client")]
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::Error;
use crate::transport::Body;
#[cfg(feature = "client")]
use crate::transport::Method;
use crate::wire::de;
#[cfg(feature = "client")]
use crate::wire::{self, Params, segment};
#[cfg(feature = "client")]
use crate::{Client, Upid};

/// `GET .../agent/exec-status`: how a command started with [`Client::agent_exec`] is doing.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExecStatus {
    /// True once the process ended.
    #[serde(default, deserialize_with = "de::opt_bool")]
    pub exited: Option<bool>,
    /// Exit code, once ended.
    #[serde(default, deserialize_with = "de::opt_i64")]
    pub exitcode: Option<i64>,
    /// Standard output (as the agent returned it).
    #[serde(rename = "out-data", default)]
    pub out_data: Option<String>,
    /// Standard error.
    #[serde(rename = "err-data", default)]
    pub err_data: Option<String>,
    /// Signal that ended the process.
    #[serde(default, deserialize_with = "de::opt_i64")]
    pub signal: Option<i64>,
}

/// What a file uploaded to a storage is (`content` of `POST .../upload`). PVE 9 accepts
/// these three; cloud-init snippets cannot be uploaded through the API (the schema's enum
/// has no `snippets`): put them on a shared directory storage another way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum UploadContent {
    /// An ISO image.
    Iso,
    /// A container template.
    Vztmpl,
    /// A disk image to import (`.qcow2`, `.raw`, `.vmdk`, `.ova`).
    Import,
}

impl UploadContent {
    /// The `content` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Iso => "iso",
            Self::Vztmpl => "vztmpl",
            Self::Import => "import",
        }
    }
}

/// A `multipart/form-data` body: text fields, then one file (PVE's parser wants the file
/// last). The boundary is derived from the content and checked not to occur in it.
///
/// ```
/// let b = hakube_proxmox_api::multipart(&[("content", "iso")], "filename", "a.iso", b"ISO");
/// assert!(b.content_type.starts_with("multipart/form-data; boundary="));
/// ```
pub fn multipart(fields: &[(&str, &str)], file_field: &str, filename: &str, data: &[u8]) -> Body {
    let mut salt = 0u32;
    let boundary = loop {
        let mut h = Sha256::new();
        h.update(salt.to_be_bytes());
        h.update(data.len().to_be_bytes());
        h.update(&data[..data.len().min(4096)]);
        let hex: String = h.finalize()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let b = format!("hakube-{hex}");
        let needle = b.as_bytes();
        if !data.windows(needle.len()).any(|w| w == needle) {
            break b;
        }
        salt += 1;
    };
    let mut out = Vec::with_capacity(data.len() + 512);
    for (k, v) in fields {
        out.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n")
                .as_bytes(),
        );
    }
    out.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{file_field}\"; filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    out.extend_from_slice(data);
    out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    Body {
        content_type: format!("multipart/form-data; boundary={boundary}"),
        bytes: out,
    }
}

/// True if `e` says the VMID is taken (PVE: `unable to create VM 101: config file already
/// exists`, `VM 101 already exists on node 'x'`, or nextid's 400 `VM 101 already exists`).
pub fn is_vmid_taken(e: &Error) -> bool {
    let taken = |t: &str| {
        t.contains("already exists")
            && (t.contains("VM ") || t.contains("CT ") || t.contains("config file"))
    };
    match e {
        Error::Api {
            message, errors, ..
        } => {
            taken(message)
                || errors.get("vmid").is_some_and(|m| taken(m))
                || errors.get("newid").is_some_and(|m| taken(m))
        }
        Error::Task { exitstatus, .. } => taken(exitstatus),
        _ => false,
    }
}

/// Checks an upload's file name: a plain name, nothing PVE or the multipart header would
/// read differently.
#[cfg_attr(not(feature = "client"), allow(dead_code, reason = "used by uploads"))]
pub(crate) fn check_name(filename: &str) -> Result<(), Error> {
    let bad = filename.is_empty()
        || filename.len() > 255
        || filename.contains(['/', '\\', '"', '\r', '\n', '\0'])
        || filename.starts_with('.');
    if bad {
        return Err(Error::Invalid {
            field: "filename".into(),
            reason: format!(
                "{filename:?}: a plain file name is needed (no path, quotes or control characters)"
            ),
        });
    }
    Ok(())
}

#[cfg(feature = "client")]
impl Client {
    /// `POST .../agent/exec`: starts `command` (program and arguments, sent as PVE's array
    /// parameter: one `command=` per element) in the guest; returns the agent's pid for
    /// [`Client::agent_exec_status`]. `input` is passed on standard input.
    pub async fn agent_exec(
        &self,
        node: &str,
        vmid: u32,
        command: &[&str],
        input: Option<&str>,
    ) -> Result<i64, Error> {
        if command.is_empty() {
            return Err(Error::Invalid {
                field: "command".into(),
                reason: "empty".into(),
            });
        }
        #[derive(Deserialize)]
        struct Pid {
            #[serde(deserialize_with = "de::i64")]
            pid: i64,
        }
        let p = Params::new()
            .set_all("command", command.iter().copied())
            .opt("input-data", input);
        let Pid { pid } = self
            .post(
                &format!("/nodes/{}/qemu/{vmid}/agent/exec", segment(node)),
                &p,
            )
            .await?;
        Ok(pid)
    }

    /// `GET .../agent/exec-status?pid=`.
    pub async fn agent_exec_status(
        &self,
        node: &str,
        vmid: u32,
        pid: i64,
    ) -> Result<ExecStatus, Error> {
        self.get(
            &format!("/nodes/{}/qemu/{vmid}/agent/exec-status", segment(node)),
            &Params::new().set("pid", pid),
        )
        .await
    }

    /// `POST /nodes/{node}/storage/{storage}/upload`: uploads `data` as `filename` in a
    /// `multipart/form-data` body, with its SHA-256 for the server to check. Returns the
    /// `imgcopy` task. The body is built in memory: meant for images up to some hundred MB.
    pub async fn storage_upload(
        &self,
        node: &str,
        storage: &str,
        content: UploadContent,
        filename: &str,
        data: &[u8],
    ) -> Result<Upid, Error> {
        check_name(filename)?;
        let sum: String = Sha256::digest(data)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let body = multipart(
            &[
                ("content", content.as_str()),
                ("checksum-algorithm", "sha256"),
                ("checksum", &sum),
            ],
            "filename",
            filename,
            data,
        );
        let path = format!(
            "/nodes/{}/storage/{}/upload",
            segment(node),
            segment(storage)
        );
        let env = self.send(Method::Post, &path, None, Some(body)).await?;
        wire::decode(env.data).map_err(|source| Error::Decode {
            method: "POST",
            path,
            source,
        })
    }

    /// Creates a guest under a free VMID in `first..=last`, safely while other tools
    /// allocate VMIDs on the same cluster at the same time.
    ///
    /// `/cluster/nextid` reserves nothing: two callers get the same answer. What is atomic
    /// is the creation itself: PVE writes the guest's config file in the cluster file
    /// system (`/etc/pve/nodes/<node>/qemu-server/<vmid>.conf`, under the cluster-wide
    /// VMID list), and a second create or clone with a VMID in use anywhere in the cluster
    /// fails with `... already exists`. So `create(vmid)` (a clone or create call that
    /// uses the id) is tried from the lowest free candidate up, and on "already exists"
    /// the next id is tried; whoever lost a race moves on, nobody gets a duplicate.
    /// Any other error ends the allocation. Returns the VMID and what `create` returned.
    pub async fn create_with_free_vmid<T, F, Fut>(
        &self,
        first: u32,
        last: u32,
        mut create: F,
    ) -> Result<(u32, T), Error>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        if first < 100 || first > last {
            return Err(Error::Invalid {
                field: "vmid range".into(),
                reason: format!(
                    "{first}..={last}: VMIDs start at 100 and the range must not be empty"
                ),
            });
        }
        // A hint only: the lowest free id the server knows of (never below `first`).
        let mut candidate = match self.next_id(None).await {
            Ok(n) if n > first && n <= last => n,
            _ => first,
        };
        while candidate <= last {
            match create(candidate).await {
                Ok(t) => return Ok((candidate, t)),
                Err(e) if is_vmid_taken(&e) => {
                    tracing::debug!(vmid = candidate, "VMID taken meanwhile; trying the next");
                    candidate += 1;
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::NoFreeVmid { first, last })
    }

    /// `POST` with a JSON body: nested values as they are, see [`Client::request_json`].
    pub async fn post_json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &Value,
    ) -> Result<T, Error> {
        let data = self.request_json(Method::Post, path, body).await?;
        wire::decode(data).map_err(|source| Error::Decode {
            method: "POST",
            path: path.to_owned(),
            source,
        })
    }

    /// `PUT` with a JSON body.
    pub async fn put_json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &Value,
    ) -> Result<T, Error> {
        let data = self.request_json(Method::Put, path, body).await?;
        wire::decode(data).map_err(|source| Error::Decode {
            method: "PUT",
            path: path.to_owned(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_shape() {
        let b = multipart(&[("content", "iso")], "filename", "a.iso", b"DATA\r\n--x");
        let text = String::from_utf8(b.bytes.clone()).unwrap_or_default();
        let boundary = b
            .content_type
            .split("boundary=")
            .nth(1)
            .unwrap_or_default()
            .to_owned();
        assert!(
            b.content_type
                .starts_with("multipart/form-data; boundary=hakube-")
        );
        assert!(text.starts_with(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"content\"\r\n\r\niso\r\n"
        )));
        assert!(text.contains("name=\"filename\"; filename=\"a.iso\"\r\nContent-Type: application/octet-stream\r\n\r\nDATA\r\n--x\r\n"));
        assert!(text.ends_with(&format!("--{boundary}--\r\n")));
        assert_eq!(text.matches(&boundary).count(), 3);
    }

    #[test]
    fn names_and_taken_ids() {
        assert!(check_name("ubuntu.iso").is_ok());
        for bad in ["", "../x.iso", "a\"b", "a\nb", ".hidden"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        let api = |m: &str| Error::Api {
            method: "POST",
            path: "/x".into(),
            status: 500,
            reason: m.into(),
            message: m.into(),
            errors: Default::default(),
        };
        assert!(is_vmid_taken(&api(
            "unable to create VM 101: config file already exists"
        )));
        assert!(is_vmid_taken(&api(
            "unable to create VM 101 - VM 101 already exists on node 'pve2'"
        )));
        assert!(!is_vmid_taken(&api("pool 'k8s' already exists")));
    }
}
