//! Opening client websockets to the hub from a chosen source address in
//! 127.0.0.0/8 (so tens of thousands of connections do not exhaust one
//! address's ephemeral ports), with an optional bearer token for agents.

use std::net::{Ipv4Addr, SocketAddr};

use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{WebSocketStream, client_async_with_config};

pub type Ws = WebSocketStream<TcpStream>;

/// Read chunk of a busy connection. tungstenite zero-fills its read buffer up to
/// this size before every read, so a large one costs a memset per frame: at
/// 64 KiB that was a fifth of the loadgen's CPU in the relay scenario.
pub const READ_BUFFER: usize = 4096;

/// Bytes of fed frames held until a flush writes them (a threshold, not an allocation).
const WRITE_BUFFER: usize = 16 * 1024;

/// Connects and upgrades. The error is a short code for the result table
/// (`http_503`, `connect_refused`, ...) followed by detail.
pub async fn connect(
    hub: SocketAddr,
    src: Option<Ipv4Addr>,
    path: &str,
    bearer: Option<&str>,
    read_buffer: usize,
) -> Result<Ws, (String, String)> {
    let socket = TcpSocket::new_v4().map_err(|e| ("socket".to_string(), e.to_string()))?;
    if let Some(ip) = src {
        socket
            .bind(SocketAddr::new(ip.into(), 0))
            .map_err(|e| ("bind".to_string(), format!("{ip}: {e}")))?;
    }
    let stream = socket.connect(hub).await.map_err(|e| {
        let code = match e.kind() {
            std::io::ErrorKind::ConnectionRefused => "connect_refused",
            std::io::ErrorKind::AddrNotAvailable | std::io::ErrorKind::AddrInUse => "no_source_port",
            _ => "connect_failed",
        };
        (code.to_string(), e.to_string())
    })?;
    let _ = stream.set_nodelay(true);
    let mut request = format!("ws://{hub}{path}")
        .into_client_request()
        .map_err(|e| ("request".to_string(), e.to_string()))?;
    if let Some(token) = bearer {
        request.headers_mut().insert(
            "Authorization",
            format!("Bearer {token}").parse().expect("a token is a valid header"),
        );
    }
    let config = WebSocketConfig::default()
        .read_buffer_size(read_buffer)
        // Frames fed without a flush share one write (a writer with several messages due).
        .write_buffer_size(WRITE_BUFFER);
    match client_async_with_config(request, stream, Some(config)).await {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            Err((format!("http_{}", resp.status().as_u16()), "upgrade refused".into()))
        }
        Err(e) => Err(("upgrade_failed".to_string(), e.to_string())),
    }
}

/// Source addresses 127.0.0.a ..= 127.0.0.b from "a-b" (or one address "a").
pub fn parse_sources(spec: &str) -> Vec<Ipv4Addr> {
    let (a, b) = spec.split_once('-').unwrap_or((spec, spec));
    let last = |s: &str| s.rsplit('.').next().and_then(|x| x.parse::<u8>().ok()).unwrap_or(1);
    (last(a)..=last(b)).map(|x| Ipv4Addr::new(127, 0, 0, x)).collect()
}
