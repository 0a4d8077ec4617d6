//! Reads and writes racing `clear()`, and the check of what they saw
//! (`clear_processes.rs`, `generations_worker`).
//!
//! [`race`] runs, in one process, a clearer task (clears now and then), tasks that write and
//! read keys shared with the other processes, and tasks that write a key of their own and
//! read it back. Each event is logged with its wall-clock start and end in microseconds
//! ([`Event`]; one line each). The processes' logs together go to [`check`], which needs no
//! assumption about how the processes interleaved: a write that *ended* before a clear
//! *started* was applied before the clear; a clear that ended before a read started was
//! applied before the read. From those orders alone:
//!
//! - **stale read**: a read returned a value whose write ended before some clear started,
//!   while that clear ended more than `bound` before the read started;
//! - **lost write**: a task read its own key back after writing it and got something else,
//!   while no clear started before the read ended and ended (plus `bound`) after the write
//!   started.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use cache_core::{Cache, RawBytes};

/// Keys shared by every process.
const SHARED_KEYS: u64 = 8;
/// Tasks on shared keys, and tasks on keys of their own, per process.
const SHARED_TASKS: u64 = 3;
const OWN_TASKS: u64 = 2;

/// Wall-clock microseconds since the Unix epoch (one clock for every process of the machine).
pub fn unix_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// One logged operation, with its wall-clock start and end (µs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `set(key, id)`.
    Write {
        /// The key.
        key: String,
        /// The value: unique across processes.
        id: String,
        /// Start and end.
        span: (u64, u64),
    },
    /// `get(key)`; `own` when the task reads back the key only it writes, right after
    /// writing it.
    Read {
        /// The key.
        key: String,
        /// What it returned.
        got: Option<String>,
        /// Whether it is the read-back of the task's own last write.
        own: bool,
        /// Start and end.
        span: (u64, u64),
    },
    /// `clear()`.
    Clear {
        /// Start and end.
        span: (u64, u64),
    },
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Write { key, id, span } => write!(f, "W {key} {id} {} {}", span.0, span.1),
            Event::Read {
                key,
                got,
                own,
                span,
            } => write!(
                f,
                "R {key} {} {} {} {}",
                got.as_deref().unwrap_or("-"),
                u8::from(*own),
                span.0,
                span.1
            ),
            Event::Clear { span } => write!(f, "C {} {}", span.0, span.1),
        }
    }
}

impl Event {
    /// Reads back a line written by [`Display`](fmt::Display); `None` for other lines.
    pub fn parse(line: &str) -> Option<Event> {
        let f: Vec<&str> = line.split_whitespace().collect();
        let n = |s: &str| s.parse::<u64>().ok();
        match f[..] {
            ["W", key, id, a, b] => Some(Event::Write {
                key: key.to_owned(),
                id: id.to_owned(),
                span: (n(a)?, n(b)?),
            }),
            ["R", key, got, own, a, b] => Some(Event::Read {
                key: key.to_owned(),
                got: (got != "-").then(|| got.to_owned()),
                own: own == "1",
                span: (n(a)?, n(b)?),
            }),
            ["C", a, b] => Some(Event::Clear {
                span: (n(a)?, n(b)?),
            }),
            _ => None,
        }
    }
}

/// How [`race`] runs.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// This process's number (part of every value it writes and of its own keys).
    pub process: u32,
    /// How long the tasks run.
    pub duration: Duration,
    /// The clearer's pause between two clears: drawn between this and twice this.
    pub clear_every: Duration,
}

