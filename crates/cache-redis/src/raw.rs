//! `raw`: which commands may run over the shared connections, and replies as [`RawValue`]s.

use bytes::Bytes;
use cache_core::{Error, RawValue, Result};
use fred::error::Error as FredError;
use fred::prelude::Value;
use fred::types::Resp3Frame;

use crate::error;

/// Nesting depth of a raw reply converted to [`RawValue`] (a guard against hostile replies).
const MAX_RAW_DEPTH: usize = 64;

/// Commands `raw` refuses: they change the state of the shared connection (database,
/// protocol, subscriptions, transactions) or block it for every other caller.
const REFUSED_RAW: &[&str] = &[
    "AUTH",
    "HELLO",
    "SELECT",
    "QUIT",
    "RESET",
    "MONITOR",
    "SYNC",
    "PSYNC",
    "MULTI",
    "EXEC",
    "DISCARD",
    "WATCH",
    "UNWATCH",
    "SUBSCRIBE",
    "PSUBSCRIBE",
    "SSUBSCRIBE",
    "UNSUBSCRIBE",
    "PUNSUBSCRIBE",
    "SUNSUBSCRIBE",
    "BLPOP",
    "BRPOP",
    "BRPOPLPUSH",
    "BLMOVE",
    "BLMPOP",
    "BZPOPMIN",
    "BZPOPMAX",
    "BZMPOP",
    "WAIT",
    "WAITAOF",
];

pub(crate) fn check_raw(name: &str, args: &[RawValue]) -> Result<()> {
    let mut words = name.split_ascii_whitespace();
    let first = words
        .next()
        .ok_or_else(|| Error::invalid_argument("the raw command name is empty"))?
        .to_ascii_uppercase();
    let refused = || {
        Err(Error::invalid_argument(format!(
            "{first} changes or blocks the connection every cache call shares and cannot run \
             through raw(); use a dedicated redis client for it"
        )))
    };
    if REFUSED_RAW.contains(&first.as_str()) {
        return refused();
    }
    if first == "CLIENT"
        && words
            .next()
            .is_some_and(|w| w.eq_ignore_ascii_case("REPLY") || w.eq_ignore_ascii_case("TRACKING"))
    {
        return refused();
    }
    if matches!(first.as_str(), "XREAD" | "XREADGROUP")
        && args
            .iter()
            .any(|a| a.as_str().is_some_and(|s| s.eq_ignore_ascii_case("BLOCK")))
    {
        return refused();
    }
    Ok(())
}

pub(crate) fn raw_arg(arg: RawValue) -> Result<Value> {
    Ok(match arg {
        RawValue::Bytes(b) => Value::Bytes(b),
        RawValue::Text(s) => Value::Bytes(Bytes::from(s)),
        RawValue::Int(i) => Value::Integer(i),
        RawValue::Float(f) => Value::Double(f),
        RawValue::Nil | RawValue::Bool(_) | RawValue::Array(_) | RawValue::Map(_) => {
            return Err(Error::invalid_argument(
                "raw redis arguments are bytes, text, integers or floats; nil, booleans, \
                 arrays and maps have no redis form",
            ));
        }
    })
}

/// A reply frame as a [`RawValue`]: bulk strings are `Bytes`, simple strings `Text`.
pub(crate) fn raw_reply(frame: Resp3Frame, depth: usize) -> Result<RawValue> {
    if depth > MAX_RAW_DEPTH {
        return Err(error::unexpected("the redis reply is nested too deeply"));
    }
    let text = |b: Bytes| String::from_utf8_lossy(&b).into_owned();
    Ok(match frame {
        Resp3Frame::BlobString { data, .. } => RawValue::Bytes(data),
        Resp3Frame::SimpleString { data, .. } => RawValue::Text(text(data)),
        Resp3Frame::VerbatimString { data, .. } => RawValue::Text(text(data)),
        Resp3Frame::BigNumber { data, .. } => RawValue::Text(text(data)),
        Resp3Frame::Number { data, .. } => RawValue::Int(data),
        Resp3Frame::Double { data, .. } => RawValue::Float(data),
        Resp3Frame::Boolean { data, .. } => RawValue::Bool(data),
        Resp3Frame::Null => RawValue::Nil,
        Resp3Frame::Array { data, .. } | Resp3Frame::Push { data, .. } => RawValue::Array(
            data.into_iter()
                .map(|f| raw_reply(f, depth + 1))
                .collect::<Result<_>>()?,
        ),
        Resp3Frame::Set { data, .. } => RawValue::Array(
            data.into_iter()
                .map(|f| raw_reply(f, depth + 1))
                .collect::<Result<_>>()?,
        ),
        Resp3Frame::Map { data, .. } => RawValue::Map(
            data.into_iter()
                .map(|(k, v)| Ok((raw_reply(k, depth + 1)?, raw_reply(v, depth + 1)?)))
                .collect::<Result<_>>()?,
        ),
        Resp3Frame::SimpleError { data, .. } => {
            return Err(error::convert(FredError::new(
                fred::error::ErrorKind::Unknown,
                data.to_string(),
            )));
        }
        Resp3Frame::BlobError { data, .. } => {
            return Err(error::convert(FredError::new(
                fred::error::ErrorKind::Unknown,
                text(data),
            )));
        }
        Resp3Frame::Hello { .. } | Resp3Frame::ChunkedString(_) => {
            return Err(error::unexpected("unexpected frame in a redis reply"));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_refuses_connection_state_and_blocking_commands() {
        for cmd in [
            "select",
            "SUBSCRIBE",
            "blpop",
            "multi",
            "client reply",
            " quit ",
        ] {
            let e = check_raw(cmd, &[]).unwrap_err();
            assert_eq!(e.kind(), cache_core::ErrorKind::InvalidArgument, "{cmd}");
        }
        assert!(check_raw("XREAD", &["block".into(), "0".into()]).is_err());
        assert!(check_raw("XREAD", &["COUNT".into(), "1".into()]).is_ok());
        assert!(check_raw("client list", &[]).is_ok());
        assert!(check_raw("GET", &["k".into()]).is_ok());
        assert!(check_raw("  ", &[]).is_err());
    }

    #[test]
    fn raw_replies_keep_their_types() {
        let frame = Resp3Frame::Array {
            data: vec![
                Resp3Frame::BlobString {
                    data: Bytes::from_static(b"\xff"),
                    attributes: None,
                },
                Resp3Frame::SimpleString {
                    data: Bytes::from_static(b"OK"),
                    attributes: None,
                },
                Resp3Frame::Number {
                    data: 7,
                    attributes: None,
                },
                Resp3Frame::Null,
            ],
            attributes: None,
        };
        assert_eq!(
            raw_reply(frame, 0).unwrap(),
            RawValue::Array(vec![
                RawValue::Bytes(Bytes::from_static(b"\xff")),
                RawValue::Text("OK".into()),
                RawValue::Int(7),
                RawValue::Nil,
            ])
        );
        let mut deep = Resp3Frame::Null;
        for _ in 0..100 {
            deep = Resp3Frame::Array {
                data: vec![deep],
                attributes: None,
            };
        }
        assert!(raw_reply(deep, 0).is_err());
    }
}
