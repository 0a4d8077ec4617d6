//! The `raw` escape hatch: memcached commands by name, without namespace, key encoding or
//! serializer.

use async_memcached::{AsciiProtocol, Error as ClientError, MetaProtocol, MetaValue, Status};
use bytes::Bytes;
use cache_core::{Deadline, Error, RawValue, Result};
use futures_util::future::join_all;

use crate::MemcachedBackend;
use crate::error::McError;
use crate::pool::Server;

/// The commands `raw` knows, for error messages and docs.
pub(crate) const COMMANDS: &str =
    "get, set, add, delete, incr, decr, mg, ms, md, ma, version, stats, flush_all";

fn arg_bytes(v: &RawValue) -> Result<Vec<u8>> {
    match v {
        RawValue::Bytes(b) => Ok(b.to_vec()),
        RawValue::Text(t) => Ok(t.as_bytes().to_vec()),
        RawValue::Int(i) => Ok(i.to_string().into_bytes()),
        other => Err(Error::invalid_argument(format!(
            "memcached raw arguments are keys, values, flags and integers; got {other:?}"
        ))),
    }
}

fn arg_text(v: &RawValue) -> Result<String> {
    String::from_utf8(arg_bytes(v)?)
        .map_err(|_| Error::invalid_argument("meta flags must be UTF-8 text"))
}

fn arg_u64(v: &RawValue, what: &str) -> Result<u64> {
    match v {
        RawValue::Int(i) if *i >= 0 => Ok(*i as u64),
        other => other
            .as_str()
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or_else(|| {
                Error::invalid_argument(format!("{what} must be a non-negative integer"))
            }),
    }
}

fn arg_i64(v: &RawValue, what: &str) -> Result<i64> {
    v.as_i64()
        .ok_or_else(|| Error::invalid_argument(format!("{what} must be an integer")))
}

fn need(args: &[RawValue], n: usize, usage: &str) -> Result<()> {
    if args.len() < n {
        Err(Error::invalid_argument(format!("usage: {usage}")))
    } else {
        Ok(())
    }
}

fn text(s: &str) -> RawValue {
    RawValue::Text(s.to_owned())
}

/// A meta command's answer as a map of the fields the server returned.
pub(crate) fn meta_map(v: MetaValue) -> RawValue {
    let mut m: Vec<(RawValue, RawValue)> = Vec::new();
    let mut put = |k: &str, v: RawValue| m.push((text(k), v));
    if let Some(d) = v.data {
        put("value", RawValue::Bytes(Bytes::from(d)));
    }
    if let Some(k) = v.key {
        put("key", RawValue::Bytes(Bytes::from(k)));
    }
    if let Some(c) = v.cas {
        put("cas", u64_value(c));
    }
    if let Some(f) = v.flags {
        put("flags", RawValue::Int(i64::from(f)));
    }
    if let Some(t) = v.ttl_remaining {
        put("ttl", RawValue::Int(t));
    }
    if let Some(s) = v.size {
        put("size", u64_value(s));
    }
    if let Some(h) = v.hit_before {
        put("hit_before", RawValue::Bool(h));
    }
    if let Some(l) = v.last_accessed {
        put("last_accessed", u64_value(l));
    }
    if let Some(o) = v.opaque_token {
        put("opaque", RawValue::Bytes(Bytes::from(o)));
    }
    if let Some(x) = v.is_stale {
        put("stale", RawValue::Bool(x));
    }
    if let Some(w) = v.is_recache_winner {
        put("win", RawValue::Bool(w));
    }
    RawValue::Map(m)
}

fn u64_value(n: u64) -> RawValue {
    i64::try_from(n)
        .map(RawValue::Int)
        .unwrap_or_else(|_| RawValue::Text(n.to_string()))
}

/// Meta status codes that are ordinary outcomes, as text (`NS`, `EX`, `NF`).
fn outcome(e: ClientError) -> Result<RawValue, McError> {
    match e {
        ClientError::Protocol(Status::NotStored) => Ok(text("NS")),
        ClientError::Protocol(Status::Exists) => Ok(text("EX")),
        ClientError::Protocol(Status::NotFound) => Ok(text("NF")),
        e => Err(e.into()),
    }
}

fn meta_answer(
    r: Result<Option<MetaValue>, ClientError>,
    none: RawValue,
) -> Result<RawValue, McError> {
    match r {
        Ok(Some(v)) => Ok(meta_map(v)),
        Ok(None) => Ok(none),
        Err(e) => outcome(e),
    }
}

