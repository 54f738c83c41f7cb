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

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::{BotAct, Hub, HubGone};
use crate::archive::Archive;
use crate::cluster::node::Cluster;
use crate::cluster::resume_tokens;
use crate::cluster::subscription::{self, Listener, Resubscribing};
use crate::core::bots::{Forwarded, forwarded};

/// How long a bot's line may take to be durable before the answer says it is not yet.
pub const DURABLE_WITHIN: Duration = Duration::from_secs(10);
/// How long a node waits for the stage's node to answer a forwarded action: its line's
/// durability wait and a margin.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a stage's record lives: well past any conversation with a bot.
const STAGE_TTL_SECS: u64 = 24 * 60 * 60;

/// The Redis key naming the node that holds `chat`'s bot stage.
pub fn stage_key(chat: &str) -> String {
    format!("{{sb}}:bot-stage:{chat}")
}

/// Node `node`'s bots channel: actions forwarded to it, answers to its own.
pub fn channel(node: &str) -> String {
    format!("{{sb}}:bots:to:{node}")
}

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

/// Records `ticket` under the customer's `token` (a stage starting on this node).
pub async fn record_ticket(cluster: &Cluster, token: &str, ticket: &Ticket) -> redis::RedisResult<()> {
    let value = serde_json::to_string(ticket).unwrap_or_default();
    redis::cmd("SET")
        .arg(resume_tokens::bot_stage_key(token))
        .arg(value)
        .arg("EX")
        .arg(STAGE_TTL_SECS)
        .query_async::<()>(&mut cluster.conn())
        .await
}

/// Deletes the ticket of `token` and the record of `chat`'s stage (it ended or was handed
/// over on its node).
pub async fn forget_ticket(cluster: &Cluster, token: &str, chat: &str) -> redis::RedisResult<()> {
    redis::cmd("DEL")
        .arg(resume_tokens::bot_stage_key(token))
        .arg(stage_key(chat))
        .query_async::<()>(&mut cluster.conn())
        .await
}

/// A change to a ticket, for [`start_tickets`]'s task: recorded under a token, or deleted.
#[derive(Debug)]
pub enum TicketOp {
    Record(String, Box<Ticket>),
    /// The token, and the stage's conversation.
    Forget(String, String),
}

/// Changes queued for the tickets' task at most: one per stage starting or ending; a
/// Redis this far behind drops the newest (a ticket left expires; one missing only means
/// that customer goes to `resume_expired` should their node die).
const TICKET_OPS: usize = 4_096;

/// Starts the task that applies ticket changes in the order given (one per node).
pub fn start_tickets(cluster: Cluster) -> tokio::sync::mpsc::Sender<TicketOp> {
    let (tx, mut rx) = tokio::sync::mpsc::channel(TICKET_OPS);
    tokio::spawn(async move {
        while let Some(op) = rx.recv().await {
            let done = match &op {
                TicketOp::Record(token, ticket) => record_ticket(&cluster, token, ticket).await,
                TicketOp::Forget(token, chat) => forget_ticket(&cluster, token, chat).await,
            };
            if let Err(e) = done {
                tracing::warn!(error = %e, "a bot stage's ticket could not be changed in Redis; it expires by itself");
            }
        }
    });
    tx
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

/// KEYS: the ticket, the node registry. The ticket (deleted), `alive`, or nil.
const TAKE_TICKET: &str = r#"
local raw = redis.call('GET', KEYS[1])
if not raw then return false end
local ok, ticket = pcall(cjson.decode, raw)
if ok and redis.call('HGET', KEYS[2], ticket.node) == tostring(ticket.incarnation) then
  return 'alive'
end
redis.call('DEL', KEYS[1])
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

struct Inner {
    cluster: Cluster,
    hub: Hub,
    archive: Archive,
    /// Answers awaited from other nodes, by request id: random, so an answer meant for this
    /// node's previous process (same `NODE_ID`) never matches a request of this one.
    pending: Mutex<HashMap<u64, oneshot::Sender<WireActed>>>,
    /// This node stopping: a wait for another node's answer ends then, so neither the bot
    /// nor the stop waits out [`ANSWER_TIMEOUT`].
    shutdown: CancellationToken,
}

/// A request's entry in [`Inner::pending`], removed however the wait ends (the bot's HTTP
/// request dropped included).
struct Awaiting<'a> {
    pending: &'a Mutex<HashMap<u64, oneshot::Sender<WireActed>>>,
    req: u64,
}

impl Drop for Awaiting<'_> {
    fn drop(&mut self) {
        self.pending.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.req);
    }
}

