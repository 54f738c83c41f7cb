//! Sign-in and identity: password-guess throttling, the cost of an unknown user,
//! sessions whose revocation closes their sockets, and display names.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::common::*;

/// How many argon2 computations the process at `hub` has run, from its own metrics.
async fn password_hashes(hub: &Endpoint) -> u64 {
    let text = reqwest::get(hub.url("/metrics")).await.unwrap().text().await.unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix("switchboard_password_hashes_total "))
        .map_or(0, |n| n.trim().parse().expect("a count"))
}

/// An unknown user costs a hash, as a wrong password does, so the answer's timing tells nothing.
#[tokio::test]
async fn an_unknown_user_costs_a_password_hash_like_a_wrong_password() {
    // The real binary on its own port with the in-memory store: its `/metrics` counts only its own work.
    let hub = HubProcess::start(None, &[("STORE", "memory")]).await;
    let login =
        |username: &str, password: &str| post(&hub, "/api/login", json!({"username": username, "password": password}));
    let before = password_hashes(&hub).await;
    refusal(login("admin", "not-the-password").await, 400, "bad_credentials");
    let after_wrong_password = password_hashes(&hub).await;
    assert_eq!(after_wrong_password - before, 1, "a wrong password runs one hash");

    refusal(
        login("nobody-by-that-name", "not-the-password").await,
        400,
        "bad_credentials",
    );
    let after_unknown_user = password_hashes(&hub).await;
    assert_eq!(
        after_unknown_user - after_wrong_password,
        1,
        "an unknown user runs one hash too"
    );
}

/// The close code of a socket whose session was revoked or expired (docs/protocol.md).
const SESSION_ENDED: u16 = 4001;

/// A customer who joins `general` and is queued, not paired: no agent takes them.
async fn customer_is_not_paired(hub: &TestHub) {
    let mut customer = hub.customer_queued("Carla", "general", 1).await;
    let later = customer.drain().await;
    assert!(
        !types(&later).contains(&"chat_started".to_string()),
        "nobody should take the customer: {later:?}"
    );
}

/// Each of `sockets` is closed as its session ended, and a customer who joins then is queued,
/// not paired.
async fn sessions_ended(hub: &TestHub, sockets: &mut [&mut Ws]) {
    for ws in sockets {
        assert_eq!(ws.closed().await.map(u16::from), Some(SESSION_ENDED));
    }
    customer_is_not_paired(hub).await;
}

/// An agent socket opened with a session, the agent available.
async fn available_agent(hub: &TestHub, token: &str) -> Ws {
    let mut ws = Ws::agent(hub, token).await;
    ws.send(json!({"type": "set_available", "available": true})).await;
    ws.next_of("profile").await;
    ws
}

#[tokio::test]
async fn logging_out_closes_the_agent_socket_opened_with_that_session() {
    let hub = TestHub::start().await;
    let (mut ann, token) = hub.agent_with_token("ann", &["general"], 1).await;
    logout(&hub, &token).await;
    sessions_ended(&hub, &mut [&mut ann]).await;
    hub.stop().await;
}

#[tokio::test]
async fn a_password_change_closes_the_agents_sockets() {
    let hub = TestHub::start().await;
    let (mut ann, token) = hub.agent_with_token("ann", &["general"], 1).await;
    let (mut ann_buddy, _) = Ws::staff_buddy(&hub, &token).await;
    let admin = hub.admin().await;
    let id = admin.agent_id("ann").await;
    let (status, _) = admin
        .patch(
            &format!("/api/admin/agents/{id}"),
            json!({"password": "a-new-password"}),
        )
        .await;
    assert_eq!(status, 200);
    sessions_ended(&hub, &mut [&mut ann, &mut ann_buddy]).await;
    hub.stop().await;
}

#[tokio::test]
async fn logging_out_closes_a_staff_buddy_socket_and_leaves_other_sessions_open() {
    let hub = TestHub::start().await;
    let token = hub.agent_account("ann", &["general"], 1).await;
    let other = hub.login("ann", "agent-password").await.token;
    let (mut buddy, _) = Ws::staff_buddy(&hub, &token).await;
    let mut desk = available_agent(&hub, &other).await;
    logout(&hub, &token).await;
    assert_eq!(buddy.closed().await.map(u16::from), Some(SESSION_ENDED));
    // The desk was opened with the other session, which lives on.
    let (_customer, _) = hub.customer_in_chat("Carla", "general").await;
    desk.next_of("chat_started").await;
    hub.stop().await;
}

