//! Settings, read once at start-up from the environment (and `.env`, loaded by
//! the binary through dotenvy). Every setting has a default so `make run` needs
//! no configuration; every bad value stops start-up with an error naming the
//! variable. `.env.example` lists them all with their meaning.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use ipnet::IpNet;

pub mod access;
pub mod appointments;
pub mod archive;
pub mod attachments;
pub mod clamd;
pub mod cluster;
pub mod http;
pub mod imap;
pub mod mail;
pub mod outbox;
pub mod rooms;
pub mod store;
pub mod webhooks;
pub mod widget;

/// Where durable data lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreMode {
    /// MongoDB when `MONGODB_URI` is set, else the embedded on-disk store.
    Auto,
    /// Nothing survives a restart (tests, demos).
    Memory,
    /// The embedded on-disk store under `DATA_DIR`.
    Embedded,
    /// MongoDB at `MONGODB_URI` (required).
    MongoDb,
}

/// How costly a new password hash is. Checking a hash costs what its own PHC string says,
/// so this only decides hashes made from now on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HashCost {
    /// argon2id with argon2's defaults (19 MiB, 2 passes: OWASP's recommendation): every
    /// hub started from the environment.
    #[default]
    Standard,
    /// 64 KiB and one pass, for hubs that tests start in their own process (see
    /// [`Settings::for_tests`]) and for a debug build's hub process a test starts with
    /// `SWITCHBOARD_TEST_LIGHT_PASSWORD_HASHES`; never a setting, so no deployment can
    /// choose it. A test hub signs in hundreds of times, and the standard cost was half
    /// the hub tests' CPU.
    LightForTests,
}

