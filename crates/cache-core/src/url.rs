//! Connection URLs (`scheme://user:password@host…?name=value&…`): the pieces every URL parser
//! of the workspace shares. Where the user-info ends, text of a URL that never holds any part
//! of it, percent-decoding, query parameters, and the values they hold (sizes, flags,
//! durations).
//!
//! Every URL parser of the workspace splits the user-info off with [`split`] before it looks
//! at anything else, and every `Debug` of a URL goes through [`redact`]. The rule: **the
//! user-info ends at the last `@` of the URL.** A password may therefore hold any printable
//! character — `@`, `:`, `/`, `?`, `#` included — written as it is or percent-encoded; an `@`
//! in the path or query must be percent-encoded (`%40`), as RFC 3986 recommends, or it is
//! taken for the end of a user-info.
//!
//! ```
//! use cache_core::url;
//!
//! let parts = url::split("redis://user:s3#cr/t@cache:6379/0?pool_size=2").unwrap();
//! assert_eq!(parts.scheme, "redis");
//! assert_eq!(parts.userinfo, Some("user:s3#cr/t"));
//! assert_eq!(parts.rest, "cache:6379/0?pool_size=2");
//! assert_eq!((parts.base(), parts.query()), ("cache:6379/0", Some("pool_size=2")));
//! assert_eq!(url::credentials("user:s3#cr/t"), ("user", Some("s3#cr/t")));
//!
//! let shown = url::redact("redis://user:s3#cr/t@cache:6379/0?pool_size=2");
//! assert_eq!(shown, "redis://***@cache:6379/0?pool_size=2");
//! ```
//!
//! Query parameters come out in order, with a flag for a name given before:
//!
//! ```
//! use cache_core::url;
//!
//! let mut names = Vec::new();
//! for param in url::Query::new(Some("pool_size=4&&node=a%3A1&node=b:2")) {
//!     names.push((param.name, param.decoded().unwrap().into_owned(), param.repeated));
//! }
//! assert_eq!(names, [
//!     ("pool_size", "4".to_owned(), false),
//!     ("node", "a:1".to_owned(), false),
//!     ("node", "b:2".to_owned(), true),
//! ]);
//! assert_eq!(url::parse_size("64k"), Some(65_536));
//! assert_eq!(url::parse_bool("yes"), Some(true));
//! ```

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::{AiocacheFlavor, Backend, Result};

/// The query parameters a cache URL holds for the cache itself rather than for its backend:
/// namespace, default TTL, per-command timeout, serializer and key builder. The umbrella
/// crate's `from_url` takes them out before the backend's parser reads the rest.
pub const CACHE_PARAMS: [&str; 6] = [
    "namespace",
    "ttl",
    "timeout",
    "serializer",
    "compression",
    "key_builder",
];

/// A URL split at its user-info.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UrlParts<'a> {
    /// The scheme, without `://`.
    pub scheme: &'a str,
    /// The user-info: everything between `://` and the last `@`, if the URL has an `@`.
    pub userinfo: Option<&'a str>,
    /// Everything after the user-info (or after `://` without one): host, port, path, query
    /// and fragment.
    pub rest: &'a str,
}

impl<'a> UrlParts<'a> {
    /// The rest up to its query: host, port and path.
    pub fn base(&self) -> &'a str {
        self.rest
            .split_once('?')
            .map_or(self.rest, |(base, _)| base)
    }

    /// The query (after the first `?` of the rest), if there is one.
    pub fn query(&self) -> Option<&'a str> {
        self.rest.split_once('?').map(|(_, query)| query)
    }

    /// Whether the rest holds a `#`: a fragment, which no cache URL has (a `#` in a query
    /// value is written `%23`).
    pub fn has_fragment(&self) -> bool {
        self.rest.contains('#')
    }
}

/// Splits `url` into scheme, user-info and the rest. `None` when it has no `://`.
pub fn split(url: &str) -> Option<UrlParts<'_>> {
    let (scheme, after) = url.split_once("://")?;
    Some(match after.rfind('@') {
        Some(at) => UrlParts {
            scheme,
            userinfo: Some(&after[..at]),
            rest: &after[at + 1..],
        },
        None => UrlParts {
            scheme,
            userinfo: None,
            rest: after,
        },
    })
}

/// The user name and password of a user-info: split at its first `:` (a user name holds no
/// `:`; a password may). Neither is percent-decoded.
pub fn credentials(userinfo: &str) -> (&str, Option<&str>) {
    match userinfo.split_once(':') {
        Some((user, password)) => (user, Some(password)),
        None => (userinfo, None),
    }
}

