//! Staff set-up over the HTTP API: sign in as admin, create agent accounts,
//! sign each in, open their websockets and make them available.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::http;
use crate::stats::Stats;
use crate::wsconn::{self, Ws};

/// Where the hub is and how to reach it.
#[derive(Clone)]
pub struct Target {
    pub hub: SocketAddr,
    pub sources: Vec<Ipv4Addr>,
    pub admin_user: String,
    pub admin_password: String,
    /// Distinguishes this run's accounts from earlier runs against the same hub.
    pub tag: String,
    /// Nodes of a cluster that agents (`agent_hubs`) and customers (`customer_hubs`) connect to,
    /// each taking the next in turn; one node alone is `[hub]` for both.
    pub agent_hubs: Vec<SocketAddr>,
    pub customer_hubs: Vec<SocketAddr>,
}

impl Target {
    pub fn source(&self, i: usize) -> Option<Ipv4Addr> {
        (!self.sources.is_empty()).then(|| self.sources[i % self.sources.len()])
    }

    /// The node agent `i` signs in and connects to.
    pub fn agent_hub(&self, i: usize) -> SocketAddr {
        self.agent_hubs
            .get(i % self.agent_hubs.len().max(1))
            .copied()
            .unwrap_or(self.hub)
    }

    /// The node customer `k` connects to.
    pub fn customer_hub(&self, k: usize) -> SocketAddr {
        self.customer_hubs
            .get(k % self.customer_hubs.len().max(1))
            .copied()
            .unwrap_or(self.hub)
    }
}

/// Creates `count` agents in `categories` with `max_chats`, signs them in and
/// returns their bearer tokens. Password hashing dominates: a few at a time.
pub async fn create_agents(
    t: &Target,
    count: usize,
    categories: &[String],
    max_chats: u8,
) -> Result<Vec<String>, String> {
    let admin = http::login(t.hub, &t.admin_user, &t.admin_password).await?;
    let sem = Arc::new(tokio::sync::Semaphore::new(8));
    let mut tasks = vec![];
    for i in 0..count {
        let (t, admin, sem, categories) = (t.clone(), admin.clone(), sem.clone(), categories.to_vec());
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire().await;
            let username = format!("lg-{}-a{i}", t.tag);
            let body = json!({
                "username": username, "display_name": format!("Agent {i}"),
                "password": "loadgen-pass", "categories": categories, "max_chats": max_chats,
            });
            let (status, resp) = http::request(t.hub, "POST", "/api/admin/agents", Some(&admin), Some(&body)).await?;
            if status != 201 {
                return Err(format!("create agent {username}: HTTP {status} {resp}"));
            }
            http::login(t.agent_hub(i), &username, "loadgen-pass").await
        }));
    }
    let mut tokens = vec![];
    for task in tasks {
        tokens.push(task.await.map_err(|e| e.to_string())??);
    }
    Ok(tokens)
}

/// Opens an agent's websocket, waits for the welcome and goes available.
pub async fn agent_online(t: &Target, i: usize, token: &str, stats: &Stats) -> Result<Ws, String> {
    let connecting = wsconn::connect(
        t.agent_hub(i),
        t.source(i),
        "/ws/agent",
        Some(token),
        wsconn::READ_BUFFER,
    );
    let mut ws = stats
        .counted(connecting.await)
        .map_err(|(code, detail)| format!("agent {i}: {code} {detail}"))?;
    ws.send(Message::text(r#"{"type":"set_available","available":true}"#))
        .await
        .map_err(|e| e.to_string())?;
    // Wait for the profile that confirms availability (welcome and queue_stats come first).
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => {
                if text.contains(r#""type":"profile""#) {
                    return Ok(ws);
                }
                if text.contains(r#""type":"error""#) {
                    return Err(format!("agent {i}: {text}"));
                }
            }
            Ok(Some(Ok(_))) => {}
            other => return Err(format!("agent {i}: no profile after set_available: {other:?}")),
        }
    }
}
