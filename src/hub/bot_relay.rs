//! Bots on several nodes: a customer's bot stage lives on the customer's node (its hub
//! stamps the lines, runs the reply timer and hands over), while a bot's action may come
//! in at any node — a webhook bot's HTTP answer goes wherever the load balancer sends it.
//! The stage's node is recorded in Redis (`{sb}:bot-stage:<chat>` → node id) before the
//! bot hears of the conversation (`claim_stage`, by the webhook caller before its first
//! call); a node that does not hold the stage forwards the action there over that node's
//! bots channel (`{sb}:bots:to:<node>`) and answers the bot with what that node decided:
//! the same refusals, and a line's `ack` once it is durable there. Where it goes is
//! `core::bots::forwarded`'s rule; an action is forwarded once, never back.
//!
//! Pub/sub delivers at most once: a forwarded action whose answer does not come within
//! [`ANSWER_TIMEOUT`] is answered `cluster_unavailable` (it may have been carried out; a
//! line sent again with its `client_id` is the bot's to judge), and one published to a
//! node nobody listens for is `not_your_chat` when that node is gone (its stage died with
//! it), and `cluster_unavailable` while it is still registered (resubscribing after a
//! Redis blip): the bot tries again. A stage's record is deleted with its ticket when the
//! stage ends or is handed over on its node (a late action then finds no stage:
//! `not_your_chat`), and expires a day after in any case.
//!
//! A stage's node may die (kill -9) with its customer talking to the bot. The token of the
//! customer's `welcome` is then a **ticket** (`{sb}:bot-resume:<SHA-256 of the token>` →
//! the stage: its conversation, node and incarnation, bot, category, customer), recorded as
//! the stage starts and deleted as it ends on its node. A `resume` with that token on
//! another node takes the ticket once its node is no longer registered under that
//! incarnation (reaped), in one script (`take_ticket`), and hands the conversation over
//! there, into the category's line, with its lines as the store has them: every line
//! acknowledged was durable. While the dead node is not reaped yet the resume is refused
//! `cluster_unavailable` (close 1013), as any resume then; the customer tries again.
//!
//! A **socket bot** serves the customers of every node. The node holding its socket
//! records it (`{sb}:bot-socket:<bot>` → that node and its incarnation) as the socket
//! registers, and again every [`SOCKET_REASSERT`] and after a gap in its bots channel or a
//! loss of Redis's data (unless a socket on another live node holds it then), and deletes
//! the record (if it still names this node) as it goes. A joining
//! customer's node whose category names a bot with neither a socket there nor a webhook
//! looks the record up (`socket_of`): it counts while its node is registered under that
//! incarnation (`core::bots::socket_at`), so a dead or fenced node's record is nobody's.
//! The stage then lives on the customer's node as any; the bot's frames go to the
//! socket's node (`Wire::ToBot`), which hands them to the socket and notes which nodes
//! it serves, and the bot's actions on its socket are forwarded to the stage's node as an
//! HTTP answer is (`Forward`), in the order the bot sent them, answered on its socket with
//! the same `ack` or `error` frames. The socket gone (closed, replaced by nothing, its
//! node fenced), its node tells the nodes it served (`Wire::BotGone`), which hand those
//! customers over (`bot_gone`); its node dead, the nodes hand them over as its loss is
//! replayed, or as a frame for the bot finds nobody listening on that node's channel.
//! A newer socket of the bot, on any node, takes every socket-served conversation of the
//! bot's over (`Wire::TakeOver` to every node, answered `Wire::Held` with their views;
//! `hub::service::bots::welcome`).
//! Every Redis step of a stage (its ticket, its claim, its bot's frames, the socket's
//! record) goes through one ordered task per node ([`start_ops`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::delivery::{ConnHandle, ConnId, Outbound};
use super::{BotAct, Command, Hub, HubGone};
use crate::archive::Archive;
use crate::cluster::node::Cluster;
use crate::cluster::resume_tokens;
use crate::cluster::subscription::{self, Listener, Resubscribing};
use crate::core::bots::{Forwarded, SocketAt, forwarded, socket_at};
use crate::protocol::{BotConversation, ServerFrame};

/// How long a bot's line may take to be durable before the answer says it is not yet.
pub const DURABLE_WITHIN: Duration = Duration::from_secs(10);
/// How long a node waits for the stage's node to answer a forwarded action: its line's
/// durability wait and a margin.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a stage's record lives: well past any conversation with a bot.
const STAGE_TTL_SECS: u64 = 24 * 60 * 60;
/// How often a node records its bot sockets again (`Op::SocketAgain`, as after a gap in its
/// bots channel): a record lost otherwise (one write Redis refused, a key deleted by hand)
/// leaves the bot serving its own node's customers only for at most this long. One script
/// per connected bot per node each time; the lease's renewal, by comparison, is every second.
pub const SOCKET_REASSERT: Duration = Duration::from_secs(5);

/// The Redis key naming the node that holds `chat`'s bot stage.
pub fn stage_key(chat: &str) -> String {
    format!("{{sb}}:bot-stage:{chat}")
}

