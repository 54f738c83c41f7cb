//! `DEMO_HOST_PORT`: a small shop's site on a second port — another origin than the
//! hub's — with the chat widget's snippet pasted in, to try the widget as a site owner
//! would (and for the browser tests). Off unless the setting is given.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

const PAGE: &str = include_str!("../examples/widget-host/index.html");

/// The demo site's pages: (path, heading, text).
const PAGES: [(&str, &str, &str); 3] = [
    (
        "",
        "Gear for every trail",
        "Tents, packs and boots, tested by people who walk a lot. Questions? The chat bubble in the corner reaches our team.",
    ),
    (
        "pricing",
        "Pricing",
        "Free shipping over $50. Returns within 60 days, no questions asked.",
    ),
    ("about", "About us", "A small shop run by hikers since 2009."),
];

/// Binds the demo site next to the hub (same address, `port`) and serves it until `shutdown`.
pub async fn start(bind: SocketAddr, port: u16, hub_port: u16, shutdown: CancellationToken) -> std::io::Result<()> {
    let listener = TcpListener::bind(SocketAddr::new(bind.ip(), port)).await?;
    let app = Router::new()
        .route(
            "/",
            get(move |headers: HeaderMap| async move { render("", &headers, hub_port) }),
        )
        .route(
            "/{page}",
            get(move |Path(p): Path<String>, headers: HeaderMap| async move { render(&p, &headers, hub_port) }),
        );
    tracing::info!("demo host page with the chat widget on http://{}:{port}/", bind.ip());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
    });
    Ok(())
}

fn render(path: &str, headers: &HeaderMap, hub_port: u16) -> Response {
    let Some((_, heading, text)) = PAGES.iter().find(|(p, _, _)| *p == path) else {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    };
    // The hub on the host name this page was reached by, so the demo works on
    // localhost and 127.0.0.1 alike.
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.rsplit_once(':').map_or(Some(h), |(name, _)| Some(name)))
        .filter(|h| {
            h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'[' | b']' | b':'))
        })
        .unwrap_or("127.0.0.1");
    let hub = format!("http://{host}:{hub_port}");

    Html(
        PAGE.replace("{{HUB}}", &hub)
            .replace("{{HEADING}}", heading)
            .replace("{{TEXT}}", text),
    )
    .into_response()
}