/// Query parameters whose values are hidden by [`redact`]: a name containing one of these
/// (case-insensitively), such as `sentinel_password` or `auth_token`.
const SECRET_PARAMS: [&str; 5] = ["password", "pass", "token", "secret", "auth"];

/// Serializes a secret (a password, a token) as `"***"`, or nothing as `null`: for
/// `#[serde(serialize_with = "cache_core::url::serialize_secret")]` on the secret fields of a
/// config that is `Serialize`, so that printing a service's effective configuration never
/// shows them. A config serialized this way does not hold the secret any more.
///
/// # Errors
/// Those of the serializer.
pub fn serialize_secret<S: serde::Serializer>(
    value: &Option<String>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    match value {
        Some(_) => s.serialize_some("***"),
        None => s.serialize_none(),
    }
}

/// `url` for `Debug` output and messages: the whole user-info, when there is one, replaced
/// by `***`, and the values of query parameters named like secrets (`password`, `token`, …)
/// by `***`. Text without `://` that holds an `@` is hidden up to its last `@` all the same.
pub fn redact(url: &str) -> String {
    let (head, rest, hidden) = match split(url) {
        Some(parts) => (
            format!("{}://", parts.scheme),
            parts.rest,
            parts.userinfo.is_some(),
        ),
        None => match url.rfind('@') {
            Some(at) => (String::new(), &url[at + 1..], true),
            None => (String::new(), url, false),
        },
    };
    let mut out = head;
    if hidden {
        out.push_str("***@");
    }
    out.push_str(&redact_query(rest));
    out
}

/// Hides the values of query parameters named like secrets.
fn redact_query(rest: &str) -> String {
    let Some((path, query)) = rest.split_once('?') else {
        return rest.to_owned();
    };
    let (query, fragment) = match query.split_once('#') {
        Some((q, f)) => (q, Some(f)),
        None => (query, None),
    };
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) if is_secret_param(k) => format!("{k}=***"),
            _ => pair.to_owned(),
        })
        .collect();
    let mut out = format!("{path}?{}", pairs.join("&"));
    if fragment.is_some() {
        out.push_str("#***");
    }
    out
}

fn is_secret_param(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    SECRET_PARAMS.iter().any(|s| name.contains(s))
}

/// A backend's settings as a URL gives them: the schemes the backend answers to, how its
/// URL is read, and how the backend is built from what was read. Each backend crate
/// implements it on its config type (`MemoryConfig`, `RedisConfig`, `MemcachedConfig`); the
/// umbrella crate's `from_url` picks the implementation whose [`SCHEMES`](Self::SCHEMES)
/// hold the URL's scheme.
///
/// ```
/// use std::sync::Arc;
/// use cache_core::url::UrlConfig;
/// use cache_core::{async_trait, AiocacheFlavor, Backend, Error, Result};
///
/// /// `null://`: a backend that is not there.
/// struct NullConfig;
///
/// #[async_trait]
/// impl UrlConfig for NullConfig {
///     const SCHEMES: &'static [&'static str] = &["null"];
///     const AIOCACHE_FLAVOR: AiocacheFlavor = AiocacheFlavor::Memory;
///
///     fn from_url(url: &str) -> Result<Self> {
///         match cache_core::url::split(url) {
///             Some(p) if p.scheme == "null" && p.rest.is_empty() => Ok(NullConfig),
///             _ => Err(Error::config("expected null://")),
///         }
///     }
///
///     async fn connect(self) -> Result<Arc<dyn Backend>> {
///         Err(Error::config("null:// connects to nothing"))
///     }
/// }
///
/// assert!(NullConfig::from_url("null://").is_ok());
/// assert!(NullConfig::from_url("null://host").is_err());
/// ```
#[async_trait::async_trait]
pub trait UrlConfig: Sized + Send + 'static {
    /// The URL schemes of the backend, lower case, without `://`.
    const SCHEMES: &'static [&'static str];

    /// The key format aiocache uses for this kind of backend, for a cache that shares a
    /// store with Python services (`key_builder=aiocache`).
    const AIOCACHE_FLAVOR: AiocacheFlavor;

    /// Reads the backend's part of a URL (the cache's own parameters, [`CACHE_PARAMS`],
    /// already taken out).
    ///
    /// # Errors
    /// [`Config`](crate::ErrorKind::Config) naming what is wrong; never repeating a password.
    fn from_url(url: &str) -> Result<Self>;

    /// Refuses settings that store other keys than aiocache's key builder builds, for a
    /// cache built with `key_builder=aiocache`. The default accepts every setting.
    ///
    /// # Errors
    /// [`Config`](crate::ErrorKind::Config) naming the setting.
    fn check_aiocache_keys(&self) -> Result<()> {
        Ok(())
    }

    /// Builds the backend: connects where the backend has a server.
    ///
    /// # Errors
    /// The backend's settings and connection errors.
    ///
    /// # Cancel safety
    /// Dropping the future before it ends leaves nothing behind.
    async fn connect(self) -> Result<Arc<dyn Backend>>;
}

