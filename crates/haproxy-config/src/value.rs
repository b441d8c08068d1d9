//! Validated values: the newtypes that keep user input from breaking the config grammar.
//!
//! HAProxy and keepalived both read line-oriented files where whitespace separates words,
//! `#` (HAProxy) or `!`/`#` (keepalived) starts a comment and braces or quotes change the
//! structure. A name such as `"cp1\n    server evil 6.6.6.6:6443"` would add a server to a
//! backend if it were pasted into the file. Every free-form value in this crate's models is
//! one of the types below, and their constructors reject such input up front.

use core::fmt;
use core::num::NonZeroU16;
use core::time::Duration;

use crate::error::{Error, Result};

/// Characters that end a word or start a comment, quote or block in either grammar.
const FORBIDDEN: &[char] = &['#', '!', '"', '\'', '\\', '{', '}', ';', '`', '$'];

fn check_word(value: &str, max_len: usize) -> Result<()> {
    if value.is_empty() {
        return Err(Error::invalid("value", value, "must not be empty"));
    }
    if value.len() > max_len {
        return Err(Error::invalid(
            "value",
            value,
            format!("longer than {max_len} bytes"),
        ));
    }
    if let Some(c) = value.chars().find(|c| !c.is_ascii_graphic()) {
        let what = if c.is_whitespace() {
            "whitespace or a line break"
        } else {
            "a control or non-ASCII character"
        };
        return Err(Error::invalid(
            "value",
            value,
            format!("contains {what} ({c:?}), which would break the config grammar"),
        ));
    }
    if let Some(c) = value.chars().find(|c| FORBIDDEN.contains(c)) {
        return Err(Error::invalid(
            "value",
            value,
            format!("contains {c:?}, which starts a comment, quote or block in the config grammar"),
        ));
    }
    Ok(())
}

macro_rules! string_newtype {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// The value as a string slice.
            #[must_use]
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<&str> for $name {
            type Error = Error;
            fn try_from(value: &str) -> Result<Self> {
                Self::new(value)
            }
        }

        impl TryFrom<String> for $name {
            type Error = Error;
            fn try_from(value: String) -> Result<Self> {
                Self::new(value)
            }
        }

        impl core::str::FromStr for $name {
            type Err = Error;
            fn from_str(value: &str) -> Result<Self> {
                Self::new(value)
            }
        }
    };
}

string_newtype!(
    /// The name of a proxy, server, VRRP instance, VRRP script, user or router: ASCII letters,
    /// digits, `-`, `_`, `.` and `:`, starting with a letter, digit or `_`, at most 64 bytes.
    ///
    /// ```
    /// use hakube_haproxy_config::Name;
    /// assert!(Name::new("cp-1").is_ok());
    /// assert!(Name::new("cp1\n    server evil 6.6.6.6:6443").is_err());
    /// ```
    Name
);

impl Name {
    /// Validates `value` as a name.
    ///
    /// # Errors
    /// [`Error::InvalidValue`] when it is empty, too long or holds any character outside
    /// `[A-Za-z0-9_.:-]`.
    pub fn new(value: impl Into<String>) -> Result<Self> {
        let value = value.into();
        check_word(&value, 64)?;
        if let Some(c) = value
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':')))
        {
            return Err(Error::invalid(
                "value",
                value,
                format!(
                    "contains {c:?}; names allow only ASCII letters, digits, '-', '_', '.', ':'"
                ),
            ));
        }
        if !value.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
            return Err(Error::invalid(
                "value",
                value,
                "must start with an ASCII letter, digit or '_'",
            ));
        }
        Ok(Self(value))
    }
}

string_newtype!(
    /// One word of a directive: printable ASCII without whitespace, quotes, backslashes,
    /// braces, `#`, `!`, `;`, `` ` `` or `$`, at most 1024 bytes.
    ///
    /// Used for arguments of free-form directives ([`Directive`]) and header values.
    ///
    /// ```
    /// use hakube_haproxy_config::Token;
    /// assert!(Token::new("%[src]").is_ok());
    /// assert!(Token::new("a b").is_err());
    /// assert!(Token::new("x#comment").is_err());
    /// ```
    Token
);

impl Token {
    /// Validates `value` as one word.
    ///
    /// # Errors
    /// [`Error::InvalidValue`] when it is empty, too long or holds a forbidden character.
    pub fn new(value: impl Into<String>) -> Result<Self> {
        let value = value.into();
        check_word(&value, 1024)?;
        Ok(Self(value))
    }
}

