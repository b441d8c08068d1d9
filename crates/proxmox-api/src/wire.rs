//! The PVE wire format, handled in one place: the `{"data": ...}` envelope, error
//! bodies, loosely typed values (ints as strings, 0/1 booleans, scientific
//! notation) and form encoding with `1`/`0` booleans.

use std::collections::BTreeMap;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::Error;

/// Characters left as they are in a form or query value: RFC 3986 unreserved.
const FORM: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Characters left as they are in one path segment.
const SEGMENT: &AsciiSet = FORM;

/// Percent-encodes one path segment (a node name, a UPID, a pool id).
pub fn segment(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

/// A value that can be sent as a PVE parameter.
pub trait ParamValue {
    /// The text PVE expects (booleans as `1`/`0`).
    fn to_param(&self) -> String;
}

impl ParamValue for bool {
    fn to_param(&self) -> String {
        if *self { "1" } else { "0" }.to_owned()
    }
}
impl ParamValue for str {
    fn to_param(&self) -> String {
        self.to_owned()
    }
}
impl ParamValue for String {
    fn to_param(&self) -> String {
        self.clone()
    }
}
impl<T: ParamValue + ?Sized> ParamValue for &T {
    fn to_param(&self) -> String {
        (**self).to_param()
    }
}
macro_rules! num_param {
    ($($t:ty),*) => {$(
        impl ParamValue for $t {
            fn to_param(&self) -> String { self.to_string() }
        }
    )*};
}
num_param!(u8, u16, u32, u64, i32, i64, usize, f64);

/// Request parameters, in order, sent form-encoded (or in the query for GET and DELETE).
///
/// ```
/// use hakube_proxmox_api::Params;
/// let p = Params::new().set("full", true).set("name", "k8s m1").opt("pool", None::<&str>);
/// assert_eq!(p.encode(), "full=1&name=k8s%20m1");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// No parameters.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `key=value`, replacing an earlier value of `key`.
    #[must_use]
    pub fn set(mut self, key: &str, value: impl ParamValue) -> Self {
        self.insert(key, value);
        self
    }

    /// Adds `key=value` when `value` is `Some`.
    #[must_use]
    pub fn opt<V: ParamValue>(self, key: &str, value: Option<V>) -> Self {
        match value {
            Some(v) => self.set(key, v),
            None => self,
        }
    }

    /// Adds one more `key=value`, keeping earlier values of `key`: how PVE takes array
    /// parameters (`agent/exec`'s `command`, `delete` lists), as repeated keys.
    ///
    /// ```
    /// use hakube_proxmox_api::Params;
    /// let p = Params::new().push("command", "ls").push("command", "-l");
    /// assert_eq!(p.encode(), "command=ls&command=-l");
    /// ```
    #[must_use]
    pub fn push(mut self, key: &str, value: impl ParamValue) -> Self {
        self.0.push((key.to_owned(), value.to_param()));
        self
    }

    /// Sets the array parameter `key` to `values` (repeated keys), replacing earlier values.
    #[must_use]
    pub fn set_all<V: ParamValue>(
        mut self,
        key: &str,
        values: impl IntoIterator<Item = V>,
    ) -> Self {
        self.0.retain(|(k, _)| k != key);
        for v in values {
            self.0.push((key.to_owned(), v.to_param()));
        }
        self
    }

    /// All values of `key`, in order.
    pub fn get_all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Adds `key=value` in place, replacing every earlier value of `key`.
    pub fn insert(&mut self, key: &str, value: impl ParamValue) {
        let value = value.to_param();
        if let Some(i) = self.0.iter().position(|(k, _)| k == key) {
            self.0[i].1 = value;
            // An array parameter set before: one value now.
            let mut n = 0;
            self.0.retain(|(k, _)| {
                let keep = k != key || n == 0;
                if k == key {
                    n += 1;
                }
                keep
            });
        } else {
            self.0.push((key.to_owned(), value));
        }
    }

    /// The value of `key`, if set.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// True when no parameter is set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The parameters in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// `application/x-www-form-urlencoded` text (also used as a query string).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        for (k, v) in &self.0 {
            if !out.is_empty() {
                out.push('&');
            }
            out.extend(utf8_percent_encode(k, FORM));
            out.push('=');
            out.extend(utf8_percent_encode(v, FORM));
        }
        out
    }
}

