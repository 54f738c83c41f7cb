//! The cluster's foundations: the settings that make a node join a cluster,
//! sessions in the shared store, the Redis connection and its health, node leases with
//! fencing, and the admin-change bus. Real processes, a real `redis-server`, a real
//! MongoDB-wire server (through `scripts/with-mongo.sh`).

use crate::common::signal;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use serde_json::{Value, json};
use switchboard::store::{MemoryStore, MongoStore, SharedStore};

use crate::archive::{TempDir, mongo_uri};
use crate::cluster_fixture::{Process, process_and_nodes};
use crate::common::{TestHub, Ws, error_code, logout, polled, until_ok};
use crate::redis_server::RedisServer;
use crate::storeops::{hub_command, refuses};

/// How long a test waits for something the cluster must do (several leases' worth).
const WAIT: Duration = Duration::from_secs(20);

/// A short lease, so fencing and reaping happen within a test's patience.
const LEASE_MS: u64 = 1_000;
const RENEW_MS: u64 = 200;

pub(crate) async fn redis_conn(redis: &RedisServer) -> redis::aio::MultiplexedConnection {
    let client = redis::Client::open(redis.url()).unwrap();
    client.get_multiplexed_async_connection().await.unwrap()
}

/// The incarnation Redis holds for `node`, if registered.
pub(crate) async fn registered(mut conn: redis::aio::MultiplexedConnection, node: &str) -> Option<u64> {
    redis::cmd("HGET")
        .arg("{sb}:nodes")
        .arg(node)
        .query_async::<Option<u64>>(&mut conn)
        .await
        .ok()
        .flatten()
}

/// Polls `check` until it gives `Some`, failing after [`WAIT`] with `what`.
pub(crate) async fn eventually<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    mut check: impl FnMut() -> F,
) -> T {
    polled(WAIT, async || check().await)
        .await
        .unwrap_or_else(|| panic!("never happened: {what}"))
}

/// Nodes "node-a" and "node-b" in the cluster at `redis`, on one MongoDB database of their
/// own (each node its own connection), both registered: the nodes and a Redis connection.
pub(crate) async fn two_nodes_on_mongo(
    redis: &RedisServer,
    scratch: &TempDir,
) -> (TestHub, TestHub, redis::aio::MultiplexedConnection) {
    let uri = mongo_uri();
    let db = format!("t{}", uuid::Uuid::new_v4().simple());
    let store_a: SharedStore = Arc::new(MongoStore::connect(&uri, &db).await.unwrap());
    let store_b: SharedStore = Arc::new(MongoStore::connect(&uri, &db).await.unwrap());
    let a = node_on(store_a, redis, "node-a", scratch).await;
    let b = node_on(store_b, redis, "node-b", scratch).await;
    let conn = redis_conn(redis).await;
    for node in ["node-a", "node-b"] {
        eventually("both nodes register", || registered(conn.clone(), node)).await;
    }
    (a, b, conn)
}

/// A hub in this process that joins the cluster at `redis` as `node`, on `store`, with
/// its own `DATA_DIR` (a MongoDB hub keeps its archive spool there) inside `scratch`.
pub(crate) async fn node_on(store: SharedStore, redis: &RedisServer, node: &str, scratch: &TempDir) -> TestHub {
    crate::cluster_hub::node_with(store, redis, node, scratch, |_| {}).await
}

/// Registers "ghost" (incarnation 3) as a node that registered long ago and never
/// renewed: its lease deadline long past.
async fn ghost(mut conn: redis::aio::MultiplexedConnection) {
    redis::pipe()
        .cmd("HSET")
        .arg("{sb}:nodes")
        .arg("ghost")
        .arg(3)
        .cmd("ZADD")
        .arg("{sb}:leases")
        .arg(1_000)
        .arg("ghost")
        .exec_async(&mut conn)
        .await
        .unwrap();
}

async fn get(url: &str) -> (u16, Value) {
    let res = reqwest::get(url).await.unwrap();
    (res.status().as_u16(), res.json().await.unwrap_or(Value::Null))
}

/// `REDIS_URL` with a store only one process can hold stops `serve` and `check-config`
/// at once, with a message naming REDIS_URL and STORE and what to use instead.
#[test]
fn redis_url_with_a_one_process_store_stops_start_up() {
    let scratch = TempDir::new("cluster-settings");
    let url = "redis://127.0.0.1:6379/";
    for store in ["embedded", "memory", "auto"] {
        for args in [&["serve"][..], &["check-config"]] {
            let envs = [("REDIS_URL", url), ("STORE", store)];
            let what = format!("{args:?} with REDIS_URL and STORE={store}");
            refuses(hub_command(&scratch.0, &envs, args), "REDIS_URL", &what);
            refuses(hub_command(&scratch.0, &envs, args), "STORE=", &what);
            refuses(hub_command(&scratch.0, &envs, args), "MONGODB_URI", &what);
        }
    }
}

