//! The HTTP transport: JSON API, health, the OpenAPI document, and the pages.
//!
//! Each submodule exposes its own `router()`; this module joins them, applies
//! the whitelist to agent and admin routes, and serves the OpenAPI document
//! generated from the handlers' annotations, so it cannot drift from the code.

pub mod access;
pub mod admin;
// appointments; its hours for admins in `appointment_hours`, its rooms in
// `appointment_rooms`, its mail outbox for admins in `outbox`
pub mod appointment_hours;
pub mod attachments;
// a customer's own appointment: see, move, cancel, download
pub mod appointment_manage;
pub mod appointment_rooms;
pub mod appointments;
// call logs: the list (with agents' names) and its CSV export
pub mod call_logs;
pub mod category_bots;
pub mod chat_hours;
pub mod routing_modes;
// canned replies: the desk's (admins) and each agent's own
pub mod canned;
pub mod error;
pub mod history;
// ---- API tokens ----
pub mod api_tokens;
// the desk's identity secret, for verified returning customers
/// Notes on and reassignment of conversations outside their live chat.
pub mod conversation_desk;
pub mod declared_length;
pub mod identity_secret;
pub mod inbox;
pub mod labels;
// ---- archive search and export ----
pub mod archive_export;
// the agent's customer panel
pub mod customer_panel;
// an agent's lines to a customer who left, by mail
pub mod follow_up_mails;
// the mailbox customers write back to, for admins
pub mod inbound_mail;
// a customer's data erased on request
pub mod erasure;
mod fresh;
pub mod listener;
pub mod listening;
pub mod metrics;
// offline messages: left when nobody is online, answered by mail
pub mod offline;
pub mod outbox;
pub mod paging;
pub mod public;
// the desk's address for links: PUBLIC_URL, else the request's Host
pub mod public_url;
// customers rating a chat that ended
pub mod ratings;
// the manager's reports
pub mod reports;
pub mod responses;
// ---- rooms and 1-to-1 video ----
pub mod join;
pub mod rooms;
pub mod session;
mod shedding;
pub mod throttle;
pub mod unread_body;
pub mod widget_settings;
// ---- transcripts by mail: asked after the chat with its rating token ----
pub mod transcripts;
// ---- a returning customer's own conversations ----
pub mod visitor;
// signed webhooks: endpoints and their delivery logs
pub mod webhooks;
// whether webhooks may reach private addresses: the admins' choice unless the operator's
pub mod webhook_private_addresses;
// webhook bots: their URLs (admins) and a bot's actions with its token
pub mod bot_api;
pub mod bot_hooks;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use axum::Router;
use axum::routing::get;
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;

pub use error::{ApiError, ErrorBody};

use crate::archive::Archive;
use crate::auth::{SESSION_COOKIE, Sessions};
use crate::config::Settings;
use crate::core::staff_routes::StaffRoutes;
use crate::hub::Hub;
use crate::store::{Account, Category, Role, SharedStore};

/// What every handler can reach. Cheap to clone: all shared behind `Arc`s.
#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub store: SharedStore,
    pub hub: Hub,
    pub archive: Archive,
    pub sessions: Sessions,
    /// One permit per open websocket; `MAX_CONNECTIONS` in all.
    pub connections: Arc<Semaphore>,
    pub next_conn: Arc<AtomicU64>,
    pub shutdown: CancellationToken,
    /// The last readiness verdict, so only its changes are logged.
    pub readiness: Arc<std::sync::Mutex<crate::core::readiness::ReadinessWatch>>,
    // -- sign-in and identity --
    /// Failed sign-ins per address and per account.
    pub sign_in_throttle: Arc<throttle::SignInThrottle>,
    // ---- several nodes through Redis ----
    /// This node's membership, when `REDIS_URL` is set.
    pub cluster: Option<crate::cluster::node::Cluster>,
    /// Bots' actions forwarded to the node holding the conversation (several nodes only).
    pub bot_relay: Option<crate::hub::bot_relay::BotRelay>,
    // ---- rooms and 1-to-1 video ----
    /// The rooms task, room tokens and the invitation senders.
    pub rooms: crate::rooms::Rooms,
    // ---- appointments ----
    /// Bookings per client address.
    pub booking_throttle: Arc<appointments::BookingThrottle>,
    // ---- offline messages ----
    /// Offline messages left per client address.
    pub offline_throttle: Arc<throttle::OfflineMessageThrottle>,
    // ---- attachments ----
    pub attachments: crate::attachments::Attachments,
    // ---- API tokens ----
    /// Look-up, cache, rate limits and last use of `Authorization: Bearer sbt_…`.
    pub api_tokens: crate::api_tokens::ApiTokens,
    // ---- mail customers send back ----
    /// The mailbox poller's state on this node, while `IMAP_URL` is set.
    pub inbound: Option<Arc<crate::inbound::poller::InboundStatus>>,
}

