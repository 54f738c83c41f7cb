//! The rules of webhook delivery, apart from any network: which event types exist and
//! which endpoint wants an event, which addresses a delivery may reach, when a failed
//! delivery is tried again and when an endpoint is disabled, and which delivery of an
//! endpoint goes next so that each conversation's events arrive in order.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::mail_retry::{AfterFailure, RetryPolicy};

/// Every event type, as the `type` field and an endpoint's `events` name them.
pub const EVENT_TYPES: [&str; 10] = [
    "conversation.created",
    "conversation.assigned",
    "conversation.transferred",
    "conversation.status_changed",
    "message.created",
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
    /// pending deliveries wait, nothing lost, until an admin enables it again).
    DisableEndpoint,
}

pub fn after_failure(failed_before: u32, now: i64) -> Failed {
    match RETRY.after_failure(failed_before, now) {
        AfterFailure::RetryAt(at) => Failed::RetryAt(at),
        AfterFailure::GiveUp => Failed::DisableEndpoint,
    }
}

/// May a delivery reach `ip` when private addresses are not allowed? Not loopback,
/// link-local, private (RFC 1918, unique local, shared 100.64/10), unspecified, broadcast,
/// multicast or documentation addresses; an IPv4-mapped IPv6 address as its IPv4.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b))
        || (a == 192 && b == 0 && ip.octets()[2] == 0)
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
        || first == 0x2001 && ip.segments()[1] == 0x0db8)
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