/// Why a percent-encoded text does not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// A `%` not followed by two hexadecimal digits.
    InvalidEscape,
    /// The decoded bytes are not UTF-8.
    NotUtf8,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DecodeError::InvalidEscape => {
                "invalid percent-encoding (expected %XX with two hex digits)"
            }
            DecodeError::NotUtf8 => "the percent-decoded value is not UTF-8",
        })
    }
}

impl std::error::Error for DecodeError {}

/// Percent-decodes `text` (`%XX` escapes) as UTF-8; a `+` stays a `+`. Borrows when there
/// is nothing to decode. The error never holds any of `text` (it may be a password).
///
/// ```
/// use cache_core::url::{self, DecodeError};
///
/// assert_eq!(url::decode("p%40ss%3Aw+x").unwrap(), "p@ss:w+x");
/// assert_eq!(url::decode("100%"), Err(DecodeError::InvalidEscape));
/// assert_eq!(url::decode("%ff"), Err(DecodeError::NotUtf8));
/// ```
///
/// # Errors
/// [`DecodeError`]: a `%` without two hex digits, or bytes that are not UTF-8.
pub fn decode(text: &str) -> Result<Cow<'_, str>, DecodeError> {
    if !text.contains('%') {
        return Ok(Cow::Borrowed(text));
    }
    // `percent_decode_str` passes a malformed escape through as it is; refuse it instead
    let bytes = text.as_bytes();
    for (i, _) in text.match_indices('%') {
        match bytes.get(i + 1..i + 3) {
            Some([a, b]) if a.is_ascii_hexdigit() && b.is_ascii_hexdigit() => {}
            _ => return Err(DecodeError::InvalidEscape),
        }
    }
    percent_encoding::percent_decode_str(text)
        .decode_utf8()
        .map_err(|_| DecodeError::NotUtf8)
}

/// [`decode`] for a query value written as in HTML forms: a `+` is a space (`%2B` is a `+`).
///
/// ```
/// assert_eq!(cache_core::url::decode_query_value("a+b%2Bc").unwrap(), "a b+c");
/// ```
///
/// # Errors
/// As [`decode`].
pub fn decode_query_value(text: &str) -> Result<Cow<'_, str>, DecodeError> {
    if !text.contains('+') {
        return decode(text);
    }
    decode(&text.replace('+', " ")).map(|decoded| Cow::Owned(decoded.into_owned()))
}

/// One `name=value` pair of a query, as written (neither part decoded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Param<'a> {
    /// The whole pair as written: `name=value`, or `name` alone.
    pub pair: &'a str,
    /// The name: the text before the first `=`.
    pub name: &'a str,
    /// The value: the text after the first `=`; empty when there is no `=`.
    pub value: &'a str,
    /// Whether an earlier pair of the same query has the same name.
    pub repeated: bool,
}

impl<'a> Param<'a> {
    /// The value, percent-decoded (see [`decode`]).
    ///
    /// # Errors
    /// As [`decode`].
    pub fn decoded(&self) -> Result<Cow<'a, str>, DecodeError> {
        decode(self.value)
    }
}

/// The parameters of a query (`a=1&b=2`), in order; empty pairs (`a=1&&b=2`, a trailing `&`)
/// are skipped. Each [`Param`] says whether its name came before, so a parser can refuse a
/// parameter given twice, or collect a repeatable one.
#[derive(Debug, Clone)]
pub struct Query<'a> {
    pairs: std::str::Split<'a, char>,
    seen: Vec<&'a str>,
}

impl<'a> Query<'a> {
    /// The parameters of `query` (none for `None`): the text after a URL's `?`, as
    /// [`UrlParts::query`] gives it.
    pub fn new(query: Option<&'a str>) -> Self {
        Query {
            pairs: query.unwrap_or("").split('&'),
            seen: Vec::new(),
        }
    }
}

