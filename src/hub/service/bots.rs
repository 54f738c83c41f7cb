//! Agent bots on the hub: a category that names a bot, while that bot is connected
//! (`/ws/bot`) or has a URL it is called at (a webhook bot, `bot_calls`), has its joining
//! customers talk to the bot first. A webhook bot acts over the HTTP API (`BotAct`, as the
//! socket's frames are turned into), and one that cannot be called hands over. The conversation exists
//! from the start (archived, seq as any chat, each line acknowledged once durable); the
//! bot answers, asks for the customer's email, resolves it, or hands it over, and then the
//! customer joins the category's line through the routing core like anyone, continuing
//! that conversation: the agent who takes it gets its lines (the bot's marked
//! `via: "bot"`) and a hand-over note from the bot. A bot that leaves a customer's line
//! unanswered for `BOT_REPLY_TIMEOUT_SECS`, or whose connection ends, hands over by itself.
//!
//! The rules (who meets a bot, the reply timer, where a bot's action is carried out) are
//! `core::bots`'; the routing core never sees a customer talking to a bot.
//!
//! On several nodes the stage lives on the customer's node, as on one: that node's hub
//! stamps its lines, runs its timer and hands it over into the shared line. Every node
//! knows every webhook bot (the admin bus tells them) and calls it for its own customers;
//! a bot's answer that comes in at another node is forwarded to this one (`bot_relay`).
//! A socket bot serves the customers of every node: a join whose category's bot has no
//! socket here looks it up on the others (off the hub's task, [`HubState::bot_found`]);
//! the stage's frames for the bot go to the socket's node and the bot's actions on its
//! socket come back to the stage's (`bot_relay`). Its socket gone, or its node lost, the
//! customers it held elsewhere are handed over as those of its own node.

mod lost;
mod welcome;

use std::collections::{HashMap, HashSet};

use uuid::Uuid;

use super::continuing::{Continued, JoinAsked};
use super::{HubState, Token, archive_behind, close, valid_name};
use crate::hub::bot_calls::BotCaller;
use crate::hub::bot_relay::{self, Taken, Ticket};
use crate::webhooks::private_addresses::PrivateAddresses;
use axum::extract::ws::Utf8Bytes;

use crate::clock::now_ms;
use crate::core::bots::{self as rules, Entry, Handover, ReplyClock, SocketAt};
use crate::core::conversation::Route;
use crate::core::conversation::line_authors::LineAuthors;
use crate::core::routing::{AgentId, CategoryId};
use crate::hub::delivery::{ConnId, Outbound, SenderCopy};
use crate::hub::transcript::{Author, Stamped, Transcript};
use crate::hub::{BotAct, BotLine, BotLogin, Command, ConnRole, after, tell};
use crate::protocol::{BotConversation, ChatMessage, ClientFrame, From, Said, ServerFrame};
use crate::store::{
    ArchiveEvent, ConversationClosed, ConversationKind, ConversationOpened, ConversationTransferred, EndReason, Side,
};

/// The close reason of a bot socket whose token was revoked.
const TOKEN_REVOKED: &str = "token revoked";

/// Lines a bot conversation keeps for the agent who takes it over (the archive has all).
const STAGE_LINES: usize = super::continuing::EARLIER_LINES;

/// What the hub knows of bots: who is connected, which category names which bot, and the
/// conversations bots hold now.
#[derive(Default)]
pub(super) struct BotDesk {
    /// Bot name → its connection (the newest; an older one is closed as replaced).
    connected: HashMap<String, ConnId>,
    /// Category id → the bot it names.
    category_bots: HashMap<String, String>,
    /// Conversation id → the customer talking to a bot.
    stages: HashMap<String, Stage>,
    /// A customer's connection → their conversation with a bot.
    by_customer: HashMap<ConnId, String>,
    /// Bot name → the task calling its hook (a webhook bot), for bots that have one.
    hooked: HashMap<String, BotCaller>,
    /// Tokens revoked while this hub runs: a bot socket whose upgrade checked its token
    /// before the revocation, and registers after it, is closed as it registers. Admins
    /// revoke a handful of tokens in a hub's life, so this stays small.
    revoked_tokens: HashSet<String>,
    /// Several nodes: the task carrying out the bots' Redis steps (stages' tickets and
    /// claims, bot sockets' records, frames for and actions of bots on other nodes) in the
    /// order the hub asks (a stage that ends at once must not leave its ticket recorded
    /// after its deletion; a bot hears of a conversation before its lines). Started with
    /// the first step.
    ops: Option<tokio::sync::mpsc::Sender<bot_relay::Op>>,
    /// Several nodes: a bot's socket here → the nodes that sent it frames (stages there),
    /// told when the socket goes.
    served: HashMap<String, HashSet<String>>,
    /// Customers whose join waits for the lookup of their category's bot's socket.
    looking_up: HashSet<ConnId>,
    /// Several nodes: forwards a socket bot's actions to the node holding their stage.
    forwarder: Option<std::sync::Arc<bot_relay::Forwarder>>,
    /// Several nodes: bot name → its newest socket here, waiting for the other nodes'
    /// conversations before its welcome.
    welcoming: HashMap<String, welcome::Welcoming>,
}

/// One customer talking to a bot.
struct Stage {
    bot: String,
    customer: ConnId,
    category: CategoryId,
    /// The join, kept to join the line with when the bot hands over.
    asked: JoinAsked,
    /// The token of the customer's `welcome`: on several nodes, the key of the stage's
    /// ticket (`bot_relay`), deleted as the stage ends here.
    token: String,
    transcript: Transcript,
    clock: ReplyClock,
    /// The node holding the bot's socket, when another one does (several nodes).
    bot_node: Option<String>,
}

impl BotDesk {
    /// The bot conversation of a customer's connection, if they talk to a bot.
    pub(super) fn stage_of(&self, customer: ConnId) -> Option<&str> {
        self.by_customer.get(&customer).map(String::as_str)
    }

    /// Whether a bot holds conversation `id` now (its customer talking to it).
    pub(super) fn holds(&self, id: &str) -> bool {
        self.stages.contains_key(id)
    }
}