/// Node `node`'s bots channel: actions forwarded to it, answers to its own.
pub fn channel(node: &str) -> String {
    format!("{{sb}}:bots:to:{node}")
}

/// The Redis key naming the node (and its incarnation) that holds bot `bot`'s socket.
pub fn socket_key(bot: &str) -> String {
    format!("{{sb}}:bot-socket:{bot}")
}

/// Where a bot's socket was recorded.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SocketRecord {
    node: String,
    incarnation: u64,
}

/// Where bot `bot`'s socket is, for a customer of this node (which holds none): on a live
/// node under the incarnation it was recorded in, or nowhere.
pub async fn socket_of(cluster: &Cluster, bot: &str) -> redis::RedisResult<SocketAt> {
    let raw: Option<String> = redis::cmd("GET")
        .arg(socket_key(bot))
        .query_async(&mut cluster.conn())
        .await?;
    let Some(record) = raw.and_then(|raw| serde_json::from_str::<SocketRecord>(&raw).ok()) else {
        return Ok(SocketAt::Nowhere);
    };
    let registered: Option<String> = redis::cmd("HGET")
        .arg(crate::cluster::lease::NODES_KEY)
        .arg(&record.node)
        .query_async(&mut cluster.conn())
        .await?;
    let registered = registered.and_then(|r| r.parse().ok());
    Ok(socket_at(
        false,
        Some((&record.node, record.incarnation)),
        registered,
        cluster.node_id(),
    ))
}

/// KEYS: a bot's socket record; ARGV: this node. Deletes the record if it names this node
/// (a newer socket elsewhere keeps its own).
const FORGET_SOCKET: &str = r#"
local raw = redis.call('GET', KEYS[1])
if not raw then return 0 end
local ok, record = pcall(cjson.decode, raw)
if ok and record.node ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])
"#;

/// Records that this node holds `chat`'s bot stage; done before the bot is told of it, so
/// its answer finds the stage wherever it comes in.
pub async fn claim_stage(cluster: &Cluster, chat: &str) -> redis::RedisResult<()> {
    redis::cmd("SET")
        .arg(stage_key(chat))
        .arg(cluster.node_id())
        .arg("EX")
        .arg(STAGE_TTL_SECS)
        .query_async::<()>(&mut cluster.conn())
        .await
}

/// A customer's bot stage as recorded for a resume elsewhere after its node died.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ticket {
    pub chat: String,
    pub node: String,
    pub incarnation: u64,
    pub bot: String,
    pub category: String,
    pub name: String,
    pub profile: crate::store::CustomerProfile,
}

/// The Redis key listing the tickets (their keys) of node `node`'s bot stages, for the
/// node that takes it over should it die ([`take_lost_tickets`]).
pub fn tickets_key(node: &str) -> String {
    format!("{{sb}}:bot-tickets:{node}")
}

/// Records `ticket` under the customer's `token` (a stage starting on this node, or one
/// put back), listed under its node's tickets.
pub async fn record_ticket(cluster: &Cluster, token: &str, ticket: &Ticket) -> redis::RedisResult<()> {
    let value = serde_json::to_string(ticket).unwrap_or_default();
    let key = resume_tokens::bot_stage_key(token);
    let listed = tickets_key(&ticket.node);
    redis::pipe()
        .atomic()
        .cmd("SET")
        .arg(&key)
        .arg(value)
        .arg("EX")
        .arg(STAGE_TTL_SECS)
        .ignore()
        .cmd("SADD")
        .arg(&listed)
        .arg(&key)
        .ignore()
        .cmd("EXPIRE")
        .arg(&listed)
        .arg(STAGE_TTL_SECS)
        .ignore()
        .query_async::<()>(&mut cluster.conn())
        .await
}

/// Deletes the ticket of `token` (and its entry in this node's list) and the record of
/// `chat`'s stage (it ended or was handed over on its node).
pub async fn forget_ticket(cluster: &Cluster, token: &str, chat: &str) -> redis::RedisResult<()> {
    let key = resume_tokens::bot_stage_key(token);
    redis::pipe()
        .atomic()
        .cmd("DEL")
        .arg(&key)
        .arg(stage_key(chat))
        .ignore()
        .cmd("SREM")
        .arg(tickets_key(cluster.node_id()))
        .arg(&key)
        .ignore()
        .query_async::<()>(&mut cluster.conn())
        .await
}

