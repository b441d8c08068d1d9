//! Parsers for the command output the bootstrap reads.
//!
//! The flow does not need to parse secrets (it generates them), but re-runs and recoveries read
//! `kubeadm token list`, `kubectl get nodes` and, when the certificate key is re-uploaded, the
//! key `kubeadm init phase upload-certs` prints. Join commands are parsed for operators who
//! bring output from elsewhere. The parsers key on commands, flags and column headers, not on
//! prose, so wording changes between kubeadm versions do not break them.

use core::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};
use crate::secret::{BootstrapToken, CaCertHash, CertificateKey};

/// One `kubeadm join ...` command found in output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinCommand {
    /// `host:port` of the API endpoint.
    pub endpoint: String,
    /// The bootstrap token (prints as `***`).
    pub token: BootstrapToken,
    /// CA pins.
    pub ca_cert_hashes: Vec<CaCertHash>,
    /// `--control-plane` was given.
    pub control_plane: bool,
    /// `--certificate-key`, for control-plane joins with uploaded certificates.
    pub certificate_key: Option<CertificateKey>,
}

/// Every `kubeadm join` command in `text` (init output repeats the block per token and prints a
/// control-plane and a worker variant; `token create --print-join-command` prints one line).
///
/// Continuation lines (`\` + newline + indentation, tabs or spaces) are joined first.
///
/// # Errors
/// [`Error::OutputParse`] when no join command is present or one is malformed (missing
/// `--token`, a malformed token, hash or key; the values are not echoed).
pub fn parse_join_commands(text: &str) -> Result<Vec<JoinCommand>> {
    const CMD: &str = "kubeadm join";
    let bad = |reason: String| Error::OutputParse {
        command: CMD,
        reason,
    };
    let mut joined = String::with_capacity(text.len());
    for line in text.lines() {
        let trimmed = line.trim_end();
        if let Some(head) = trimmed.strip_suffix('\\') {
            joined.push_str(head);
            joined.push(' ');
        } else {
            joined.push_str(trimmed);
            joined.push('\n');
        }
    }
    let mut out = Vec::new();
    for line in joined.lines() {
        let Some(pos) = line.find(CMD) else { continue };
        let words: Vec<&str> = line[pos + CMD.len()..].split_whitespace().collect();
        let mut endpoint = None;
        let mut token = None;
        let mut hashes = Vec::new();
        let mut control_plane = false;
        let mut key = None;
        let mut i = 0;
        while i < words.len() {
            let w = words[i];
            let (flag, inline) = match w.split_once('=') {
                Some((f, v)) if f.starts_with("--") => (f, Some(v)),
                _ => (w, None),
            };
            let mut value = || -> Result<&str> {
                if let Some(v) = inline {
                    return Ok(v);
                }
                i += 1;
                words
                    .get(i)
                    .copied()
                    .ok_or_else(|| bad(format!("{flag} has no value")))
            };
            match flag {
                "--token" => {
                    token = Some(
                        value()?
                            .parse::<BootstrapToken>()
                            .map_err(|e| bad(e.to_string()))?,
                    );
                }
                "--discovery-token-ca-cert-hash" => {
                    hashes.push(
                        value()?
                            .parse::<CaCertHash>()
                            .map_err(|e| bad(e.to_string()))?,
                    );
                }
                "--certificate-key" => {
                    key = Some(
                        value()?
                            .parse::<CertificateKey>()
                            .map_err(|e| bad(e.to_string()))?,
                    );
                }
                "--control-plane" => control_plane = true,
                // An unknown flag: skip its value if it has one.
                f if f.starts_with("--")
                    && inline.is_none()
                    && words.get(i + 1).is_some_and(|n| !n.starts_with("--")) =>
                {
                    i += 1;
                }
                f if f.starts_with("--") => {}
                positional if endpoint.is_none() => endpoint = Some(positional.to_owned()),
                _ => {}
            }
            i += 1;
        }
        let endpoint = endpoint.ok_or_else(|| bad("no API endpoint".into()))?;
        let token = token.ok_or_else(|| bad(format!("join to {endpoint} has no --token")))?;
        out.push(JoinCommand {
            endpoint,
            token,
            ca_cert_hashes: hashes,
            control_plane,
            certificate_key: key,
        });
    }
    if out.is_empty() {
        return Err(bad("no `kubeadm join` command in the output".into()));
    }
    Ok(out)
}

