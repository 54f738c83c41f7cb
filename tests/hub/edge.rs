//! The HTTP edge under attack: forged forwarded addresses, connection exhaustion,
//! browser hardening headers, who may read metrics and health, refused requests
//! on pooled connections.

use std::net::IpAddr;

use serde_json::json;

use crate::common::*;

/// The address a same-host proxy would connect from in these tests.
const PROXY: &str = "127.0.0.3";

/// A client that connects from `PROXY`, as a proxy on the hub's host would.
fn through_proxy() -> reqwest::Client {
    client_from(PROXY).build().unwrap()
}

/// A client that connects from the loopback address `address` (each test's own, so that
/// per-address limits and whitelists see it apart from the others).
fn client_from(address: &str) -> reqwest::ClientBuilder {
    reqwest::Client::builder().local_address(address.parse::<IpAddr>().unwrap())
}

/// The status of the admin's sign-in sent by `client` with `X-Forwarded-For: forwarded`.
async fn admin_login_forwarded(client: &reqwest::Client, hub: &TestHub, forwarded: &str) -> u16 {
    let res = client
        .post(hub.url("/api/login"))
        .header("x-forwarded-for", forwarded)
        .json(&json!({"username": "admin", "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    res.status().as_u16()
}

/// One unparsable hop made the whole chain fall back to the
/// proxy's own, whitelisted, address; the client's entries must never be read past
/// the rightmost untrusted one.
#[tokio::test]
async fn a_forged_forwarded_chain_does_not_pass_the_whitelist() {
    let hub = TestHub::with(|s| s.access.trusted_proxies = vec![format!("{PROXY}/32").parse().unwrap()]).await;
    let client = through_proxy();
    for forged in [
        "x, 203.0.113.5",
        "203.0.113.5:4711",
        ", 203.0.113.5",
        "127.0.0.1, 203.0.113.5",
        "[2001:db8::5]:443",
        "nonsense",
        "127.0.0.1, unknown",
    ] {
        assert_eq!(
            admin_login_forwarded(&client, &hub, forged).await,
            403,
            "X-Forwarded-For: {forged}"
        );
        let res = get_with_header(&client, &hub.url("/api/admin/agents"), ("x-forwarded-for", forged)).await;
        assert_eq!(res.status(), 403, "X-Forwarded-For: {forged}");
    }
    // A real loopback client behind the proxy, in the forms a proxy writes, is still let in.
    for honest in ["127.0.0.1", "127.0.0.1:5555", "203.0.113.5, 127.0.0.1"] {
        assert_eq!(
            admin_login_forwarded(&client, &hub, honest).await,
            200,
            "X-Forwarded-For: {honest}"
        );
    }
    // The agent websocket applies the same rule.
    let err = Ws::connect_from(
        PROXY,
        &hub.ws_url("/ws/agent"),
        &[
            ("x-forwarded-for", "x, 203.0.113.5"),
            ("authorization", "Bearer whatever"),
        ],
    )
    .await
    .err()
    .unwrap();
    assert!(err.to_string().contains("403"), "{err}");
    hub.stop().await;
}

/// The real binary as a separate process, with its own open-file limit.
pub(crate) struct HubProcess {
    child: std::process::Child,
    pub(crate) addr: std::net::SocketAddr,
    /// What it printed so far (the banner, then the log).
    output: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    /// Its working directory, removed with it.
    _dir: tempfile::TempDir,
}

impl HubProcess {
    /// Starts `switchboard` with `env` on a free loopback port, its open-file limit set to
    /// `soft`/`hard` before it runs (as `prlimit --nofile=soft:hard` would).
    pub(crate) fn start(env: &[(&str, &str)], soft: u64, hard: u64) -> HubProcess {
        use std::io::BufRead;
        use std::os::unix::process::CommandExt;
        let dir = tempfile::Builder::new().prefix("switchboard-edge-").tempdir().unwrap();
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"));
        command
            .current_dir(&dir)
            .env("STORE", "memory")
            .env("BIND_ADDR", "127.0.0.1:0")
            .env("ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::piped());
        // SAFETY: setrlimit is async-signal-safe and touches only the child about to exec.
        unsafe {
            command.pre_exec(move || {
                let limit = libc::rlimit {
                    rlim_cur: soft,
                    rlim_max: hard,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = command.spawn().expect("the switchboard binary starts");
        let output = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn({
            let output = output.clone();
            move || {
                for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                    if let Some(rest) = line.split("listening on http://").nth(1) {
                        let _ = tx.send(rest.split_whitespace().next().unwrap().to_string());
                    }
                    output.lock().unwrap().push(line);
                }
            }
        });
        let addr = rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("the hub says where it listens")
            .parse()
            .unwrap();
        HubProcess {
            child,
            addr,
            output,
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub(crate) fn printed(&self) -> String {
        self.output.lock().unwrap().join("\n")
    }
}

impl Drop for HubProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Opens a TCP connection to `to` from the loopback address `from`.
pub(crate) async fn tcp_from(from: &str, to: std::net::SocketAddr) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind(std::net::SocketAddr::new(from.parse().unwrap(), 0))
        .unwrap();
    socket.connect(to).await.unwrap()
}

/// Has the server closed `stream` (end of file or reset) within `wait`?
pub(crate) async fn closed_within(stream: &mut tokio::net::TcpStream, wait: std::time::Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            // A 408 or 400 before the close is fine; keep reading to the end.
            Ok(Ok(_)) => continue,
        }
    }
}

/// 600 idle or half-sent connections against a hub whose open-file
/// limit is 512 made `/healthz` and every websocket upgrade time out, and a half-sent
/// request line stayed open for 70 s.
#[tokio::test]
async fn idle_and_half_sent_connections_do_not_exhaust_the_hub() {
    use tokio::io::AsyncWriteExt;
    let hub = HubProcess::start(&[("HTTP_HEADER_TIMEOUT_SECS", "2")], 256, 512);
    // The hub raised its own soft limit to the hard one, and said so.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !hub.printed().contains("open-file limit") && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let printed = hub.printed();
    assert!(
        printed
            .lines()
            .any(|l| l.contains("open-file limit") && l.contains("512")),
        "{printed}"
    );
    // The attacker: 600 connections from one address, half of them with a request line and no end.
    let mut attack = Vec::new();
    for i in 0..600 {
        let mut tcp = tcp_from("127.0.0.5", hub.addr).await;
        if i % 2 == 0 {
            let _ = tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: hub\r\n").await;
        }
        attack.push(tcp);
    }
    // Everyone else is still served: health and a customer's websocket.
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .unwrap();
    let res = client.get(hub.url("/healthz")).send().await.expect("/healthz answers");
    assert_eq!(res.status(), 200);
    let _ws = customer_welcomed_within(&hub, 10).await;
    // Every attacking connection is closed: beyond the cap at once, the rest at the header timeout.
    for (i, tcp) in attack.iter_mut().enumerate() {
        assert!(
            closed_within(tcp, std::time::Duration::from_secs(20)).await,
            "attacking connection {i} is still open"
        );
    }
    // And the attacker's address may connect again once its connections are gone.
    let res = client_from("127.0.0.5")
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .unwrap()
        .get(hub.url("/healthz"))
        .send()
        .await
        .expect("/healthz answers the former attacker");
    assert_eq!(res.status(), 200);
}

/// A customer whose websocket upgrade `hub` answers within `secs` seconds joins and is
/// welcomed; their connection is returned, to be kept open as long as the caller needs.
async fn customer_welcomed_within(hub: &HubProcess, secs: u64) -> Ws {
    let ws_url = format!("ws://{}/ws/customer", hub.addr);
    let connect = Ws::connect(&ws_url, &[]);
    let mut ws = tokio::time::timeout(std::time::Duration::from_secs(secs), connect)
        .await
        .expect("the websocket upgrade answers")
        .unwrap();
    ws.send(json!({"type": "join", "name": "Carla", "category": "general"}))
        .await;
    ws.next_of("welcome").await;
    ws
}

/// Sends `requests` on one keep-alive connection, all at once, and reads until the
/// server closes or goes quiet; returns everything it answered.
async fn pipelined(addr: std::net::SocketAddr, requests: &[Vec<u8>]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    for request in requests {
        // The server may close early; what it answered so far is the result.
        if tcp.write_all(request).await.is_err() {
            break;
        }
    }
    let mut answer = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match tokio::time::timeout(std::time::Duration::from_secs(3), tcp.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => answer.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

fn request_with_body(method: &str, path: &str, extra: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "{method} {path} HTTP/1.1\r\nHost: hub\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

/// A refused request whose body the hub did not read was followed by
/// the hub closing the connection without saying so, and a pooled client's next request
/// on it got no answer. Either every request is answered, or the refusal says
/// `Connection: close`.
#[tokio::test]
async fn a_refused_request_with_an_unread_body_does_not_strand_the_next_one() {
    let hub = TestHub::with(|s| s.access.agent_whitelist = vec!["127.0.0.1/32".parse().unwrap()]).await;
    let next = b"GET /api/categories HTTP/1.1\r\nHost: hub\r\n\r\n".to_vec();
    let big = vec![b' '; 256 * 1024];
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "401, small body",
            request_with_body("POST", "/api/admin/agents", "", b"{\"username\":\"x\"}"),
        ),
        (
            "401, big body",
            request_with_body("POST", "/api/admin/agents", "", &big),
        ),
        (
            "403, big body",
            request_with_body("POST", "/api/admin/agents", "Authorization: Bearer nonsense\r\n", &big),
        ),
        ("404, big body", request_with_body("POST", "/api/nowhere", "", &big)),
        ("405, big body", request_with_body("POST", "/api/categories", "", &big)),
    ];
    for (case, refused) in cases {
        let answer = pipelined(hub.addr, &[refused, next.clone()]).await;
        let responses = answer.matches("HTTP/1.1 ").count();
        let first_head = answer.split("\r\n\r\n").next().unwrap_or_default().to_ascii_lowercase();
        assert!(first_head.starts_with("http/1.1 4"), "{case}: {answer:.300}");
        assert!(
            responses == 2 || first_head.contains("connection: close"),
            "{case}: the next request got no answer and the close was not announced:\n{answer:.600}"
        );
    }
    hub.stop().await;
}

/// `/metrics` (live figures per category) and the details of
/// `/healthz` and `/readyz` answered any address.
#[tokio::test]
async fn metrics_and_health_details_are_for_the_whitelist_or_a_token() {
    const TOKEN: &str = "scraper-token-0123456789";
    // Loopback is outside the whitelist here, so the test client is an outsider.
    let hub = TestHub::with(|s| {
        s.access.agent_whitelist = vec!["10.9.0.0/16".parse().unwrap()];
        s.http.metrics_token = Some(TOKEN.into());
    })
    .await;
    let client = reqwest::Client::new();
    // Round 2, finding 8: a token would let this caller in, so the answer is 401 with a
    // challenge naming the scheme (it was 403, which tells a scraper no credential helps).
    let res = client.get(hub.url("/metrics")).send().await.unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(header(&res, "www-authenticate"), "Bearer realm=\"metrics\"");
    let res = client
        .get(hub.url("/metrics"))
        .bearer_auth("scraper-token-wrong-guess")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert!(header(&res, "www-authenticate").starts_with("Bearer"));
    let res = client.get(hub.url("/metrics")).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("switchboard_"));
    for path in ["/healthz", "/readyz"] {
        let body: serde_json::Value = client.get(hub.url(path)).send().await.unwrap().json().await.unwrap();
        assert_eq!(body, json!({"status": "ok"}), "{path} shows outsiders its status only");
    }
    hub.stop().await;
    // Without METRICS_TOKEN no credential helps an outsider: 403, no challenge.
    let hub = TestHub::with(|s| s.access.agent_whitelist = vec!["10.9.0.0/16".parse().unwrap()]).await;
    let res = client.get(hub.url("/metrics")).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(res.status(), 403);
    assert_eq!(header(&res, "www-authenticate"), "");
    hub.stop().await;
    // Whitelisted callers (the default: loopback) read everything without a token.
    let hub = TestHub::start().await;
    let res = client.get(hub.url("/metrics")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let body = get_json(&hub, "/healthz").await;
    assert_eq!(body["status"], "ok");
    assert!(body.get("archive_backlog").is_some(), "{body}");
    hub.stop().await;
}

fn header<'a>(res: &'a reqwest::Response, name: &str) -> &'a str {
    res.headers().get(name).map(|v| v.to_str().unwrap()).unwrap_or_default()
}

/// No browser hardening headers on the pages, the token of a login
/// cacheable, and a session cookie never `Secure` and without a lifetime.
#[tokio::test]
async fn pages_and_api_carry_hardening_headers_and_the_cookie_its_attributes() {
    let hub = TestHub::with(|s| s.access.trusted_proxies = vec![format!("{PROXY}/32").parse().unwrap()]).await;
    let client = reqwest::Client::new();
    for path in [
        "/",
        "/admin.html",
        "/agent.html",
        "/buddy.html",
        "/api/categories",
        "/api/nowhere",
    ] {
        let res = client.get(hub.url(path)).send().await.unwrap();
        let csp = header(&res, "content-security-policy");
        for directive in [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(csp.contains(directive), "{path}: CSP {csp:?} lacks {directive}");
        }
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert_eq!(header(&res, "x-frame-options"), "DENY", "{path}");
        assert_eq!(header(&res, "x-content-type-options"), "nosniff", "{path}");
        assert_eq!(header(&res, "referrer-policy"), "no-referrer", "{path}");
        if path.ends_with(".html") || path == "/" {
            // The policy forbids inline scripts and styles: the pages must have none.
            let html = res.text().await.unwrap();
            assert!(!html.contains("style="), "{path} has an inline style");
            assert!(!html.contains("<style"), "{path} has a style element");
            for script in html.split("<script").skip(1) {
                let tag = script.split('>').next().unwrap();
                assert!(tag.contains("src="), "{path} has an inline script");
            }
        }
    }

    let url = hub.url("/api/login");
    let login = |client: &reqwest::Client, headers: &[(&str, &str)]| {
        let mut req = client
            .post(&url)
            .json(&json!({"username": "admin", "password": ADMIN_PASSWORD}));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send()
    };
    // Plain http: the cookie lives as long as the session, not Secure; the token is not cached.
    let res = login(&client, &[]).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(header(&res, "cache-control"), "no-store");
    let cookie = header(&res, "set-cookie").to_string();
    assert!(cookie.contains("Max-Age=43200"), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(!cookie.contains("Secure"), "{cookie}");
    // Anyone may claim https; only a trusted proxy is believed.
    let res = login(&client, &[("x-forwarded-proto", "https")]).await.unwrap();
    assert!(!header(&res, "set-cookie").contains("Secure"));
    let res = login(&through_proxy(), &[("x-forwarded-proto", "https")])
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        header(&res, "set-cookie").contains("Secure"),
        "over https through the proxy"
    );
    let res = login(&through_proxy(), &[("x-forwarded-proto", "http")]).await.unwrap();
    assert!(!header(&res, "set-cookie").contains("Secure"));
    hub.stop().await;
    // COOKIE_SECURE forces it.
    let hub = TestHub::with(|s| s.http.cookie_secure = true).await;
    let res = client
        .post(hub.url("/api/login"))
        .json(&json!({"username": "admin", "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert!(header(&res, "set-cookie").contains("Secure"));
    hub.stop().await;
}

/// The per-address cap counts websockets for as long as they are open (the upgrade
/// keeps its connection's place), and no other address is affected.
#[tokio::test]
async fn open_websockets_count_against_their_address_until_they_close() {
    let hub = TestHub::with(|s| s.http.max_connections_per_address = 2).await;
    let url = hub.ws_url("/ws/customer");
    let first = Ws::connect_from("127.0.0.6", &url, &[]).await.unwrap();
    let _second = Ws::connect_from("127.0.0.6", &url, &[]).await.unwrap();
    assert!(
        Ws::connect_from("127.0.0.6", &url, &[]).await.is_err(),
        "a third connection from the address is refused"
    );
    let res = client_from("127.0.0.6")
        .build()
        .unwrap()
        .get(hub.url("/healthz"))
        .send()
        .await;
    assert!(res.is_err(), "plain HTTP counts too");
    assert!(
        Ws::connect_from("127.0.0.7", &url, &[]).await.is_ok(),
        "another address is not affected"
    );
    drop(first);
    // Its place comes back once the hub has seen the close.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if Ws::connect_from("127.0.0.6", &url, &[]).await.is_ok() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the closed websocket's place never came back"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    hub.stop().await;
}

/// Every refused scrape was logged at INFO, so an outsider
/// could fill the log at request rate. Refusals are logged at DEBUG now.
#[tokio::test]
async fn refused_scrapes_do_not_flood_the_log() {
    // Staff routes for loopback only, and /metrics behind a token: 127.0.0.5 is refused both.
    let env = [
        ("AGENT_WHITELIST", "127.0.0.1/32"),
        ("METRICS_TOKEN", "scraper-token-0123456789"),
    ];
    let hub = HubProcess::start(&env, 1024, 1024);
    let outsider = client_from("127.0.0.5").build().unwrap();
    for _ in 0..50 {
        let res = outsider.get(hub.url("/metrics")).send().await.unwrap();
        assert!(res.status().is_client_error(), "{}", res.status());
    }
    // A refusal that is logged at INFO (staff routes from outside the whitelist), after
    // the scrapes: once it is in the log, so would the scrapes' lines be.
    let res = outsider.get(hub.url("/api/me")).send().await.unwrap();
    assert_eq!(res.status(), 403);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !hub.printed().contains("not in AGENT_WHITELIST") {
        assert!(std::time::Instant::now() < deadline, "the marker never reached the log");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let printed = hub.printed();
    let scrape_lines = printed.lines().filter(|l| l.contains("/metrics")).count();
    assert_eq!(scrape_lines, 0, "refused scrapes were logged at INFO:\n{printed}");
}

/// When file descriptors run short, the connections that never sent a request go first:
/// 600 silent connections from three addresses, each address under its cap, against an
/// open-file limit of 512, and a newcomer is still served at once, not after the header
/// timeout (30 s here) frees a descriptor. The connections that did send requests stay.
#[tokio::test]
async fn silent_connections_are_shed_first_when_descriptors_run_short() {
    // A client that spoke before the flood keeps its keep-alive connection.
    let regular = client_from("127.0.0.9").pool_max_idle_per_host(1).build().unwrap();
    let env = [
        ("HTTP_HEADER_TIMEOUT_SECS", "30"),
        ("MAX_CONNECTIONS_PER_ADDRESS", "250"),
    ];
    let hub = HubProcess::start(&env, 512, 512);
    assert_eq!(regular.get(hub.url("/healthz")).send().await.unwrap().status(), 200);
    let mut silent = Vec::new();
    for i in 0..600 {
        let from = ["127.0.0.6", "127.0.0.7", "127.0.0.8"][i % 3];
        silent.push(tcp_from(from, hub.addr).await);
    }
    let newcomer = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(5))
        .build()
        .unwrap();
    for _ in 0..3 {
        let res = newcomer
            .get(hub.url("/healthz"))
            .send()
            .await
            .expect("a newcomer gets /healthz while silent connections hold the descriptors");
        assert_eq!(res.status(), 200);
    }
    let _ws = customer_welcomed_within(&hub, 5).await;
    assert_eq!(regular.get(hub.url("/healthz")).send().await.unwrap().status(), 200);
    let printed = hub.printed();
    assert!(printed.contains("shed"), "the shedding is logged: {printed}");
    drop(silent);
}

/// A request whose `Content-Length` declared a body over the JSON limit, and sent none,
/// waited for `HTTP_REQUEST_TIMEOUT_SECS` (30 s) and got a bodiless 408. It is refused
/// 413 `body_too_large` before any body: public, staff, admin and unknown-token routes
/// alike. The client waits 10 s at most, well under the server's 30.
#[tokio::test]
async fn a_body_declared_over_the_limit_is_413_before_it_is_sent() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let hub = TestHub::start().await;
    for path in [
        "/api/login",
        "/api/appointments",
        "/api/offline-messages",
        "/api/admin/webhooks",
        "/api/bot/conversations/c1/messages",
    ] {
        let mut tcp = tokio::net::TcpStream::connect(hub.addr).await.unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: hub\r\nContent-Type: application/json\r\nContent-Length: 10000000000\r\n\r\n"
        );
        tcp.write_all(head.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        let mut buf = [0u8; 4096];
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        // Read until the head and the error body are in (or the server closes).
        while !String::from_utf8_lossy(&answer).contains("body_too_large") {
            match tokio::time::timeout_at(deadline, tcp.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
                Ok(Ok(n)) => answer.extend_from_slice(&buf[..n]),
            }
        }
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 413"), "{path}: {answer:.300}");
        assert!(answer.contains("\"body_too_large\""), "{path}: {answer:.600}");
        assert!(
            answer.to_ascii_lowercase().contains("connection: close"),
            "{path}: the unread body ends the connection, and says so: {answer:.600}"
        );
    }
    hub.stop().await;
}