/// Takes every ticket listed under dead node `lost` whose customer did not resume it
/// (each as a resume does, [`TAKE_TICKET`], so a late resume and this never both take
/// one, and off the list in the same script); tickets of a newer incarnation of that node
/// (restarted under the same id) stay. Those taken before Redis failed come back with the
/// error: the caller ends them and tries again for the rest.
pub async fn take_lost_tickets(cluster: &Cluster, lost: &str) -> (Vec<Ticket>, Option<redis::RedisError>) {
    let listed = tickets_key(lost);
    let keys: Vec<String> = match redis::cmd("SMEMBERS")
        .arg(&listed)
        .query_async(&mut cluster.conn())
        .await
    {
        Ok(keys) => keys,
        Err(e) => return (vec![], Some(e)),
    };
    let mut taken = vec![];
    for key in keys {
        let found: Option<String> = match redis::Script::new(TAKE_TICKET)
            .key(&key)
            .key(crate::cluster::lease::NODES_KEY)
            .key(&listed)
            .invoke_async(&mut cluster.conn())
            .await
        {
            Ok(found) => found,
            Err(e) => return (taken, Some(e)),
        };
        match found.as_deref() {
            // Resumed, ended or expired meanwhile; or a newer incarnation's.
            None | Some("alive") => {}
            Some(raw) => match serde_json::from_str(raw) {
                Ok(ticket) => taken.push(ticket),
                Err(e) => tracing::warn!(error = %e, "a dead node's bot ticket does not read; dropped"),
            },
        }
    }
    (taken, None)
}

