//! The test harness: a real hub on a loopback port, real HTTP and websocket clients.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

use switchboard::config::Settings;
use switchboard::store::{MemoryStore, SharedStore};

pub const ADMIN_PASSWORD: &str = "admin-password";
/// How long a test waits for a frame that must come.
const WAIT: Duration = Duration::from_secs(5);
/// How long a test listens to be sure a frame does not come.
pub const QUIET: Duration = Duration::from_millis(300);

pub struct TestHub {
    pub addr: SocketAddr,
    #[allow(dead_code)] // for tests that look into the store directly
    pub store: SharedStore,
    pub shutdown: CancellationToken,
    pub task: tokio::task::JoinHandle<()>,
}

impl TestHub {
    pub async fn start() -> Self {
        Self::with(|_| {}).await
    }

    /// Starts a hub with test defaults changed by `tweak`.
    pub async fn with(tweak: impl FnOnce(&mut Settings)) -> Self {
        Self::with_store(Arc::new(MemoryStore::new()), tweak).await
    }

    pub async fn with_store(store: SharedStore, tweak: impl FnOnce(&mut Settings)) -> Self {
        let mut settings = Settings::for_tests();
        settings.admin_password = Some(ADMIN_PASSWORD.into());
        settings.resume_grace = Duration::from_millis(800);
        settings.buddy_grace = Duration::from_millis(400);
        settings.rate_limit_per_sec = 200;
        settings.rate_limit_burst = 200;
        tweak(&mut settings);
        switchboard::bootstrap(&store, &settings).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn({
            let (store, shutdown) = (store.clone(), shutdown.clone());
            async move { switchboard::run(listener, settings, store, shutdown).await.unwrap() }
        });
        Self {
            addr,
            store,
            shutdown,
            task,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }

    /// An HTTP client signed in as the first admin.
    pub async fn admin(&self) -> Api {
        self.login("admin", ADMIN_PASSWORD).await
    }

    pub async fn login(&self, username: &str, password: &str) -> Api {
        let client = reqwest::Client::builder().cookie_store(true).build().unwrap();
        let res = client
            .post(self.url("/api/login"))
            .json(&json!({"username": username, "password": password}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "login as {username}");
        let body: Value = res.json().await.unwrap();
        Api {
            client,
            base: self.url(""),
            token: body["token"].as_str().unwrap().to_string(),
        }
    }

    /// Creates an agent and returns their bearer token.
    pub async fn agent_account(&self, username: &str, categories: &[&str], max_chats: u8) -> String {
        let admin = self.admin().await;
        let (status, body) = admin
            .post(
                "/api/admin/agents",
                json!({"username": username, "display_name": username.to_uppercase(), "password": "agent-password",
                       "categories": categories, "max_chats": max_chats}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        self.login(username, "agent-password").await.token
    }

    /// An agent connected and available, their welcome read.
    pub async fn agent(&self, username: &str, categories: &[&str], max_chats: u8) -> Ws {
        let token = self.agent_account(username, categories, max_chats).await;
        let mut ws = Ws::agent(self, &token).await;
        ws.send(json!({"type": "set_available", "available": true})).await;
        ws.next_of("profile").await;
        ws
    }

    /// A customer who joined `category`, their welcome read.
    pub async fn customer(&self, name: &str, category: &str) -> Ws {
        let mut ws = Ws::connect(&self.ws_url("/ws/customer"), &[]).await.unwrap();
        ws.send(json!({"type": "join", "name": name, "category": category}))
            .await;
        let welcome = ws.next_of("welcome").await;
        ws.token = welcome["resume_token"].as_str().map(String::from);
        ws
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(15), self.task)
            .await
            .expect("the hub stops")
            .unwrap();
    }
}

pub struct Api {
    pub client: reqwest::Client,
    pub base: String,
    pub token: String,
}

impl Api {
    /// A client that presents `token` as a bearer token (no cookie).
    pub fn bearer(hub: &TestHub, token: &str) -> Api {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
        Api {
            client: reqwest::Client::builder().default_headers(headers).build().unwrap(),
            base: hub.url(""),
            token: token.to_string(),
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.client.request(method, format!("{}{}", self.base, path));
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::PUT, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::PATCH, path, Some(body)).await
    }

    /// The account id of `username`, from the admin API.
    pub async fn agent_id(&self, username: &str) -> String {
        let (_, list) = self.get("/api/admin/agents").await;
        let account = list
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["username"] == username)
            .expect("the account exists");
        account["id"].as_str().unwrap().to_string()
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::DELETE, path, None).await
    }
}

/// A websocket client that reads JSON frames.
pub struct Ws {
    pub inner: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// The customer's resume token, once welcomed.
    pub token: Option<String>,
    /// Frames read while looking for another type, in order.
    pub seen: Vec<Value>,
}

impl Ws {
    pub async fn connect(url: &str, headers: &[(&str, &str)]) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
        let mut request = url.into_client_request().unwrap();
        for (k, v) in headers {
            let name = tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(k.as_bytes()).unwrap();
            request.headers_mut().insert(name, HeaderValue::from_str(v).unwrap());
        }
        let (inner, _) = tokio_tungstenite::connect_async(request).await?;
        Ok(Ws {
            inner,
            token: None,
            seen: vec![],
        })
    }

    pub async fn agent(hub: &TestHub, token: &str) -> Ws {
        let auth = format!("Bearer {token}");
        let mut ws = Ws::connect(&hub.ws_url("/ws/agent"), &[("authorization", &auth)])
            .await
            .unwrap();
        ws.next_of("agent_welcome").await;
        ws
    }

    pub async fn send(&mut self, value: Value) {
        self.inner.send(Message::Text(value.to_string().into())).await.unwrap();
    }

