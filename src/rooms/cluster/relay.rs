//! A node's listener on its rooms channel: answers to its own requests, frames for its
//! remote members, and, as a home, members of other nodes seated through stand-ins.

use std::sync::atomic::Ordering;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::wire::{Wire, WireAdmitted, WireView, channel, close_reason};
use super::{
    ANSWER_TIMEOUT, RESUBSCRIBE_MAX, RESUBSCRIBE_START, RemoteJoin, RoomsCluster, StandIn, local_view, seat_of,
};
use crate::cluster::subscription::{self, Listener, Resubscribing};
use crate::core::room::{Refusal, Seat};
use crate::rooms::live::{Command, Conn, OUTBOX, Outbound};
use crate::rooms::token::RoomClaims;

impl RoomsCluster {
    // ---------- the listener ----------

    pub(super) async fn listen(self, shutdown: CancellationToken) {
        let mine = channel(self.0.cluster.node_id());
        let resubscribing = Resubscribing {
            timeout: ANSWER_TIMEOUT,
            first_pause: RESUBSCRIBE_START,
            longest_pause: RESUBSCRIBE_MAX,
        };
        let cluster = self.0.cluster.clone();
        subscription::listen(
            &cluster,
            &mine,
            "this node's rooms channel",
            resubscribing,
            &self,
            &shutdown,
        )
        .await;
    }

    async fn received_wire(&self, wire: Wire) {
        match wire {
            Wire::Admitted { req, .. } | Wire::Viewed { req, .. } => {
                let waiting = self.0.pending.lock().expect("not poisoned").remove(&req);
                if let Some(reply) = waiting {
                    let _ = reply.send(wire);
                }
            }
            Wire::Out { conn, frame, close } => {
                let out = self
                    .0
                    .remote
                    .lock()
                    .expect("not poisoned")
                    .get(&conn)
                    .map(|m| m.out.clone());
                let Some(out) = out else { return };
                // Never waits: one member not reading must not hold up this node's rooms
                // channel. A full outbox closes that member, as the rooms task does.
                let full = |out: mpsc::Sender<Outbound>| {
                    tracing::info!(conn, "remote room member not reading; closing");
                    tokio::spawn(async move {
                        let _ = out.send(Outbound::Close(1008, "not reading")).await;
                    });
                };
                if let Some(text) = frame
                    && let Err(mpsc::error::TrySendError::Full(_)) = out.try_send(Outbound::Frame(text.into()))
                {
                    return full(out);
                }
                if let Some((code, reason)) = close
                    && let Err(mpsc::error::TrySendError::Full(_)) =
                        out.try_send(Outbound::Close(code, close_reason(&reason)))
                {
                    full(out);
                }
            }
            Wire::Connect {
                req,
                from,
                from_incarnation,
                conn,
                claims,
                agent_id,
                conversation_id,
            } => {
                let member = RemoteJoin {
                    req,
                    node: from,
                    incarnation: from_incarnation,
                    conn,
                };
                self.seat_remote(member, claims, agent_id, conversation_id).await;
            }
            Wire::Frame { from, conn, text } => {
                let found = self
                    .0
                    .stand_ins
                    .lock()
                    .expect("not poisoned")
                    .get(&(from, conn))
                    .map(|s| (s.id, s.room.clone(), s.seat));
                let Some((conn_id, room, seat)) = found else { return };
                // Checked on the member's node already; a frame that does not parse here
                // comes from a node of another version and is dropped.
                if let Ok(frame) = serde_json::from_str(&text) {
                    let _ = self
                        .0
                        .commands
                        .send(Command::Frame {
                            room,
                            seat,
                            conn_id,
                            frame,
                        })
                        .await;
                }
            }
            Wire::Disconnect { from, conn } => {
                let gone = self.0.stand_ins.lock().expect("not poisoned").remove(&(from, conn));
                if let Some(s) = gone {
                    s.disconnect(&self.0.commands).await;
                }
            }
            Wire::View { req, from, room } => {
                let rooms = self.clone();
                tokio::spawn(async move {
                    let view = local_view(&rooms.0.commands, &room).await.map(|v| WireView {
                        agent_present: v.agent_present,
                        agent: v.agent,
                        visitor: v.visitor,
                        visitor_present: v.visitor_present,
                        call: v.call.to_string(),
                        visitor_person: v.visitor_person,
                    });
                    let _ = rooms.publish(&from, &Wire::Viewed { req, view }).await;
                });
            }
            Wire::End { room } => {
                let _ = self.0.commands.send(Command::End { room }).await;
            }
        }
    }

