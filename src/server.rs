//! Putting the hub together: open the store, bootstrap a fresh one, start the
//! archive writer and the hub, serve HTTP and websockets until shutdown, then
//! drain. Tests call [`run`] on a listener bound to port 0.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::archive::Archive;
use crate::archive::spool::Spool;
use crate::auth::{Sessions, hash_password, random_token};
use crate::clock::now_ms;
use crate::config::Settings;
use crate::http::AppState;
use crate::hub::Hub;
use crate::store::{Account, Category, Role, SharedStore, StoreError};

/// How long shutdown waits for the cluster lease's release: a few Redis request timeouts.
const LEASE_RELEASE: Duration = Duration::from_secs(3);
/// How long shutdown waits for the archive to write what it holds: longer than one
/// store write may take before it counts as failed (`write_timeout`), so a stop during a
/// hung write still sees it fail and spools what the writer holds (on MongoDB) instead
/// of abandoning it.
fn archive_drain(write_timeout: Duration) -> Duration {
    write_timeout.saturating_add(Duration::from_secs(10))
}

/// The categories a fresh store starts with.
const DEFAULT_CATEGORIES: [(&str, &str); 4] = [
    ("general", "General"),
    ("sales", "Sales"),
    ("billing", "Billing"),
    ("technical", "Technical support"),
];

/// What start-up created, for the operator's banner.
#[derive(Debug, Default)]
pub struct Bootstrap {
    /// `(username, password)` of an admin created now; the password only when generated.
    pub created_admin: Option<(String, Option<String>)>,
    pub created_categories: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error("server: {0}")]
    Io(#[from] std::io::Error),
    /// The archive's spool or the webhook journal (in DATA_DIR) cannot be opened or read
    /// (the message names which).
    #[error("{0}")]
    Spool(String),
    /// The cluster's Redis cannot be used as configured.
    #[error("cluster: {0}")]
    Cluster(String),
    /// The attachments' directory (in DATA_DIR) cannot be opened or read.
    #[error("attachments: {0}")]
    Attachments(String),
}

/// Where attachments are kept, for a start-up error.
fn attachments_place(backend: &str) -> &'static str {
    match backend {
        "mongodb" => "MONGODB_URI (attachments)",
        _ => "DATA_DIR/attachments",
    }
}

/// Fills a fresh store: default categories and the first admin.
pub async fn bootstrap(store: &SharedStore, settings: &Settings) -> Result<Bootstrap, StoreError> {
    let mut done = Bootstrap::default();
    let accounts = store.accounts().await?;
    if accounts.is_empty() && store.categories().await?.is_empty() {
        for (id, name) in DEFAULT_CATEGORIES {
            store
                .create_category(Category {
                    id: id.into(),
                    name: name.into(),
                })
                .await?;
        }
        done.created_categories = true;
    }
    if !accounts.iter().any(|a| a.role == Role::Admin) {
        let generated = settings
            .admin_password
            .is_none()
            .then(|| random_token()[..16].to_string());
        let password = settings
            .admin_password
            .clone()
            .or_else(|| generated.clone())
            .expect("one of the two is set");
        let admin = Account {
            id: uuid::Uuid::new_v4().to_string(),
            username: settings.admin_username.clone(),
            display_name: "Administrator".into(),
            role: Role::Admin,
            // Nothing else is hashing while the hub starts, so a hashing thread is free.
            password_hash: hash_password(password, settings.password_hash_cost)
                .await
                .expect("start-up hashes alone"),
            categories: vec![],
            max_chats: 1,
            enabled: true,
            created_at: now_ms(),
        };
        store.create_account(admin).await?;
        done.created_admin = Some((settings.admin_username.clone(), generated));
    }
    Ok(done)
}