/// An account as the API shows it (never the password hash).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AccountView {
    pub id: String,
    pub username: String,
    pub display_name: String,
    pub role: Role,
    pub categories: Vec<String>,
    pub max_chats: u8,
    pub enabled: bool,
    pub created_at: i64,
}

impl From<&Account> for AccountView {
    fn from(a: &Account) -> Self {
        Self {
            id: a.id.clone(),
            username: a.username.clone(),
            display_name: a.display_name.clone(),
            role: a.role,
            categories: a.categories.clone(),
            max_chats: a.max_chats,
            enabled: a.enabled,
            created_at: a.created_at,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CategoryView {
    pub id: String,
    pub name: String,
}

impl From<&Category> for CategoryView {
    fn from(c: &Category) -> Self {
        Self {
            id: c.id.clone(),
            name: c.name.clone(),
        }
    }
}

/// The names of the two ways to present a session: every staff operation's `security`
/// ([`staff_session_unless_said`]); an operation declaring other ways spells them as literals.
const BEARER_SCHEME: &str = "bearer";
const COOKIE_SCHEME: &str = "session_cookie";
/// A customer in a chat, by the resume token their page holds (attachments).
const CUSTOMER_TOKEN_SCHEME: &str = "customer_token";

/// Declares how a client presents its session: the token of `POST /api/login` as a
/// bearer token (any client), or the cookie that response sets (browsers).
struct SessionSchemes;

impl Modify for SessionSchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER_SCHEME,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "`Authorization: Bearer <token>`: the `token` of `POST /api/login`, or an API token \
                         (`sbt_…`, `POST /api/admin/api-tokens`) with its scopes: `read` for GET operations and \
                         `GET /api/reports`, `admin` for everything an admin may do (docs/api-tokens.md)",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            COOKIE_SCHEME,
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                SESSION_COOKIE,
                "the HttpOnly cookie `POST /api/login` sets, for browsers",
            ))),
        );
        // ---- attachments ----
        components.add_security_scheme(
            CUSTOMER_TOKEN_SCHEME,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-Customer-Token",
                "a customer's `resume_token` (of the websocket's `welcome`): the customer of the chat it is in",
            ))),
        );
    }
}

/// The webhook payloads (the envelope and each event type's `data`) and a webhook bot's
/// calls among the schemas; the `webhooks` section naming them is added where the
/// document is served.
struct WebhookPayloads;

impl Modify for WebhookPayloads {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        crate::webhooks::schema::register(components);
        crate::webhooks::bot_call_schema::register(components);
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Switchboard", description = "Presence and chat-routing hub: HTTP API. The websocket protocol is in docs/protocol.md. \
Every error is an `ErrorBody` with a stable `code`. Agent and admin operations (tag session, and every operation whose \
`security` is a session only) answer 403 `not_whitelisted` to callers outside `AGENT_WHITELIST`, before anything else \
(the attachments, which customers call too, check their callers themselves); a session is presented as a bearer \
token or the `sb_session` cookie; an API token (`sbt_…`) as a bearer token, never in a URL. A 500 `internal` would be a bug and is not listed per operation; while the hub is starting \
or stopping any operation may answer 503; limits in front of the API (request time, connections per address) are \
described in the README."),
    modifiers(&SessionSchemes, &WebhookPayloads),
    tags(
        (name = "public", description = "Open to anyone"),
        (name = "session", description = "Agent and admin sign-in (whitelisted addresses only)"),
        (name = "admin", description = "Admins only (whitelisted addresses only)"),
        (name = "history", description = "The conversation archive: agents their own, admins all (whitelisted addresses only)"),
        (name = "conversations", description = "Conversations as the desk works them: the inbox by status (whitelisted addresses only)"),
        (name = "rooms", description = "Video rooms and call logs of staff (whitelisted addresses only); joining is under public"),
        (name = "bot", description = "A bot's actions on its conversations, with its `bot` API token (whitelisted addresses only)"),
    )
)]
struct ApiDoc;

