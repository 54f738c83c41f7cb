//! Routes anyone may call: the category list for the customer's welcome page
//! and the health endpoints.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::sync::atomic::Ordering;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::access::ClientIp;
use super::error::JsonResult;
use super::responses::Unavailable;
use super::{ApiError, AppState, CategoryView};
use crate::core::readiness::{Change, Signals, not_ready_because};
use crate::hub::{BotReach, DeskCategory};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(categories))
        .routes(routes!(widget))
        .routes(routes!(healthz))
        .routes(routes!(readyz))
}

/// A category as the customer's page shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct PublicCategory {
    pub id: String,
    pub name: String,
    /// Inside its chat hours. A closed category takes no join (`category_closed`): the page
    /// offers to leave a message instead.
    pub open: bool,
    /// Some agent holding it is connected and not away (on several nodes: on any node).
    pub agents_online: bool,
    /// The category's bot answers its customers first now (its socket is connected on
    /// some node, or it is a webhook bot). When both this and `agents_online` are false
    /// the page says nobody is online and offers the offline path; a customer may still
    /// wait.
    pub bot_online: bool,
    /// When a closed category opens again by its chat hours (milliseconds since the epoch),
    /// so the page can say so; absent while it is open, and when its hours never open it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opens_at: Option<i64>,
}

/// The service categories customers can queue for, and whether each is open and staffed now.
#[utoipa::path(get, path = "/api/categories", tag = "public", responses((status = 200, body = [PublicCategory]), Unavailable))]
async fn categories(State(state): State<AppState>) -> JsonResult<Vec<PublicCategory>> {
    let desk = state.hub.desk().await?;
    let bots_online = bots_online(&state, &desk).await;
    // The hours are read only while some category is closed (the usual answer needs none).
    let hours = if desk.iter().any(|d| !d.open) {
        Some(crate::desk_hours::load(&state.store).await?)
    } else {
        None
    };
    let now = jiff::Timestamp::now();
    Ok(Json(
        state
            .store
            .categories()
            .await?
            .iter()
            .map(|c| {
                let view = CategoryView::from(c);
                let live = desk.iter().find(|d| d.id == view.id);
                let open = live.is_none_or(|d| d.open);
                let bot_online = bots_online.contains(&view.id);
                let opens_at = hours
                    .as_ref()
                    .filter(|_| !open)
                    .and_then(|doc| doc.categories.iter().find(|h| h.category == view.id))
                    .and_then(|h| h.hours().ok())
                    .and_then(|h| h.next_open(now, &state.settings.appointments.zone))
                    .map(|at| at.as_millisecond());
                PublicCategory {
                    id: view.id,
                    name: view.name,
                    open,
                    agents_online: live.is_some_and(|d| d.agents_online),
                    bot_online,
                    opens_at,
                }
            })
            .collect(),
    ))
}

/// The categories whose bot takes their next customer now. A bot whose socket may be on
/// another node is looked up in Redis (single-flight: a flood of requests costs one
/// look-up at a time; Redis not answering counts as not online, as the join would then go
/// to the line).
pub(super) async fn bots_online(state: &AppState, desk: &[DeskCategory]) -> std::collections::HashSet<String> {
    let elsewhere: Vec<String> = desk
        .iter()
        .filter_map(|d| match &d.bot {
            BotReach::Elsewhere(bot) => Some(bot.clone()),
            _ => None,
        })
        .collect();
    let connected = match &state.bot_relay {
        Some(relay) if !elsewhere.is_empty() => relay.connected(elsewhere).await,
        _ => Default::default(),
    };
    desk.iter()
        .filter(|d| match &d.bot {
            BotReach::No => false,
            BotReach::Here => true,
            BotReach::Elsewhere(bot) => connected.contains(bot),
        })
        .map(|d| d.id.clone())
        .collect()
}

