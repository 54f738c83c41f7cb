//! Accepting TCP connections and serving HTTP/1.1 on them, with the limits that
//! `axum::serve` cannot set: a deadline for each request head, a cap on open
//! connections per client address, and accept errors that back off.
//!
//! Without these, idle connections or half-sent request lines held a file
//! descriptor each for as long as the client liked; a few hundred of them used the
//! hub's open-file limit up and `/healthz` and every websocket upgrade timed out.
//!
//! - **Header deadline** (`HTTP_HEADER_TIMEOUT_SECS`): hyper's timer runs from the
//!   moment a connection may send a request head — when it opens, and again after
//!   each response on a keep-alive connection — so it is both the header-read
//!   timeout and the idle timeout of kept-alive connections. A whole request,
//!   body included, is bounded separately (`HTTP_REQUEST_TIMEOUT_SECS`, a layer in
//!   `server.rs`).
//! - **Per-address cap** (`MAX_CONNECTIONS_PER_ADDRESS`): counted per TCP peer (an
//!   IPv6 peer by its /64, as the sign-in throttle counts it), for
//!   plain HTTP and websockets alike (a websocket keeps its connection's place until
//!   it closes). Trusted proxies are not capped: every client behind them shares
//!   their address, and the proxy is where those clients are limited.
//! - HTTP/1.1 only: no cleartext HTTP/2, whose idle streams the header deadline would
//!   not cover; browsers speak HTTP/2 only over TLS, which a proxy terminates.
//! - **Lingering close** ([`LingeringClose`]): a websocket that ends on a protocol
//!   violation cannot read its peer's Close (tungstenite reads nothing after an error),
//!   and a socket closed with bytes unread sends RST, which cuts the peer's write short
//!   and can destroy the Close frame before the peer reads it. Asked by the socket's
//!   task, the listener closes that connection gracefully instead: FIN, then whatever
//!   the peer still sends is read and dropped until it closes or 2 s pass.
//! - **Shedding** ([`super::shedding`]): near the open-file limit, connections that have
//!   sent no request head yet are closed first, oldest first, so a newcomer gets in at once.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use super::shedding::{Shedder, is_out_of_descriptors};
use crate::config::Settings;
use crate::http::access::address_key;

/// Serves `app` on `listener` until `shutdown` is cancelled, then lets open
/// requests finish (upgraded websockets are closed by the hub's own shutdown).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    settings: Arc<Settings>,
    shutdown: CancellationToken,
) -> io::Result<()> {
    serve_connections(listener, app, settings, shutdown, None).await
}

/// Serves `app` like [`serve`] until `until` is cancelled, then gives the requests under
/// way `grace` to finish and closes every connection still open, finished or not, so
/// that the listening socket can be handed over to another router and none of this
/// one's connections outlive it (the hub's starting-up answers, `crate::starting`).
pub async fn serve_then_close(
    listener: TcpListener,
    app: Router,
    settings: Arc<Settings>,
    until: CancellationToken,
    grace: Duration,
) -> io::Result<()> {
    serve_connections(listener, app, settings, until, Some(grace)).await
}