impl HubState {
    /// A bot's connection registered: it replaces an older one of the same bot, learns
    /// which categories name it, and is told the conversations it holds.
    pub(super) fn bot_connected(&mut self, conn: ConnId, login: BotLogin) {
        let BotLogin {
            name,
            categories,
            token_id,
        } = login;
        if self.bots.revoked_tokens.contains(&token_id) {
            tracing::info!(bot = %name, token = %token_id, "a bot socket opened with a token revoked since is closed");
            self.close_conn(conn, close::SESSION_ENDED, TOKEN_REVOKED);
            return;
        }
        self.bots.category_bots.retain(|_, bot| *bot != name);
        for category in categories {
            self.bots.category_bots.insert(category, name.clone());
        }
        if let Some(old) = self.bots.connected.insert(name.clone(), conn) {
            tracing::info!(bot = %name, conn = old.0, "a bot connected again; its older connection is closed");
            self.close_conn(old, close::REPLACED, "the bot connected on another connection");
        }
        tracing::info!(bot = %name, conn = conn.0, "bot connected");
        self.op(bot_relay::Op::SocketHere(name.clone()));
        let conversations = self
            .bots
            .stages
            .iter()
            .filter(|(_, s)| s.bot == name)
            .map(|(id, s)| s.view(id))
            .collect();
        self.welcome_bot(conn, name, conversations);
    }

    /// A bot's connection ended: if it was the bot's live one, every conversation it holds
    /// goes to its category's line, so no customer waits for a bot that is gone.
    pub(super) fn bot_disconnected(&mut self, conn: ConnId, name: &str) {
        if self.bots.connected.get(name) != Some(&conn) {
            return;
        }
        self.bots.connected.remove(name);
        self.bots.welcoming.remove(name);
        tracing::info!(bot = %name, "bot disconnected; its conversations are handed over");
        self.op(bot_relay::Op::SocketGone(name.to_string()));
        for node in self.bots.served.remove(name).unwrap_or_default() {
            self.op(bot_relay::Op::BotGone {
                node,
                bot: name.to_string(),
            });
        }
        self.hand_over_all_of(name, None, Handover::BotGone);
    }

    /// Every conversation bot `name` holds through its socket on `node` (`None`: here, or
    /// by webhook) goes to its category's line.
    fn hand_over_all_of(&mut self, name: &str, node: Option<&str>, why: Handover) {
        let held: Vec<String> = self
            .bots
            .stages
            .iter()
            .filter(|(_, s)| s.bot == name && s.bot_node.as_deref() == node)
            .map(|(id, _)| id.clone())
            .collect();
        for id in held {
            self.hand_over(&id, why, String::new());
        }
    }

    /// API tokens were revoked: every bot socket opened with one closes now (4001), and
    /// its conversations go to their lines as when a bot goes away; one still on its way
    /// to registering is closed as it registers.
    pub(super) fn bot_tokens_revoked(&mut self, ids: Vec<String>) {
        let closing: Vec<(ConnId, String)> = self
            .conns
            .iter()
            .filter_map(|(conn, entry)| match &entry.role {
                ConnRole::Bot(login) if ids.contains(&login.token_id) => Some((*conn, login.name.clone())),
                _ => None,
            })
            .collect();
        self.bots.revoked_tokens.extend(ids);
        for (conn, name) in closing {
            tracing::info!(bot = %name, conn = conn.0, "a bot's token was revoked; its socket is closed");
            self.close_conn(conn, close::SESSION_ENDED, TOKEN_REVOKED);
            self.bot_disconnected(conn, &name);
        }
    }

    /// Bot `bot` has `hook` now, or none: calls go there from now on, a replaced hook
    /// taking over the calls still queued (the conversations are still the bot's). A bot
    /// left with neither hook nor socket hands its conversations over, those with calls
    /// queued included, as when a socket bot goes away.
    pub(super) fn bot_hook(&mut self, bot: String, hook: Option<crate::bot_hooks::BotHook>) {
        match hook {
            Some(hook) => {
                if let Some(running) = self.bots.hooked.get(&bot) {
                    // The same hook again (a new token for the bot) changes nothing.
                    if !running.calls(&hook) {
                        tracing::info!(bot = %bot, host = %crate::bot_hooks::host_of(&hook.url), "a bot's webhook was replaced; its queued calls go to the new URL");
                        running.replace(hook);
                    }
                    return;
                }
                tracing::info!(bot = %bot, host = %crate::bot_hooks::host_of(&hook.url), "a bot is called by webhook");
                let timeout = self.settings.bot_reply_timeout.min(crate::webhooks::deliver::TIMEOUT);
                // The webhooks' answer, kept up to date with the admins' choice; without
                // webhooks running (never, once the hub started), the operator's word alone.
                let private = self.archive.webhooks().map_or_else(
                    || PrivateAddresses::new(self.settings.webhooks.allow_private),
                    |hooks| hooks.private.clone(),
                );
                let caller = BotCaller::start(
                    bot.clone(),
                    hook,
                    private,
                    timeout,
                    self.timers.clone(),
                    self.bus.clone(),
                );
                self.bots.hooked.insert(bot, caller);
            }
            None => {
                if self.bots.hooked.remove(&bot).is_none() || self.bots.connected.contains_key(&bot) {
                    return;
                }
                tracing::info!(bot = %bot, "a bot's webhook was removed; its conversations are handed over");
                self.hand_over_all_of(&bot, None, Handover::BotGone);
            }
        }
    }

    /// A call to webhook bot `bot` about conversation `id` failed: if the bot still holds
    /// it, it goes to its category's line, as when a bot goes away.
    pub(super) fn bot_call_failed(&mut self, bot: &str, id: &str) {
        if self.held(bot, id).is_ok() {
            self.hand_over(id, Handover::Unreachable, String::new());
        }
    }

    /// Whether `category`'s bot would take its next customer (the public category list:
    /// a category served by a bot is answered even with nobody online).
    pub(super) fn bot_reach(&self, category: &CategoryId) -> crate::hub::BotReach {
        use crate::hub::BotReach;
        let Some(bot) = self.bots.category_bots.get(category.as_str()) else {
            return BotReach::No;
        };
        if self.bots.connected.contains_key(bot) || self.bots.hooked.contains_key(bot) {
            BotReach::Here
        } else if self.bus.is_some() {
            BotReach::Elsewhere(bot.clone())
        } else {
            BotReach::No
        }
    }