/// One Redis step of the bots on this node, for [`start_ops`]'s task, in the hub's order.
pub enum Op {
    /// A stage's ticket recorded under the customer's token.
    Record(String, Box<Ticket>),
    /// The token, and the stage's conversation: ticket and claim deleted.
    Forget(String, String),
    /// This node holds the stage of this conversation ([`claim_stage`]): before its bot
    /// hears of it, so the bot's answer finds it wherever it comes in.
    Claim(String),
    /// Bot `0`'s socket is on this node now.
    SocketHere(String),
    /// Bot `0`'s socket here is gone.
    SocketGone(String),
    /// Bot `0`'s socket is still here after a gap in this node's subscription (Redis away
    /// or restarted empty meanwhile): recorded again, unless a socket on another live node
    /// holds the record now.
    SocketAgain(String),
    /// A frame for bot `bot`, whose socket is on node `node`, about conversation `chat`.
    ToBot {
        node: String,
        bot: String,
        chat: String,
        frame: String,
    },
    /// Tells node `node` that bot `bot`'s socket here is gone (or was never here).
    BotGone { node: String, bot: String },
    /// Bot `bot`'s newest socket is here (connection `conn`): every other node listening is
    /// told, to hand it their conversations of the bot's ([`Op::Held`]); the hub learns
    /// whom it waits for (`Command::BotAsked`).
    TakeOver { bot: String, conn: ConnId },
    /// The views of this node's conversations of bot `bot`, for its newest socket on node
    /// `node`: after the frames for it this node sent before.
    Held {
        node: String,
        bot: String,
        views: Vec<BotConversation>,
    },
    /// Bot `bot`'s action on its socket `to` for conversation `chat`, held by another
    /// node: forwarded there, in the order the bot sent it; the answer goes to the socket.
    Forward {
        forwarder: Arc<Forwarder>,
        bot: String,
        chat: String,
        act: BotAct,
        client_id: Option<String>,
        /// The refusal should no node hold the conversation.
        here: (&'static str, String),
        to: ConnHandle,
    },
}

/// Steps queued for the ops task at most: a few per stage and per bot line; a Redis this
/// far behind drops the newest (a ticket left expires; one missing only means that
/// customer goes to `resume_expired` should their node die; a bot frame dropped hands its
/// conversation over).
const OPS: usize = 4_096;

/// Starts the task that carries out the bots' Redis steps in the order given (one per
/// node); what it cannot deliver to another node's bot is told to the hub (`hub`).
pub(crate) fn start_ops(
    cluster: Cluster,
    hub: tokio::sync::mpsc::WeakSender<Command>,
) -> tokio::sync::mpsc::Sender<Op> {
    let (tx, mut rx) = tokio::sync::mpsc::channel(OPS);
    tokio::spawn(async move {
        while let Some(op) = rx.recv().await {
            if let Some(command) = carry_out(&cluster, op).await
                && let Some(hub) = hub.upgrade()
            {
                let _ = hub.send(command).await;
            }
        }
    });
    tx
}

/// One step; the hub's command when a bot's frame could not be delivered.
async fn carry_out(cluster: &Cluster, op: Op) -> Option<Command> {
    let done = match op {
        Op::Record(token, ticket) => record_ticket(cluster, &token, &ticket).await,
        Op::Forget(token, chat) => forget_ticket(cluster, &token, &chat).await,
        Op::Claim(chat) => claim_stage(cluster, &chat).await,
        Op::SocketHere(bot) => record_socket(cluster, &bot, false).await,
        Op::SocketAgain(bot) => record_socket(cluster, &bot, true).await,
        Op::SocketGone(bot) => redis::Script::new(FORGET_SOCKET)
            .key(socket_key(&bot))
            .arg(cluster.node_id())
            .invoke_async::<i64>(&mut cluster.conn())
            .await
            .map(|_| ()),
        Op::ToBot { node, bot, chat, frame } => {
            let wire = Wire::ToBot {
                from: cluster.node_id().to_string(),
                bot: bot.clone(),
                chat: chat.clone(),
                frame,
            };
            return match publish(cluster, &node, &wire).await {
                Ok(0) => {
                    // Nobody listens for that node: dead, or resubscribing; either way the
                    // bot cannot be reached now and nobody waits for it.
                    tracing::warn!(bot = %bot, node = %node, "a bot's node does not listen; its conversations are handed over");
                    Some(Command::RemoteBotGone { bot, node })
                }
                Ok(_) => None,
                Err(e) => {
                    tracing::warn!(bot = %bot, conversation = %chat, error = %e, "a frame for a bot on another node could not be sent; the conversation is handed over");
                    Some(Command::BotCallFailed { bot, chat_id: chat })
                }
            };
        }
        Op::BotGone { node, bot } => {
            let wire = Wire::BotGone {
                node: cluster.node_id().to_string(),
                bot,
            };
            publish(cluster, &node, &wire).await.map(|_| ())
        }
        Op::TakeOver { bot, conn } => {
            let nodes = match take_over(cluster, &bot).await {
                Ok(nodes) => nodes,
                Err(e) => {
                    // Its welcome lists this node's conversations; the others' go on with
                    // the sockets they had.
                    tracing::warn!(bot = %bot, error = %e, "the other nodes could not be told of a bot's newer socket");
                    vec![]
                }
            };
            return Some(Command::BotAsked { bot, conn, nodes });
        }
        Op::Held { node, bot, views } => {
            let wire = Wire::Held {
                from: cluster.node_id().to_string(),
                bot,
                views,
            };
            publish(cluster, &node, &wire).await.map(|_| ())
        }
        Op::Forward {
            forwarder,
            bot,
            chat,
            act,
            client_id,
            here,
            to,
        } => {
            let sent = forwarder.send(bot, chat, act, Err(here)).await;
            // The answer is awaited off this task: the next step need not wait for it.
            tokio::spawn(async move {
                let acted = match sent {
                    Ok(Sent::Answered(acted)) => Ok(acted),
                    Ok(Sent::Waiting(waiting)) => forwarder.answer(waiting).await,
                    Err(down) => Err(down),
                };
                if let Some(frame) = socket_answer(acted, client_id) {
                    to.send(Outbound::Frame(frame.into()));
                }
            });
            return None;
        }
    };
    if let Err(e) = done {
        tracing::warn!(error = %e, "a bot's record could not be changed in Redis (a ticket or claim left expires by itself)");
    }
    None
}

/// Tells every other registered node that bot `bot`'s newest socket is here: the nodes
/// that listen, which answer ([`Wire::Held`]).
async fn take_over(cluster: &Cluster, bot: &str) -> redis::RedisResult<Vec<String>> {
    let nodes: Vec<String> = redis::cmd("HKEYS")
        .arg(crate::cluster::lease::NODES_KEY)
        .query_async(&mut cluster.conn())
        .await?;
    let wire = Wire::TakeOver {
        node: cluster.node_id().to_string(),
        bot: bot.to_string(),
    };
    let mut asked = vec![];
    for node in nodes.into_iter().filter(|n| n != cluster.node_id()) {
        if publish(cluster, &node, &wire).await? > 0 {
            asked.push(node);
        }
    }
    Ok(asked)
}

/// Records that bot `bot`'s socket is on this node, under its incarnation now; `again`,
/// only if no socket on another live node holds the record.
async fn record_socket(cluster: &Cluster, bot: &str, again: bool) -> redis::RedisResult<()> {
    let Some(incarnation) = cluster.status().incarnation else {
        tracing::warn!(
            bot,
            "a bot connected to a node outside the cluster serves its customers alone"
        );
        return Ok(());
    };
    let record = SocketRecord {
        node: cluster.node_id().to_string(),
        incarnation,
    };
    let value = serde_json::to_string(&record).unwrap_or_default();
    if again {
        return redis::Script::new(RECORD_SOCKET_AGAIN)
            .key(socket_key(bot))
            .key(crate::cluster::lease::NODES_KEY)
            .arg(cluster.node_id())
            .arg(value)
            .invoke_async::<i64>(&mut cluster.conn())
            .await
            .map(|_| ());
    }
    redis::cmd("SET")
        .arg(socket_key(bot))
        .arg(value)
        .query_async::<()>(&mut cluster.conn())
        .await
}

/// KEYS: a bot's socket record, the node registry; ARGV: this node, its record. Records it
/// unless the record names another node registered under its incarnation (a newer socket).
const RECORD_SOCKET_AGAIN: &str = r#"
local raw = redis.call('GET', KEYS[1])
if raw then
  local ok, record = pcall(cjson.decode, raw)
  if ok and record.node ~= ARGV[1] and redis.call('HGET', KEYS[2], record.node) == tostring(record.incarnation) then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[2])
return 1
"#;

