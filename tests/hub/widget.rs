//! The embeddable chat widget: its public settings at `/api/widget`, the one page other
//! sites may frame, and settings that stop start-up.

use serde_json::Value;

use crate::archive::TempDir;
use crate::common::{TestHub, get_with_header};
use crate::storeops::{hub_command, refuses};

const SHOP: &str = "https://shop.example.com";

fn header(res: &reqwest::Response, name: &str) -> Option<String> {
    res.headers().get(name).map(|v| v.to_str().unwrap().to_string())
}

/// `/api/widget` answers anyone with the desk's name, colour and greeting and whether an
/// agent is online; a listed site may read it from its pages (CORS), another may not.
#[tokio::test]
async fn the_widget_settings_are_public_and_readable_by_the_allowed_sites() {
    let hub = TestHub::with(|s| {
        s.widget.title = "Acme help".into();
        s.widget.color = "#0f766e".into();
        s.widget.greeting = "Hello from Acme".into();
        s.widget.allowed_origins = vec![SHOP.into()];
    })
    .await;
    let client = reqwest::Client::new();
    let res = get_with_header(&client, &hub.url("/api/widget"), ("origin", SHOP)).await;
    assert_eq!(res.status(), 200);
    assert_eq!(header(&res, "access-control-allow-origin").as_deref(), Some(SHOP));
    let config: Value = res.json().await.unwrap();
    assert_eq!(config["title"], "Acme help");
    assert_eq!(config["color"], "#0f766e");
    assert_eq!(config["greeting"], "Hello from Acme");
    assert_eq!(config["agents_online"], false, "nobody is online yet");
    assert_eq!(config["allowed_origins"], serde_json::json!([SHOP]));

    let other = get_with_header(&client, &hub.url("/api/widget"), ("origin", "https://evil.example")).await;
    assert_eq!(header(&other, "access-control-allow-origin"), None);

    let _agent = hub.agent("ann", &["general"], 1).await;
    let (_, config) = hub.admin().await.get("/api/widget").await;
    assert_eq!(config["agents_online"], true, "an agent signed in");
    hub.stop().await;
}

/// The widget page names the allowed sites (and the hub itself) in `frame-ancestors`, and
/// carries no `X-Frame-Options: DENY`; every other page and answer keeps `'none'`.
#[tokio::test]
async fn only_the_widget_page_may_be_framed_and_only_by_the_allowed_sites() {
    let hub = TestHub::with(|s| s.widget.allowed_origins = vec![SHOP.into(), "http://localhost:8090".into()]).await;
    let client = reqwest::Client::new();
    let res = client.get(hub.url("/widget.html?embed=1")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let csp = header(&res, "content-security-policy").unwrap();
    assert!(
        csp.contains(&format!("frame-ancestors 'self' {SHOP} http://localhost:8090")),
        "{csp}"
    );
    assert!(!csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert_eq!(header(&res, "x-frame-options"), None);

    for path in [
        "/",
        "/index.html",
        "/agent.html",
        "/widget.js",
        "/api/widget",
        "/api/categories",
    ] {
        let res = client.get(hub.url(path)).send().await.unwrap();
        let csp = header(&res, "content-security-policy").unwrap();
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(!csp.contains(SHOP), "{path}: {csp}");
        assert_eq!(header(&res, "x-frame-options").as_deref(), Some("DENY"), "{path}");
    }
    hub.stop().await;
}

/// With no site listed, the widget page is frameable by the hub's own pages only.
#[tokio::test]
async fn by_default_only_the_hub_itself_may_frame_the_widget() {
    let hub = TestHub::start().await;
    let res = reqwest::get(hub.url("/widget.html")).await.unwrap();
    let csp = header(&res, "content-security-policy").unwrap();
    assert!(csp.ends_with("frame-ancestors 'self'"), "{csp}");
    let (_, config) = hub.admin().await.get("/api/widget").await;
    assert_eq!(config["title"], "Switchboard");
    assert_eq!(config["color"], "#2563eb");
    assert_eq!(config["allowed_origins"], serde_json::json!([]));
    hub.stop().await;
}

/// Each bad widget setting stops `serve` and `check-config` with a message naming it.
#[test]
fn bad_widget_settings_stop_start_up_naming_the_variable() {
    let scratch = TempDir::new("widget-settings");
    for (var, value) in [
        ("WIDGET_COLOR", "blue"),
        ("WIDGET_COLOR", "#12345"),
        ("WIDGET_TITLE", &"x".repeat(61)),
        ("WIDGET_GREETING", &"y".repeat(301)),
        ("WIDGET_ALLOWED_ORIGINS", "*"),
        ("WIDGET_ALLOWED_ORIGINS", "https://shop.example.com/"),
        ("WIDGET_ALLOWED_ORIGINS", "shop.example.com"),
        ("WIDGET_ALLOWED_ORIGINS", "https://a.example; script-src *"),
        ("DEMO_HOST_PORT", "http"),
    ] {
        for args in [&["serve"][..], &["check-config"]] {
            let what = format!("{args:?} with {var}={value:?}");
            refuses(
                hub_command(&scratch.0, &[("STORE", "memory"), (var, value)], args),
                var,
                &what,
            );
        }
    }
}

/// The admin's widget settings name the hub's public address for the snippet a site pastes:
/// `PUBLIC_URL` when set, else null (the page then uses the address it was opened at).
#[tokio::test]
async fn the_admin_widget_settings_name_the_public_url_for_the_snippet() {
    let hub = TestHub::start().await;
    let (status, shown) = hub.admin().await.get("/api/admin/widget").await;
    assert_eq!((status, shown["public_url"].clone()), (200, Value::Null), "{shown}");
    hub.stop().await;

    let hub = TestHub::with(|s| s.public_url = Some("https://help.example.com".into())).await;
    let (status, shown) = hub.admin().await.get("/api/admin/widget").await;
    assert_eq!(
        (status, shown["public_url"].as_str()),
        (200, Some("https://help.example.com")),
        "{shown}"
    );
    hub.stop().await;
}