/// The whole HTTP API with its OpenAPI document; `operations` are documented routes of
/// other modules (`/metrics`), passed in so that this module need not import them.
pub fn api(operations: OpenApiRouter<AppState>) -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let staff = session::router()
        .merge(admin::router())
        .merge(history::router())
        .merge(inbox::router())
        .merge(labels::router())
        .merge(conversation_desk::router())
        .merge(archive_export::router())
        .merge(customer_panel::router())
        .merge(follow_up_mails::router())
        .merge(erasure::router())
        .merge(reports::router());
    let (router, mut doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(public::router())
        .merge(staff)
        .merge(operations)
        // ---- rooms and 1-to-1 video ----
        .merge(rooms::router())
        .merge(call_logs::router())
        .merge(join::router())
        // appointments: public booking, the agent's day, admins' list
        .merge(appointments::router())
        .merge(appointment_manage::router())
        .merge(outbox::router())
        .merge(appointment_rooms::router())
        .merge(appointment_hours::router())
        // chat opening hours per category
        .merge(chat_hours::router())
        .merge(routing_modes::router())
        .merge(category_bots::router())
        .merge(widget_settings::router())
        .merge(canned::router())
        .merge(ratings::router())
        // offline messages: leave (public), list and answer (staff)
        .merge(offline::router())
        // transcripts by mail, asked after the chat with its rating token
        .merge(transcripts::router())
        // a returning customer's own conversations
        .merge(visitor::router())
        .merge(identity_secret::router())
        // signed webhooks: endpoints and their delivery logs
        .merge(webhooks::router())
        .merge(webhook_private_addresses::router())
        // webhook bots: their URLs, and a bot's actions over HTTP
        .merge(bot_hooks::router())
        .merge(bot_api::router())
        // API tokens: create, list, revoke
        .merge(api_tokens::router())
        // the mailbox customers write back to: read or not, by which node
        .merge(inbound_mail::router())
        // Every route above takes at most a JSON body: one declared over its limit is
        // refused before it is read.
        .route_layer(axum::middleware::from_fn(
            declared_length::refuse_declared_over_json_limit,
        ))
        // files sent in a chat: upload (its own limit, checked the same way), links, fetch
        .merge(attachments::router())
        .split_for_parts();
    staff_session_unless_said(&mut doc);
    (router, doc)
}

/// Operations that declare no session and are not tagged `public`: signing in (tag
/// `session`, whitelisted like any staff operation).
const OPEN_UNTAGGED: &[(&str, &str)] = &[("post", "/api/login")];

/// Who may call an operation, said once for the whole API: a staff session (a bearer token
/// or the cookie), unless the operation is open to anyone (tag `public`, or
/// [`OPEN_UNTAGGED`]) or declares its own `security(...)` (a bot's token, a customer's
/// beside a session, a session that is optional). A handler added without a word about it is
/// so a staff route, behind the whitelist ([`staff_routes`]), never an open one by mistake.
fn staff_session_unless_said(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::security::SecurityRequirement;
    let staff_session = || {
        vec![
            SecurityRequirement::new(BEARER_SCHEME, Vec::<String>::new()),
            SecurityRequirement::new(COOKIE_SCHEME, Vec::<String>::new()),
        ]
    };
    for (template, item) in doc.paths.paths.iter_mut() {
        let operations = [
            ("get", &mut item.get),
            ("put", &mut item.put),
            ("post", &mut item.post),
            ("delete", &mut item.delete),
            ("options", &mut item.options),
            ("head", &mut item.head),
            ("patch", &mut item.patch),
            ("trace", &mut item.trace),
        ];
        for (method, operation) in operations {
            let Some(operation) = operation else { continue };
            let public = operation.tags.iter().flatten().any(|t| t == "public")
                || OPEN_UNTAGGED.contains(&(method, template.as_str()));
            if operation.security.is_none() && !public {
                operation.security = Some(staff_session());
            }
        }
    }
}

/// The staff operations of the document: the whitelist applies to them. An operation is
/// staff if it signs staff in or out (tag `session`), or if every way its `security` offers
/// is a staff session (bearer or cookie). Not staff: public operations, those a session is
/// optional for (`/api/metrics`), and those a customer may call too (the attachments, with
/// the `customer_token` scheme beside a session), which check the caller themselves.
fn staff_routes(doc: &serde_json::Value) -> StaffRoutes {
    let staff_scheme = |name: &String| name == BEARER_SCHEME || name == COOKIE_SCHEME;
    let mut staff = vec![];
    for (template, item) in doc["paths"].as_object().into_iter().flatten() {
        for (method, operation) in item.as_object().into_iter().flatten() {
            let signs_in_or_out = operation["tags"]
                .as_array()
                .is_some_and(|tags| tags.iter().any(|t| t == "session"));
            let ways = operation["security"].as_array().cloned().unwrap_or_default();
            let only_staff_sessions = !ways.is_empty()
                && ways.iter().all(|way| {
                    way.as_object()
                        .is_some_and(|schemes| !schemes.is_empty() && schemes.keys().all(staff_scheme))
                });
            if signs_in_or_out || only_staff_sessions {
                staff.push((method.clone(), template.clone()));
            }
        }
    }
    StaffRoutes::new(staff)
}