/// Sessions live in the store, not in the hub's memory: a staff member signed in before
/// a restart (a new hub on the same store) is still signed in after it, and can open
/// their agent socket; signing out then still closes that socket with 4001.
#[tokio::test]
async fn a_session_survives_a_hub_restart_on_the_same_store() {
    let store: SharedStore = Arc::new(MemoryStore::new());
    let first = TestHub::with_store(store.clone(), |_| {}).await;
    let token = first.agent_account("ann", &["general"], 1).await;
    first.stop().await;

    let second = TestHub::with_store(store.clone(), |_| {}).await;
    let client = reqwest::Client::new();
    let me = |client: &reqwest::Client| client.get(second.url("/api/me")).bearer_auth(&token).send();
    assert_eq!(
        me(&client).await.unwrap().status(),
        200,
        "the session made before the restart still signs in"
    );
    let mut ann = Ws::agent(&second, &token).await;
    logout(&second, &token).await;
    assert_eq!(ann.closed().await.map(u16::from), Some(4001));
    assert_eq!(me(&client).await.unwrap().status(), 401, "signed out");
    second.stop().await;
}

/// A node registers (an incarnation in `{sb}:nodes`, a deadline in `{sb}:leases` on
/// Redis's clock) and keeps renewing; `/healthz` and `/readyz` show it.
#[tokio::test]
async fn a_node_registers_and_renews_its_lease() {
    let scratch = TempDir::new("cluster");
    let redis = RedisServer::start().await;
    let hub = node_on(Arc::new(MemoryStore::new()), &redis, "alpha", &scratch).await;
    let conn = redis_conn(&redis).await;
    let incarnation = eventually("alpha registers", || registered(conn.clone(), "alpha")).await;
    let deadline = |mut conn: redis::aio::MultiplexedConnection| async move {
        redis::cmd("ZSCORE")
            .arg("{sb}:leases")
            .arg("alpha")
            .query_async::<Option<u64>>(&mut conn)
            .await
            .unwrap()
    };
    let first = deadline(conn.clone()).await.expect("a lease deadline");
    let later = eventually("the lease is renewed", || {
        let conn = conn.clone();
        async move { deadline(conn).await.filter(|d| *d > first) }
    })
    .await;
    assert!(later > first);
    assert_eq!(
        registered(conn.clone(), "alpha").await,
        Some(incarnation),
        "the same incarnation renews"
    );
    let (status, health) = get(&hub.url("/healthz")).await;
    assert_eq!(status, 200);
    assert_eq!(health["cluster"]["redis"], "up", "{health}");
    assert_eq!(health["cluster"]["node_id"], "alpha", "{health}");
    assert_eq!(health["cluster"]["incarnation"], incarnation, "{health}");
    assert_eq!(get(&hub.url("/readyz")).await.0, 200);
    hub.stop().await;
}

/// A node that is gone (its lease deadline passed) is found by a live node scanning the
/// deadlines and removed from `{sb}:nodes` and `{sb}:leases`.
#[tokio::test]
async fn a_live_node_reaps_a_dead_one() {
    let scratch = TempDir::new("cluster");
    let redis = RedisServer::start().await;
    let conn = redis_conn(&redis).await;
    ghost(conn.clone()).await;
    let hub = node_on(Arc::new(MemoryStore::new()), &redis, "alpha", &scratch).await;
    eventually("alpha registers", || registered(conn.clone(), "alpha")).await;
    eventually("the ghost is reaped", || async {
        let mut conn = conn.clone();
        let nodes: Vec<String> = redis::cmd("HKEYS")
            .arg("{sb}:nodes")
            .query_async(&mut conn)
            .await
            .unwrap();
        let leases: Vec<String> = redis::cmd("ZRANGE")
            .arg("{sb}:leases")
            .arg(0)
            .arg(-1)
            .query_async(&mut conn)
            .await
            .unwrap();
        (nodes == ["alpha"] && leases == ["alpha"]).then_some(())
    })
    .await;
    hub.stop().await;
}

