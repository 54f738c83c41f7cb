//! API tokens end to end: an admin creates a `read` token, which reads the archive and
//! the reports and is refused an admin operation (403 naming the scope); an `admin`
//! token administers; a malformed, unknown, expired or revoked token is refused (401); a
//! token in the query string is refused and never logged; a token over its rate gets 429
//! with `Retry-After`, over two nodes together (counted in Redis) and by a node alone
//! when Redis is gone (which it logs once); across two nodes, a token revoked on one is refused on the other
//! within a second of the revocation's answer, and so by a node that never heard of the
//! revocation (its bus elsewhere), once its cached look-up is older than `CACHE_TTL` (a
//! second). Every refusal leaves one line in the hub's log (why, the token's id or the
//! start of its hash, the route, the client), never the secret; a token in the query is
//! refused on the bot socket too.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::*;

/// A token created by `admin` with `scopes`: its secret and its listing.
async fn token(admin: &Api, name: &str, scopes: &[&str]) -> (String, Value) {
    let created = admin
        .post_answering(201, "/api/admin/api-tokens", json!({"name": name, "scopes": scopes}))
        .await;
    let secret = created["secret"].as_str().unwrap().to_string();
    (secret, created)
}

/// Revokes the token `created` describes (as its creation answered): the revoked token.
async fn revoke(admin: &Api, created: &Value) -> Value {
    let id = created["id"].as_str().unwrap();
    let (status, revoked) = admin.delete(&format!("/api/admin/api-tokens/{id}")).await;
    assert_eq!(status, 200, "{revoked}");
    revoked
}

#[tokio::test]
async fn a_read_token_reads_the_archive_and_reports_but_cannot_administer() {
    let (hub, admin) = TestHub::with_admin().await;
    let (secret, created) = token(&admin, "CRM sync", &["read"]).await;
    assert!(secret.starts_with("sbt_"), "{secret}");
    assert_eq!(created["scopes"], json!(["read"]));
    assert_eq!(created["hint"], secret[..8]);

    let reader = Api::bearer(&hub, &secret);
    let (status, page) = reader.get("/api/conversations").await;
    assert_eq!(status, 200, "{page}");
    assert!(page["items"].is_array());
    let (status, report) = reader.get("/api/reports?from=2026-01-01&to=2026-01-02").await;
    assert_eq!(status, 200, "{report}");

    let (status, refused) = reader.get("/api/admin/agents").await;
    assert_eq!(status, 403, "{refused}");
    assert_eq!(refused["error"]["code"], "missing_scope");
    assert!(
        refused["error"]["message"].as_str().unwrap().contains("`admin`"),
        "{refused}"
    );
    let (status, refused) = reader
        .post("/api/admin/api-tokens", json!({"name": "mine", "scopes": ["admin"]}))
        .await;
    assert_eq!((status, &refused["error"]["code"]), (403, &json!("missing_scope")));

    // The listing never shows a secret or hash; it shows the last use.
    let (_, list) = admin.get("/api/admin/api-tokens").await;
    let listed = &list.as_array().unwrap()[0];
    assert!(
        listed.get("secret").is_none() && listed.get("hash").is_none(),
        "{listed}"
    );
    assert!(listed["last_used_at"].is_i64(), "{listed}");
    assert_eq!(listed["created_by"], admin.agent_id("admin").await);
}

