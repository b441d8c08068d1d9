//! Property strings (`key=value,...`, e.g. `virtio=BC:24:11:00:00:01,bridge=vmbr0`): reading
//! and writing their items. The generated format types ([`crate::generated`]) are built on
//! this; it is public for formats they do not cover.
//!
//! **The rules, and where they come from.** PVE's API server reads property strings with
//! pve-common's `PVE::JSONSchema::parse_property_string` (`src/PVE/JSONSchema.pm`,
//! libpve-common-perl 9.2.1, commit `f665029e`): it splits on *every* comma, skips parts that
//! are empty or only whitespace, takes a part without `=` as the format's default key, and
//! knows no quoting. Its `print_property_string` refuses a value that contains a comma
//! ("illegal value with commas"). Proxmox's Rust schema crate (proxmox-rs
//! `proxmox-schema/src/property_string.rs`, proxmox-schema 5.2.0, commit `f3305009`) reads the
//! same strings and adds quoting: a value (or a keyless part) that starts with `"` runs to
//! the closing `"`, with the escapes `\"`, `\\` and `\n`; anything but a `,` or the end
//! after the closing quote is an error.
//!
//! [`PropertyItems`] reads as both do: a plain value is the text up to the next comma
//! (PVE's reading), a value that starts with `"` is a quoted one (proxmox-schema's).
//! [`PropertyWriter`] writes a value plain, byte for byte as PVE reads it, unless the plain
//! form would not read back: a value that contains a comma, starts with `"`, or (without its
//! key) is empty, only whitespace, or contains `=`. Those are quoted as proxmox-schema
//! quotes them. PVE's Perl API cannot take such a value at all (it has no quoting), so the
//! quoted form is for lossless round trips and Proxmox's Rust tools; [`pve_reads_plain`]
//! tells whether PVE itself reads a value as written.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

/// A property string (or one of its values) that does not read as its format says.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("property string{}: {reason}", key_label(.key))]
#[non_exhaustive]
pub struct PropertyStringError {
    /// The key whose value is wrong (empty when the string is malformed before any key).
    pub key: String,
    /// What is wrong.
    pub reason: String,
}

fn key_label(key: &str) -> String {
    if key.is_empty() {
        String::new()
    } else {
        format!(" key {key}")
    }
}

impl PropertyStringError {
    fn new(key: &str, reason: impl Into<String>) -> Self {
        Self {
            key: key.to_owned(),
            reason: reason.into(),
        }
    }
}

/// A value of a property string as PVE writes it (booleans as `1`/`0`).
pub trait PropValue {
    /// The text.
    fn prop_text(&self) -> Cow<'_, str>;
    /// Reads it back (`None`: not a value of this type).
    fn prop_read(s: &str) -> Option<Self>
    where
        Self: Sized;
}

impl PropValue for String {
    fn prop_text(&self) -> Cow<'_, str> {
        Cow::Borrowed(self)
    }
    fn prop_read(s: &str) -> Option<Self> {
        Some(s.to_owned())
    }
}

impl PropValue for i64 {
    fn prop_text(&self) -> Cow<'_, str> {
        Cow::Owned(self.to_string())
    }
    fn prop_read(s: &str) -> Option<Self> {
        s.parse().ok()
    }
}

impl PropValue for f64 {
    fn prop_text(&self) -> Cow<'_, str> {
        Cow::Owned(self.to_string())
    }
    fn prop_read(s: &str) -> Option<Self> {
        s.parse().ok().filter(|f: &Self| f.is_finite())
    }
}

impl PropValue for bool {
    fn prop_text(&self) -> Cow<'_, str> {
        Cow::Borrowed(if *self { "1" } else { "0" })
    }
    /// PVE's `parse_boolean`: `1`, `on`, `yes`, `true` and `0`, `off`, `no`, `false`, any case.
    fn prop_read(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "1" | "on" | "yes" | "true" => Some(true),
            "0" | "off" | "no" | "false" => Some(false),
            _ => None,
        }
    }
}

/// Reads `value` into `slot`, naming `key` when it is not a value of the field's type or
/// when the key was already given (PVE: "duplicate key in comma-separated list property").
pub fn prop_set<T: PropValue>(
    slot: &mut Option<T>,
    key: &str,
    value: &str,
) -> Result<(), PropertyStringError> {
    if slot.is_some() {
        return Err(PropertyStringError::new(key, "given twice"));
    }
    let v = T::prop_read(value).ok_or_else(|| {
        PropertyStringError::new(
            key,
            format!("{value:?} is not a {}", core::any::type_name::<T>()),
        )
    })?;
    *slot = Some(v);
    Ok(())
}

/// The error for a part without a key in a format that has no default key (PVE: "value
/// without key, but schema does not define a default key").
pub(crate) fn no_default_key(value: &str) -> PropertyStringError {
    PropertyStringError::new(
        "",
        format!("{value:?} has no key and the format has no default key"),
    )
}

/// An item of a property string: its key (`None`: the default key's value) and value.
pub type PropertyItem<'a> = (Option<&'a str>, Cow<'a, str>);

