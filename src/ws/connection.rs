//! The task of one websocket connection: frames from the socket to the hub,
//! frames from the hub's [`Outbox`] to the socket.
//!
//! It enforces what belongs to a single connection: frame size, the rate
//! limit, strikes for garbage, heartbeats, write timeouts, and the coalescing
//! of draft previews. It never holds routing state; that is the hub's.
//!
//! The connection is one hand-polled state machine ([`Connection::poll_event`])
//! with a single timer, not a `select!` over a future per concern: the task of
//! an idle connection is most of what an idle connection costs, and this keeps
//! it to the socket, one timer and a few counters. Each wake-up writes
//! everything the outbox holds in one flush and reads every frame the socket
//! has, so a busy connection costs few syscalls per frame.
//!
//! Every way it stops is an [`Ending`], carried out by [`closing::finish`]: the
//! peer's Close is answered, protocol violations get their close code.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::extract::ws::{Message, Utf8Bytes, WebSocket};
use futures_util::{Sink, Stream};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

use super::closing::{self, Ending, code};
use super::max_frame_bytes;
use crate::config::Settings;
use crate::http::AppState;
use crate::http::listener::LingeringClose;
use crate::hub::delivery::{ConnHandle, ConnId};
use crate::hub::outbox::Outbox;
use crate::hub::outbox::{Relayed, Took};
use crate::hub::{ConnRole, FrameTaken, Hub, SessionEnd, close};
use crate::protocol::{self, ClientFrame, ServerFrame};

/// A write that takes longer than this means the peer is not reading.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long connections get to receive the hub's goodbye before closing on their own.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// Writes within one heartbeat (20 s by default) from which a connection counts as busy and
/// keeps its two queue buffers (its own and its outbox's) between wake-ups: more than a
/// person's chat makes, where an allocation a frame costs nothing that shows. Most
/// connections are idle (a welcome, places in line, then nothing), so they keep none (their
/// memory is the target the idle benchmark holds); one that goes quiet frees them at its next beat.
const BUSY_WRITES: u32 = 32;
/// Slots a kept buffer may hold: one grown past this by a burst is freed once written.
const KEPT_SLOTS: usize = 16;
/// Heartbeats without a frame or pong from the peer before it is given up on.
const MISSED_BEATS: u8 = 2;

/// The frames a connection may send: per second, and the burst above that.
#[derive(Clone, Copy)]
struct RateLimit {
    per_sec: u32,
    burst: u32,
}

impl RateLimit {
    /// A bot's socket serves all its conversations, so it has its own, higher limit
    /// (`BOT_RATE_LIMIT_*`); everyone else's is one person's (`RATE_LIMIT_*`).
    fn of(role: &ConnRole, settings: &Settings) -> Self {
        match role {
            ConnRole::Bot(_) => Self {
                per_sec: settings.bot_rate_limit_per_sec,
                burst: settings.bot_rate_limit_burst,
            },
            _ => Self {
                per_sec: settings.rate_limit_per_sec,
                burst: settings.rate_limit_burst,
            },
        }
    }
}

/// Sets up one connection; the future it returns runs it until either side ends it.
/// The set-up is synchronous so that only what the connection keeps ends up in its task.
pub(super) fn serve(
    socket: WebSocket,
    state: AppState,
    role: ConnRole,
    permit: OwnedSemaphorePermit,
    tcp: LingeringClose,
) -> impl Future<Output = ()> + Send + 'static {
    let id = ConnId(state.next_conn.fetch_add(1, Ordering::Relaxed));
    let session_ends = role.staff().map(|staff| Instant::from_std(staff.session_expires));
    let rate = RateLimit::of(&role, &state.settings);
    let outbox_capacity = match &role {
        ConnRole::Bot(_) => crate::core::bot_lines::bot_outbox_capacity(
            state.settings.outbound_buffer,
            state.settings.bot_rate_limit_burst,
        ),
        _ => state.settings.outbound_buffer,
    };
    let outbox = Arc::new(Outbox::new(outbox_capacity));
    let registration = Box::new((
        ConnHandle {
            id,
            outbox: outbox.clone(),
        },
        role,
    ));
    // Boxed: an async fn keeps its arguments apart from its locals, so a connection passed
    // by value would take its place in the task twice.
    let conn = Box::new(Connection::new(
        id,
        socket,
        outbox,
        (state.hub, state.attachments.store),
        &state.settings,
        (session_ends, rate),
        permit,
        tcp,
    ));
    run(conn, registration, state.shutdown)
}