/// What the chat widget shows: the desk's name, colour and greeting, and whether anyone is there.
#[derive(Debug, Serialize, ToSchema)]
pub struct WidgetConfig {
    /// The desk's name (set on the admin page, else `WIDGET_TITLE`; likewise below).
    pub title: String,
    /// The launcher's and header's colour, `#rgb` or `#rrggbb` (`WIDGET_COLOR`).
    pub color: String,
    /// The first words the chat window shows (`WIDGET_GREETING`).
    pub greeting: String,
    /// The topics (category ids) the widget offers, in order; empty: every category.
    pub categories: Vec<String>,
    /// Whether any agent who would answer is connected now (not away; on several nodes,
    /// on any node).
    pub agents_online: bool,
    /// Whether some category's bot answers its customers first now. When both this and
    /// `agents_online` are false the widget says nobody is online; a customer may still
    /// wait in line.
    pub bot_online: bool,
    /// The sites allowed to embed the widget (`WIDGET_ALLOWED_ORIGINS`, and the demo
    /// host's while `DEMO_HOST_PORT` is set), besides the hub's own; the widget page
    /// talks to its host page only when the host is one of these.
    pub allowed_origins: Vec<String>,
}

/// The chat widget's settings. A site listed in `WIDGET_ALLOWED_ORIGINS` may read it from
/// its own pages (CORS); the widget loader uses it to colour the launcher.
#[utoipa::path(get, path = "/api/widget", tag = "public", responses((status = 200, body = WidgetConfig), Unavailable))]
async fn widget(State(state): State<AppState>, headers: axum::http::HeaderMap) -> Result<Response, ApiError> {
    use axum::http::{HeaderValue, header};
    let allowed_origins = state.settings.widget.frame_origins();
    let (look, _) = super::widget_settings::look(&state).await?;
    // From the single-flight desk query: a flood of widget loads costs the hub one command
    // at a time.
    let desk = state.hub.desk().await?;
    let config = WidgetConfig {
        title: look.title,
        color: look.color,
        greeting: look.greeting,
        categories: look.categories,
        agents_online: desk.iter().any(|d| d.agents_online),
        bot_online: !bots_online(&state, &desk).await.is_empty(),
        allowed_origins,
    };
    let cors = headers
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .filter(|o| config.allowed_origins.iter().any(|a| a == o))
        .and_then(|o| HeaderValue::from_str(o).ok());
    let mut response = Json(config).into_response();
    response
        .headers_mut()
        .insert(header::VARY, HeaderValue::from_static("Origin"));
    if let Some(origin) = cors {
        response
            .headers_mut()
            .insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    }
    Ok(response)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`; `degraded` when the archive store is failing or its buffer overflowed, or (on
    /// several nodes) Redis does not answer or the node holds no cluster lease; `slow`
    /// when an archive write takes longer than `ARCHIVE_SLOW_WRITE_MS` (acknowledgements
    /// wait for it).
    pub status: &'static str,
    pub store: &'static str,
    /// Archive events accepted but not yet written.
    pub archive_backlog: usize,
    pub archive_degraded: bool,
    /// The archive buffer filled and chat messages are being refused.
    pub archive_overflowing: bool,
    pub archive_write_errors: u64,
    /// Archive writes take longer than `ARCHIVE_SLOW_WRITE_MS`.
    pub archive_slow: bool,
    // ---- several nodes through Redis; absent on a single process ----
    /// This node's standing in the cluster, when `REDIS_URL` is set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterHealth>,
}

/// A cluster node's standing, as `/healthz` and `/readyz` show it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClusterHealth {
    pub node_id: String,
    /// `up` when Redis answered the lease task's last request, else `down`.
    pub redis: &'static str,
    /// The incarnation this node holds its lease under; absent while it holds none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incarnation: Option<u64>,
}

/// `/readyz`'s answer: the health figures, the verdict and why.
#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    pub ready: bool,
    /// Empty when ready; else any of `store_unreachable`, `archive_degraded`,
    /// `archive_overflowing`, `archive_slow`, `archive_backlog` (more than
    /// `READY_MAX_BACKLOG` events wait to be written), and on several nodes
    /// `redis_unreachable`, `cluster_lease_lost`.
    pub not_ready_because: Vec<&'static str>,
    #[serde(flatten)]
    pub health: Health,
}

/// How long `/readyz` waits for the store to answer a ping; a frozen store must make the
/// probe answer "not ready", not hang it.
const READY_PING_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

fn health(state: &AppState) -> Health {
    let s = &state.archive.status;
    let degraded = s.degraded.load(Ordering::Relaxed);
    let overflowing = s.overflowing.load(Ordering::Relaxed);
    let slow = s.is_slow(crate::clock::now_ms() as u64);
    let cluster = state.cluster.as_ref().map(|c| {
        let now = c.status();
        ClusterHealth {
            node_id: c.node_id().to_string(),
            redis: if now.redis_up { "up" } else { "down" },
            incarnation: now.incarnation,
        }
    });
    // A node that cannot reach Redis (or holds no lease) serves what needs no cluster only.
    let cluster_down = cluster
        .as_ref()
        .is_some_and(|c| c.redis == "down" || c.incarnation.is_none());
    Health {
        status: if degraded || overflowing || cluster_down {
            "degraded"
        } else if slow {
            "slow"
        } else {
            "ok"
        },
        store: state.store.backend(),
        archive_backlog: s.backlog.load(Ordering::Relaxed),
        archive_degraded: degraded,
        archive_overflowing: overflowing,
        archive_write_errors: s.write_errors.load(Ordering::Relaxed),
        archive_slow: slow,
        cluster,
    }
}

/// What an outsider (an address outside `AGENT_WHITELIST`) is shown of health and readiness.
#[derive(Debug, Serialize, ToSchema)]
// Makes the schema closed (`additionalProperties: false`), so the details never also
// match this shape: the views' `oneOf` then has exactly one match.
#[serde(deny_unknown_fields)]
pub struct StatusOnly {
    /// As in the details: `ok`, `degraded`, `slow` (and, for `/readyz`, the HTTP status says ready or not).
    pub status: &'static str,
}

/// `/healthz`'s answer: the details for whitelisted callers, `status` only for others.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum HealthView {
    Details(Health),
    StatusOnly(StatusOnly),
}

/// `/readyz`'s answer: the details for whitelisted callers, `status` only for others.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum ReadinessView {
    Details(Readiness),
    StatusOnly(StatusOnly),
}

/// The process is alive; `status` says whether the archive is degraded or slow. Callers
/// outside `AGENT_WHITELIST` get `status` only.
#[utoipa::path(get, path = "/healthz", tag = "public", responses((status = 200, body = HealthView,
    description = "the details for whitelisted addresses; `{\"status\"}` only for others")))]