    /// An admin named (or removed) `category`'s bot.
    pub(super) fn category_bot(&mut self, category: String, bot: Option<String>) {
        match bot {
            Some(bot) => self.bots.category_bots.insert(category, bot),
            None => self.bots.category_bots.remove(&category),
        };
    }

    /// A customer's `join` without a conversation to continue: `Some(asked)` back when it
    /// goes to the line (no bot, or none to talk to), `None` when a bot has it now.
    pub(super) fn join_bot_first(
        &mut self,
        conn: ConnId,
        asked: JoinAsked,
    ) -> Result<Option<JoinAsked>, (&'static str, String)> {
        let bot = self.bots.category_bots.get(&asked.category).cloned();
        let socket = bot.as_ref().is_some_and(|b| self.bots.connected.contains_key(b));
        let hooked = bot.as_ref().is_some_and(|b| self.bots.hooked.contains_key(b));
        if let Some(name) = &bot
            && !socket
            && !hooked
            && self.bus.is_some()
        {
            // Its socket may be on another node: looked up off the hub's task.
            self.look_up_bot(conn, asked, name.clone())?;
            return Ok(None);
        }
        self.bot_entry(conn, asked, bot, socket || hooked, None)
    }

    /// A join's way once it is known whether its category's bot can be reached (on
    /// `bot_node` when its socket is on another node): `Some(asked)` back for the line.
    fn bot_entry(
        &mut self,
        conn: ConnId,
        asked: JoinAsked,
        bot: Option<String>,
        reachable: bool,
        bot_node: Option<String>,
    ) -> Result<Option<JoinAsked>, (&'static str, String)> {
        let category = CategoryId::from(asked.category.clone());
        let socket = bot_node.is_some() || bot.as_ref().is_some_and(|b| self.bots.connected.contains_key(b));
        let entry = rules::entry(bot.as_deref(), reachable);
        let bot = match entry {
            Entry::Line(None) => return Ok(Some(asked)),
            Entry::Line(Some(why)) => {
                tracing::info!(category = %asked.category, bot = ?bot, why = why.word(), "a customer goes to the line without the category's bot");
                return Ok(Some(asked));
            }
            Entry::Bot(bot) => bot,
        };
        // A closed or unknown category: the routing core says so as for anyone.
        if !self.routing.has_category(&category) || !self.routing.is_open(&category) {
            return Ok(Some(asked));
        }
        let name = valid_name(&asked.name)?;
        // Checked as for any join, and not a line: the customer page sends it as the
        // customer's first `message` once the chat starts, as in any chat (recorded here
        // too, it reached the bot twice).
        super::customers::valid_first_message(asked.message.clone())?;
        if self.archive.openings_available() == 0 {
            return Err(archive_behind());
        }
        let id = Uuid::now_v7().to_string();
        let now = now_ms();
        self.archive.push_opening(ArchiveEvent::Opened(ConversationOpened {
            id: id.clone(),
            kind: ConversationKind::Service,
            category: Some(category.0.to_string()),
            customer_name: name.clone(),
            agent_id: rules::bot_agent_id(&bot),
            agent_name: bot.clone(),
            queued_at: now,
            paired_at: now,
            customer: asked.profile.clone(),
        }));
        self.conversation_opened(&id, &category, &asked.profile, &AgentId(rules::bot_agent_id(&bot)));
        tracing::info!(bot = %bot, conversation = %id, category = %category.0, "a customer talks to the category's bot first");
        if socket {
            // A socket bot's actions, on its socket on another node or over HTTP, may come
            // in at another node, which forwards them here: recorded before the bot hears of
            // the conversation (a webhook bot's caller records this before its first call).
            self.op(bot_relay::Op::Claim(id.clone()));
        }
        let mut asked = asked;
        // Not a note for the agent who takes over either: the page sends it as a line.
        asked.message = None;
        let token = Token::new().to_string();
        // Should this node die, a resume with the token hands the customer over elsewhere.
        if let Some(ticket) = self.stage_ticket(&id, &bot, &category, &name, &asked.profile) {
            self.op(bot_relay::Op::Record(token.clone(), Box::new(ticket)));
        }
        self.bots.by_customer.insert(conn, id.clone());
        self.bots.stages.insert(
            id.clone(),
            Stage {
                bot: bot.clone(),
                customer: conn,
                category: category.clone(),
                asked,
                token: token.clone(),
                transcript: Transcript::new(STAGE_LINES),
                clock: ReplyClock::default(),
                bot_node,
            },
        );
        self.send_to_conn(
            conn,
            &ServerFrame::Welcome {
                customer_name: name,
                // Not resumable where the stage lives: a customer who drops while talking
                // to a bot ends that talk. On several nodes it resumes elsewhere only once
                // the stage's node died (its ticket).
                resume_token: token,
                grace_secs: self.settings.resume_grace.as_secs_f64(),
                max_message_len: self.settings.max_message_len,
                draft_preview: false,
            },
        );
        self.send_to_conn(
            conn,
            &ServerFrame::ChatStarted {
                chat_id: id.clone(),
                category: category.0.to_string(),
                category_name: self.category_name(&category),
                peer_name: bot.clone(),
                started_at: now,
                video_request: false,
                offer_id: None,
                transfer: None,
                messages: None,
                continued: false,
                reopened: false,
                queued_at: None,
            },
        );
        if let Some(view) = self.bots.stages.get(&id).map(|s| s.view(&id)) {
            self.tell_bot(&bot, &id, "conversation", &ServerFrame::Conversation(view));
        }
        Ok(None)
    }

