//! Worker processes of the cross-process scenarios (`lock_processes.rs`,
//! `stampede_processes.rs`): starting them, reading what they print, and starting their work
//! together.
//!
//! A worker is a binary of this package (`src/bin/`), started with its arguments by
//! [`run_workers`]. It prints its results on standard output as lines of `name=value` fields
//! separated by spaces, which [`field`] and [`sum`] read back.

use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Starts one process of `program` per argument list, all at once, waits for every one and
/// returns what each printed on standard output, in the order of `runs`.
///
/// # Panics
/// When a process cannot be started or exits with a failure.
pub fn run_workers(program: &str, runs: &[Vec<String>]) -> Vec<String> {
    let children: Vec<_> = runs
        .iter()
        .map(|args| {
            Command::new(program)
                .args(args)
                .stdout(Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("spawn {program}: {e}"))
        })
        .collect();
    children
        .into_iter()
        .map(|child| {
            let out = child.wait_with_output().expect("a worker ran");
            assert!(out.status.success(), "a worker failed: {:?}", out.status);
            String::from_utf8_lossy(&out.stdout).into_owned()
        })
        .collect()
}

/// The value of the field `name` (`name=value`) of `line`, if it has one.
pub fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    line.split_whitespace().find_map(|f| {
        f.split_once('=')
            .filter(|(n, _)| *n == name)
            .map(|(_, v)| v)
    })
}

/// The sum of the numeric field `name` over every line of every output.
///
/// # Panics
/// When a value of `name` is not a number.
pub fn sum<S: AsRef<str>>(outputs: &[S], name: &str) -> u64 {
    outputs
        .iter()
        .flat_map(|out| out.as_ref().lines())
        .filter_map(|line| field(line, name))
        .map(|n| {
            n.parse::<u64>()
                .unwrap_or_else(|_| panic!("{name}={n} is not a count"))
        })
        .sum()
}

/// Wall-clock time in milliseconds since the Unix epoch: a start instant that several
/// processes on one machine agree on.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Sleeps until the wall clock reads `at_ms` ([`unix_ms`]); returns at once when it is past.
/// The answer is how late it woke: how long after `at_ms` it returned.
pub async fn sleep_until_unix_ms(at_ms: u64) -> Duration {
    let now = unix_ms();
    if at_ms > now {
        tokio::time::sleep(Duration::from_millis(at_ms - now)).await;
    }
    Duration::from_millis(unix_ms().saturating_sub(at_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_read_back() {
        let outputs = [
            "overlaps=0 acquired=12\n",
            "acquired=3 key=a=b\nacquired=5\n",
        ];
        assert_eq!(field(outputs[1], "key"), Some("a=b"));
        assert_eq!(field(outputs[0], "key"), None);
        assert_eq!(sum(&outputs, "acquired"), 20);
        assert_eq!(sum(&outputs, "overlaps"), 0);
    }
}
