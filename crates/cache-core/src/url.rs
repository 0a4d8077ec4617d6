//! The user-info of connection URLs (`scheme://user:password@host…`): where it ends, and text
//! of a URL that never holds any part of it.
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
//! assert_eq!(url::credentials("user:s3#cr/t"), ("user", Some("s3#cr/t")));
//!
//! let shown = url::redact("redis://user:s3#cr/t@cache:6379/0?pool_size=2");
//! assert_eq!(shown, "redis://***@cache:6379/0?pool_size=2");
//! ```

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
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..5000 {
            let len = 8 + (next() % 24) as usize;
            let password: String = (0..len)
                .map(|_| char::from(0x20 + (next() % 95) as u8))
                .collect();
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
}