/// Debug builds only: `SWITCHBOARD_TEST_LIGHT_PASSWORD_HASHES=1` makes a hub started in
/// its own process by the tests (cluster nodes, the browser tests' hubs) hash as lightly
/// as an in-process test hub ([`HashCost::LightForTests`]): their scenarios create and
/// sign in dozens of agents, and the standard cost was most of their set-up. A release
/// build ignores it, so no deployment can choose it.
fn test_only_hash_cost() -> HashCost {
    match crate::test_hooks::value("SWITCHBOARD_TEST_LIGHT_PASSWORD_HASHES").as_deref() {
        Some("1") => HashCost::LightForTests,
        _ => HashCost::Standard,
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub bind: SocketAddr,
    /// Who may reach the staff's side, whose forwarded addresses are believed, and which
    /// origins may open websockets (`AGENT_WHITELIST`, `TRUSTED_PROXIES`, `ALLOWED_ORIGINS`).
    pub access: access::AccessSettings,
    pub max_message_len: usize,
    pub draft_preview: bool,
    /// The shortest gap between two draft previews forwarded for one chat.
    pub draft_interval: Duration,
    pub resume_grace: Duration,
    /// How long after its agent's last turn in a conversation a customer continuing it goes
    /// back to that agent (when they can take it) rather than into the line.
    pub conversation_sticky: Duration,
    /// How long an agent has to answer an offer (a category in offer mode) before it lapses.
    pub offer_timeout: Duration,
    /// How long a buddy whose last connection closed stays online (a reload is not a leave).
    pub buddy_grace: Duration,
    pub heartbeat: Duration,
    pub max_connections: usize,
    /// Frames queued for one connection before it counts as not reading and is closed.
    pub outbound_buffer: usize,
    pub rate_limit_per_sec: u32,
    pub rate_limit_burst: u32,
    /// `BOT_RATE_LIMIT_PER_SEC`, `BOT_RATE_LIMIT_BURST`: a bot socket's own rate limit. One
    /// bot socket answers every conversation of its categories, where a person's socket is
    /// one person's: under theirs, a bot greeting a burst of customers at once was refused,
    /// then closed and every conversation it held handed over.
    pub bot_rate_limit_per_sec: u32,
    pub bot_rate_limit_burst: u32,
    pub session_ttl: Duration,
    pub admin_username: String,
    pub admin_password: Option<String>,
    /// How costly new password hashes are: always standard from the environment; only
    /// [`Settings::for_tests`] makes them light.
    pub password_hash_cost: HashCost,
    /// Where durable data lives and how it is reached (`STORE`, `DATA_DIR`, `MONGODB_*`,
    /// `EMBEDDED_CACHE_MB`, `STORE_READ_TIMEOUT_MS`).
    pub store: store::StoreSettings,
    /// The archive's writer: its buffer, batches and timeouts (`ARCHIVE_*`,
    /// `READY_MAX_BACKLOG`).
    pub archive: archive::ArchiveSettings,

    // websocket closing
    /// Serve `/ws/echo`, an echo on the hub's websocket stack for conformance runs
    /// (`WS_ECHO_ENDPOINT`, off). Refused unless `BIND_ADDR` is a loopback address.
    pub ws_echo_endpoint: bool,
    /// The HTTP edge: its timeouts, connections, `/metrics` token and cookies.
    pub http: http::HttpSettings,
    /// Webhook deliveries: where they may go, their lease, how long their log is kept
    /// (`WEBHOOK_*`), and whom a disabled endpoint is mailed to (`ADMIN_MAIL_TO`).
    pub webhooks: webhooks::WebhookSettings,
    /// Mail out: the SMTP relay, the From, and the desk's address for offline messages
    /// (`SMTP_URL`, `MAIL_FROM`, `OFFLINE_MAIL_TO`).
    pub mail: mail::MailSettings,
    /// Several nodes through one Redis (`REDIS_URL`, `NODE_ID`, `CLUSTER_*`).
    pub cluster: cluster::ClusterSettings,
    // ---- rooms and 1-to-1 video ----
    /// An HTTP endpoint that takes `{"to","text"}` and sends it as an SMS (`SMS_WEBHOOK_URL`);
    /// unset: SMS are only logged.
    pub sms_webhook_url: Option<String>,
    /// The hub's address as people reach it, for links in invitations (`PUBLIC_URL`);
    /// unset: taken from the agent's request (its `Host`).
    pub public_url: Option<String>,
    /// Invitations' codes, wrong guesses and room tokens (`ROOM_*`).
    pub rooms: rooms::RoomSettings,
    /// The STUN and TURN servers handed to a room's browsers (`STUN_URLS`, `TURN_*`).
    pub ice: rooms::IceSettings,
    // ---- ratings ----
    /// `RATING_SCALE`: how customers rate a chat that ended, `stars` (1 to 5, the
    /// default) or `thumbs` (down or up).
    pub rating_scale: crate::rating_scale::RatingScale,
    /// When customers may book appointments and join their rooms (`APPOINTMENT_*`).
    pub appointments: appointments::AppointmentSettings,
    /// The mail outbox's worker: how often it looks, how it retries (`OUTBOX_*`).
    pub outbox: outbox::OutboxSettings,
    /// `FOLLOW_UP_MAIL_DELAY_SECS`: lines an agent writes to a customer who left (with an
    /// email on file) within this long of the first make one mail, sent when it is over.
    pub follow_up_mail_delay: Duration,
    /// The embeddable chat widget (`WIDGET_*`, `DEMO_HOST_PORT`).
    pub widget: widget::WidgetSettings,
    /// Mail customers send back, read over IMAP (`IMAP_*`); `None`: off.
    pub imap: Option<imap::ImapSettings>,
    /// `CLAMD_URL`: the virus scanner every file goes through before it is offered; none
    /// when unset.
    pub clamd: Option<clamd::Clamd>,
    /// What files customers and agents may send, and how fast (`ATTACHMENT_*`).
    pub attachments: attachments::AttachmentSettings,
    // ---- agent bots ----
    /// `BOT_REPLY_TIMEOUT_SECS`: how long a bot may leave a customer's line unanswered
    /// before the conversation goes to its category's line by itself (default 20 s).
    pub bot_reply_timeout: Duration,
}

// ---- rooms and 1-to-1 video ----
/// A secret setting: never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("(hidden)")
    }
}

/// A setting that could not be used; start-up stops with this message.
#[derive(Debug, thiserror::Error)]
#[error("invalid value for {var}={value:?}: {reason}")]
pub struct ConfigError {
    pub var: &'static str,
    pub value: String,
    pub reason: String,
}