    /// A frame from a customer talking to a bot.
    pub(super) fn bot_stage_customer_frame(
        &mut self,
        conn: ConnId,
        id: String,
        frame: ClientFrame,
    ) -> Result<(), (&'static str, String)> {
        let frame = match frame.said() {
            Ok(said) => {
                self.text_only(&said, "files can be sent once a person has the chat")?;
                return self.stage_line(Some(conn), &id, said, false).map(|_| ());
            }
            Err(other) => other,
        };
        match frame {
            ClientFrame::Email { email } => {
                let email = crate::core::customer_details::optional_email(Some(&email))
                    .map_err(|e| (e.code, e.message))?
                    .ok_or_else(|| ("invalid_email", "an email address is needed".to_string()))?;
                let Some(stage) = self.bots.stages.get_mut(&id) else {
                    return Ok(());
                };
                stage.asked.profile.email = Some(email.clone());
                let bot = stage.bot.clone();
                self.keep_customer_email(&id, &email);
                self.tell_bot(
                    &bot,
                    &id,
                    "customer_email",
                    &ServerFrame::CustomerEmail {
                        chat_id: id.clone(),
                        email,
                    },
                );
                Ok(())
            }
            // Nobody to show typing or a draft to but a bot: dropped.
            ClientFrame::Typing { .. } | ClientFrame::Draft { .. } => Ok(()),
            ClientFrame::Leave {} => {
                self.end_stage(&id, "customer_left", Side::Customer);
                Ok(())
            }
            ClientFrame::Join(_) | ClientFrame::Resume { .. } => {
                Err(("already_joined", "this connection has joined already".into()))
            }
            other => Err((
                "not_allowed",
                format!("{:?} is not for a chat with a bot", other.kind()),
            )),
        }
    }

    /// A line in a bot's conversation, the customer's or the bot's: stamped, archived, to
    /// the other side, acknowledged to the sender on `conn` once durable. The customer's
    /// first unanswered line starts the bot's reply timer; the bot's line stops it.
    fn stage_line(
        &mut self,
        conn: Option<ConnId>,
        id: &str,
        said: Said,
        from_bot: bool,
    ) -> Result<BotLine, (&'static str, String)> {
        let Some(stage) = self.bots.stages.get_mut(id) else {
            return Err(("not_in_chat", "that conversation is over".into()));
        };
        let author = if from_bot { Author::BOT } else { Author::CUSTOMER };
        let Stamped { frame, ack, event } = stage
            .transcript
            .record(id, author, said.text, said.client_id.as_deref());
        let (bot, customer) = (stage.bot.clone(), stage.customer);
        let timer = if from_bot {
            stage.clock.bot_line();
            None
        } else {
            stage.clock.customer_line()
        };
        let archived = self.archive.push_message(event);
        if from_bot {
            self.send_encoded_to_conn(customer, Outbound::Frame(frame.clone()));
        } else {
            self.tell_bot_encoded(&bot, id, "message", &frame);
        }
        let frame = Outbound::Frame(frame);
        if let Some(conn) = conn {
            self.ack_to(conn, SenderCopy::sent_from(conn, ack.clone(), frame.clone()), archived);
        }
        if let Some(epoch) = timer {
            after(
                &self.timers,
                self.settings.bot_reply_timeout,
                Command::BotReplyTimeout {
                    chat_id: id.to_string(),
                    epoch,
                },
            );
        }
        Ok(BotLine { ack, archived })
    }

    /// The sender's acknowledgement on `conn`, once the line is durable.
    fn ack_to(&self, conn: ConnId, copy: SenderCopy, archived: Option<u64>) {
        if let Some(entry) = self.conns.get(&conn) {
            self.direct
                .acks
                .acknowledge(archived, std::slice::from_ref(&entry.handle), copy);
        }
    }

    /// `frame` (of type `kind`, about conversation `id`) to bot `bot`: over its socket,
    /// here or on the node holding it, or else to its hook.
    fn tell_bot(&mut self, bot: &str, id: &str, kind: &'static str, frame: &ServerFrame) {
        self.tell_bot_encoded(bot, id, kind, &frame.encode());
    }

    fn tell_bot_encoded(&mut self, bot: &str, id: &str, kind: &'static str, frame: &Utf8Bytes) {
        let node = self.bots.stages.get(id).and_then(|s| s.bot_node.clone());
        self.tell_bot_via(bot, node, id, kind, frame);
    }

    /// As [`HubState::tell_bot_encoded`], for a conversation whose bot's socket is on `node`
    /// (`None`: here, or a webhook).
    fn tell_bot_via(&mut self, bot: &str, node: Option<String>, id: &str, kind: &'static str, frame: &Utf8Bytes) {
        if let Some(node) = node {
            // The socket the bot heard of the conversation on, even with a newer one here.
            self.op(bot_relay::Op::ToBot {
                node,
                bot: bot.to_string(),
                chat: id.to_string(),
                frame: frame.as_str().to_string(),
            });
        } else if let Some(conn) = self.bots.connected.get(bot).copied() {
            self.send_to_bot_socket(bot, conn, None, frame.clone());
        } else if let Some(caller) = self.bots.hooked.get(bot)
            && !caller.call(id, kind, frame.as_str().to_string())
            && let Some(hub) = self.timers.upgrade()
        {
            tracing::warn!(
                bot,
                conversation = id,
                "a webhook bot is too far behind; the conversation is handed over"
            );
            // Handed over from the hub's queue: this may be in the middle of another change.
            let _ = hub.try_send(Command::BotCallFailed {
                bot: bot.to_string(),
                chat_id: id.to_string(),
            });
        }
    }

    /// A frame from bot `name`'s connection.
    pub(super) fn bot_frame(&mut self, conn: ConnId, name: &str, frame: ClientFrame) {
        let client_id = match &frame {
            ClientFrame::Message { client_id, .. } => client_id.clone(),
            _ => None,
        };
        if let Err((code, message)) = self.bot_frame_result(conn, name, frame) {
            tracing::info!(bot = %name, code, %message, "a bot's frame was refused");
            self.error_to_conn(conn, code, message, client_id);
        }
    }

