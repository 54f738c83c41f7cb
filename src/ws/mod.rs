//! The websocket transport: who may open a socket (origin, whitelist, sign-in,
//! the connection limit) and the upgrade for customers, agents and buddies.
//! Each socket is then run by its own task, in [`connection`]; how it ends is [`closing`]'s.
//! [`echo`] is a test-only endpoint on the same stack, for websocket conformance runs.

mod closing;
mod connection;
mod echo;
// ---- rooms and 1-to-1 video ----
mod room;

use axum::Router;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{FromRequestParts, State};
use axum::http::{HeaderMap, header};
use axum::response::Response;
use axum::routing::get;
use tokio::sync::OwnedSemaphorePermit;

use crate::config::Settings;
use crate::http::access::ClientIp;
use crate::http::listener::LingeringClose;
use crate::http::session::{Authed, session_token};
use crate::http::{ApiError, AppState};
use crate::hub::{BotLogin, ConnRole, StaffLogin};
use crate::store::Role;

/// Frames larger than this are closed by the websocket library itself (close code 1009);
/// frames between the protocol limit and this get an error frame and the connection lives on.
const LIBRARY_MAX_FRAME: usize = 1 << 20;
/// Socket read chunk per connection. Small on purpose: idle connections are most
/// connections, and the library default (128 KiB) would dominate their memory.
/// A chat frame is ~100 bytes, so a busy connection still reads several per syscall.
const READ_BUFFER: usize = 512;
/// Bytes the websocket layer gathers before writing to the socket; a flush writes the rest.
const WRITE_BUFFER: usize = 16 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ws/customer", get(customer))
        .route("/ws/agent", get(agent))
        .route("/ws/buddy", get(buddy))
        .route("/ws/bot", get(bot))
        .route("/ws/echo", get(echo))
        // ---- rooms and 1-to-1 video ----
        .route("/ws/room", get(room::room))
}

/// The largest text frame the protocol accepts: a maximal message and its envelope.
fn max_frame_bytes(settings: &Settings) -> usize {
    (settings.max_message_len * 4 + 1024).max(16 * 1024)
}

/// Browsers always send `Origin`; a cross-site page must not open sockets with the user's cookies.
/// Requests without it (non-browser clients) are allowed. The hub's own origin is always allowed.
fn origin_allowed(settings: &Settings, headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    if settings
        .access
        .allowed_origins
        .iter()
        .any(|o| o == "*" || o.eq_ignore_ascii_case(origin))
    {
        return true;
    }
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let bare = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    bare.is_some_and(|b| b.eq_ignore_ascii_case(host))
}

/// Checks shared by every upgrade: origin and the connection limit.
fn admit(state: &AppState, headers: &HeaderMap) -> Result<OwnedSemaphorePermit, ApiError> {
    if !origin_allowed(&state.settings, headers) {
        return Err(ApiError::Forbidden(
            "websocket connections from this origin are not allowed".into(),
        ));
    }
    state
        .connections
        .clone()
        .try_acquire_owned()
        .map_err(|_| ApiError::Unavailable("the hub is at its connection limit".into()))
}

/// Staff and bot sockets come from `AGENT_WHITELIST` only; a refusal is logged naming
/// the endpoint (`agent`, `bot`).
fn whitelisted(state: &AppState, ip: &ClientIp, endpoint: &'static str) -> Result<(), ApiError> {
    if ip.is_whitelisted(&state.settings) {
        return Ok(());
    }
    tracing::info!(client = %ip, endpoint, "websocket refused: not in AGENT_WHITELIST");
    Err(ApiError::NotWhitelisted)
}

/// The websocket library's settings, the same for every endpoint (the echo included).
fn configured(ws: WebSocketUpgrade) -> WebSocketUpgrade {
    ws.read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_message_size(LIBRARY_MAX_FRAME)
        .max_frame_size(LIBRARY_MAX_FRAME)
}

fn upgrade(
    ws: WebSocketUpgrade,
    tcp: LingeringClose,
    state: AppState,
    role: ConnRole,
    permit: OwnedSemaphorePermit,
) -> Response {
    configured(ws).on_upgrade({
        // One pointer in the upgrade task instead of the whole state: that task lives as long as the socket.
        let setup = Box::new((state, role, permit, tcp));
        move |socket| {
            let (state, role, permit, tcp) = *setup;
            connection::serve(socket, state, role, permit, tcp)
        }
    })
}

/// A socket's upgrade request: what every endpoint here reads from it (extracted in
/// this order; an endpoint that needs the caller's address takes [`ClientIp`] after it).
#[derive(FromRequestParts)]
#[from_request(state(AppState))]
struct Upgrade {
    #[from_request(via(State))]
    state: AppState,
    headers: HeaderMap,
    tcp: LingeringClose,
    ws: WebSocketUpgrade,
}

impl Upgrade {
    /// Admits the connection ([`admit`]), then upgrades it to a socket of `role`.
    fn open(self, role: ConnRole) -> Result<Response, ApiError> {
        let permit = admit(&self.state, &self.headers)?;
        Ok(upgrade(self.ws, self.tcp, self.state, role, permit))
    }
}