#[tokio::test]
async fn a_session_that_expires_closes_its_sockets() {
    let hub = TestHub::with(|s| s.session_ttl = Duration::from_secs(2)).await;
    let mut ann = hub.agent("ann", &["general"], 1).await;
    sessions_ended(&hub, &mut [&mut ann]).await;
    hub.stop().await;
}

/// Tasks alive in this test's runtime, which runs the hub too: the hub's tasks and timers included.
fn alive_tasks() -> usize {
    tokio::runtime::Handle::current().metrics().num_alive_tasks()
}

/// Opens a staff socket (agent desk or staff buddy list) with `token` and closes it from the client.
async fn open_and_close_staff_socket(hub: &TestHub, token: &str, path: &str, welcome: &str) {
    let mut ws = Ws::connect(&hub.ws_url(path), &[("authorization", &format!("Bearer {token}"))])
        .await
        .unwrap();
    ws.next_of(welcome).await;
    ws.inner.close(None).await.unwrap();
    // The hub answers the close and ends the connection's task.
    while let Some(Ok(_)) = ws.inner.next().await {}
}

#[tokio::test]
async fn closed_staff_sockets_leave_no_session_timers_behind() {
    let hub = TestHub::start().await;
    let token = hub.agent_account("ann", &["general"], 1).await;
    let sockets = [("/ws/agent", "agent_welcome"), ("/ws/buddy", "buddy_welcome")];
    for (path, welcome) in sockets {
        open_and_close_staff_socket(&hub, &token, path, welcome).await;
    }
    // What stays (grace timers of the goodbyes above, pooled clients) is counted in the baseline.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let baseline = alive_tasks();
    const ROUNDS: usize = 20;
    for _ in 0..ROUNDS {
        for (path, welcome) in sockets {
            open_and_close_staff_socket(&hub, &token, path, welcome).await;
        }
    }
    // Grace timers of the agent's and buddy's goodbyes end within a second or two; a timer
    // per socket waiting for the session's expiry (12 h by default) would stay.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut alive = alive_tasks();
    while alive > baseline + ROUNDS / 4 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        alive = alive_tasks();
    }
    assert!(
        alive <= baseline + ROUNDS / 4,
        "{} staff sockets opened and closed left {alive} tasks alive, {baseline} before",
        2 * ROUNDS
    );
    // The sockets' session is still live and still opens sockets.
    let _ann = available_agent(&hub, &token).await;
    hub.stop().await;
}

/// Failed sign-ins an address or an account may make at once before it is throttled.
const GUESS_BURST: usize = 10;

/// A sign-in from a given loopback address (the whole of 127.0.0.0/8 is this host, and whitelisted).
async fn login_from(hub: &TestHub, from: &str, username: &str, password: &str) -> (u16, Option<u64>, Value) {
    let client = reqwest::Client::builder()
        .local_address(Some(from.parse().unwrap()))
        .build()
        .unwrap();
    let res = hub.sign_in(&client, username, password).await;
    let status = res.status().as_u16();
    let retry_after = res
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().parse().expect("Retry-After in whole seconds"));
    (status, retry_after, res.json().await.unwrap_or(Value::Null))
}

fn assert_throttled((status, retry_after, body): (u16, Option<u64>, Value)) {
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "too_many_attempts");
    let wait = retry_after.expect("a Retry-After header");
    assert!((1..=60).contains(&wait), "Retry-After {wait}");
}

#[tokio::test]
async fn wrong_guesses_from_one_address_are_refused_with_429_and_retry_after() {
    let hub = TestHub::start().await;
    for n in 0..GUESS_BURST {
        let (status, _, body) = login_from(&hub, "127.0.0.1", "admin", &format!("guess-{n}")).await;
        assert_eq!((status, body["error"]["code"].as_str()), (400, Some("bad_credentials")));
    }
    assert_throttled(login_from(&hub, "127.0.0.1", "admin", "guess-again").await);
    // Throttled means not checked at all: the right password does not get through either.
    assert_throttled(login_from(&hub, "127.0.0.1", "admin", ADMIN_PASSWORD).await);
    hub.stop().await;
}

