//! What becomes of a mail a customer sent to the desk's mailbox: dropped (an auto-reply,
//! a mail of our own coming back, too large, no sender), a bounce of one of our mails,
//! a line in an existing conversation (by its reply token, else the ids it answers), or a
//! new conversation in a category chosen by the address it was sent to.
//!
//! Pure and synchronous: the adapter (`mail::inbound`) parses the MIME with `mail-parser`
//! and hands the fields here; the rules never see bytes on the wire, a clock or a store.
//! The order of the checks is the point: a bounce is recognised before the auto-reply
//! headers it often carries, and nothing automatic ever reaches the threading rules, so an
//! auto-responder answering our mails can never loop into a conversation.

use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::guesses::{FailedGuesses, GuessLimit};

/// The length of a reply token: 26 characters of lowercase base32 (`a-z`, `2-7`).
pub const TOKEN_LEN: usize = 26;

/// A received mail as the rules need it, already decoded (charsets, quoted-printable,
/// base64, RFC 2047) by the adapter. Addresses are as written; the rules compare them
/// without regard to case.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailFields {
    /// `Message-ID` without its angle brackets.
    pub message_id: Option<String>,
    /// The `From` address.
    pub from: Option<String>,
    /// Every address it was delivered to: `To`, `Cc` and `Delivered-To`.
    pub recipients: Vec<String>,
    /// `In-Reply-To` ids, without angle brackets.
    pub in_reply_to: Vec<String>,
    /// `References` ids, without angle brackets.
    pub references: Vec<String>,
    /// `Auto-Submitted` (RFC 3834), as written.
    pub auto_submitted: Option<String>,
    /// `Precedence`, as written.
    pub precedence: Option<String>,
    /// An `X-Autoreply` or `X-Autorespond` header is present.
    pub x_autoreply: bool,
    /// The top-level content type, `type/subtype` lowercase, and its `report-type`.
    pub content_type: Option<String>,
    pub report_type: Option<String>,
    /// For a delivery report: the `Message-ID`s of the mail it reports on, as found in its
    /// returned message or headers part.
    pub reported_ids: Vec<String>,
    /// For a delivery report: why it failed, as the report says (its `Status` and
    /// `Diagnostic-Code`, else its `Action`), one line.
    pub bounce_reason: Option<String>,
    pub subject: String,
    /// The readable text: the text/plain part, else the HTML turned to text.
    pub text: String,
    /// The files it carries (its attachments, decoded), in order.
    pub files: Vec<MailFile>,
    /// The raw mail's size in bytes.
    pub size: usize,
}

/// A file a mail carries: the name its sender gave it and its bytes, decoded. What it is
/// is not believed: the adapter tells its type from its bytes, as for an upload.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailFile {
    pub name: String,
    pub bytes: Vec<u8>,
}

/// What the desk is, for the rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desk {
    /// The desk's address (`MAIL_FROM`'s): replies come to `local+token@domain`.
    pub address: String,
    /// Mails larger than this are dropped (recorded and logged).
    pub max_bytes: usize,
    /// The category of a new conversation started by a mail to an address not in `routes`.
    pub default_category: String,
    /// Address → category for new conversations, compared without regard to case.
    pub routes: Vec<(String, String)>,
}

/// Why a mail adds nothing to any conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DropReason {
    /// Larger than the cap; the size.
    TooLarge(usize),
    /// An automatic answer (`Auto-Submitted`, `Precedence`, `X-Autoreply`): which header.
    AutoReply(&'static str),
    /// A mail with our own `Message-ID` came back (a loop through a forwarder).
    OwnMail,
    /// No `From` address to tell the customer by.
    NoSender,
    /// Its sender sent more mails than `IMAP_SENDER_MAX_PER_HOUR` allows (a mail bomb, a
    /// loop no header names): kept in the mailbox, added to nothing.
    SenderLimit,
}

impl DropReason {
    /// A short name for logs and metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            DropReason::TooLarge(_) => "too_large",
            DropReason::AutoReply(_) => "auto_reply",
            DropReason::OwnMail => "own_mail",
            DropReason::NoSender => "no_sender",
            DropReason::SenderLimit => "sender_limit",
        }
    }
}

/// What the customer wrote, as the agent sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub from: String,
    pub subject: String,
    /// Quoted history and signature stripped.
    pub text: String,
    /// The files the mail carries, for the line (checked as uploads are when kept).
    pub files: Vec<MailFile>,
}

