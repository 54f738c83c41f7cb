//! Buddy chat messages between nodes (docs/cluster.md §15): each buddy chat has a log of
//! its own, like a customer chat's (§7), and a message is stamped there by one fenced
//! script (`lua/buddy_message.lua`) with its seq and `p`, the routing events stream's
//! newest entry when it was stamped, which places it in the stream's one order. Redis
//! decides nothing about buddies: each node's replica keeps or drops a line by where `p`
//! falls against its chat's end ([`crate::core::presence::stamps`]), and the sender's node
//! publishes a kept line to the nodes holding either member or archiving the chat. A node
//! that starts needing a chat, or finds a gap, reads its log ([`read_after`]).

use std::sync::LazyLock;

use redis::aio::ConnectionManager;
use redis::streams::StreamRangeReply;
use redis::{AsyncCommands, Script};

use super::buddy_line::BuddyLine;
use super::chat_log::node_channel;
use super::routing_replies::MalformedReply;
use super::routing_scripts::{ClusterRoutingError, EVENTS_KEY};

static STAMP: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("lua/fencing.lua"),
        include_str!("lua/chat_resend.lua"),
        include_str!("lua/buddy_message.lua")
    ))
});
static CLAIM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("lua/fencing.lua"),
        include_str!("lua/chat_resend.lua"),
        include_str!("lua/buddy_claim.lua")
    ))
});

/// Messages a buddy chat's log keeps: more than the transcript a node keeps (500), so a
/// node that reads the log for a welcome finds at least what a welcome shows.
pub const LOG_BOUND: usize = 1_000;
/// How long a buddy chat's log and seq outlive its last message, in seconds (a day, as a
/// customer chat's).
const LOG_LIFETIME_SECS: u64 = super::chat_log::LOG_LIFETIME_SECS;

/// A message to stamp.
pub struct Outgoing<'a> {
    pub chat: &'a str,
    pub sender: u64,
    pub id: &'a str,
    pub at: i64,
    pub text: &'a str,
    pub client_id: Option<&'a str>,
    /// The highest seq of the chat this node has (the counter's floor).
    pub floor: u64,
    /// The files it carries (`attachments::files_json`), empty for none.
    pub files: &'a str,
}

/// What stamping gave a message: its seq and place, and its id and time (the first
/// one's, for a message sent again).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    pub seq: u64,
    pub p: String,
    pub id: String,
    pub at: i64,
}

/// Stamps `m` for `node` at `incarnation`; `Fenced` when that node is not alive.
pub async fn stamp(
    conn: &mut ConnectionManager,
    node: &str,
    incarnation: u64,
    m: &Outgoing<'_>,
) -> Result<Stamp, ClusterRoutingError> {
    let (seq, p, id, at): (String, String, String, String) = STAMP
        .key(EVENTS_KEY)
        .arg(node)
        .arg(incarnation)
        .arg(m.chat)
        .arg(m.sender)
        .arg(m.id)
        .arg(m.at)
        .arg(m.text)
        .arg(m.client_id.unwrap_or(""))
        .arg(m.floor)
        .arg(LOG_BOUND)
        .arg(LOG_LIFETIME_SECS)
        .arg(m.files)
        .invoke_async(conn)
        .await?;
    let bad = |what: &str| MalformedReply(format!("a buddy message's stamp: {what}"));
    Ok(Stamp {
        seq: seq.parse().map_err(|_| bad("seq"))?,
        p,
        id,
        at: at.parse().map_err(|_| bad("time"))?,
    })
}

/// Publishes a kept line to `nodes` (their channels, one pipeline).
pub async fn publish(conn: &mut ConnectionManager, nodes: &[String], line: &BuddyLine) -> redis::RedisResult<()> {
    let payload = super::chat_log::buddy_line_payload(line);
    let mut pipe = redis::pipe();
    for node in nodes {
        pipe.cmd("PUBLISH").arg(node_channel(node)).arg(&payload).ignore();
    }
    pipe.query_async::<()>(conn).await
}

/// What a node holds of one running buddy chat when Redis lost its data, claimed in the
/// emptied Redis ([`claim`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuddyClaim {
    /// The chat's wire id.
    pub chat: String,
    /// The highest seq of it this node holds (kept, or held waiting).
    pub highest: u64,
    /// Its latest lines here, in seq order: written back to the log above the counter.
    pub lines: Vec<BuddyLine>,
}

/// Chats one claim call carries at most, and about how many bytes of lines: a node holding
/// many chats claims them in several calls, none of which holds Redis long (each line
/// written back is one `XADD`) or sends it a huge argument.
const CLAIM_CHATS_PER_CALL: usize = 200;
const CLAIM_BYTES_PER_CALL: usize = 1 << 20;

/// The set of the nodes whose buddy claims the restored domain waits for (`lua/restore.lua`).
pub const CLAIMS_PENDING_KEY: &str = "{sb}:bchat-pending";

