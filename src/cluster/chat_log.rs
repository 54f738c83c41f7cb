//! Chat messages between nodes (`docs/cluster.md` §7): each chat's messages are
//! stamped by one fenced script (`lua/chat_message.lua`) that draws the chat's next seq,
//! appends the message to the chat's log (a bounded stream) and publishes it to the node
//! of the other side; a receiver that finds a gap in seq reads the log. Typing and draft
//! preview are publish-only (`lua/chat_signal.lua`). Every node subscribes to its own
//! channel, [`node_channel`].

use std::sync::LazyLock;

use redis::Script;
use redis::aio::ConnectionManager;
use redis::streams::StreamRangeReply;
use serde::{Deserialize, Serialize};

use super::buddy_line::BuddyLine;
use super::routing_replies::MalformedReply;
use super::routing_scripts::ClusterRoutingError;
use crate::core::routing::{ChatId, Party};
use crate::store::Via;

static MESSAGE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("lua/fencing.lua"),
        include_str!("lua/chat_resend.lua"),
        include_str!("lua/chat_message.lua")
    ))
});
static SIGNAL: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/chat_signal.lua")));

/// The key every script names, routing it to the `{sb}` slot.
const ROUTING_KEY: &str = "{sb}:counter";
/// Messages a chat's log keeps: the transcript bound a node keeps for resume, too.
pub const LOG_BOUND: usize = 1_000;
/// How long a chat's log and seq outlive its last message, in seconds (nothing deletes
/// them when the chat ends: a late gap fill may still read them). A day.
pub(crate) const LOG_LIFETIME_SECS: u64 = 86_400;

/// The pub/sub channel of one node: chat messages, typing and drafts for its people.
pub fn node_channel(node: &str) -> String {
    format!("{{sb}}:to:{node}")
}

/// One stamped chat message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatLine {
    pub chat: ChatId,
    pub seq: u64,
    pub id: String,
    pub at: i64,
    pub from: Party,
    pub text: String,
    pub client_id: Option<String>,
    /// The files it carries, as the JSON array of their metadata (`attachments::AttachmentMeta`);
    /// empty for none.
    pub files: String,
    /// How it came other than over the chat (a customer's mail), as the log carries it.
    pub via: Option<Via>,
}

/// `via` as a chat's log and a node's channel carry it: empty for none.
fn via_word(via: Option<Via>) -> &'static str {
    match via {
        None => "",
        Some(Via::Email) => "email",
        Some(Via::Bot) => "bot",
    }
}

/// [`via_word`] read back; anything else (a log written before the mark) is none.
fn via_of(word: &str) -> Option<Via> {
    match word {
        "email" => Some(Via::Email),
        "bot" => Some(Via::Bot),
        _ => None,
    }
}

impl ChatLine {
    /// The files it carries. Written by a node of this desk; unreadable only if the log
    /// was tampered with, and then the line goes on without its files rather than not at all.
    pub fn attachments(&self) -> Vec<crate::attachments::AttachmentMeta> {
        crate::attachments::files_from_json(&self.files, format_args!("chat {} seq {}", self.chat.0, self.seq))
    }

    /// A customer's line `seq` of `chat` (id `m<seq>`, text `line <seq>`), for tests that
    /// need lines and care only for their seqs.
    #[cfg(test)]
    pub(crate) fn for_test(chat: ChatId, seq: u64) -> Self {
        ChatLine {
            chat,
            seq,
            id: format!("m{seq}"),
            at: 1_000,
            from: Party::Customer,
            text: format!("line {seq}"),
            client_id: None,
            files: String::new(),
            via: None,
        }
    }
}

/// What arrives on a node's channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeMessage {
    Line(ChatLine),
    Typing {
        chat: ChatId,
        from: Party,
        active: bool,
    },
    Draft {
        chat: ChatId,
        text: String,
    },
    /// Typing in a buddy chat (its wire id), by buddy `from`: published by the typist's
    /// node to the nodes holding the peer's pages (docs/cluster.md §15).
    BuddyTyping {
        chat: String,
        from: u64,
        active: bool,
    },
    /// A buddy chat message, published by its sender's node once kept there
    /// (`cluster::buddy_chat_log`).
    BuddyLine(BuddyLine),
}

