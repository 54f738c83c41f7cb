//! A TCP link to a server that a test can hold: while held, nothing crosses it either
//! way (the connections stay open, as with a network that stalls), and once let go what
//! waited goes on. For one node of several sharing a database: that node's store calls
//! wait while the others' go through.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub(crate) struct HeldLink {
    /// Where clients connect instead of the server.
    pub addr: SocketAddr,
    held: watch::Sender<bool>,
}

impl HeldLink {
    /// A link to `server`, let go.
    pub(crate) async fn to(server: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (held, _) = watch::channel(false);
        let gate = held.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(upstream) = TcpStream::connect(server).await else {
                    continue;
                };
                let (cr, cw) = client.into_split();
                let (ur, uw) = upstream.into_split();
                tokio::spawn(pump(cr, uw, gate.subscribe()));
                tokio::spawn(pump(ur, cw, gate.subscribe()));
            }
        });
        Self { addr, held }
    }

    /// Holds (`true`) or lets go (`false`) everything crossing the link.
    pub(crate) fn hold(&self, on: bool) {
        self.held.send_replace(on);
    }
}

/// Copies `from` to `to`, each read's bytes written only while the link is let go.
async fn pump(
    mut from: impl AsyncReadExt + Unpin,
    mut to: impl AsyncWriteExt + Unpin,
    mut held: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let Ok(n @ 1..) = from.read(&mut buf).await else { return };
        if held.wait_for(|held| !held).await.is_err() || to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
