//! A socket bot's welcome on several nodes, as on one node: its newest socket, on whatever
//! node, holds every conversation of the bot's that a socket served, and its `bot_welcome`
//! lists them all. Its node tells the others (`bot_relay::Op::TakeOver`); each closes its
//! own socket of the bot (replaced, as on one node), points its conversations of the bot
//! that a socket served to the newest one, and answers with their views after the frames
//! it sent before (`Op::Held`, in the order of its bots channel). The welcome goes out once
//! every node asked answered, or after [`WELCOME_WAIT`]; frames for the bot meanwhile are
//! held back and sent after it, but for those its views hold already
//! (`core::bots::WelcomeGather`).

use std::time::Duration;

use axum::extract::ws::Utf8Bytes;

use super::super::{HubState, close};
use crate::core::bots::WelcomeGather;
use crate::hub::bot_relay::Op;
use crate::hub::delivery::{ConnId, Outbound};
use crate::hub::{Command, after};
use crate::protocol::{BotConversation, ServerFrame};

/// How long a bot's newest socket waits for the other nodes' conversations before its
/// welcome goes out without those that did not answer: a Redis round trip or two each,
/// with a wide margin. A node answering later has its conversations sent as
/// `conversation` frames.
const WELCOME_WAIT: Duration = Duration::from_secs(3);

/// A bot's newest socket here, waiting for the other nodes' conversations.
pub(super) struct Welcoming {
    conn: ConnId,
    gather: WelcomeGather,
    /// What its welcome lists: this node's conversations, then each answer's.
    views: Vec<BotConversation>,
    /// Frames for it held back until the welcome: from the stage's node (`None`: this
    /// one), whether before that node's answer, the frame.
    held: Vec<(Option<String>, bool, Utf8Bytes)>,
}

impl HubState {
    /// Bot `bot`'s newest socket `conn` registered here with `views` (this node's
    /// conversations of the bot): on several nodes the others are told and its welcome
    /// waits for their answers; on one node it goes out at once.
    pub(in crate::hub::service) fn welcome_bot(&mut self, conn: ConnId, bot: String, views: Vec<BotConversation>) {
        if self.bus.is_none() {
            let welcome = ServerFrame::BotWelcome {
                bot,
                conversations: views,
            };
            return self.send_to_conn(conn, &welcome);
        }
        // Served here from now on, through this socket.
        for stage in self.bots.stages.values_mut().filter(|s| s.bot == bot) {
            stage.bot_node = None;
        }
        let welcoming = Welcoming {
            conn,
            gather: WelcomeGather::default(),
            views,
            held: vec![],
        };
        self.bots.welcoming.insert(bot.clone(), welcoming);
        self.op(Op::TakeOver { bot: bot.clone(), conn });
        after(&self.timers, WELCOME_WAIT, Command::BotWelcomeDue { bot, conn });
    }

    /// `frame` for bot `bot`'s socket `conn` here, about a stage on node `from` (`None`:
    /// this one): sent, or held back while its welcome waits.
    pub(in crate::hub::service) fn send_to_bot_socket(
        &mut self,
        bot: &str,
        conn: ConnId,
        from: Option<&str>,
        frame: Utf8Bytes,
    ) {
        if let Some(waiting) = self.bots.welcoming.get_mut(bot)
            && waiting.conn == conn
        {
            let before = from.is_some_and(|node| !waiting.gather.has_answered(node));
            waiting.held.push((from.map(str::to_string), before, frame));
            return;
        }
        self.send_encoded_to_conn(conn, Outbound::Frame(frame));
    }

    /// The other nodes asked for bot `bot`'s socket `conn`: `nodes`.
    pub(in crate::hub::service) fn bot_asked(&mut self, bot: &str, conn: ConnId, nodes: Vec<String>) {
        if let Some(waiting) = self.bots.welcoming.get_mut(bot)
            && waiting.conn == conn
        {
            waiting.gather.asked(nodes);
            if waiting.gather.ready() {
                self.send_bot_welcome(bot);
            }
        }
    }

    /// Node `from`'s conversations of bot `bot` (`views`), for its newest socket here.
    pub(in crate::hub::service) fn bot_held(&mut self, bot: &str, from: &str, views: Vec<BotConversation>) {
        if !views.is_empty() {
            // Served from here now: told when this socket goes, as if it had sent a frame.
            self.bots
                .served
                .entry(bot.to_string())
                .or_default()
                .insert(from.to_string());
        }
        if let Some(waiting) = self.bots.welcoming.get_mut(bot) {
            waiting.gather.answered(from);
            waiting.views.extend(views);
            if waiting.gather.ready() {
                self.send_bot_welcome(bot);
            }
            return;
        }
        // After the welcome (the wait ran out): told as conversations coming to it.
        if let Some(conn) = self.bots.connected.get(bot).copied() {
            for view in views {
                self.send_to_conn(conn, &ServerFrame::Conversation(view));
            }
        }
    }

    /// Bot `bot`'s socket `conn` waited long enough: its welcome goes out with what came.
    pub(in crate::hub::service) fn bot_welcome_due(&mut self, bot: &str, conn: ConnId) {
        if self.bots.welcoming.get(bot).is_some_and(|w| w.conn == conn) {
            tracing::warn!(
                bot,
                "not every node told a bot's newest socket its conversations in time; its welcome goes out without theirs"
            );
            self.send_bot_welcome(bot);
        }
    }

    fn send_bot_welcome(&mut self, bot: &str) {
        let Some(Welcoming {
            conn,
            gather,
            views,
            held,
        }) = self.bots.welcoming.remove(bot)
        else {
            return;
        };
        let welcome = ServerFrame::BotWelcome {
            bot: bot.to_string(),
            conversations: views,
        };
        self.send_to_conn(conn, &welcome);
        for (from, before, frame) in held {
            if gather.delivered(from.as_deref(), before) {
                self.send_encoded_to_conn(conn, Outbound::Frame(frame));
            }
        }
    }

    /// Bot `bot`'s newest socket is on node `to`: its socket here closes (replaced, not
    /// gone: nothing is handed over), and the conversations of it here that a socket served
    /// go to that one, their views sent there.
    pub(in crate::hub::service) fn bot_taken_over(&mut self, bot: &str, to: String) {
        let Some(here) = self.bus.as_ref().map(|c| c.node_id().to_string()) else {
            return;
        };
        if here == to {
            return;
        }
        if crate::core::bots::keeps_socket(self.bots.welcoming.contains_key(bot), &here, &to) {
            // Two sockets registered at once: this one stays, the other yields to it.
            tracing::info!(bot, node = %to, "a bot's socket here and one on another node registered at once; this one stays");
            return self.op(Op::Held {
                node: to,
                bot: bot.to_string(),
                views: vec![],
            });
        }
        let had_socket = match self.bots.connected.remove(bot) {
            Some(conn) => {
                tracing::info!(bot, node = %to, "a bot connected on another node; its socket here is closed");
                self.bots.welcoming.remove(bot);
                self.bots.served.remove(bot);
                self.close_conn(conn, close::REPLACED, "the bot connected on another node");
                true
            }
            None => false,
        };
        let mut views = vec![];
        for (id, stage) in self.bots.stages.iter_mut() {
            if stage.bot == bot && (stage.bot_node.is_some() || had_socket) {
                stage.bot_node = Some(to.clone());
                views.push(stage.view(id));
            }
        }
        self.op(Op::Held {
            node: to,
            bot: bot.to_string(),
            views,
        });
    }
}
