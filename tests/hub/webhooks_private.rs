//! Whether webhooks may reach private addresses (a real receiver on loopback): with
//! `WEBHOOK_ALLOW_PRIVATE` unset the admins decide, off until they turn it on; off, a
//! loopback URL is refused at registration and an endpoint registered meanwhile is not
//! sent to; turned on by an admin signed in on the admin page, it is accepted and
//! delivered at once. An API token, even `admin`-scoped, cannot turn it on; the
//! environment's `false` or `true` locks it. (Two nodes: `webhooks_cluster`.)

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::*;
use crate::webhooks::{delivered_within, logged_when, receiver, register};

pub(crate) const SETTING: &str = "/api/admin/webhooks/private-addresses";

/// An offline message left: one `offline_message.created` event.
pub(crate) async fn offline_message(hub: &Endpoint, text: &str) {
    let olga = json!({"category": "general", "name": "Olga", "email": "olga@example.com", "text": text});
    assert_eq!(post(hub, "/api/offline-messages", olga).await.0, 201);
}

/// `url` refused at registration by `api` (400 `invalid_url`).
async fn refused_registration(api: &Api, url: &str) {
    let asked = json!({"url": url, "events": ["message.created"]});
    refusal(api.post("/api/admin/webhooks", asked).await, 400, "invalid_url");
}

/// The admins' choice set to `allowed` by `admin` (signed in by cookie): the answer.
pub(crate) async fn choose(admin: &Api, allowed: bool) -> Value {
    let (status, answer) = admin.put(SETTING, json!({"allowed": allowed})).await;
    assert_eq!(status, 200, "{answer}");
    answer
}

#[tokio::test]
async fn off_by_default_an_admin_turns_private_addresses_on_and_off_for_registration_and_delivery() {
    let hub = TestHub::with(|_| {}).await;
    let admin = hub.admin().await;
    let (url, got) = receiver(0).await;
    let (status, shown) = admin.get(SETTING).await;
    assert_eq!(status, 200);
    assert_eq!(
        shown,
        json!({"allowed": false, "effective": false, "locked": false, "changed_by": null, "changed_at": null})
    );
    refused_registration(&admin, &url).await;

    // Turned on: registered, and delivered.
    let on = choose(&admin, true).await;
    // The node answering read it again before answering: it heeds it already.
    assert_eq!(
        (&on["allowed"], &on["effective"], &on["locked"], &on["changed_by"]),
        (&json!(true), &json!(true), &json!(false), &json!("admin"))
    );
    assert!(on["changed_at"].as_i64().is_some(), "{on}");
    let endpoint = register(&admin, &url, &["offline_message.created"]).await;
    offline_message(&hub, "first").await;
    delivered_within(&got, 1, Duration::from_secs(10)).await;

    // Turned off again: the registered endpoint is sent nothing more, the attempt logged.
    assert_eq!(choose(&admin, false).await["allowed"], false);
    offline_message(&hub, "second").await;
    let id = endpoint["id"].as_str().unwrap();
    let log = logged_when(&admin, id, |log| {
        log.len() == 2 && log[0]["attempts"].as_array().is_some_and(|a| !a.is_empty())
    })
    .await;
    let attempt = &log[0]["attempts"][0];
    assert!(attempt["status_code"].is_null(), "{attempt}");
    assert!(attempt["excerpt"].as_str().unwrap().contains("private"), "{attempt}");
    assert_eq!(
        got.lock().unwrap().deliveries.len(),
        1,
        "nothing more reached the receiver"
    );
    // And a new loopback URL is refused again.
    refused_registration(&admin, &url).await;
    hub.stop().await;
}

#[tokio::test]
async fn an_api_token_even_admin_scoped_cannot_turn_private_addresses_on() {
    let hub = TestHub::with(|_| {}).await;
    let admin = hub.admin().await;
    let secret = admin.api_token_secret("ops script", &["admin"]).await;
    let script = Api::bearer(&hub, &secret);
    // It may read the setting, as it may read the endpoints...
    let (status, shown) = script.get(SETTING).await;
    assert_eq!((status, &shown["allowed"]), (200, &json!(false)), "{shown}");
    // ...but not change it; nor may an admin's session presented as a bearer token.
    refusal(
        script.put(SETTING, json!({"allowed": true})).await,
        403,
        "session_required",
    );
    let session_bearer = Api::bearer(&hub, &admin.token);
    refusal(
        session_bearer.put(SETTING, json!({"allowed": true})).await,
        403,
        "session_required",
    );
    let (_, shown) = admin.get(SETTING).await;
    assert_eq!(
        (&shown["allowed"], &shown["changed_by"]),
        (&json!(false), &Value::Null),
        "{shown}"
    );
    let (url, _got) = receiver(0).await;
    refused_registration(&script, &url).await;
    // An agent, signed in on a page, may not either.
    hub.agent_account("ann", &["general"], 1).await;
    let agent = hub.login("ann", "agent-password").await;
    refusal(agent.put(SETTING, json!({"allowed": true})).await, 403, "forbidden");
    hub.stop().await;
}

#[tokio::test]
async fn the_environment_locks_the_setting_off_or_on() {
    let (url, _got) = receiver(0).await;
    // `false`: never, `true`: always, whatever an admin asks.
    for operator in [false, true] {
        let hub = TestHub::with(|s| s.webhooks.allow_private = Some(operator)).await;
        let admin = hub.admin().await;
        let (_, shown) = admin.get(SETTING).await;
        assert_eq!(
            (&shown["allowed"], &shown["effective"], &shown["locked"]),
            (&json!(operator), &json!(operator), &json!(true)),
            "{shown}"
        );
        let refused = refusal(
            admin.put(SETTING, json!({"allowed": !operator})).await,
            409,
            "set_by_operator",
        );
        let says = format!("WEBHOOK_ALLOW_PRIVATE={operator}");
        assert!(
            refused["error"]["message"].as_str().unwrap().contains(&says),
            "{refused}"
        );
        if operator {
            register(&admin, &url, &["message.created"]).await;
        } else {
            refused_registration(&admin, &url).await;
        }
        hub.stop().await;
    }
}
