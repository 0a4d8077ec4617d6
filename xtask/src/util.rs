//! Shared helpers: the error type, running commands and the workspace.

use std::env;
use std::ffi::OsStr;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::OnceLock;

/// Why a task failed, and the exit code `cargo x` ends with.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) message: String,
    pub(crate) code: i32,
}

impl Failure {
    /// A failure with exit code 1.
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            code: 1,
        }
    }

    /// A failure that ends `cargo x` with `code` (usage errors use 2).
    pub(crate) fn with_code(message: impl Into<String>, code: i32) -> Self {
        Self {
            message: message.into(),
            code,
        }
    }
}

pub(crate) type Result<T = ()> = std::result::Result<T, Failure>;

/// The workspace root: the parent of this crate's manifest directory, or what
/// `cargo locate-project --workspace` says if the tree was moved after the build.
pub(crate) fn workspace_root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let compiled = Path::new(env!("CARGO_MANIFEST_DIR"));
        if let Some(parent) = compiled.parent()
            && parent.join("Cargo.toml").is_file()
            && parent.join("xtask").is_dir()
        {
            return parent.to_path_buf();
        }
        let located = Command::new(cargo_program())
            .args(["locate-project", "--workspace", "--message-format", "plain"])
            .stderr(Stdio::inherit())
            .output()
            .ok()
            .filter(|out| out.status.success())
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .map(|manifest| PathBuf::from(manifest.trim()));
        match located.as_deref().and_then(Path::parent) {
            Some(root) => root.to_path_buf(),
            None => env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
        }
    })
}

/// The cargo that runs us (`$CARGO`), so nested commands use the same toolchain.
fn cargo_program() -> PathBuf {
    env::var_os("CARGO").map_or_else(|| PathBuf::from("cargo"), PathBuf::from)
}

/// A `cargo` command that runs in the workspace root.
pub(crate) fn cargo() -> Command {
    let mut cmd = Command::new(cargo_program());
    cmd.current_dir(workspace_root());
    cmd
}

/// True when the `CI` environment variable is set to something other than empty, `0` or `false`.
pub(crate) fn is_ci() -> bool {
    env::var("CI").is_ok_and(|v| !matches!(v.trim(), "" | "0" | "false" | "FALSE" | "False"))
}

/// Prints a step header.
pub(crate) fn header(title: &str) {
    println!("\n== {title} ==");
}

/// Prints `cmd` the way a shell user would type it.
pub(crate) fn print_command(cmd: &Command) {
    println!("$ {}", display_command(cmd));
}

pub(crate) fn display_command(cmd: &Command) -> String {
    let mut parts = Vec::new();
    for (key, value) in cmd.get_envs() {
        if let Some(value) = value {
            parts.push(format!(
                "{}={}",
                key.to_string_lossy(),
                shell_quote(&value.to_string_lossy())
            ));
        }
    }
    let program = cmd.get_program();
    if program == cargo_program().as_os_str() {
        parts.push("cargo".to_owned());
    } else {
        parts.push(shell_quote(&program.to_string_lossy()));
    }
    parts.extend(cmd.get_args().map(|a| shell_quote(&a.to_string_lossy())));
    parts.join(" ")
}

/// Quotes `arg` for display when a shell would need it.
pub(crate) fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./:=,@%+".contains(c));
    if plain {
        arg.to_owned()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

/// Prints and runs `cmd`; a non-zero exit becomes a [`Failure`] carrying its exit code.
pub(crate) fn run(cmd: &mut Command) -> Result {
    print_command(cmd);
    let status = spawn_status(cmd)?;
    check(cmd, status)
}

fn spawn_status(cmd: &mut Command) -> Result<ExitStatus> {
    cmd.status().map_err(|e| {
        let program = cmd.get_program().to_string_lossy().into_owned();
        if e.kind() == io::ErrorKind::NotFound {
            Failure::new(format!(
                "`{program}` not found: is it installed and on PATH?"
            ))
        } else {
            Failure::new(format!("could not run `{program}`: {e}"))
        }
    })
}

fn check(cmd: &Command, status: ExitStatus) -> Result {
    if status.success() {
        return Ok(());
    }
    let code = exit_code(status);
    Err(Failure::with_code(
        format!("`{}` failed ({})", display_command(cmd), describe(status)),
        code,
    ))
}

/// The exit code to propagate for `status` (128 + signal when a signal ended the process).
fn exit_code(status: ExitStatus) -> i32 {
    if let Some(code) = status.code() {
        return code;
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return 128 + signal;
        }
    }
    1
}