/// The decision on one mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Drop(DropReason),
    /// A delivery failure report: the desk's mails with these ids are marked bounced, with
    /// the report's reason when it gives one (none of ours: only logged).
    Bounce {
        original_ids: Vec<String>,
        reason: Option<String>,
    },
    /// A line in an existing conversation: its reply token decides first (candidates in
    /// the order found), then the ids it answers (`In-Reply-To` first, then `References`,
    /// newest first). Nothing found for either: the caller starts a new conversation in
    /// `category`, as for [`Decision::New`].
    Thread {
        tokens: Vec<String>,
        ids: Vec<String>,
        category: String,
        written: Written,
    },
    /// A new conversation in `category`.
    New {
        category: String,
        written: Written,
    },
}

/// Decides what becomes of `mail` sent to `desk`.
pub fn decide(mail: &MailFields, desk: &Desk) -> Decision {
    if mail.size > desk.max_bytes {
        return Decision::Drop(DropReason::TooLarge(mail.size));
    }
    if is_delivery_report(mail) {
        return Decision::Bounce {
            original_ids: mail.reported_ids.clone(),
            reason: mail.bounce_reason.clone(),
        };
    }
    if let Some(header) = automatic(mail) {
        return Decision::Drop(DropReason::AutoReply(header));
    }
    let (local, domain) = split_address(&desk.address);
    if mail
        .message_id
        .as_deref()
        .and_then(|id| id.rsplit_once('@'))
        .is_some_and(|(_, d)| d.eq_ignore_ascii_case(domain))
    {
        return Decision::Drop(DropReason::OwnMail);
    }
    let Some(from) = mail.from.as_deref().map(str::trim).filter(|f| f.contains('@')) else {
        return Decision::Drop(DropReason::NoSender);
    };
    let written = Written {
        from: from.to_string(),
        subject: mail.subject.trim().to_string(),
        text: readable_text(&mail.text),
        files: mail.files.clone(),
    };
    let category = category_for(mail, desk);
    let tokens = reply_tokens(&mail.recipients, local, domain);
    let ids: Vec<String> = mail
        .in_reply_to
        .iter()
        .chain(mail.references.iter().rev())
        .map(|id| id.trim().to_string())
        .filter(|id| !id.is_empty())
        .fold(Vec::new(), |mut all, id| {
            if !all.contains(&id) {
                all.push(id);
            }
            all
        });
    if tokens.is_empty() && ids.is_empty() {
        Decision::New { category, written }
    } else {
        Decision::Thread {
            tokens,
            ids,
            category,
            written,
        }
    }
}

/// `decision`, unless it would add to a conversation for a sender past their hourly
/// allowance (`senders`, keyed by the `From` address in lowercase, spending one mail at
/// `now`): then [`DropReason::SenderLimit`]. Only mails that would add something count:
/// bounces and dropped mails are cheap and never spend a sender's allowance.
/// A mail that could not be handed over after all gives its sender's mail back with
/// `senders.give_back(&key)` for the [`spender`] key.
pub fn within_sender_limit(decision: Decision, senders: &mut FailedGuesses<String>, now: Instant) -> Decision {
    let Some(from) = spender(&decision) else {
        return decision;
    };
    match senders.take(from, now) {
        Ok(()) => decision,
        Err(_) => Decision::Drop(DropReason::SenderLimit),
    }
}

/// Whose allowance `decision` spends (the `From` address in lowercase), if any.
pub fn spender(decision: &Decision) -> Option<String> {
    match decision {
        Decision::Thread { written, .. } | Decision::New { written, .. } => Some(written.from.to_ascii_lowercase()),
        Decision::Drop(_) | Decision::Bounce { .. } => None,
    }
}

/// A sender's allowance of `per_hour` mails: all of them at once, then one each
/// `1 h / per_hour` as the hour passes.
pub fn sender_allowance(per_hour: u32) -> GuessLimit {
    let per_hour = per_hour.max(1);
    GuessLimit {
        burst: per_hour,
        refill: Duration::from_secs(3600) / per_hour,
    }
}

/// A delivery status notification: `multipart/report; report-type=delivery-status`, or a
/// mail from a mailer daemon.
fn is_delivery_report(mail: &MailFields) -> bool {
    let report = mail
        .content_type
        .as_deref()
        .is_some_and(|t| t.eq_ignore_ascii_case("multipart/report"))
        && mail
            .report_type
            .as_deref()
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("delivery-status"));
    let daemon = mail.from.as_deref().is_some_and(|from| {
        let local = from.trim().rsplit_once('@').map_or(from, |(l, _)| l);
        local.eq_ignore_ascii_case("mailer-daemon") || local.eq_ignore_ascii_case("postmaster")
    });
    report || daemon
}