/// Runs the race of `plan` on `cache` and returns its events.
///
/// # Panics
/// When a command fails: the race expects a healthy server.
pub async fn race(cache: Cache<RawBytes>, plan: Plan) -> Vec<Event> {
    let end = tokio::time::Instant::now() + plan.duration;
    let seq = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    {
        let cache = cache.clone();
        tasks.spawn(async move {
            let mut log = Vec::new();
            let mut rng = plan.process as u64 * 7919 + 1;
            while tokio::time::Instant::now() < end {
                rng = rng.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                let pause = plan.clear_every.as_micros() as u64;
                let pause = pause + (rng >> 33) % pause.max(1);
                tokio::time::sleep(Duration::from_micros(pause)).await;
                let start = unix_us();
                cache.clear().await.expect("clear");
                log.push(Event::Clear {
                    span: (start, unix_us()),
                });
            }
            log
        });
    }
    for t in 0..SHARED_TASKS + OWN_TASKS {
        let cache = cache.clone();
        let seq = seq.clone();
        tasks.spawn(async move {
            let mut log = Vec::new();
            let own_key = format!("own-{}-{t}", plan.process);
            let mut i = t;
            while tokio::time::Instant::now() < end {
                i += 1;
                let id = format!("p{}.{}", plan.process, seq.fetch_add(1, Ordering::Relaxed));
                let key = if t < SHARED_TASKS {
                    format!("shared-{}", i % SHARED_KEYS)
                } else {
                    own_key.clone()
                };
                let start = unix_us();
                cache
                    .set(&key, &Bytes::from(id.clone().into_bytes()))
                    .await
                    .expect("set");
                log.push(Event::Write {
                    key: key.clone(),
                    id,
                    span: (start, unix_us()),
                });
                let (key, own) = if t < SHARED_TASKS {
                    (format!("shared-{}", (i * 5 + 3) % SHARED_KEYS), false)
                } else {
                    (key, true)
                };
                let start = unix_us();
                let got = cache.get::<Bytes>(&key).await.expect("get");
                log.push(Event::Read {
                    key,
                    got: got.map(|b| String::from_utf8_lossy(&b).into_owned()),
                    own,
                    span: (start, unix_us()),
                });
                // an in-process backend never waits: let the clearer run
                tokio::task::yield_now().await;
            }
            log
        });
    }
    let mut events = Vec::new();
    while let Some(done) = tasks.join_next().await {
        events.extend(done.expect("a race task"));
    }
    events
}

/// A start and an end, wall-clock µs.
type Span = (u64, u64);

/// What [`check`] found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Clears made.
    pub clears: usize,
    /// Reads checked.
    pub reads: usize,
    /// Reads made after a clear had ended (more than `bound` before) that followed a write of
    /// their key: the reads that could have returned a cleared value.
    pub reads_at_risk: usize,
    /// Read-backs of a task's own write with no clear in the way: the reads that must see
    /// that write.
    pub read_backs: usize,
    /// Stale reads (see the module docs), with a description of each (at most 10 kept).
    pub stale: Vec<String>,
    /// How many stale reads there were.
    pub stale_count: usize,
    /// Lost writes (see the module docs), with a description of each (at most 10 kept).
    pub lost: Vec<String>,
    /// How many lost writes there were.
    pub lost_count: usize,
}

