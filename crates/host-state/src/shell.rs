//! Shell quoting and DNS labels: the one copy every crate uses.

use crate::Error;

/// Quotes one word for a POSIX shell, so that the shell passes it through unchanged.
///
/// Words made only of safe characters are returned as they are; anything else is wrapped in
/// single quotes, with each `'` written as `'\''`. The empty string becomes `''`. `~` is never
/// safe (tilde expansion). `=` is safe unless the word could be an assignment (a shell name
/// before its first `=`, POSIX 2.10.2 rule 7), so `a=b` is quoted and `--timeout=5s` is not.
///
/// ```
/// use hakube_host_state::shell_quote;
/// assert_eq!(shell_quote("haproxy"), "haproxy");
/// assert_eq!(shell_quote("it's $HOME"), r#"'it'\''s $HOME'"#);
/// assert_eq!(shell_quote("a=b"), "'a=b'");
/// assert_eq!(shell_quote("--timeout=5s"), "--timeout=5s");
/// assert_eq!(shell_quote(""), "''");
/// ```
#[must_use]
pub fn shell_quote(word: &str) -> String {
    quote(word, true)
}

/// Joins `argv` into one command line, each word quoted as [`shell_quote`] does, but for
/// `=`: only the first word (the command's position) could be taken as an assignment, so a
/// later `key=value` stays as it is.
///
/// ```
/// use hakube_host_state::shell_join;
/// assert_eq!(shell_join(["bao", "write", "pki/roles/web", "ttl=72h", "common_name=a b"]),
///            "bao write pki/roles/web ttl=72h 'common_name=a b'");
/// assert_eq!(shell_join(["a=b", "c=d"]), "'a=b' c=d");
/// ```
#[must_use]
pub fn shell_join<I, S>(argv: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    argv.into_iter()
        .enumerate()
        .map(|(i, w)| quote(w.as_ref(), i == 0))
        .collect::<Vec<_>>()
        .join(" ")
}

fn quote(word: &str, command_position: bool) -> String {
    let assignment = command_position
        && word.split_once('=').is_some_and(|(name, _)| {
            name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        });
    let safe = !word.is_empty()
        && !assignment
        && word.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'-' | b'_' | b'.' | b'/' | b':' | b',' | b'+' | b'@' | b'%' | b'='
                )
        });
    if safe {
        return word.to_owned();
    }
    let mut out = String::with_capacity(word.len() + 2);
    out.push('\'');
    for c in word.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

/// Checks an RFC 1123 DNS label: 1 to 63 characters, lower-case ASCII letters, digits and
/// `-`, starting and ending with a letter or digit. Kubernetes names, hostnames and Proxmox
/// VM names all follow it.
///
/// ```
/// use hakube_host_state::check_dns_label;
/// assert!(check_dns_label("worker-1").is_ok());
/// assert!(check_dns_label("Worker").is_err());
/// assert!(check_dns_label("-a").is_err());
/// ```
///
/// # Errors
/// [`Error::DnsLabel`] saying which rule the value breaks.
pub fn check_dns_label(value: &str) -> Result<(), Error> {
    let bad = |reason| {
        Err(Error::DnsLabel {
            value: value.to_owned(),
            reason,
        })
    };
    if value.is_empty() {
        return bad("empty");
    }
    if value.len() > 63 {
        return bad("longer than 63 characters");
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return bad("only lower-case letters, digits and '-' are allowed");
    }
    if value.starts_with('-') || value.ends_with('-') {
        return bad("must start and end with a letter or digit");
    }
    Ok(())
}

/// Whether `value` is an RFC 1123 DNS label ([`check_dns_label`] as a predicate).
#[must_use]
pub fn is_dns_label(value: &str) -> bool {
    check_dns_label(value).is_ok()
}

/// Whether `value` is a DNS name: dot-separated DNS labels, at most 253 characters.
///
/// ```
/// use hakube_host_state::is_dns_name;
/// assert!(is_dns_name("k8s-api.example.lan"));
/// assert!(!is_dns_name("a..b"));
/// ```
#[must_use]
pub fn is_dns_name(value: &str) -> bool {
    value.len() <= 253 && value.split('.').all(is_dns_label)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever the word, `sh` gives it back unchanged.
        #[test]
        fn quoting_round_trips_through_sh(word in "[ -~\n\t]{0,24}") {
            let out = std::process::Command::new("sh")
                .args(["-c", &format!("printf %s {}", shell_quote(&word))])
                .output()
                .expect("sh runs");
            prop_assert_eq!(String::from_utf8_lossy(&out.stdout), word);
        }
    }

    /// Whatever the words, `sh` gives them back unchanged from a joined command line.
    #[test]
    fn joined_words_round_trip_through_sh() {
        let words = ["printf", "%s|", "a=b", "--t=1", "it's", "", "x y"];
        let out = std::process::Command::new("sh")
            .args(["-c", &shell_join(words)])
            .output()
            .expect("sh runs");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "a=b|--t=1|it's||x y|");
    }

    /// A quoted word in command position is a command, never an assignment.
    #[test]
    fn no_word_becomes_an_assignment() {
        for word in ["a=b", "_x1=--y", "--timeout=5s", "k8s.io/x=1"] {
            let out = std::process::Command::new("sh")
                .args([
                    "-c",
                    &format!("true; {} 2>/dev/null; echo $?", shell_quote(word)),
                ])
                .output()
                .expect("sh runs");
            assert_eq!(String::from_utf8_lossy(&out.stdout), "127\n", "{word}");
        }
    }

    #[test]
    fn labels() {
        assert!(check_dns_label(&"a".repeat(63)).is_ok());
        assert!(check_dns_label(&"a".repeat(64)).is_err());
        assert!(check_dns_label("a_b").is_err());
        assert!(check_dns_label("1a").is_ok());
        assert!(check_dns_label("a-").is_err());
    }
}