/// The API router (with `operations`, see [`api`]), the whitelist applied to staff routes
/// and the document served at `/api/openapi.json`.
pub fn router(state: AppState, operations: OpenApiRouter<AppState>) -> Router<AppState> {
    let (api, doc) = api(operations);
    // OpenAPI 3.1's `webhooks`, which utoipa does not model: the requests this hub sends.
    let mut doc = serde_json::to_value(doc).unwrap_or_default();
    if let Some(top) = doc.as_object_mut() {
        let mut webhooks = crate::webhooks::schema::section();
        webhooks.extend(crate::webhooks::bot_call_schema::section());
        top.insert("webhooks".into(), serde_json::Value::Object(webhooks));
    }
    let staff = Arc::new(staff_routes(&doc));
    let doc = Arc::new(doc);
    api.route(
        "/api/openapi.json",
        get(move || async move { axum::Json(doc.as_ref().clone()) }),
    )
    .layer(axum::middleware::from_fn_with_state(
        state,
        move |state: axum::extract::State<AppState>,
              ip: access::ClientIp,
              request: axum::extract::Request,
              next: axum::middleware::Next| {
            let staff = staff.clone();
            async move { staff_gate(&staff, state, ip, request, next).await }
        },
    ))
}

async fn staff_gate(
    staff: &StaffRoutes,
    state: axum::extract::State<AppState>,
    ip: access::ClientIp,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    if staff.covers(request.method().as_str(), request.uri().path()) {
        access::require_whitelist(state, ip, request, next).await
    } else {
        next.run(request).await
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};
    use utoipa::openapi::path::{HttpMethod, OperationBuilder, PathItem};
    use utoipa::openapi::security::SecurityRequirement;
    use utoipa::openapi::{OpenApiBuilder, PathsBuilder};

    use super::*;

    /// The `security` each operation of `doc` ends with, by "METHOD path".
    fn security_of(doc: &utoipa::openapi::OpenApi) -> Value {
        let doc = serde_json::to_value(doc).unwrap();
        let mut out = serde_json::Map::new();
        for (template, item) in doc["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                out.insert(format!("{method} {template}"), operation["security"].clone());
            }
        }
        Value::Object(out)
    }

    #[test]
    fn an_operation_saying_nothing_needs_a_staff_session_and_a_public_or_declared_one_keeps_its_own() {
        let tagged = |tag: &str| OperationBuilder::new().tag(tag);
        let bot_token = SecurityRequirement::new(BEARER_SCHEME, Vec::<String>::new());
        let paths = [
            ("/api/new", HttpMethod::Get, tagged("admin")),
            ("/api/untagged", HttpMethod::Delete, OperationBuilder::new()),
            ("/api/open", HttpMethod::Get, tagged("public")),
            ("/api/login", HttpMethod::Post, tagged("session")),
            ("/api/bot", HttpMethod::Post, tagged("bot").security(bot_token)),
        ]
        .into_iter()
        .fold(PathsBuilder::new(), |paths, (path, method, operation)| {
            paths.path(path, PathItem::new(method, operation))
        });
        let mut doc = OpenApiBuilder::new().paths(paths).build();
        staff_session_unless_said(&mut doc);
        let staff = json!([{"bearer": []}, {"session_cookie": []}]);
        assert_eq!(
            security_of(&doc),
            json!({
                "get /api/new": staff,
                "delete /api/untagged": staff,
                "get /api/open": null,
                "post /api/login": null,
                "post /api/bot": [{"bearer": []}],
            })
        );
    }

    /// The served document as the operations are written: the staff ones with the session, the
    /// public ones and signing in open, the others as they declare.
    #[test]
    fn the_document_gives_each_kind_of_operation_its_security() {
        let (_, doc) = api(OpenApiRouter::new());
        let security = security_of(&doc);
        let staff = json!([{"bearer": []}, {"session_cookie": []}]);
        for (operation, expected) in [
            ("get /api/admin/agents", staff.clone()),
            ("get /api/inbox", staff.clone()),
            ("get /api/me", staff),
            ("post /api/login", Value::Null),
            ("get /api/categories", Value::Null),
            ("post /api/appointments", Value::Null),
            ("post /api/logout", json!([{}, {"bearer": []}, {"session_cookie": []}])),
            ("post /api/bot/conversations/{id}/messages", json!([{"bearer": []}])),
            (
                "post /api/attachments",
                json!([{"customer_token": []}, {"bearer": []}, {"session_cookie": []}]),
            ),
        ] {
            assert_eq!(security[operation], expected, "{operation}");
        }
    }
}
