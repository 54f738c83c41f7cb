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
use switchboard::store::{Conversation, MemoryStore, SharedStore};

pub const ADMIN_PASSWORD: &str = "admin-password";
/// How long a test waits for a frame that must come.
const WAIT: Duration = Duration::from_secs(5);
/// How long a test listens to be sure a frame does not come.
pub const QUIET: Duration = Duration::from_millis(300);

/// A hub in this process: its address (and the clients of [`Endpoint`], through `Deref`),
/// its store, and the token that stops it.
pub struct TestHub {
    pub endpoint: Endpoint,
    #[allow(dead_code)] // for tests that look into the store directly
    pub store: SharedStore,
    pub shutdown: CancellationToken,
    pub task: tokio::task::JoinHandle<()>,
    /// Its own `DATA_DIR` (the webhook journal; a MongoDB hub's spool), unless the test
    /// named one: hubs side by side never share one.
    _data_dir: Option<crate::archive::TempDir>,
}

impl std::ops::Deref for TestHub {
    type Target = Endpoint;
    fn deref(&self) -> &Endpoint {
        &self.endpoint
    }
}

impl TestHub {
    pub async fn start() -> Self {
        Self::with(|_| {}).await
    }

    /// A hub with the test defaults and an agent on it (as [`Endpoint::agent`]): the hub and
    /// the agent's socket.
    pub async fn with_agent(username: &str, categories: &[&str], max_chats: u8) -> (Self, Ws) {
        let hub = Self::start().await;
        let agent = hub.agent(username, categories, max_chats).await;
        (hub, agent)
    }

    /// A hub with the test defaults and the first admin signed in: the hub and the
    /// admin's client.
    pub async fn with_admin() -> (Self, Api) {
        let hub = Self::start().await;
        let admin = hub.admin().await;
        (hub, admin)
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
        let data_dir = (store.backend() != "memory").then(|| crate::archive::TempDir::new("hub-data"));
        if let Some(dir) = &data_dir {
            settings.store.data_dir = dir.0.clone();
        }
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
            endpoint: Endpoint { addr },
            store,
            shutdown,
            task,
            _data_dir: data_dir,
        }
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(15), self.task)
            .await
            .expect("the hub stops")
            .unwrap();
    }
}

/// Where a hub answers, in this process or a child process, and the clients a test makes for it.
#[derive(Clone, Copy, Debug)]
pub struct Endpoint {
    pub addr: SocketAddr,
}