/// The JSON on a node's channel (`k` tells the kind; the message's fields are strings, as
/// Lua's `cjson` would otherwise print numbers in its own format).
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "k")]
enum Wire {
    #[serde(rename = "m")]
    Message {
        chat: String,
        seq: String,
        id: String,
        at: String,
        from: String,
        text: String,
        client: String,
        /// Absent from what a node of an earlier version published.
        #[serde(default)]
        files: String,
        /// As [`via_word`] writes it; absent from what a node of an earlier version published.
        #[serde(default)]
        via: String,
    },
    #[serde(rename = "typing")]
    Typing { chat: String, from: String, active: bool },
    #[serde(rename = "draft")]
    Draft { chat: String, text: String },
    #[serde(rename = "btyping")]
    BuddyTyping { chat: String, from: String, active: bool },
    #[serde(rename = "bm")]
    BuddyLine(BuddyLine),
}

/// A buddy chat message as a node's channel carries it.
pub(super) fn buddy_line_payload(line: &BuddyLine) -> String {
    serde_json::to_string(&Wire::BuddyLine(line.clone())).expect("a buddy line is JSON")
}

fn side(from: Party) -> &'static str {
    match from {
        Party::Customer => "customer",
        _ => "agent",
    }
}

fn party(word: &str) -> Option<Party> {
    match word {
        "customer" => Some(Party::Customer),
        "agent" => Some(Party::Agent),
        _ => None,
    }
}

#[allow(clippy::too_many_arguments)]
fn line(
    chat: &str,
    seq: &str,
    id: String,
    at: &str,
    from: &str,
    (text, files, via): (String, String, &str),
    client: String,
) -> Option<ChatLine> {
    Some(ChatLine {
        files,
        via: via_of(via),
        chat: ChatId(chat.parse().ok()?),
        seq: seq.parse().ok()?,
        id,
        at: at.parse().ok()?,
        from: party(from)?,
        text,
        client_id: (!client.is_empty()).then_some(client),
    })
}

/// Reads what arrived on a node's channel; `None` for anything malformed.
pub fn parse_node_message(payload: &str) -> Option<NodeMessage> {
    match serde_json::from_str::<Wire>(payload).ok()? {
        Wire::Message {
            chat,
            seq,
            id,
            at,
            from,
            text,
            client,
            files,
            via,
        } => line(&chat, &seq, id, &at, &from, (text, files, &via), client).map(NodeMessage::Line),
        Wire::Typing { chat, from, active } => Some(NodeMessage::Typing {
            chat: ChatId(chat.parse().ok()?),
            from: party(&from)?,
            active,
        }),
        Wire::Draft { chat, text } => Some(NodeMessage::Draft {
            chat: ChatId(chat.parse().ok()?),
            text,
        }),
        Wire::BuddyTyping { chat, from, active } => Some(NodeMessage::BuddyTyping {
            chat,
            from: from.parse().ok()?,
            active,
        }),
        Wire::BuddyLine(line) => Some(NodeMessage::BuddyLine(line)),
    }
}

/// A line as a node's claim after Redis lost its data writes it back into its chat's log
/// (`lua/restore.lua`'s `claim`): chat, seq, side, id, time, text, client id, files, via.
pub(crate) fn claim_fields(line: &ChatLine) -> [String; 9] {
    [
        line.chat.0.to_string(),
        line.seq.to_string(),
        side(line.from).to_string(),
        line.id.clone(),
        line.at.to_string(),
        line.text.clone(),
        line.client_id.clone().unwrap_or_default(),
        line.files.clone(),
        via_word(line.via).to_string(),
    ]
}

/// What stamping a message gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    pub seq: u64,
    /// The id and time of the message first stamped with this seq when the client sent it
    /// again (same client id and text, within the script's `CLIENT_RESEND_SECS`): it is
    /// that message, acknowledged as it was stamped. `None` for a message stamped now.
    pub first: Option<(String, i64)>,
}