/// The accept loop of both: after `shutdown`, connections finish their request under
/// way, within `grace` when one is given.
async fn serve_connections(
    listener: TcpListener,
    app: Router,
    settings: Arc<Settings>,
    shutdown: CancellationToken,
    grace: Option<Duration>,
) -> io::Result<()> {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(settings.http.header_timeout);
    // Every connection's task, so shutdown can wait for the requests under way.
    let connections = TaskTracker::new();
    let peers = PeerCounts::new(settings.http.max_connections_per_address);
    let shedder = Shedder::new(super::shedding::open_file_limit());
    let mut backoff = AcceptBackoff::default();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (tcp, peer) = match accepted {
            Ok(accepted) => {
                backoff.reset();
                accepted
            }
            Err(error) => {
                if is_out_of_descriptors(&error) && shedder.out_of_descriptors() {
                    // The shed connections' tasks close their streams once they run: a tick
                    // for them, so one burst of errors does not shed the whole list.
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    continue;
                }
                if let Some(pause) = backoff.after(&error) {
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(pause) => {}
                    }
                }
                continue;
            }
        };
        let slot = if settings.access.is_trusted_proxy(peer.ip()) {
            None
        } else {
            match peers.take(peer.ip()) {
                Some(slot) => Some(slot),
                None => {
                    // Dropping the stream closes it at once: the descriptor is back.
                    tracing::debug!(client = %peer.ip(), "connection refused: MAX_CONNECTIONS_PER_ADDRESS reached");
                    continue;
                }
            }
        };
        shedder.before_serving();
        let counted = shedder.opened();
        let silent = shedder.silent.enter();
        // Chat frames are small and latency matters more than packet count: no Nagle delay.
        let _ = tcp.set_nodelay(true);
        let lingering = LingeringClose::default();
        let io = TokioIo::new(CountedStream {
            tcp: Some(tcp),
            slot,
            _counted: counted,
            lingering: lingering.clone(),
        });
        let router = app.clone();
        let ticket = silent.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            silent.spoke();
            request.extensions_mut().insert(ConnectInfo(peer));
            request.extensions_mut().insert(lingering.clone());
            router.clone().oneshot(request)
        });
        let connection = http.serve_connection(io, service).with_upgrades();
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            let mut connection = std::pin::pin!(connection);
            let ended = tokio::select! {
                ended = connection.as_mut() => ended,
                // Descriptors run short and this one has sent nothing yet: dropping it closes it.
                _ = ticket.shed.cancelled() => {
                    // A request that arrived as it was shed is served: only silence is shed.
                    if ticket.has_spoken() { connection.as_mut().await } else { Ok(()) }
                }
                _ = shutdown.cancelled() => {
                    // Finish the response under way, then close; an idle connection closes now.
                    connection.as_mut().graceful_shutdown();
                    match grace {
                        None => connection.await,
                        // Dropping the connection closes its stream, whatever it was doing.
                        Some(grace) => tokio::time::timeout(grace, connection).await.unwrap_or(Ok(())),
                    }
                }
            };
            if let Err(error) = ended {
                // Timeouts and clients that vanish are routine; nothing to act on.
                tracing::debug!(client = %peer, %error, "HTTP connection ended with an error");
            }
        });
    }
    drop(listener);
    connections.close();
    connections.wait().await;
    Ok(())
}

/// How often each client address is connected, against a cap.
#[derive(Clone)]
struct PeerCounts {
    cap: usize,
    /// Only addresses with an open connection are kept, so it is bounded by the open connections.
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl PeerCounts {
    fn new(cap: usize) -> Self {
        Self {
            cap,
            open: Arc::default(),
        }
    }

    /// A place for one more connection from `ip`, or `None` at the cap. Counted by
    /// [`address_key`], the sign-in throttle's grouping: an IPv6 client by its /64.
    fn take(&self, ip: IpAddr) -> Option<PeerSlot> {
        let ip = address_key(ip);
        let mut open = self.open.lock().expect("the count is never left half-updated");
        let count = open.entry(ip).or_insert(0);
        if *count >= self.cap {
            return None;
        }
        *count += 1;
        Some(PeerSlot {
            counts: self.clone(),
            ip,
        })
    }
}

/// One open connection of an address; gives its place back when dropped.
struct PeerSlot {
    counts: PeerCounts,
    /// The address's key (see [`address_key`]), not the address itself.
    ip: IpAddr,
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut open = self.counts.open.lock().expect("the count is never left half-updated");
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// A TCP stream that holds its address's place while it lives: through an upgrade too,
/// since hyper hands this very stream to the websocket.
struct CountedStream {
    /// Taken only when the stream is dropped with a lingering close asked for.
    tcp: Option<TcpStream>,
    slot: Option<PeerSlot>,
    /// Counts the connection toward the open-file limit's shedding while it lives.
    _counted: super::shedding::OpenConnection,
    lingering: LingeringClose,
}

impl CountedStream {
    fn tcp(&mut self) -> Pin<&mut TcpStream> {
        Pin::new(self.tcp.as_mut().expect("the stream is taken only when it is dropped"))
    }
}

impl AsyncRead for CountedStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        self.tcp().poll_read(cx, buf)
    }
}

impl AsyncWrite for CountedStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.tcp().poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.tcp().poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.tcp().poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.tcp().poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.as_ref().is_some_and(TcpStream::is_write_vectored)
    }
}

impl Drop for CountedStream {
    fn drop(&mut self) {
        if !self.lingering.0.load(Ordering::Relaxed) {
            return;
        }
        // Outside a runtime (it is shutting down) the stream just closes.
        if let (Some(tcp), Ok(runtime)) = (self.tcp.take(), tokio::runtime::Handle::try_current()) {
            runtime.spawn(linger(tcp, self.slot.take()));
        }
    }
}

/// How long a lingering close reads what the peer still sends: the closing handshake's
/// wait for the peer's Close (docs/protocol.md).
const LINGER: Duration = Duration::from_secs(2);