fn describe(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        return format!("exit code {code}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return format!("killed by signal {signal}");
        }
    }
    status.to_string()
}

/// How a command run with [`run_with_deadline`] ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Ended {
    Success,
    /// A non-zero exit, described.
    Failed(String),
    /// Still running at the deadline: it was killed.
    TimedOut,
}

/// Prints and runs `cmd`, killing it if it runs past `deadline`. Only a failure to start it
/// is an error; how it ended is the answer.
pub(crate) fn run_with_deadline(cmd: &mut Command, deadline: std::time::Duration) -> Result<Ended> {
    print_command(cmd);
    let mut child = cmd.spawn().map_err(|e| {
        Failure::new(format!(
            "could not run `{}`: {e}",
            cmd.get_program().to_string_lossy()
        ))
    })?;
    let started = std::time::Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(Ended::Success),
            Ok(Some(status)) => return Ok(Ended::Failed(describe(status))),
            Ok(None) if started.elapsed() >= deadline => {
                // Our own child: end it and reap it.
                let _ = child.kill();
                let _ = child.wait();
                return Ok(Ended::TimedOut);
            }
            Ok(None) => std::thread::sleep(std::time::Duration::from_millis(100)),
            Err(e) => return Ok(Ended::Failed(e.to_string())),
        }
    }
}

/// Runs `cmd` silently and reports whether it succeeded.
pub(crate) fn succeeds(cmd: &mut Command) -> bool {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Makes sure `cargo <subcommand>` works, installing `krate` with `cargo install --locked` if not.
pub(crate) fn ensure_cargo_tool(subcommand: &str, krate: &str) -> Result {
    if succeeds(cargo().args([subcommand, "--version"])) {
        return Ok(());
    }
    println!(
        "`cargo {subcommand}` is not installed: installing {krate} (this takes a few minutes)"
    );
    run(cargo().args(["install", krate, "--locked"]))?;
    if succeeds(cargo().args([subcommand, "--version"])) {
        Ok(())
    } else {
        Err(Failure::new(format!(
            "installed {krate}, but `cargo {subcommand}` still does not run: is $HOME/.cargo/bin on PATH?"
        )))
    }
}

/// A path relative to the workspace root when it is inside it, for shorter messages.
pub(crate) fn short_path(path: &Path) -> String {
    path.strip_prefix(workspace_root())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// Joins `items` for a message: `a`, `a and b`, `a, b and c`.
pub(crate) fn join_words<S: AsRef<OsStr>>(items: &[S]) -> String {
    let words: Vec<String> = items
        .iter()
        .map(|s| s.as_ref().to_string_lossy().into_owned())
        .collect();
    match words.as_slice() {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_only_when_needed() {
        assert_eq!(shell_quote("--all-features"), "--all-features");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("-D warnings"), "'-D warnings'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn displays_env_and_args() {
        let mut cmd = Command::new("redis-server");
        cmd.env("A", "b c").args(["--save", ""]);
        assert_eq!(display_command(&cmd), "A='b c' redis-server --save ''");
    }

    #[test]
    fn a_command_past_its_deadline_is_killed() {
        let quick = run_with_deadline(
            Command::new("sh").args(["-c", "exit 0"]),
            std::time::Duration::from_secs(10),
        );
        assert_eq!(quick.unwrap(), Ended::Success);
        let failed = run_with_deadline(
            Command::new("sh").args(["-c", "exit 3"]),
            std::time::Duration::from_secs(10),
        );
        assert_eq!(failed.unwrap(), Ended::Failed("exit code 3".into()));
        let started = std::time::Instant::now();
        let slow = run_with_deadline(
            Command::new("sleep").arg("30"),
            std::time::Duration::from_millis(300),
        );
        assert_eq!(slow.unwrap(), Ended::TimedOut);
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
    }

    #[test]
    fn joins_words() {
        assert_eq!(join_words::<&str>(&[]), "");
        assert_eq!(join_words(&["a"]), "a");
        assert_eq!(join_words(&["a", "b", "c"]), "a, b and c");
    }
}
