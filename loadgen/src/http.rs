//! A minimal HTTP/1.1 client over a tokio TcpStream: enough for the hub's JSON
//! API (sign-in, admin agent creation, health, conversation totals).
//! One request per connection (`Connection: close`), Content-Length or chunked bodies.

use std::net::SocketAddr;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// An upload's socket send buffer: what the client holds beyond what the hub has read.
/// Left to the kernel, it grows to megabytes on loopback, so 20 uploads starting at once
/// had the load generator's own core copy some 200 MB into socket buffers within their
/// first second, stalling its readers: that showed as the hub's delivery latency (p99
/// 330 ms in the first step at 1,000 msg/s, 30 ms in the next). A client across a real
/// network holds about its bandwidth-delay product, far less than this.
const UPLOAD_SEND_BUFFER: u32 = 256 << 10;

/// Sends one request and returns the status and the JSON body (Null when empty or not JSON).
pub async fn request(
    hub: SocketAddr,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Option<&Value>,
) -> Result<(u16, Value), String> {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut head =
        format!("{method} {path} HTTP/1.1\r\nHost: {hub}\r\nConnection: close\r\nAccept: application/json\r\n");
    if let Some(t) = bearer {
        head.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    if method != "GET" {
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    head.push_str("\r\n");
    head.push_str(&body);
    let stream = TcpStream::connect(hub)
        .await
        .map_err(|e| format!("connect {hub}: {e}"))?;
    exchange(stream, head.as_bytes(), &[]).await
}

/// Uploads `body` as a file (`POST path`, the headers given as `Name: value` lines),
/// and returns the status and the JSON answer.
pub async fn upload(
    hub: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<(u16, Value), String> {
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: {hub}\r\nConnection: close\r\nAccept: application/json\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let socket = if hub.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .and_then(|s| s.set_send_buffer_size(UPLOAD_SEND_BUFFER).map(|()| s))
    .map_err(|e| format!("socket: {e}"))?;
    let stream = socket.connect(hub).await.map_err(|e| format!("connect {hub}: {e}"))?;
    exchange(stream, head.as_bytes(), body).await
}

/// Writes one request (its head, then its body) on a new connection and reads the answer
/// to its end.
async fn exchange(mut stream: TcpStream, head: &[u8], body: &[u8]) -> Result<(u16, Value), String> {
    stream.write_all(head).await.map_err(|e| e.to_string())?;
    stream.write_all(body).await.map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.map_err(|e| e.to_string())?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("malformed HTTP response")?;
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or("no HTTP status")?;
    let mut payload = raw[split + 4..].to_vec();
    if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        payload = dechunk(&payload);
    }
    let json = serde_json::from_slice(&payload).unwrap_or(Value::Null);
    Ok((status, json))
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = data.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&data[..eol]).trim(), 16).unwrap_or(0);
        if size == 0 || data.len() < eol + 2 + size {
            break;
        }
        out.extend_from_slice(&data[eol + 2..eol + 2 + size]);
        data = &data[(eol + 4 + size).min(data.len())..];
    }
    out
}

/// Signs in and returns the bearer token.
pub async fn login(hub: SocketAddr, username: &str, password: &str) -> Result<String, String> {
    let body = serde_json::json!({ "username": username, "password": password });
    let (status, json) = request(hub, "POST", "/api/login", None, Some(&body)).await?;
    match json.get("token").and_then(Value::as_str) {
        Some(t) if status == 200 => Ok(t.to_string()),
        _ => Err(format!("login {username}: HTTP {status} {json}")),
    }
}