#[tokio::test]
async fn one_address_guessing_across_many_accounts_is_throttled() {
    let hub = TestHub::start().await;
    for n in 0..GUESS_BURST {
        let (status, _, _) = login_from(&hub, "127.0.0.4", &format!("user-{n}"), "guess").await;
        assert_eq!(status, 400);
    }
    assert_throttled(login_from(&hub, "127.0.0.4", "someone-else", "guess").await);
    // Another address is not held back by this one.
    assert_eq!(login_from(&hub, "127.0.0.5", "admin", ADMIN_PASSWORD).await.0, 200);
    hub.stop().await;
}

#[tokio::test]
async fn an_attacked_account_still_lets_its_owner_in_from_where_they_signed_in_before() {
    let hub = TestHub::start().await;
    assert_eq!(login_from(&hub, "127.0.0.1", "admin", ADMIN_PASSWORD).await.0, 200);
    // An attacker spreads guesses over addresses: the account's own limit stops them.
    for n in 0..GUESS_BURST {
        let from = format!("127.0.1.{}", n % 3 + 1);
        assert_eq!(login_from(&hub, &from, "admin", &format!("guess-{n}")).await.0, 400);
    }
    assert_throttled(login_from(&hub, "127.0.1.9", "admin", "guess-again").await);
    // The admin, from an address they signed in from before, is not locked out.
    assert_eq!(login_from(&hub, "127.0.0.1", "admin", ADMIN_PASSWORD).await.0, 200);
    hub.stop().await;
}

/// Names that spoof, hide or inject: a right-to-left override, a NUL, a newline inside,
/// zero-width characters only, a Hangul filler only (renders blank), an isolate.
const BAD_NAMES: [&str; 6] = [
    "Carla\u{202E}gnp.exe",
    "Car\u{0}la",
    "Carla\nadmin logged in",
    "\u{200B}\u{200D}\u{FEFF}",
    "\u{3164}",
    "\u{2067}Carla",
];

#[tokio::test]
async fn customers_and_buddies_with_bad_names_are_refused_with_invalid_name() {
    let hub = TestHub::start().await;
    for name in BAD_NAMES {
        let mut customer = Ws::connect(&hub.ws_url("/ws/customer"), &[]).await.unwrap();
        customer
            .send(json!({"type": "join", "name": name, "category": "general"}))
            .await;
        let answer = customer.next_of("error").await;
        assert_eq!(answer["code"], "invalid_name", "customer {name:?}");

        let mut buddy = Ws::connect(&hub.ws_url("/ws/buddy"), &[]).await.unwrap();
        buddy.send(json!({"type": "buddy_join", "name": name})).await;
        let answer = buddy.next_of("error").await;
        assert_eq!(answer["code"], "invalid_name", "buddy {name:?}");
    }
    // Names in any script, with emoji joined by zero-width joiners, still pass.
    for name in ["Zoë", "محمد", "王小明", "👩\u{200D}💻 Dee"] {
        let mut customer = Ws::connect(&hub.ws_url("/ws/customer"), &[]).await.unwrap();
        customer
            .send(json!({"type": "join", "name": name, "category": "general"}))
            .await;
        assert_eq!(customer.next_of("welcome").await["customer_name"], name);
    }
    hub.stop().await;
}

#[tokio::test]
async fn admins_cannot_give_agents_or_categories_bad_names() {
    let (hub, admin) = TestHub::with_admin().await;
    let id = admin.agent_id("admin").await;
    for (n, name) in BAD_NAMES.iter().enumerate() {
        let (status, body) = admin
            .post(
                "/api/admin/agents",
                json!({"username": format!("agent-{n}"), "display_name": name, "password": "agent-password"}),
            )
            .await;
        assert_eq!((status, error_code(&body)), (400, "invalid_name"), "{name:?}");
        let (status, body) = admin
            .patch(&format!("/api/admin/agents/{id}"), json!({"display_name": name}))
            .await;
        assert_eq!((status, error_code(&body)), (400, "invalid_name"), "{name:?}");
        let (status, body) = admin
            .post("/api/admin/categories", json!({"id": format!("c{n}"), "name": name}))
            .await;
        assert_eq!((status, error_code(&body)), (400, "invalid_name"), "{name:?}");
        let (status, body) = admin
            .patch("/api/admin/categories/general", json!({"name": name}))
            .await;
        assert_eq!((status, error_code(&body)), (400, "invalid_name"), "{name:?}");
    }
    hub.stop().await;
}
