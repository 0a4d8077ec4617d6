//! Property test: random operation sequences against the memory backend and a plain model,
//! comparing every answer, TTLs included. Time is driven by a `ManualClock`, never by sleeps.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use cache_core::{Backend, CallContext, ClearScope, Command, ErrorKind, KeyTtl, OpSet};
use cache_memory::{ManualClock, MemoryBackend};
use proptest::prelude::*;

const KEYS: [&str; 6] = ["a:1", "a:2", "a:10", "b:1", "b:2", "ab:1"];
const VALUES: [&[u8]; 8] = [
    b"5",
    b"-3",
    b"0",
    b"abc",
    b"007",
    b"",
    b"9223372036854775807",
    b"x\r\ny",
];

#[derive(Debug, Clone)]
enum Op {
    Set(usize, usize, Option<u64>),
    Add(usize, usize, Option<u64>),
    Get(usize),
    MultiGet(Vec<usize>),
    MultiSet(Vec<(usize, usize)>, Option<u64>),
    Delete(usize),
    MultiDelete(Vec<usize>),
    Exists(usize),
    Increment(usize, i64),
    Expire(usize, Option<u64>),
    Ttl(usize),
    Cas(usize, Option<usize>, usize, Option<u64>),
    ClearPrefix(&'static str),
    Advance(u64),
}

fn key() -> impl Strategy<Value = usize> {
    0..KEYS.len()
}

fn value() -> impl Strategy<Value = usize> {
    0..VALUES.len()
}

fn ttl() -> impl Strategy<Value = Option<u64>> {
    prop_oneof![Just(None), (1u64..50).prop_map(Some)]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (key(), value(), ttl()).prop_map(|(k, v, t)| Op::Set(k, v, t)),
        1 => (key(), value(), ttl()).prop_map(|(k, v, t)| Op::Add(k, v, t)),
        3 => key().prop_map(Op::Get),
        1 => prop::collection::vec(key(), 0..5).prop_map(Op::MultiGet),
        1 => (prop::collection::vec((key(), value()), 0..4), ttl()).prop_map(|(p, t)| Op::MultiSet(p, t)),
        1 => key().prop_map(Op::Delete),
        1 => prop::collection::vec(key(), 0..4).prop_map(Op::MultiDelete),
        1 => key().prop_map(Op::Exists),
        2 => (key(), prop_oneof![-3i64..4, Just(i64::MAX), Just(i64::MIN), Just(1 << 62)]).prop_map(|(k, d)| Op::Increment(k, d)),
        1 => (key(), ttl()).prop_map(|(k, t)| Op::Expire(k, t)),
        1 => key().prop_map(Op::Ttl),
        1 => (key(), prop::option::of(value()), value(), ttl()).prop_map(|(k, e, n, t)| Op::Cas(k, e, n, t)),
        1 => prop_oneof![Just("a:"), Just("b:"), Just("ab:"), Just("")].prop_map(Op::ClearPrefix),
        2 => (0u64..30).prop_map(Op::Advance),
    ]
}

/// The model: key → (value, absolute expiry in ms).
#[derive(Default)]
struct Model {
    now: u64,
    map: BTreeMap<String, (Vec<u8>, Option<u64>)>,
}

impl Model {
    fn purge(&mut self) {
        let now = self.now;
        self.map.retain(|_, (_, e)| e.is_none_or(|e| now < e));
    }
    fn deadline(&self, ttl: Option<u64>) -> Option<u64> {
        ttl.map(|t| self.now + t)
    }
}

fn canonical(v: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(v).ok()?;
    let digits = s.strip_prefix('-').unwrap_or(s);
    if digits.is_empty()
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || (digits.len() > 1 && digits.starts_with('0'))
        || s == "-0"
    {
        return None;
    }
    s.parse().ok()
}

