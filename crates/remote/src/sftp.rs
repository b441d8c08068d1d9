//! File transfer over the SFTP subsystem of the same SSH connection.
//!
//! A shell command per file costs the host a session process, a login shell and a few tools
//! (`cat`, `mv`, `sha256sum`...). One SFTP server process per connection does every file
//! operation of the connection's life instead, so pushing and reading files costs the host
//! almost nothing beyond the bytes. Writes stay atomic: a temporary file in the same
//! directory, created exclusively, then `posix-rename@openssh.com` over the target (plain SFTP
//! rename refuses to replace). Servers without that extension or without an SFTP subsystem get
//! the shell path, as do transfers that need `sudo` or an owner by name (SFTP v3 knows only
//! numeric ids).
//!
//! The protocol is `russh-sftp` (the SFTP client built for russh, used over a russh channel):
//! its raw session lets requests be pipelined (all writes of a file and its close in one round
//! trip) and extensions be sent as they are.

use std::time::Duration;

use russh::client;
use russh_sftp::client::RawSftpSession;
use russh_sftp::client::error::Error as SftpError;
use russh_sftp::protocol::{FileAttributes, OpenFlags, Packet, StatusCode};

use crate::PushOutcome;

/// The OpenSSH extension for an atomic rename that replaces the target.
const POSIX_RENAME: &str = "posix-rename@openssh.com";
/// Bytes per read or write request (OpenSSH's sftp-server accepts messages up to 256 KiB).
const CHUNK: usize = 64 * 1024;
/// Files up to this size are compared by reading them back; larger ones by their hash.
pub(crate) const COMPARE_MAX: u64 = 256 * 1024;

/// Why an SFTP operation failed: a status from the server (the file's fault) or the
/// transport (the session is then dropped and the next operation opens a new one).
#[derive(Debug)]
pub(crate) enum Fail {
    /// The server answered with an error status.
    Status(String),
    /// The SFTP channel broke or timed out.
    Transport(String),
}

fn fail(e: SftpError) -> Fail {
    match e {
        SftpError::Status(s) => {
            let text = if s.error_message.is_empty() {
                s.status_code.to_string()
            } else {
                s.error_message
            };
            Fail::Status(text)
        }
        other => Fail::Transport(other.to_string()),
    }
}

fn is_status(e: &SftpError, code: StatusCode) -> bool {
    matches!(e, SftpError::Status(s) if s.status_code == code)
}

