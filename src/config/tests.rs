//! Tests of `config`.

use super::*;

fn with(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    let pairs: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    Settings::from_lookup(move |name| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
}

#[test]
fn defaults_need_no_configuration() {
    let s = with(&[]).unwrap();
    assert_eq!(s.bind, "127.0.0.1:8080".parse().unwrap());
    assert!(s.access.is_whitelisted("127.0.0.1".parse().unwrap()));
    assert!(s.access.is_whitelisted("::1".parse().unwrap()));
    assert!(!s.access.is_whitelisted("10.0.0.1".parse().unwrap()));
    assert_eq!(s.max_message_len, 2000);
    assert_eq!(s.resume_grace, Duration::from_secs(30));
    assert_eq!(s.offer_timeout, Duration::from_secs(20));
    assert_eq!(s.store.mode, StoreMode::Auto);
    assert_eq!(s.http.listen_backlog, 4_096);
    assert_eq!(s.rating_scale, crate::store::RatingScale::Stars);
    assert_eq!(
        with(&[("RATING_SCALE", "Thumbs")]).unwrap().rating_scale,
        crate::store::RatingScale::Thumbs
    );
}

#[test]
fn bad_values_name_their_variable() {
    for (var, value) in [
        ("MAX_MESSAGE_LEN", "lots"),
        ("MAX_MESSAGE_LEN", "0"),
        ("AGENT_WHITELIST", "10.0.0.0/33"),
        ("TRUSTED_PROXIES", "proxy.local"),
        ("STORE", "floppy"),
        ("RATING_SCALE", "hearts"),
        ("BIND_ADDR", "localhost"),
        ("DRAFT_PREVIEW", "maybe"),
        ("RESUME_GRACE_SECS", "-1"),
        ("OFFER_TIMEOUT_SECS", "0"),
        ("OFFER_TIMEOUT_SECS", "soon"),
        ("HEARTBEAT_SECS", "0"),
        ("ALLOWED_ORIGINS", "example.com"),
        ("MONGODB_URI", "http://x"),
        ("MONGODB_URI", "mongodb://127.0.0.1:99999"),
        ("MONGODB_URI", "mongodb://"),
        ("EMBEDDED_CACHE_MB", "0"),
        ("READY_MAX_BACKLOG", "-1"),
        ("ARCHIVE_SLOW_WRITE_MS", "0"),
        ("ARCHIVE_WRITE_TIMEOUT_MS", "0"),
        ("STORE_READ_TIMEOUT_MS", "99"),
        ("STORE_READ_TIMEOUT_MS", "soon"),
        ("HTTP_HEADER_TIMEOUT_SECS", "0"),
        ("HTTP_REQUEST_TIMEOUT_SECS", "soon"),
        ("MAX_CONNECTIONS_PER_ADDRESS", "0"),
        ("LISTEN_BACKLOG", "0"),
        ("LISTEN_BACKLOG", "many"),
        ("LISTEN_BACKLOG", "65536"),
        ("METRICS_TOKEN", "short"),
        ("COOKIE_SECURE", "sometimes"),
        ("WEBHOOK_ALLOW_PRIVATE", "maybe"),
        ("BOT_RATE_LIMIT_PER_SEC", "0"),
        ("BOT_RATE_LIMIT_BURST", "plenty"),
        // ---- rooms and 1-to-1 video ----
        ("SMTP_URL", "mail.example.com"),
        ("MAIL_FROM", "not an address"),
        ("OFFLINE_MAIL_TO", "not an address"),
        ("ADMIN_MAIL_TO", "ops@example.com, not an address"),
        ("SMS_WEBHOOK_URL", "ftp://sms.example.com/send"),
        ("PUBLIC_URL", "example.com"),
        ("ROOM_CODE_TTL_SECS", "0"),
        ("ROOM_MAX_ATTEMPTS", "0"),
        ("ROOM_TOKEN_SECRET", "short"),
        ("ROOM_TOKEN_TTL_SECS", "3600"),
        ("STUN_URLS", "stun.example.com:3478"),
        ("TURN_URLS", "stun:127.0.0.1:3478"),
        ("TURN_SECRET", "short"),
        ("ROOM_MAX_FAILED_JOINS", "0"),
        ("ROOM_MAX_FAILED_JOINS", "1001"),
        // ---- the default configuration fast ----
        ("ARCHIVE_GROUP_COMMIT_MS", "51"),
        ("ARCHIVE_GROUP_COMMIT_MS", "soon"),
    ] {
        let err = with(&[(var, value)]).unwrap_err();
        assert_eq!(err.var, var);
        assert!(err.to_string().contains(var), "{err}");
    }
}

#[test]
fn whitelist_takes_ips_and_ranges() {
    let s = with(&[("AGENT_WHITELIST", "10.1.0.0/16, 192.0.2.7")]).unwrap();
    assert!(s.access.is_whitelisted("10.1.200.3".parse().unwrap()));
    assert!(s.access.is_whitelisted("192.0.2.7".parse().unwrap()));
    assert!(!s.access.is_whitelisted("192.0.2.8".parse().unwrap()));
}

// websocket closing
#[test]
fn the_echo_endpoint_is_off_and_refused_on_a_public_address() {
    assert!(!with(&[]).unwrap().ws_echo_endpoint);
    assert!(with(&[("WS_ECHO_ENDPOINT", "true")]).unwrap().ws_echo_endpoint);
    let err = with(&[("WS_ECHO_ENDPOINT", "true"), ("BIND_ADDR", "0.0.0.0:8080")]).unwrap_err();
    assert_eq!(err.var, "WS_ECHO_ENDPOINT");
    assert!(err.to_string().contains("BIND_ADDR"), "{err}");
}

// ---- several nodes through Redis: the cluster's foundations ----
#[test]
fn without_redis_url_nothing_is_clustered() {
    let s = with(&[]).unwrap();
    assert!(!s.clustered());
    assert_eq!(s.cluster.lease, Duration::from_secs(5));
    assert_eq!(s.cluster.renew, Duration::from_secs(1));
    assert!(!s.cluster.node_id.is_empty());
    assert_ne!(
        s.cluster.node_id,
        with(&[]).unwrap().cluster.node_id,
        "two processes' defaults never clash"
    );
}

#[test]
fn redis_url_needs_a_store_every_node_shares() {
    const URL: &str = "redis://127.0.0.1:6379/";
    for store in [&[][..], &[("STORE", "embedded")], &[("STORE", "memory")]] {
        let mut pairs = vec![("REDIS_URL", URL)];
        pairs.extend_from_slice(store);
        let err = with(&pairs).unwrap_err();
        assert_eq!(err.var, "REDIS_URL");
        let text = err.to_string();
        assert!(text.contains("STORE=") && text.contains("MONGODB_URI"), "{text}");
    }
    // (Several nodes also need one ROOM_TOKEN_SECRET, for rooms.)
    let secret = ("ROOM_TOKEN_SECRET", "a shared room token secret");
    let s = with(&[("REDIS_URL", URL), ("MONGODB_URI", "mongodb://127.0.0.1:27017"), secret]).unwrap();
    assert!(s.clustered());
    let s = with(&[
        ("REDIS_URL", "redis://:hunter2-redis@127.0.0.1:6379/"),
        ("STORE", "mongodb"),
        ("MONGODB_URI", "mongodb://127.0.0.1:27017"),
        secret,
    ])
    .unwrap();
    // (Field names such as `room_token_secret` contain "secret": look for the password itself.)
    assert!(!format!("{:?}", s.redacted()).contains("hunter2-redis"));
}

#[test]
fn bad_cluster_settings_name_their_variable() {
    let mongo = ("MONGODB_URI", "mongodb://127.0.0.1:27017");
    for (pairs, var) in [
        (vec![("REDIS_URL", "http://x"), mongo], "REDIS_URL"),
        (vec![("NODE_ID", "a b")], "NODE_ID"),
        (vec![("CLUSTER_LEASE_MS", "10")], "CLUSTER_LEASE_MS"),
        (
            vec![("REDIS_URL", "redis://127.0.0.1/"), mongo, ("CLUSTER_RENEW_MS", "3000")],
            "CLUSTER_RENEW_MS",
        ),
    ] {
        let err = with(&pairs).unwrap_err();
        assert_eq!(err.var, var, "{err}");
    }
}

// ---- appointments ----
#[test]
fn appointment_settings_default_to_the_seed_desk_and_name_their_variable() {
    let s = with(&[]).unwrap();
    assert_eq!(s.appointments.zone, jiff::tz::TimeZone::UTC);
    assert_eq!(s.appointments.hours.slot_minutes(), 60);
    assert_eq!(s.appointments.hours.open(), jiff::civil::time(10, 0, 0, 0));
    assert_eq!(s.appointments.hours.close(), jiff::civil::time(17, 0, 0, 0));
    assert_eq!(
        s.appointments.hours.days(),
        crate::core::schedule::Weekdays::EVERY_DAY,
        "every day unless told"
    );
    assert_eq!(s.appointments.min_notice, Duration::from_secs(3600));
    let s = with(&[
        ("APPOINTMENT_TIME_ZONE", "Europe/Berlin"),
        ("APPOINTMENT_HOURS", "09:30-12:00"),
    ])
    .unwrap();
    assert_eq!(s.appointments.zone.iana_name(), Some("Europe/Berlin"));
    assert_eq!(s.appointments.room_grace, Duration::from_secs(15 * 60));
    assert_eq!(s.appointments.hours.open(), jiff::civil::time(9, 30, 0, 0));
    let s = with(&[("APPOINTMENT_DAYS", "Mon-Fri")]).unwrap();
    assert_eq!(s.appointments.hours.days().names(), ["mon", "tue", "wed", "thu", "fri"]);
    for (var, value) in [
        ("APPOINTMENT_DAYS", "weekdays"),
        ("APPOINTMENT_DAYS", "fri-mon"),
        ("APPOINTMENT_DAYS", ","),
        ("APPOINTMENT_TIME_ZONE", "Mars/Olympus"),
        ("APPOINTMENT_HOURS", "10-17"),
        ("APPOINTMENT_HOURS", "17:00-10:00"),
        ("APPOINTMENT_SLOT_MINUTES", "2"),
        ("APPOINTMENT_MIN_NOTICE_MINUTES", "soon"),
        ("APPOINTMENT_START_WINDOW_MINUTES", "-5"),
        ("APPOINTMENT_ROOM_GRACE_MINUTES", "later"),
        ("APPOINTMENT_ROOM_GRACE_MINUTES", "1441"),
    ] {
        let e = with(&[(var, value)]).unwrap_err();
        assert_eq!(e.var, var, "{var}={value}");
    }
    // Hours too short for one slot name the hours variable.
    let e = with(&[("APPOINTMENT_HOURS", "10:00-10:30")]).unwrap_err();
    assert_eq!(e.var, "APPOINTMENT_HOURS");
}

#[test]
fn private_addresses_for_webhooks_are_the_admins_choice_unless_set_true_or_false() {
    assert_eq!(
        with(&[]).unwrap().webhooks.allow_private,
        None,
        "unset: the admins decide"
    );
    for (value, wanted) in [("true", Some(true)), ("false", Some(false)), ("", None)] {
        let settings = with(&[("WEBHOOK_ALLOW_PRIVATE", value)]).unwrap();
        assert_eq!(settings.webhooks.allow_private, wanted, "{value:?}");
    }
    assert_eq!(
        with(&[("WEBHOOK_ALLOW_PRIVATE", "maybe")]).unwrap_err().var,
        "WEBHOOK_ALLOW_PRIVATE"
    );
}

#[test]
fn a_bot_socket_has_its_own_rate_limit_above_a_persons_by_default() {
    let s = with(&[]).unwrap();
    assert_eq!((s.rate_limit_per_sec, s.rate_limit_burst), (20, 40));
    assert_eq!((s.bot_rate_limit_per_sec, s.bot_rate_limit_burst), (200, 400));
    let s = with(&[("BOT_RATE_LIMIT_PER_SEC", "50"), ("BOT_RATE_LIMIT_BURST", "60")]).unwrap();
    assert_eq!((s.bot_rate_limit_per_sec, s.bot_rate_limit_burst), (50, 60));
}

// ---- appointment mail outbox ----
#[test]
fn outbox_settings_have_defaults_and_bad_ones_name_their_variable() {
    let s = with(&[]).unwrap();
    assert_eq!(s.outbox.lease, Duration::from_secs(120));
    assert_eq!(s.webhooks.lease, Duration::from_secs(60));
    assert_eq!(s.webhooks.delivery_retention, Duration::from_secs(30 * 24 * 3600));
    assert_eq!(
        with(&[("WEBHOOK_DELIVERY_RETENTION_DAYS", "7")])
            .unwrap()
            .webhooks
            .delivery_retention,
        Duration::from_secs(7 * 24 * 3600)
    );
    assert_eq!(s.outbox.retry_first, Duration::from_secs(30));
    assert_eq!(s.outbox.retry_max, Duration::from_secs(3600));
    assert_eq!(s.outbox.max_attempts, 12);
    assert_eq!(s.appointments.booking_burst, 5);
    assert_eq!(s.appointments.booking_refill, Duration::from_secs(600));
    assert_eq!(s.follow_up_mail_delay, Duration::from_secs(60));
    for (vars, var) in [
        (vec![("OUTBOX_POLL_SECS", "0")], "OUTBOX_POLL_SECS"),
        (vec![("FOLLOW_UP_MAIL_DELAY_SECS", "0")], "FOLLOW_UP_MAIL_DELAY_SECS"),
        (vec![("FOLLOW_UP_MAIL_DELAY_SECS", "soon")], "FOLLOW_UP_MAIL_DELAY_SECS"),
        (vec![("OUTBOX_LEASE_SECS", "5")], "OUTBOX_LEASE_SECS"),
        (vec![("WEBHOOK_LEASE_SECS", "10")], "WEBHOOK_LEASE_SECS"),
        (
            vec![("WEBHOOK_DELIVERY_RETENTION_DAYS", "0")],
            "WEBHOOK_DELIVERY_RETENTION_DAYS",
        ),
        (
            vec![("WEBHOOK_DELIVERY_RETENTION_DAYS", "a month")],
            "WEBHOOK_DELIVERY_RETENTION_DAYS",
        ),
        (vec![("OUTBOX_RETRY_FIRST_SECS", "x")], "OUTBOX_RETRY_FIRST_SECS"),
        (vec![("OUTBOX_MAX_ATTEMPTS", "0")], "OUTBOX_MAX_ATTEMPTS"),
        (vec![("APPOINTMENT_BOOKING_BURST", "0")], "APPOINTMENT_BOOKING_BURST"),
        (
            vec![("APPOINTMENT_BOOKING_REFILL_SECS", "0")],
            "APPOINTMENT_BOOKING_REFILL_SECS",
        ),
        (
            vec![("OUTBOX_RETRY_FIRST_SECS", "60"), ("OUTBOX_RETRY_MAX_SECS", "10")],
            "OUTBOX_RETRY_MAX_SECS",
        ),
    ] {
        assert_eq!(with(&vars).unwrap_err().var, var, "{vars:?}");
    }
}

// ---- conversations ----
#[test]
fn the_sticky_return_lasts_a_week_unless_set_and_a_bad_value_names_its_variable() {
    assert_eq!(
        with(&[]).unwrap().conversation_sticky,
        Duration::from_secs(7 * 24 * 3600)
    );
    let set = with(&[("CONVERSATION_STICKY_HOURS", "0")]).unwrap();
    assert_eq!(set.conversation_sticky, Duration::ZERO);
    for value in ["-1", "8761", "a week"] {
        let e = with(&[("CONVERSATION_STICKY_HOURS", value)]).unwrap_err();
        assert_eq!(e.var, "CONVERSATION_STICKY_HOURS", "{value}");
    }
}

#[test]
fn imap_is_off_by_default_and_read_when_its_url_is_set() {
    assert_eq!(with(&[]).unwrap().imap, None);
    let s = with(&[
        ("IMAP_URL", "imaps://mail.example.com"),
        ("IMAP_USER", "desk"),
        ("IMAP_PASSWORD", "pw"),
        (
            "IMAP_ROUTES",
            "billing@desk.example=billing, sales@desk.example = sales",
        ),
    ])
    .unwrap()
    .imap
    .unwrap();
    assert_eq!(
        s.server,
        imap::ImapServer {
            tls: true,
            host: "mail.example.com".into(),
            port: 993
        }
    );
    assert_eq!(s.mailbox, "INBOX");
    assert_eq!(s.poll, Duration::from_secs(30));
    assert_eq!(s.max_bytes, 10 << 20);
    assert_eq!(s.routes[1], ("sales@desk.example".into(), "sales".into()));
    let shown = format!(
        "{:?}",
        with(&[
            ("IMAP_URL", "imap://h"),
            ("IMAP_USER", "u"),
            ("IMAP_PASSWORD", "imap-secret-password")
        ])
        .unwrap()
        .redacted()
    );
    assert!(
        shown.contains("(hidden)") && !shown.contains("imap-secret"),
        "the password is never printed: {shown}"
    );
    let plain = with(&[
        ("IMAP_URL", "imap://127.0.0.1:1143"),
        ("IMAP_USER", "u"),
        ("IMAP_PASSWORD", "p"),
    ]);
    assert_eq!(plain.unwrap().imap.unwrap().server.port, 1143);
}

#[test]
fn bad_imap_values_name_their_variable() {
    let base = [
        ("IMAP_URL", "imap://127.0.0.1:1143"),
        ("IMAP_USER", "u"),
        ("IMAP_PASSWORD", "p"),
    ];
    for (var, value) in [
        ("IMAP_URL", "http://mail.example.com"),
        ("IMAP_URL", "imap://user:pw@mail.example.com"),
        ("IMAP_URL", "imap://mail.example.com:0"),
        ("IMAP_URL", "imaps://"),
        ("IMAP_USER", ""),
        ("IMAP_PASSWORD", ""),
        ("IMAP_POLL_SECS", "0"),
        ("IMAP_MAX_MB", "0"),
        ("IMAP_ROUTES", "billing"),
        ("IMAP_MAILBOX", "in\"box"),
    ] {
        let mut pairs: Vec<(&str, &str)> = base.iter().filter(|(k, _)| *k != var).copied().collect();
        pairs.push((var, value));
        let err = with(&pairs).expect_err(&format!("{var}={value} must be refused"));
        assert_eq!(err.var, var, "{err}");
    }
}

// ---- attachments ----
#[test]
fn attachments_are_limited_to_ten_megabytes_unless_set_and_a_bad_limit_names_its_variable() {
    assert_eq!(with(&[]).unwrap().attachments.max_bytes, 10 * 1024 * 1024);
    assert_eq!(
        with(&[("ATTACHMENT_MAX_BYTES", "2048")]).unwrap().attachments.max_bytes,
        2048
    );
    for value in ["0", "-5", "ten", "1073741825"] {
        let e = with(&[("ATTACHMENT_MAX_BYTES", value)]).unwrap_err();
        assert_eq!(e.var, "ATTACHMENT_MAX_BYTES", "{value}");
    }
}

#[test]
fn attachment_quotas_have_defaults_and_a_bad_quota_names_its_variable() {
    let defaults = with(&[]).unwrap();
    assert_eq!(defaults.attachments.conversation_max_bytes, 100 * 1024 * 1024);
    assert_eq!(defaults.attachments.day_max_bytes, 5 * 1024 * 1024 * 1024);
    let set = with(&[
        ("ATTACHMENT_CONVERSATION_MAX_BYTES", "4096"),
        ("ATTACHMENT_DAY_MAX_BYTES", "8192"),
    ])
    .unwrap();
    assert_eq!(
        (set.attachments.conversation_max_bytes, set.attachments.day_max_bytes),
        (4096, 8192)
    );
    for var in ["ATTACHMENT_CONVERSATION_MAX_BYTES", "ATTACHMENT_DAY_MAX_BYTES"] {
        for value in ["0", "-1", "lots"] {
            let e = with(&[(var, value)]).unwrap_err();
            assert_eq!(e.var, var, "{value}");
        }
    }
}