    fn bot_frame_result(&mut self, conn: ConnId, name: &str, frame: ClientFrame) -> Result<(), (&'static str, String)> {
        if self.bots.connected.get(name) != Some(&conn) {
            return Err(("not_joined", "this connection no longer speaks for the bot".into()));
        }
        let (chat_id, act) = match frame {
            ClientFrame::Message {
                chat_id,
                text,
                client_id,
                attachments,
            } => {
                let id = chat_id.ok_or_else(|| ("missing_chat_id", "a bot's message names its chat_id".to_string()))?;
                if !attachments.is_empty() {
                    if self.bots.forwarder.is_none() {
                        self.held(name, &id)?;
                    }
                    return Err(("attachments_not_for_bots", "a bot sends text only".into()));
                }
                (id, BotAct::Message { text, client_id })
            }
            ClientFrame::Handover { chat_id, note } => (chat_id, BotAct::Handover { note }),
            ClientFrame::Resolve { chat_id } => (chat_id, BotAct::Resolve),
            ClientFrame::AskEmail { chat_id } => (chat_id, BotAct::AskEmail),
            other => {
                return Err((
                    "not_allowed",
                    format!(
                        "bots may send message, handover, resolve and ask_email, not {:?}",
                        other.kind()
                    ),
                ));
            }
        };
        if let Err(refused) = self.held(name, &chat_id)
            && let Some(forwarder) = self.bots.forwarder.clone()
            && let Some(entry) = self.conns.get(&conn)
        {
            // Perhaps held by another node (its customer's): forwarded there, in order,
            // answered on this socket as here.
            let client_id = match &act {
                BotAct::Message { client_id, .. } => client_id.clone(),
                _ => None,
            };
            let to = entry.handle.clone();
            self.op(bot_relay::Op::Forward {
                forwarder,
                bot: name.to_string(),
                chat: chat_id,
                act,
                client_id,
                here: refused,
                to,
            });
            return Ok(());
        }
        self.bot_act(Some(conn), name, &chat_id, act).map(|_| ())
    }

    /// Is conversation `id` bot `name`'s now?
    fn held(&self, name: &str, id: &str) -> Result<(), (&'static str, String)> {
        match self.bots.stages.get(id) {
            Some(stage) if stage.bot == name => Ok(()),
            _ => Err(("not_your_chat", format!("{id:?} is no conversation of this bot's"))),
        }
    }

    /// Bot `name` acts on its conversation `id`, from its socket `conn` or (`None`) the
    /// HTTP API: a message's line as recorded, or the refusal a socket gets as `error`.
    pub(super) fn bot_act(
        &mut self,
        conn: Option<ConnId>,
        name: &str,
        id: &str,
        act: BotAct,
    ) -> Result<Option<BotLine>, (&'static str, String)> {
        self.held(name, id)?;
        match act {
            BotAct::Message { text, client_id } => {
                self.check_message(&text)?;
                // A customer whose outbox fills is closed as not reading: a bot's burst is
                // refused to the bot before that (core::bot_lines).
                if let Some(stage) = self.bots.stages.get(id)
                    && let Some(entry) = self.conns.get(&stage.customer)
                    && !entry.handle.outbox.has_room_for_a_bot_line()
                {
                    return Err((
                        "rate_limited",
                        "the customer has not yet received this bot's earlier lines; slow down".into(),
                    ));
                }
                let said = Said {
                    chat_id: Some(id.to_string()),
                    text,
                    client_id,
                    attachments: vec![],
                };
                self.stage_line(conn, id, said, true).map(Some)
            }
            BotAct::Handover { note } => {
                let note = note.unwrap_or_default().trim().chars().take(1000).collect();
                self.hand_over(id, Handover::Asked, note);
                Ok(None)
            }
            BotAct::Resolve => {
                self.end_stage(id, "resolved", Side::Agent);
                Ok(None)
            }
            BotAct::AskEmail => {
                if let Some(stage) = self.bots.stages.get(id) {
                    let frame = ServerFrame::EmailAsked {
                        chat_id: id.to_string(),
                    };
                    self.send_to_conn(stage.customer, &frame);
                }
                Ok(None)
            }
        }
    }

    /// A line to or from a bot: text alone (files wait for a person: `files` says so),
    /// checked as any line.
    fn text_only(&self, said: &Said, files: &str) -> Result<(), (&'static str, String)> {
        if !said.attachments.is_empty() {
            return Err(("attachments_not_for_bots", files.to_string()));
        }
        self.check_message(&said.text)
    }

    /// A bot's reply timer ran out: the customer goes to the line unless the bot answered.
    pub(super) fn bot_reply_timeout(&mut self, id: &str, epoch: u64) {
        let Some(stage) = self.bots.stages.get(id) else { return };
        if stage.clock.fired(epoch) {
            tracing::warn!(bot = %stage.bot, conversation = %id, "a bot did not answer in time; the conversation is handed over");
            self.hand_over(id, Handover::Timeout, String::new());
        }
    }

    /// Archives bot `bot`'s hand-on of conversation `id` (its lines up to `after_seq`) to
    /// `category`'s line, with `note`: when the customer began to wait for a person, whom
    /// the reports measure from then.
    fn archive_hand_on_to_line(&self, id: &str, bot: &str, category: &CategoryId, after_seq: u64, note: &str) {
        self.archive
            .push_message(ArchiveEvent::Transferred(ConversationTransferred {
                id: id.to_string(),
                at: now_ms(),
                after_seq,
                from_agent_id: rules::bot_agent_id(bot),
                from_agent_name: bot.to_string(),
                to_agent_id: None,
                to_agent_name: None,
                to_category: Some(category.0.to_string()),
                note: note.to_string(),
            }));
    }

    /// Conversation `id` leaves its bot for its category's line: the customer joins it as
    /// anyone does, continuing this conversation with its lines.
    fn hand_over(&mut self, id: &str, why: Handover, note: String) {
        let Some(stage) = self.bots.stages.remove(id) else {
            return;
        };
        self.bots.by_customer.remove(&stage.customer);
        self.forget_ticket(&stage.token, id);
        let Stage {
            bot,
            customer,
            category,
            asked,
            transcript,
            bot_node,
            ..
        } = stage;
        tracing::info!(bot = %bot, conversation = %id, why = why.word(), "a bot handed a conversation over");
        let ended = ServerFrame::ConversationEnded {
            chat_id: id.to_string(),
            reason: "handed_over",
            why: Some(why.word()),
        };
        self.tell_bot_via(&bot, bot_node, id, "conversation_ended", &ended.encode());
        // The chat the line pairs it into reserves its own closing.
        self.archive.release_closing();
        let note = match (note.is_empty(), why) {
            (false, _) => note,
            (true, Handover::Asked) => format!("{bot} handed the customer over."),
            (true, Handover::Timeout) => format!("{bot} did not answer in time."),
            (true, Handover::Unreachable) => format!("{bot} could not be reached."),
            (true, _) => format!("{bot} went offline."),
        };
        self.archive_hand_on_to_line(id, &bot, &category, transcript.last_seq(), &note);
        let continued = to_line(
            id.to_string(),
            &bot,
            &category,
            transcript.last_seq(),
            transcript.after(0),
            note,
        );
        self.send_to_conn(customer, &self.transferred_to_line(id.to_string(), &category));
        if let Err((code, message)) =
            self.customer_join(customer, &category.0.clone(), asked, Some(Box::new(continued)))
        {
            // The category closed or went away meanwhile: the conversation ends here, kept.
            tracing::warn!(conversation = %id, code, %message, "a conversation a bot handed over could not join the line");
            self.error_to_conn(customer, code, message, None);
            self.archive.push_closing(ArchiveEvent::Closed(ConversationClosed {
                id: id.to_string(),
                ended_at: now_ms(),
                ended_by: Side::System,
                reason: EndReason::Expiry,
                inferred: None,
            }));
        }
    }