/// Redis killed: the node stays up and says so (`/healthz` degraded with `redis: down`,
/// `/readyz` 503 `redis_unreachable`), and refuses an admin change with
/// `cluster_unavailable`. A new, EMPTY Redis on the same port: the node notices it is
/// unknown there and registers again, with an incarnation above its old one, and is
/// healthy again without a restart.
#[tokio::test]
async fn redis_down_is_reported_and_an_empty_redis_is_rejoined_without_a_restart() {
    let scratch = TempDir::new("cluster");
    let mut redis = RedisServer::start().await;
    let port = redis.port;
    let hub = node_on(Arc::new(MemoryStore::new()), &redis, "alpha", &scratch).await;
    let conn = redis_conn(&redis).await;
    let before = eventually("alpha registers", || registered(conn.clone(), "alpha")).await;
    let admin = hub.admin().await;

    redis.kill();
    let health = eventually("/healthz says Redis is down", || async {
        let (_, health) = get(&hub.url("/healthz")).await;
        (health["cluster"]["redis"] == "down").then_some(health)
    })
    .await;
    assert_eq!(health["status"], "degraded", "{health}");
    let (status, ready) = get(&hub.url("/readyz")).await;
    assert_eq!(status, 503, "{ready}");
    let reasons = ready["not_ready_because"].as_array().unwrap();
    assert!(reasons.contains(&json!("redis_unreachable")), "{ready}");
    let (status, refused) = admin
        .post("/api/admin/categories", json!({"id": "returns", "name": "Returns"}))
        .await;
    assert_eq!(
        (status, error_code(&refused)),
        (503, "cluster_unavailable"),
        "{refused}"
    );
    assert_eq!(
        admin.get("/api/categories").await.1.as_array().unwrap().len(),
        4,
        "nothing was changed"
    );

    let redis = RedisServer::start_on(port).await;
    let conn = redis_conn(&redis).await;
    let after = eventually("alpha registers with the empty Redis", || {
        registered(conn.clone(), "alpha")
    })
    .await;
    assert!(
        after > before,
        "incarnation {after} after {before}: incarnations only rise"
    );
    let health = eventually("/healthz recovers", || async {
        let (_, health) = get(&hub.url("/healthz")).await;
        (health["status"] == "ok").then_some(health)
    })
    .await;
    assert_eq!(health["cluster"]["incarnation"], after, "{health}");
    assert_eq!(get(&hub.url("/readyz")).await.0, 200);
    let (status, _) = admin
        .post("/api/admin/categories", json!({"id": "returns", "name": "Returns"}))
        .await;
    assert_eq!(status, 201, "admin changes work again");
    hub.stop().await;
}

/// A node stalled (SIGSTOP) past its lease is reaped by a live node; woken (SIGCONT), its
/// next renewal is refused (`FENCED`) and it rejoins with a higher incarnation, as its
/// log says. The real binary, on MongoDB (which `REDIS_URL` requires).
#[tokio::test]
async fn a_stalled_node_is_fenced_reaped_and_rejoins_with_a_higher_incarnation() {
    // The real binary, its log kept (tracing writes to standard output), and a live node
    // beside it, in this process, on the same MongoDB.
    let (sleepy, bind, [awake], servers) =
        process_and_nodes("cluster-stall", Process::named("sleepy").logged(), ["awake"], |_| {}).await;
    let log = servers.scratch.0.join("sleepy.log");
    let conn = redis_conn(&servers.redis).await;
    let before = eventually("sleepy registers", || registered(conn.clone(), "sleepy")).await;
    eventually("awake registers", || registered(conn.clone(), "awake")).await;

    signal(&sleepy.0, libc::SIGSTOP);
    eventually("the stalled node is reaped", || async {
        registered(conn.clone(), "sleepy").await.is_none().then_some(())
    })
    .await;
    signal(&sleepy.0, libc::SIGCONT);
    let after = eventually("sleepy rejoins", || registered(conn.clone(), "sleepy")).await;
    assert!(after > before, "incarnation {after} after {before}");
    // The registration is in Redis a moment before the node's log says so: wait for the line.
    let said = eventually("the rejoin is logged", || async {
        let said = std::fs::read_to_string(&log).unwrap();
        said.contains("REJOINED the cluster").then_some(said)
    })
    .await;
    assert!(said.contains("FENCED"), "the refusal is logged:\n{said}");
    let (_, health) = get(&format!("http://{bind}/healthz")).await;
    assert_eq!(health["cluster"]["incarnation"], after, "{health}");
    awake.stop().await;
    drop(sleepy);
}