async fn healthz(State(state): State<AppState>, ip: ClientIp) -> Json<HealthView> {
    let health = health(&state);
    Json(if ip.is_whitelisted(&state.settings) {
        HealthView::Details(health)
    } else {
        HealthView::StatusOnly(StatusOnly { status: health.status })
    })
}

/// Ready to serve: the store answers, and the archive is neither failing, refusing, slow
/// nor more than `READY_MAX_BACKLOG` events behind. Changes of the verdict are logged
/// once each (ERROR when it becomes not ready, INFO when ready again), not every probe.
/// Callers outside `AGENT_WHITELIST` get `status` only.
#[utoipa::path(get, path = "/readyz", tag = "public", responses(
    (status = 200, body = ReadinessView, description = "ready; the details for whitelisted addresses, `status` only for others"),
    (status = 503, body = ReadinessView, description = "not ready; the details (with `not_ready_because`) for whitelisted addresses, `status` only for others")))]
async fn readyz(State(state): State<AppState>, ip: ClientIp) -> Response {
    let store_answers = matches!(
        tokio::time::timeout(READY_PING_TIMEOUT, state.store.ping()).await,
        Ok(Ok(()))
    );
    let health = health(&state);
    let reasons = not_ready_because(&Signals {
        store_answers,
        archive_degraded: health.archive_degraded,
        archive_overflowing: health.archive_overflowing,
        archive_slow: health.archive_slow,
        backlog: health.archive_backlog,
        max_backlog: state.settings.archive.ready_max_backlog,
        redis_answers: health.cluster.as_ref().is_none_or(|c| c.redis == "up"),
        lease_held: health.cluster.as_ref().is_none_or(|c| c.incarnation.is_some()),
    });
    let change = state.readiness.lock().expect("readiness lock").observe(&reasons);
    match change {
        Some(Change::NotReady(why)) => tracing::error!(
            because = ?why,
            backlog = health.archive_backlog,
            "NOT READY: /readyz answers 503 until this clears"
        ),
        Some(Change::Ready) => tracing::info!("ready: /readyz answers 200"),
        None => {}
    }
    let ready = reasons.is_empty();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = if ip.is_whitelisted(&state.settings) {
        ReadinessView::Details(Readiness {
            ready,
            not_ready_because: reasons,
            health,
        })
    } else {
        ReadinessView::StatusOnly(StatusOnly { status: health.status })
    };
    (status, Json(body)).into_response()
}