impl Endpoint {
    /// The hub listening at `bind` (`127.0.0.1:port`), a process the test started.
    pub fn at(bind: &str) -> Endpoint {
        Endpoint {
            addr: bind.parse().expect("an address"),
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
        let res = self.sign_in(&client, username, password).await;
        assert_eq!(res.status(), 200, "login as {username}");
        let body: Value = res.json().await.unwrap();
        Api {
            client,
            base: self.url(""),
            token: body["token"].as_str().unwrap().to_string(),
        }
    }

    /// `POST /api/login` through `client`, whatever the answer.
    pub async fn sign_in(&self, client: &reqwest::Client, username: &str, password: &str) -> reqwest::Response {
        let body = json!({"username": username, "password": password});
        client.post(self.url("/api/login")).json(&body).send().await.unwrap()
    }

    /// Creates an agent and returns their bearer token.
    pub async fn agent_account(&self, username: &str, categories: &[&str], max_chats: u8) -> String {
        self.create_agent(username, &username.to_uppercase(), categories, max_chats)
            .await;
        self.login(username, "agent-password").await.token
    }

    /// Creates an agent shown as `display_name` (password `agent-password`), taking one
    /// chat at a time, and signs them in.
    pub async fn named_agent(&self, username: &str, display_name: &str, categories: &[&str]) -> Api {
        self.create_agent(username, display_name, categories, 1).await;
        self.login(username, "agent-password").await
    }

    /// Creates an agent through the admin API (password `agent-password`).
    pub async fn create_agent(&self, username: &str, display_name: &str, categories: &[&str], max_chats: u8) {
        let account = json!({"username": username, "display_name": display_name, "password": "agent-password",
                             "categories": categories, "max_chats": max_chats});
        self.admin()
            .await
            .post_answering(201, "/api/admin/agents", account)
            .await;
    }

    /// An agent connected and available, their welcome read.
    pub async fn agent(&self, username: &str, categories: &[&str], max_chats: u8) -> Ws {
        self.agent_with_token(username, categories, max_chats).await.0
    }

    /// As [`Endpoint::agent`], with the agent's session token (to connect again).
    pub async fn agent_with_token(&self, username: &str, categories: &[&str], max_chats: u8) -> (Ws, String) {
        let token = self.agent_account(username, categories, max_chats).await;
        let mut ws = Ws::agent(self, &token).await;
        ws.send(json!({"type": "set_available", "available": true})).await;
        ws.next_of("profile").await;
        (ws, token)
    }

    /// A customer who joined `category`, their welcome read.
    pub async fn customer(&self, name: &str, category: &str) -> Ws {
        self.customer_joining(json!({"type": "join", "name": name, "category": category}))
            .await
    }

    /// A customer who joined `category` and was told they wait at `place` in line.
    pub async fn customer_queued(&self, name: &str, category: &str, place: u64) -> Ws {
        let mut customer = self.customer(name, category).await;
        assert_eq!(customer.next_of("queued").await["place"], place, "{name}'s place");
        customer
    }

    /// A customer who joined `category` and was paired at once, their `chat_started` read
    /// (the agent's is left to the test): the customer and the chat id.
    pub async fn customer_in_chat(&self, name: &str, category: &str) -> (Ws, Value) {
        let mut customer = self.customer(name, category).await;
        let chat = customer.next_of("chat_started").await["chat_id"].clone();
        (customer, chat)
    }

    /// Carla joined General and was paired with `agent` (its `chat_started` read), then said
    /// `text`, which `agent` got: her socket and the chat id.
    pub async fn carla_said_to(&self, agent: &mut Ws, text: &str) -> (Ws, Value) {
        let (mut carla, chat) = self.customer_in_chat("Carla", "general").await;
        agent.next_of("chat_started").await;
        carla
            .send(json!({"type": "message", "text": text, "client_id": "m1"}))
            .await;
        agent.next_of("message").await;
        (carla, chat)
    }

    /// A customer who joined General with `details` (email, visitor key, page, zone...)
    /// merged into the join frame, their welcome read.
    pub async fn customer_with(&self, name: &str, details: Value) -> Ws {
        let mut join = json!({"type": "join", "name": name, "category": "general"});
        join.as_object_mut()
            .unwrap()
            .extend(details.as_object().unwrap().clone());
        self.customer_joining(join).await
    }

    /// As [`Endpoint::customer_with`], paired into a chat with `agent`, whose
    /// `chat_started` is read too: the customer and the chat id.
    pub async fn paired_customer_with(&self, agent: &mut Ws, name: &str, details: Value) -> (Ws, String) {
        let mut customer = self.customer_with(name, details).await;
        let chat = customer.chat_started().await;
        agent.next_of("chat_started").await;
        (customer, chat)
    }

    /// A customer who sent `join` as their first frame, their welcome read.
    pub async fn customer_joining(&self, join: Value) -> Ws {
        let mut ws = Ws::connect(&self.ws_url("/ws/customer"), &[]).await.unwrap();
        ws.send(join).await;
        let welcome = ws.next_of("welcome").await;
        ws.token = welcome["resume_token"].as_str().map(String::from);
        ws
    }

    /// A customer who joined `category`, their welcome read, the chat they were paired
    /// into and the agent's `chat_started` read: the customer and the chat id.
    pub async fn paired_customer(&self, agent: &mut Ws, name: &str, category: &str) -> (Ws, String) {
        let mut customer = self.customer(name, category).await;
        let chat = customer.chat_started().await;
        agent.next_of("chat_started").await;
        (customer, chat)
    }

    /// Agent Ann (General, created by the admin, signed in, available) and customer Carla
    /// in a chat with her: Ann's socket, Carla's, and the chat id.
    pub async fn agent_and_customer_in_a_chat(&self) -> (Ws, Ws, String) {
        let mut agent = self.agent("ann", &["general"], 1).await;
        let (customer, chat) = self.paired_customer(&mut agent, "Carla", "general").await;
        (agent, customer, chat)
    }
}

/// The real binary on a port of its own, killed (and waited for) when dropped; its
/// address and clients through `Deref`, as a [`TestHub`]'s.
pub struct HubProcess {
    pub endpoint: Endpoint,
    pub child: std::process::Child,
}

impl std::ops::Deref for HubProcess {
    type Target = Endpoint;
    fn deref(&self) -> &Endpoint {
        &self.endpoint
    }
}

impl HubProcess {
    /// Starts the binary with the environment cleared but for PATH, its port, the admin
    /// password, `RUST_LOG=warn`, a rate limit no test reaches (the tests send hundreds
    /// of messages at once) and light password hashes (`SWITCHBOARD_TEST_LIGHT_PASSWORD_HASHES`,
    /// as an in-process test hub's), then `envs` (which may replace those), and waits until
    /// its store is open. With a `dir`, the process runs there and logs to `dir/hub.log`;
    /// without, its output is dropped.
    pub async fn start(dir: Option<&std::path::Path>, envs: &[(&str, &str)]) -> Self {
        let port = crate::archive::free_port();
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"));
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("BIND_ADDR", format!("127.0.0.1:{port}"))
            .env("ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("RUST_LOG", "warn")
            .env("RATE_LIMIT_PER_SEC", "10000")
            .env("RATE_LIMIT_BURST", "10000")
            .env("SWITCHBOARD_TEST_LIGHT_PASSWORD_HASHES", "1")
            .envs(envs.iter().copied());
        match dir {
            Some(dir) => {
                let log = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(dir.join("hub.log"))
                    .unwrap();
                command.current_dir(dir).stdout(log.try_clone().unwrap()).stderr(log);
            }
            None => {
                command
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null());
            }
        }
        // Owned at once, so a hub that never opens its store is still killed and reaped (by `Drop`).
        let hub = HubProcess {
            endpoint: Endpoint {
                addr: SocketAddr::from(([127, 0, 0, 1], port)),
            },
            child: command.spawn().expect("the hub binary starts"),
        };
        wait_until_the_store_is_open(port).await;
        hub
    }

