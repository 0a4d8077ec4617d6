//! Fuzzes the configuration parsers of the network backends.
//!
//! The input, read as UTF-8 text, goes through `RedisConfig::from_url`,
//! `MemcachedConfig::from_url` and `serde_json::from_str` into both config types. None may
//! panic. Properties checked:
//!
//! - every config that parses survives a JSON round trip (`to_string` then `from_str` gives
//!   an equal config);
//! - `RedisConfig`'s `Debug` never shows the password: it is the same whatever the password;
//! - an error from `RedisConfig::from_url` never repeats the URL's password;
//! - a password made of the input's bytes, mapped onto the whole printable range (space to
//!   `~`, so `@ / ? # : %` included, written as they are), put into every URL form of both
//!   backends, never appears in any output: the Redis config's `Debug` and `describe`-based
//!   messages, either parser's error (`Display` and `Debug`), and `cache_core::url::redact`.
//!   An output counts as a leak only if it holds the password and the same URL with the
//!   password replaced by `Q`s gives an output without it (so fixed message text that happens
//!   to equal the password is not a leak).

#![no_main]

use cache_memcached::MemcachedConfig;
use cache_redis::RedisConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };

    match RedisConfig::from_url(text) {
        Ok(config) => check_redis(&config),
        Err(e) => {
            if let Some(password) = url_password(text) {
                let shown = format!("{e} {e:?}");
                if shown.contains(password) {
                    // a leak only if the same URL with another password does not show it
                    let plain = "Q".repeat(password.len());
                    let control = match RedisConfig::from_url(&text.replacen(password, &plain, 1)) {
                        Ok(c) => format!("{c:?}"),
                        Err(e) => format!("{e} {e:?}"),
                    };
                    assert!(
                        control.contains(password),
                        "the error repeats the password {password:?}: {shown}"
                    );
                }
            }
        }
    }
    if let Ok(config) = serde_json::from_str::<RedisConfig>(text) {
        check_redis(&config);
    }

    if let Ok(config) = MemcachedConfig::from_url(text) {
        check_memcached(&config);
    }
    if let Ok(config) = serde_json::from_str::<MemcachedConfig>(text) {
        check_memcached(&config);
    }

    check_printable_password(data);
});

/// URL forms with `{pw}` where the password goes.
const FORMS: [&str; 10] = [
    "redis://user:{pw}@h:6379/0?pool_size=2",
    "rediss://:{pw}@h/1/",
    "valkey://user:{pw}@h",
    "redis-cluster://user:{pw}@h:7000?node=h2:7001",
    "redis-sentinel://user:{pw}@s1:26379/2?service_name=main",
    "redis+unix://user:{pw}@/tmp/redis.sock?db=1",
    "redis://{pw}@h:6379",
    "memcached://user:{pw}@127.0.0.1:11211",
    "memcached://:{pw}@127.0.0.1:11211?pool_size=2",
    "memcached://h1,user:{pw}@h2",
];

/// Everything the parsers show of `url`.
fn outputs(url: &str) -> String {
    let mut shown = cache_core::url::redact(url);
    match RedisConfig::from_url(url) {
        Ok(c) => shown.push_str(&format!("{c:?}")),
        Err(e) => shown.push_str(&format!("{e} {e:?}")),
    }
    match MemcachedConfig::from_url(url) {
        Ok(c) => shown.push_str(&format!("{c:?}")),
        Err(e) => shown.push_str(&format!("{e} {e:?}")),
    }
    shown
}

fn check_printable_password(data: &[u8]) {
    let Some((&form, rest)) = data.split_first() else {
        return;
    };
    if rest.len() < 8 {
        return;
    }
    let password: String = rest
        .iter()
        .take(64)
        .map(|b| char::from(0x20 + b % 95))
        .collect();
    let form = FORMS[usize::from(form) % FORMS.len()];
    let shown = outputs(&form.replace("{pw}", &password));
    if shown.contains(&password) {
        let plain = "Q".repeat(password.len());
        let control = outputs(&form.replace("{pw}", &plain));
        assert!(
            control.contains(&password),
            "the password {password:?} of {form} shows: {shown}"
        );
    }
}

fn check_redis(config: &RedisConfig) {
    let json = serde_json::to_string(config).expect("a parsed RedisConfig serializes");
    let back: RedisConfig = serde_json::from_str(&json)
        .unwrap_or_else(|e| panic!("RedisConfig JSON round trip fails: {e}; json {json}"));
    assert!(
        back == *config,
        "RedisConfig JSON round trip changes it: {json}"
    );

    if config.password.is_some() {
        let mut other = config.clone();
        other.password = Some("another password".to_owned());
        assert_eq!(
            format!("{config:?}"),
            format!("{other:?}"),
            "RedisConfig's Debug depends on the password"
        );
    }
}

fn check_memcached(config: &MemcachedConfig) {
    let json = serde_json::to_string(config).expect("a parsed MemcachedConfig serializes");
    let back: MemcachedConfig = serde_json::from_str(&json)
        .unwrap_or_else(|e| panic!("MemcachedConfig JSON round trip fails: {e}; json {json}"));
    assert_eq!(
        back, *config,
        "MemcachedConfig JSON round trip changes it: {json}"
    );
}

/// The raw (still percent-encoded) password of a redis URL, split the way the parser splits
/// it (the user-info ends at the last `@`; the password follows its first `:`), when it is
/// long enough and appears nowhere else in the URL (so that a message quoting another part of
/// the URL is not mistaken for a leak).
fn url_password(url: &str) -> Option<&str> {
    let parts = cache_core::url::split(url)?;
    let (_, password) = cache_core::url::credentials(parts.userinfo?);
    let password = password?;
    let elsewhere = url.replacen(password, "", 1).contains(password);
    (password.len() >= 8 && !elsewhere).then_some(password)
}