impl Params {
    /// Parameters from a flat serde struct or map: booleans become `1`/`0`,
    /// `None` fields are left out, nested values are an error.
    ///
    /// ```
    /// #[derive(serde::Serialize)]
    /// struct Start { timeout: Option<u32>, skiplock: bool }
    /// let p = hakube_proxmox_api::Params::from_serialize(&Start { timeout: None, skiplock: true })?;
    /// assert_eq!(p.encode(), "skiplock=1");
    /// # Ok::<(), hakube_proxmox_api::Error>(())
    /// ```
    pub fn from_serialize<T: Serialize>(value: &T) -> Result<Self, Error> {
        let v = serde_json::to_value(value).map_err(|e| Error::Invalid {
            field: "params".into(),
            reason: e.to_string(),
        })?;
        let Value::Object(map) = v else {
            return Err(Error::Invalid {
                field: "params".into(),
                reason: "expected a struct or map".into(),
            });
        };
        let mut p = Self::new();
        for (k, v) in map {
            match v {
                Value::Null => {}
                Value::Bool(b) => p.insert(&k, b),
                Value::Number(n) => p.insert(&k, n.to_string()),
                Value::String(s) => p.insert(&k, s),
                Value::Array(_) | Value::Object(_) => {
                    return Err(Error::Invalid {
                        field: k,
                        reason: "nested values cannot be form-encoded".into(),
                    });
                }
            }
        }
        Ok(p)
    }
}

/// What an error response carried: PVE puts the first line of the message in the
/// HTTP reason phrase, and (since about PVE 8.4) the whole text in `message`;
/// parameter errors come as a per-field `errors` map.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ErrorBody {
    /// The full message (from the body's `message`, else the reason phrase).
    pub message: String,
    /// Per-parameter errors of a `400 Parameter verification failed.`.
    pub errors: BTreeMap<String, String>,
}

/// Parses an error response: status reason phrase plus an optional JSON body.
pub fn parse_error(reason: &str, body: &[u8]) -> ErrorBody {
    let mut out = ErrorBody {
        message: reason.trim().to_owned(),
        errors: BTreeMap::new(),
    };
    let Ok(Value::Object(obj)) = serde_json::from_slice::<Value>(body) else {
        return out;
    };
    // The ExtJS formatter puts the message in the body; the JSON one since 8.4 too.
    if let Some(Value::String(m)) = obj.get("message") {
        let m = m.trim_end();
        if !m.is_empty() {
            out.message = m.to_owned();
        }
    }
    if let Some(Value::Object(errs)) = obj.get("errors") {
        for (k, v) in errs {
            let text = match v {
                Value::String(s) => s.trim_end().to_owned(),
                other => other.to_string(),
            };
            out.errors.insert(k.clone(), text);
        }
    }
    out
}

/// A success envelope: `data` and the result attributes PVE puts beside it
/// (`total` of a paged list such as a task log).
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct Envelope {
    /// The `data` member (`Value::Null` when missing or `null`).
    pub data: Value,
    /// `total`: how many items exist in all, when the method pages (`/tasks/{upid}/log`,
    /// `/nodes/{node}/tasks`).
    pub total: Option<u64>,
    /// Any other member beside `data` (`changes`, `success`, ...).
    pub attribs: serde_json::Map<String, Value>,
}

/// Parses a success body; an empty body is `data: null`.
pub fn parse_envelope(body: &[u8]) -> Result<Envelope, serde_json::Error> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Envelope::default());
    }
    let v: Value = serde_json::from_slice(body)?;
    let Value::Object(mut obj) = v else {
        // A bare value where an object is expected: not PVE's envelope.
        return Err(serde::de::Error::custom(
            "the answer is not a {\"data\": ...} object",
        ));
    };
    let data = obj.remove("data").unwrap_or(Value::Null);
    let total = obj.remove("total").as_ref().and_then(|t| match t {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    });
    Ok(Envelope {
        data,
        total,
        attribs: obj,
    })
}

/// Takes `data` out of a success envelope; a missing or `null` `data` is `Value::Null`.
pub fn unwrap_envelope(body: &[u8]) -> Result<Value, serde_json::Error> {
    parse_envelope(body).map(|e| e.data)
}

