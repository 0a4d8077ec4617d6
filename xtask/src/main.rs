//! Project automation for stratacache, run as `cargo x <task>` (an alias in
//! `.cargo/config.toml`). `cargo x help` lists the tasks.

#![forbid(unsafe_code)]

mod fuzz;
mod services;
mod tasks;
mod util;

use std::process::ExitCode;

use util::{Failure, Result};

const USAGE: &str = "\
Usage: cargo x <task> [args]

Tasks:
    test [NEXTEST ARGS]       start the services, run every test (cargo nextest, then the doc
                              tests) with CACHE_TEST_*_URL set, stop the services again
    ci                        fmt, clippy, test, doc, deny, hack: stops at the first failure
    services up|down|status [SERVICE...]
                              redis (127.0.0.1:16379) and memcached (127.0.0.1:21211) from the
                              local binaries; state in target/services/
    bench [WORKLOAD] [--quick] [ARGS]
                              run the cache-bench crate (starts the services unless the only
                              workload is `memory`)
    lint                      cargo fmt --check and clippy -D warnings
    fmt                       format the workspace
    doc                       cargo doc with warnings denied, then each published crate as
                              docs.rs builds it (--cfg docsrs, RUSTC_BOOTSTRAP=1)
    deny                      cargo deny check advisories bans licenses sources; advisories
                              against the current RustSec database, else the copy on this
                              machine, else skipped with a warning
    hack                      cargo hack check --each-feature on every library crate
    fuzz --smoke | TARGET [--time SECS]
                              run the cargo-fuzz targets in fuzz/ (30 s each with --smoke) on
                              stable with RUSTC_BOOTSTRAP=1; not part of `ci` (needs
                              RUSTC_BOOTSTRAP and minutes of CPU); `cargo x fuzz --help`
    tools                     install cargo-nextest, cargo-deny and cargo-hack if missing
    help                      this text

Environment:
    CI                        when set, `test` uses the nextest profile `ci`
    STRATACACHE_DENY_ADVISORIES=auto|1|0
                              advisories in `deny` and `ci`: auto (default) fetches the current
                              database, falls back to the local copy, else skips loudly; 1
                              requires the current one (a failed fetch fails); 0 skips them";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match dispatch(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("\nerror: {}", failure.message);
            ExitCode::from(u8::try_from(failure.code.clamp(1, 255)).unwrap_or(1))
        }
    }
}

fn dispatch(args: &[String]) -> Result {
    let Some((task, rest)) = args.split_first() else {
        println!("{USAGE}");
        return Ok(());
    };
    let no_args = |task: &str| -> Result {
        if rest.is_empty() {
            Ok(())
        } else {
            Err(Failure::with_code(
                format!("`cargo x {task}` takes no arguments"),
                2,
            ))
        }
    };
    match task.as_str() {
        "help" | "-h" | "--help" => {
            println!("{USAGE}");
            Ok(())
        }
        "services" => services::cli(rest),
        "test" => tasks::test(rest),
        "ci" => {
            no_args("ci")?;
            tasks::ci()
        }
        "bench" => tasks::bench(rest),
        "fuzz" => fuzz::cli(rest),
        "lint" => {
            no_args("lint")?;
            tasks::lint()
        }
        "fmt" => {
            no_args("fmt")?;
            tasks::fmt()
        }
        "doc" => {
            no_args("doc")?;
            tasks::doc()
        }
        "deny" => {
            no_args("deny")?;
            tasks::deny()
        }
        "hack" => {
            no_args("hack")?;
            tasks::hack()
        }
        "tools" => {
            no_args("tools")?;
            tasks::tools()
        }
        other => Err(Failure::with_code(
            format!("unknown task `{other}`\n\n{USAGE}"),
            2,
        )),
    }
}