    /// Conversation `id` ends with its bot: resolved by the bot, or the customer left.
    fn end_stage(&mut self, id: &str, reason: &'static str, by: Side) {
        let Some(stage) = self.bots.stages.remove(id) else {
            return;
        };
        self.bots.by_customer.remove(&stage.customer);
        self.forget_ticket(&stage.token, id);
        tracing::info!(bot = %stage.bot, conversation = %id, reason, "a bot's conversation ended");
        self.archive.push_closing(ArchiveEvent::Closed(ConversationClosed {
            id: id.to_string(),
            ended_at: now_ms(),
            ended_by: by,
            reason: if reason == "customer_gone" {
                EndReason::Disconnect
            } else {
                EndReason::Ended
            },
            inferred: None,
        }));
        // Its opening went into this node's writer first: only a record lost since (or
        // never stored) is made of this.
        let opening = crate::conversations::OpeningKnown {
            category: stage.category.0.to_string(),
            customer_keys: stage.asked.profile.record_keys(),
            agent: Some(AgentId(rules::bot_agent_id(&stage.bot))),
            paired_at: now_ms(),
        };
        self.conversation_resolved(id, opening);
        let ended = ServerFrame::ConversationEnded {
            chat_id: id.to_string(),
            reason,
            why: None,
        };
        self.tell_bot_via(
            &stage.bot,
            stage.bot_node.clone(),
            id,
            "conversation_ended",
            &ended.encode(),
        );
        if by != Side::Customer {
            self.send_to_conn(
                stage.customer,
                &ServerFrame::ChatEnded {
                    chat_id: id.to_string(),
                    ended_by: From::Agent,
                    reason,
                    rating: None,
                },
            );
        }
    }

    /// On several nodes: the ticket of a stage that ended here is deleted, so its token
    /// resumes nothing anywhere, as on one node.
    fn forget_ticket(&mut self, token: &str, chat: &str) {
        self.op(bot_relay::Op::Forget(token.to_string(), chat.to_string()));
    }

    /// `op` for the bots' Redis task (off the hub's task, in order); started with the
    /// first. A frame for a bot on another node that cannot be queued hands its
    /// conversation over, as a webhook bot far behind.
    fn op(&mut self, op: bot_relay::Op) {
        let Some(cluster) = self.bus.clone() else { return };
        let timers = self.timers.clone();
        let ops = self
            .bots
            .ops
            .get_or_insert_with(|| bot_relay::start_ops(cluster, timers));
        if let Err(refused) = ops.try_send(op) {
            tracing::warn!("a bot's step in Redis was dropped: Redis is far behind");
            if let bot_relay::Op::ToBot { bot, chat, .. } = refused.into_inner()
                && let Some(hub) = self.timers.upgrade()
            {
                let _ = hub.try_send(Command::BotCallFailed { bot, chat_id: chat });
            }
        }
    }

    /// A `resume` on several nodes with a token no customer holds: is it a bot stage's
    /// whose node died? Looked up (and the conversation read from the store) off the hub's
    /// task; [`HubState::bot_ticket_found`] decides.
    pub(super) fn bot_ticket_lookup(&mut self, conn: ConnId, token: String) {
        let Some(cluster) = self.bus.clone() else {
            return self.error_to_conn(conn, "resume_expired", "that session is over; join again", None);
        };
        let (store, hub) = (self.archive.store(), self.timers.clone());
        tokio::spawn(async move {
            let found = ticket_found(&cluster, &store, &token).await;
            let found = Box::new(found);
            tell(&hub, Command::BotTicket { conn, found }).await;
        });
    }

    /// What [`HubState::bot_ticket_lookup`] found: the customer of a dead node's bot stage
    /// goes to the category's line here, continuing that conversation.
    pub(super) fn bot_ticket_found(&mut self, conn: ConnId, found: TicketFound) {
        // Gone meanwhile, or joined (a line, a bot) while the ticket was looked up: the
        // ticket is put back for their next resume.
        let free = self.conns.get(&conn).is_some_and(|c| c.who.is_none())
            && self.bots.stage_of(conn).is_none()
            && !self.cluster_mut().is_joining(conn);
        if !free {
            if let TicketFound::Taken { ticket, token, .. } = found {
                self.put_ticket_back(token, ticket);
            }
            return;
        }
        let (ticket, last_seq, earlier, token) = match found {
            TicketFound::None => {
                return self.error_to_conn(conn, "resume_expired", "that session is over; join again", None);
            }
            TicketFound::NodeAlive => {
                let words = "your conversation's node has not been taken over yet; resume again shortly";
                return self.resume_refused(conn, crate::hub::cluster::link::UNAVAILABLE, words.to_string());
            }
            TicketFound::Unavailable(why) => {
                // The cause is logged; the customer is told to come back, as any resume then.
                tracing::warn!(why = %why, "a bot customer's resume could not be looked up");
                let words = "the cluster could not look your conversation up; resume again shortly";
                return self.resume_refused(conn, crate::hub::cluster::link::UNAVAILABLE, words.to_string());
            }
            TicketFound::Taken {
                ticket,
                last_seq,
                earlier,
                token,
            } => (ticket, last_seq, earlier, token),
        };
        let kept = ticket.clone();
        let Ticket {
            chat,
            bot,
            category,
            name,
            profile,
            ..
        } = *ticket;
        tracing::warn!(bot = %bot, conversation = %chat, "a bot's conversation whose node died is handed over where its customer came back");
        self.tell_bot(
            &bot,
            &chat,
            "conversation_ended",
            &ServerFrame::ConversationEnded {
                chat_id: chat.clone(),
                reason: "handed_over",
                why: Some(Handover::NodeLost.word()),
            },
        );
        let category = CategoryId::from(category);
        self.send_to_conn(conn, &self.transferred_to_line(chat.clone(), &category));
        let asked = JoinAsked {
            name,
            category: category.0.to_string(),
            video: false,
            message: None,
            profile,
            conversation: None,
        };
        let note = format!("{bot} was cut off: the node it ran on stopped.");
        self.archive_hand_on_to_line(&chat, &bot, &category, last_seq, &note);
        let continued = to_line(chat.clone(), &bot, &category, last_seq, earlier, note);
        if let Err((code, message)) = self.customer_join(conn, &category.0.clone(), asked, Some(Box::new(continued))) {
            tracing::warn!(conversation = %chat, code, %message, "a bot's conversation whose node died could not join the line");
            self.error_to_conn(conn, code, message, None);
            // Not taken after all: their token tries again later.
            self.put_ticket_back(token, kept);
        }
    }