/// Serves on `listener` until `shutdown` is cancelled, then tells every client, closes and drains.
pub async fn run(
    listener: TcpListener,
    settings: Settings,
    store: SharedStore,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    let settings = Arc::new(settings);
    crate::metrics::handle();
    // Every read below (HTTP, frames, background tasks) answers within the read timeout:
    // a frozen MongoDB otherwise holds a request without end (`store::bounded`).
    let store = crate::store::bounded_reads(store, settings.store.read_timeout);
    let categories = store.categories().await?;
    // A remote store gets a write-ahead spool on local disk for its outages; the embedded
    // store is local disk already, and the memory store keeps nothing anyway.
    let spool = match store.backend() {
        "mongodb" => {
            Some(Spool::open(&settings.store.data_dir).map_err(|e| RunError::Spool(format!("DATA_DIR: {e}")))?)
        }
        _ => None,
    };
    let (archive, archive_task) = Archive::start(store.clone(), settings.archive.buffer, spool)
        .map_err(|e| RunError::Spool(format!("DATA_DIR: {e}")))?;
    let slow_after = u64::try_from(settings.archive.slow_write.as_millis()).unwrap_or(u64::MAX);
    archive
        .status
        .slow_after_ms
        .store(slow_after, std::sync::atomic::Ordering::Relaxed);
    let write_timeout = u64::try_from(settings.archive.write_timeout.as_millis()).unwrap_or(u64::MAX);
    archive
        .status
        .write_timeout_ms
        .store(write_timeout, std::sync::atomic::Ordering::Relaxed);
    // ---- the default configuration fast ----
    let group_commit = u64::try_from(settings.archive.group_commit.as_millis()).unwrap_or(u64::MAX);
    archive
        .status
        .group_commit_ms
        .store(group_commit, std::sync::atomic::Ordering::Relaxed);
    // ---- webhooks: events queued as the archive takes them, delivered in the background ----
    // The journal is on local disk next to the spool, but for a store that keeps nothing.
    let journal = match store.backend() {
        "memory" => crate::webhooks::journal::JournalFile::in_memory(),
        _ => {
            // An empty file would be taken for a new journal: refused, as the spool's is.
            crate::webhooks::journal::preflight(&settings.store.data_dir).map_err(|e| RunError::Spool(e.0))?;
            crate::webhooks::journal::JournalFile::open(&settings.store.data_dir)
        }
    }
    .map_err(|e| RunError::Spool(format!("DATA_DIR: {e}")))?;
    archive.tell_webhooks(crate::webhooks::Webhooks::start(
        store.clone(),
        &settings,
        journal,
        shutdown.clone(),
    ));
    let sessions = Sessions::new(store.clone(), settings.session_ttl);
    tokio::spawn(crate::auth::sweep_sessions(sessions.clone(), shutdown.clone()));
    tokio::spawn(crate::store::keep_reports_ready(store.clone(), shutdown.clone()));
    tokio::spawn(crate::store::keep_record_copies(store.clone(), shutdown.clone()));
    // Conversations archived before statuses become resolved (once; safe on every node).
    tokio::spawn(crate::conversations::migration::run(
        store.clone(),
        crate::clock::now_ms(),
    ));
    // ---- several nodes through Redis ----
    let (cluster, lease_task) = if settings.clustered() {
        // A dead node's people are handed to this node by the `node_lost` routing script.
        let hook = crate::hub::cluster::link::RoutingHandover::new();
        let (cluster, lease_task) =
            crate::cluster::node::Cluster::start(&settings.cluster, hook.clone(), shutdown.clone())
                .map_err(|e| RunError::Cluster(format!("REDIS_URL: {e}")))?;
        hook.attach(cluster.clone());
        (Some(cluster), Some(lease_task))
    } else {
        (None, None)
    };
    let attachments =
        async { crate::attachments::Attachments::open(&settings, store.shared_attachments().await.transpose()?) }
            .await
            .map_err(|e| RunError::Attachments(format!("{}: {e}", attachments_place(store.backend()))))?;
    if let Some(scanner) = attachments.scanner.clone() {
        tokio::spawn(async move {
            if scanner.answers().await {
                tracing::info!("attachments: files are scanned by clamd (CLAMD_URL)");
            } else {
                tracing::warn!("CLAMD_URL: clamd does not answer; uploads are refused until it does");
            }
        });
    }
    let (hub, hub_task) = Hub::start(
        settings.clone(),
        attachments.clone(),
        categories,
        archive.clone(),
        sessions.clone(),
        cluster.clone(),
        shutdown.clone(),
    );
    // Webhook bots and the categories naming them: a bot with no socket is known from the
    // store, not from its connecting.
    // Read before the listener opens, so the first customers meet them; should the store
    // not answer in 5 s, the reading goes on in the background.
    let mut bot_hooks = tokio::spawn(crate::hub::load_bot_hooks(store.clone(), hub.clone()));
    if tokio::time::timeout(std::time::Duration::from_secs(5), &mut bot_hooks)
        .await
        .is_err()
    {
        tracing::warn!("webhook bots are not known yet: the store is slow; they will be");
    }
    // ---- rooms and 1-to-1 video ----
    let (rooms, rooms_task) = crate::rooms::Rooms::start(&settings, store.clone(), cluster.clone(), shutdown.clone());
    // API tokens that expire act as revoked at their expiry (on every node: its own sockets).
    tokio::spawn(crate::hub::token_expiry::keep(
        store.clone(),
        hub.clone(),
        shutdown.clone(),
    ));
    // Categories open and close by their chat hours (on every node: the hub applies only changes).
    tokio::spawn(crate::desk_hours::keep(
        store.clone(),
        settings.clone(),
        hub.clone(),
        shutdown.clone(),
    ));
    // ---- appointment mail outbox ----
    tokio::spawn(crate::appointments::mailer::run(
        store.clone(),
        rooms.senders.mail.clone(),
        settings.clone(),
        shutdown.clone(),
    ));
    // ---- mail customers send back, read over IMAP (by one node at a time) ----
    let inbound = settings
        .imap
        .is_some()
        .then(Arc::<crate::inbound::poller::InboundStatus>::default);
    if let (Some(imap), Some(status)) = (settings.imap.clone(), inbound.clone()) {
        // MAIL_FROM was checked to be a mailbox at start-up.
        let desk_address = settings
            .mail
            .from
            .parse::<lettre::message::Mailbox>()
            .map(|m| m.email.to_string())
            .unwrap_or_default();
        let sink = crate::inbound::conversations::ConversationSink {
            store: store.clone(),
            hub: hub.clone(),
            domain: desk_address
                .rsplit_once('@')
                .map(|(_, d)| d.to_string())
                .unwrap_or_default(),
            attachments: attachments.clone(),
        };
        tokio::spawn(crate::inbound::poller::run(
            imap,
            desk_address,
            store.clone(),
            Arc::new(sink),
            status,
            cluster
                .clone()
                .map(|c| crate::cluster::duty::hold(c, "imap", shutdown.clone())),
            shutdown.clone(),
        ));
    }
    let store_for_tokens = store.clone();
    let bot_relay = cluster
        .clone()
        .map(|c| crate::hub::bot_relay::BotRelay::start(c, hub.clone(), archive.clone(), shutdown.clone()));
    let state = AppState {
        settings: settings.clone(),
        store,
        hub,
        archive,
        sessions,
        connections: Arc::new(Semaphore::new(settings.max_connections)),
        next_conn: Arc::new(AtomicU64::new(1)),
        shutdown: shutdown.clone(),
        readiness: Arc::default(),
        sign_in_throttle: Arc::default(),
        cluster: cluster.clone(),
        bot_relay,
        rooms,
        // ---- appointments ----
        booking_throttle: Arc::new(crate::http::appointments::BookingThrottle::new(&settings)),
        offline_throttle: Arc::default(),
        attachments,
        api_tokens: crate::api_tokens::ApiTokens::new(store_for_tokens, cluster.clone()),
        inbound,
    };
    if let Some(cluster) = cluster {
        let appliers = crate::hub::admin_bus::Appliers {
            store: state.store.clone(),
            hub: state.hub.clone(),
            sessions: state.sessions.clone(),
            api_tokens: state.api_tokens.clone(),
            webhooks: state.archive.webhooks().cloned(),
        };
        tokio::spawn(crate::cluster::bus::listen(cluster, appliers, shutdown.clone()));
    }
    let app = crate::http::router(state.clone(), crate::http::metrics::router())
        .merge(crate::ws::router())
        .merge(crate::web::router())
        // An API token in a URL is refused on the API, the websockets and the pages alike
        // (a path the API does not know, `/api/me;access_token=…`, is the pages' too).
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::http::api_tokens::refuse_token_in_query,
        ))
        .with_state(state)
        // A slow body is bounded here; a slow request head by the listener's header deadline.
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            settings.http.request_timeout,
        ))
        // Outside the timeout, so a request cut short at its deadline announces the close too.
        .layer(axum::middleware::from_fn(
            crate::http::unread_body::announce_close_if_body_unread,
        ))
        // The request log names the path, never the query: a token a client put in a URL
        // (a room token, for one) must not land in the log, nor an API token put in the path.
        .layer(
            tower_http::trace::TraceLayer::new_for_http().make_span_with(|request: &axum::http::Request<_>| {
                let path = crate::http::api_tokens::loggable_path(request.uri().path());
                tracing::debug_span!("request", method = %request.method(), path = %path)
            }),
        );
    let app = crate::web::harden(app);
    if let Some(port) = settings.widget.demo_host_port {
        let hub_port = listener.local_addr()?.port();
        // A demo nicety: a port in use is logged, and the hub serves on.
        if let Err(e) = crate::demo_host::start(settings.bind, port, hub_port, shutdown.clone()).await {
            tracing::warn!("DEMO_HOST_PORT={port}: the demo host page is not served: {e}");
        }
    }
    crate::http::listener::serve(listener, app, settings.clone(), shutdown.clone()).await?;
    let _ = hub_task.await;
    // ---- several nodes through Redis: the lease task releases the lease on
    // its way out (a graceful leave); one Redis round trip, bounded so a Redis that does
    // not answer cannot hold the exit up.
    if let Some(lease_task) = lease_task
        && tokio::time::timeout(LEASE_RELEASE, lease_task).await.is_err()
    {
        tracing::warn!("shutdown: the cluster lease was not released in time; the others take over when it runs out");
    }
    // ---- rooms and 1-to-1 video ----
    let _ = rooms_task.await;
    let drain = archive_drain(settings.archive.write_timeout);
    if tokio::time::timeout(drain, archive_task).await.is_err() {
        tracing::error!(
            "shutdown: the archive could neither write nor spool everything it held within {drain:?}; what was never acknowledged is lost"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stop during a hung store write waits for that write to time out, whatever the
    /// timeout (`ARCHIVE_WRITE_TIMEOUT_MS`: 100 ms to 600 s, 15 s by default): it once
    /// gave up after a fixed 10 s, before the default timeout. The hub test of that stop
    /// runs with a short timeout; this holds the rule for the rest.
    #[test]
    fn the_archive_drain_outlasts_every_write_timeout() {
        for ms in [100, 3_000, 10_000, 15_000, 600_000] {
            let timeout = Duration::from_millis(ms);
            assert!(archive_drain(timeout) > timeout, "{timeout:?}");
        }
    }
}
