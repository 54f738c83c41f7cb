//! The rules of webhook delivery, apart from any network: which event types exist and
//! which endpoint wants an event, which addresses a delivery may reach (and whether the
//! private ones are allowed: the operator's word, else the admins'), when a failed
//! delivery is tried again and when an endpoint is disabled, and which delivery of an
//! endpoint goes next so that each conversation's events arrive in order.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};

use super::mail_retry::{AfterFailure, RetryPolicy};

/// Every event type, as the `type` field and an endpoint's `events` name them.
/// `note.created` (agents' internal notes) goes only to an endpoint that names it.
pub const EVENT_TYPES: [&str; 11] = [
    "conversation.created",
    "conversation.assigned",
    "conversation.transferred",
    "conversation.status_changed",
    "message.created",
    "note.created",
    "rating.given",
    "offline_message.created",
    "appointment.booked",
    "appointment.rescheduled",
    "appointment.cancelled",
];

/// Is `name` an event type?
pub fn is_event_type(name: &str) -> bool {
    EVENT_TYPES.contains(&name)
}

/// When a failed delivery is tried again: 1 s, doubling to an hour, then hourly; the 36th
/// failure, a day (24 h 8 min) after the first, gives it up. A receiver down for most of a
/// day gets every event once back, within an hour.
pub const RETRY: RetryPolicy = RetryPolicy {
    first_ms: 1_000,
    max_ms: 3_600_000,
    max_attempts: 36,
};

/// What follows a failed attempt at `now` of a delivery that failed `failed_before` times.
pub enum Failed {
    /// Try again at this instant.
    RetryAt(i64),
    /// Sustained failure: the delivery is given up and its endpoint disabled (its other
    /// pending deliveries wait until an admin enables it again; events of the time it is
    /// disabled are not queued for it).
    DisableEndpoint,
}

pub fn after_failure(failed_before: u32, now: i64) -> Failed {
    match RETRY.after_failure(failed_before, now) {
        AfterFailure::RetryAt(at) => Failed::RetryAt(at),
        AfterFailure::GiveUp => Failed::DisableEndpoint,
    }
}

/// May a delivery reach `ip` when private addresses are not allowed? Not an address in
/// [`NOT_PUBLIC_V4`] or [`NOT_PUBLIC_V6`]; an IPv4-mapped (`::ffff:a.b.c.d`) or
/// IPv4-compatible (`::a.b.c.d`) IPv6 address as its IPv4, since a host may reach the
/// embedded address through either.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        // `to_ipv4` is `Some` exactly for `::/96` and `::ffff:0:0/96`; `::` and `::1`
        // come out as 0.0.0.0 and 0.0.0.1, refused with 0.0.0.0/8.
        IpAddr::V6(v6) => match v6.to_ipv4() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

/// IPv4 ranges a delivery may not reach: "this network", private, shared (CGNAT),
/// loopback, link-local, IETF protocol assignments, documentation, benchmarking,
/// multicast, reserved and broadcast.
pub const NOT_PUBLIC_V4: [&str; 14] = [
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "240.0.0.0/4",
];

/// IPv6 ranges a delivery may not reach (besides the IPv4-embedding `::/96` and
/// `::ffff:0:0/96`, checked as their IPv4): NAT64 (both the well-known and the local-use
/// prefix: the translator sits in the server's network), discard-only, Teredo and 6to4
/// (tunnels that carry an IPv4 address inside), documentation, unique local, link-local,
/// the old site-local and multicast.
pub const NOT_PUBLIC_V6: [&str; 10] = [
    "64:ff9b::/96",
    "64:ff9b:1::/48",
    "100::/64",
    "2001::/32",
    "2001:db8::/32",
    "2002::/16",
    "fc00::/7",
    "fe80::/10",
    "fec0::/10",
    "ff00::/8",
];

/// Whether webhooks may reach addresses that are not [`is_public`]: as the operator said
/// (`WEBHOOK_ALLOW_PRIVATE`, `Some`: always or never, whatever the admins chose), else as
/// the admins chose on the admin page, and not until they did.
pub fn private_allowed(operator: Option<bool>, admins: Option<bool>) -> bool {
    operator.or(admins).unwrap_or(false)
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    !NOT_PUBLIC_V4
        .iter()
        .any(|net| net.parse::<Ipv4Net>().is_ok_and(|net| net.contains(&ip)))
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    !(ip.is_unspecified()
        || ip.is_loopback()
        || NOT_PUBLIC_V6
            .iter()
            .any(|net| net.parse::<Ipv6Net>().is_ok_and(|net| net.contains(&ip))))
}

/// The instant a pending delivery may go: when it is due, or when another node's claim on
/// it runs out if that is later (while a claim runs, only its holder sends it).
pub fn goes_at(due_at: i64, claim_until: Option<i64>) -> i64 {
    due_at.max(claim_until.unwrap_or(i64::MIN))
}

