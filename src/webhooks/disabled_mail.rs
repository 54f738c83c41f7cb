//! The admins' mail when the deliverer disables an endpoint (`ADMIN_MAIL_TO`): its URL,
//! how many attempts failed, the last error and the admin page where it is enabled again.
//!
//! One outbox mail per admin address, written through the durable mail outbox (sent by the
//! outbox worker, retried while the relay is down) before the disabling is recorded, so a
//! disabling is never left untold. Its id names the delivery that died
//! (`webhook-disabled:<delivery>:<address>`): a delivery dies once, so one disabling is one
//! mail per admin however often it is written (a retry after a store error, another node
//! that took over a claim that ran out), and the outbox keeps the first.

use crate::mail::QueuedMail;
use crate::store::{MailPurpose, Millis, OutboxMail, WebhookDelivery, WebhookEndpoint};

/// What every such mail's outbox id starts with.
pub const ID_PREFIX: &str = "webhook-disabled:";

/// The outbox id of the mail to `to` about the endpoint `delivery` disabled.
pub fn mail_id(delivery: &str, to: &str) -> String {
    format!("{ID_PREFIX}{delivery}:{to}")
}

/// Where the mail sends the admin: the admin page's Webhooks view under `base_url`.
pub fn admin_page(base_url: &str) -> String {
    format!("{}/admin.html#webhooks", base_url.trim_end_matches('/'))
}

/// The mails to each of `admins` saying `endpoint` was disabled when `delivery` (its
/// attempts recorded, the last one failed) was given up; `admin_page` is where to enable it.
pub fn mails(
    endpoint: &WebhookEndpoint,
    delivery: &WebhookDelivery,
    admins: &[String],
    admin_page: &str,
    now: Millis,
) -> Vec<OutboxMail> {
    let subject = format!("Webhook endpoint disabled: {}", endpoint.url);
    let last_error = delivery.attempts.last().map_or_else(
        || "none recorded".to_string(),
        |a| match a.status_code {
            Some(code) => format!("HTTP {code}: {}", a.excerpt),
            None => a.excerpt.clone(),
        },
    );
    let text = format!(
        "Switchboard disabled the webhook endpoint {url} after {failed} failed attempts of one \
         delivery over a day (event {event_type}, delivery {delivery}).\n\n\
         Last error: {last_error}\n\n\
         The events already queued for it wait and go out in order once it is enabled again; \
         events of the time it stays disabled are not queued for it. \
         Fix the receiver, then enable the endpoint on the admin page: {admin_page}\n",
        url = endpoint.url,
        failed = delivery.attempts.len(),
        event_type = delivery.event_type,
        delivery = delivery.id,
    );
    admins
        .iter()
        .map(|to| {
            QueuedMail {
                id: mail_id(&delivery.id, to),
                about: endpoint.id.clone(),
                purpose: MailPurpose::WebhookDisabled,
                to: to.clone(),
                subject: subject.clone(),
                text: text.clone(),
                attachments: vec![],
            }
            .due(now)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{DeliveryAttempt, DeliveryStatus};

    #[test]
    fn one_mail_per_admin_named_by_the_delivery_that_died_the_same_each_time() {
        let endpoint = WebhookEndpoint {
            id: "e1".into(),
            url: "https://crm.example.com/hook".into(),
            events: vec!["message.created".into()],
            secret: "s".into(),
            enabled: false,
            disabled_reason: None,
            failures_in_a_row: 1,
            created_at: 0,
        };
        let failed = |code, excerpt: &str| DeliveryAttempt {
            at: 0,
            status_code: code,
            latency_ms: 1,
            excerpt: excerpt.into(),
        };
        let delivery = WebhookDelivery {
            id: "ev-e1".into(),
            endpoint_id: "e1".into(),
            seq: 1,
            ordering_key: "c1".into(),
            event_id: "ev".into(),
            event_type: "message.created".into(),
            body: "{}".into(),
            status: DeliveryStatus::Dead,
            due_at: 0,
            attempts: vec![failed(None, "no answer: refused"), failed(Some(502), "bad gateway")],
            created_at: 0,
            claimed_by: None,
            claim_until: None,
        };
        let admins = ["ops@example.com".to_string(), "Ann <ann@example.com>".to_string()];
        let page = admin_page("https://desk.example.com/");
        let made = mails(&endpoint, &delivery, &admins, &page, 5);
        assert_eq!(made.len(), 2);
        assert_eq!(made[0].id, "webhook-disabled:ev-e1:ops@example.com");
        assert_eq!(made[1].to, "Ann <ann@example.com>");
        let text = &made[0].text;
        for says in [
            "https://crm.example.com/hook",
            "2 failed attempts",
            "Last error: HTTP 502: bad gateway",
            "https://desk.example.com/admin.html#webhooks",
        ] {
            assert!(text.contains(says), "no {says:?} in {text}");
        }
        // Made again (a retry of the same disabling): the same ids, so one mail each.
        let again = mails(&endpoint, &delivery, &admins, &page, 9);
        assert_eq!(
            made.iter().map(|m| &m.id).collect::<Vec<_>>(),
            again.iter().map(|m| &m.id).collect::<Vec<_>>()
        );
    }
}
