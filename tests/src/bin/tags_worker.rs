//! One process of the cross-process tag test: `tags_worker <redis|memcached> <url>
//! <namespace> <reader|invalidator> <trials> <refresh_ms>`.
//!
//! - The **reader** (a cache with tags and a refresh of `refresh_ms`), for each trial `i`,
//!   writes `e{i}` with tags `t{i}` and `common`, and `k{i}` with tag `keep{i}`; reads both
//!   (so it trusts the tags' times it read for `refresh_ms`); signals `ready{i}`; then reads
//!   `e{i}` every millisecond until it misses (at most 10 s). Prints
//!   `trial=i last_hit=ms miss_end=ms kept=0|1`: when the last read that hit started, when
//!   the first read that missed ended (0: none did), and whether `k{i}` still hit after.
//! - The **invalidator**, for each trial, waits for `ready{i}`, lets a varying share of the
//!   refresh pass, invalidates `t{i}` and prints `trial=i inv_start=ms inv_end=ms`.
//!
//! Times are wall-clock milliseconds since the epoch; both processes run on one machine.

use std::time::Duration;

use cache_core::{Cache, Tags};
use stratacache_tests::backends::{self, Kind, Setup};
use stratacache_tests::workers::unix_ms;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, kind, url, namespace, role, trials, refresh_ms] = &args[..] else {
        eprintln!(
            "usage: tags_worker <redis|memcached> <url> <namespace> <reader|invalidator> \
             <trials> <refresh_ms>"
        );
        std::process::exit(2);
    };
    let kind = Kind::from_name(kind).unwrap_or_else(|| panic!("unknown backend {kind}"));
    let trials: u64 = trials.parse().expect("a trial count");
    let refresh = Duration::from_millis(refresh_ms.parse().expect("a refresh in ms"));
    let backend = backends::connect(kind, url, &kind.address_of(url), &Setup::pool(2)).await;
    let cache = Cache::builder(backend)
        .namespace(namespace.clone())
        .timeout(Duration::from_secs(5))
        .tags(Tags::new().refresh(refresh))
        .build();
    match role.as_str() {
        "reader" => reader(&cache, trials).await,
        "invalidator" => invalidator(&cache, trials, refresh).await,
        other => panic!("unknown role {other}"),
    }
}

async fn reader(cache: &Cache, trials: u64) {
    for i in 0..trials {
        let (entry, kept) = (format!("e{i}"), format!("k{i}"));
        cache
            .with_tags([format!("t{i}"), "common".to_owned()])
            .set(&entry, &i)
            .await
            .expect("write the tagged entry");
        cache
            .with_tags([format!("keep{i}")])
            .set(&kept, &i)
            .await
            .expect("write the other entry");
        assert_eq!(cache.get::<u64>(&entry).await.expect("read"), Some(i));
        assert_eq!(cache.get::<u64>(&kept).await.expect("read"), Some(i));
        cache
            .set(&format!("ready{i}"), &1)
            .await
            .expect("signal ready");
        let (mut last_hit, mut miss_end) = (0, 0);
        let give_up = unix_ms() + 10_000;
        while unix_ms() < give_up {
            let start = unix_ms();
            let got = cache.get::<u64>(&entry).await.expect("read");
            match got {
                Some(v) => {
                    assert_eq!(v, i, "the entry's own value");
                    last_hit = start;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                None => {
                    miss_end = unix_ms();
                    break;
                }
            }
        }
        let kept_hit = cache.get::<u64>(&kept).await.expect("read").is_some();
        println!(
            "trial={i} last_hit={last_hit} miss_end={miss_end} kept={}",
            u8::from(kept_hit)
        );
    }
}

async fn invalidator(cache: &Cache, trials: u64, refresh: Duration) {
    let step = (refresh.as_millis() as u64).max(1);
    for i in 0..trials {
        let ready = format!("ready{i}");
        let give_up = unix_ms() + 30_000;
        while cache.get::<u64>(&ready).await.expect("poll").is_none() {
            assert!(
                unix_ms() < give_up,
                "the reader never got ready for trial {i}"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // invalidate at a different point of the reader's refresh period each trial
        tokio::time::sleep(Duration::from_millis(i * 37 % step)).await;
        let start = unix_ms();
        cache
            .invalidate_tag(&format!("t{i}"))
            .await
            .expect("invalidate");
        let end = unix_ms();
        println!("trial={i} inv_start={start} inv_end={end}");
    }
}