async fn run(mut conn: Box<Connection>, registration: Box<(ConnHandle, ConnRole)>, shutdown: CancellationToken) {
    // Unboxed in a block: the box itself is freed now, not when the task ends.
    let (handle, role) = {
        let registration = registration;
        *registration
    };
    // Boxed: registration is rare and its future large; the connection's own future stays small.
    if Box::pin(conn.hub.register(handle, role)).await.is_err() {
        return;
    }
    let timer = tokio::time::sleep_until(conn.next_deadline());
    tokio::pin!(timer);
    let shutting_down = shutdown.cancelled();
    tokio::pin!(shutting_down);

    // Nothing is held across an await here but the connection's pointer, its timers and
    // (rarely) a boxed wait: this future is most of every connection's task.
    let ending = loop {
        let next_event = |cx: &mut Context<'_>| {
            let stop = (&shutdown, shutting_down.as_mut());
            conn.poll_event(cx, timer.as_mut(), stop)
        };
        let frame = match poll_fn(next_event).await {
            Event::ToHub(frame) => frame,
            Event::Relayed => continue,
            Event::Stop(ending) => break ending,
        };
        // The hub checks a message's files against their records without I/O: uploads
        // another node took (shared store) are read first, here, so frames stay in order.
        if let ClientFrame::Message { attachments, .. } = &frame
            && !attachments.is_empty()
        {
            Box::pin(crate::attachments::learn(&conn.attachments, attachments)).await;
        }
        conn.outbox.sent_to_hub();
        let taken = match conn.hub.frame(conn.id, frame) {
            Ok(FrameTaken::Now) => Ok(()),
            Ok(FrameTaken::Once(wait)) => wait.await,
            Err(gone) => Err(gone),
        };
        if taken.is_err() {
            // The hub is gone: the process is stopping.
            break Ending::Close(code::GOING_AWAY, "server shutting down");
        }
    };
    conn.outbox.shut();
    // The hub forgets the connection before the handshake, which may wait on a silent peer.
    let _ = Box::pin(conn.hub.unregister(conn.id)).await;
    Box::pin(closing::finish(&mut conn.socket, ending, &conn.tcp)).await;
}

/// What the connection's task must do next.
enum Event {
    /// Hand this frame to the hub (waiting while the hub is busy slows this reader down).
    ToHub(ClientFrame),
    /// A running chat relayed a message itself (`live_chat`): nothing for the hub.
    Relayed,
    /// End the connection this way.
    Stop(Ending),
}

struct Connection {
    id: ConnId,
    socket: WebSocket,
    outbox: Arc<Outbox>,
    hub: Hub,
    /// Where uploads' records are read from when a message names one this node does not know.
    attachments: crate::attachments::SharedAttachmentStore,
    settings: Arc<Settings>,
    max_frame: usize,