/// The frame a socket bot gets for an action carried out on another node: the `ack` once
/// the line is durable, or the `error` it would get on one node (`None`: nothing to say).
fn socket_answer(acted: Result<Acted, RelayDown>, client_id: Option<String>) -> Option<String> {
    let (code, message) = match acted {
        Ok(Ok(None)) => return None,
        Ok(Ok(Some(line))) if line.durable => return Some(line.ack),
        Ok(Ok(Some(_))) => (
            "not_yet_durable",
            "the line went to the customer, but the archive had not kept it within 10 s: do not send it again".into(),
        ),
        Ok(Err(refused)) => refused,
        Err(RelayDown::Gone) => (super::cluster::link::UNAVAILABLE, "this node is stopping".into()),
        Err(RelayDown::Unavailable(why)) => (super::cluster::link::UNAVAILABLE, why),
    };
    let frame = ServerFrame::Error {
        code,
        message,
        client_id,
    };
    Some(frame.encode().as_str().to_string())
}

/// What a resume found under its token.
#[derive(Debug)]
pub enum Taken {
    /// No ticket: no bot stage (or one that ended): `resume_expired`.
    None,
    /// The stage's node is still registered under its incarnation (alive, or dead and not
    /// reaped yet): try again shortly.
    NodeAlive,
    /// Taken: this node hands it over.
    Ticket(Box<Ticket>),
}

/// Takes the ticket of `token` if its node is no longer registered under its incarnation:
/// one script, so two resumes never both take it.
pub async fn take_ticket(cluster: &Cluster, token: &str) -> redis::RedisResult<Taken> {
    let script = redis::Script::new(TAKE_TICKET);
    let found: Option<String> = script
        .key(resume_tokens::bot_stage_key(token))
        .key(crate::cluster::lease::NODES_KEY)
        .invoke_async(&mut cluster.conn())
        .await?;
    Ok(match found.as_deref() {
        None => Taken::None,
        Some("alive") => Taken::NodeAlive,
        Some(raw) => match serde_json::from_str(raw) {
            Ok(ticket) => Taken::Ticket(Box::new(ticket)),
            Err(e) => {
                tracing::warn!(error = %e, "a bot stage's ticket does not read; the resume is expired");
                Taken::None
            }
        },
    })
}

/// KEYS: the ticket, the node registry, and (a dead node's sweep) the list it is taken
/// off unless its node is alive. The ticket (deleted), `alive`, or nil.
const TAKE_TICKET: &str = r#"
local raw = redis.call('GET', KEYS[1])
if raw then
  local ok, ticket = pcall(cjson.decode, raw)
  if ok and redis.call('HGET', KEYS[2], ticket.node) == tostring(ticket.incarnation) then
    return 'alive'
  end
  redis.call('DEL', KEYS[1])
end
if KEYS[3] then
  redis.call('SREM', KEYS[3], KEYS[1])
end
return raw
"#;

/// A bot's line as carried out: the `ack` frame (JSON) and whether it was durable within
/// [`DURABLE_WITHIN`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ActedLine {
    pub ack: String,
    pub durable: bool,
}

/// An action's outcome: a line, nothing to say (done), or the refusal's code and message.
pub type Acted = Result<Option<ActedLine>, (&'static str, String)>;

/// Why a forwarded action has no answer.
#[derive(Debug)]
pub enum RelayDown {
    /// This node's hub is stopping.
    Gone,
    /// Redis, or the stage's node, did not answer.
    Unavailable(String),
}

impl From<HubGone> for RelayDown {
    fn from(_: HubGone) -> Self {
        Self::Gone
    }
}

/// The refusal codes a bot's action may get, so a forwarded one keeps its code.
const CODES: &[&str] = &[
    "not_your_chat",
    "not_in_chat",
    "empty_message",
    "message_too_long",
    "archive_unavailable",
    "attachments_not_for_bots",
    "missing_chat_id",
    "not_allowed",
    "invalid_email",
];

fn known_code(code: &str) -> &'static str {
    CODES.iter().find(|c| **c == code).copied().unwrap_or("refused")
}

/// One message on a bots channel.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Wire {
    /// Bot `bot`'s action on `chat`, from node `from`, which awaits `Acted` with `req`.
    Act {
        req: u64,
        from: String,
        bot: String,
        chat: String,
        act: BotAct,
    },
    /// The answer to request `req`.
    Acted { req: u64, result: WireActed },
    /// A frame for bot `bot`'s socket on this node, about conversation `chat`, whose stage
    /// node `from` holds.
    ToBot {
        from: String,
        bot: String,
        chat: String,
        frame: String,
    },
    /// Bot `bot`'s socket on node `node` is gone: the conversations it held here go to
    /// their lines.
    BotGone { node: String, bot: String },
    /// Bot `bot`'s newest socket is on node `node`: a socket of it here closes (replaced)
    /// and the conversations of it served by a socket go to that one (`Held` answers).
    TakeOver { node: String, bot: String },
    /// Node `from`'s conversations of bot `bot`, for its newest socket here.
    Held {
        from: String,
        bot: String,
        views: Vec<BotConversation>,
    },
}