#[tokio::test]
async fn an_admin_token_administers_and_a_bot_token_names_its_bot() {
    let (hub, admin) = TestHub::with_admin().await;
    let (secret, _) = token(&admin, "provisioning", &["admin"]).await;
    let script = Api::bearer(&hub, &secret);
    let (status, agents) = script.get("/api/admin/agents").await;
    assert_eq!(status, 200, "{agents}");
    script
        .post_answering(
            201,
            "/api/admin/categories",
            json!({"id": "returns", "name": "Returns"}),
        )
        .await;

    let bot = admin
        .post_answering(
            201,
            "/api/admin/api-tokens",
            json!({"name": "FAQ bot", "scopes": ["bot"], "bot": "Faq"}),
        )
        .await;
    assert_eq!(bot["bot"], "Faq");
    let (status, refused) = Api::bearer(&hub, bot["secret"].as_str().unwrap())
        .get("/api/conversations")
        .await;
    assert_eq!((status, &refused["error"]["code"]), (403, &json!("missing_scope")));

    for (body, code) in [
        (json!({"name": "x", "scopes": ["bot"]}), "invalid_bot"),
        (json!({"name": "x", "scopes": ["read"], "bot": "Faq"}), "invalid_bot"),
        (json!({"name": "x", "scopes": ["write"]}), "invalid_scopes"),
        (json!({"name": "x", "scopes": []}), "invalid_scopes"),
        (json!({"name": " ", "scopes": ["read"]}), "invalid_name"),
        (
            json!({"name": "x", "scopes": ["read"], "expires_at": 1}),
            "invalid_expiry",
        ),
    ] {
        let (status, answer) = admin.post("/api/admin/api-tokens", body.clone()).await;
        assert_eq!((status, &answer["error"]["code"]), (400, &json!(code)), "{body}");
    }
    // An agent cannot create tokens.
    hub.agent_account("ann", &["general"], 1).await;
    let ann = hub.login("ann", "agent-password").await;
    let (status, _) = ann
        .post("/api/admin/api-tokens", json!({"name": "x", "scopes": ["read"]}))
        .await;
    assert_eq!(status, 403);
}

/// A leaked `admin` token must not become an admin's session nor lock the admins out: it
/// cannot create an admin nor change an admin account at all (set its password, then sign
/// in and make what only a signed-in admin may; disable it, rename it). It still creates
/// agents and changes them, passwords included; a signed-in admin does all of it.
#[tokio::test]
async fn an_admin_token_cannot_make_an_admin_nor_change_one() {
    let (hub, admin) = TestHub::with_admin().await;
    let (secret, _) = token(&admin, "provisioning", &["admin"]).await;
    let script = Api::bearer(&hub, &secret);
    let new = |username: &str, role: &str| json!({"username": username, "display_name": username, "password": "a-long-password", "role": role});
    let (status, refused) = script.post("/api/admin/agents", new("eve", "admin")).await;
    assert_eq!(
        (status, &refused["error"]["code"]),
        (403, &json!("session_required")),
        "{refused}"
    );
    // Nor may an admin's session presented as a bearer token.
    let session_bearer = Api::bearer(&hub, &admin.token);
    let (status, refused) = session_bearer.post("/api/admin/agents", new("eve", "admin")).await;
    assert_eq!(
        (status, &refused["error"]["code"]),
        (403, &json!("session_required")),
        "{refused}"
    );

    // Nor change an admin in any way (set its password, disable, rename, re-limit it): the
    // admins stay as they were.
    let admin_id = admin.agent_id("admin").await;
    let reset = json!({"password": "eves-own-password"});
    for change in [
        reset.clone(),
        json!({"enabled": false}),
        json!({"display_name": "Boss"}),
        json!({"max_chats": 1}),
        json!({"categories": []}),
    ] {
        let (status, refused) = script
            .patch(&format!("/api/admin/agents/{admin_id}"), change.clone())
            .await;
        assert_eq!(
            (status, &refused["error"]["code"]),
            (403, &json!("session_required")),
            "{change}: {refused}"
        );
    }
    let status = hub
        .sign_in(&reqwest::Client::new(), "admin", "eves-own-password")
        .await
        .status()
        .as_u16();
    assert_eq!(status, 400, "the admin's password was changed by a token");
    let (_, unchanged) = admin.get(&format!("/api/admin/agents/{admin_id}")).await;
    assert_eq!(unchanged["enabled"], json!(true), "{unchanged}");
    assert_ne!(unchanged["display_name"], json!("Boss"), "{unchanged}");

    // Agents are the token's to make and change, passwords included.
    let ann = script
        .post_answering(201, "/api/admin/agents", new("ann", "agent"))
        .await;
    let (status, _) = script
        .patch(
            &format!("/api/admin/agents/{}", ann["id"].as_str().unwrap()),
            reset.clone(),
        )
        .await;
    assert_eq!(status, 200);

    // A signed-in admin makes admins and changes them, passwords included.
    let bob = admin
        .post_answering(201, "/api/admin/agents", new("bob", "admin"))
        .await;
    assert_eq!(bob["role"], "admin");
    let (status, _) = admin
        .patch(&format!("/api/admin/agents/{}", bob["id"].as_str().unwrap()), reset)
        .await;
    assert_eq!(status, 200);
    let (status, renamed) = admin
        .patch(
            &format!("/api/admin/agents/{admin_id}"),
            json!({"display_name": "Boss"}),
        )
        .await;
    assert_eq!(status, 200, "{renamed}");
    hub.login("bob", "eves-own-password").await;
}

