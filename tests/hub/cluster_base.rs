//! The cluster's foundations (issue 15): the settings that make a node join a cluster,
//! sessions in the shared store, the Redis connection and its health, node leases with
//! fencing, and the admin-change bus. Real processes, a real `redis-server`, a real
//! MongoDB-wire server (through `scripts/with-mongo.sh`).

use crate::archive::TempDir;
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