    /// Frames taken from the outbox and not yet handed to the socket.
    unsent: VecDeque<Utf8Bytes>,
    /// The socket holds written frames that are not flushed yet.
    unflushed: bool,
    /// A close frame the hub asked for, sent once `unsent` is written.
    close_after_write: Option<(u16, &'static str)>,
    ping_due: bool,
    /// Wake-ups with frames to write since the last heartbeat (saturating): busy or not.
    writes_since_beat: u32,
    /// Set while a write is stuck; passing it means the peer is not reading.
    write_deadline: Option<Instant>,
    /// The timer was polled with its deadline and the task's waker, and wakes the task
    /// when it fires: until then it need not be polled at each wake-up (a thousand busy
    /// connections' timers polled at each message cost the relay thread cache misses).
    timer_armed: bool,
    /// Likewise the wait for the process's shutdown: while armed, only the token is read.
    shutdown_armed: bool,

    limiter: DefaultDirectRateLimiter,
    /// Frames over the rate limit in one second past which the connection is closed: its burst.
    flood_close_past: u32,
    /// Frames over the rate limit in the current one-second window.
    flood_over: u32,
    flood_window: Instant,
    /// Bad frames in a row.
    strikes: u32,

    /// Any frame or pong since the last heartbeat.
    heard: bool,
    missed_beats: u8,
    next_beat: Instant,

    /// The newest draft preview held back by the throttle, and when the next may go.
    /// Boxed: a frame is ~180 bytes, and held back only while someone types fast.
    draft: Option<Box<ClientFrame>>,
    draft_at: Instant,

    goodbye_by: Option<Instant>,
    /// When the session a staff connection was opened with expires: it closes then (4001).
    /// Watched by the connection's own timer, so a socket that closes earlier leaves
    /// nothing behind (a timer task per socket would outlive it by up to the session's life).
    session_ends: Option<Instant>,
    /// Held for the connection's life: one of `MAX_CONNECTIONS`.
    _permit: OwnedSemaphorePermit,
    /// Its TCP connection's lingering close, for an ending on a protocol violation.
    tcp: LingeringClose,
}

impl Connection {
    // Each argument is a part the connection keeps; a struct for them would only rename them.
    #[allow(clippy::too_many_arguments)]
    fn new(
        id: ConnId,
        socket: WebSocket,
        outbox: Arc<Outbox>,
        (hub, attachments): (Hub, crate::attachments::SharedAttachmentStore),
        settings: &Arc<Settings>,
        (session_ends, rate): (Option<Instant>, RateLimit),
        permit: OwnedSemaphorePermit,
        tcp: LingeringClose,
    ) -> Self {
        let per_sec = NonZeroU32::new(rate.per_sec).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(rate.burst).unwrap_or(NonZeroU32::MIN);
        let now = Instant::now();
        Self {
            id,
            socket,
            outbox,
            hub,
            attachments,
            settings: settings.clone(),
            max_frame: max_frame_bytes(settings),
            unsent: VecDeque::new(),
            unflushed: false,
            close_after_write: None,
            ping_due: false,
            writes_since_beat: 0,
            write_deadline: None,
            timer_armed: false,
            shutdown_armed: false,
            limiter: RateLimiter::direct(Quota::per_second(per_sec).allow_burst(burst)),
            flood_close_past: rate.burst,
            flood_over: 0,
            flood_window: now,
            strikes: 0,
            heard: true,
            missed_beats: 0,
            next_beat: now + settings.heartbeat,
            draft: None,
            draft_at: now,
            goodbye_by: None,
            session_ends,
            _permit: permit,
            tcp,
        }
    }

    /// The earliest moment a timer-driven duty falls due.
    fn next_deadline(&self) -> Instant {
        let mut at = self.next_beat;
        if self.draft.is_some() {
            at = at.min(self.draft_at);
        }
        for deadline in [self.goodbye_by, self.write_deadline, self.session_ends]
            .into_iter()
            .flatten()
        {
            at = at.min(deadline);
        }
        at
    }