fn ms(t: Option<u64>) -> Option<Duration> {
    t.map(Duration::from_millis)
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let clock = ManualClock::new();
    let backend = MemoryBackend::new().clock(clock.clone());
    let mut m = Model::default();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        for (step, op) in ops.into_iter().enumerate() {
            m.purge();
            let ctx = format!("step {step}: {op:?}");
            let cx = CallContext::new(Command::Get);
            match op {
                Op::Set(k, v, t) => {
                    backend
                        .set(
                            &cx,
                            KEYS[k],
                            Bytes::from_static(VALUES[v]),
                            OpSet::new(ms(t)),
                        )
                        .await
                        .unwrap();
                    let d = m.deadline(t);
                    m.map.insert(KEYS[k].into(), (VALUES[v].to_vec(), d));
                }
                Op::Add(k, v, t) => {
                    let got = backend
                        .add(
                            &cx,
                            KEYS[k],
                            Bytes::from_static(VALUES[v]),
                            OpSet::new(ms(t)),
                        )
                        .await
                        .unwrap();
                    let want = !m.map.contains_key(KEYS[k]);
                    if want {
                        let d = m.deadline(t);
                        m.map.insert(KEYS[k].into(), (VALUES[v].to_vec(), d));
                    }
                    prop_assert_eq!(got, want, "{}", ctx);
                }
                Op::Get(k) => {
                    let got = backend.get(&cx, KEYS[k]).await.unwrap().map(|b| b.to_vec());
                    prop_assert_eq!(got, m.map.get(KEYS[k]).map(|(v, _)| v.clone()), "{}", ctx);
                }
                Op::MultiGet(ks) => {
                    let names: Vec<String> = ks.iter().map(|&k| KEYS[k].to_owned()).collect();
                    let got: Vec<Option<Vec<u8>>> = backend
                        .multi_get(&cx, &names)
                        .await
                        .unwrap()
                        .into_iter()
                        .map(|o| o.map(|b| b.to_vec()))
                        .collect();
                    let want: Vec<Option<Vec<u8>>> = names
                        .iter()
                        .map(|k| m.map.get(k).map(|(v, _)| v.clone()))
                        .collect();
                    prop_assert_eq!(got, want, "{}", ctx);
                }
                Op::MultiSet(pairs, t) => {
                    let entries = pairs
                        .iter()
                        .map(|&(k, v)| (KEYS[k].to_owned(), Bytes::from_static(VALUES[v])))
                        .collect::<Vec<_>>();
                    backend
                        .multi_set(&cx, &entries, OpSet::new(ms(t)))
                        .await
                        .unwrap();
                    let d = m.deadline(t);
                    for (k, v) in pairs {
                        m.map.insert(KEYS[k].into(), (VALUES[v].to_vec(), d));
                    }
                }
                Op::Delete(k) => {
                    let got = backend.delete(&cx, KEYS[k]).await.unwrap();
                    prop_assert_eq!(got, m.map.remove(KEYS[k]).is_some(), "{}", ctx);
                }
                Op::MultiDelete(ks) => {
                    let mut names: Vec<String> = ks.iter().map(|&k| KEYS[k].to_owned()).collect();
                    names.sort();
                    names.dedup();
                    let got = backend.multi_delete(&cx, &names).await.unwrap();
                    let want = names.iter().filter(|k| m.map.remove(*k).is_some()).count() as u64;
                    prop_assert_eq!(got, want, "{}", ctx);
                }
                Op::Exists(k) => {
                    let got = backend.exists(&cx, KEYS[k]).await.unwrap();
                    prop_assert_eq!(got, m.map.contains_key(KEYS[k]), "{}", ctx);
                }
                Op::Increment(k, delta) => {
                    let got = backend.increment(&cx, KEYS[k], delta).await;
                    let want = match m.map.get(KEYS[k]) {
                        None => Ok((delta, None)),
                        Some((v, e)) => match canonical(v) {
                            None => Err(()),
                            Some(n) => n.checked_add(delta).map(|n| (n, *e)).ok_or(()),
                        },
                    };
                    match (got, want) {
                        (Ok(n), Ok((w, e))) => {
                            prop_assert_eq!(n, w, "{}", ctx);
                            m.map
                                .insert(KEYS[k].into(), (w.to_string().into_bytes(), e));
                        }
                        (Err(err), Err(())) => {
                            prop_assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{}", ctx)
                        }
                        (got, want) => {
                            prop_assert!(false, "{}: got {:?}, want {:?}", ctx, got, want)
                        }
                    }
                }
                Op::Expire(k, t) => {
                    let got = backend.expire(&cx, KEYS[k], ms(t)).await.unwrap();
                    let d = m.deadline(t);
                    let want = match m.map.get_mut(KEYS[k]) {
                        Some((_, e)) => {
                            *e = d;
                            true
                        }
                        None => false,
                    };
                    prop_assert_eq!(got, want, "{}", ctx);
                }
                Op::Ttl(k) => {
                    let got = backend.ttl(&cx, KEYS[k]).await.unwrap();
                    let want = match m.map.get(KEYS[k]) {
                        None => KeyTtl::Missing,
                        Some((_, None)) => KeyTtl::NoExpiry,
                        Some((_, Some(e))) => KeyTtl::Remaining(Duration::from_millis(e - m.now)),
                    };
                    prop_assert_eq!(got, want, "{}", ctx);
                }
                Op::Cas(k, expected, new, t) => {
                    let got = backend
                        .compare_and_set(
                            &cx,
                            KEYS[k],
                            expected.map(|e| Bytes::from_static(VALUES[e])),
                            Bytes::from_static(VALUES[new]),
                            OpSet::new(ms(t)),
                        )
                        .await
                        .unwrap();
                    let current = m.map.get(KEYS[k]).map(|(v, _)| v.as_slice());
                    let want = current == expected.map(|e| VALUES[e]);
                    if want {
                        let d = m.deadline(t);
                        m.map.insert(KEYS[k].into(), (VALUES[new].to_vec(), d));
                    }
                    prop_assert_eq!(got, want, "{}", ctx);
                }
                Op::ClearPrefix(prefix) => {
                    let scope = if prefix.is_empty() {
                        ClearScope::All
                    } else {
                        ClearScope::Namespace {
                            namespace: prefix.trim_end_matches(':'),
                            prefix,
                        }
                    };
                    let got = backend.clear(&cx, scope).await.unwrap();
                    let before = m.map.len();
                    m.map.retain(|k, _| !k.starts_with(prefix));
                    prop_assert_eq!(got, Some((before - m.map.len()) as u64), "{}", ctx);
                }
                Op::Advance(by) => {
                    clock.advance(Duration::from_millis(by));
                    m.now += by;
                }
            }
        }
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 10_000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// 10,000 random sequences per run: the backend answers exactly like the model.
    #[test]
    fn memory_backend_matches_model(ops in prop::collection::vec(op(), 1..40)) {
        run(ops)?;
    }
}
