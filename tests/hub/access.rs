//! Who may reach agent and admin routes: the whitelist, forwarded addresses, origins.

use serde_json::json;

use crate::common::*;

async fn login_status(hub: &TestHub, xff: Option<&str>) -> (u16, serde_json::Value) {
    let mut req = reqwest::Client::new()
        .post(hub.url("/api/login"))
        .json(&json!({"username": "admin", "password": ADMIN_PASSWORD}));
    if let Some(xff) = xff {
        req = req.header("x-forwarded-for", xff);
    }
    let res = req.send().await.unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

#[tokio::test]
async fn agents_and_admins_are_refused_from_outside_the_whitelist() {
    let hub = TestHub::with(|s| s.access.agent_whitelist = vec!["10.9.0.0/16".parse().unwrap()]).await;
    let (status, body) = login_status(&hub, None).await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["code"], "not_whitelisted");
    let res = reqwest::get(hub.url("/api/admin/agents")).await.unwrap();
    assert_eq!(res.status(), 403);
    let err = Ws::connect(&hub.ws_url("/ws/agent"), &[("authorization", "Bearer whatever")])
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("403"), "{err}");
    // Customers are not affected.
    let res = reqwest::get(hub.url("/api/categories")).await.unwrap();
    assert_eq!(res.status(), 200);
    hub.customer("Carla", "general").await;
    hub.stop().await;
}

#[tokio::test]
async fn forwarded_for_from_an_untrusted_peer_is_ignored() {
    // The whitelist holds only the forged address; the real peer is loopback and untrusted as a proxy.
    let hub = TestHub::with(|s| s.access.agent_whitelist = vec!["203.0.113.9/32".parse().unwrap()]).await;
    assert_eq!(login_status(&hub, Some("203.0.113.9")).await.0, 403);
    hub.stop().await;
    // And the other way: loopback is whitelisted, a forged outside address changes nothing.
    let hub = TestHub::start().await;
    assert_eq!(login_status(&hub, Some("198.51.100.1")).await.0, 200);
    hub.stop().await;
}

#[tokio::test]
async fn forwarded_for_from_a_trusted_proxy_is_believed() {
    let hub = TestHub::with(|s| {
        s.access.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
        s.access.agent_whitelist = vec!["203.0.113.0/24".parse().unwrap()];
    })
    .await;
    assert_eq!(login_status(&hub, Some("203.0.113.9")).await.0, 200);
    assert_eq!(login_status(&hub, Some("198.51.100.1")).await.0, 403);
    assert_eq!(
        login_status(&hub, None).await.0,
        403,
        "the proxy itself is not whitelisted"
    );
    hub.stop().await;
}

#[tokio::test]
async fn the_agent_socket_needs_a_session_of_an_agent() {
    let hub = TestHub::start().await;
    let err = Ws::connect(&hub.ws_url("/ws/agent"), &[]).await.err().unwrap();
    assert!(err.to_string().contains("401"), "{err}");
    let admin = hub.admin().await;
    let auth = format!("Bearer {}", admin.token);
    let err = Ws::connect(&hub.ws_url("/ws/agent"), &[("authorization", &auth)])
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("403"), "admins do not take chats: {err}");
    hub.stop().await;
}

#[tokio::test]
async fn websockets_from_a_foreign_origin_are_refused() {
    let hub = TestHub::start().await;
    let err = Ws::connect(&hub.ws_url("/ws/customer"), &[("origin", "https://evil.example")])
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("403"), "{err}");
    let own = format!("http://{}", hub.addr);
    assert!(
        Ws::connect(&hub.ws_url("/ws/customer"), &[("origin", &own)])
            .await
            .is_ok()
    );
    hub.stop().await;
    let hub = TestHub::with(|s| s.access.allowed_origins = vec!["https://shop.example".into()]).await;
    assert!(
        Ws::connect(&hub.ws_url("/ws/customer"), &[("origin", "https://shop.example")])
            .await
            .is_ok()
    );
    hub.stop().await;
}

/// Every operation a staff session is required for, as the served document declares it, and
/// the sign-in and sign-out, are refused from outside the whitelist before anything else: by
/// an admin's session or an admin API token, through a trusted proxy. Excepted by name: the
/// operations a customer may call as well (the attachments, `customer_token`), and those a
/// session is optional for (`/api/metrics`); they check their caller themselves.
#[tokio::test]
async fn every_staff_operation_of_the_document_refuses_an_address_outside_the_whitelist() {
    let hub = TestHub::with(|s| s.access.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()]).await;
    let admin = hub.admin().await;
    let api_token = admin.api_token_secret("walk", &["admin"]).await;
    let _waiting = hub.customer("Carla", "general").await;
    let doc = get_json(&hub, "/api/openapi.json").await;
    let client = reqwest::Client::new();
    let mut walked = 0;
    let mut problems = vec![];
    for (template, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().unwrap() {
            let ways = operation["security"].as_array().cloned().unwrap_or_default();
            let schemes: Vec<&String> = ways.iter().flat_map(|w| w.as_object().unwrap().keys()).collect();
            let optional = ways.iter().any(|w| w.as_object().unwrap().is_empty());
            let customers_too = schemes.iter().any(|s| *s == "customer_token");
            let signs_in = operation["tags"]
                .as_array()
                .is_some_and(|t| t.iter().any(|t| t == "session"));
            if !(signs_in || !ways.is_empty() && !optional && !customers_too) {
                continue;
            }
            let path = template
                .split('/')
                .map(|s| if s.starts_with('{') { "x" } else { s })
                .collect::<Vec<_>>()
                .join("/");
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            for credential in [&admin.token, &api_token] {
                walked += 1;
                let res = client
                    .request(method.clone(), hub.url(&path))
                    .header("authorization", format!("Bearer {credential}"))
                    .header("x-forwarded-for", "203.0.113.9")
                    .json(&json!({}))
                    .send()
                    .await
                    .unwrap();
                let status = res.status().as_u16();
                let body: serde_json::Value = res.json().await.unwrap_or_default();
                if status != 403 || body["error"]["code"] != "not_whitelisted" {
                    problems.push(format!("{method} {template}: {status} {body}"));
                }
            }
        }
    }
    assert!(walked > 100, "the document's staff operations: {walked}");
    assert!(problems.is_empty(), "reached from outside:\n{}", problems.join("\n"));
    // The inbox and the reports, named: the two the whitelist once missed.
    assert!(doc["paths"]["/api/inbox"]["get"].is_object() && doc["paths"]["/api/reports"]["get"].is_object());
    hub.stop().await;
}