/// The items of a property string in order: `(Some(key), value)` for `key=value`,
/// `(None, value)` for a part without a key (the format's default key). See the module docs
/// for the rules. After an error the iterator ends.
#[derive(Clone, Debug)]
pub struct PropertyItems<'a> {
    rest: &'a str,
    failed: bool,
}

impl<'a> PropertyItems<'a> {
    /// The items of `s`.
    #[must_use]
    pub fn new(s: &'a str) -> Self {
        Self {
            rest: s,
            failed: false,
        }
    }

    /// A quoted value at the start of `self.rest` (which starts with `"`), and the `,` or
    /// end after it.
    fn quoted(&mut self, key: &str) -> Result<String, PropertyStringError> {
        let mut out = String::new();
        let mut chars = self.rest.char_indices().skip(1);
        loop {
            let Some((i, c)) = chars.next() else {
                return Err(PropertyStringError::new(key, "quoted value not closed"));
            };
            match c {
                '"' => {
                    let after = &self.rest[i + 1..];
                    self.rest = match after.strip_prefix(',') {
                        Some(r) => r,
                        None if after.is_empty() => after,
                        None => {
                            return Err(PropertyStringError::new(
                                key,
                                "text after the closing quote (a comma or the end expected)",
                            ));
                        }
                    };
                    return Ok(out);
                }
                '\\' => match chars.next() {
                    Some((_, '"')) => out.push('"'),
                    Some((_, '\\')) => out.push('\\'),
                    Some((_, 'n')) => out.push('\n'),
                    Some((_, other)) => {
                        return Err(PropertyStringError::new(
                            key,
                            format!("unsupported escape \\{other} in a quoted value"),
                        ));
                    }
                    None => return Err(PropertyStringError::new(key, "quoted value not closed")),
                },
                c => out.push(c),
            }
        }
    }

    /// A plain value: the text up to the next comma (consumed) or the end.
    fn plain(&mut self) -> &'a str {
        let rest = self.rest;
        match rest.find(',') {
            Some(i) => {
                self.rest = &rest[i + 1..];
                &rest[..i]
            }
            None => {
                self.rest = "";
                rest
            }
        }
    }

    fn item(&mut self) -> Option<Result<PropertyItem<'a>, PropertyStringError>> {
        loop {
            if self.rest.is_empty() {
                return None;
            }
            if self.rest.starts_with('"') {
                return Some(self.quoted("").map(|v| (None, Cow::Owned(v))));
            }
            let rest = self.rest;
            match rest.find([',', '=']) {
                Some(i) if rest.as_bytes().get(i) == Some(&b'=') => {
                    let key = &rest[..i];
                    if key.is_empty() {
                        return Some(Err(PropertyStringError::new(
                            "",
                            format!("a value without a key before '=' in {:?}", self.plain()),
                        )));
                    }
                    self.rest = &rest[i + 1..];
                    if self.rest.starts_with('"') {
                        return Some(self.quoted(key).map(|v| (Some(key), Cow::Owned(v))));
                    }
                    return Some(Ok((Some(key), Cow::Borrowed(self.plain()))));
                }
                _ => {
                    let part = self.plain();
                    // PVE skips empty and whitespace-only parts.
                    if part.trim().is_empty() {
                        continue;
                    }
                    return Some(Ok((None, Cow::Borrowed(part))));
                }
            }
        }
    }
}

impl<'a> Iterator for PropertyItems<'a> {
    type Item = Result<PropertyItem<'a>, PropertyStringError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let item = self.item();
        if matches!(item, Some(Err(_))) {
            self.failed = true;
        }
        item
    }
}

impl std::iter::FusedIterator for PropertyItems<'_> {}

/// Whether PVE's API (which has no quoting) reads `value` as written, with its key
/// (`keyed`) or as the default key's bare value: no comma, no leading `"`, and without a
/// key neither empty, only whitespace, nor containing `=`.
#[must_use]
pub fn pve_reads_plain(value: &str, keyed: bool) -> bool {
    !(value.contains(',')
        || value.starts_with('"')
        || (!keyed && (value.trim().is_empty() || value.contains('='))))
}

/// Writes the items of a property string, `,`-separated, each value plain where PVE reads
/// it back as written and quoted where it would not (see the module docs).
#[derive(Debug)]
pub struct PropertyWriter<W> {
    out: W,
    first: bool,
}

impl<W: fmt::Write> PropertyWriter<W> {
    /// Writes into `out`.
    pub fn new(out: W) -> Self {
        Self { out, first: true }
    }

    fn sep(&mut self) -> fmt::Result {
        if !std::mem::replace(&mut self.first, false) {
            self.out.write_char(',')?;
        }
        Ok(())
    }

    fn value(&mut self, value: &str, keyed: bool) -> fmt::Result {
        if pve_reads_plain(value, keyed) {
            return self.out.write_str(value);
        }
        self.out.write_char('"')?;
        for c in value.chars() {
            match c {
                '"' => self.out.write_str("\\\"")?,
                '\\' => self.out.write_str("\\\\")?,
                '\n' => self.out.write_str("\\n")?,
                c => self.out.write_char(c)?,
            }
        }
        self.out.write_char('"')
    }

