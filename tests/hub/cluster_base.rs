//! The cluster's foundations (issue 15): the settings that make a node join a cluster,
//! sessions in the shared store, the Redis connection and its health, node leases with
//! fencing, and the admin-change bus. Real processes, a real `redis-server`, a real
//! MongoDB-wire server (through `scripts/with-mongo.sh`).

use std::sync::Arc;

use switchboard::store::{MemoryStore, SharedStore};

use crate::archive::TempDir;
use crate::common::{TestHub, Ws};
use crate::storeops::{hub_command, refuses};

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
    let me = client
        .get(second.url("/api/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200, "the session made before the restart still signs in");
    let mut ann = Ws::agent(&second, &token).await;
    let out = client
        .post(second.url("/api/logout"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 204);
    assert_eq!(ann.closed().await.map(u16::from), Some(4001));
    let me = client
        .get(second.url("/api/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 401, "signed out");
    second.stop().await;
}