string_newtype!(
    /// An absolute file system path without whitespace or grammar characters
    /// (`/etc/haproxy/certs/ingress.pem`).
    ///
    /// ```
    /// use hakube_haproxy_config::AbsPath;
    /// assert!(AbsPath::new("/etc/keepalived/check_haproxy.sh").is_ok());
    /// assert!(AbsPath::new("relative.pem").is_err());
    /// ```
    AbsPath
);

impl AbsPath {
    /// Validates `value` as an absolute path.
    ///
    /// # Errors
    /// [`Error::InvalidValue`] when it does not start with `/` or holds a forbidden character.
    pub fn new(value: impl Into<String>) -> Result<Self> {
        let value = value.into();
        check_word(&value, 1024)?;
        if !value.starts_with('/') {
            return Err(Error::invalid("value", value, "must be an absolute path"));
        }
        Ok(Self(value))
    }
}

string_newtype!(
    /// The path part of an HTTP URI (`/readyz`, `/metrics`), starting with `/`.
    ///
    /// ```
    /// use hakube_haproxy_config::UriPath;
    /// assert!(UriPath::new("/readyz").is_ok());
    /// assert!(UriPath::new("readyz").is_err());
    /// ```
    UriPath
);

impl UriPath {
    /// Validates `value` as a URI path.
    ///
    /// # Errors
    /// [`Error::InvalidValue`] when it does not start with `/` or holds a forbidden character.
    pub fn new(value: impl Into<String>) -> Result<Self> {
        let value = value.into();
        check_word(&value, 1024)?;
        if !value.starts_with('/') {
            return Err(Error::invalid("value", value, "must start with '/'"));
        }
        Ok(Self(value))
    }
}

string_newtype!(
    /// A Linux network interface name (`eth0`, `ens18`, `vmbr0.20`): 1 to 15 bytes, no `/`,
    /// no whitespace, not `.` or `..`.
    ///
    /// ```
    /// use hakube_haproxy_config::Interface;
    /// assert!(Interface::new("ens18").is_ok());
    /// assert!(Interface::new("a-very-long-interface").is_err());
    /// ```
    Interface
);

impl Interface {
    /// Validates `value` as an interface name.
    ///
    /// # Errors
    /// [`Error::InvalidValue`] when it is not a valid Linux interface name.
    pub fn new(value: impl Into<String>) -> Result<Self> {
        let value = value.into();
        check_word(&value, 15)?;
        if value.contains('/') || value == "." || value == ".." || value.contains(':') {
            return Err(Error::invalid(
                "value",
                value,
                "not a Linux interface name (no '/' or ':', not '.' or '..')",
            ));
        }
        Ok(Self(value))
    }
}

/// A TCP port, 1 to 65535.
///
/// ```
/// use hakube_haproxy_config::Port;
/// assert_eq!(Port::new(6443u16).unwrap().get(), 6443);
/// assert!(Port::new(0u16).is_err());
/// assert!(Port::new(70_000u32).is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Port(NonZeroU16);

impl Port {
    /// Validates `value` as a port.
    ///
    /// # Errors
    /// [`Error::InvalidValue`] for port 0 or a value above 65535.
    pub fn new(value: impl Into<u32>) -> Result<Self> {
        let value: u32 = value.into();
        u16::try_from(value)
            .ok()
            .and_then(NonZeroU16::new)
            .map(Self)
            .ok_or_else(|| Error::invalid("value", value.to_string(), "a port must be 1 to 65535"))
    }

    /// The port number.
    #[must_use]
    pub fn get(self) -> u16 {
        self.0.get()
    }
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Renders a duration in HAProxy's time format: whole hours, minutes or seconds where exact,
/// otherwise milliseconds (`1h`, `30s`, `500ms`).
pub(crate) struct HaproxyDuration(pub(crate) Duration);

impl fmt::Display for HaproxyDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if ms != 0 && ms.is_multiple_of(3_600_000) {
            write!(f, "{}h", ms / 3_600_000)
        } else if ms != 0 && ms.is_multiple_of(60_000) {
            write!(f, "{}m", ms / 60_000)
        } else if ms.is_multiple_of(1000) {
            write!(f, "{}s", ms / 1000)
        } else {
            write!(f, "{ms}ms")
        }
    }
}