/// A leaked `admin` token must not outlive its revocation: it cannot make another token
/// (which would stay valid when this one is revoked), whatever the scopes asked. It may still
/// list the tokens and revoke one (itself included: what a script does on a leak). A
/// signed-in admin makes tokens, with the cookie or the session as a bearer.
#[tokio::test]
async fn an_admin_token_cannot_make_another_token() {
    let (hub, admin) = TestHub::with_admin().await;
    let (secret, _) = token(&admin, "provisioning", &["admin"]).await;
    let script = Api::bearer(&hub, &secret);
    for scopes in [json!(["admin"]), json!(["read"])] {
        let (status, refused) = script
            .post("/api/admin/api-tokens", json!({"name": "spare", "scopes": scopes}))
            .await;
        assert_eq!(
            (status, &refused["error"]["code"]),
            (403, &json!("session_required")),
            "{scopes}: {refused}"
        );
    }
    let (status, listed) = script.get("/api/admin/api-tokens").await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "nothing made: {listed}");
    let (_, other) = token(&admin, "crm", &["read"]).await;
    let (status, revoked) = script
        .delete(&format!("/api/admin/api-tokens/{}", other["id"].as_str().unwrap()))
        .await;
    assert_eq!(status, 200, "{revoked}");
}

#[tokio::test]
async fn malformed_unknown_expired_and_revoked_tokens_are_refused() {
    let (hub, admin) = TestHub::with_admin().await;
    let unknown = format!("sbt_{}", "A".repeat(43));
    for (secret, says) in [("sbt_short", "no API token"), (unknown.as_str(), "no such API token")] {
        let (status, answer) = Api::bearer(&hub, secret).get("/api/conversations").await;
        assert_eq!(status, 401, "{answer}");
        assert_eq!(answer["error"]["code"], "invalid_token");
        assert!(answer["error"]["message"].as_str().unwrap().contains(says), "{answer}");
    }

    let soon = switchboard::clock::now_ms() + 300;
    let expiring = admin
        .post_answering(
            201,
            "/api/admin/api-tokens",
            json!({"name": "brief", "scopes": ["read"], "expires_at": soon}),
        )
        .await;
    let brief = Api::bearer(&hub, expiring["secret"].as_str().unwrap());
    let refused = polled(Duration::from_secs(10), async || {
        let (status, answer) = brief.get("/api/conversations").await;
        if status == 401 {
            return Some(answer);
        }
        assert_eq!(status, 200, "{answer}");
        None
    })
    .await
    .expect("the token never expired");
    assert!(
        refused["error"]["message"].as_str().unwrap().contains("expired"),
        "{refused}"
    );

    let (secret, created) = token(&admin, "leaked", &["read"]).await;
    let leaked = Api::bearer(&hub, &secret);
    assert_eq!(leaked.get("/api/conversations").await.0, 200);
    let revoked = revoke(&admin, &created).await;
    assert!(revoked["revoked_at"].is_i64());
    let (status, answer) = leaked.get("/api/conversations").await;
    assert_eq!(status, 401, "{answer}");
    assert!(
        answer["error"]["message"].as_str().unwrap().contains("revoked"),
        "{answer}"
    );
    assert_eq!(admin.delete("/api/admin/api-tokens/nothing").await.0, 404);

    // Not on the agent socket: it is bound to a person's session.
    let request = hub.ws_url("/ws/agent");
    let (secret, _) = token(&admin, "socket", &["read", "admin"]).await;
    let refused = Ws::connect(&request, &[("authorization", &format!("Bearer {secret}"))]).await;
    assert!(refused.is_err(), "an API token opened the agent socket");
}

#[tokio::test]
async fn a_token_in_the_query_string_is_refused() {
    let (hub, admin) = TestHub::with_admin().await;
    let (secret, _) = token(&admin, "in a url", &["read"]).await;
    let anonymous = reqwest::Client::new();
    for query in [
        format!("access_token={secret}"),
        format!("token={secret}"),
        "access_token=x".into(),
    ] {
        let res = anonymous
            .get(hub.url(&format!("/api/conversations?{query}")))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401, "{query}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], "token_in_query", "{query}");
    }
    // Even beside a good header.
    let (status, answer) = Api::bearer(&hub, &secret)
        .get(&format!("/api/conversations?token={secret}"))
        .await;
    assert_eq!((status, &answer["error"]["code"]), (401, &json!("token_in_query")));
}