/// The header that marks `mail` as sent by a machine, if one does.
fn automatic(mail: &MailFields) -> Option<&'static str> {
    if let Some(value) = &mail.auto_submitted {
        // `no` (with optional comment or parameters) is the only value a person's mail has.
        let value = value.split([';', '(']).next().unwrap_or("").trim();
        if !value.eq_ignore_ascii_case("no") {
            return Some("Auto-Submitted");
        }
    }
    if let Some(value) = &mail.precedence {
        let value = value.trim().to_ascii_lowercase();
        if matches!(value.as_str(), "bulk" | "junk" | "list" | "auto_reply") {
            return Some("Precedence");
        }
    }
    mail.x_autoreply.then_some("X-Autoreply")
}

/// Whether `token` has the shape of a reply token: [`TOKEN_LEN`] characters of lowercase
/// base32 (`a`-`z`, `2`-`7`).
pub fn has_a_tokens_shape(token: &str) -> bool {
    token.len() == TOKEN_LEN
        && token
            .bytes()
            .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b))
}

/// `local+token@domain` among `recipients` for the desk's `local@domain`: the tokens that
/// have a token's shape, lowercase, each once, in the order found.
pub fn reply_tokens(recipients: &[String], local: &str, domain: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    for address in recipients {
        let (their_local, their_domain) = split_address(address.trim());
        if !their_domain.eq_ignore_ascii_case(domain) {
            continue;
        }
        let Some((base, token)) = their_local.split_once('+') else {
            continue;
        };
        let token = token.to_ascii_lowercase();
        if base.eq_ignore_ascii_case(local) && has_a_tokens_shape(&token) && !tokens.contains(&token) {
            tokens.push(token);
        }
    }
    tokens
}

/// The category for a new conversation: the first recipient with a route (plus-address
/// detail ignored), else the default.
fn category_for(mail: &MailFields, desk: &Desk) -> String {
    for address in &mail.recipients {
        let (local, domain) = split_address(address.trim());
        let base = local.split_once('+').map_or(local, |(base, _)| base);
        if let Some((_, category)) = desk.routes.iter().find(|(route, _)| {
            let (r_local, r_domain) = split_address(route.trim());
            r_local.eq_ignore_ascii_case(base) && r_domain.eq_ignore_ascii_case(domain)
        }) {
            return category.clone();
        }
    }
    desk.default_category.clone()
}

/// `local@domain` split at its last `@` (no `@`: all local).
pub fn split_address(address: &str) -> (&str, &str) {
    address.rsplit_once('@').unwrap_or((address, ""))
}

/// What the agent sees of a mail's text: quoted history (`>` lines, an "On … wrote:" or
/// "Am … schrieb:" line and all after it, an Outlook "Original Message" block) and the
/// signature (from a `-- ` line on) cut away, blank lines at either end trimmed.
pub fn readable_text(text: &str) -> String {
    let text = text.replace("\r\n", "\n");
    let lines: Vec<&str> = text.lines().collect();
    let mut kept: Vec<&str> = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim();
        if line.trim_end() == "--" || history_starts(trimmed, lines.get(i + 1).map(|l| l.trim())) {
            break;
        }
        if trimmed.starts_with('>') {
            continue;
        }
        kept.push(line.trim_end());
    }
    while kept.last().is_some_and(|l| l.is_empty()) {
        kept.pop();
    }
    let first = kept.iter().position(|l| !l.is_empty()).unwrap_or(kept.len());
    kept[first..].join("\n")
}

/// Whether the quoted history begins at `line` (with `next`, for an attribution line a
/// client wrapped in two).
fn history_starts(line: &str, next: Option<&str>) -> bool {
    let lower = line.to_lowercase();
    if lower.starts_with("-----original message-----") || lower.starts_with("-----ursprüngliche nachricht-----") {
        return true;
    }
    let attribution = |l: &str| {
        let l = l.to_lowercase();
        // German and French clients put the sender between the verb and the colon.
        l.ends_with("wrote:") || l.ends_with(':') && (l.contains(" schrieb") || l.contains(" a écrit"))
    };
    let opens = lower.starts_with("on ") || lower.starts_with("am ") || lower.starts_with("le ");
    opens && (attribution(line) || next.is_some_and(|n| !n.is_empty() && attribution(n)))
}

/// The key that makes a mail fetched twice count once: its `Message-ID`, else a hash of
/// the raw mail.
pub fn idempotence_key(message_id: Option<&str>, raw: &[u8]) -> String {
    match message_id.map(str::trim).filter(|id| !id.is_empty()) {
        Some(id) => format!("id:{id}"),
        None => format!("sha256:{}", hex::encode(Sha256::digest(raw))),
    }
}

#[cfg(test)]
mod tests;