/// Stamps a message of `chat` sent by `sender` (its customer id or agent id, the `from`
/// side): fenced by `(node, incarnation)`. Returns its stamp once it is in the chat's log.
#[allow(clippy::too_many_arguments)]
pub async fn append(
    conn: &mut ConnectionManager,
    node: &str,
    incarnation: u64,
    chat: ChatId,
    from: Party,
    sender: &str,
    id: &str,
    at: i64,
    text: &str,
    client_id: Option<&str>,
) -> Result<Stamp, ClusterRoutingError> {
    let message = Outgoing {
        chat,
        from,
        sender,
        id,
        at,
        text,
        client_id,
        files: "",
        via: None,
    };
    let mut answers = append_many(conn, node, incarnation, &[message]).await?;
    answers.pop().expect("one answer to one message")
}

/// One message of [`append_many`]: what [`append`] takes after the node.
#[derive(Debug, Clone)]
pub struct Outgoing<'a> {
    pub chat: ChatId,
    pub from: Party,
    pub sender: &'a str,
    pub id: &'a str,
    pub at: i64,
    pub text: &'a str,
    pub client_id: Option<&'a str>,
    /// The files' metadata as a JSON array; empty for none.
    pub files: &'a str,
    /// How it came other than over the chat (a customer's mail).
    pub via: Option<Via>,
}

/// The most messages [`append_many`] sends in one pipeline: a node's messages waiting
/// while the previous round trip was out (a few at a time unless it is busy), bounded so
/// one reply stays small and the first message of a burst is not held behind the rest.
pub const APPEND_BATCH: usize = 64;

/// [`append`] for several messages in one round trip: one pipeline of the script's calls,
/// run by Redis in order (so in the order given, as one call after another would be), and
/// each message's own answer. `Err` when the pipeline itself failed (a connection error):
/// none, some or all may have been stamped, and sending them all again is safe (the script
/// stamps a message id once). A Redis without the script (restarted) is given it and
/// asked again.
pub async fn append_many(
    conn: &mut ConnectionManager,
    node: &str,
    incarnation: u64,
    messages: &[Outgoing<'_>],
) -> Result<Vec<Result<Stamp, ClusterRoutingError>>, ClusterRoutingError> {
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    for m in messages {
        pipe.cmd("EVALSHA")
            .arg(MESSAGE.get_hash())
            .arg(1)
            .arg(ROUTING_KEY)
            .arg(node)
            .arg(incarnation)
            .arg(m.chat.0)
            .arg(side(m.from))
            .arg(m.sender)
            .arg(m.id)
            .arg(m.at)
            .arg(m.text)
            .arg(m.client_id.unwrap_or(""))
            .arg(LOG_BOUND)
            .arg(LOG_LIFETIME_SECS)
            .arg(m.files)
            .arg(via_word(m.via));
    }
    let no_script = |replies: &[redis::RedisResult<redis::Value>]| {
        replies
            .iter()
            .any(|r| matches!(r, Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript)))
    };
    let mut replies: Vec<redis::RedisResult<redis::Value>> = pipe.query_async(conn).await?;
    if no_script(&replies) {
        MESSAGE.prepare_invoke().load_async(conn).await?;
        replies = pipe.query_async(conn).await?;
    }
    if replies.len() != messages.len() {
        return Err(MalformedReply(format!("{} answers to {} messages", replies.len(), messages.len())).into());
    }
    Ok(replies
        .into_iter()
        .map(|reply| stamp_of(reply?).ok_or_else(|| MalformedReply("a message's stamp".into()).into()))
        .collect())
}

/// The script's reply: a seq, or `{seq, id, time}` of the message sent again.
fn stamp_of(reply: redis::Value) -> Option<Stamp> {
    use redis::FromRedisValue;
    match reply {
        redis::Value::Int(seq) => Some(Stamp {
            seq: u64::try_from(seq).ok()?,
            first: None,
        }),
        redis::Value::Array(items) => {
            let (seq, id, at): (u64, String, String) =
                FromRedisValue::from_redis_value(redis::Value::Array(items)).ok()?;
            Some(Stamp {
                seq,
                first: Some((id, at.parse().ok()?)),
            })
        }
        _ => None,
    }
}