/// `chats` in claim calls (at least one, the last marking the claim complete).
pub fn claim_calls(chats: &[BuddyClaim]) -> Vec<&[BuddyClaim]> {
    let mut calls = vec![];
    let (mut start, mut bytes) = (0, 0);
    for (i, chat) in chats.iter().enumerate() {
        let size: usize = chat
            .lines
            .iter()
            .map(|l| l.text.len() + l.files.len() + l.id.len() + 64)
            .sum::<usize>()
            + 64;
        if i > start && (i - start == CLAIM_CHATS_PER_CALL || bytes + size > CLAIM_BYTES_PER_CALL) {
            calls.push(&chats[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    calls.push(&chats[start..]);
    calls
}

/// Claims `chats` for `node` at `incarnation` after Redis lost its data
/// (`lua/buddy_claim.lua`): each chat's seq counter goes up to the highest a node holds,
/// and the lines above it are written back to its log. `last`: this node's last call (its
/// claim is complete; stamps wait for every node's).
pub async fn claim(
    conn: &mut ConnectionManager,
    node: &str,
    incarnation: u64,
    chats: &[BuddyClaim],
    last: bool,
) -> Result<(), ClusterRoutingError> {
    let body: Vec<serde_json::Value> = chats
        .iter()
        .map(|c| {
            let lines: Vec<serde_json::Value> = c
                .lines
                .iter()
                .map(|l| {
                    serde_json::json!([
                        l.seq,
                        l.p,
                        l.sender.to_string(),
                        l.id,
                        l.at.to_string(),
                        l.text,
                        l.client_id.as_deref().unwrap_or(""),
                        l.files
                    ])
                })
                .collect();
            serde_json::json!([c.chat, c.highest, lines])
        })
        .collect();
    let _: i64 = CLAIM
        .key(EVENTS_KEY)
        .arg(node)
        .arg(incarnation)
        .arg(serde_json::Value::Array(body).to_string())
        .arg(if last { "1" } else { "0" })
        .arg(LOG_BOUND)
        .arg(LOG_LIFETIME_SECS)
        .invoke_async(conn)
        .await?;
    Ok(())
}

/// A chat over and archived: its log and seq counter go [`LOG_LIFETIME_SECS`] later. (While
/// the chat runs the counter never expires: a counter started again from a node's `floor`
/// could give a seq the chat has.)
pub async fn expire(conn: &mut ConnectionManager, chat: &str) -> redis::RedisResult<()> {
    redis::pipe()
        .cmd("EXPIRE")
        .arg(format!("{{sb}}:bchat-seq:{chat}"))
        .arg(LOG_LIFETIME_SECS)
        .ignore()
        .cmd("EXPIRE")
        .arg(format!("{{sb}}:bchat-log:{chat}"))
        .arg(LOG_LIFETIME_SECS)
        .ignore()
        .query_async::<()>(conn)
        .await
}

/// What a read of a buddy chat's log found.
#[derive(Debug, Default)]
pub struct LogRead {
    /// Its lines with a seq above the read's `after`, in seq order.
    pub lines: Vec<BuddyLine>,
    /// The seq of the log's first line, if it holds any: what a node lacks below it is in
    /// no log any more (trimmed, or lost with Redis's data).
    pub first: Option<u64>,
    /// The seq of its newest line: a seq below it the log lacks is in no log either (a
    /// line lost with Redis's data that no node's claim wrote back).
    pub newest: Option<u64>,
}

/// The lines of `chat`'s log with a seq above `after`, and where the log starts.
pub async fn read_after(conn: &mut ConnectionManager, chat: &str, after: u64) -> Result<LogRead, ClusterRoutingError> {
    let reply: StreamRangeReply = conn.xrange_all(format!("{{sb}}:bchat-log:{chat}")).await?;
    let mut read = LogRead::default();
    for entry in reply.ids {
        let field = |name: &str| entry.get::<String>(name).unwrap_or_default();
        let (Ok(seq), Ok(sender), Ok(at)) = (field("s").parse(), field("w").parse(), field("t").parse()) else {
            return Err(MalformedReply(format!("buddy chat log entry {}", entry.id)).into());
        };
        // In seq order but for the lines nodes wrote back after Redis lost its data
        // (each node its own, in turn): sorted below.
        read.first = Some(read.first.map_or(seq, |first| first.min(seq)));
        read.newest = Some(read.newest.map_or(seq, |newest| newest.max(seq)));
        if seq > after {
            let client = field("c");
            read.lines.push(BuddyLine {
                chat: chat.to_string(),
                seq,
                p: field("p"),
                sender,
                id: field("i"),
                at,
                text: field("x"),
                client_id: (!client.is_empty()).then_some(client),
                files: field("a"),
            });
        }
    }
    read.lines.sort_by_key(|line| line.seq);
    read.lines.dedup_by_key(|line| line.seq);
    Ok(read)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(text_len: usize) -> BuddyClaim {
        BuddyClaim {
            chat: "c".into(),
            highest: 1,
            lines: vec![BuddyLine {
                chat: "c".into(),
                seq: 1,
                p: "0-0".into(),
                sender: 1,
                id: "i".into(),
                at: 0,
                text: "x".repeat(text_len),
                client_id: None,
                files: String::new(),
            }],
        }
    }

    #[test]
    fn claims_go_in_calls_of_at_most_200_chats_or_about_a_megabyte_and_at_least_one() {
        let sizes = |chats: &[BuddyClaim]| claim_calls(chats).iter().map(|c| c.len()).collect::<Vec<_>>();
        assert_eq!(sizes(&[]), [0], "one call, marking the claim complete");
        assert_eq!(sizes(&vec![claim(10); 450]), [200, 200, 50]);
        assert_eq!(sizes(&vec![claim(600_000); 3]), [1, 1, 1]);
        assert_eq!(
            sizes(&vec![claim(2_000_000); 2]),
            [1, 1],
            "a chat bigger than a call goes alone"
        );
    }
}