impl Settings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        let mut settings = Self::from_lookup(|name| std::env::var(name).ok())?;
        settings.password_hash_cost = test_only_hash_cost();
        Ok(settings)
    }

    /// Reads settings through `lookup`, so tests can pass their own values.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let r = Reader { lookup: &lookup };
        let settings = Settings {
            bind: r.parsed("BIND_ADDR", "127.0.0.1:8080")?,
            access: access::AccessSettings::read(&r)?,
            max_message_len: r.ranged("MAX_MESSAGE_LEN", 2000, 1..=100_000)?,
            draft_preview: r.flag("DRAFT_PREVIEW", true)?,
            draft_interval: Duration::from_millis(r.ranged("DRAFT_INTERVAL_MS", 150, 0..=10_000)?),
            resume_grace: r.seconds("RESUME_GRACE_SECS", 30.0)?,
            conversation_sticky: Duration::from_secs(3600 * r.ranged("CONVERSATION_STICKY_HOURS", 168, 0..=8760)?),
            offer_timeout: r.positive_seconds("OFFER_TIMEOUT_SECS", 20.0)?,
            buddy_grace: r.seconds("BUDDY_GRACE_SECS", 5.0)?,
            heartbeat: r.positive_seconds("HEARTBEAT_SECS", 20.0)?,
            max_connections: r.ranged("MAX_CONNECTIONS", 16_384, 1..=1_000_000)?,
            outbound_buffer: r.ranged("OUTBOUND_BUFFER", 256, 8..=65_536)?,
            rate_limit_per_sec: r.ranged("RATE_LIMIT_PER_SEC", 20, 1..=100_000)?,
            rate_limit_burst: r.ranged("RATE_LIMIT_BURST", 40, 1..=100_000)?,
            bot_rate_limit_per_sec: r.ranged("BOT_RATE_LIMIT_PER_SEC", 200, 1..=100_000)?,
            bot_rate_limit_burst: r.ranged("BOT_RATE_LIMIT_BURST", 400, 1..=100_000)?,
            session_ttl: Duration::from_secs(r.ranged::<u64>("SESSION_TTL_HOURS", 12, 1..=24 * 365)? * 3600),
            admin_username: r.text("ADMIN_USERNAME", "admin"),
            admin_password: r.optional("ADMIN_PASSWORD"),
            password_hash_cost: HashCost::Standard,
            store: store::StoreSettings::read(&r)?,
            archive: archive::ArchiveSettings::read(&r)?,

            // websocket closing
            ws_echo_endpoint: r.flag("WS_ECHO_ENDPOINT", false)?,
            http: http::HttpSettings::read(&r)?,
            webhooks: webhooks::WebhookSettings::read(&r)?,
            mail: mail::MailSettings::read(&r)?,
            cluster: cluster::ClusterSettings::read(&r)?,
            // ---- rooms and 1-to-1 video ----
            sms_webhook_url: r.http_url("SMS_WEBHOOK_URL")?,
            public_url: r.http_url("PUBLIC_URL")?.map(|u| u.trim_end_matches('/').to_string()),
            rooms: rooms::RoomSettings::read(&r)?,
            ice: rooms::IceSettings::read(&r)?,
            rating_scale: r.rating_scale("RATING_SCALE")?,
            appointments: appointments::AppointmentSettings::read(&r)?,
            outbox: outbox::OutboxSettings::read(&r)?,
            follow_up_mail_delay: r.positive_seconds("FOLLOW_UP_MAIL_DELAY_SECS", 60.0)?,
            widget: widget::WidgetSettings::read(&r)?,
            imap: imap::ImapSettings::read(&r)?,
            clamd: clamd::Clamd::read(&r)?,
            attachments: attachments::AttachmentSettings::read(&r)?,
            // ---- agent bots ----
            bot_reply_timeout: r.positive_seconds("BOT_REPLY_TIMEOUT_SECS", 20.0)?,
        };
        settings.check_cluster()?;
        // ---- rooms and 1-to-1 video ----
        // A room token made on one node must open the room's socket on any other: a random
        // secret per process would refuse every member who lands on another node.
        if settings.clustered() && r.optional("ROOM_TOKEN_SECRET").is_none() {
            return Err(ConfigError {
                var: "ROOM_TOKEN_SECRET",
                value: String::new(),
                reason: "several nodes (REDIS_URL) must share one ROOM_TOKEN_SECRET (at least 16 characters), \
                         so a room token made on one node opens the room on any node"
                    .into(),
            });
        }
        if settings.ws_echo_endpoint && !settings.bind.ip().is_loopback() {
            return Err(ConfigError {
                var: "WS_ECHO_ENDPOINT",
                value: "true".into(),
                reason: format!(
                    "the echo endpoint is for conformance tests only and needs a loopback BIND_ADDR, not {}",
                    settings.bind
                ),
            });
        }
        if let Some(password) = &settings.admin_password
            && password.chars().count() < 8
        {
            return Err(ConfigError {
                var: "ADMIN_PASSWORD",
                value: "(hidden)".into(),
                reason: "must be at least 8 characters".into(),
            });
        }
        Ok(settings)
    }

    /// Defaults with an in-memory store, for tests.
    pub fn for_tests() -> Self {
        let mut s = Self::from_lookup(|_| None).expect("defaults are valid");
        s.store.mode = StoreMode::Memory;
        s.password_hash_cost = HashCost::LightForTests;
        s
    }

    /// The settings with secrets hidden, for printing.
    pub fn redacted(&self) -> Self {
        let mut shown = self.clone();
        if shown.admin_password.is_some() {
            shown.admin_password = Some("(set, hidden)".into());
        }
        if shown.http.metrics_token.is_some() {
            shown.http.metrics_token = Some("(set, hidden)".into());
        }
        // Each URL's credentials: `mongodb://user:password@host` → `mongodb://***@host`.
        for url in [
            &mut shown.cluster.redis_url,
            &mut shown.mail.smtp_url,
            &mut shown.store.mongodb_uri,
        ] {
            *url = url.as_deref().map(without_credentials);
        }
        shown
    }
}