    pub async fn send_raw(&mut self, text: &str) {
        self.inner.send(Message::Text(text.into())).await.unwrap();
    }

    /// The next JSON frame, or `None` if nothing comes within `wait` (or the socket closed).
    pub async fn recv_within(&mut self, wait: Duration) -> Option<Value> {
        loop {
            match tokio::time::timeout(wait, self.inner.next()).await {
                Ok(Some(Ok(Message::Text(t)))) => return Some(serde_json::from_str(&t).unwrap()),
                Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) | Err(_) => return None,
                Ok(Some(Ok(_))) => continue,
            }
        }
    }

    /// The next frame of `kind`, remembering the others it passed.
    pub async fn next_of(&mut self, kind: &str) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let Some(frame) = self.recv_within(left).await else {
                panic!("no {kind:?} frame came; saw {:?}", self.seen);
            };
            if frame["type"] == kind {
                return frame;
            }
            self.seen.push(frame);
        }
    }

    /// The next frame `wanted` accepts, remembering the others it passed.
    pub async fn next_matching(&mut self, wanted: impl Fn(&Value) -> bool) -> Value {
        self.next_matching_within(WAIT, wanted).await
    }

    /// As [`Ws::next_matching`], waiting up to `wait` (a cluster's reap or fence).
    pub async fn next_matching_within(&mut self, wait: Duration, wanted: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let Some(frame) = self.recv_within(left).await else {
                panic!("no wanted frame came; saw {:?}", self.seen);
            };
            if wanted(&frame) {
                return frame;
            }
            self.seen.push(frame);
        }
    }

    /// Every frame that arrives within `QUIET`, for checking what did not come.
    pub async fn drain(&mut self) -> Vec<Value> {
        let mut frames = vec![];
        while let Some(f) = self.recv_within(QUIET).await {
            frames.push(f);
        }
        frames
    }

    /// Waits for the server to close; returns the close code.
    pub async fn closed(&mut self) -> Option<CloseCode> {
        self.closed_within(WAIT).await
    }

    /// As [`Ws::closed`], waiting up to `wait`.
    pub async fn closed_within(&mut self, wait: Duration) -> Option<CloseCode> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.inner.next()).await {
                Ok(Some(Ok(Message::Close(frame)))) => return frame.map(|f| f.code),
                Ok(Some(Ok(_))) => continue,
                Ok(None) | Ok(Some(Err(_))) => return None,
                Err(_) => panic!("the server did not close the connection"),
            }
        }
    }
}

/// Types of the frames in `frames`.
/// An anonymous POST of `body` as JSON (no session, no token): its status and answer.
pub async fn post(hub: &TestHub, path: &str, body: Value) -> (u16, Value) {
    let res = reqwest::Client::new()
        .post(hub.url(path))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

pub fn types(frames: &[Value]) -> Vec<String> {
    frames
        .iter()
        .map(|f| f["type"].as_str().unwrap_or_default().to_string())
        .collect()
}

impl Ws {
    /// Connects from the loopback address `local` (e.g. 127.0.0.3, a same-host proxy).
    pub async fn connect_from(
        local: &str,
        url: &str,
        headers: &[(&str, &str)],
    ) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
        let mut request = url.into_client_request().unwrap();
        for (k, v) in headers {
            let name = tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(k.as_bytes()).unwrap();
            request.headers_mut().insert(name, HeaderValue::from_str(v).unwrap());
        }
        let host = request.uri().authority().unwrap().as_str().to_string();
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::new(local.parse().unwrap(), 0)).unwrap();
        let tcp = socket.connect(host.parse().unwrap()).await.unwrap();
        let (inner, _) = tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(tcp)).await?;
        Ok(Ws {
            inner,
            token: None,
            seen: vec![],
        })
    }
}

// ---- compact acknowledgement ----
impl Ws {
    /// One frame of each of `kinds`, in the order of `kinds`, whatever order they arrive in:
    /// a sender's `ack` (sent after the commit) and the peer's reply race.
    pub async fn each_of(&mut self, kinds: &[&str]) -> Vec<Value> {
        let mut found: Vec<Option<Value>> = vec![None; kinds.len()];
        let deadline = tokio::time::Instant::now() + WAIT;
        while found.iter().any(Option::is_none) {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let Some(frame) = self.recv_within(left).await else {
                panic!("not every one of {kinds:?} came; saw {:?}", self.seen);
            };
            match (0..kinds.len()).find(|&i| found[i].is_none() && frame["type"] == kinds[i]) {
                Some(i) => found[i] = Some(frame),
                None => self.seen.push(frame),
            }
        }
        found.into_iter().map(|f| f.expect("all found")).collect()
    }
}

/// Sends `sig` (SIGSTOP, SIGCONT, SIGTERM, SIGKILL) to a process the test started. A
/// SIGSTOP returns once the process is stopped (`T` in `/proc/<pid>/stat`): `kill` only
/// sends it, and on a loaded machine the process may still answer a request it had
/// before it is next scheduled and stopped — which a test would count as done while
/// "frozen".
pub fn signal(child: &std::process::Child, sig: libc::c_int) {
    // SAFETY: kill takes a pid and a signal number; the pid is our own child's.
    let done = unsafe { libc::kill(child.id() as libc::pid_t, sig) };
    assert_eq!(done, 0, "cannot signal process {}", child.id());
    if sig == libc::SIGSTOP {
        let stat = format!("/proc/{}/stat", child.id());
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let text = std::fs::read_to_string(&stat).unwrap_or_default();
            // The state follows the command name, which is in parentheses.
            let state = text.rsplit_once(") ").and_then(|(_, rest)| rest.chars().next());
            if matches!(state, Some('T') | Some('t')) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "process {} never stopped: {text}",
                child.id()
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}