/// Bots' side of the cluster: forwards actions, carries out those forwarded here. Cheap
/// to clone.
#[derive(Clone)]
pub struct BotRelay(Arc<Inner>);

impl BotRelay {
    /// Starts listening on this node's bots channel until `shutdown`.
    pub fn start(cluster: Cluster, hub: Hub, archive: Archive, shutdown: CancellationToken) -> Self {
        let relay = Self(Arc::new(Inner {
            cluster,
            hub,
            archive,
            pending: Mutex::default(),
            shutdown: shutdown.clone(),
        }));
        let listening = relay.clone();
        tokio::spawn(async move {
            let cluster = listening.0.cluster.clone();
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

    /// `act` by bot `bot` on `chat`: carried out here when this node holds the stage,
    /// else forwarded to the node that does.
    pub async fn act(&self, bot: String, chat: String, act: BotAct) -> Result<Acted, RelayDown> {
        let here = act_here(&self.0.hub, &self.0.archive, bot.clone(), chat.clone(), act.clone()).await?;
        let held_here = !matches!(here, Err(("not_your_chat", _)));
        let node = if held_here {
            None
        } else {
            redis::cmd("GET")
                .arg(stage_key(&chat))
                .query_async::<Option<String>>(&mut self.0.cluster.conn())
                .await
                .map_err(|e| RelayDown::Unavailable(format!("Redis did not answer: {e}")))?
        };
        let node = match forwarded(held_here, node.as_deref(), self.0.cluster.node_id()) {
            Forwarded::Here | Forwarded::Nowhere => return Ok(here),
            Forwarded::To(node) => node,
        };
        if self.0.shutdown.is_cancelled() {
            // Nothing sent: the bot tries again, at another node.
            return Err(RelayDown::Unavailable("this node is stopping; nothing was sent".into()));
        }
        let req: u64 = rand::random();
        let (tx, rx) = oneshot::channel();
        self.0.pending.lock().unwrap_or_else(|p| p.into_inner()).insert(req, tx);
        let _awaiting = Awaiting {
            pending: &self.0.pending,
            req,
        };
        let wire = Wire::Act {
            req,
            from: self.0.cluster.node_id().to_string(),
            bot,
            chat,
            act,
        };
        let sent = self
            .publish(&node, &wire)
            .await
            .map_err(|e| RelayDown::Unavailable(format!("Redis did not take it: {e}")))?;
        if sent == 0 {
            // Nobody listens for that node: gone (and its bot stages with it), or still
            // registered and resubscribing after a Redis blip (then the bot tries again).
            let registered: bool = redis::cmd("HEXISTS")
                .arg(crate::cluster::lease::NODES_KEY)
                .arg(&node)
                .query_async(&mut self.0.cluster.conn())
                .await
                .map_err(|e| RelayDown::Unavailable(format!("Redis did not answer: {e}")))?;
            return if registered {
                Err(RelayDown::Unavailable(
                    "the node holding this conversation is not listening right now; try again".into(),
                ))
            } else {
                Ok(Err((
                    "not_your_chat",
                    "the node that held this conversation is gone".to_string(),
                )))
            };
        }
        let answer = tokio::select! {
            // An answer that came is taken over the stop that came with it.
            biased;
            answer = tokio::time::timeout(ANSWER_TIMEOUT, rx) => answer.ok().and_then(Result::ok),
            () = self.0.shutdown.cancelled() => {
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

    async fn publish(&self, node: &str, wire: &Wire) -> redis::RedisResult<i64> {
        let text = serde_json::to_string(wire).unwrap_or_default();
        redis::cmd("PUBLISH")
            .arg(channel(node))
            .arg(text)
            .query_async::<i64>(&mut self.0.cluster.conn())
            .await
    }
}

impl Listener for BotRelay {
    async fn resubscribed(&self) {
        // An action lost in the gap is answered by its sender's timeout.
    }

    async fn received(&self, payload: String) {
        let Ok(wire) = serde_json::from_str::<Wire>(&payload) else {
            tracing::warn!("ignored a malformed message on this node's bots channel");
            return;
        };
        match wire {
            Wire::Acted { req, result } => {
                let waiting = self.0.pending.lock().unwrap_or_else(|p| p.into_inner()).remove(&req);
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
                    if let Err(e) = relay.publish(&from, &Wire::Acted { req, result }).await {
                        tracing::warn!(error = %e, node = %from, "a forwarded bot action's answer could not be sent");
                    }
                });
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
}