impl<'a> Iterator for Query<'a> {
    type Item = Param<'a>;

    fn next(&mut self) -> Option<Param<'a>> {
        let pair = self.pairs.by_ref().find(|p| !p.is_empty())?;
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let repeated = self.seen.contains(&name);
        if !repeated {
            self.seen.push(name);
        }
        Some(Param {
            pair,
            name,
            value,
            repeated,
        })
    }
}

/// A size or count: digits, optionally grouped with `_` (`100_000`), optionally followed by
/// `k`, `m` or `g` (either case) for powers of 1024. Surrounding spaces are ignored. `None`
/// when `text` is not one, or it does not fit in a `u64`; zero is a size (a caller that wants
/// a positive one says so).
///
/// ```
/// use cache_core::url::parse_size;
///
/// assert_eq!(parse_size("100_000"), Some(100_000));
/// assert_eq!(parse_size("64k"), Some(65_536));
/// assert_eq!(parse_size("2M"), Some(2 << 20));
/// assert_eq!(parse_size("1g"), Some(1 << 30));
/// assert_eq!(parse_size("ten"), None);
/// ```
pub fn parse_size(text: &str) -> Option<u64> {
    let t = text.trim().replace('_', "");
    let (digits, factor) = match t.char_indices().last() {
        Some((i, 'k' | 'K')) => (&t[..i], 1u64 << 10),
        Some((i, 'm' | 'M')) => (&t[..i], 1 << 20),
        Some((i, 'g' | 'G')) => (&t[..i], 1 << 30),
        _ => (t.as_str(), 1),
    };
    digits.parse::<u64>().ok()?.checked_mul(factor)
}

