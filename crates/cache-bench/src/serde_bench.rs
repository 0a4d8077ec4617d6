//! Serializer size and speed: one typical record through `Json`, `PythonJson` (cache-core),
//! `MsgPack` and `Cbor` (cache-serde); a larger document through `Json` and `MsgPack` with and
//! without `Compressed` (zstd, lz4).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Instant;

use cache_core::{Json, PythonJson, Serializer};
use cache_serde::{Cbor, Codec, Compressed, MsgPack};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::chart::{Bar, Group};
use crate::harness::{Stats, machine};

/// A typical cached record: a user profile with nested and optional fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Profile {
    id: u64,
    username: String,
    email: String,
    display_name: Option<String>,
    active: bool,
    karma: i64,
    score: f64,
    created_at: u64,
    roles: Vec<String>,
    address: Address,
    settings: BTreeMap<String, String>,
    recent_ids: Vec<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Address {
    street: String,
    city: String,
    postcode: String,
    country: String,
}

fn profile() -> Profile {
    Profile {
        id: 1_234_567,
        username: "ada.lovelace".into(),
        email: "ada@example.com".into(),
        display_name: Some("Ada Lovelace — Analytical Engine".into()),
        active: true,
        karma: -12,
        score: 4.75,
        created_at: 1_700_000_000,
        roles: vec!["admin".into(), "editor".into(), "billing".into()],
        address: Address {
            street: "12 St James's Square".into(),
            city: "London".into(),
            postcode: "SW1Y 4JH".into(),
            country: "GB".into(),
        },
        settings: [
            ("theme", "dark"),
            ("lang", "en-GB"),
            ("tz", "Europe/London"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect(),
        recent_ids: (0..16).map(|i| 1000 + i * 37).collect(),
    }
}

#[derive(Clone, Copy)]
enum Format {
    Json,
    PythonJson,
    MsgPack,
    Cbor,
}

impl Format {
    const ALL: [Format; 4] = [
        Format::Json,
        Format::PythonJson,
        Format::MsgPack,
        Format::Cbor,
    ];

    fn name(self) -> &'static str {
        match self {
            Format::Json => "Json",
            Format::PythonJson => "PythonJson",
            Format::MsgPack => "MsgPack",
            Format::Cbor => "Cbor",
        }
    }

    /// (encoded size, encode ns/op, decode ns/op) over `n` iterations.
    fn measure(self, v: &Profile, n: usize) -> (usize, f64, f64) {
        match self {
            Format::Json => measure(&Json, v, n),
            Format::PythonJson => measure(&PythonJson, v, n),
            Format::MsgPack => measure(&MsgPack, v, n),
            Format::Cbor => measure(&Cbor, v, n),
        }
    }
}

/// A document large enough to be compressed: 20 profiles, about 8 KB of JSON.
fn document() -> Vec<Profile> {
    (0..20u64)
        .map(|i| {
            let mut p = profile();
            p.id += i * 7919;
            p.username = format!("user.{i:04}");
            p.email = format!("user.{i:04}@example.com");
            p.karma = i as i64 * 3 - 17;
            p.recent_ids = (0..16).map(|j| 1000 + (i as u32) * 131 + j * 37).collect();
            p
        })
        .collect()
}

/// The serializers of the compression table.
#[derive(Clone, Copy)]
enum Packed {
    Json,
    JsonZstd,
    JsonLz4,
    MsgPack,
    MsgPackZstd,
    MsgPackLz4,
}

impl Packed {
    const ALL: [Packed; 6] = [
        Packed::Json,
        Packed::JsonZstd,
        Packed::JsonLz4,
        Packed::MsgPack,
        Packed::MsgPackZstd,
        Packed::MsgPackLz4,
    ];

    fn name(self) -> &'static str {
        match self {
            Packed::Json => "Json",
            Packed::JsonZstd => "Compressed::zstd(Json)",
            Packed::JsonLz4 => "Compressed::lz4(Json)",
            Packed::MsgPack => "MsgPack",
            Packed::MsgPackZstd => "Compressed::zstd(MsgPack)",
            Packed::MsgPackLz4 => "Compressed::lz4(MsgPack)",
        }
    }

    fn measure(self, v: &Vec<Profile>, n: usize) -> (usize, f64, f64) {
        match self {
            Packed::Json => measure(&Json, v, n),
            Packed::JsonZstd => measure(&Compressed::new(Json, Codec::ZSTD), v, n),
            Packed::JsonLz4 => measure(&Compressed::new(Json, Codec::Lz4), v, n),
            Packed::MsgPack => measure(&MsgPack, v, n),
            Packed::MsgPackZstd => measure(&Compressed::new(MsgPack, Codec::ZSTD), v, n),
            Packed::MsgPackLz4 => measure(&Compressed::new(MsgPack, Codec::Lz4), v, n),
        }
    }
}