/// The certificate key printed by `kubeadm init --upload-certs` or
/// `kubeadm init phase upload-certs --upload-certs`: the last line made of exactly 64 hex
/// characters (klog warnings and the "Using certificate key:" heading around it are ignored).
///
/// # Errors
/// [`Error::OutputParse`] when no such line exists.
pub fn parse_upload_certs_key(text: &str) -> Result<CertificateKey> {
    text.lines()
        .rev()
        .map(str::trim)
        .find(|l| l.len() == 64 && l.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| Error::OutputParse {
            command: "kubeadm init phase upload-certs",
            reason: "no 64-hex-character certificate key line".into(),
        })?
        .parse()
}

/// One row of `kubectl get nodes`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeStatus {
    /// Node name.
    pub name: String,
    /// `Ready` is among the STATUS conditions (`Ready,SchedulingDisabled` counts).
    pub ready: bool,
    /// Raw STATUS column.
    pub status: String,
    /// Roles (`control-plane`), empty for `<none>`.
    pub roles: Vec<String>,
    /// Kubelet version, when the column is present.
    pub version: Option<String>,
}

/// Splits a tabwriter table by the start columns of the header words.
fn table<'a>(
    text: &'a str,
    command: &'static str,
    need: &[&str],
) -> Result<Vec<Vec<(&'a str, String)>>> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header = lines
        .by_ref()
        .find(|l| need.iter().all(|n| l.split_whitespace().any(|w| w == *n)))
        .ok_or_else(|| Error::OutputParse {
            command,
            reason: format!("no header line with {}", need.join(", ")),
        })?;
    // Column starts: a word that follows two or more spaces (or the line start). Header
    // names with one space inside ("EXTRA GROUPS") stay one column.
    let mut starts: Vec<(usize, &str)> = Vec::new();
    let bytes = header.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b' '
            && bytes[i] != b'\t'
            && (i == 0
                || (i >= 2
                    && bytes[i - 1].is_ascii_whitespace()
                    && bytes[i - 2].is_ascii_whitespace())
                || bytes[i - 1] == b'\t')
        {
            let end = header[i..]
                .find("  ")
                .or_else(|| header[i..].find('\t'))
                .map_or(header.len(), |e| i + e);
            starts.push((i, header[i..end].trim()));
            i = end;
        } else {
            i += 1;
        }
    }
    let mut rows = Vec::new();
    for line in lines {
        if line.starts_with('#') {
            continue;
        }
        let mut row = Vec::new();
        // Aligned tables are cut at the header's column starts; a row whose words match the
        // columns one to one (hand-made or re-flowed output) is split on whitespace.
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.len() == starts.len() {
            for ((_, name), w) in starts.iter().zip(words) {
                row.push((*name, w.to_owned()));
            }
            rows.push(row);
            continue;
        }
        for (k, (start, name)) in starts.iter().enumerate() {
            let end = starts
                .get(k + 1)
                .map_or(line.len(), |(s, _)| *s)
                .min(line.len());
            let cell = if *start < line.len() {
                line.get(*start..end).unwrap_or("").trim().to_owned()
            } else {
                String::new()
            };
            row.push((*name, cell));
        }
        rows.push(row);
    }
    Ok(rows)
}

fn cell<'r>(row: &'r [(&str, String)], name: &str) -> Option<&'r str> {
    row.iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.as_str())
}

/// Rows of `kubectl get nodes` (default or `-o wide` columns; found by header name).
///
/// # Errors
/// [`Error::OutputParse`] when there is no NAME/STATUS header.
pub fn parse_get_nodes(text: &str) -> Result<Vec<NodeStatus>> {
    let rows = table(text, "kubectl get nodes", &["NAME", "STATUS"])?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            let name = cell(&r, "NAME")?.to_owned();
            if name.is_empty() {
                return None;
            }
            let status = cell(&r, "STATUS").unwrap_or("").to_owned();
            let roles = match cell(&r, "ROLES") {
                None | Some("<none>" | "") => Vec::new(),
                Some(s) => s.split(',').map(str::to_owned).collect(),
            };
            Some(NodeStatus {
                name,
                ready: status.split(',').any(|s| s == "Ready"),
                status,
                roles,
                version: cell(&r, "VERSION")
                    .filter(|v| !v.is_empty())
                    .map(str::to_owned),
            })
        })
        .collect())
}