/// A token wherever it stands in a URL: a bare key, a value with something before it, a
/// `;parameter` of the path, its prefix percent-encoded (once or twice) or in capitals.
/// Refused beside a good header too.
#[tokio::test]
async fn a_token_anywhere_in_the_url_is_refused() {
    let (hub, admin) = TestHub::with_admin().await;
    let (secret, _) = token(&admin, "in a url", &["read"]).await;
    let scripted = Api::bearer(&hub, &secret);
    for url in [
        format!("/api/conversations?{secret}"),
        format!("/api/conversations?x=%20{secret}"),
        format!("/api/conversations?x=Bearer%20{secret}"),
        format!("/api/me;access_token={secret}"),
        format!("/api/conversations/%73bt_{}", &secret[4..]),
        // Its prefix in capitals: the random part, which is the secret, is all there.
        format!("/api/conversations?x=SBT_{}", &secret[4..]),
        format!("/api/conversations/Sbt_{}", &secret[4..]),
        // Percent-encoded twice: decoded once, `%73bt_…` is still the token.
        format!("/api/conversations/%2573bt_{}", &secret[4..]),
        format!("/api/conversations?x=%2573bt_{}", &secret[4..]),
    ] {
        let (status, answer) = scripted.get(&url).await;
        assert_eq!(
            (status, &answer["error"]["code"]),
            (401, &json!("token_in_query")),
            "{url}"
        );
    }
}