/// Publishes a typing flag or a draft to the other side's node, if another node.
pub async fn signal(
    conn: &mut ConnectionManager,
    node: &str,
    chat: ChatId,
    from: Party,
    what: &NodeMessage,
) -> Result<(), ClusterRoutingError> {
    let wire = match what {
        NodeMessage::Typing { chat, from, active } => Wire::Typing {
            chat: chat.0.to_string(),
            from: side(*from).into(),
            active: *active,
        },
        NodeMessage::Draft { chat, text } => Wire::Draft {
            chat: chat.0.to_string(),
            text: text.clone(),
        },
        NodeMessage::Line(_) | NodeMessage::BuddyTyping { .. } | NodeMessage::BuddyLine(_) => return Ok(()),
    };
    let payload = serde_json::to_string(&wire).map_err(|e| MalformedReply(e.to_string()))?;
    let _: i64 = SIGNAL
        .key(ROUTING_KEY)
        .arg(node)
        .arg(chat.0)
        .arg(side(from))
        .arg(payload)
        .invoke_async(conn)
        .await?;
    Ok(())
}

/// Publishes a buddy chat's typing flag to `nodes` (their channels, one pipeline): no
/// script, since Redis knows nothing of buddies; the caller's replica of the buddy list
/// names the nodes holding the peer. Losing one is harmless, as for every typing flag.
pub async fn publish_buddy_typing(
    conn: &mut ConnectionManager,
    nodes: &[String],
    chat: &str,
    from: u64,
    active: bool,
) -> redis::RedisResult<()> {
    let wire = Wire::BuddyTyping {
        chat: chat.to_string(),
        from: from.to_string(),
        active,
    };
    let payload = serde_json::to_string(&wire).expect("a typing flag is JSON");
    let mut pipe = redis::pipe();
    for node in nodes {
        pipe.cmd("PUBLISH").arg(node_channel(node)).arg(&payload).ignore();
    }
    pipe.query_async::<()>(conn).await
}

/// What a read of a chat's log found.
#[derive(Debug, Default)]
pub struct LogRead {
    /// Its messages with a seq above the read's `after`, in seq order, each once.
    pub lines: Vec<ChatLine>,
    /// The chat is restored after Redis lost its data and a side's node has not claimed it
    /// yet (`{sb}:chat-pending:<chat>`): its claim may still write back lines into a hole
    /// of the log, so nothing is to be skipped for now (every node reads again once every
    /// claim is in).
    pub restoring: bool,
}

impl LogRead {
    /// The read's lines in seq order, each with the seq a reader may go on after before
    /// taking it (`Some(seq - 1)`; `None` while [`restoring`](Self::restoring)). Every
    /// line the log holds above the read's `after` is in the read, so a seq the read lacks
    /// below one of its lines is in no log any more: below its first line, trimmed past
    /// the bound or lost with Redis's data; between two of its lines, a hole the nodes'
    /// claims left after that loss (each writes back its own lines, and one holding older
    /// lines than another's leaves one), which nothing fills once every claim is in. A
    /// reader steps over each hole and takes every line around it: one at 4 of a log
    /// holding 1..7 and 9..24 takes 5..7, skips 8, and takes 9..24.
    pub fn in_order(self) -> impl Iterator<Item = (Option<u64>, ChatLine)> {
        let settled = !self.restoring;
        self.lines
            .into_iter()
            .map(move |line| (settled.then(|| line.seq.saturating_sub(1)), line))
    }
}

/// The messages of `chat`'s log with a seq above `after`, in seq order, and whether its
/// claims are still coming.
pub async fn read_after(
    conn: &mut ConnectionManager,
    chat: ChatId,
    after: u64,
) -> Result<LogRead, ClusterRoutingError> {
    let (reply, restoring): (StreamRangeReply, bool) = redis::pipe()
        .atomic()
        .cmd("XRANGE")
        .arg(format!("{{sb}}:chat-log:{}", chat.0))
        .arg("-")
        .arg("+")
        .cmd("EXISTS")
        .arg(format!("{{sb}}:chat-pending:{}", chat.0))
        .query_async(conn)
        .await?;
    let mut all = Vec::with_capacity(reply.ids.len());
    for entry in reply.ids {
        let field = |name: &str| entry.get::<String>(name).unwrap_or_default();
        let parsed = line(
            &chat.0.to_string(),
            &field("s"),
            field("i"),
            &field("t"),
            &field("f"),
            (field("x"), field("a"), &field("v")),
            field("c"),
        )
        .ok_or_else(|| MalformedReply(format!("chat log entry {}", entry.id)))?;
        all.push(parsed);
    }
    Ok(sorted_after(all, after, restoring))
}

