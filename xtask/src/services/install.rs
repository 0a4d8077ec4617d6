//! Installing the servers' programs: Debian's packages with apt-get when running as root,
//! otherwise an error that says how to get them.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};

use cache_test_fixtures::{find_program, is_root};

use super::table::Service;
use crate::util::{self, Failure, Result};

static APT_UPDATED: AtomicBool = AtomicBool::new(false);

/// Makes sure the programs of `services` are installed: as root on a Debian-like system they
/// are installed with apt-get, otherwise the error says how to get them.
pub(super) fn ensure_installed(services: &[&Service]) -> Result {
    let missing_in = |svc: &Service| -> Vec<&'static str> {
        svc.kind
            .required_programs()
            .iter()
            .copied()
            .filter(|p| find_program(p).is_none())
            .collect()
    };
    let mut missing: Vec<&str> = Vec::new();
    let mut packages: Vec<&str> = Vec::new();
    for svc in services {
        let programs = missing_in(svc);
        if !programs.is_empty() {
            missing.extend(programs);
            packages.extend(svc.packages);
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let missing_words = util::join_words(&missing);
    if !(is_root() && find_program("apt-get").is_some()) {
        let how = if find_program("apt-get").is_some() {
            format!("sudo apt-get install -y {}", packages.join(" "))
        } else {
            "your package manager (e.g. `brew install redis memcached`)".to_owned()
        };
        return Err(Failure::new(format!(
            "{missing_words} not found. Install them with {how}, or run the same servers \
             in Docker with `docker compose up -d` (docker-compose.yml at the workspace root \
             uses the same ports) and run the tests with the variables from .env.example."
        )));
    }

    println!(
        "{missing_words} not found: installing the Debian packages {}",
        packages.join(" ")
    );
    if !APT_UPDATED.swap(true, Ordering::SeqCst) {
        util::run(apt_get().arg("update"))?;
    }
    util::run(
        apt_get()
            .args(["install", "-y", "--no-install-recommends"])
            .args(&packages),
    )?;
    let still: Vec<&str> = services.iter().flat_map(|s| missing_in(s)).collect();
    if still.is_empty() {
        Ok(())
    } else {
        Err(Failure::new(format!(
            "apt-get installed {} but {} is still not found",
            packages.join(" "),
            util::join_words(&still)
        )))
    }
}

fn apt_get() -> Command {
    let mut cmd = Command::new("apt-get");
    cmd.env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null());
    cmd
}
