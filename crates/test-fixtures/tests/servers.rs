//! Each kind of private server starts, answers its probe, comes back empty-handed after a
//! restart on the same port, and is gone once dropped.

use cache_test_fixtures::{Probe, Server, ServerKind, TestPki, is_listening};

fn lifecycle(kind: ServerKind, extra: &[&str]) {
    let Some(mut server) = Server::start(kind, extra) else {
        return;
    };
    let port = server.port();
    assert_eq!(server.address(), format!("127.0.0.1:{port}"));
    assert!(server.dir().is_dir());
    assert_eq!(kind.probe(port), Probe::Ready);
    server.kill();
    assert_eq!(kind.probe(port), Probe::Closed);
    server.restart();
    assert_eq!(server.port(), port);
    assert_eq!(kind.probe(port), Probe::Ready);
    let dir = server.dir().to_owned();
    drop(server);
    assert!(!is_listening(port));
    assert!(!dir.exists());
}

#[test]
fn redis_starts_restarts_and_stops() {
    lifecycle(ServerKind::Redis, &[]);
}

#[test]
fn memcached_starts_restarts_and_stops() {
    lifecycle(ServerKind::Memcached, &["-I", "2m"]);
}

#[test]
fn a_redis_with_a_password_counts_as_started() {
    let Some(server) = Server::start(ServerKind::Redis, &["--requirepass", "secret"]) else {
        return;
    };
    assert!(matches!(
        ServerKind::Redis.probe(server.port()),
        Probe::Answered(line) if line.starts_with("-NOAUTH")
    ));
    assert_eq!(server.url(), format!("redis://127.0.0.1:{}", server.port()));
}

#[test]
fn a_tls_redis_listens_on_its_tls_port_only() {
    let pki = TestPki::new();
    let Some(server) = Server::start_redis_tls(
        &pki.file("server.crt"),
        &pki.file("server.key"),
        &pki.file("ca.crt"),
        false,
    ) else {
        return;
    };
    assert!(is_listening(server.port()));
    assert_eq!(
        server.url(),
        format!("rediss://127.0.0.1:{}", server.port())
    );
}
