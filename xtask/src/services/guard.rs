//! Services held for the length of a task (`cargo x test`, `cargo x bench`), and the watcher
//! process that stops them when the task is interrupted.

use std::io::{self, Read};
use std::process::{Child, Command, Stdio};

use super::process::{State, down};
use super::table::Service;
use super::{select, up};
use crate::util::{self, Result};

/// Services started for one task (`cargo x test`, `cargo x bench`). [`Held::release`] or drop
/// stops the ones the task started; services that were already running stay up.
///
/// A watcher process (`cargo x services __guard`, in its own process group so Ctrl-C does not
/// reach it) waits for this process to exit and stops the same services if the task was
/// interrupted before it could.
pub(crate) struct Held {
    owned: Vec<&'static Service>,
    guard: Option<Child>,
    released: bool,
}

/// Starts `services` for a task; see [`Held`].
pub(crate) fn hold(services: &[&'static Service]) -> Result<Held> {
    let mut owned = Vec::new();
    let mut kept = Vec::new();
    for &svc in services {
        let running = svc
            .ports
            .iter()
            .any(|&port| matches!(svc.state(port), State::Running(_) | State::Unresponsive(..)));
        if running {
            kept.push(svc.name);
        } else {
            owned.push(svc);
        }
    }
    if !kept.is_empty() {
        println!(
            "{} already running: left running afterwards",
            util::join_words(&kept)
        );
    }
    let guard = if owned.is_empty() {
        None
    } else {
        match spawn_guard(&owned) {
            Ok(child) => Some(child),
            Err(e) => {
                eprintln!(
                    "warning: could not start the cleanup watcher ({e}); an interrupted run may leave services running"
                );
                None
            }
        }
    };
    let held = Held {
        owned,
        guard,
        released: false,
    };
    up(services)?;
    Ok(held)
}

fn spawn_guard(services: &[&'static Service]) -> io::Result<Child> {
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.args(["services", "__guard"])
        .args(services.iter().map(|s| s.name))
        .stdin(Stdio::piped());
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
    }
    cmd.spawn()
}

/// The watcher: blocks until its parent closes our stdin (which the kernel does when the parent
/// exits, however it exits), then stops the named services if they are still running.
pub(super) fn guard(names: &[String]) -> Result {
    let mut stdin = io::stdin().lock();
    let mut buf = [0u8; 64];
    loop {
        match stdin.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    let services = select(names)?;
    let left: Vec<&'static Service> = services
        .into_iter()
        .filter(|svc| svc.ports.iter().any(|&port| svc.live_pid(port).is_some()))
        .collect();
    if left.is_empty() {
        return Ok(());
    }
    eprintln!("\ninterrupted: stopping the services this run started");
    down(&left, true)
}

impl Held {
    /// Stops the services this task started.
    pub(crate) fn release(mut self) -> Result {
        self.release_now()
    }

    fn release_now(&mut self) -> Result {
        if self.released {
            return Ok(());
        }
        self.released = true;
        let result = if self.owned.is_empty() {
            println!("nothing to stop");
            Ok(())
        } else {
            down(&self.owned, false)
        };
        if let Some(mut guard) = self.guard.take() {
            let _ = guard.kill();
            let _ = guard.wait();
        }
        result
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Err(e) = self.release_now() {
            eprintln!("error: {}", e.message);
        }
    }
}