    /// Sends the signal named `name` (TERM, KILL...) to the process.
    pub fn signal(&self, name: &str) {
        let status = std::process::Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Kills the process (SIGKILL) and waits for it to end.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for HubProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A process the test started (a server, a hub), killed (SIGKILL) and waited for when
/// dropped, whatever happens.
pub struct Running(pub std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An in-memory mongod of its own: the running server and its URI.
pub async fn in_memory_mongod() -> (Running, String) {
    let (child, port) = crate::mongod::start_in_memory().await;
    (Running(child), format!("mongodb://127.0.0.1:{port}"))
}

/// Waits until a hub binary started on `port` listens and has opened its store: the port
/// answers "starting" (503 on the API) until then.
pub async fn wait_until_the_store_is_open(port: u16) {
    crate::archive::wait_for_port(port).await;
    let client = reqwest::Client::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let health = match client.get(format!("http://127.0.0.1:{port}/healthz")).send().await {
            Ok(res) => res.json::<Value>().await.unwrap_or_default(),
            Err(_) => Value::Null,
        };
        if health["status"].is_string() && health["status"] != "starting" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the hub never opened its store: {health}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub struct Api {
    pub client: reqwest::Client,
    pub base: String,
    pub token: String,
}

impl Api {
    /// A client that presents `token` as a bearer token (no cookie).
    pub fn bearer(hub: &Endpoint, token: &str) -> Api {
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

    /// GET `path` presenting the token as a bearer token: the response as it came (a
    /// download's headers and bytes, which [`Self::get`] would not keep).
    pub async fn get_response(&self, path: &str) -> reqwest::Response {
        let url = format!("{}{}", self.base, path);
        self.client.get(url).bearer_auth(&self.token).send().await.unwrap()
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

    /// `post`, asserting the answer's status is `status`: the answer.
    pub async fn post_answering(&self, status: u16, path: &str, body: Value) -> Value {
        self.answering(status, reqwest::Method::POST, path, body).await
    }

    /// `post`, asserting it answered 201: the `id` of what it made.
    pub async fn created_id(&self, path: &str, body: Value) -> String {
        let made = self.post_answering(201, path, body).await;
        made["id"]
            .as_str()
            .unwrap_or_else(|| panic!("{path} answered no id: {made}"))
            .to_string()
    }

    /// The secret of an API token named `name` with `scopes`, made by this admin.
    pub async fn api_token_secret(&self, name: &str, scopes: &[&str]) -> String {
        let made = json!({"name": name, "scopes": scopes});
        let created = self.post_answering(201, "/api/admin/api-tokens", made).await;
        created["secret"].as_str().expect("a secret").to_string()
    }

    /// This agent's reply to the offline message `id` (`POST /api/offline-messages/{id}/reply`),
    /// answered 200: the message as it is now.
    pub async fn reply_offline(&self, id: &str, text: &str) -> Value {
        self.post_answering(200, &format!("/api/offline-messages/{id}/reply"), json!({"text": text}))
            .await
    }

    /// `put` of `body` at `path`, again every 50 ms for up to `wait` until it answers 200
    /// (a record still being written, a store coming back): the answer. Never: the test
    /// fails saying `what` did not happen, with the last answer.
    pub async fn put_until_200(&self, path: &str, body: Value, wait: Duration, what: &str) -> Value {
        until_ok(wait, what, async || {
            let (status, answer) = self.put(path, body.clone()).await;
            if status == 200 {
                Ok(answer)
            } else {
                Err(format!("{status} {answer}"))
            }
        })
        .await
    }

    /// `put`, asserting the answer's status is `status`: the answer.
    pub async fn put_answering(&self, status: u16, path: &str, body: Value) -> Value {
        self.answering(status, reqwest::Method::PUT, path, body).await
    }

    async fn answering(&self, status: u16, method: reqwest::Method, path: &str, body: Value) -> Value {
        let (got, answer) = self.call(method, path, Some(body)).await;
        assert_eq!(got, status, "{answer}");
        answer
    }

    /// The account id of `username`, from the admin API.
    pub async fn agent_id(&self, username: &str) -> String {
        let (_, list) = self.get("/api/admin/agents").await;
        let account = find_by(&list, "username", username).expect("the account exists");
        account["id"].as_str().unwrap().to_string()
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::DELETE, path, None).await
    }

    /// Disables the account `username` (`PATCH /api/admin/agents/{id}`), answered 200.
    pub async fn disable_agent(&self, username: &str) {
        let id = self.agent_id(username).await;
        let (status, body) = self
            .patch(&format!("/api/admin/agents/{id}"), json!({"enabled": false}))
            .await;
        assert_eq!(status, 200, "{body}");
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

    /// A socket at `path` opened with the bearer `token` (a session's or an API token's):
    /// it and its first `welcome` frame. A node of a cluster between two leases (a late
    /// renewal on a loaded machine) refuses a sign-in as "the cluster (Redis) is
    /// unavailable; try again shortly": tried again, as the pages do, within the wait.
    /// Refused as too busy, the test fails.
    pub async fn with_bearer(hub: &Endpoint, path: &str, token: &str, welcome: &str) -> (Ws, Value) {
        let auth = format!("Bearer {token}");
        // A lease is regained within a renewal or two; a loaded machine takes longer.
        let deadline = tokio::time::Instant::now() + 4 * WAIT;
        loop {
            let mut ws = Ws::connect(&hub.ws_url(path), &[("authorization", &auth)])
                .await
                .unwrap();
            let first = ws
                .next_matching(|f| f["type"] == welcome || f["code"] == "cluster_unavailable")
                .await;
            if first["type"] == welcome {
                return (ws, first);
            }
            let between_leases = first["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("the cluster (Redis) is unavailable"));
            assert!(between_leases, "no {welcome}: {first}");
            assert!(tokio::time::Instant::now() < deadline, "never a {welcome}: {first}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The agent socket opened with the session `token`, its welcome read.
    pub async fn agent(hub: &Endpoint, token: &str) -> Ws {
        Ws::with_bearer(hub, "/ws/agent", token, "agent_welcome").await.0
    }

    /// A staff member's buddy-list socket, opened with the session `token`: it and its
    /// `buddy_welcome`.
    pub async fn staff_buddy(hub: &Endpoint, token: &str) -> (Ws, Value) {
        Ws::with_bearer(hub, "/ws/buddy", token, "buddy_welcome").await
    }

    pub async fn send(&mut self, value: Value) {
        self.inner.send(Message::Text(value.to_string().into())).await.unwrap();
    }

    pub async fn send_raw(&mut self, text: &str) {
        self.inner.send(Message::Text(text.into())).await.unwrap();
    }

    /// A customer's line in their chat, once the hub acknowledged it: the `ack`.
    pub async fn say(&mut self, text: &str, client_id: &str) -> Value {
        self.send(json!({"type": "message", "text": text, "client_id": client_id}))
            .await;
        self.next_of("ack").await
    }

    /// An agent's (or a buddy's) line in `chat`, once the hub acknowledged it: the `ack`.
    pub async fn say_in(&mut self, chat: &str, text: &str, client_id: &str) -> Value {
        self.send(json!({"type": "message", "chat_id": chat, "text": text, "client_id": client_id}))
            .await;
        self.next_of("ack").await
    }

    /// An agent's internal note in `chat` (its id, a string or a JSON value), once the hub
    /// echoed it back: the `note` frame.
    pub async fn note_in(&mut self, chat: impl serde::Serialize, text: &str, client_id: &str) -> Value {
        self.send(json!({"type": "note", "chat_id": chat, "text": text, "client_id": client_id}))
            .await;
        self.next_matching(|f| f["type"] == "note" && f["client_id"] == client_id)
            .await
    }

    /// The next JSON frame, or `None` if nothing comes within `wait` (or the socket closed).
    pub async fn recv_within(&mut self, wait: Duration) -> Option<Value> {
        // One deadline: the server's heartbeat pings, skipped below, must not start the
        // wait again (a frame that never came kept a test waiting for ever).
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.inner.next()).await {
                Ok(Some(Ok(Message::Text(t)))) => return Some(serde_json::from_str(&t).unwrap()),
                Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) | Err(_) => return None,
                Ok(Some(Ok(_))) => continue,
            }
        }
    }

    /// The next frame of `kind`, remembering the others it passed.
    pub async fn next_of(&mut self, kind: &str) -> Value {
        let what = format!("{kind:?} frame");
        self.next_accepted(WAIT, |f| f["type"] == kind, &what).await
    }

    /// The next frame of `kind`, asserted to hold each of `expected`'s fields with its
    /// value (as [`assert_shows`]); returned for any further look.
    pub async fn next_showing(&mut self, kind: &str, expected: Value) -> Value {
        let frame = self.next_of(kind).await;
        assert_shows(&frame, expected, kind);
        frame
    }

    /// The next `error` frame, asserted to refuse the frame sent with `client_id` with
    /// `code`; returned for any further look.
    pub async fn next_refusal(&mut self, code: &str, client_id: &str) -> Value {
        let refused = self.next_of("error").await;
        let got = (refused["code"].as_str(), refused["client_id"].as_str());
        assert_eq!(got, (Some(code), Some(client_id)), "{refused}");
        refused
    }

    /// The next frame `wanted` accepts, remembering the others it passed.
    pub async fn next_matching(&mut self, wanted: impl Fn(&Value) -> bool) -> Value {
        self.next_matching_within(WAIT, wanted).await
    }

    /// The first frame `wanted` accepts among those already passed over, else the next one
    /// to come: across nodes a frame can overtake the one a test waited for first (a
    /// conversation's status, sent over the bus, before the routing's `chat_started`).
    pub async fn seen_or_next_matching(&mut self, wanted: impl Fn(&Value) -> bool) -> Value {
        match self.seen.iter().position(&wanted) {
            Some(at) => self.seen.remove(at),
            None => self.next_matching(wanted).await,
        }
    }

    /// As [`Ws::next_matching`], waiting up to `wait` (a cluster's reap or fence).
    pub async fn next_matching_within(&mut self, wait: Duration, wanted: impl Fn(&Value) -> bool) -> Value {
        self.next_accepted(wait, wanted, "wanted frame").await
    }

    /// The next frame `wanted` accepts within `wait`, remembering the others it passed;
    /// none: the test fails naming `what` it waited for and what it saw.
    async fn next_accepted(&mut self, wait: Duration, wanted: impl Fn(&Value) -> bool, what: &str) -> Value {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let Some(frame) = self.recv_within(left).await else {
                panic!("no {what} came; saw {:?}", self.seen);
            };
            if wanted(&frame) {
                return frame;
            }
            self.seen.push(frame);
        }
    }

    /// The chat id of the next `chat_started` frame.
    pub async fn chat_started(&mut self) -> String {
        self.chat_id_in("chat_started").await
    }

    /// The next `chat_started`, checked to continue the conversation `chat` (a returning
    /// customer's, or an answered offline message's).
    pub async fn chat_continued(&mut self, chat: &str) -> Value {
        let started = self.next_of("chat_started").await;
        assert_eq!(
            (started["chat_id"].as_str(), started["continued"].as_bool()),
            (Some(chat), Some(true)),
            "{started}"
        );
        started
    }

    /// The invitation id of the next `invited` frame (a buddy's invitation to chat).
    pub async fn invitation_id(&mut self) -> u64 {
        self.next_of("invited").await["invitation"]["invitation_id"]
            .as_u64()
            .unwrap()
    }

    /// The chat id of the next frame of `kind` (`chat_started`, `buddy_chat_started`...).
    pub async fn chat_id_in(&mut self, kind: &str) -> String {
        self.next_of(kind).await["chat_id"].as_str().unwrap().to_string()
    }

    /// Every frame that arrives within `QUIET`, for checking what did not come.
    pub async fn drain(&mut self) -> Vec<Value> {
        let mut frames = vec![];
        while let Some(f) = self.recv_within(QUIET).await {
            frames.push(f);
        }
        frames
    }

    /// The frames of type `kind` among those that arrive within `QUIET` (the others dropped),
    /// for checking what did not come.
    pub async fn drain_of(&mut self, kind: &str) -> Vec<Value> {
        self.drain().await.into_iter().filter(|f| f["type"] == kind).collect()
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

/// The chat id of the `chat_started` the customer `customer` gets, once the agent `agent`
/// got theirs for the same chat.
pub async fn both_told(customer: &mut Ws, agent: &mut Ws) -> String {
    let chat = customer.chat_started().await;
    assert_eq!(agent.next_of("chat_started").await["chat_id"], chat.as_str());
    chat
}

/// The customer `customer` says `text` in their chat: `agent` gets it.
pub async fn a_customer_line_reaches(customer: &mut Ws, agent: &mut Ws, text: &str) {
    customer.send(json!({"type": "message", "text": text})).await;
    assert_eq!(agent.next_of("message").await["text"], text);
}

/// The agent resolves `chat`'s conversation, which ends the live chat: the customer's
/// `chat_ended` frame.
pub async fn resolved(agent: &mut Ws, customer: &mut Ws, chat: impl serde::Serialize) -> Value {
    agent
        .send(json!({"type": "set_conversation_status", "conversation_id": chat, "status": "resolved"}))
        .await;
    customer.next_of("chat_ended").await
}

/// Closes `category` to chats (chat hours of an empty week), as the admin.
pub async fn close_chat_hours(hub: &Endpoint, category: &str) {
    let path = format!("/api/admin/chat-hours/{category}");
    let hours = json!({"category": category, "week": {}});
    hub.admin().await.put_answering(200, &path, hours).await;
}

/// Signs the session `token` out (`POST /api/logout` with it as the bearer), answered 204.
pub async fn logout(hub: &Endpoint, token: &str) {
    let res = reqwest::Client::new()
        .post(hub.url("/api/logout"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
}

/// An anonymous POST of `body` as JSON (no session, no token): its status and answer.
pub async fn post(hub: &Endpoint, path: &str, body: Value) -> (u16, Value) {
    let res = reqwest::Client::new()
        .post(hub.url(path))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// An API answer `(status, body)` asserted to be a refusal: `status`, with the error
/// `code`; the body, for any further look.
#[track_caller]
pub fn refusal((got, body): (u16, Value), status: u16, code: &str) -> Value {
    assert_eq!((got, body["error"]["code"].as_str()), (status, Some(code)), "{body}");
    body
}

/// The `id`s of the objects in the array `list`, in order.
pub fn ids_in(list: &Value) -> Vec<&str> {
    strs_in(list, "id")
}

/// The first object in the array `list` whose `field` is `value`, if one is.
pub fn find_by<'a, T: ?Sized>(list: &'a Value, field: &str, value: &T) -> Option<&'a Value>
where
    Value: PartialEq<T>,
{
    list.as_array().unwrap().iter().find(|item| item[field] == *value)
}

/// The object in the array `list` whose `name` is `name`.
pub fn named<'a>(list: &'a Value, name: &str) -> &'a Value {
    find_by(list, "name", name).unwrap_or_else(|| panic!("no {name:?} in {list}"))
}

/// The object in the array `list` whose `id` is `id`.
pub fn with_id<'a>(list: &'a Value, id: &str) -> &'a Value {
    find_by(list, "id", id).unwrap_or_else(|| panic!("no {id:?} in {list}"))
}

/// The strings in the array `list`, in order.
pub fn strs(list: &Value) -> Vec<&str> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|item| item.as_str().unwrap())
        .collect()
}

/// `frame` cut to the shape of `expected`: for each of `expected`'s fields, the frame's
/// value there (objects followed down, anything else taken whole; a field the frame
/// lacks is null), so that one `assert_eq!` checks several fields and shows them all.
pub fn picked(frame: &Value, expected: &Value) -> Value {
    match expected.as_object() {
        Some(fields) => fields
            .iter()
            .map(|(name, wanted)| (name.clone(), picked(&frame[name], wanted)))
            .collect::<serde_json::Map<_, _>>()
            .into(),
        None => frame.clone(),
    }
}

/// Asserts that `frame` holds each of `expected`'s fields with its value (its other
/// fields not looked at), naming `context` and the frame when it does not.
#[track_caller]
pub fn assert_shows(frame: &Value, expected: Value, context: &str) {
    assert_eq!(picked(frame, &expected), expected, "{context}: {frame}");
}

/// The string `field` of each object in the array `list`, in order.
pub fn strs_in<'a>(list: &'a Value, field: &str) -> Vec<&'a str> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|item| item[field].as_str().unwrap())
        .collect()
}

/// The number `field` of each object in the array `list`, in order.
pub fn u64s_in(list: &Value, field: &str) -> Vec<u64> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|item| item[field].as_u64().unwrap())
        .collect()
}

/// The `id` of each of a page's `items` (an inbox, a listing), in order.
pub fn item_ids(page: &Value) -> Vec<&str> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect()
}

