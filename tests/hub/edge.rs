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
    reqwest::Client::builder()
        .local_address(PROXY.parse::<IpAddr>().unwrap())
        .build()
        .unwrap()
}

/// Issue 13, item 1: one unparsable hop made the whole chain fall back to the
/// proxy's own, whitelisted, address; the client's entries must never be read past
/// the rightmost untrusted one.
#[tokio::test]
async fn a_forged_forwarded_chain_does_not_pass_the_whitelist() {
    let hub = TestHub::with(|s| s.trusted_proxies = vec![format!("{PROXY}/32").parse().unwrap()]).await;
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
        let res = client
            .post(hub.url("/api/login"))
            .header("x-forwarded-for", forged)
            .json(&json!({"username": "admin", "password": ADMIN_PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 403, "X-Forwarded-For: {forged}");
        let res = client
            .get(hub.url("/api/admin/agents"))
            .header("x-forwarded-for", forged)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 403, "X-Forwarded-For: {forged}");
    }
    // A real loopback client behind the proxy, in the forms a proxy writes, is still let in.
    for honest in ["127.0.0.1", "127.0.0.1:5555", "203.0.113.5, 127.0.0.1"] {
        let res = client
            .post(hub.url("/api/login"))
            .header("x-forwarded-for", honest)
            .json(&json!({"username": "admin", "password": ADMIN_PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "X-Forwarded-For: {honest}");
    }
    // The agent websocket applies the same rule.
    let err = Ws::connect_from(
        PROXY,
        &hub.ws_url("/ws/agent"),
        &[("x-forwarded-for", "x, 203.0.113.5"), ("authorization", "Bearer whatever")],
    )
    .await
    .err()
    .unwrap();
    assert!(err.to_string().contains("403"), "{err}");
    hub.stop().await;
}
