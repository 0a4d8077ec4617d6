//! Real `redis-server` and `memcached` processes for the stratacache tests and for
//! `cargo x services`, from one place:
//!
//! - [`find_program`] and [`server_binary`]: one binary lookup with one set of search paths;
//! - [`ServerKind::probe`]: one readiness probe per kind of server (Redis `PING`, Memcached
//!   `version`);
//! - [`ServerKind::listen_args`]: the arguments that put a server on a loopback port with
//!   nothing persisted;
//! - [`Server`]: a private server for one test on a [`free_port`], in its own [`TempDir`],
//!   killed on drop (plain or TLS Redis, Memcached);
//! - [`TestPki`]: the certificates of the TLS tests, made with the `openssl` command;
//! - [`skip_or_fail`]: the rule for a missing server — a local run prints one `SKIPPED` line
//!   and the test returns, a run with `CI` set fails.
//!
//! Only the standard library: neither the backends nor an async runtime come with it.

#![forbid(unsafe_code)]

mod binary;
mod probe;
mod server;
mod tls;

pub use binary::{find_program, is_root, server_binary, skip_or_fail};
pub use probe::{Probe, ServerKind, free_port, is_listening};
pub use server::{Server, TempDir};
pub use tls::{TestPki, openssl};
