//! One process of the clear race (`clear_processes.rs`): `clear_race_worker <redis|memcached>
//! <url> <namespace> <process> <start_ms> <duration_ms> <clear_every_ms>` waits until the wall
//! clock reads `start_ms`, runs [`clear_race::race`] for `duration_ms` on a cache of
//! `namespace` over the backend of `url` (its generation options included), and prints its
//! events, one per line.

use std::time::Duration;

use cache_core::{Cache, RawBytes};
use stratacache_tests::backends::{self, Kind, Setup};
use stratacache_tests::clear_race::{self, Plan};
use stratacache_tests::workers;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [
        _,
        kind,
        url,
        namespace,
        process,
        start_ms,
        duration_ms,
        clear_every_ms,
    ] = &args[..]
    else {
        eprintln!(
            "usage: clear_race_worker <redis|memcached> <url> <namespace> <process> <start_ms> \
             <duration_ms> <clear_every_ms>"
        );
        std::process::exit(2);
    };
    let kind = Kind::from_name(kind).unwrap_or_else(|| panic!("unknown backend {kind}"));
    let number = |s: &str| {
        s.parse::<u64>()
            .unwrap_or_else(|_| panic!("{s} is not a number"))
    };
    let backend = backends::connect(kind, url, &kind.address_of(url), &Setup::pool(2)).await;
    let cache = Cache::builder(backend)
        .namespace(namespace.clone())
        .serializer(RawBytes)
        .timeout(Duration::from_secs(5))
        .build();
    workers::sleep_until_unix_ms(number(start_ms)).await;
    let plan = Plan {
        process: u32::try_from(number(process)).expect("a process number"),
        duration: Duration::from_millis(number(duration_ms)),
        clear_every: Duration::from_millis(number(clear_every_ms)),
    };
    for event in clear_race::race(cache, plan).await {
        println!("{event}");
    }
}