fn measure<S, V>(s: &S, v: &V, n: usize) -> (usize, f64, f64)
where
    S: Serializer,
    V: Serialize + DeserializeOwned,
{
    let bytes = s.encode(v).expect("encodes");
    let start = Instant::now();
    for _ in 0..n {
        std::hint::black_box(s.encode(std::hint::black_box(v)).expect("encodes"));
    }
    let enc = start.elapsed().as_nanos() as f64 / n as f64;
    let start = Instant::now();
    for _ in 0..n {
        let back: V = s
            .decode(std::hint::black_box(&bytes))
            .expect("decodes its own bytes");
        std::hint::black_box(back);
    }
    let dec = start.elapsed().as_nanos() as f64 / n as f64;
    (bytes.len(), enc, dec)
}

/// The serializer section and its chart.
pub struct Section {
    /// The markdown.
    pub body: String,
    /// Encode and decode times per format.
    pub groups: Vec<Group>,
}

/// Runs `rounds` interleaved rounds of `n` encodes and `n` decodes per format.
pub fn run(rounds: usize, n: usize) -> Section {
    let v = profile();
    let mut sizes = [0usize; 4];
    let mut enc: Vec<Vec<f64>> = vec![Vec::new(); 4];
    let mut dec: Vec<Vec<f64>> = vec![Vec::new(); 4];
    // warm-up
    for f in Format::ALL {
        f.measure(&v, n / 10 + 1);
    }
    for round in 0..rounds {
        for i in 0..Format::ALL.len() {
            let j = (i + round) % Format::ALL.len();
            let (size, e, d) = Format::ALL[j].measure(&v, n);
            sizes[j] = size;
            enc[j].push(e);
            dec[j].push(d);
        }
    }
    let json_size = sizes[0] as f64;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "## Serializers\n\nCommand: `cargo x bench serde`. Machine: {}.\n\nOne typical record \
         (a user profile: 12 fields, a nested address, an optional string, a 3-entry map, 3 \
         roles, 16 ids) encoded and decoded through each serializer's `Serializer` impl, {n} \
         times per figure, {rounds} interleaved rounds; median (min – max) ns per operation. \
         `PythonJson` writes what Python's `json.dumps` writes (aiocache's `JsonSerializer`).\n\n\
         | serializer | bytes | vs Json size | encode ns/op | decode ns/op |\n|---|---|---|---|---|",
        machine()
    );
    let mut groups = Vec::new();
    for (i, f) in Format::ALL.iter().enumerate() {
        let e = Stats::of(&enc[i]);
        let d = Stats::of(&dec[i]);
        out.push_str(&size_time_row(f.name(), sizes[i], json_size, e, d));
        let bar = |series: &str, s: Stats| Bar {
            series: series.into(),
            median: s.median,
            min: s.min,
            max: s.max,
        };
        groups.push(Group {
            label: format!("{} ({} B)", f.name(), sizes[i]),
            bars: vec![bar("encode", e), bar("decode", d)],
        });
    }
    out.push_str("\n![Serializer time per operation](img/serde.svg)\n");
    out.push_str(&compression(rounds, (n / 10).max(1)));
    Section { body: out, groups }
}

/// One row of a serializer table: name, size, size against Json, encode and decode times.
fn size_time_row(name: &str, size: usize, json_size: f64, e: Stats, d: Stats) -> String {
    format!(
        "| {name} | {size} | {:.2}× | {:.0} ({:.0} – {:.0}) | {:.0} ({:.0} – {:.0}) |\n",
        size as f64 / json_size,
        e.median,
        e.min,
        e.max,
        d.median,
        d.min,
        d.max
    )
}

/// The compression table: a larger document through `Json` and `MsgPack`, alone and wrapped in
/// `Compressed` with each codec (default threshold and level).
fn compression(rounds: usize, n: usize) -> String {
    let v = document();
    let count = Packed::ALL.len();
    let mut sizes = vec![0usize; count];
    let mut enc: Vec<Vec<f64>> = vec![Vec::new(); count];
    let mut dec: Vec<Vec<f64>> = vec![Vec::new(); count];
    for f in Packed::ALL {
        f.measure(&v, n / 10 + 1);
    }
    for round in 0..rounds {
        for i in 0..count {
            let j = (i + round) % count;
            let (size, e, d) = Packed::ALL[j].measure(&v, n);
            sizes[j] = size;
            enc[j].push(e);
            dec[j].push(d);
        }
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n### Compression\n\nA larger document (20 such profiles with distinct ids, names and \
         lists) through `Json` and `MsgPack`, alone and wrapped in `Compressed` (zstd at level \
         3, lz4; default 1 KiB threshold), {n} times per figure, {rounds} interleaved rounds; \
         median (min – max) ns per operation. Sizes include the frame header.\n\n\
         | serializer | bytes | vs Json size | encode ns/op | decode ns/op |\n|---|---|---|---|---|"
    );
    let json_size = sizes[0] as f64;
    for (i, f) in Packed::ALL.iter().enumerate() {
        let e = Stats::of(&enc[i]);
        let d = Stats::of(&dec[i]);
        out.push_str(&size_time_row(f.name(), sizes[i], json_size, e, d));
    }
    out
}
