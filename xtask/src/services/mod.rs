//! `cargo x services up|down|status`: real servers on loopback, started from the locally
//! installed binaries (Debian's `redis-server` and `memcached` packages), for the backend tests.
//!
//! Every server is one row of [`SERVICES`]. A service may run several processes (one per port);
//! its kind says how to launch one and how to check that it answers. State lives in
//! `target/services/`: `<name>-<port>.pid`, `<name>-<port>.log` and a working directory.
//!
//! The parts: [`table`] (the services and how to launch each kind), [`process`] (starting,
//! probing and stopping server processes), [`install`] (apt-get), [`cluster`] (forming the
//! Redis cluster) and [`guard`] (services held for one task). The server binaries, readiness
//! probes and listen arguments come from the `cache-test-fixtures` package, which the tests'
//! private servers use too.

mod cluster;
mod guard;
mod install;
mod process;
mod table;

use std::fs;
use std::process::Command;

pub(crate) use guard::hold;
pub(crate) use table::{SERVICES, Service};

use cluster::form_cluster;
use install::ensure_installed;
use process::{State, down, occupied, start, wait_ready};
use table::{Kind, state_dir};

use crate::util::{self, Failure, Result};

// ---------------------------------------------------------------------------------------------
// Command line

pub(crate) const USAGE: &str = "\
cargo x services up|down|status [SERVICE...]

    up      start the services (idempotent) and wait until they answer
    down    stop the services started by `up` (idempotent)
    status  show each service, its URL and the variable the tests read it from

Services: all by default, or any of the names below. State: target/services/.";

/// `cargo x services …`
pub(crate) fn cli(args: &[String]) -> Result {
    let Some((action, names)) = args.split_first() else {
        println!("{USAGE}");
        print_table();
        return Ok(());
    };
    match action.as_str() {
        "up" => up(&select(names)?),
        "down" => down(&select(names)?, false),
        "status" => {
            status(&select(names)?);
            Ok(())
        }
        "__guard" => guard::guard(names),
        "help" | "-h" | "--help" => {
            println!("{USAGE}");
            print_table();
            Ok(())
        }
        other => Err(Failure::with_code(
            format!("unknown action `{other}`\n\n{USAGE}"),
            2,
        )),
    }
}

fn print_table() {
    println!();
    for svc in SERVICES {
        println!("    {:<12} {:<30} {}", svc.name, svc.url, svc.env_var);
    }
}

/// The services named in `names` (all of them when empty, or for `all`).
pub(crate) fn select(names: &[String]) -> Result<Vec<&'static Service>> {
    if names.is_empty() || names.iter().any(|n| n == "all") {
        return Ok(SERVICES.iter().collect());
    }
    let mut picked: Vec<&'static Service> = Vec::new();
    for name in names {
        let Some(svc) = SERVICES.iter().find(|s| s.name == name) else {
            let known: Vec<&str> = SERVICES.iter().map(|s| s.name).collect();
            return Err(Failure::with_code(
                format!(
                    "unknown service `{name}` (known: {})",
                    util::join_words(&known)
                ),
                2,
            ));
        };
        if !picked.iter().any(|p| p.name == svc.name) {
            picked.push(svc);
        }
    }
    Ok(picked)
}

/// Starts `services` and waits until each answers; already running ones are fine.
pub(crate) fn up(services: &[&'static Service]) -> Result {
    fs::create_dir_all(state_dir())
        .map_err(|e| Failure::new(format!("could not create {}: {e}", state_dir().display())))?;

    // Refuse a taken port before installing or starting anything.
    let mut to_start: Vec<&Service> = Vec::new();
    for svc in services {
        for &port in svc.ports {
            match svc.state(port) {
                State::Occupied(why) => return Err(occupied(svc, port, &why)),
                State::Stopped => {
                    if !to_start.iter().any(|s| s.name == svc.name) {
                        to_start.push(svc);
                    }
                }
                State::Running(_) | State::Unresponsive(..) | State::External => {}
            }
        }
    }
    ensure_installed(&to_start)?;

    for svc in services {
        for &port in svc.ports {
            let label = svc.label(port);
            match svc.state(port) {
                State::Running(pid) => {
                    println!("{label}: already running on 127.0.0.1:{port} (pid {pid})");
                }
                State::Unresponsive(pid, _) => {
                    println!("{label}: pid {pid} is not answering yet, waiting");
                    wait_ready(svc, port)?;
                    println!("{label}: running on 127.0.0.1:{port} (pid {pid})");
                }
                State::External => println!(
                    "{label}: a {} not started by `cargo x services` already answers on \
                     127.0.0.1:{port} (docker compose?); using it",
                    svc.kind.binary()
                ),
                State::Occupied(why) => return Err(occupied(svc, port, &why)),
                State::Stopped => {
                    start(svc, port)?;
                    let pid = svc
                        .live_pid(port)
                        .map_or_else(|| "pid unknown".to_owned(), |p| format!("pid {p}"));
                    println!("{label}: started on 127.0.0.1:{port} ({pid})");
                }
            }
        }
    }
    for svc in services {
        if svc.kind == Kind::RedisClusterNode {
            form_cluster(svc)?;
        }
    }
    for svc in services {
        println!("{}={}", svc.env_var, svc.url);
    }
    Ok(())
}

fn status(services: &[&'static Service]) {
    for svc in services {
        for &port in svc.ports {
            let state = match svc.state(port) {
                State::Running(pid) => format!("running (pid {pid})"),
                State::Unresponsive(pid, why) => format!("not answering (pid {pid}: {why})"),
                State::External => "running (not started by cargo x)".to_owned(),
                State::Occupied(why) => format!("port taken by another program ({why})"),
                State::Stopped => "stopped".to_owned(),
            };
            println!(
                "{:<12} {:<38} {:<30} {}",
                svc.label(port),
                state,
                svc.url,
                svc.env_var
            );
        }
    }
}

/// Sets each service's URL variable on `cmd`.
pub(crate) fn set_env(cmd: &mut Command, services: &[&'static Service]) {
    for svc in services {
        cmd.env(svc.env_var, svc.url);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selects_by_name() {
        let all = select(&[]).unwrap();
        assert_eq!(all.len(), SERVICES.len());
        let one = select(&["memcached".into(), "memcached".into()]).unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].name, "memcached");
        assert!(select(&["nope".into()]).is_err());
    }
}