async fn customer(up: Upgrade) -> Result<Response, ApiError> {
    up.open(ConnRole::Customer)
}

async fn agent(up: Upgrade, ip: ClientIp) -> Result<Response, ApiError> {
    whitelisted(&up.state, &ip, "agent")?;
    let staff = staff_login(&up.state, &up.headers).await?;
    if staff.account.role != Role::Agent {
        return Err(ApiError::Forbidden("only agent accounts take chats".into()));
    }
    up.open(ConnRole::Agent(Box::new(staff)))
}

async fn buddy(up: Upgrade, ip: ClientIp) -> Result<Response, ApiError> {
    // Signed-in staff on a whitelisted address see the staff roster; everyone else the public one.
    let staff = if ip.is_whitelisted(&up.state.settings) {
        staff_login(&up.state, &up.headers).await.ok()
    } else {
        None
    };
    up.open(ConnRole::Buddy {
        staff: staff.map(Box::new),
    })
}

/// A bot, by its API token (`Authorization: Bearer sbt_…` with the `bot` scope), from a
/// whitelisted address like any staff socket. It is told which categories name it.
async fn bot(up: Upgrade, ip: ClientIp) -> Result<Response, ApiError> {
    whitelisted(&up.state, &ip, "bot")?;
    let asked = crate::http::session::Asked {
        route: "/ws/bot".into(),
        client: ip,
    };
    let (name, token) = crate::http::session::bot_token(&up.state, &up.headers, &asked).await?;
    let categories = crate::category_bots::naming(&up.state.store, &name).await?;
    let permit = admit(&up.state, &up.headers)?;
    tracing::info!(bot = %name, token = %token.id, categories = ?categories, "bot websocket opened");
    let login = BotLogin {
        name,
        token_id: token.id,
        categories,
    };
    Ok(upgrade(up.ws, up.tcp, up.state, ConnRole::Bot(Box::new(login)), permit))
}

/// The conformance echo: off (404) unless `WS_ECHO_ENDPOINT` is on, which only a loopback
/// `BIND_ADDR` allows. Admitted like a customer (origin, connection limit).
async fn echo(up: Upgrade) -> Result<Response, ApiError> {
    if !up.state.settings.ws_echo_endpoint {
        return Err(ApiError::NotFound("endpoint"));
    }
    let permit = admit(&up.state, &up.headers)?;
    let (shutdown, tcp) = (up.state.shutdown.clone(), up.tcp);
    Ok(configured(up.ws).on_upgrade(move |socket| echo::serve(socket, shutdown, permit, tcp)))
}

/// The signed-in account of an upgrade request and the session it came with, which the
/// connection is then bound to (it closes when that session ends).
async fn staff_login(state: &AppState, headers: &HeaderMap) -> Result<StaffLogin, ApiError> {
    // A socket is bound to a person's session (it closes when that ends); a bot's token
    // opens the bot socket.
    if crate::http::session::api_token(headers).is_some() {
        return Err(ApiError::refused(
            axum::http::StatusCode::FORBIDDEN,
            "token_not_for_socket",
            "API tokens do not open the agent socket: sign in as a person, or connect a bot to /ws/bot",
        ));
    }
    let Authed(account) = authed(state, headers).await?;
    let token = session_token(headers).ok_or(ApiError::Unauthorized)?;
    // `authed` just found the session live in the store, which this node now remembers.
    let session = crate::auth::session_id(&token);
    let session_expires = state.sessions.expires_at(&session).ok_or(ApiError::Unauthorized)?;
    Ok(StaffLogin {
        account,
        session,
        session_expires,
    })
}

async fn authed(state: &AppState, headers: &HeaderMap) -> Result<Authed, ApiError> {
    let mut request = axum::http::Request::new(());
    *request.headers_mut() = headers.clone();
    let (mut parts, ()) = request.into_parts();
    <Authed as axum::extract::FromRequestParts<AppState>>::from_request_parts(&mut parts, state).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(origin: Option<&str>, host: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, host.parse().unwrap());
        if let Some(o) = origin {
            h.insert(header::ORIGIN, o.parse().unwrap());
        }
        h
    }

    #[test]
    fn origins_are_the_hubs_own_or_listed() {
        let s = Settings::for_tests();
        assert!(origin_allowed(&s, &headers(None, "127.0.0.1:8080")));
        assert!(origin_allowed(
            &s,
            &headers(Some("http://127.0.0.1:8080"), "127.0.0.1:8080")
        ));
        assert!(!origin_allowed(
            &s,
            &headers(Some("https://evil.example"), "127.0.0.1:8080")
        ));
        let mut s = s;
        s.access.allowed_origins = vec!["https://shop.example".into()];
        assert!(origin_allowed(
            &s,
            &headers(Some("https://shop.example"), "127.0.0.1:8080")
        ));
    }
}