/// Decodes `data` into `T`. A `null` (PVE's answer for "nothing", also where the schema
/// promises a list) decodes into `()`, `Option`, an empty sequence or map, or a struct
/// whose fields all have defaults.
pub fn decode<T: DeserializeOwned>(data: Value) -> Result<T, serde_json::Error> {
    if !data.is_null() {
        return serde_json::from_value(data);
    }
    match serde_json::from_value(Value::Null) {
        Ok(t) => Ok(t),
        Err(e) => serde_json::from_value(Value::Array(Vec::new()))
            .or_else(|_| serde_json::from_value(Value::Object(serde_json::Map::new())))
            .map_err(|_| e),
    }
}

/// `deserialize_with` helpers for PVE's loosely typed values.
///
/// ```
/// #[derive(serde::Deserialize)]
/// struct Vm {
///     #[serde(deserialize_with = "hakube_proxmox_api::de::u64")]
///     vmid: u64,
///     #[serde(default, deserialize_with = "hakube_proxmox_api::de::opt_bool")]
///     template: Option<bool>,
/// }
/// let vm: Vm = serde_json::from_str(r#"{"vmid":"100","template":""}"#).unwrap();
/// assert_eq!((vm.vmid, vm.template), (100, None));
/// ```
pub mod de {
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer};
    use serde_json::Value;

    fn num(v: &Value) -> Option<f64> {
        match v {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse::<f64>().ok(),
            Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
            _ => None,
        }
    }

    fn int(v: &Value) -> Option<i64> {
        match v {
            Value::Number(n) => n
                .as_i64()
                .or_else(|| n.as_u64().map(|u| u as i64))
                .or_else(|| {
                    n.as_f64()
                        .filter(|f| f.fract() == 0.0 && f.abs() < 9.2e18)
                        .map(|f| f as i64)
                }),
            Value::String(s) => {
                let s = s.trim();
                s.parse::<i64>().ok().or_else(|| {
                    s.parse::<f64>()
                        .ok()
                        .filter(|f| f.fract() == 0.0 && f.abs() < 9.2e18)
                        .map(|f| f as i64)
                })
            }
            Value::Bool(b) => Some(i64::from(*b)),
            _ => None,
        }
    }

    /// A boolean from `0`/`1`, `"0"`/`"1"`, `true`/`false` or `"true"`/`"false"`/`"on"`/`"off"`.
    pub fn bool_value(v: &Value) -> Option<bool> {
        match v {
            Value::Bool(b) => Some(*b),
            Value::Number(n) => n.as_f64().map(|f| f != 0.0),
            Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => Some(true),
                "0" | "false" | "no" | "off" => Some(false),
                _ => None,
            },
            _ => None,
        }
    }

    /// An integer sent as a number, a string, or in scientific notation.
    pub fn i64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        let v = Value::deserialize(d)?;
        int(&v).ok_or_else(|| D::Error::custom(format!("expected an integer, got {v}")))
    }

    /// A non-negative integer sent as a number, a string, or in scientific notation.
    pub fn u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let v = Value::deserialize(d)?;
        int(&v)
            .and_then(|i| u64::try_from(i).ok())
            .ok_or_else(|| D::Error::custom(format!("expected an unsigned integer, got {v}")))
    }

    /// A VMID (u32) sent as a number or a string.
    pub fn u32<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
        let v = Value::deserialize(d)?;
        int(&v)
            .and_then(|i| u32::try_from(i).ok())
            .ok_or_else(|| D::Error::custom(format!("expected a 32-bit unsigned integer, got {v}")))
    }

    /// An optional integer: `null`, missing or `""` is `None`.
    pub fn opt_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        let v = Option::<Value>::deserialize(d)?;
        match v {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(v) => int(&v)
                .and_then(|i| u64::try_from(i).ok())
                .map(Some)
                .ok_or_else(|| D::Error::custom(format!("expected an unsigned integer, got {v}"))),
        }
    }

    /// An optional signed integer: `null`, missing or `""` is `None`.
    pub fn opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        let v = Option::<Value>::deserialize(d)?;
        match v {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(v) => int(&v)
                .map(Some)
                .ok_or_else(|| D::Error::custom(format!("expected an integer, got {v}"))),
        }
    }

    /// An optional float: numbers, numeric strings, scientific notation.
    pub fn opt_f64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        let v = Option::<Value>::deserialize(d)?;
        match v {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(v) => num(&v)
                .map(Some)
                .ok_or_else(|| D::Error::custom(format!("expected a number, got {v}"))),
        }
    }

    /// A boolean in any of PVE's spellings.
    pub fn bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
        let v = Value::deserialize(d)?;
        bool_value(&v).ok_or_else(|| D::Error::custom(format!("expected a boolean, got {v}")))
    }

    /// An optional boolean: `null`, missing or `""` is `None`.
    pub fn opt_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
        let v = Option::<Value>::deserialize(d)?;
        match v {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(v) => bool_value(&v)
                .map(Some)
                .ok_or_else(|| D::Error::custom(format!("expected a boolean, got {v}"))),
        }
    }

    /// A string that the server may send as a number (`"memory": "2048"` or `2048`).
    pub fn opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        let v = Option::<Value>::deserialize(d)?;
        Ok(match v {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s),
            Some(other) => Some(other.to_string()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, Debug, PartialEq)]
    struct Loose {
        #[serde(deserialize_with = "de::u32")]
        vmid: u32,
        #[serde(default, deserialize_with = "de::opt_u64")]
        maxdisk: Option<u64>,
        #[serde(default, deserialize_with = "de::opt_bool")]
        template: Option<bool>,
        #[serde(default, deserialize_with = "de::opt_f64")]
        cpu: Option<f64>,
        #[serde(default, deserialize_with = "de::opt_string")]
        memory: Option<String>,
    }

    #[test]
    fn ints_as_strings_and_scientific_notation() {
        // PVE 6.2 qemu list: vmid as string, template "" (fog recording shape).
        let v: Loose = serde_json::from_str(
            r#"{"vmid":"100","maxdisk":"8589934592","template":"","cpu":"1.2e-05","memory":"2048"}"#,
        )
        .unwrap();
        assert_eq!(v.vmid, 100);
        assert_eq!(v.maxdisk, Some(8_589_934_592));
        assert_eq!(v.template, None);
        assert_eq!(v.cpu, Some(1.2e-05));
        assert_eq!(v.memory.as_deref(), Some("2048"));
        // Newer: numbers, with huge values in scientific notation.
        let v: Loose = serde_json::from_str(
            r#"{"vmid":101,"maxdisk":3.4359738368e10,"template":1,"memory":4096}"#,
        )
        .unwrap();
        assert_eq!(v.maxdisk, Some(34_359_738_368));
        assert_eq!(v.template, Some(true));
        assert_eq!(v.memory.as_deref(), Some("4096"));
        assert!(serde_json::from_str::<Loose>(r#"{"vmid":"abc"}"#).is_err());
        assert!(serde_json::from_str::<Loose>(r#"{"vmid":-1}"#).is_err());
    }

    #[test]
    fn bools_every_spelling() {
        for (text, want) in [
            ("1", true),
            ("0", false),
            ("true", true),
            ("false", false),
            ("\"1\"", true),
            ("\"0\"", false),
            ("\"on\"", true),
        ] {
            let v: Value = serde_json::from_str(text).unwrap();
            assert_eq!(de::bool_value(&v), Some(want), "{text}");
        }
        assert_eq!(de::bool_value(&Value::String("maybe".into())), None);
    }

    #[test]
    fn envelope_null_is_success() {
        // pools POST / template POST / PVE 6.2 resize PUT answer {"data":null}.
        assert_eq!(unwrap_envelope(br#"{"data":null}"#).unwrap(), Value::Null);
        let () = decode(unwrap_envelope(br#"{"data":null}"#).unwrap()).unwrap();
        assert_eq!(unwrap_envelope(b"").unwrap(), Value::Null);
        // nextid as a string; a task list with "total".
        assert_eq!(
            unwrap_envelope(br#"{"data":"100"}"#).unwrap(),
            Value::String("100".into())
        );
        let v = unwrap_envelope(br#"{"data":[{"n":1,"t":"TASK OK"}],"total":1}"#).unwrap();
        assert_eq!(v[0]["t"], "TASK OK");
        assert!(unwrap_envelope(b"<html>").is_err());
    }

    #[test]
    fn null_decodes_into_empty_lists_and_maps() {
        // PVE answers `{"data":null}` where the schema says array, e.g. an empty
        // `GET /cluster/ha/rules` on some versions, or `/pending` of a VM being created.
        let v: Vec<u32> = decode(Value::Null).unwrap();
        assert!(v.is_empty());
        let m: BTreeMap<String, String> = decode(Value::Null).unwrap();
        assert!(m.is_empty());
        let o: Option<Vec<u32>> = decode(Value::Null).unwrap();
        assert_eq!(o, None);
        #[derive(serde::Deserialize, Debug, Default, PartialEq)]
        struct AllDefault {
            #[serde(default)]
            a: Option<String>,
        }
        assert_eq!(
            decode::<AllDefault>(Value::Null).unwrap(),
            AllDefault::default()
        );
        // A struct with a required field still refuses null, and says what is missing.
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code, reason = "only decoded")]
        struct Needs {
            vmid: u32,
        }
        assert!(decode::<Needs>(Value::Null).is_err());
        assert!(decode::<u32>(Value::Null).is_err());
    }

    #[test]
    fn envelope_keeps_total() {
        // GET /nodes/{node}/tasks/{upid}/log on PVE 9: the JSON formatter puts the result
        // attribute `total` beside `data` (PVE::API2::Tasks read_task_log, set_result_attrib).
        let e = parse_envelope(br#"{"data":[{"n":5001,"t":"TASK OK"}],"total":5001}"#).unwrap();
        assert_eq!(e.total, Some(5001));
        assert_eq!(e.data[0]["n"], 5001);
        let e = parse_envelope(br#"{"data":[],"total":"12"}"#).unwrap();
        assert_eq!(e.total, Some(12));
        let e = parse_envelope(br#"{"data":null,"changes":"x"}"#).unwrap();
        assert_eq!((e.total, e.attribs["changes"].as_str()), (None, Some("x")));
        assert!(parse_envelope(b"[1]").is_err());
    }

    #[test]
    fn array_parameters_repeat_the_key() {
        // PVE reads an `array` parameter from repeated keys (agent/exec `command`).
        let p = Params::new()
            .set("node", "pve1")
            .set_all("command", ["/bin/sh", "-c", "echo a b"]);
        assert_eq!(
            p.encode(),
            "node=pve1&command=%2Fbin%2Fsh&command=-c&command=echo%20a%20b"
        );
        assert_eq!(p.get_all("command").count(), 3);
        // `set` after `push` leaves one value.
        let p = p.set("command", "true");
        assert_eq!(p.encode(), "node=pve1&command=true");
    }

    #[test]
    fn error_bodies() {
        // 400 parameter errors (fog network POST shape).
        let e = parse_error(
            "Parameter verification failed.",
            br#"{"data":null,"errors":{"bridge_ports":"unable to parse value\n","vmid":"invalid format - value does not look like a valid VM ID\n"}}"#,
        );
        assert_eq!(e.message, "Parameter verification failed.");
        assert_eq!(e.errors["bridge_ports"], "unable to parse value");
        assert_eq!(e.errors.len(), 2);
        // PVE >= 8.4: full message in the body, first line in the reason.
        let e = parse_error(
            "Configuration file 'nodes/pve/qemu-server/100.conf' does not exist",
            br#"{"data":null,"message":"Configuration file 'nodes/pve/qemu-server/100.conf' does not exist\n"}"#,
        );
        assert_eq!(
            e.message,
            "Configuration file 'nodes/pve/qemu-server/100.conf' does not exist"
        );
        // PVE 6.2 401 with an empty body and no content type.
        let e = parse_error("invalid token value!", b"");
        assert_eq!(e.message, "invalid token value!");
        assert!(e.errors.is_empty());
        // A proxy's HTML page.
        let e = parse_error("Bad Gateway", b"<html><body>502</body></html>");
        assert_eq!(e.message, "Bad Gateway");
    }

    #[test]
    fn form_encoding() {
        let p = Params::new()
            .set("onboot", true)
            .set("agent", false)
            .set("memory", 4096u32)
            .set("net0", "virtio,bridge=vmbr0,tag=20")
            .set("sshkeys", "ssh-ed25519%20AAAA%20a%40b")
            .set("searchdomain", "a b+c");
        assert_eq!(
            p.encode(),
            "onboot=1&agent=0&memory=4096&net0=virtio%2Cbridge%3Dvmbr0%2Ctag%3D20\
             &sshkeys=ssh-ed25519%2520AAAA%2520a%2540b&searchdomain=a%20b%2Bc"
        );
        let p = p.set("onboot", false);
        assert_eq!(p.get("onboot"), Some("0"));
        assert_eq!(
            segment("UPID:pve:1:hakube@pve!ci:"),
            "UPID%3Apve%3A1%3Ahakube%40pve%21ci%3A"
        );
    }
}
