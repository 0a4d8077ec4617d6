//! Finding programs, and what a test does when its server's binary is missing.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use crate::ServerKind;

/// Directories searched after `PATH`: the sbin directories (not always on `PATH`), the usual
/// bin directories and Homebrew's.
const EXTRA_DIRS: [&str; 6] = [
    "/usr/local/sbin",
    "/usr/sbin",
    "/sbin",
    "/usr/local/bin",
    "/usr/bin",
    "/opt/homebrew/bin",
];

/// The first executable file called `name` on `PATH`, then in `/usr/local/sbin`, `/usr/sbin`,
/// `/sbin`, `/usr/local/bin`, `/usr/bin` and `/opt/homebrew/bin`.
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(EXTRA_DIRS.map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    let Ok(meta) = fs::metadata(path) else {
        return false;
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        meta.is_file() && meta.permissions().mode() & 0o111 != 0
    }
    #[cfg(not(unix))]
    {
        meta.is_file()
    }
}

/// The server binary of `kind` for a test's private server: the path in
/// [`ServerKind::binary_variable`] (`$REDIS_SERVER`, `$MEMCACHED_BIN`) when set, else
/// [`find_program`] of [`ServerKind::program`].
///
/// Missing: see [`skip_or_fail`] — `None` after a `SKIPPED` line locally.
///
/// # Panics
/// When no binary is found and `CI` is set.
pub fn server_binary(kind: ServerKind) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(kind.binary_variable()) {
        return Some(PathBuf::from(path));
    }
    let found = find_program(kind.program());
    if found.is_none() {
        let (name, var) = (kind.program(), kind.binary_variable());
        skip_or_fail(&format!(
            "{name} is not installed (install it or set {var} to run this test against a \
             private server)"
        ));
    }
    found
}

/// The rule for a test whose server is missing: with `CI` set this panics (a CI run never
/// passes without its server); otherwise it prints one loud `SKIPPED: {why}` line and the
/// caller returns without testing.
///
/// # Panics
/// When `CI` is set.
pub fn skip_or_fail(why: &str) {
    if std::env::var_os("CI").is_some() {
        panic!("{why}, and CI requires this test's server");
    }
    eprintln!("SKIPPED: {why}");
}

/// True when this process runs as root (effective uid 0); memcached then needs `-u root`.
pub fn is_root() -> bool {
    static ROOT: OnceLock<bool> = OnceLock::new();
    *ROOT.get_or_init(|| {
        if let Ok(status) = fs::read_to_string("/proc/self/status")
            && let Some(line) = status.lines().find(|l| l.starts_with("Uid:"))
        {
            // Uid: real effective saved filesystem
            return line.split_whitespace().nth(2) == Some("0");
        }
        Command::new("id")
            .arg("-u")
            .stderr(Stdio::null())
            .output()
            .ok()
            .is_some_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_program_on_path_and_not_a_made_up_one() {
        assert!(find_program("sh").is_some());
        assert!(find_program("no-such-program-for-the-fixtures").is_none());
    }
}