/// Each message's `(seq, text)`, in order (a `chat_started`'s or the archive's `messages`).
pub fn seqs_and_texts(messages: &Value) -> Vec<(u64, &str)> {
    messages
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["seq"].as_u64().unwrap(), m["text"].as_str().unwrap()))
        .collect()
}

/// Types of the frames in `frames`.
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

/// How long a test waits for a mail that must come (retries, restarts: generous).
pub const MAIL_WAIT: Duration = Duration::from_secs(60);

/// A real SMTP server (aiosmtpd, `tests/smtp_sink.py`) on `port`, writing what it receives
/// to a maildir and refusing for good (550) a recipient whose address starts with
/// "bounce"; stopped (and its maildir removed) when dropped.
pub struct SmtpSink {
    child: std::process::Child,
    maildir: std::path::PathBuf,
    pub port: u16,
}

impl SmtpSink {
    pub async fn start(port: u16) -> Self {
        let python = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
        assert!(
            python.exists(),
            "{} is missing: run scripts/ensure-test-deps.sh (make test does)",
            python.display()
        );
        let maildir = std::env::temp_dir().join(format!("switchboard-mail-{}", uuid::Uuid::new_v4().simple()));
        let child = std::process::Command::new(python)
            .args(["-m", "aiosmtpd", "-n", "-c", "smtp_sink.Sink"])
            .arg(&maildir)
            .env(
                "PYTHONPATH",
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests"),
            )
            .args(["-l", &format!("127.0.0.1:{port}")])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("aiosmtpd starts");
        // Owned at once, so it is stopped (and waited for) on every path, a failed start too.
        let sink = Self { child, maildir, port };
        for _ in 0..200 {
            if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return sink;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("aiosmtpd did not listen on {port}");
    }

    /// Every mail received so far, raw, oldest first.
    pub fn mails(&self) -> Vec<String> {
        let mut files: Vec<_> = std::fs::read_dir(self.maildir.join("new"))
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        files.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
        files.iter().map(|p| std::fs::read_to_string(p).unwrap()).collect()
    }

    /// The mails received so far, oldest first, quoted-printable undone (for reading a
    /// code or a link out of the text).
    pub fn unquoted_mails(&self) -> Vec<String> {
        self.mails()
            .iter()
            .map(|m| m.replace("=\r\n", "").replace("=\n", "").replace("=3D", "="))
            .collect()
    }

    /// Waits until at least `n` mails are there and returns them.
    pub async fn wait_for(&self, n: usize) -> Vec<String> {
        let deadline = std::time::Instant::now() + MAIL_WAIT;
        loop {
            let mails = self.mails();
            if mails.len() >= n {
                return mails;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{n} mails never arrived: {mails:#?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.maildir);
    }
}

/// One received mail, parsed by the well-kept `mail-parser` crate. `calendar` and
/// `calendar_type` are empty when it has no text/calendar part.
pub struct Mail {
    pub to: String,
    /// The From display name, RFC 2047 decoded ("" without one).
    pub from_name: String,
    pub from_address: String,
    pub subject: String,
    pub message_id: String,
    pub text: String,
    pub html: String,
    pub calendar: String,
    /// `text/calendar method=REQUEST` and the like.
    pub calendar_type: String,
}

pub fn parse_mail(raw: &str) -> Mail {
    use mail_parser::MimeHeaders;
    let message = mail_parser::MessageParser::default()
        .parse(raw.as_bytes())
        .expect("a parsable mail");
    let calendar_part = message.attachments().find(|p| {
        p.content_type()
            .is_some_and(|c| c.c_type == "text" && c.subtype() == Some("calendar"))
    });
    let (calendar, calendar_type) = match calendar_part {
        Some(part) => {
            let ct = part.content_type().unwrap();
            (
                String::from_utf8(part.contents().to_vec()).unwrap(),
                format!(
                    "{}/{} method={}",
                    ct.c_type,
                    ct.subtype().unwrap_or(""),
                    ct.attribute("method").unwrap_or("")
                ),
            )
        }
        None => Default::default(),
    };
    let from = message.from().and_then(|f| f.first());
    Mail {
        to: message
            .to()
            .and_then(|t| t.first())
            .and_then(|a| a.address())
            .unwrap_or_default()
            .to_string(),
        from_name: from.and_then(|a| a.name()).unwrap_or_default().to_string(),
        from_address: from.and_then(|a| a.address()).unwrap_or_default().to_string(),
        subject: message.subject().unwrap_or_default().to_string(),
        message_id: message.message_id().unwrap_or_default().to_string(),
        text: message.body_text(0).unwrap_or_default().to_string(),
        html: message.body_html(0).unwrap_or_default().to_string(),
        calendar,
        calendar_type,
    }
}

/// Asserts what a mail client needs to read `raw` as it was written, checked on the parsed
/// mail: `MIME-Version: 1.0`; every text part (plain, HTML, calendar) declared UTF-8; no
/// raw 8-bit byte anywhere (non-ASCII headers RFC 2047 encoded, bodies transfer-encoded); a
/// `Date`; and a `Message-ID` whose left side is an RFC 5322 dot-atom, on `domain` (the
/// domain of `MAIL_FROM`).
pub fn assert_mime_utf8(raw: &str, domain: &str) {
    use mail_parser::MimeHeaders;
    assert!(raw.is_ascii(), "a header or body sent as raw 8-bit bytes:\n{raw}");
    let message = mail_parser::MessageParser::default()
        .parse(raw.as_bytes())
        .expect("a parsable mail");
    assert_eq!(
        message.header_raw("MIME-Version").map(str::trim),
        Some("1.0"),
        "no MIME-Version: 1.0 in:\n{raw}"
    );
    assert!(message.date().is_some(), "no Date in:\n{raw}");
    let mut text_parts = 0;
    for part in &message.parts {
        let Some(kind) = part.content_type() else { continue };
        if kind.c_type.eq_ignore_ascii_case("text") {
            text_parts += 1;
            assert!(
                kind.attribute("charset")
                    .is_some_and(|c| c.eq_ignore_ascii_case("utf-8")),
                "a text/{} part not declared UTF-8 in:\n{raw}",
                kind.subtype().unwrap_or("")
            );
        }
    }
    assert!(text_parts > 0, "no text part in:\n{raw}");
    let id = message.message_id().unwrap_or_default();
    let (left, right) = id
        .rsplit_once('@')
        .unwrap_or_else(|| panic!("Message-ID {id:?} has no domain in:\n{raw}"));
    assert_eq!(right, domain, "the Message-ID is not on the desk's domain in:\n{raw}");
    let atext = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c);
    assert!(
        !left.is_empty() && left.split('.').all(|atom| !atom.is_empty() && atom.chars().all(atext)),
        "the Message-ID's left side {left:?} is not a dot-atom in:\n{raw}"
    );
}

// ---- appointments ----

/// The UTC date `days` from today, `YYYY-MM-DD`. The test desk is in UTC, 10:00-17:00.
pub fn day_in(days: i64) -> String {
    use jiff::ToSpan;
    (jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC).date() + days.days()).to_string()
}

/// `hour` o'clock UTC, `days` from today.
pub fn at(days: i64, hour: u8) -> String {
    format!("{}T{hour:02}:00:00Z", day_in(days))
}

/// An SMTP sink on a free port and a hub that mails through it with `mail` settings
/// (given the sink's port).
pub async fn mailing_hub<F: FnOnce(&mut Settings)>(mail: impl FnOnce(u16) -> F) -> (SmtpSink, TestHub) {
    let port = crate::archive::free_port();
    let smtp = SmtpSink::start(port).await;
    let hub = TestHub::with(mail(port)).await;
    (smtp, hub)
}

/// An SMTP sink and a hub that mails through it with `mail` settings (given the sink's
/// port) as "Kundendienst Köln <desk@example.org>" (a From with umlauts), then `tweak`.
pub async fn koeln_desk<F: FnOnce(&mut Settings)>(
    mail: impl FnOnce(u16) -> F,
    tweak: impl FnOnce(&mut Settings),
) -> (SmtpSink, TestHub) {
    let port = crate::archive::free_port();
    let smtp = SmtpSink::start(port).await;
    let hub = TestHub::with(|s| {
        mail(port)(s);
        s.mail.from = "Kundendienst Köln <desk@example.org>".into();
        tweak(s);
    })
    .await;
    (smtp, hub)
}

/// The first mail `smtp` receives from a [`koeln_desk`], for the address `to`: UTF-8 MIME
/// from the desk's domain, its From the desk's name with umlauts intact. Returns it raw and
/// parsed.
pub async fn koeln_mail_to(smtp: &SmtpSink, to: &str) -> (String, Mail) {
    let raw = smtp.wait_for(1).await[0].clone();
    assert_mime_utf8(&raw, "example.org");
    let mail = parse_mail(&raw);
    assert_eq!(
        (mail.from_name.as_str(), mail.from_address.as_str(), mail.to.as_str()),
        ("Kundendienst Köln", "desk@example.org", to)
    );
    (raw, mail)
}

/// [`koeln_mail_to`] Jörg (`joerg@example.com`).
pub async fn koeln_mail_to_joerg(smtp: &SmtpSink) -> (String, Mail) {
    koeln_mail_to(smtp, "joerg@example.com").await
}

/// An agent's message that names no chat is refused `bad_frame`, and one naming a chat
/// that does not exist `unknown_chat`: neither is relayed anywhere.
pub async fn messages_naming_no_chat_are_refused(agent: &mut Ws) {
    agent.send(json!({"type": "message", "text": "where?"})).await;
    assert_eq!(agent.next_of("error").await["code"], "bad_frame");
    agent
        .send(json!({"type": "message", "chat_id": "not-a-chat", "text": "hi"}))
        .await;
    assert_eq!(agent.next_of("error").await["code"], "unknown_chat");
}

/// An anonymous GET of a JSON answer, whatever its status.
pub async fn get_json(hub: &Endpoint, path: &str) -> Value {
    reqwest::get(hub.url(path)).await.unwrap().json().await.unwrap()
}

/// A GET of `url` by `client`, sent with the one header `name: value`.
pub async fn get_with_header(client: &reqwest::Client, url: &str, (name, value): (&str, &str)) -> reqwest::Response {
    client.get(url).header(name, value).send().await.unwrap()
}

/// An anonymous GET (no session, no token): its status and answer.
pub async fn get(hub: &Endpoint, path: &str) -> (u16, Value) {
    let res = reqwest::get(hub.url(path)).await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// The `error.code` of an answer, or `(no code)`.
pub fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("(no code)")
}

/// The starts of the free slots of a day's answer.
pub fn free_starts(day: &Value) -> Vec<String> {
    day["slots"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["free"] == true)
        .map(|s| s["start"].as_str().unwrap().to_string())
        .collect()
}

/// What `probe` finds, asked every 50 ms until it finds something or `wait` has passed
/// (then `None`): the one way a test waits for what a hub does after the fact.
pub async fn polled<T>(wait: Duration, mut probe: impl AsyncFnMut() -> Option<T>) -> Option<T> {
    let deadline = std::time::Instant::now() + wait;
    loop {
        if let Some(found) = probe().await {
            return Some(found);
        }
        if std::time::Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What `probe` gives once it is `Ok`, asked every 50 ms for up to `wait`; panics saying
/// `what` never came, with what the probe saw last (its `Err`).
pub async fn until_ok<T, Seen: std::fmt::Display>(
    wait: Duration,
    what: &str,
    mut probe: impl AsyncFnMut() -> Result<T, Seen>,
) -> T {
    let mut last = None;
    let found = polled(wait, async || match probe().await {
        Ok(found) => Some(found),
        Err(seen) => {
            last = Some(seen);
            None
        }
    })
    .await;
    found.unwrap_or_else(|| panic!("{what}: {}", last.map(|seen| seen.to_string()).unwrap_or_default()))
}

/// `value` as `Ok` when `wanted` accepts it, otherwise as what was seen instead: a probe's
/// answer for [`until_ok`].
pub fn accepted<T>(value: T, wanted: impl FnOnce(&T) -> bool) -> Result<T, T> {
    if wanted(&value) { Ok(value) } else { Err(value) }
}

/// `hub`'s `/healthz` once `ready` accepts it, asked for up to `wait`; panics saying
/// `what` never came, with the last health seen.
pub async fn health_when(hub: &Endpoint, wait: Duration, what: &str, ready: impl Fn(&Value) -> bool) -> Value {
    until_ok(wait, what, async || {
        let health: Value = reqwest::get(hub.url("/healthz")).await.unwrap().json().await.unwrap();
        accepted(health, &ready)
    })
    .await
}

/// The archive's record of conversation `id` once `ready` holds for it, asked for up to
/// `wait` (`None` if it never does).
pub async fn archived_when(
    store: &SharedStore,
    id: &str,
    wait: Duration,
    ready: impl Fn(&Conversation) -> bool,
) -> Option<Conversation> {
    polled(wait, async || {
        store.conversation(id).await.ok().filter(|record| ready(record))
    })
    .await
}

/// The seqs and texts of conversation `id` once the archive has closed it with `n` lines,
/// asked for up to `wait`; panics with what the archive held last.
pub async fn closed_with_lines(store: &SharedStore, id: &str, n: usize, wait: Duration) -> Vec<(u64, String)> {
    let what = format!("conversation {id} never archived as closed with {n} lines");
    until_ok(wait, &what, async || {
        let record = store.conversation(id).await.ok();
        let lines: Vec<(u64, String)> = record
            .iter()
            .flat_map(|r| r.messages.iter().map(|m| (m.seq, m.text.clone())))
            .collect();
        let closed = record.as_ref().is_some_and(|r| r.closed.is_some());
        if closed && lines.len() == n {
            Ok(lines)
        } else {
            Err(format!("found {lines:?}, closed: {closed}"))
        }
    })
    .await
}

/// The conversation `id` once the archive has closed it (`None` if it never does in `wait`).
pub async fn closed_conversation(store: &SharedStore, id: &str, wait: Duration) -> Option<Conversation> {
    archived_when(store, id, wait, |record| record.closed.is_some()).await
}

/// The cluster for a test of a cross-node path: one Redis server, one store and a scratch
/// directory for the nodes' data, all living as long as this.
pub struct Cluster {
    pub redis: crate::redis_server::RedisServer,
    pub store: SharedStore,
    scratch: crate::archive::TempDir,
}

impl Cluster {
    /// A cluster on a fresh in-memory store.
    pub async fn start(tag: &str) -> Self {
        Self::on(tag, Arc::new(MemoryStore::new())).await
    }

    /// A cluster on `store`.
    pub async fn on(tag: &str, store: SharedStore) -> Self {
        let scratch = crate::archive::TempDir::new(tag);
        let redis = crate::redis_server::RedisServer::start().await;
        Cluster { redis, store, scratch }
    }

    /// Node `name` (alpha, beta...), with the test settings changed by `tweak`.
    pub async fn node(&self, name: &str, tweak: impl FnOnce(&mut Settings)) -> TestHub {
        crate::cluster_hub::node_with(self.store.clone(), &self.redis, name, &self.scratch, tweak).await
    }

    /// Nodes alpha and beta, with the test settings changed by `tweak`.
    pub async fn two_nodes(&self, tweak: impl Fn(&mut Settings)) -> (TestHub, TestHub) {
        let alpha = self.node("alpha", &tweak).await;
        let beta = self.node("beta", &tweak).await;
        (alpha, beta)
    }

    /// Nodes alpha, beta and gamma, with the test settings changed by `tweak`.
    pub async fn three_nodes(&self, tweak: impl Fn(&mut Settings)) -> (TestHub, TestHub, TestHub) {
        let (alpha, beta) = self.two_nodes(&tweak).await;
        let gamma = self.node("gamma", &tweak).await;
        (alpha, beta, gamma)
    }

    /// Nodes alpha and beta of a fresh cluster, the agent "ann" (general, one chat) on alpha,
    /// and the customer "Carla" who joined on node `carla_on` (0: alpha, 1: beta) in a chat
    /// with her, both told. The cluster comes first, to be kept until the nodes are dropped.
    pub async fn ann_chatting_with_carla(tag: &str, carla_on: usize) -> (Cluster, [TestHub; 2], Ws, Ws, Value) {
        let cluster = Cluster::start(tag).await;
        let (alpha, beta) = cluster.two_nodes(|_| {}).await;
        let mut ann = alpha.agent("ann", &["general"], 1).await;
        let (carla, chat) = [&alpha, &beta][carla_on].customer_in_chat("Carla", "general").await;
        ann.next_of("chat_started").await;
        (cluster, [alpha, beta], ann, carla, chat)
    }

    /// As [`Cluster::ann_chatting_with_carla`], once Ann has heard that the chat's
    /// conversation is open (its `conversation_status`, which across nodes may come
    /// before her `chat_started`).
    pub async fn ann_chatting_with_carla_open(tag: &str, carla_on: usize) -> (Cluster, [TestHub; 2], Ws, Ws, Value) {
        let (cluster, nodes, mut ann, carla, chat) = Self::ann_chatting_with_carla(tag, carla_on).await;
        let opened = ann
            .seen_or_next_matching(|f| f["type"] == "conversation_status" && f["conversation_id"] == chat)
            .await;
        assert_eq!(opened["status"], "open", "{opened}");
        (cluster, nodes, ann, carla, chat)
    }
}

/// A desk to test against, set up in one statement: one hub, or nodes alpha, beta, gamma…
/// of one fresh cluster, with the test settings; and agents connected and available on
/// them, each with its categories and chat limit, in the order added. Awaited, it hands the
/// nodes and the agents over as arrays, as many as the caller's pattern names (`N` nodes,
/// `A` agents):
///
/// `let (_cluster, [alpha, beta], [mut ann]) = Desk::across("tag").on(1, "ann", &["general"], 1).await;`
pub struct Desk<const N: usize, const A: usize> {
    /// The cluster's tag; none: one hub on its own.
    cluster: Option<String>,
    /// Each agent's node (its index), username, categories and chat limit.
    agents: Vec<(usize, String, Vec<String>, u8)>,
}

impl<const N: usize, const A: usize> Desk<N, A> {
    /// One hub, with the test settings.
    pub fn hub() -> Self {
        Desk {
            cluster: None,
            agents: vec![],
        }
    }

    /// Nodes of a fresh cluster (scratch directory named after `tag`), alpha first.
    pub fn across(tag: &str) -> Self {
        Desk {
            cluster: Some(tag.to_string()),
            ..Self::hub()
        }
    }

    /// An agent on the first node (the hub).
    pub fn agent(self, username: &str, categories: &[&str], max_chats: u8) -> Self {
        self.on(0, username, categories, max_chats)
    }

    /// An agent on node `node` (0: alpha).
    pub fn on(mut self, node: usize, username: &str, categories: &[&str], max_chats: u8) -> Self {
        let categories = categories.iter().map(|c| c.to_string()).collect();
        self.agents.push((node, username.to_string(), categories, max_chats));
        self
    }

    /// Starts the nodes and connects the agents, one after the other. The cluster comes
    /// first, to be kept until the nodes are dropped (none for one hub).
    async fn open(self) -> (Option<Cluster>, [TestHub; N], [Ws; A]) {
        assert_eq!(self.agents.len(), A, "the pattern names every agent added");
        let (cluster, nodes) = match &self.cluster {
            None => {
                assert_eq!(N, 1, "one hub on its own");
                (None, vec![TestHub::start().await])
            }
            Some(tag) => {
                let cluster = Cluster::start(tag).await;
                let mut nodes = Vec::with_capacity(N);
                for name in ["alpha", "beta", "gamma", "delta", "epsilon"].into_iter().take(N) {
                    nodes.push(cluster.node(name, |_| {}).await);
                }
                (Some(cluster), nodes)
            }
        };
        let mut agents = Vec::with_capacity(A);
        for (node, username, categories, max_chats) in &self.agents {
            let categories: Vec<&str> = categories.iter().map(String::as_str).collect();
            agents.push(nodes[*node].agent(username, &categories, *max_chats).await);
        }
        let nodes = nodes.try_into().unwrap_or_else(|_| panic!("at most five nodes"));
        let agents = agents.try_into().unwrap_or_else(|_| unreachable!("as many as added"));
        (cluster, nodes, agents)
    }
}

impl<const N: usize, const A: usize> std::future::IntoFuture for Desk<N, A> {
    type Output = (Option<Cluster>, [TestHub; N], [Ws; A]);
    type IntoFuture = std::pin::Pin<Box<dyn std::future::Future<Output = Self::Output>>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.open())
    }
}
