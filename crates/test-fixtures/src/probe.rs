//! The kinds of server, the arguments that start one, and the request that tells whether it
//! answers.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use crate::is_root;

/// How long a probe waits for the TCP connection.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// How long a probe waits to send its request and to read the answer.
const IO_TIMEOUT: Duration = Duration::from_secs(2);

/// A kind of server the tests run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ServerKind {
    /// `redis-server`.
    Redis,
    /// `memcached`.
    Memcached,
}

/// What a probe found on a loopback port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Probe {
    /// The expected server answered: `+PONG` to Redis `PING`, `VERSION …` to Memcached
    /// `version`.
    Ready,
    /// Something answered, but not as expected (a Redis that wants a password answers
    /// `-NOAUTH …`): the line it answered.
    Answered(String),
    /// Something accepted the connection but gave no answer: why.
    NoAnswer(String),
    /// Nothing listens.
    Closed,
}

impl Probe {
    /// Why the port is not [`Ready`](Probe::Ready), in a few words; `None` when it is.
    pub fn why_not(&self) -> Option<String> {
        match self {
            Probe::Ready => None,
            Probe::Answered(line) => Some(format!("answered {line:?}")),
            Probe::NoAnswer(why) => Some(why.clone()),
            Probe::Closed => Some("not listening".to_owned()),
        }
    }
}

impl ServerKind {
    /// The program's name: `redis-server` or `memcached`.
    pub fn program(self) -> &'static str {
        match self {
            ServerKind::Redis => "redis-server",
            ServerKind::Memcached => "memcached",
        }
    }

    /// The environment variable that names the binary of a test's private server:
    /// `REDIS_SERVER` or `MEMCACHED_BIN`.
    pub fn binary_variable(self) -> &'static str {
        match self {
            ServerKind::Redis => "REDIS_SERVER",
            ServerKind::Memcached => "MEMCACHED_BIN",
        }
    }

    /// Arguments that make a server listen on `127.0.0.1:port` and keep nothing on disk:
    /// Redis `--port P --bind 127.0.0.1 --save "" --appendonly no`; Memcached
    /// `-l 127.0.0.1 -p P -U 0` (no UDP), plus `-u root` when this process is root, since
    /// memcached refuses to run as root unless told which user to be.
    pub fn listen_args(self, port: u16) -> Vec<String> {
        let port = port.to_string();
        let args: &[&str] = match self {
            ServerKind::Redis => &[
                "--port",
                &port,
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            ServerKind::Memcached => &["-l", "127.0.0.1", "-p", &port, "-U", "0"],
        };
        let mut args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        if self == ServerKind::Memcached && is_root() {
            args.extend(["-u".to_owned(), "root".to_owned()]);
        }
        args
    }

    /// Sends one request to `127.0.0.1:port` and checks the answer: `PING` for Redis,
    /// `version` for Memcached.
    pub fn probe(self, port: u16) -> Probe {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let Ok(mut stream) = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) else {
            return Probe::Closed;
        };
        let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
        let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
        let (request, expected): (&[u8], &str) = match self {
            ServerKind::Redis => (b"*1\r\n$4\r\nPING\r\n", "+PONG"),
            ServerKind::Memcached => (b"version\r\n", "VERSION "),
        };
        if let Err(e) = stream.write_all(request) {
            return Probe::NoAnswer(format!("could not send a request: {e}"));
        }
        match read_line(&mut stream) {
            Ok(line) if line.starts_with(expected) => Probe::Ready,
            Ok(line) if line.is_empty() => {
                Probe::NoAnswer("closed the connection without answering".into())
            }
            Ok(line) => Probe::Answered(line),
            Err(e) => Probe::NoAnswer(format!("no answer: {e}")),
        }
    }
}

fn read_line(stream: &mut TcpStream) -> io::Result<String> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while line.len() < 512 {
        match stream.read(&mut byte) {
            Ok(0) => break,
            Ok(_) if byte[0] == b'\n' => break,
            Ok(_) => line.push(byte[0]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(String::from_utf8_lossy(&line).trim_end().to_owned())
}

/// Whether something accepts TCP connections on `127.0.0.1:port`.
pub fn is_listening(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).is_ok()
}

/// A loopback port nothing listens on right now.
///
/// # Panics
/// When the system hands out no ephemeral port.
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_free_port_is_closed() {
        let port = free_port();
        assert!(!is_listening(port));
        assert_eq!(ServerKind::Redis.probe(port), Probe::Closed);
        assert_eq!(Probe::Closed.why_not().as_deref(), Some("not listening"));
    }

    #[test]
    fn redis_keeps_nothing_on_disk() {
        let args = ServerKind::Redis.listen_args(16379);
        let save = args.iter().position(|a| a == "--save").unwrap();
        assert_eq!(args[save + 1], "");
        assert!(args.windows(2).any(|w| w == ["--appendonly", "no"]));
        assert!(args.windows(2).any(|w| w == ["--bind", "127.0.0.1"]));
        assert!(args.windows(2).any(|w| w == ["--port", "16379"]));
    }
}