/// Checks the events of every process together, with `bound` the time after a clear returned
/// within which a process may still see the old generation (0 where every command reads the
/// generation).
pub fn check(events: &[Event], bound: Duration) -> Verdict {
    let bound = bound.as_micros() as u64;
    let mut clears: Vec<(u64, u64)> = events
        .iter()
        .filter_map(|e| match e {
            Event::Clear { span } => Some(*span),
            _ => None,
        })
        .collect();
    clears.sort_unstable();
    // the least end (+ bound) of the clears starting at or after index i
    let mut least_end_from = vec![u64::MAX; clears.len() + 1];
    for i in (0..clears.len()).rev() {
        least_end_from[i] = least_end_from[i + 1].min(clears[i].1.saturating_add(bound));
    }
    // does a clear start after `t` and end (+ bound) before `before`?
    let cleared_between = |t: u64, before: u64| {
        let i = clears.partition_point(|c| c.0 <= t);
        least_end_from[i] < before
    };
    let writes: HashMap<&str, (u64, u64)> = events
        .iter()
        .filter_map(|e| match e {
            Event::Write { id, span, .. } => Some((id.as_str(), *span)),
            _ => None,
        })
        .collect();
    let mut first_write: HashMap<&str, u64> = HashMap::new();
    for e in events {
        if let Event::Write { key, span, .. } = e {
            let t = first_write.entry(key.as_str()).or_insert(span.1);
            *t = (*t).min(span.1);
        }
    }
    // each task's own writes, by key, in order
    let mut own_writes: HashMap<&str, Vec<(&str, Span)>> = HashMap::new();
    for e in events {
        if let Event::Write { key, id, span } = e
            && key.starts_with("own-")
        {
            own_writes
                .entry(key.as_str())
                .or_default()
                .push((id, *span));
        }
    }
    for w in own_writes.values_mut() {
        w.sort_by_key(|(_, span)| span.0);
    }
    let mut v = Verdict {
        clears: clears.len(),
        ..Verdict::default()
    };
    for e in events {
        let Event::Read {
            key,
            got,
            own,
            span,
        } = e
        else {
            continue;
        };
        v.reads += 1;
        if first_write
            .get(key.as_str())
            .is_some_and(|&t| cleared_between(t, span.0))
        {
            v.reads_at_risk += 1;
        }
        if let Some(id) = got
            && let Some(&written) = writes.get(id.as_str())
            && cleared_between(written.1, span.0)
        {
            v.stale_count += 1;
            if v.stale.len() < 10 {
                v.stale.push(format!(
                    "read of {key} at {}..{} returned {id}, written at {}..{}, before a clear \
                     that ended before the read",
                    span.0, span.1, written.0, written.1
                ));
            }
        }
        if *own {
            // the task's last write of this key before the read
            // (one task writes the key, one write at a time: sorted by start and by end)
            let Some(last) = own_writes.get(key.as_str()).and_then(|ws| {
                let before = ws.partition_point(|(_, w)| w.1 <= span.0);
                before.checked_sub(1).map(|i| ws[i])
            }) else {
                continue;
            };
            let (id, w) = last;
            let i = clears.partition_point(|c| c.0 < span.1);
            let in_the_way = clears[..i].iter().any(|c| c.1.saturating_add(bound) > w.0);
            if in_the_way {
                continue;
            }
            v.read_backs += 1;
            if got.as_deref() != Some(id) {
                v.lost_count += 1;
                if v.lost.len() < 10 {
                    v.lost.push(format!(
                        "read-back of {key} at {}..{} returned {got:?}, not {id} written at \
                         {}..{} with no clear in the way",
                        span.0, span.1, w.0, w.1
                    ));
                }
            }
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(key: &str, id: &str, a: u64, b: u64) -> Event {
        Event::Write {
            key: key.into(),
            id: id.into(),
            span: (a, b),
        }
    }

    fn r(key: &str, got: Option<&str>, own: bool, a: u64, b: u64) -> Event {
        Event::Read {
            key: key.into(),
            got: got.map(Into::into),
            own,
            span: (a, b),
        }
    }

    #[test]
    fn events_round_trip_as_lines() {
        for e in [
            w("shared-1", "p0.1", 1, 2),
            r("own-0-3", Some("p0.2"), true, 3, 4),
            r("shared-2", None, false, 5, 6),
            Event::Clear { span: (7, 8) },
        ] {
            assert_eq!(Event::parse(&e.to_string()), Some(e));
        }
    }

    #[test]
    fn a_value_written_before_a_finished_clear_is_stale() {
        let clear = Event::Clear { span: (10, 20) };
        // written before the clear started, read after it ended
        let v = check(
            &[
                w("shared-1", "a", 1, 5),
                clear.clone(),
                r("shared-1", Some("a"), false, 25, 26),
            ],
            Duration::ZERO,
        );
        assert_eq!((v.stale_count, v.reads_at_risk), (1, 1));
        // a write overlapping the clear may survive it
        let v = check(
            &[
                w("shared-1", "a", 1, 12),
                clear.clone(),
                r("shared-1", Some("a"), false, 25, 26),
            ],
            Duration::ZERO,
        );
        assert_eq!(v.stale_count, 0);
        // within the bound after the clear, the old value may still be seen
        let v = check(
            &[
                w("shared-1", "a", 1, 5),
                clear,
                r("shared-1", Some("a"), false, 25, 26),
            ],
            Duration::from_micros(10),
        );
        assert_eq!(v.stale_count, 0);
    }

    #[test]
    fn a_read_back_without_a_clear_in_the_way_must_see_the_write() {
        let v = check(
            &[w("own-0-3", "a", 1, 2), r("own-0-3", None, true, 3, 4)],
            Duration::ZERO,
        );
        assert_eq!((v.lost_count, v.read_backs), (1, 1));
        let v = check(
            &[
                w("own-0-3", "a", 1, 2),
                Event::Clear { span: (2, 3) },
                r("own-0-3", None, true, 3, 4),
            ],
            Duration::ZERO,
        );
        assert_eq!((v.lost_count, v.read_backs), (0, 0));
        let v = check(
            &[
                Event::Clear { span: (0, 1) },
                w("own-0-3", "a", 2, 3),
                r("own-0-3", Some("a"), true, 3, 4),
            ],
            Duration::ZERO,
        );
        assert_eq!((v.lost_count, v.read_backs), (0, 1));
    }
}