/// A flag: `true`, `1`, `yes`, `on` or `false`, `0`, `no`, `off` (any case). `None` for any
/// other text.
///
/// ```
/// assert_eq!(cache_core::url::parse_bool("On"), Some(true));
/// assert_eq!(cache_core::url::parse_bool("0"), Some(false));
/// assert_eq!(cache_core::url::parse_bool("maybe"), None);
/// ```
pub fn parse_bool(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// A duration that may be switched off: `none` or `off` (any case) or a zero duration give
/// `None`; anything else is read by [`duration::parse`](crate::duration::parse).
///
/// ```
/// use std::time::Duration;
/// use cache_core::url::parse_optional_duration;
///
/// assert_eq!(parse_optional_duration("50ms"), Ok(Some(Duration::from_millis(50))));
/// assert_eq!(parse_optional_duration("none"), Ok(None));
/// assert_eq!(parse_optional_duration("0"), Ok(None));
/// assert!(parse_optional_duration("soon").is_err());
/// ```
///
/// # Errors
/// The message of [`duration::parse`](crate::duration::parse).
pub fn parse_optional_duration(text: &str) -> Result<Option<Duration>, String> {
    if text.eq_ignore_ascii_case("none") || text.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    crate::duration::parse(text).map(|d| Some(d).filter(|d| !d.is_zero()))
}

/// At most 64 characters of `text`, then `…`: user input quoted in a message.
///
/// ```
/// let long = "x".repeat(100);
/// assert_eq!(cache_core::url::shorten(&long).chars().count(), 65);
/// assert_eq!(cache_core::url::shorten("ftp"), "ftp");
/// ```
pub fn shorten(text: &str) -> Cow<'_, str> {
    match text.char_indices().nth(64) {
        Some((i, _)) => Cow::Owned(format!("{}…", &text[..i])),
        None => Cow::Borrowed(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_userinfo_ends_at_the_last_at() {
        for (url, userinfo, rest) in [
            ("redis://h:1/0", None, "h:1/0"),
            ("redis://u:p@h:1/0", Some("u:p"), "h:1/0"),
            (
                "redis://user:s3#cr3t@h:6379/0",
                Some("user:s3#cr3t"),
                "h:6379/0",
            ),
            (
                "redis://u:hun/ter2@h:6379/0",
                Some("u:hun/ter2"),
                "h:6379/0",
            ),
            ("redis://u:a?b@c@h?x=1", Some("u:a?b@c"), "h?x=1"),
            ("redis://:p@h", Some(":p"), "h"),
            ("redis+unix://:pw@/tmp/r.sock", Some(":pw"), "/tmp/r.sock"),
            ("memory://", None, ""),
        ] {
            let p = split(url).unwrap();
            assert_eq!((p.userinfo, p.rest), (userinfo, rest), "{url}");
        }
        assert_eq!(split("no scheme"), None);
        assert_eq!(credentials("u:p:q"), ("u", Some("p:q")));
        assert_eq!(credentials(":p"), ("", Some("p")));
        assert_eq!(credentials("u"), ("u", None));
    }

    #[test]
    fn redaction_hides_the_whole_userinfo_and_secret_parameters() {
        for (url, shown) in [
            (
                "redis://user:s3cr3t@h:1/0?pool_size=2",
                "redis://***@h:1/0?pool_size=2",
            ),
            ("redis://s3cr3t@h", "redis://***@h"),
            ("redis://:p@ss@h", "redis://***@h"),
            ("redis://user:s3#cr3t@h:6379/0", "redis://***@h:6379/0"),
            ("redis://u:a/b?c#d@h/0", "redis://***@h/0"),
            (
                "redis-sentinel://h?sentinel_password=x&db=1",
                "redis-sentinel://h?sentinel_password=***&db=1",
            ),
            ("redis://h?a=1#frag", "redis://h?a=1#***"),
            ("memory://?namespace=a", "memory://?namespace=a"),
            ("no scheme", "no scheme"),
            ("u:secret@h", "***@h"),
        ] {
            assert_eq!(redact(url), shown, "{url}");
        }
    }

    #[test]
    fn random_printable_passwords_never_show() {
        let mut passwords = crate::testkit::Passwords::new(0x9e37_79b9_7f4a_7c15);
        for _ in 0..5000 {
            let password = passwords.password();
            for url in [
                format!("redis://user:{password}@h:6379/0?pool_size=2"),
                format!("memcached://:{password}@h:11211"),
                format!("x://{password}@h"),
            ] {
                let shown = redact(&url);
                assert!(!shown.contains(&password), "{password:?} in {shown:?}");
                let p = split(&url).unwrap();
                assert!(p.userinfo.unwrap().ends_with(&password));
                assert!(!p.rest.contains(&password));
            }
        }
    }

    #[test]
    fn decoding_refuses_malformed_escapes_and_keeps_plus() {
        assert_eq!(decode("plain").unwrap(), "plain");
        assert!(matches!(decode("plain"), Ok(Cow::Borrowed(_))));
        assert_eq!(decode("%2F%2f%41+").unwrap(), "//A+");
        assert_eq!(decode("%E2%82%AC").unwrap(), "€");
        for bad in ["%", "%z", "%zz", "a%4", "%%41", "%-1"] {
            assert_eq!(decode(bad), Err(DecodeError::InvalidEscape), "{bad}");
        }
        assert_eq!(decode("%C3"), Err(DecodeError::NotUtf8));
        assert_eq!(decode_query_value("a+b%2B").unwrap(), "a b+");
        assert_eq!(decode_query_value("%zz+"), Err(DecodeError::InvalidEscape));
    }

    #[test]
    fn query_parameters_come_in_order_with_repeats_flagged() {
        let params: Vec<Param<'_>> = Query::new(Some("a=1&&b&a=2=3&")).collect();
        assert_eq!(
            params,
            [
                Param {
                    pair: "a=1",
                    name: "a",
                    value: "1",
                    repeated: false
                },
                Param {
                    pair: "b",
                    name: "b",
                    value: "",
                    repeated: false
                },
                Param {
                    pair: "a=2=3",
                    name: "a",
                    value: "2=3",
                    repeated: true
                },
            ]
        );
        assert_eq!(Query::new(None).count(), 0);
        assert_eq!(Query::new(Some("")).count(), 0);
        let p = split("redis://u:p?@h/0?x=1#f").unwrap();
        assert_eq!(
            (p.base(), p.query(), p.has_fragment()),
            ("h/0", Some("x=1#f"), true)
        );
    }

    #[test]
    fn sizes_flags_and_optional_durations() {
        assert_eq!(parse_size("0"), Some(0));
        assert_eq!(parse_size(" 12 "), Some(12));
        assert_eq!(parse_size("99999999999999999999g"), None);
        assert_eq!(parse_size("k"), None);
        assert_eq!(parse_size("-1"), None);
        assert_eq!(parse_bool("YES"), Some(true));
        assert_eq!(parse_bool("off"), Some(false));
        assert_eq!(parse_optional_duration("OFF"), Ok(None));
        assert!(
            parse_optional_duration("5")
                .unwrap_err()
                .contains("no unit")
        );
    }
}