    /// Does whatever is ready (writes, reads, timers) until there is an event for the task or nothing left.
    fn poll_event(
        &mut self,
        cx: &mut Context<'_>,
        mut timer: Pin<&mut Sleep>,
        (shutdown, mut shutting_down): (&CancellationToken, Pin<&mut WaitForCancellationFuture<'_>>),
    ) -> Poll<Event> {
        loop {
            if self.outbox.is_kicked() {
                tracing::warn!(
                    conn = self.id.0,
                    "closing: outbound buffer full, the client is not reading"
                );
                // A socket stuck mid-write could not take a close frame either.
                let ending = if self.unflushed {
                    Ending::Drop
                } else {
                    Ending::Close(code::POLICY, "not reading fast enough")
                };
                return Poll::Ready(Event::Stop(ending));
            }
            if let Poll::Ready(stop) = self.poll_write(cx) {
                return Poll::Ready(Event::Stop(stop));
            }
            if let Poll::Ready(event) = self.poll_read(cx) {
                return Poll::Ready(event);
            }
            if self.goodbye_by.is_none() && (!self.shutdown_armed || shutdown.is_cancelled()) {
                if shutting_down.as_mut().poll(cx).is_ready() {
                    // The hub sends a goodbye and a close; this is the deadline for it.
                    self.goodbye_by = Some(Instant::now() + SHUTDOWN_GRACE);
                } else {
                    self.shutdown_armed = true;
                }
            }
            let next = self.next_deadline();
            if timer.deadline() != next {
                timer.as_mut().reset(next);
                self.timer_armed = false;
            }
            if self.timer_armed && !timer.is_elapsed() {
                return Poll::Pending;
            }
            // A poll without coop budget left returns pending without storing the waker.
            let armed = tokio::task::coop::has_budget_remaining();
            if timer.as_mut().poll(cx).is_pending() {
                self.timer_armed = armed;
                return Poll::Pending;
            }
            self.timer_armed = false;
            if let Some(event) = self.on_timer(Instant::now()) {
                return Poll::Ready(event);
            }
        }
    }

    /// Writes what the outbox holds (and a due ping), flushing once.
    /// Ready means the connection must stop, and how.
    fn poll_write(&mut self, cx: &mut Context<'_>) -> Poll<Ending> {
        loop {
            while !self.unsent.is_empty() || self.ping_due {
                match Pin::new(&mut self.socket).poll_ready(cx) {
                    Poll::Ready(Ok(())) => {}
                    Poll::Ready(Err(_)) => return Poll::Ready(Ending::Drop),
                    Poll::Pending => return self.write_stuck(),
                }
                let message = match self.unsent.pop_front() {
                    Some(text) => Message::Text(text),
                    None => {
                        self.ping_due = false;
                        Message::Ping(Default::default())
                    }
                };
                if Pin::new(&mut self.socket).start_send(message).is_err() {
                    return Poll::Ready(Ending::Drop);
                }
                self.unflushed = true;
            }
            if self.unflushed {
                match Pin::new(&mut self.socket).poll_flush(cx) {
                    Poll::Ready(Ok(())) => {
                        self.unflushed = false;
                        self.write_deadline = None;
                    }
                    Poll::Ready(Err(_)) => return Poll::Ready(Ending::Drop),
                    Poll::Pending => return self.write_stuck(),
                }
            }
            if let Some((code, reason)) = self.close_after_write.take() {
                return Poll::Ready(Ending::Close(code, reason));
            }
            match self.outbox.take_into(&mut self.unsent, cx.waker()) {
                Took::Frames(close) => {
                    self.writes_since_beat = self.writes_since_beat.saturating_add(1);
                    self.close_after_write = close;
                }
                Took::Nothing { new_waker } => {
                    if new_waker {
                        // The timer and the shutdown wait hold the waker before: poll them again.
                        self.timer_armed = false;
                        self.shutdown_armed = false;
                    }
                    // An idle connection keeps no buffer; a busy one keeps a small one.
                    if self.writes_since_beat < BUSY_WRITES || self.unsent.capacity() > KEPT_SLOTS {
                        self.unsent = VecDeque::new();
                    }
                    return Poll::Pending;
                }
            }
        }
    }

    /// The socket cannot take more now; the timer watches how long that lasts.
    fn write_stuck(&mut self) -> Poll<Ending> {
        self.write_deadline
            .get_or_insert_with(|| Instant::now() + WRITE_TIMEOUT);
        Poll::Pending
    }

    /// Reads frames until one is for the hub, the socket has nothing more, or the connection must end.
    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<Event> {
        loop {
            let item = ready!(Pin::new(&mut self.socket).poll_next(cx));
            let message = match closing::read_outcome(item) {
                Ok(message) => message,
                Err(ending) => return Poll::Ready(Event::Stop(ending)),
            };
            self.heard = true;
            let text = match message {
                Message::Text(text) => text,
                Message::Binary(_) => {
                    if let Some(stop) = self.strike("binary_not_supported", "send JSON text frames".into()) {
                        return Poll::Ready(stop);
                    }
                    continue;
                }
                // Pings and pongs only count as hearing from the peer (tungstenite answers pings);
                // a close never gets here, `read_outcome` made it an ending.
                Message::Ping(_) | Message::Pong(_) | Message::Close(_) => continue,
            };
            if let Some(event) = self.on_text(&text) {
                return Poll::Ready(event);
            }
        }
    }

    /// Checks one text frame: rate limit, size, decoding, the draft throttle.
    fn on_text(&mut self, text: &str) -> Option<Event> {
        if self.limiter.check().is_err() {
            let now = Instant::now();
            if now.duration_since(self.flood_window) > Duration::from_secs(1) {
                self.flood_window = now;
                self.flood_over = 0;
            }
            self.flood_over += 1;
            if self.flood_over > self.flood_close_past {
                tracing::info!(conn = self.id.0, "closing: flooding past the rate limit");
                return Some(Event::Stop(Ending::Close(code::POLICY, "rate limit exceeded")));
            }
            self.reply(ServerFrame::error("rate_limited", "too many frames; slow down"));
            return None;
        }
        let decoded = if text.len() > self.max_frame {
            Err((
                "frame_too_large",
                format!("frames are limited to {} bytes", self.max_frame),
            ))
        } else {
            protocol::read(text).map_err(|e| (e.code(), e.message()))
        };
        let frame = match decoded {
            Ok(protocol::Incoming::Message(message)) => {
                self.strikes = 0;
                return Some(self.relay(message));
            }
            Ok(protocol::Incoming::Frame(frame)) => frame,
            Err((code, message)) => return self.strike(code, message),
        };
        self.strikes = 0;
        if matches!(frame, ClientFrame::Ping {}) {
            // Answered here, not by the hub: a page's liveness check (every page asks after
            // some quiet) is about its network, so it costs the hub's loop nothing and a busy
            // hub never looks like a dead connection.
            self.reply(ServerFrame::Pong {});
            return None;
        }
        if matches!(frame, ClientFrame::Draft { .. }) {
            let now = Instant::now();
            if now < self.draft_at {
                // The newest text replaces what was held; it goes out when the interval is over.
                self.draft = Some(Box::new(frame));
                return None;
            }
            self.draft_at = now + self.settings.draft_interval;
        }
        Some(Event::ToHub(frame))
    }

    /// A chat message: relayed right here by its running chat when it can be
    /// (`live_chat`), read in place; else the hub's.
    fn relay(&self, message: protocol::MessageFrame<'_>) -> Event {
        let Some(chat) = self.outbox.chat_for(&message) else {
            return Event::ToHub(message.into_owned());
        };
        match chat.relay(self.id, &self.outbox, message) {
            Relayed::Done => Event::Relayed,
            Relayed::ToHub(frame) => Event::ToHub(frame),
        }
    }

    /// A bad frame: an error frame back, and the connection closed after too many in a row.
    fn strike(&mut self, code: &'static str, message: String) -> Option<Event> {
        self.strikes += 1;
        if self.strikes >= closing::MAX_BAD_FRAMES {
            tracing::info!(conn = self.id.0, "closing: too many bad frames");
            return Some(Event::Stop(Ending::Close(code::POLICY, "too many bad frames")));
        }
        self.reply(ServerFrame::error(code, message));
        None
    }

    /// An error straight from the connection (bad frames never reach the hub), behind what is queued.
    fn reply(&self, frame: ServerFrame) {
        let _ = self.outbox.push(frame.encode());
    }

    /// Carries out whatever duty is due at `now`.
    fn on_timer(&mut self, now: Instant) -> Option<Event> {
        if self.write_deadline.is_some_and(|at| now >= at) {
            tracing::warn!(
                conn = self.id.0,
                "closing: a write timed out, the client is not reading"
            );
            return Some(Event::Stop(Ending::Drop));
        }
        if self.goodbye_by.is_some_and(|at| now >= at) {
            return Some(Event::Stop(Ending::Close(code::GOING_AWAY, "server shutting down")));
        }
        if self.session_ends.is_some_and(|at| now >= at) {
            tracing::info!(conn = self.id.0, "closing a connection whose session expired");
            let why = SessionEnd::Expired;
            return Some(Event::Stop(Ending::Close(close::SESSION_ENDED, why.close_reason())));
        }
        if now >= self.next_beat {
            self.missed_beats = if self.heard { 0 } else { self.missed_beats + 1 };
            if self.missed_beats >= MISSED_BEATS {
                tracing::info!(conn = self.id.0, "closing: no pong or frame within two heartbeats");
                return Some(Event::Stop(Ending::Close(code::GOING_AWAY, "heartbeat timeout")));
            }
            self.heard = false;
            // Gone quiet: both buffers go. Still busy: only one a burst left grown.
            let keep = if self.writes_since_beat < BUSY_WRITES {
                0
            } else {
                KEPT_SLOTS
            };
            if self.unsent.is_empty() && self.unsent.capacity() > keep {
                self.unsent = VecDeque::new();
            }
            self.outbox.release_buffer(keep);
            self.writes_since_beat = 0;
            self.ping_due = true;
            self.next_beat = now + self.settings.heartbeat;
        }
        if self.draft.is_some() && now >= self.draft_at {
            self.draft_at = now + self.settings.draft_interval;
            return self.draft.take().map(|draft| Event::ToHub(*draft));
        }
        None
    }
}