    /// The default key's value, written without its key.
    pub fn bare(&mut self, value: &str) -> fmt::Result {
        self.sep()?;
        self.value(value, false)
    }

    /// `key=value`. The key is written as given: it must not contain `,` or `=` nor start
    /// with `"` (the keys of a format and those [`PropertyItems`] reads never do).
    pub fn pair(&mut self, key: &str, value: &str) -> fmt::Result {
        self.sep()?;
        self.out.write_str(key)?;
        self.out.write_char('=')?;
        self.value(value, true)
    }

    /// The writer.
    pub fn into_inner(self) -> W {
        self.out
    }
}

/// The `{prefix}N` members of an answer, by N, as text.
pub(crate) fn indexed<'a>(
    other: &'a BTreeMap<String, serde_json::Value>,
    prefix: &'a str,
) -> impl Iterator<Item = (u32, &'a str)> + 'a {
    other.iter().filter_map(move |(k, v)| {
        let n = k.strip_prefix(prefix)?;
        if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some((n.parse().ok()?, v.as_str()?))
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test")]

    use super::*;

    fn items(s: &str) -> Vec<(Option<String>, String)> {
        PropertyItems::new(s)
            .map(|i| {
                let (k, v) = i.unwrap();
                (k.map(str::to_owned), v.into_owned())
            })
            .collect()
    }

    fn item(k: Option<&str>, v: &str) -> (Option<String>, String) {
        (k.map(str::to_owned), v.to_owned())
    }

    #[test]
    fn reads_as_pve_and_proxmox_schema_do() {
        // PVE: split on commas, empty and blank parts skipped, a part without `=` is the
        // default key's.
        assert_eq!(
            items("virtio=AA:BB,bridge=vmbr0,, ,firewall=1,"),
            vec![
                item(Some("virtio"), "AA:BB"),
                item(Some("bridge"), "vmbr0"),
                item(Some("firewall"), "1"),
            ]
        );
        assert_eq!(
            items("local-lvm:vm-1-disk-0,size=8G"),
            vec![
                item(None, "local-lvm:vm-1-disk-0"),
                item(Some("size"), "8G")
            ]
        );
        // A `=` in a value after the first: the value's (PVE's `^([^=]+)=(.+)$`).
        assert_eq!(items("k=a=b"), vec![item(Some("k"), "a=b")]);
        // proxmox-schema's own test string.
        assert_eq!(
            items(r#""value w/o key",fst=v1,sec="with = in it",third=3,"and \" and '\\'""#),
            vec![
                item(None, "value w/o key"),
                item(Some("fst"), "v1"),
                item(Some("sec"), "with = in it"),
                item(Some("third"), "3"),
                item(None, r#"and " and '\'"#),
            ]
        );
        assert_eq!(items(r#"k="a,b\nc""#), vec![item(Some("k"), "a,b\nc")]);
        // A quote inside a plain value is a character.
        assert_eq!(items(r#"k=a"b"#), vec![item(Some("k"), r#"a"b"#)]);
    }

    #[test]
    fn malformed_strings_are_errors_that_end_the_items() {
        for (s, key) in [
            (r#"k="open"#, "k"),
            (r#"k="open \\ value"#, "k"),
            (r#"k="x"y,z=1"#, "k"),
            (r#"k="\t""#, "k"),
            ("=v", ""),
            (r#"""#, ""),
        ] {
            let mut it = PropertyItems::new(s);
            let e = it.next().unwrap().unwrap_err();
            assert_eq!(e.key, key, "{s}");
            assert!(it.next().is_none(), "{s}");
        }
        let e = PropertyItems::new(r#"k="x"y"#).next().unwrap().unwrap_err();
        assert_eq!(
            e.to_string(),
            "property string key k: text after the closing quote (a comma or the end expected)"
        );
    }

    fn written(f: impl FnOnce(&mut PropertyWriter<&mut String>) -> fmt::Result) -> String {
        let mut s = String::new();
        f(&mut PropertyWriter::new(&mut s)).unwrap();
        s
    }

    #[test]
    fn writes_plain_unless_the_plain_form_would_not_read_back() {
        assert_eq!(
            written(|w| {
                w.bare("virtio")?;
                w.pair("bridge", "vmbr0")?;
                w.pair("k", "a=b")?;
                w.pair("q", r#"a"b\c"#)
            }),
            r#"virtio,bridge=vmbr0,k=a=b,q=a"b\c"#
        );
        assert_eq!(
            written(|w| {
                w.bare("a=b")?;
                w.bare("")?;
                w.bare(" ")?;
                w.pair("k", "x,y")?;
                w.pair("l", "\"lead\nnl\\")?;
                w.pair("e", "")
            }),
            r#""a=b",""," ",k="x,y",l="\"lead\nnl\\",e="#
        );
        assert!(pve_reads_plain("a=b", true));
        assert!(!pve_reads_plain("a=b", false));
        assert!(!pve_reads_plain("a,b", true));
    }
}
