//! Delivery of encoded frames to the people the routing core names.
//!
//! The hub addresses customers, agents and buddies, never sockets; this
//! module maps them to connections. [`Delivery`] is the seam a multi-node
//! deployment implements to reach people connected to other nodes.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::ws::Utf8Bytes;
use smallvec::SmallVec;

use crate::core::presence::BuddyId;
use crate::core::routing::{AgentId, CustomerId};

pub use super::outbox::ConnId;
use super::outbox::{Outbox, Pushed};

/// What a connection's writer is asked to do.
#[derive(Debug, Clone)]
pub enum Outbound {
    Frame(Utf8Bytes),
    /// Send a close frame with this code and reason, then stop.
    Close(u16, &'static str),
}

/// What the sender of a chat message gets back once the message is durable. The
/// connection it came from has the text, so it gets the compact `ack`; the sender's other
/// connections (another tab or device) have not seen it, so they get the whole `message`.
#[derive(Debug, Clone)]
pub struct SenderCopy {
    /// The connection that sent it; `None` when it came through another node or process,
    /// so every connection here gets it whole.
    origin: Option<ConnId>,
    ack: Outbound,
    whole: Outbound,
}

impl SenderCopy {
    /// Sent from `origin`: the compact `ack` there, the whole message elsewhere.
    pub fn sent_from(origin: ConnId, ack: Utf8Bytes, whole: Outbound) -> Self {
        Self {
            origin: Some(origin),
            ack: Outbound::Frame(ack),
            whole,
        }
    }

    /// Sent from no connection here: the whole message everywhere.
    pub fn whole_everywhere(whole: Outbound) -> Self {
        Self {
            origin: None,
            ack: whole.clone(),
            whole,
        }
    }

    /// Sends each of `conns` its copy; the last one takes it rather than a shared clone
    /// (almost always the only one: the sending connection and its `ack`).
    pub fn send_to(self, conns: &[ConnHandle]) {
        let Some((last, others)) = conns.split_last() else {
            return;
        };
        for conn in others {
            conn.send(self.for_conn(conn.id).clone());
        }
        let Self { origin, ack, whole } = self;
        last.send(if origin == Some(last.id) { ack } else { whole });
    }

    pub fn for_conn(&self, conn: ConnId) -> &Outbound {
        if self.origin == Some(conn) {
            &self.ack
        } else {
            &self.whole
        }
    }
}

/// The hub's end of one connection: its bounded outbox, through which it can also make it stop.
#[derive(Debug, Clone)]
pub struct ConnHandle {
    pub id: ConnId,
    pub outbox: Arc<Outbox>,
}

impl ConnHandle {
    /// Queues a frame without waiting. A full outbox means the client stopped
    /// reading: it is closed rather than allowed to grow memory without bound.
    pub fn send(&self, frame: Outbound) {
        match frame {
            Outbound::Frame(text) => {
                if self.outbox.push(text) == Pushed::JustKicked {
                    tracing::warn!(
                        conn = self.id.0,
                        "closing a connection whose outbound buffer is full (client not reading)"
                    );
                }
            }
            Outbound::Close(code, reason) => self.outbox.close(code, reason),
        }
    }
}

/// Someone the hub can address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Recipient {
    Customer(CustomerId),
    Agent(AgentId),
    Buddy(BuddyId),
}

/// Where frames for a recipient go. Implemented locally here; a cluster
/// implementation forwards to the node holding the recipient.
pub trait Delivery: Send {
    fn deliver(&mut self, to: &Recipient, frame: &Outbound);
}

/// Every recipient connected to this process, each with one or more connections.
#[derive(Default)]
pub struct LocalDelivery {
    /// Inline for one connection, nearly everyone's count: no allocation per recipient.
    routes: HashMap<Recipient, SmallVec<[ConnHandle; 1]>>,
}

impl LocalDelivery {
    pub fn attach(&mut self, to: Recipient, conn: ConnHandle) {
        self.routes.entry(to).or_default().push(conn);
    }

    /// Forgets one connection of a recipient; returns how many they still have. The chats
    /// it was a side of are suspended (`live_chat`): it relays nothing directly any more.
    pub fn detach(&mut self, to: &Recipient, conn: ConnId) -> usize {
        let Some(conns) = self.routes.get_mut(to) else { return 0 };
        conns.retain(|c| {
            let gone = c.id == conn;
            if gone {
                suspend_chats_of(c);
            }
            !gone
        });
        let left = conns.len();
        if left == 0 {
            self.routes.remove(to);
        }
        left
    }

    /// Closes and forgets every connection of a recipient.
    pub fn close(&mut self, to: &Recipient, code: u16, reason: &'static str) {
        for conn in self.routes.remove(to).unwrap_or_default() {
            suspend_chats_of(&conn);
            conn.send(Outbound::Close(code, reason));
        }
    }

    pub fn connections(&self, to: &Recipient) -> &[ConnHandle] {
        self.routes.get(to).map_or(&[], |conns| conns.as_slice())
    }

    pub fn all(&self) -> impl Iterator<Item = &ConnHandle> {
        self.routes.values().flatten()
    }
}

/// A connection leaves its chats' direct path: they wait for the hub to resume them.
fn suspend_chats_of(conn: &ConnHandle) {
    for chat in conn.outbox.take_chats() {
        chat.connection_gone();
    }
}

impl Delivery for LocalDelivery {
    fn deliver(&mut self, to: &Recipient, frame: &Outbound) {
        for conn in self.connections(to) {
            conn.send(frame.clone());
        }
    }
}