/// Two nodes on one MongoDB and one Redis: admin changes made through node A reach node
/// B's hub at once, through the admin bus. Disabling an agent closes their socket on B
/// (4003); a sign-out on A closes a staff socket on B opened with that session (4001);
/// a category created on A can be joined on B.
#[tokio::test]
async fn admin_changes_made_on_one_node_apply_on_the_other() {
    let scratch = TempDir::new("cluster");
    let redis = RedisServer::start().await;
    let (a, b, conn) = two_nodes_on_mongo(&redis, &scratch).await;
    let admin = a.admin().await;

    // Disabling: ann signed in on A, her agent socket on B.
    let ann_token = a.agent_account("ann", &["general"], 1).await;
    let mut ann_on_b = Ws::agent(&b, &ann_token).await;
    admin.disable_agent("ann").await;
    assert_eq!(ann_on_b.closed().await.map(u16::from), Some(4003));

    // Signing out on A: bob's socket on B, opened with that session, closes.
    let bob_token = a.agent_account("bob", &["general"], 1).await;
    let mut bob_on_b = Ws::agent(&b, &bob_token).await;
    logout(&a, &bob_token).await;
    assert_eq!(bob_on_b.closed().await.map(u16::from), Some(4001));

    // A category created on A: B's hub routes it.
    let (status, body) = admin
        .post("/api/admin/categories", json!({"id": "returns", "name": "Returns"}))
        .await;
    assert_eq!(status, 201, "{body}");
    // The bus brings it within moments: until then B answers `unknown_category` (and
    // keeps the connection), so the join is retried.
    let mut walt = Ws::connect(&b.ws_url("/ws/customer"), &[]).await.unwrap();
    until_ok(WAIT, "B never routed the new category", async || {
        walt.send(json!({"type": "join", "name": "Walt", "category": "returns"}))
            .await;
        match walt.recv_within(Duration::from_secs(2)).await {
            Some(answer) if answer["type"] == "welcome" => Ok(()),
            answer => Err(format!("{answer:?}")),
        }
    })
    .await;
    walt.next_of("queued").await;

    // B's subscription is cut: it subscribes again (and reloads what it may have missed),
    // so a change made on A right after still reaches B's hub.
    let carl_token = a.agent_account("carl", &["general"], 1).await;
    let mut carl_on_b = Ws::agent(&b, &carl_token).await;
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(&mut conn.clone())
        .await
        .unwrap();
    assert!(killed >= 2, "both nodes' subscriptions were cut ({killed})");
    admin.disable_agent("carl").await;
    assert_eq!(carl_on_b.closed().await.map(u16::from), Some(4003));
    a.stop().await;
    b.stop().await;
}

/// Records the dead nodes it is handed; refuses the first one, as a hand-over that
/// failed (Redis blinked) would.
#[derive(Default)]
struct RecordingHook {
    calls: std::sync::Mutex<Vec<(String, Option<u64>)>>,
}

#[async_trait::async_trait]
impl switchboard::cluster::lease::NodeLost for RecordingHook {
    async fn node_lost(&self, node: &str, incarnation: Option<u64>) -> Result<(), String> {
        let mut calls = self.calls.lock().unwrap();
        calls.push((node.to_string(), incarnation));
        if calls.len() == 1 {
            Err("not now".into())
        } else {
            Ok(())
        }
    }
}

/// The reaper hands a dead node to the hook (the routing's `node_lost` goes there) before
/// removing it; a hand-over that fails leaves the node registered, to be handed over at
/// the next scan, and once removed it is never handed over again.
#[tokio::test]
async fn a_dead_node_is_handed_over_before_it_is_removed() {
    let redis = RedisServer::start().await;
    let conn = redis_conn(&redis).await;
    ghost(conn.clone()).await;
    let mut settings = switchboard::config::Settings::for_tests();
    settings.cluster.redis_url = Some(redis.url());
    settings.cluster.node_id = "alpha".into();
    settings.cluster.lease = Duration::from_millis(LEASE_MS);
    settings.cluster.renew = Duration::from_millis(RENEW_MS);
    let hook = Arc::new(RecordingHook::default());
    let shutdown = tokio_util::sync::CancellationToken::new();
    let (cluster, task) =
        switchboard::cluster::node::Cluster::start(&settings.cluster, hook.clone(), shutdown.clone()).unwrap();
    eventually("the ghost is reaped", || {
        registered(conn.clone(), "ghost").map(|r| r.is_none().then_some(()))
    })
    .await;
    assert!(cluster.status().usable());
    // A few more scans: the removed node is not handed over again.
    tokio::time::sleep(Duration::from_millis(RENEW_MS * 3)).await;
    let calls = hook.calls.lock().unwrap().clone();
    assert_eq!(calls, [("ghost".to_string(), Some(3)), ("ghost".to_string(), Some(3))]);
    shutdown.cancel();
    task.await.unwrap();
}