/// SSH string encoding (u32 length, bytes) for extension payloads.
fn ssh_string(out: &mut Vec<u8>, s: &str) {
    let len = u32::try_from(s.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn mode_attrs(mode: u32) -> FileAttributes {
    FileAttributes {
        permissions: Some(mode),
        ..FileAttributes::empty()
    }
}

/// What is at a path, for a push: its permission bits and (small files only) its content.
pub(crate) struct Existing {
    pub(crate) mode: u32,
    pub(crate) size: u64,
    /// The content when the file is a regular file of at most [`COMPARE_MAX`] bytes.
    pub(crate) content: Option<Vec<u8>>,
}

/// An SFTP session on one SSH connection.
pub(crate) struct Sftp {
    raw: RawSftpSession,
}

impl Sftp {
    /// Starts the `sftp` subsystem on `channel`. `Ok(None)`: the server has no SFTP subsystem
    /// or no atomic rename (use the shell).
    pub(crate) async fn start(
        mut channel: russh::Channel<client::Msg>,
        timeout: Duration,
    ) -> Result<Option<Self>, String> {
        channel
            .request_subsystem(true, "sftp")
            .await
            .map_err(|e| format!("requesting the sftp subsystem: {e}"))?;
        loop {
            match channel.wait().await {
                Some(russh::ChannelMsg::Success) => break,
                Some(
                    russh::ChannelMsg::Failure | russh::ChannelMsg::Close | russh::ChannelMsg::Eof,
                )
                | None => return Ok(None),
                Some(_) => {}
            }
        }
        let raw = RawSftpSession::new(channel.into_stream());
        raw.set_timeout(timeout.as_secs().max(1));
        let version = raw.init().await.map_err(|e| format!("sftp init: {e}"))?;
        if version.extensions.get(POSIX_RENAME).map(String::as_str) != Some("1") {
            return Ok(None);
        }
        Ok(Some(Self { raw }))
    }

    /// Reads a whole file: one open, all chunks requested at once, close.
    pub(crate) async fn read(&self, path: &str) -> Result<Vec<u8>, Fail> {
        let handle = self
            .raw
            .open(path, OpenFlags::READ, FileAttributes::empty())
            .await
            .map_err(fail)?
            .handle;
        let result = self.read_handle(&handle, None).await;
        let closed = self.raw.close(handle).await;
        let data = result?;
        closed.map_err(fail)?;
        Ok(data)
    }

    /// Reads from an open handle to the end. With a known size, the chunks up to it are
    /// requested together; then reads continue until the server says end of file.
    async fn read_handle(&self, handle: &str, size: Option<u64>) -> Result<Vec<u8>, Fail> {
        let size = match size {
            Some(s) => s,
            None => self
                .raw
                .fstat(handle)
                .await
                .map_err(fail)?
                .attrs
                .size
                .unwrap_or(0),
        };
        let chunk = CHUNK as u64;
        let offsets: Vec<u64> = (0..size.div_ceil(chunk)).map(|i| i * chunk).collect();
        let reads = offsets.iter().map(|&off| {
            #[allow(clippy::cast_possible_truncation)] // at most CHUNK
            let len = (size - off).min(chunk) as u32;
            self.raw.read(handle, off, len)
        });
        let mut data = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        for (&off, r) in offsets.iter().zip(futures::future::join_all(reads).await) {
            match r {
                // Only a chunk that starts where the data ends: after a short answer (a server
                // may send less than asked) the rest is read in order below.
                Ok(d) if data.len() as u64 == off => data.extend_from_slice(&d.data),
                Ok(_) => break,
                Err(e) if is_status(&e, StatusCode::Eof) => break,
                Err(e) => return Err(fail(e)),
            }
        }
        // The file may have grown, or a read may have come back short: go on to the end.
        loop {
            #[allow(clippy::cast_possible_truncation)]
            match self.raw.read(handle, data.len() as u64, CHUNK as u32).await {
                Ok(d) if d.data.is_empty() => break,
                Ok(d) => data.extend_from_slice(&d.data),
                Err(e) if is_status(&e, StatusCode::Eof) => break,
                Err(e) => return Err(fail(e)),
            }
        }
        Ok(data)
    }

    /// What is at `path` (following symlinks, like `stat -L`): `None` when nothing is.
    pub(crate) async fn existing(&self, path: &str) -> Result<Option<Existing>, Fail> {
        let attrs = match self.raw.stat(path).await {
            Ok(a) => a.attrs,
            Err(e) if is_status(&e, StatusCode::NoSuchFile) => return Ok(None),
            Err(e) => return Err(fail(e)),
        };
        let mode = attrs.permissions.unwrap_or(0) & 0o7777;
        let size = attrs.size.unwrap_or(0);
        let content = if attrs.is_regular() && size <= COMPARE_MAX {
            match self
                .raw
                .open(path, OpenFlags::READ, FileAttributes::empty())
                .await
            {
                Ok(h) => {
                    let data = self.read_handle(&h.handle, Some(size)).await;
                    let closed = self.raw.close(h.handle).await;
                    let data = data?;
                    closed.map_err(fail)?;
                    Some(data)
                }
                Err(e) => return Err(fail(e)),
            }
        } else {
            None
        };
        Ok(Some(Existing {
            mode,
            size,
            content,
        }))
    }

    /// Sets the permission bits of `path`.
    pub(crate) async fn chmod(&self, path: &str, mode: u32) -> Result<(), Fail> {
        self.raw
            .setstat(path, mode_attrs(mode))
            .await
            .map(drop)
            .map_err(fail)
    }

    /// Writes `content` to `path` atomically with permission bits `mode`: a temporary file
    /// next to it (created exclusively, parents created when missing), then a rename over
    /// the target. On failure the temporary file is removed.
    pub(crate) async fn write_atomic(
        &self,
        path: &str,
        content: &[u8],
        mode: u32,
        tag: &str,
    ) -> Result<(), Fail> {
        let temp = format!("{path}.hakube.{tag}");
        let flags = OpenFlags::WRITE | OpenFlags::CREATE | OpenFlags::EXCLUDE;
        // Owner-only while being written; the final mode is set before the rename.
        let handle = match self.raw.open(&temp, flags, mode_attrs(0o600)).await {
            Ok(h) => h.handle,
            Err(e) if is_status(&e, StatusCode::NoSuchFile) => {
                self.mkdir_parents(path).await?;
                self.raw
                    .open(&temp, flags, mode_attrs(0o600))
                    .await
                    .map_err(fail)?
                    .handle
            }
            Err(e) => return Err(fail(e)),
        };
        let written = self.write_handle(&handle, content, mode).await;
        let closed = self.raw.close(handle).await.map(drop).map_err(fail);
        let renamed = match (written, closed) {
            (Ok(()), Ok(())) => self.rename(&temp, path).await,
            (Err(e), _) | (Ok(()), Err(e)) => Err(e),
        };
        if renamed.is_err() {
            let _ = self.raw.remove(&temp).await;
        }
        renamed
    }

    /// All writes and the mode change of one file, sent together (the server handles them in
    /// order).
    async fn write_handle(&self, handle: &str, content: &[u8], mode: u32) -> Result<(), Fail> {
        let writes = content
            .chunks(CHUNK)
            .enumerate()
            .map(|(i, c)| self.raw.write(handle, (i * CHUNK) as u64, c.to_vec()));
        let chmod = self.raw.fsetstat(handle, mode_attrs(mode));
        let (writes, chmod) = tokio::join!(futures::future::join_all(writes), chmod);
        for w in writes {
            w.map_err(fail)?;
        }
        chmod.map(drop).map_err(fail)
    }

    async fn rename(&self, from: &str, to: &str) -> Result<(), Fail> {
        let mut data = Vec::with_capacity(8 + from.len() + to.len());
        ssh_string(&mut data, from);
        ssh_string(&mut data, to);
        match self.raw.extended(POSIX_RENAME, data).await {
            Ok(Packet::Status(s)) if s.status_code == StatusCode::Ok => Ok(()),
            Ok(Packet::Status(s)) => Err(fail(SftpError::Status(s))),
            Ok(_) => Err(Fail::Transport("unexpected reply to posix-rename".into())),
            Err(e) => Err(fail(e)),
        }
    }

    /// `mkdir -p` of `path`'s parent directory: every missing level, top down; existing ones
    /// are fine, and the parent must be a directory in the end.
    async fn mkdir_parents(&self, path: &str) -> Result<(), Fail> {
        let Some((parent, _)) = path.rsplit_once('/') else {
            return Ok(());
        };
        let mut prefix = String::new();
        for part in parent.split('/') {
            if !prefix.ends_with('/') {
                prefix.push('/');
            }
            if part.is_empty() {
                continue;
            }
            prefix.push_str(part);
            // Fails harmlessly for a level that exists; the final check says what is wrong.
            let _ = self
                .raw
                .mkdir(prefix.as_str(), FileAttributes::empty())
                .await;
        }
        if parent.is_empty() {
            return Ok(());
        }
        match self.raw.stat(parent).await {
            Ok(a) if a.attrs.is_dir() => Ok(()),
            Ok(_) => Err(Fail::Status(format!("{parent} is not a directory"))),
            Err(e) => Err(fail(e)),
        }
    }
}

/// What a push changes, from what is there and what is wanted (content compared when the
/// existing file was small enough to read back; otherwise `hash_equal` decides).
pub(crate) fn outcome(existing: Option<&Existing>, want: &[u8], mode: u32) -> Option<PushOutcome> {
    let Some(e) = existing else {
        return Some(PushOutcome::Created);
    };
    let same = match &e.content {
        Some(c) => c.as_slice() == want,
        None if e.size != want.len() as u64 => false,
        // Large or special file: the caller compares hashes.
        None => return None,
    };
    Some(if !same {
        PushOutcome::ContentChanged
    } else if e.mode != mode {
        PushOutcome::MetadataChanged
    } else {
        PushOutcome::Unchanged
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn existing(mode: u32, content: Option<&[u8]>, size: u64) -> Existing {
        Existing {
            mode,
            size,
            content: content.map(<[u8]>::to_vec),
        }
    }

    #[test]
    fn outcomes() {
        assert_eq!(outcome(None, b"x", 0o644), Some(PushOutcome::Created));
        let same = existing(0o644, Some(b"x"), 1);
        assert_eq!(
            outcome(Some(&same), b"x", 0o644),
            Some(PushOutcome::Unchanged)
        );
        assert_eq!(
            outcome(Some(&same), b"x", 0o600),
            Some(PushOutcome::MetadataChanged)
        );
        assert_eq!(
            outcome(Some(&same), b"y", 0o644),
            Some(PushOutcome::ContentChanged)
        );
        // Not read back: a different size is enough; the same size needs the hash.
        let big = existing(0o644, None, 10);
        assert_eq!(
            outcome(Some(&big), b"short", 0o644),
            Some(PushOutcome::ContentChanged)
        );
        assert_eq!(outcome(Some(&big), b"0123456789", 0o644), None);
    }

    #[test]
    fn extension_strings() {
        let mut v = Vec::new();
        ssh_string(&mut v, "/a");
        assert_eq!(v, [0, 0, 0, 2, b'/', b'a']);
    }
}