/// `url` with what stands between its scheme and its last `@` (a user and password)
/// shown as `***`; a URL without both is as it was.
fn without_credentials(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) => format!("{}***{}", &url[..scheme_end + 3], &url[at..]),
        _ => url.to_string(),
    }
}

// ---- several nodes through Redis: the cluster's foundations ----
impl Settings {
    /// The base of links in mails sent without a request to take a host from: `PUBLIC_URL`,
    /// else this hub on localhost at its own port.
    pub fn base_url_without_request(&self) -> String {
        match &self.public_url {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => format!("http://localhost:{}", self.bind.port()),
        }
    }

    /// Is this node one of several sharing a Redis?
    pub fn clustered(&self) -> bool {
        self.cluster.redis_url.is_some()
    }

    /// The cluster settings hold together: `REDIS_URL` parses (without connecting), the
    /// store is one every node can share, and renewals come well inside the lease.
    fn check_cluster(&self) -> Result<(), ConfigError> {
        let Some(url) = &self.cluster.redis_url else {
            return Ok(());
        };
        let shown = || self.redacted().cluster.redis_url.unwrap_or_default();
        if let Err(e) = redis::Client::open(url.as_str()) {
            return Err(Reader::error("REDIS_URL", &shown(), format!("not a Redis URL: {e}")));
        }
        // Auto picks MongoDB exactly when MONGODB_URI is set.
        let shared = match self.store.mode {
            StoreMode::MongoDb => true,
            StoreMode::Auto => self.store.mongodb_uri.is_some(),
            StoreMode::Memory | StoreMode::Embedded => false,
        };
        if !shared {
            let store = match self.store.mode {
                StoreMode::Memory => "memory",
                StoreMode::Embedded => "embedded",
                _ => "auto, which is the embedded store without MONGODB_URI",
            };
            return Err(Reader::error(
                "REDIS_URL",
                &shown(),
                format!(
                    "several nodes need one store they all share, but STORE={store} keeps accounts, \
                     sessions and the archive in this one process (its memory or its DATA_DIR files); \
                     use STORE=mongodb with MONGODB_URI, or unset REDIS_URL for a single process"
                ),
            ));
        }
        if self.cluster.renew * 2 > self.cluster.lease {
            return Err(Reader::error(
                "CLUSTER_RENEW_MS",
                &self.cluster.renew.as_millis().to_string(),
                format!(
                    "must be at most half of CLUSTER_LEASE_MS ({} ms), so one late renewal does not lose the lease",
                    self.cluster.lease.as_millis()
                ),
            ));
        }
        Ok(())
    }
}

