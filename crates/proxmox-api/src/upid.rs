//! Proxmox task identifiers (UPIDs).

use core::fmt;
use core::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Error;

/// A parsed PVE task id: `UPID:node:PID:PSTART:STARTTIME:TYPE:ID:USER:`.
///
/// The original text is kept, so [`Display`](fmt::Display) gives back exactly what the
/// server sent (that is what the task endpoints expect).
///
/// ```
/// use hakube_proxmox_api::Upid;
/// let upid: Upid = "UPID:pve2:00001A2B:0001E240:5FBE4A3C:qmclone:9000:root@pam:".parse()?;
/// assert_eq!(upid.node(), "pve2");
/// assert_eq!(upid.task_type(), "qmclone");
/// assert_eq!(upid.id(), "9000");
/// assert_eq!(upid.user(), "root@pam");
/// assert_eq!(upid.to_string(), "UPID:pve2:00001A2B:0001E240:5FBE4A3C:qmclone:9000:root@pam:");
/// # Ok::<(), hakube_proxmox_api::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Upid {
    raw: String,
    node: String,
    pid: u32,
    pstart: u64,
    starttime: u64,
    task_type: String,
    id: String,
    user: String,
}

impl Upid {
    /// The node the task runs on: poll its status there.
    pub fn node(&self) -> &str {
        &self.node
    }
    /// The worker's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }
    /// The worker's process start time (clock ticks since boot).
    pub fn pstart(&self) -> u64 {
        self.pstart
    }
    /// The task's start time, seconds since the epoch.
    pub fn starttime(&self) -> u64 {
        self.starttime
    }
    /// The task type (`qmclone`, `qmstart`, ...).
    pub fn task_type(&self) -> &str {
        &self.task_type
    }
    /// The task's object id (often the VMID; may be empty).
    pub fn id(&self) -> &str {
        &self.id
    }
    /// The user or token that started the task.
    pub fn user(&self) -> &str {
        &self.user
    }
    /// The UPID exactly as the server sent it.
    pub fn as_str(&self) -> &str {
        &self.raw
    }
}

impl FromStr for Upid {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = |reason: &str| Error::InvalidUpid {
            value: s.to_owned(),
            reason: reason.to_owned(),
        };
        let body = s
            .strip_prefix("UPID:")
            .ok_or_else(|| bad("does not start with UPID:"))?;
        let body = body
            .strip_suffix(':')
            .ok_or_else(|| bad("does not end with ':'"))?;
        let parts: Vec<&str> = body.split(':').collect();
        if parts.len() < 7 {
            return Err(bad("too few fields"));
        }
        let hex = |v: &str, name: &str, max_len: usize| {
            if v.is_empty() || v.len() > max_len {
                return Err(bad(&format!("{name} has a bad length")));
            }
            u64::from_str_radix(v, 16).map_err(|_| bad(&format!("{name} is not hex")))
        };
        let node = parts[0];
        if node.is_empty() {
            return Err(bad("empty node"));
        }
        let pid = u32::try_from(hex(parts[1], "pid", 8)?).map_err(|_| bad("pid too large"))?;
        let pstart = hex(parts[2], "pstart", 9)?;
        let starttime = hex(parts[3], "starttime", 8)?;
        let last = parts.len() - 1;
        // The id may itself contain ':'; the user never does.
        let id = parts[5..last].join(":");
        Ok(Self {
            raw: s.to_owned(),
            node: node.to_owned(),
            pid,
            pstart,
            starttime,
            task_type: parts[4].to_owned(),
            id,
            user: parts[last].to_owned(),
        })
    }
}

impl fmt::Display for Upid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl fmt::Debug for Upid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Upid({})", self.raw)
    }
}

impl Serialize for Upid {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.raw)
    }
}

impl<'de> Deserialize<'de> for Upid {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_recorded_shapes() {
        // PVE 6.2 clone (fog recording shape) and PVE 9 with a token user.
        let u: Upid = "UPID:pve:000012A4:0005D7C1:5FBE5A32:qmclone:100:root@pam:"
            .parse()
            .unwrap();
        assert_eq!(u.node(), "pve");
        assert_eq!(u.pid(), 0x12A4);
        assert_eq!(u.starttime(), 0x5FBE_5A32);
        let t: Upid = "UPID:pve1:000003E8:000006D68:6740A1B2:qmstart:101:hakube@pve!ci:"
            .parse()
            .unwrap();
        assert_eq!(t.pstart(), 0x6D68);
        assert_eq!(t.user(), "hakube@pve!ci");
        let empty_id: Upid = "UPID:n1:00000001:00000002:00000003:vzdump::root@pam:"
            .parse()
            .unwrap();
        assert_eq!(empty_id.id(), "");
        assert_eq!(
            empty_id.to_string(),
            "UPID:n1:00000001:00000002:00000003:vzdump::root@pam:"
        );
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "UPID:",
            "UPID:pve:xyz:1:1:t:1:u:",
            "UPID:pve:1:1:1:t:1:u",
            "upid:pve:1:1:1:t:1:u:",
            "UPID::1:1:1:t:1:u:",
        ] {
            assert!(bad.parse::<Upid>().is_err(), "{bad}");
        }
    }

    #[test]
    fn serde_round_trip() {
        let s = "\"UPID:pve:000012A4:0005D7C1:5FBE5A32:qmclone:100:root@pam:\"";
        let u: Upid = serde_json::from_str(s).unwrap();
        assert_eq!(serde_json::to_string(&u).unwrap(), s);
    }
}