/// A connection's lingering close, which whoever serves a request on it can ask for (it
/// is in every request's extensions; one taken from a request that came another way asks
/// nothing of anyone). Asked for, dropping the connection's stream does not close the
/// socket at once (`linger` below).
#[derive(Clone, Debug, Default)]
pub struct LingeringClose(Arc<AtomicBool>);

impl LingeringClose {
    /// Closes the connection gracefully once its stream is dropped.
    pub fn ask(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

impl<S: Send + Sync> FromRequestParts<S> for LingeringClose {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(parts.extensions.get::<LingeringClose>().cloned().unwrap_or_default())
    }
}

/// Ends `tcp` without a reset: the FIN goes out after everything written (a websocket's
/// Close frame), then what the peer still sends (the rest of a frame the hub refused, its
/// Close) is read and dropped until the peer closes its side too or [`LINGER`] passes; a
/// socket with nothing unread closes with a FIN. The address keeps its place meanwhile.
async fn linger(mut tcp: TcpStream, _slot: Option<PeerSlot>) {
    if tcp.shutdown().await.is_err() {
        return;
    }
    let mut discard = [0u8; 4096];
    let _ = tokio::time::timeout(LINGER, async { while let Ok(1..) = tcp.read(&mut discard).await {} }).await;
}

/// The pause after a failed accept. Out of descriptors or memory, accept fails at once
/// again and again: without a pause the loop would spin a core while nothing can change.
#[derive(Default)]
struct AcceptBackoff {
    pause: Option<Duration>,
}

impl AcceptBackoff {
    const FIRST: Duration = Duration::from_millis(5);
    const LONGEST: Duration = Duration::from_secs(1);

    fn reset(&mut self) {
        if self.pause.take().is_some() {
            tracing::info!("accepting connections again");
        }
    }

    /// `None` for errors of one connection (it went away before it was accepted);
    /// otherwise how long to wait, doubling while the errors last.
    fn after(&mut self, error: &io::Error) -> Option<Duration> {
        if matches!(
            error.kind(),
            io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset | io::ErrorKind::Interrupted
        ) {
            return None;
        }
        let pause = match self.pause {
            None => {
                tracing::warn!(%error, "cannot accept connections (out of file descriptors?); backing off");
                Self::FIRST
            }
            Some(p) => (p * 2).min(Self::LONGEST),
        };
        self.pause = Some(pause);
        Some(pause)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_its_places_back_when_connections_close() {
        let counts = PeerCounts::new(2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let first = counts.take(a).unwrap();
        let _second = counts.take(a).unwrap();
        assert!(counts.take(a).is_none(), "the cap holds");
        assert!(counts.take(b).is_some(), "other addresses are not affected");
        drop(first);
        assert!(counts.take(a).is_some(), "a closed connection frees its place");
    }

    /// One host holds a whole IPv6 /64, so counting each
    /// full address let it open the cap's worth of connections from every one of them.
    #[test]
    fn ipv6_addresses_of_one_slash_64_share_a_cap() {
        let counts = PeerCounts::new(2);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let _first = counts.take(ip("2001:db8:1:2::1")).unwrap();
        let _second = counts.take(ip("2001:db8:1:2:aaaa::2")).unwrap();
        assert!(
            counts.take(ip("2001:db8:1:2:bbbb::3")).is_none(),
            "a third address of the same /64 is over the cap"
        );
        assert!(
            counts.take(ip("2001:db8:1:3::1")).is_some(),
            "the next /64 is another client"
        );
        // An IPv4-mapped address is its IPv4 address, as the sign-in throttle counts it.
        let _v4 = counts.take(ip("192.0.2.1")).unwrap();
        let _mapped = counts.take(ip("::ffff:192.0.2.1")).unwrap();
        assert!(counts.take(ip("192.0.2.1")).is_none());
    }

    #[test]
    fn accept_errors_back_off_up_to_a_second() {
        let mut backoff = AcceptBackoff::default();
        let emfile = io::Error::from_raw_os_error(libc::EMFILE);
        let pauses: Vec<_> = (0..12).map(|_| backoff.after(&emfile).unwrap()).collect();
        assert_eq!(pauses[0], AcceptBackoff::FIRST);
        assert!(pauses.windows(2).all(|w| w[1] >= w[0]));
        assert_eq!(*pauses.last().unwrap(), AcceptBackoff::LONGEST);
        assert_eq!(backoff.after(&io::Error::from(io::ErrorKind::ConnectionAborted)), None);
        backoff.reset();
        assert_eq!(backoff.after(&emfile), Some(AcceptBackoff::FIRST));
    }
}