/// Which pending deliveries may go now: of each (endpoint, ordering key), only the first
/// by `seq` (a later event of a conversation waits for the earlier one to be delivered or
/// given up, even while another node sends the earlier one), and only when it may go
/// ([`goes_at`]) and its endpoint is enabled. `pending` is by `seq`; each item is
/// (endpoint, ordering key, goes at, endpoint enabled). Returns indexes.
pub fn ready<'a>(pending: impl IntoIterator<Item = (&'a str, &'a str, i64, bool)>, now: i64) -> Vec<usize> {
    let mut heads = std::collections::HashSet::new();
    let mut out = Vec::new();
    for (i, (endpoint, key, due_at, enabled)) in pending.into_iter().enumerate() {
        if heads.insert((endpoint, key)) && enabled && due_at <= now {
            out.push(i);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_operator_decides_private_addresses_before_the_admins() {
        let choices = [None, Some(false), Some(true)];
        for admins in choices {
            assert!(!private_allowed(Some(false), admins), "never, whatever {admins:?}");
            assert!(private_allowed(Some(true), admins), "always, whatever {admins:?}");
            assert_eq!(
                private_allowed(None, admins),
                admins == Some(true),
                "the admins' {admins:?}"
            );
        }
    }

    #[test]
    fn private_loopback_and_link_local_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn tunnelled_translated_shared_benchmarking_and_multicast_addresses_are_not_public() {
        for ip in [
            "64:ff9b::a00:1",      // NAT64 well-known prefix
            "64:ff9b::5db8:d822",  // ... even around a public IPv4: the translator is ours
            "64:ff9b:1::1",        // NAT64 local-use prefix
            "2002:c0a8:101::1",    // 6to4 of 192.168.1.1
            "2002:5db8:d822::1",   // 6to4 of a public address: a tunnel all the same
            "2001:0:4136:e378::1", // Teredo
            "::10.0.0.1",          // IPv4-compatible, private inside
            "::127.0.0.1",         // IPv4-compatible loopback
            "::ffff:192.168.0.1",  // IPv4-mapped, private inside
            "::ffff:100.64.0.1",   // IPv4-mapped CGNAT
            "::",                  // unspecified
            "100.64.0.1",          // CGNAT
            "100.127.255.254",     // CGNAT, top
            "198.18.0.1",          // benchmarking
            "198.19.255.255",      // benchmarking, top
            "0.1.2.3",             // "this network"
            "224.0.0.1",           // multicast
            "239.255.255.250",     // multicast (SSDP)
            "255.255.255.255",     // broadcast
            "240.0.0.1",           // reserved
            "ff02::1",             // IPv6 multicast
            "ff05::2",             // IPv6 multicast, site
            "fec0::1",             // old site-local
            "2001:db8::1",         // documentation
            "192.0.2.1",           // documentation
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "100.63.255.255", // just below CGNAT
            "100.128.0.0",    // just above
            "198.17.255.255", // just below benchmarking
            "198.20.0.0",     // just above
            "223.255.255.255",
            "::5db8:d822",    // IPv4-compatible, public inside
            "::ffff:1.1.1.1", // IPv4-mapped, public inside
            "2a00:1450:4001::1",
            "2001:4860:4860::8888", // in 2001::/16 but not Teredo's /32
        ] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn every_listed_range_parses() {
        for net in NOT_PUBLIC_V4 {
            assert!(net.parse::<Ipv4Net>().is_ok(), "{net}");
        }
        for net in NOT_PUBLIC_V6 {
            assert!(net.parse::<Ipv6Net>().is_ok(), "{net}");
        }
    }

    #[test]
    fn a_later_event_of_a_conversation_waits_for_the_earlier_one() {
        let pending = [
            ("e1", "c1", 50, true), // due later: c1 waits
            ("e1", "c1", 0, true),  // behind it
            ("e1", "c2", 0, true),  // goes
            ("e2", "c1", 0, true),  // another endpoint: goes
            ("e3", "c3", 0, false), // disabled: waits
        ];
        assert_eq!(ready(pending, 10), [2, 3]);
    }

    #[test]
    fn a_claimed_delivery_goes_once_its_claim_runs_out_and_holds_its_conversation_meanwhile() {
        assert_eq!(goes_at(10, None), 10);
        assert_eq!(goes_at(10, Some(60)), 60, "claimed by another node until 60");
        assert_eq!(goes_at(10, Some(5)), 10, "a claim ended before it was due");
        let pending = [
            ("e1", "c1", goes_at(0, Some(60)), true), // another node sends it
            ("e1", "c1", goes_at(0, None), true),     // so this one waits behind it
        ];
        assert!(ready(pending, 10).is_empty());
        assert_eq!(ready(pending, 60), [0], "the lease ran out: it goes again, first");
    }

    #[test]
    fn a_failing_delivery_is_tried_for_a_day_at_most_an_hour_apart_then_disables_its_endpoint() {
        const HOUR: i64 = 3_600_000;
        let first_failure = 1_000_000;
        let (mut now, mut failed, mut longest) = (first_failure, 0, 0);
        while let Failed::RetryAt(at) = after_failure(failed, now) {
            longest = longest.max(at - now);
            (now, failed) = (at, failed + 1);
        }
        let tried_for = now - first_failure;
        assert!((24 * HOUR..25 * HOUR).contains(&tried_for), "{tried_for} ms");
        assert_eq!(longest, HOUR, "capped at an hour between tries");
        assert_eq!(failed + 1, RETRY.max_attempts);
    }

    #[test]
    fn the_last_failure_disables_the_endpoint() {
        assert!(matches!(after_failure(0, 100), Failed::RetryAt(1_100)));
        assert!(matches!(
            after_failure(RETRY.max_attempts - 1, 100),
            Failed::DisableEndpoint
        ));
    }
}