/// Runs `command` with `args`; see the crate docs for the table of commands.
pub(crate) async fn run(
    backend: &MemcachedBackend,
    deadline: Option<Deadline>,
    command: &str,
    args: &[RawValue],
) -> Result<RawValue> {
    let cmd = command.to_ascii_lowercase();
    match cmd.as_str() {
        "version" | "stats" | "flush_all" => return every_server(backend, deadline, &cmd).await,
        "get" | "set" | "add" | "delete" | "incr" | "decr" | "mg" | "ms" | "md" | "ma" => {}
        _ => {
            return Err(Error::invalid_argument(format!(
                "unknown memcached raw command {command:?}; known: {COMMANDS}"
            )));
        }
    }
    need(args, 1, &format!("{cmd} <key> …"))?;
    let key = arg_bytes(&args[0])?;
    let server = backend.raw_server(&key);
    match cmd.as_str() {
        "get" => {
            if args.len() == 1 {
                return backend
                    .raw_timed(deadline, server, async {
                        let mut c = server.conn().await?;
                        Ok(match c.get(&key).await? {
                            Some(v) => RawValue::Bytes(Bytes::from(v.data.unwrap_or_default())),
                            None => RawValue::Nil,
                        })
                    })
                    .await;
            }
            // several keys: one `get` per key, answers in order (keys may live on different
            // servers)
            let keys = args.iter().map(arg_bytes).collect::<Result<Vec<_>>>()?;
            let calls = keys.iter().map(|k| {
                let server = backend.raw_server(k);
                backend.raw_timed(deadline, server, async move {
                    let mut c = server.conn().await?;
                    Ok(match c.get(k).await? {
                        Some(v) => RawValue::Bytes(Bytes::from(v.data.unwrap_or_default())),
                        None => RawValue::Nil,
                    })
                })
            });
            let answers = join_all(calls)
                .await
                .into_iter()
                .collect::<Result<Vec<_>>>()?;
            Ok(RawValue::Array(answers))
        }
        "set" | "add" => {
            need(args, 2, &format!("{cmd} <key> <value> [exptime]"))?;
            let value = arg_bytes(&args[1])?;
            let exptime = args.get(2).map(|t| arg_i64(t, "exptime")).transpose()?;
            let add = cmd == "add";
            backend
                .raw_timed(deadline, server, async {
                    let mut c = server.conn().await?;
                    let r = if add {
                        c.add(&key, value.as_slice(), exptime, None).await
                    } else {
                        c.set(&key, value.as_slice(), exptime, None).await
                    };
                    match r {
                        Ok(()) => Ok(text("STORED")),
                        Err(ClientError::Protocol(Status::NotStored)) => Ok(text("NOT_STORED")),
                        Err(e) => Err(e.into()),
                    }
                })
                .await
        }
        "delete" => {
            backend
                .raw_timed(deadline, server, async {
                    let mut c = server.conn().await?;
                    match c.delete(&key).await {
                        Ok(()) => Ok(text("DELETED")),
                        Err(ClientError::Protocol(Status::NotFound)) => Ok(text("NOT_FOUND")),
                        Err(e) => Err(e.into()),
                    }
                })
                .await
        }
        "incr" | "decr" => {
            need(args, 2, &format!("{cmd} <key> <amount>"))?;
            let amount = arg_u64(&args[1], "amount")?;
            let incr = cmd == "incr";
            backend
                .raw_timed(deadline, server, async {
                    let mut c = server.conn().await?;
                    let r = if incr {
                        c.increment(&key, amount).await
                    } else {
                        c.decrement(&key, amount).await
                    };
                    match r {
                        Ok(n) => Ok(u64_value(n)),
                        Err(ClientError::Protocol(Status::NotFound)) => Ok(RawValue::Nil),
                        Err(e) => Err(e.into()),
                    }
                })
                .await
        }
        "mg" | "md" | "ma" => {
            let flags = args[1..].iter().map(arg_text).collect::<Result<Vec<_>>>()?;
            let decrement = cmd == "ma" && flags.iter().any(|f| f == "MD" || f == "M-");
            let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
            let flags = (!flags.is_empty()).then_some(flags.as_slice());
            backend
                .raw_timed(deadline, server, async {
                    let mut c = server.conn().await?;
                    match cmd.as_str() {
                        "mg" => {
                            meta_answer(c.meta_get(&key, false, None, flags).await, RawValue::Nil)
                        }
                        "md" => {
                            meta_answer(c.meta_delete(&key, false, None, flags).await, text("HD"))
                        }
                        _ if decrement => meta_answer(
                            c.meta_decrement(&key, false, None, None, flags).await,
                            text("HD"),
                        ),
                        _ => meta_answer(
                            c.meta_increment(&key, false, None, None, flags).await,
                            text("HD"),
                        ),
                    }
                })
                .await
        }
        "ms" => {
            need(args, 2, "ms <key> <value> [flags…]")?;
            let value = arg_bytes(&args[1])?;
            let flags = args[2..].iter().map(arg_text).collect::<Result<Vec<_>>>()?;
            let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
            let flags = (!flags.is_empty()).then_some(flags.as_slice());
            backend
                .raw_timed(deadline, server, async {
                    let mut c = server.conn().await?;
                    meta_answer(
                        c.meta_set(&key, value.as_slice(), false, None, flags).await,
                        text("HD"),
                    )
                })
                .await
        }
        _ => Err(Error::invalid_argument(format!(
            "unknown memcached raw command {command:?}; known: {COMMANDS}"
        ))),
    }
}

/// `version`, `stats` or `flush_all` on every server: a map from address to answer.
async fn every_server(
    backend: &MemcachedBackend,
    deadline: Option<Deadline>,
    cmd: &str,
) -> Result<RawValue> {
    let calls = backend
        .raw_servers()
        .iter()
        .map(|server: &Server| async move {
            let answer = backend
                .raw_timed(deadline, server, async {
                    let mut c = server.conn().await?;
                    Ok(match cmd {
                        "version" => RawValue::Text(c.version().await?.trim_end().to_owned()),
                        "stats" => {
                            let mut stats: Vec<(String, String)> =
                                c.stats().await?.into_iter().collect();
                            stats.sort();
                            RawValue::Map(
                                stats
                                    .into_iter()
                                    .map(|(k, v)| (RawValue::Text(k), RawValue::Text(v)))
                                    .collect(),
                            )
                        }
                        _ => {
                            c.flush_all().await?;
                            text("OK")
                        }
                    })
                })
                .await?;
            Ok::<_, Error>((RawValue::Text(server.address().to_owned()), answer))
        });
    let answers = join_all(calls)
        .await
        .into_iter()
        .collect::<Result<Vec<_>>>()?;
    Ok(RawValue::Map(answers))
}