    /// Records a taken ticket again (its resume did not take the conversation over).
    fn put_ticket_back(&mut self, token: String, ticket: Box<Ticket>) {
        self.op(bot_relay::Op::Record(token, ticket));
    }

    /// This node is rejoining the cluster (fenced): the conversations bots hold here go on
    /// elsewhere (each customer's ticket resumes theirs on another node), so they are let
    /// go of without a closing, a word to the bot or the ticket's deletion. Each gives back
    /// the closing it reserved.
    pub(super) fn let_go_of_bot_stages(&mut self) {
        let held = self.bots.stages.len();
        self.bots.stages.clear();
        self.bots.by_customer.clear();
        self.bots.welcoming.clear();
        // Joins waiting for their bot's lookup: their connections are closing too.
        self.bots.looking_up.clear();
        for _ in 0..held {
            self.archive.release_closing();
        }
    }

    /// Several nodes: a join's category names bot `bot`, with neither a socket here nor a
    /// webhook: where its socket is, if anywhere, is looked up in Redis off the hub's task;
    /// [`HubState::bot_found`] goes on with the join.
    fn look_up_bot(&mut self, conn: ConnId, asked: JoinAsked, bot: String) -> Result<(), (&'static str, String)> {
        let Some(cluster) = self.bus.clone() else {
            return Ok(());
        };
        if !self.bots.looking_up.insert(conn) {
            return Err(("already_joined", "this connection has joined already".into()));
        }
        let hub = self.timers.clone();
        tokio::spawn(async move {
            let found = bot_relay::socket_of(&cluster, &bot)
                .await
                .map_err(|e| format!("Redis did not answer: {e}"));
            let command = Command::BotFound {
                conn,
                asked: Box::new(asked),
                bot,
                found,
            };
            tell(&hub, command).await;
        });
        Ok(())
    }

    /// Where a join's bot's socket is: the customer meets it there, or goes to the line
    /// (`bot_not_connected`); a lookup Redis did not answer refuses the join
    /// (`cluster_unavailable`), nothing recorded yet: the customer joins again.
    pub(super) fn bot_found(&mut self, conn: ConnId, asked: JoinAsked, bot: String, found: Result<SocketAt, String>) {
        if !self.bots.looking_up.remove(&conn) || self.conns.get(&conn).is_none_or(|c| c.who.is_some()) {
            // Gone meanwhile.
            return;
        }
        let here = self.bots.connected.contains_key(&bot) || self.bots.hooked.contains_key(&bot);
        let node = match found {
            _ if here => None,
            Ok(SocketAt::Node(node)) => Some(node),
            Ok(SocketAt::Here | SocketAt::Nowhere) => None,
            Err(why) => {
                tracing::warn!(bot = %bot, why = %why, "a join's bot could not be looked up; the join is refused");
                let words = "the cluster could not tell whether this category's bot is connected; join again";
                return self.error_to_conn(conn, crate::hub::cluster::link::UNAVAILABLE, words, None);
            }
        };
        let reachable = here || node.is_some();
        let joined = match self.bot_entry(conn, asked, Some(bot), reachable, node) {
            Ok(Some(asked)) => {
                let category = asked.category.clone();
                self.customer_join(conn, &category, asked, None)
            }
            Ok(None) => Ok(()),
            Err(refused) => Err(refused),
        };
        if let Err((code, message)) = joined {
            self.error_to_conn(conn, code, message, None);
        }
    }

    /// A frame for bot `bot`'s socket here from node `from`, which holds its stage: to the
    /// socket, and `from` noted to be told when it goes; with no such socket here, `from`
    /// is told at once.
    pub(super) fn remote_bot_frame(&mut self, from: String, bot: &str, id: &str, frame: String) {
        match self.bots.connected.get(bot).copied() {
            Some(conn) => {
                self.send_to_bot_socket(bot, conn, Some(&from), frame.into());
                self.bots.served.entry(bot.to_string()).or_default().insert(from);
            }
            None => {
                tracing::info!(bot, conversation = id, node = %from, "a frame for a bot not connected here: its node is told");
                self.op(bot_relay::Op::BotGone {
                    node: from,
                    bot: bot.to_string(),
                });
            }
        }
    }

    /// Bot `bot`'s socket on node `node` is gone: the conversations it held here through
    /// it go to their lines, as when a socket bot here goes.
    pub(super) fn remote_bot_gone(&mut self, bot: &str, node: &str) {
        tracing::info!(
            bot,
            node,
            "a bot's socket on another node is gone; its conversations here are handed over"
        );
        self.hand_over_all_of(bot, Some(node), Handover::BotGone);
    }