/// The lines of a log (written back in turn after a restore: in seq order only per claim)
/// above `after`, sorted, each seq once.
fn sorted_after(mut all: Vec<ChatLine>, after: u64, restoring: bool) -> LogRead {
    all.retain(|line| line.seq > after);
    all.sort_by_key(|line| line.seq);
    all.dedup_by_key(|line| line.seq);
    LogRead { lines: all, restoring }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_steps_over_each_hole_of_a_log_once_its_claims_are_in() {
        let read = |seqs: &[u64], after: u64, restoring: bool| {
            let read = sorted_after(
                seqs.iter().rev().map(|s| ChatLine::for_test(ChatId(1), *s)).collect(),
                after,
                restoring,
            );
            read.in_order()
                .map(|(floor, line)| (floor, line.seq))
                .collect::<Vec<_>>()
        };
        assert_eq!(read(&[], 0, false), []);
        assert_eq!(read(&[4], 0, false), [(Some(3), 4)], "below the log: in no log");
        assert_eq!(read(&[3, 4, 5], 0, false), [(Some(2), 3), (Some(3), 4), (Some(4), 5)]);
        // A claim wrote back older lines than another's: the hole between (3..5) is in no
        // log, and the lines on either side are read.
        assert_eq!(
            read(&[1, 2, 6, 7], 0, false),
            [(Some(0), 1), (Some(1), 2), (Some(5), 6), (Some(6), 7)]
        );
        // After the claims, with 1..7 and 9..24 in the log, a read after 4: 5..7 (nothing
        // to step over), then 9 past the hole at 8, then 10..24.
        let log: Vec<u64> = (1..=7).chain(9..=24).collect();
        let after_four = read(&log, 4, false);
        assert_eq!(
            after_four.iter().map(|(_, seq)| *seq).collect::<Vec<_>>(),
            (5..=7).chain(9..=24).collect::<Vec<_>>()
        );
        assert!(after_four.iter().all(|(floor, seq)| *floor == Some(seq - 1)));
        // While the claims are coming nothing is stepped over.
        assert!(read(&log, 4, true).iter().all(|(floor, _)| floor.is_none()));
    }

    #[test]
    fn what_lua_publishes_reads_back() {
        // As cjson prints it: strings throughout, '/' escaped.
        let payload =
            r#"{"k":"m","chat":"12","seq":"3","id":"u-1","at":"1700","from":"agent","text":"a\/b \"q\"","client":""}"#;
        assert_eq!(
            parse_node_message(payload),
            Some(NodeMessage::Line(ChatLine {
                chat: ChatId(12),
                seq: 3,
                id: "u-1".into(),
                at: 1700,
                from: Party::Agent,
                text: "a/b \"q\"".into(),
                client_id: None,
                files: String::new(),
                via: None,
            }))
        );
        assert_eq!(parse_node_message("{\"k\":\"m\"}"), None);
        let typing = r#"{"k":"typing","chat":"4","from":"customer","active":true}"#;
        assert_eq!(
            parse_node_message(typing),
            Some(NodeMessage::Typing {
                chat: ChatId(4),
                from: Party::Customer,
                active: true
            })
        );
        let buddy = r#"{"k":"btyping","chat":"01a2-c","from":"7","active":false}"#;
        assert_eq!(
            parse_node_message(buddy),
            Some(NodeMessage::BuddyTyping {
                chat: "01a2-c".into(),
                from: 7,
                active: false
            })
        );
        assert_eq!(
            parse_node_message(r#"{"k":"btyping","chat":"c","from":"x","active":true}"#),
            None
        );
    }
}
