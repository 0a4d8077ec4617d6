//! A TCP proxy that shows a test each line a client sends.

use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// A TCP proxy on a free loopback port in front of one server: each line going up (client
/// to server, data blocks of writes included) is handed to a callback before it is
/// forwarded; answers pass through untouched. For tests that count the commands a backend
/// sends. It runs until the runtime that started it ends.
#[derive(Debug)]
pub struct LineProxy {
    address: String,
}

impl LineProxy {
    /// Starts the proxy in front of `upstream` (`host:port`), calling `on_line` with every
    /// line (its `\n` included) a client sends.
    ///
    /// # Panics
    /// When no loopback port can be bound.
    pub async fn start(upstream: String, on_line: impl Fn(&[u8]) + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let address = listener.local_addr().expect("a local address").to_string();
        let on_line = Arc::new(on_line);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(&upstream).await else {
                    continue;
                };
                tokio::spawn(relay(client, server, Arc::clone(&on_line)));
            }
        });
        LineProxy { address }
    }

    /// `host:port` of the proxy, for the backend under test.
    pub fn address(&self) -> &str {
        &self.address
    }
}

async fn relay(client: TcpStream, server: TcpStream, on_line: Arc<impl Fn(&[u8])>) {
    let (client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let up = async move {
        let mut reader = BufReader::new(client_read);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line).await {
                Ok(0) | Err(_) => break,
                Ok(_) => on_line(&line),
            }
            if server_write.write_all(&line).await.is_err() {
                break;
            }
        }
    };
    let down = async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match server_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if client_write.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        }
    };
    tokio::join!(up, down);
}