/// An action's outcome as it travels: the refusal's code and message as text.
type WireActed = Result<Option<ActedLine>, (String, String)>;

/// `act` by bot `bot` on `chat`, carried out by this node's hub: a line waits until it is
/// durable (up to [`DURABLE_WITHIN`]).
pub async fn act_here(hub: &Hub, archive: &Archive, bot: String, chat: String, act: BotAct) -> Result<Acted, HubGone> {
    let line = match hub.bot_act(bot, chat, act).await? {
        Ok(Some(line)) => line,
        Ok(None) => return Ok(Ok(None)),
        Err(refused) => return Ok(Err(refused)),
    };
    Ok(Ok(Some(durable(archive, line).await)))
}

async fn durable(archive: &Archive, line: super::BotLine) -> ActedLine {
    let durable = match line.archived {
        Some(seq) => {
            archive
                .written_through(seq, tokio::time::Instant::now() + DURABLE_WITHIN)
                .await
        }
        None => false,
    };
    ActedLine {
        ack: line.ack.as_str().to_string(),
        durable,
    }
}

/// Forwards a bot's actions to the node holding their stage and awaits the answers: the
/// HTTP API's (through [`BotRelay::act`]) and a socket bot's (the hub's [`Op::Forward`]).
/// Holds no hub, so the hub may hold it.
pub struct Forwarder {
    cluster: Cluster,
    /// Answers awaited from other nodes, by request id: random, so an answer meant for this
    /// node's previous process (same `NODE_ID`) never matches a request of this one.
    pending: Mutex<HashMap<u64, oneshot::Sender<WireActed>>>,
    /// This node stopping: a wait for another node's answer ends then, so neither the bot
    /// nor the stop waits out [`ANSWER_TIMEOUT`].
    shutdown: CancellationToken,
}

/// A forwarded action: answered already (not forwarded after all, or refused), or sent.
pub enum Sent {
    Answered(Acted),
    Waiting(Waiting),
}

/// A forwarded action's answer to come. Its entry in [`Forwarder::pending`] is removed
/// however the wait ends (the bot's HTTP request dropped included).
pub struct Waiting {
    forwarder: Arc<Forwarder>,
    req: u64,
    rx: Option<oneshot::Receiver<WireActed>>,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.forwarder
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.req);
    }
}

impl Forwarder {
    /// `act` by bot `bot` on `chat`, which this node's hub does not hold (`here`: its
    /// refusal): sent to the node that does, or `here` when none does.
    pub async fn send(
        self: &Arc<Self>,
        bot: String,
        chat: String,
        act: BotAct,
        here: Acted,
    ) -> Result<Sent, RelayDown> {
        let node = redis::cmd("GET")
            .arg(stage_key(&chat))
            .query_async::<Option<String>>(&mut self.cluster.conn())
            .await
            .map_err(|e| RelayDown::Unavailable(format!("Redis did not answer: {e}")))?;
        let node = match forwarded(false, node.as_deref(), self.cluster.node_id()) {
            Forwarded::Here | Forwarded::Nowhere => return Ok(Sent::Answered(here)),
            Forwarded::To(node) => node,
        };
        if self.shutdown.is_cancelled() {
            // Nothing sent: the bot tries again, at another node.
            return Err(RelayDown::Unavailable("this node is stopping; nothing was sent".into()));
        }
        let req: u64 = rand::random();
        let (tx, rx) = oneshot::channel();
        self.pending.lock().unwrap_or_else(|p| p.into_inner()).insert(req, tx);
        let waiting = Waiting {
            forwarder: self.clone(),
            req,
            rx: Some(rx),
        };
        let wire = Wire::Act {
            req,
            from: self.cluster.node_id().to_string(),
            bot,
            chat,
            act,
        };
        let sent = publish(&self.cluster, &node, &wire)
            .await
            .map_err(|e| RelayDown::Unavailable(format!("Redis did not take it: {e}")))?;
        if sent > 0 {
            return Ok(Sent::Waiting(waiting));
        }
        // Nobody listens for that node: gone (and its bot stages with it), or still
        // registered and resubscribing after a Redis blip (then the bot tries again).
        let registered: bool = redis::cmd("HEXISTS")
            .arg(crate::cluster::lease::NODES_KEY)
            .arg(&node)
            .query_async(&mut self.cluster.conn())
            .await
            .map_err(|e| RelayDown::Unavailable(format!("Redis did not answer: {e}")))?;
        if registered {
            Err(RelayDown::Unavailable(
                "the node holding this conversation is not listening right now; try again".into(),
            ))
        } else {
            Ok(Sent::Answered(Err((
                "not_your_chat",
                "the node that held this conversation is gone".to_string(),
            ))))
        }
    }