/// One row of `kubeadm token list`.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenInfo {
    /// The token (prints as `***`; its id is public).
    pub token: BootstrapToken,
    /// Expiry, `None` for tokens that never expire.
    pub expires: Option<SystemTime>,
    /// Usages.
    pub usages: Vec<String>,
    /// Extra groups.
    pub groups: Vec<String>,
}

impl fmt::Debug for TokenInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenInfo")
            .field("id", &self.token.id())
            .field("expires", &self.expires)
            .field("usages", &self.usages)
            .field("groups", &self.groups)
            .finish()
    }
}

impl TokenInfo {
    /// Whether the token is still valid for at least `margin` after `now`.
    #[must_use]
    pub fn valid_for(&self, now: SystemTime, margin: Duration) -> bool {
        self.expires.is_none_or(|e| e > now + margin)
    }
}

/// Rows of `kubeadm token list`.
///
/// # Errors
/// [`Error::OutputParse`] without a TOKEN/EXPIRES header, or for a malformed token or date
/// (values are not echoed).
pub fn parse_token_list(text: &str) -> Result<Vec<TokenInfo>> {
    const CMD: &str = "kubeadm token list";
    let rows = table(text, CMD, &["TOKEN", "EXPIRES"])?;
    rows.into_iter()
        .filter(|r| cell(r, "TOKEN").is_some_and(|t| !t.is_empty()))
        .map(|r| {
            let token = cell(&r, "TOKEN")
                .unwrap_or("")
                .parse::<BootstrapToken>()
                .map_err(|e| Error::OutputParse {
                    command: CMD,
                    reason: e.to_string(),
                })?;
            let expires = match cell(&r, "EXPIRES").unwrap_or("") {
                "" | "<never>" | "<forever>" => None,
                s => Some(parse_rfc3339_utc(s).ok_or_else(|| Error::OutputParse {
                    command: CMD,
                    reason: format!(
                        "token {}: EXPIRES {s:?} is not an RFC 3339 time",
                        token.id()
                    ),
                })?),
            };
            let list = |name| {
                cell(&r, name)
                    .filter(|s| !s.is_empty() && *s != "<none>")
                    .map(|s| s.split(',').map(str::to_owned).collect())
                    .unwrap_or_default()
            };
            Ok(TokenInfo {
                usages: list("USAGES"),
                groups: list("EXTRA GROUPS"),
                token,
                expires,
            })
        })
        .collect()
}

/// `YYYY-MM-DDTHH:MM:SS(.fff)?(Z|±HH:MM)`.
fn parse_rfc3339_utc(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: core::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        rest = &frac[n..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        o if o.len() == 6 && (o.starts_with('+') || o.starts_with('-')) => {
            let sign = if o.starts_with('-') { -1 } else { 1 };
            sign * (o[1..3].parse::<i64>().ok()? * 3600 + o[4..6].parse::<i64>().ok()? * 60)
        }
        _ => return None,
    };
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + mi * 60 + se - offset;
    u64::try_from(secs)
        .ok()
        .map(|s| UNIX_EPOCH + Duration::from_secs(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_values() {
        let t = |s| {
            parse_rfc3339_utc(s)
                .unwrap()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_secs()
        };
        assert_eq!(t("1970-01-01T00:00:00Z"), 0);
        assert_eq!(t("2025-01-01T00:00:00Z"), 1_735_689_600);
        assert_eq!(t("2025-01-01T01:00:00+01:00"), 1_735_689_600);
        assert_eq!(t("2024-02-29T12:00:00.123Z"), 1_709_208_000);
        assert!(parse_rfc3339_utc("2025-13-01T00:00:00Z").is_none());
        assert!(parse_rfc3339_utc("yesterday").is_none());
    }
}