    /// Home side: a member on another node connects; they get a stand-in connection here
    /// whose frames a relay task publishes to their node, in order. The stand-in is
    /// registered and the connect queued to the rooms task before this returns, so a
    /// `frame` or `disconnect` the listener reads next comes after it, as on one node.
    async fn seat_remote(
        &self,
        member: RemoteJoin,
        claims: RoomClaims,
        agent_id: String,
        conversation_id: Option<String>,
    ) {
        let RemoteJoin {
            req,
            node,
            incarnation,
            conn: remote_conn,
        } = member;
        let id = self.0.next_stand_in.fetch_add(1, Ordering::Relaxed);
        let (out, mut outbox) = mpsc::channel::<Outbound>(OUTBOX);
        let rooms = self.clone();
        let to = node.clone();
        tokio::spawn(async move {
            while let Some(o) = outbox.recv().await {
                let wire = match o {
                    Outbound::Frame(text) => Wire::Out {
                        conn: remote_conn,
                        frame: Some(text.to_string()),
                        close: None,
                    },
                    Outbound::Close(code, reason) => Wire::Out {
                        conn: remote_conn,
                        frame: None,
                        close: Some((code, reason.to_string())),
                    },
                };
                if let Err(e) = rooms.publish(&to, &wire).await {
                    tracing::warn!(error = %e, "a room frame could not be relayed to the member's node");
                }
            }
        });
        let seat = seat_of(&claims);
        let room = claims.room.clone();
        self.0.stand_ins.lock().expect("not poisoned").insert(
            (node.clone(), remote_conn),
            StandIn {
                id,
                room: room.clone(),
                seat,
                node: format!("{node} {incarnation}"),
            },
        );
        self.0.homed.lock().expect("not poisoned").insert(room);
        let (reply, answer) = oneshot::channel();
        let command = Command::Connect {
            claims,
            agent_id,
            conversation_id,
            conn: Conn { id, out },
            reply,
        };
        if self.0.commands.send(command).await.is_err() {
            return; // this node is stopping; the member's node times out
        }
        let rooms = self.clone();
        tokio::spawn(async move {
            let result = match answer.await {
                Ok(Ok(a)) => Ok(WireAdmitted {
                    visitor: a.seat == Seat::Visitor,
                    peer: a.peer,
                    call: a.call.to_string(),
                }),
                Ok(Err(why)) => {
                    rooms
                        .0
                        .stand_ins
                        .lock()
                        .expect("not poisoned")
                        .remove(&(node.clone(), remote_conn));
                    Err(match why {
                        Refusal::Full => "full".to_string(),
                        _ => "ended".to_string(),
                    })
                }
                Err(_) => return,
            };
            if let Err(e) = rooms.publish(&node, &Wire::Admitted { req, result }).await {
                tracing::warn!(error = %e, "the answer to a remote room member could not be sent");
            }
        });
    }
}

/// This node's rooms channel: every message a [`Wire`].
impl Listener for RoomsCluster {
    async fn resubscribed(&self) {}

    async fn received(&self, payload: String) {
        match serde_json::from_str::<Wire>(&payload) {
            Ok(wire) => self.received_wire(wire).await,
            Err(_) => tracing::warn!("ignored a malformed message on this node's rooms channel"),
        }
    }
}