    /// What the node an action was sent to decided.
    pub async fn answer(&self, mut waiting: Waiting) -> Result<Acted, RelayDown> {
        let Some(rx) = waiting.rx.take() else {
            return Err(RelayDown::Unavailable("no answer awaited".into()));
        };
        let answer = tokio::select! {
            // An answer that came is taken over the stop that came with it.
            biased;
            answer = tokio::time::timeout(ANSWER_TIMEOUT, rx) => answer.ok().and_then(Result::ok),
            () = self.shutdown.cancelled() => {
                // The action went out: whether it was carried out is the other node's to say.
                return Err(RelayDown::Unavailable(
                    "this node is stopping before the node holding this conversation answered".into(),
                ));
            }
        };
        match answer {
            Some(result) => Ok(result.map_err(|(code, message)| (known_code(&code), message))),
            None => Err(RelayDown::Unavailable(
                "the node holding this conversation did not answer in time".into(),
            )),
        }
    }
}

struct Inner {
    hub: Hub,
    archive: Archive,
    forwarder: Arc<Forwarder>,
    /// [`BotRelay::connected`]'s single flight: the public category list asks it on every
    /// request, and a flood of them must cost Redis one look-up at a time.
    connected: crate::single_flight::SingleFlight<Vec<String>, std::collections::HashSet<String>>,
}

/// Bots' side of the cluster: forwards actions, carries out those forwarded here, hands
/// the frames for a bot's socket here to the hub. Cheap to clone.
#[derive(Clone)]
pub struct BotRelay(Arc<Inner>);

impl BotRelay {
    /// Starts listening on this node's bots channel until `shutdown`; the hub gets the
    /// forwarder for its socket bots' actions.
    pub fn start(cluster: Cluster, hub: Hub, archive: Archive, shutdown: CancellationToken) -> Self {
        let forwarder = Arc::new(Forwarder {
            cluster,
            pending: Mutex::default(),
            shutdown: shutdown.clone(),
        });
        let relay = Self(Arc::new(Inner {
            hub,
            archive,
            forwarder,
            connected: Default::default(),
        }));
        tokio::spawn(reassert_sockets(relay.0.hub.clone(), shutdown.clone()));
        let listening = relay.clone();
        tokio::spawn(async move {
            let cluster = listening.0.forwarder.cluster.clone();
            let _ = listening
                .0
                .hub
                .send(Command::BotForwarder(listening.0.forwarder.clone()))
                .await;
            let resubscribing = Resubscribing {
                timeout: Duration::from_secs(5),
                first_pause: Duration::from_millis(200),
                longest_pause: Duration::from_secs(5),
            };
            subscription::listen(
                &cluster,
                &channel(cluster.node_id()),
                "this node's bots channel",
                resubscribing,
                &listening,
                &shutdown,
            )
            .await;
        });
        relay
    }

    /// Those of `bots` whose socket is connected to a live node (this one or another).
    /// Redis unreachable: none (the pages say nobody is online until it answers again).
    pub async fn connected(&self, bots: Vec<String>) -> std::collections::HashSet<String> {
        let cluster = &self.0.forwarder.cluster;
        let asked = bots.clone();
        let answer = self.0.connected.get(asked, || async move {
            let mut connected = std::collections::HashSet::new();
            for bot in bots {
                if matches!(socket_of(cluster, &bot).await?, SocketAt::Node(_) | SocketAt::Here) {
                    connected.insert(bot);
                }
            }
            Ok::<_, redis::RedisError>(connected)
        });
        answer.await.unwrap_or_default()
    }

    /// `act` by bot `bot` on `chat`: carried out here when this node holds the stage,
    /// else forwarded to the node that does.
    pub async fn act(&self, bot: String, chat: String, act: BotAct) -> Result<Acted, RelayDown> {
        let here = act_here(&self.0.hub, &self.0.archive, bot.clone(), chat.clone(), act.clone()).await?;
        if !matches!(here, Err(("not_your_chat", _))) {
            return Ok(here);
        }
        match self.0.forwarder.send(bot, chat, act, here).await? {
            Sent::Answered(acted) => Ok(acted),
            Sent::Waiting(waiting) => self.0.forwarder.answer(waiting).await,
        }
    }
}

/// Has the hub record its bot sockets again every [`SOCKET_REASSERT`] until `shutdown`.
async fn reassert_sockets(hub: Hub, shutdown: CancellationToken) {
    // Not at once: the sockets were recorded as they registered.
    let mut ticks = crate::ticks::Ticks::after_one_period(SOCKET_REASSERT, &shutdown);
    while ticks.next().await {
        if hub.send(Command::BotSocketsAgain).await.is_err() {
            return;
        }
    }
}

async fn publish(cluster: &Cluster, node: &str, wire: &Wire) -> redis::RedisResult<i64> {
    let text = serde_json::to_string(wire).unwrap_or_default();
    redis::cmd("PUBLISH")
        .arg(channel(node))
        .arg(text)
        .query_async::<i64>(&mut cluster.conn())
        .await
}

impl Listener for BotRelay {
    async fn resubscribed(&self) {
        // An action lost in the gap is answered by its sender's timeout; a bot's frame
        // lost in it by the reply timer of the stage it was about. The sockets here are
        // recorded again: a record written while Redis was away, or lost with its data,
        // would leave them serving this node alone.
        let _ = self.0.hub.send(Command::BotSocketsAgain).await;
    }