/// An API token is sent as a bearer token only: in the `sb_session` cookie it is no session.
#[tokio::test]
async fn an_api_token_in_the_session_cookie_is_refused() {
    let (hub, admin) = TestHub::with_admin().await;
    let (secret, _) = token(&admin, "as a cookie", &["admin"]).await;
    let res = reqwest::Client::new()
        .post(hub.url("/api/admin/api-tokens"))
        .header("cookie", format!("sb_session={secret}"))
        .json(&json!({"name": "minted by cookie", "scopes": ["admin"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}

#[tokio::test]
async fn a_token_over_its_rate_gets_429_with_retry_after() {
    let (hub, admin) = TestHub::with_admin().await;
    let (secret, _) = token(&admin, "busy", &["read"]).await;
    let client = Api::bearer(&hub, &secret).client;
    for sent in 0.. {
        let res = client.get(hub.url("/api/me")).send().await.unwrap();
        if res.status() == 429 {
            let wait: u64 = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
            assert!(wait >= 1);
            let body: Value = res.json().await.unwrap();
            assert_eq!(body["error"]["code"], "rate_limited");
            assert!(sent >= 100, "limited after {sent} requests");
            break;
        }
        assert_eq!(res.status(), 200);
        assert!(sent < 5_000, "never limited");
    }
    // Another token, and the admin's session, are not held back by it.
    let (other, _) = token(&admin, "calm", &["read"]).await;
    assert_eq!(Api::bearer(&hub, &other).get("/api/me").await.0, 200);
}

/// Sends the requests of token `secret` to `nodes` in turn until one is refused (429):
/// how many were let through, and how long since the first was sent. Never a timed
/// assertion: the time only bounds what the rate may let through meanwhile.
async fn until_limited(nodes: &[&TestHub], secret: &str) -> (i64, Duration) {
    let clients: Vec<Api> = nodes.iter().map(|node| Api::bearer(node, secret)).collect();
    let started = std::time::Instant::now();
    for sent in 0..5_000 {
        let node = sent % nodes.len();
        let res = clients[node]
            .client
            .get(nodes[node].url("/api/me"))
            .send()
            .await
            .unwrap();
        if res.status() == 429 {
            let elapsed = started.elapsed();
            let wait: u64 = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
            assert!(wait >= 1);
            let body: Value = res.json().await.unwrap();
            assert_eq!(body["error"]["code"], "rate_limited");
            return (sent as i64, elapsed);
        }
        assert_eq!(res.status(), 200);
    }
    panic!("never limited");
}

/// The most `core::token_rate`'s rule lets through in `elapsed` (and one for the
/// rounding of the clocks' ms).
fn most_the_rate_allows(elapsed: Duration) -> i64 {
    use switchboard::core::token_rate::{BURST, SPACING_MS};
    let elapsed_ms = i64::try_from(elapsed.as_millis()).unwrap();
    i64::from(BURST) + elapsed_ms / SPACING_MS + 1
}

/// A token's requests spread over two nodes count against one rate, in Redis: alternating
/// between the nodes, it is refused once the total passes the burst and what the rate
/// allowed meanwhile (each node counting alone let through about twice that).
#[tokio::test]
async fn a_token_spread_over_two_nodes_is_held_to_one_rate() {
    let cluster = Cluster::start("api-tokens-rate").await;
    let (alpha, beta) = cluster.two_nodes(|_| {}).await;
    let admin = alpha.admin().await;
    let (secret, _) = token(&admin, "busy", &["read"]).await;
    let (through, elapsed) = until_limited(&[&alpha, &beta], &secret).await;
    assert!(through >= 100, "limited after {through} requests");
    assert!(
        through <= most_the_rate_allows(elapsed),
        "{through} requests let through in {elapsed:?} over two nodes"
    );
}

/// The script that counts in Redis keeps `core::token_rate`'s rule: a burst at once, then
/// refusals that say how long to wait, its key gone once the token is due again.
#[tokio::test]
async fn the_count_in_redis_keeps_the_rule() {
    use switchboard::core::token_rate::{BURST, SPACING_MS, TOLERANCE_MS};
    let server = crate::redis_server::RedisServer::start().await;
    let mut conn = redis::Client::open(server.url())
        .unwrap()
        .get_connection_manager()
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let mut through = 0;
    let mut first_wait = None;
    for _ in 0..BURST + 50 {
        match switchboard::cluster::token_rate::admit(&mut conn, "t1").await.unwrap() {
            None => through += 1,
            Some(wait_ms) => {
                first_wait.get_or_insert(wait_ms);
            }
        }
    }
    let elapsed = started.elapsed();
    assert!(through >= i64::from(BURST), "{through} let through");
    assert!(through <= most_the_rate_allows(elapsed), "{through} in {elapsed:?}");
    let wait = first_wait.expect("refused past the burst");
    assert!((1..=SPACING_MS).contains(&wait), "wait {wait} ms");
    let ttl: i64 = redis::cmd("PTTL")
        .arg(switchboard::cluster::token_rate::key("t1"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!((1..=TOLERANCE_MS + SPACING_MS).contains(&ttl), "the key lives {ttl} ms");
    // Another token has its own count.
    assert_eq!(
        switchboard::cluster::token_rate::admit(&mut conn, "t2").await.unwrap(),
        None
    );
}

/// Redis gone, each node counts the token's requests itself: none is refused for the
/// outage, and the node's own count still holds the token to its rate.
#[tokio::test]
async fn without_redis_a_node_counts_a_tokens_requests_alone() {
    let mut cluster = Cluster::start("api-tokens-rate-alone").await;
    let alpha = cluster.node("alpha", |_| {}).await;
    let admin = alpha.admin().await;
    let (secret, _) = token(&admin, "busy", &["read"]).await;
    assert_eq!(Api::bearer(&alpha, &secret).get("/api/me").await.0, 200);
    cluster.redis.kill();
    let (through, elapsed) = until_limited(&[&alpha], &secret).await;
    assert!(through >= 100, "limited after {through} requests");
    assert!(through <= most_the_rate_allows(elapsed), "{through} in {elapsed:?}");
}

/// A node whose Redis is gone tells so once in its log, however many requests it then
/// counts alone, and refuses none of them for it (a second and more of requests, so Redis
/// is asked again meanwhile and fails again).
#[tokio::test]
async fn a_node_counting_alone_logs_it_once() {
    let mut redis = crate::redis_server::RedisServer::start().await;
    let dir = crate::archive::TempDir::new("token-rate-alone-log");
    let (uri, db, url) = (
        crate::archive::mongo_uri(),
        format!("t{}", uuid::Uuid::new_v4().simple()),
        redis.url(),
    );
    let hub = HubProcess::start(
        Some(&dir.0),
        &[
            ("STORE", "mongodb"),
            ("MONGODB_URI", &uri),
            ("MONGODB_DB", &db),
            ("REDIS_URL", &url),
            ("NODE_ID", "solo"),
            ("ROOM_TOKEN_SECRET", "a room token secret for the tests"),
        ],
    )
    .await;
    let admin = hub.admin().await;
    let (secret, _) = token(&admin, "busy", &["read"]).await;
    let scripted = Api::bearer(&hub, &secret);
    assert_eq!(scripted.get("/api/me").await.0, 200);
    redis.kill();
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_millis(1_500) {
        let (status, answer) = scripted.get("/api/me").await;
        assert_eq!(status, 200, "{answer}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = std::fs::read_to_string(dir.0.join("hub.log")).unwrap();
    let told: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("API token rates: Redis does not answer"))
        .collect();
    assert_eq!(told.len(), 1, "{told:#?}");
    assert!(told[0].contains("WARN"), "{}", told[0]);
}

#[tokio::test]
async fn a_token_revoked_on_one_node_is_refused_on_the_other() {
    let cluster = Cluster::start("api-tokens").await;
    let (alpha, beta) = cluster.two_nodes(|_| {}).await;
    both_listen_on_the_admin_bus(&cluster).await;
    let admin = alpha.admin().await;
    let (secret, created) = token(&admin, "crm", &["read"]).await;
    let on_beta = Api::bearer(&beta, &secret);
    // Beta has looked it up, so it is in its cache.
    assert_eq!(on_beta.get("/api/conversations").await.0, 200);
    assert_eq!(on_beta.get("/api/conversations").await.0, 200);

    revoke(&admin, &created).await;
    refused_within_a_second(&on_beta, std::time::Instant::now()).await;
    // Once refused, never taken again.
    for _ in 0..5 {
        assert_eq!(on_beta.get("/api/conversations").await.0, 401);
    }
}

/// Asks with `token` every 60 ms (within its rate of 20 a second, so only a revocation stops it) until
/// it is refused as revoked, failing if a request sent a second or more after `revoked`
/// (when the revocation was answered) is still taken: the promise docs/api-tokens.md makes.
async fn refused_within_a_second(token: &Api, revoked: std::time::Instant) {
    loop {
        let sent = revoked.elapsed();
        let (status, answer) = token.get("/api/conversations").await;
        if status == 401 {
            assert_eq!(answer["error"]["code"], "invalid_token");
            assert!(
                answer["error"]["message"].as_str().unwrap().contains("revoked"),
                "{answer}"
            );
            return;
        }
        assert_eq!(status, 200, "{answer}");
        assert!(
            sent < Duration::from_secs(1),
            "the other node still takes the token {sent:?} after its revocation was answered"
        );
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
}

/// Beta hears nothing alpha says on the admin bus (it is on a Redis of its own, as a node
/// whose bus messages are all lost), so only the bound on its cache can stop a token it
/// looked up: once its look-up is older than `CACHE_TTL` by beta's own clock it asks the
/// store again, which says revoked. Its look-up came before the revocation, so that is
/// within a second of it, as with the bus.
#[tokio::test]
async fn a_node_that_missed_the_revocation_refuses_the_token_once_its_look_up_is_a_second_old() {
    let cluster = Cluster::start("api-tokens-missed").await;
    let alpha = cluster.node("alpha", |_| {}).await;
    let deaf_redis = crate::redis_server::RedisServer::start().await;
    let scratch = crate::archive::TempDir::new("api-tokens-deaf");
    let beta = crate::cluster_hub::node_with(cluster.store.clone(), &deaf_redis, "beta", &scratch, |_| {}).await;
    let admin = alpha.admin().await;
    let (secret, created) = token(&admin, "crm", &["read"]).await;
    let on_beta = Api::bearer(&beta, &secret);
    // Beta looks it up now, so it is in its cache from here on.
    assert_eq!(on_beta.get("/api/conversations").await.0, 200);

    revoke(&admin, &created).await;
    let revoked = std::time::Instant::now();
    assert_eq!(Api::bearer(&alpha, &secret).get("/api/conversations").await.0, 401);
    refused_within_a_second(&on_beta, revoked).await;
}

/// Waits until both nodes of `cluster` listen on the admin bus (a node serves HTTP a
/// moment before it does).
pub(crate) async fn both_listen_on_the_admin_bus(cluster: &Cluster) {
    let mut redis = redis::Client::open(cluster.redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    until_ok(
        Duration::from_secs(10),
        "fewer than two nodes listen on the bus",
        async || {
            let (_, listeners): (String, i64) = redis::cmd("PUBSUB")
                .arg("NUMSUB")
                .arg(switchboard::cluster::bus::ADMIN_CHANNEL)
                .query_async(&mut redis)
                .await
                .unwrap();
            if listeners >= 2 { Ok(()) } else { Err(listeners) }
        },
    )
    .await;
}

#[tokio::test]
async fn each_refused_token_leaves_a_log_line_with_its_reason_and_never_its_secret() {
    let dir = crate::archive::TempDir::new("token-refusals");
    let hub = HubProcess::start(Some(&dir.0), &[("STORE", "memory")]).await;
    let admin = hub.admin().await;
    let (read, _) = token(&admin, "reader", &["read"]).await;
    let (revoked, created) = token(&admin, "leaked", &["read"]).await;
    let revoked_id = created["id"].as_str().unwrap().to_string();
    assert_eq!(
        admin.delete(&format!("/api/admin/api-tokens/{revoked_id}")).await.0,
        200
    );
    let bot = crate::bots::bot_token(&admin, "Faq").await;
    let malformed = "sbt_my-password-by-mistake";
    let unknown = format!("sbt_{}", "Q".repeat(43));

    for (secret, status) in [(malformed, 401), (unknown.as_str(), 401), (revoked.as_str(), 401)] {
        let (got, answer) = Api::bearer(&hub, secret).get("/api/conversations").await;
        assert_eq!(got, status, "{answer}");
    }
    let (got, answer) = Api::bearer(&hub, &read)
        .post("/api/admin/api-tokens", json!({"name": "x", "scopes": ["read"]}))
        .await;
    assert_eq!((got, &answer["error"]["code"]), (403, &json!("missing_scope")));
    let (got, answer) = Api::bearer(&hub, &read)
        .get(&format!("/api/conversations?access_token={read}"))
        .await;
    assert_eq!((got, &answer["error"]["code"]), (401, &json!("token_in_query")));
    // The bot socket refuses a token in its query as the API does, whatever the header.
    let refused = Ws::connect(
        &hub.ws_url(&format!("/ws/bot?access_token={bot}")),
        &[("authorization", &format!("Bearer {bot}"))],
    )
    .await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 401);
            let body: Value = serde_json::from_slice(response.body().as_deref().unwrap_or_default()).unwrap();
            assert_eq!(body["error"]["code"], "token_in_query", "{body}");
        }
        other => panic!("expected a refusal, got {:?}", other.map(|_| ())),
    }
    // In a path, its prefix in capitals: refused, and the path is not logged.
    let (got, answer) = Api::bearer(&hub, &read)
        .get(&format!("/api/conversations/Sbt_{}", &read[4..]))
        .await;
    assert_eq!((got, &answer["error"]["code"]), (401, &json!("token_in_query")));

    let wanted = [
        ("malformed", "/api/conversations"),
        ("unknown", "/api/conversations"),
        ("revoked", "/api/conversations"),
        ("missing_scope", "/api/admin/api-tokens"),
        ("in_query", "/api/conversations"),
        ("in_query", "/ws/bot"),
        ("in_query", "(a path holding an API token)"),
    ];
    let log_path = dir.0.join("hub.log");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let refusals = loop {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        let refusals: Vec<String> = log
            .lines()
            .filter(|l| l.contains("API token refused"))
            .map(str::to_string)
            .collect();
        if refusals.len() >= wanted.len() || std::time::Instant::now() > deadline {
            break refusals;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(refusals.len(), wanted.len(), "one line per refusal: {refusals:#?}");
    for ((reason, route), line) in wanted.iter().zip(&refusals) {
        assert!(
            line.contains("WARN") && line.contains(reason) && line.contains(route) && line.contains("127.0.0.1"),
            "expected {reason} on {route} from 127.0.0.1: {line}"
        );
    }
    assert!(
        refusals[2].contains(&revoked_id),
        "a known token is named by its id: {}",
        refusals[2]
    );
    let log = std::fs::read_to_string(&log_path).unwrap();
    for secret in [
        malformed,
        unknown.as_str(),
        revoked.as_str(),
        read.as_str(),
        bot.as_str(),
    ] {
        // Its random part is the secret, whatever the prefix is spelled.
        assert!(!log.contains(&secret[4..]), "a secret in the log: {secret}");
    }
}