/// Checks that a duration is at least 1 ms and a whole number of milliseconds.
pub(crate) fn check_millis(d: Duration) -> Result<()> {
    if d.as_millis() == 0 || !d.subsec_nanos().is_multiple_of(1_000_000) {
        return Err(Error::invalid(
            "value",
            format!("{d:?}"),
            "must be a whole number of milliseconds, at least 1 ms",
        ));
    }
    Ok(())
}

/// Renders a duration as keepalived's decimal seconds (`1`, `0.5`, `2.25`).
pub(crate) struct KeepalivedSeconds(pub(crate) Duration);

impl fmt::Display for KeepalivedSeconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        let (secs, frac) = (ms / 1000, ms % 1000);
        if frac == 0 {
            write!(f, "{secs}")
        } else {
            let frac = format!("{frac:03}");
            write!(f, "{secs}.{}", frac.trim_end_matches('0'))
        }
    }
}

/// A directive the typed model does not cover, written as a keyword and its words
/// (`tune.ssl.default-dh-param 2048`). Every word is a [`Token`], so it cannot break lines.
///
/// ```
/// use hakube_haproxy_config::Directive;
/// let d = Directive::new("tune.ssl.default-dh-param", ["2048"]).unwrap();
/// assert_eq!(d.to_string(), "tune.ssl.default-dh-param 2048");
/// assert!(Directive::new("log", ["stdout\n    server x"]).is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Directive {
    keyword: Token,
    args: Vec<Token>,
}

impl Directive {
    /// Builds a directive from a keyword and its arguments.
    ///
    /// # Errors
    /// [`Error::InvalidValue`] naming `keyword` or `args[i]` when a word is not a [`Token`].
    pub fn new<I, S>(keyword: impl Into<String>, args: I) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let keyword = Token::new(keyword).map_err(|e| e.at("keyword"))?;
        let args = args
            .into_iter()
            .enumerate()
            .map(|(i, a)| Token::new(a).map_err(|e| e.at(format!("args[{i}]"))))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { keyword, args })
    }

    /// The keyword.
    #[must_use]
    pub fn keyword(&self) -> &Token {
        &self.keyword
    }

    /// The arguments.
    #[must_use]
    pub fn args(&self) -> &[Token] {
        &self.args
    }
}

impl fmt::Display for Directive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.keyword.as_str())?;
        for a in &self.args {
            write!(f, " {a}")?;
        }
        Ok(())
    }
}

/// Checks header comment lines: each must be one line without control characters.
pub(crate) fn check_comments(lines: &[String]) -> crate::Result<()> {
    for (i, line) in lines.iter().enumerate() {
        if line.chars().any(char::is_control) {
            return Err(crate::Error::invalid(
                format!("comment[{i}]"),
                line.clone(),
                "a comment is one line without control characters",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_reject_injection() {
        for bad in [
            "", "a b", "a\nb", "a#b", "-x", "x/y", "é", "a{", "a\"b", "a\tb",
        ] {
            assert!(Name::new(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["cp1", "cp-1.example", "_x", "node:1", "LB_3"] {
            assert!(Name::new(good).is_ok(), "{good:?} rejected");
        }
    }

    #[test]
    fn rejected_value_is_escaped_in_message() {
        let err = Name::new("a\nserver evil").unwrap_err();
        let msg = err.to_string();
        assert!(!msg.contains('\n'), "{msg}");
        assert!(msg.contains("\\n"), "{msg}");
    }

    #[test]
    fn ports() {
        assert!(Port::new(0u16).is_err());
        assert!(Port::new(70000u32).is_err());
        assert_eq!(Port::new(65535u32).unwrap().get(), 65535);
    }

    #[test]
    fn durations() {
        let h = |ms| HaproxyDuration(Duration::from_millis(ms)).to_string();
        assert_eq!(h(3_600_000), "1h");
        assert_eq!(h(120_000), "2m");
        assert_eq!(h(2_000), "2s");
        assert_eq!(h(500), "500ms");
        let k = |ms| KeepalivedSeconds(Duration::from_millis(ms)).to_string();
        assert_eq!(k(1000), "1");
        assert_eq!(k(500), "0.5");
        assert_eq!(k(1250), "1.25");
        assert!(check_millis(Duration::ZERO).is_err());
        assert!(check_millis(Duration::from_micros(1500)).is_err());
    }

    #[test]
    fn interfaces() {
        assert!(Interface::new("eth0").is_ok());
        assert!(Interface::new("vmbr0.20").is_ok());
        assert!(Interface::new("1234567890123456").is_err());
        assert!(Interface::new("eth0:1").is_err());
        assert!(Interface::new("..").is_err());
    }
}