    /// Node `lost` died (its loss replayed, `heir`'s `node_lost`): the conversations held
    /// here whose bot's socket was there go to their lines; its own bot conversations whose
    /// customers do not come back are ended by the heir after the grace period.
    pub(super) fn bots_node_lost(&mut self, lost: &str, heir: &str) {
        self.sweep_lost_stages_later(lost, heir);
        let bots: HashSet<String> = self
            .bots
            .stages
            .values()
            .filter(|s| s.bot_node.as_deref() == Some(lost))
            .map(|s| s.bot.clone())
            .collect();
        for bot in bots {
            self.remote_bot_gone(&bot, lost);
        }
        for nodes in self.bots.served.values_mut() {
            nodes.remove(lost);
        }
    }

    /// The ticket of stage `chat` under this node's current incarnation; `None` on one
    /// node, or while this node holds no membership.
    fn stage_ticket(
        &self,
        chat: &str,
        bot: &str,
        category: &CategoryId,
        name: &str,
        profile: &crate::store::CustomerProfile,
    ) -> Option<Ticket> {
        let bus = self.bus.as_ref()?;
        Some(Ticket {
            chat: chat.to_owned(),
            node: bus.node_id().to_string(),
            incarnation: bus.status().incarnation?,
            bot: bot.to_owned(),
            category: category.0.to_string(),
            name: name.to_owned(),
            profile: profile.clone(),
        })
    }

    /// Redis lost its data and this node re-asserted the people it kept: each bot stage
    /// here records its ticket (under the node's new incarnation) and its claim again, so
    /// a resume elsewhere after this node dies still hands the customer over, and a bot's
    /// action coming in at another node still finds the stage. Only then: after a fence
    /// (or a re-assertion that failed) the stages were let go of, their tickets kept as
    /// they were for resumes elsewhere.
    pub(super) fn bot_stages_again(&mut self) {
        let again: Vec<(String, String, Option<Ticket>)> = self
            .bots
            .stages
            .iter()
            .map(|(chat, stage)| {
                let name = valid_name(&stage.asked.name).unwrap_or_else(|_| stage.asked.name.clone());
                let ticket = self.stage_ticket(chat, &stage.bot, &stage.category, &name, &stage.asked.profile);
                (chat.clone(), stage.token.clone(), ticket)
            })
            .collect();
        for (chat, token, ticket) in again {
            self.op(bot_relay::Op::Claim(chat));
            if let Some(ticket) = ticket {
                self.op(bot_relay::Op::Record(token, Box::new(ticket)));
            }
        }
    }

    /// Several nodes: after a gap in this node's bots channel (Redis away, or restarted
    /// empty), each bot socket here is recorded again.
    pub(super) fn bot_sockets_again(&mut self) {
        let bots: Vec<String> = self.bots.connected.keys().cloned().collect();
        for bot in bots {
            self.op(bot_relay::Op::SocketAgain(bot));
        }
    }

    /// Several nodes: the forwarder of socket bots' actions, once the bots channel is set up.
    pub(super) fn bots_forwarder(&mut self, forwarder: std::sync::Arc<bot_relay::Forwarder>) {
        self.bots.forwarder = Some(forwarder);
    }

    /// A customer's connection ended while they talked to a bot: the talk ends with it.
    pub(super) fn bot_stage_customer_gone(&mut self, conn: ConnId) {
        if let Some(id) = self.bots.by_customer.get(&conn).cloned() {
            self.end_stage(&id, "customer_gone", Side::Customer);
        }
    }
}

/// A bot's conversation handed on to its category's line, as the customer joins it, its
/// highest archived `seq` and latest `lines` known: the bot holds it (its lines are the
/// bot's), `note` tells the next agent why; a bot's conversation is new, so nobody rated it
/// yet and nobody resolved it.
fn to_line(id: String, bot: &str, category: &CategoryId, seq: u64, lines: Vec<ChatMessage>, note: String) -> Continued {
    Continued {
        id,
        category: category.clone(),
        last_seq: seq,
        earlier: lines,
        holder: Some((AgentId(rules::bot_agent_id(bot)), bot.to_string())),
        authors: LineAuthors::new([], bot.to_string()),
        route: Route::Line,
        note,
        rated: false,
        reopened: false,
    }
}

/// What a resume found under a token no customer holds (several nodes).
pub(crate) enum TicketFound {
    /// No bot stage's ticket either: `resume_expired`.
    None,
    /// The stage's node is not taken over yet: try again.
    NodeAlive,
    /// Redis or the store did not answer: try again.
    Unavailable(String),
    /// Taken: the conversation's last seq and latest lines, as the store has them.
    Taken {
        ticket: Box<Ticket>,
        /// The token it was under, to put it back should the customer be gone meanwhile.
        token: String,
        last_seq: u64,
        earlier: Vec<ChatMessage>,
    },
}

async fn ticket_found(
    cluster: &crate::cluster::node::Cluster,
    store: &crate::store::SharedStore,
    token: &str,
) -> TicketFound {
    let ticket = match bot_relay::take_ticket(cluster, token).await {
        Ok(Taken::None) => return TicketFound::None,
        Ok(Taken::NodeAlive) => return TicketFound::NodeAlive,
        Ok(Taken::Ticket(ticket)) => ticket,
        Err(e) => return TicketFound::Unavailable(format!("Redis did not answer: {e}")),
    };
    match store.conversation(&ticket.chat).await {
        Ok(archived) => {
            // Every line its customer or bot was told was sent is here: acknowledged once durable.
            let last_seq = archived.messages.iter().map(|m| m.seq).max().unwrap_or(0);
            let skip = archived.messages.len().saturating_sub(STAGE_LINES);
            let earlier = archived.messages[skip..]
                .iter()
                .map(|m| super::continuing::earlier_line(&ticket.chat, m))
                .collect();
            TicketFound::Taken {
                ticket,
                token: token.to_string(),
                last_seq,
                earlier,
            }
        }
        Err(e) => {
            // Put back, so the customer's next resume finds it.
            let _ = bot_relay::record_ticket(cluster, token, &ticket).await;
            TicketFound::Unavailable(format!("the conversation could not be read: {e}"))
        }
    }
}

impl Stage {
    fn view(&self, id: &str) -> BotConversation {
        BotConversation {
            chat_id: id.to_string(),
            category: self.category.0.to_string(),
            customer_name: self.asked.name.clone(),
            email: self.asked.profile.email.clone(),
            messages: self.transcript.after(0),
        }
    }
}