    async fn received(&self, payload: String) {
        let Ok(wire) = serde_json::from_str::<Wire>(&payload) else {
            tracing::warn!("ignored a malformed message on this node's bots channel");
            return;
        };
        match wire {
            Wire::Acted { req, result } => {
                let waiting = self
                    .0
                    .forwarder
                    .pending
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&req);
                if let Some(tx) = waiting {
                    let _ = tx.send(result);
                }
            }
            Wire::Act {
                req,
                from,
                bot,
                chat,
                act,
            } => {
                // Handed to the hub here, in the channel's order; only the durability wait
                // and the answer go on in the background.
                let Ok(acted) = self.0.hub.bot_act(bot, chat, act).await else {
                    return;
                };
                let relay = self.clone();
                tokio::spawn(async move {
                    let result = match acted {
                        Ok(Some(line)) => Ok(Some(durable(&relay.0.archive, line).await)),
                        Ok(None) => Ok(None),
                        Err((code, message)) => Err((code.to_string(), message)),
                    };
                    let answer = Wire::Acted { req, result };
                    if let Err(e) = publish(&relay.0.forwarder.cluster, &from, &answer).await {
                        tracing::warn!(error = %e, node = %from, "a forwarded bot action's answer could not be sent");
                    }
                });
            }
            Wire::ToBot { from, bot, chat, frame } => {
                // In the channel's order, so the bot hears of a conversation's lines in theirs.
                let _ = self
                    .0
                    .hub
                    .send(Command::RemoteBotFrame {
                        from,
                        bot,
                        chat_id: chat,
                        frame,
                    })
                    .await;
            }
            Wire::BotGone { node, bot } => {
                let _ = self.0.hub.send(Command::RemoteBotGone { bot, node }).await;
            }
            Wire::TakeOver { node, bot } => {
                let _ = self.0.hub.send(Command::BotTakenOver { bot, to: node }).await;
            }
            Wire::Held { from, bot, views } => {
                let _ = self.0.hub.send(Command::BotHeld { bot, from, views }).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forwarded_action_travels_as_tagged_json() {
        let wire = Wire::Act {
            req: 7,
            from: "a".into(),
            bot: "Faq".into(),
            chat: "c1".into(),
            act: BotAct::Message {
                text: "hi".into(),
                client_id: Some("b1".into()),
            },
        };
        let text = serde_json::to_string(&wire).unwrap();
        assert_eq!(
            text,
            r#"{"kind":"act","req":7,"from":"a","bot":"Faq","chat":"c1","act":{"act":"message","text":"hi","client_id":"b1"}}"#
        );
        assert!(matches!(
            serde_json::from_str::<Wire>(&text).unwrap(),
            Wire::Act { req: 7, .. }
        ));
        assert_eq!(known_code("not_your_chat"), "not_your_chat");
        assert_eq!(known_code("something new"), "refused");
    }

    #[test]
    fn a_frame_for_a_bot_on_another_node_travels_verbatim() {
        let wire = Wire::ToBot {
            from: "b".into(),
            bot: "Faq".into(),
            chat: "c1".into(),
            frame: r#"{"type":"message"}"#.into(),
        };
        let text = serde_json::to_string(&wire).unwrap();
        assert_eq!(
            text,
            r#"{"kind":"to_bot","from":"b","bot":"Faq","chat":"c1","frame":"{\"type\":\"message\"}"}"#
        );
        match serde_json::from_str::<Wire>(&text).unwrap() {
            Wire::ToBot { frame, .. } => assert_eq!(frame, r#"{"type":"message"}"#),
            other => panic!("{other:?}"),
        }
        let gone = serde_json::to_string(&Wire::BotGone {
            node: "a".into(),
            bot: "Faq".into(),
        })
        .unwrap();
        assert_eq!(gone, r#"{"kind":"bot_gone","node":"a","bot":"Faq"}"#);
    }

    #[test]
    fn a_socket_bot_is_answered_as_on_one_node() {
        let line = |durable| ActedLine {
            ack: r#"{"type":"ack"}"#.into(),
            durable,
        };
        assert_eq!(socket_answer(Ok(Ok(None)), None), None);
        assert_eq!(
            socket_answer(Ok(Ok(Some(line(true)))), None).as_deref(),
            Some(r#"{"type":"ack"}"#)
        );
        let not_yet = socket_answer(Ok(Ok(Some(line(false)))), Some("b1".into())).unwrap();
        assert!(
            not_yet.contains("not_yet_durable") && not_yet.contains("b1"),
            "{not_yet}"
        );
        let refused = socket_answer(Ok(Err(("empty_message", "empty".into()))), None).unwrap();
        assert!(refused.contains(r#""code":"empty_message""#), "{refused}");
        let down = socket_answer(Err(RelayDown::Unavailable("Redis did not answer".into())), None).unwrap();
        assert!(down.contains("cluster_unavailable"), "{down}");
    }
}