struct Reader<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
}

impl Reader<'_> {
    /// The trimmed value, `None` when unset or empty.
    fn optional(&self, var: &str) -> Option<String> {
        (self.lookup)(var)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }

    fn text(&self, var: &str, default: &str) -> String {
        self.optional(var).unwrap_or_else(|| default.to_string())
    }

    fn error(var: &'static str, value: &str, reason: impl ToString) -> ConfigError {
        ConfigError {
            var,
            value: value.to_string(),
            reason: reason.to_string(),
        }
    }

    fn parsed<T: FromStr>(&self, var: &'static str, default: &str) -> Result<T, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        let value = self.text(var, default);
        value.parse().map_err(|e| Self::error(var, &value, e))
    }

    fn ranged<T>(&self, var: &'static str, default: T, range: std::ops::RangeInclusive<T>) -> Result<T, ConfigError>
    where
        T: FromStr + PartialOrd + std::fmt::Display + Copy,
        T::Err: std::fmt::Display,
    {
        let Some(value) = self.optional(var) else {
            return Ok(default);
        };
        let n: T = value
            .parse()
            .map_err(|e| Self::error(var, &value, format!("not a whole number ({e})")))?;
        if !range.contains(&n) {
            return Err(Self::error(
                var,
                &value,
                format!("must be from {} to {}", range.start(), range.end()),
            ));
        }
        Ok(n)
    }

    fn seconds(&self, var: &'static str, default: f64) -> Result<Duration, ConfigError> {
        let Some(value) = self.optional(var) else {
            return Ok(Duration::from_secs_f64(default));
        };
        match value.parse::<f64>() {
            Ok(s) if s.is_finite() && (0.0..=86_400.0).contains(&s) => Ok(Duration::from_secs_f64(s)),
            _ => Err(Self::error(var, &value, "must be a number of seconds from 0 to 86400")),
        }
    }

    /// Seconds that must be above zero (an interval of zero would spin).
    fn positive_seconds(&self, var: &'static str, default: f64) -> Result<Duration, ConfigError> {
        let d = self.seconds(var, default)?;
        if d.is_zero() {
            return Err(Self::error(var, "0", "must be above 0 seconds"));
        }
        Ok(d)
    }

    fn flag(&self, var: &'static str, default: bool) -> Result<bool, ConfigError> {
        Ok(self.optional_flag(var)?.unwrap_or(default))
    }

    /// A flag that may be left unset: `None` then.
    fn optional_flag(&self, var: &'static str) -> Result<Option<bool>, ConfigError> {
        let Some(value) = self.optional(var) else {
            return Ok(None);
        };
        match value.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(Some(true)),
            "0" | "false" | "no" | "off" => Ok(Some(false)),
            _ => Err(Self::error(var, &value, "must be true or false")),
        }
    }

    /// Comma-separated IPs and CIDR ranges; a bare IP is a single-address range.
    fn nets(&self, var: &'static str, default: &str) -> Result<Vec<IpNet>, ConfigError> {
        self.list(var, default, |item| {
            item.parse::<IpNet>()
                .or_else(|_| item.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("{item:?} is not an IP address or CIDR range"))
        })
    }

    fn origins(&self, var: &'static str) -> Result<Vec<String>, ConfigError> {
        self.list(var, "", |item| {
            let ok =
                item == "*" || (item.starts_with("http://") || item.starts_with("https://")) && !item.ends_with('/');
            if ok {
                Ok(item.to_string())
            } else {
                Err(format!("{item:?} is not an origin like https://example.com"))
            }
        })
    }

    /// A comma-separated list, each item trimmed and read by `read` (empty items are
    /// skipped); the first item `read` refuses fails the whole value with its reason.
    fn list<T>(
        &self,
        var: &'static str,
        default: &str,
        read: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Vec<T>, ConfigError> {
        let value = self.text(var, default);
        value
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|item| read(item).map_err(|reason| Self::error(var, &value, reason)))
            .collect()
    }

    // ---- rooms and 1-to-1 video ----
    /// An SMTP URL lettre accepts (`smtp://`, `smtps://`, with `?tls=required|opportunistic`).
    fn smtp_url(&self, var: &'static str) -> Result<Option<String>, ConfigError> {
        let Some(value) = self.optional(var) else {
            return Ok(None);
        };
        lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::from_url(&value)
            .map_err(|e| Self::error(var, "(hidden)", format!("not an SMTP URL like smtp://host:25 ({e})")))?;
        Ok(Some(value))
    }

    fn mailbox(&self, var: &'static str, default: &str) -> Result<String, ConfigError> {
        let value = self.text(var, default);
        value
            .parse::<lettre::message::Mailbox>()
            .map_err(|e| Self::error(var, &value, format!("not a mail address like Name <a@b.example> ({e})")))?;
        Ok(value)
    }

    // ---- offline messages ----
    /// An optional mail address (with or without a display name); unset or empty: `None`.
    fn optional_mailbox(&self, var: &'static str) -> Result<Option<String>, ConfigError> {
        let Some(value) = self.optional(var) else {
            return Ok(None);
        };
        value
            .parse::<lettre::message::Mailbox>()
            .map_err(|e| Self::error(var, &value, format!("not a mail address like desk@example.com ({e})")))?;
        Ok(Some(value))
    }

    /// Mail addresses, comma separated (each with or without a display name), each as
    /// written; unset or empty: none.
    fn mailboxes(&self, var: &'static str) -> Result<Vec<String>, ConfigError> {
        let Some(value) = self.optional(var) else {
            return Ok(vec![]);
        };
        let list = value.parse::<lettre::message::Mailboxes>().map_err(|e| {
            Self::error(
                var,
                &value,
                format!("not mail addresses like ops@example.com, Ann <ann@example.com> ({e})"),
            )
        })?;
        Ok(list.into_iter().map(|m| m.to_string()).collect())
    }

    /// An `http://` URL: the webhook client speaks plain HTTP (a TLS-terminating relay in
    /// front of a gateway keeps the hub free of a second TLS stack).
    fn http_url(&self, var: &'static str) -> Result<Option<String>, ConfigError> {
        let Some(value) = self.optional(var) else {
            return Ok(None);
        };
        let ok = (value.starts_with("http://") || value.starts_with("https://")) && value.len() > "https://".len();
        if !ok {
            return Err(Self::error(var, &value, "must be an http:// or https:// URL"));
        }
        Ok(Some(value))
    }

    fn secret(&self, var: &'static str) -> Result<Option<Secret>, ConfigError> {
        match self.optional(var) {
            None => Ok(None),
            Some(v) if v.len() < 16 => Err(Self::error(var, "(hidden)", "must be at least 16 characters")),
            Some(v) => Ok(Some(Secret(v.into_bytes()))),
        }
    }

    /// Comma-separated ICE server URLs, each with one of `schemes`.
    fn ice_urls(&self, var: &'static str, schemes: &[&str]) -> Result<Vec<String>, ConfigError> {
        self.list(var, "", |item| {
            if schemes.iter().any(|s| item.starts_with(s)) && !item.contains(char::is_whitespace) {
                Ok(item.to_string())
            } else {
                Err(format!("{item:?} is not a URL starting with {}", schemes.join(" or ")))
            }
        })
    }

    fn rating_scale(&self, var: &'static str) -> Result<crate::rating_scale::RatingScale, ConfigError> {
        let value = self.text(var, "stars");
        match value.trim().to_ascii_lowercase().as_str() {
            "stars" => Ok(crate::rating_scale::RatingScale::Stars),
            "thumbs" => Ok(crate::rating_scale::RatingScale::Thumbs),
            _ => Err(Self::error(var, &value, "must be stars or thumbs")),
        }
    }

    fn store_mode(&self, var: &'static str) -> Result<StoreMode, ConfigError> {
        let value = self.text(var, "auto");
        match value.to_ascii_lowercase().as_str() {
            "auto" => Ok(StoreMode::Auto),
            "memory" => Ok(StoreMode::Memory),
            "embedded" => Ok(StoreMode::Embedded),
            "mongodb" => Ok(StoreMode::MongoDb),
            _ => Err(Self::error(
                var,
                &value,
                "must be one of auto, memory, embedded, mongodb",
            )),
        }
    }
}

#[cfg(test)]
mod tests;
