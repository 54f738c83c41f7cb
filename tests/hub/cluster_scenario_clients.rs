//! The scripted clients of issue 15's cross-process scenarios. Each customer joins on
//! one node, exchanges two messages with the agent (each waits for its acknowledgement
//! and the agent's reply), then leaves; each agent answers every customer message. Both
//! record every frame that matters to the checker, in arrival order; a client whose
//! node dies either comes back on another node once the dead node is reaped (a customer
//! with `resume` and their last complete seq, an agent with their session) or stays gone.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use crate::cluster_checker::{Msg, Person, Role, Seen};
use crate::common::Ws;

/// How long a client waits for its next frame before the scenario counts as stuck: a
/// whole scenario's worth (customers late in line wait for many chats before theirs).
const STUCK: Duration = Duration::from_secs(240);

/// Where a client stands, for the scenario to know when the cluster is quiet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Connecting, or an agent not yet available.
    Starting,
    /// A customer in line.
    Waiting,
    /// A customer in a chat, between messages.
    Chatting,
    /// A customer whose first exchange is done, holding back the second until `go`;
    /// an agent who is available.
    Ready,
    /// A customer who left after their chat.
    Finished,
    /// A client whose node died and who does not come back.
    Gone,
}

/// What every client shares with the scenario.
#[derive(Clone)]
pub struct Ctx {
    /// Each node's `ws://host:port`.
    pub nodes: Arc<Vec<String>>,
    /// Customers hold back their second message until this is true.
    pub go: watch::Receiver<bool>,
    /// True once the killed node is reaped: who comes back reconnects then.
    pub reaped: watch::Receiver<bool>,
    pub comes_back: bool,
    pub phases: Arc<Mutex<HashMap<String, Phase>>>,
    /// Agents stop listening.
    pub done: CancellationToken,
    /// Every client's frames in and out, for a stuck scenario's message.
    pub trace: Arc<Mutex<HashMap<String, Vec<String>>>>,
}

impl Ctx {
    fn note(&self, name: &str, what: String) {
        self.trace
            .lock()
            .unwrap()
            .entry(name.to_string())
            .or_default()
            .push(what);
    }

    /// What `name` sent and got, and (for a customer) what their agents did.
    pub fn story(&self, name: &str) -> String {
        let trace = self.trace.lock().unwrap();
        let mine = trace.get(name).cloned().unwrap_or_default();
        let mut story = format!("== {name}:\n{}\n", mine.join("\n"));
        for agent in trace.keys().filter(|a| {
            mine.iter()
                .any(|m| m.contains(&format!("\"peer_name\":\"{}\"", a.to_uppercase())))
        }) {
            story += &format!("== {agent}:\n{}\n", trace[agent].join("\n"));
        }
        story
    }

    fn set(&self, name: &str, phase: Phase) {
        self.phases.lock().unwrap().insert(name.to_string(), phase);
    }

    /// The node a client of `node` moves to when it dies: one of the other two.
    fn elsewhere(&self, node: usize, me: usize) -> usize {
        (node + 1 + me % 2) % self.nodes.len()
    }
}

/// What a client ran into besides its checked observations.
#[derive(Debug)]
pub struct Run {
    pub person: Person,
    /// The node it was first on.
    pub node: usize,
    pub errors: Vec<Value>,
    /// `chat_ended` reasons, in order.
    pub ended: Vec<String>,
    /// `queued` frames with `requeued: true`.
    pub requeued: usize,
    /// The `resumed` (customer) or `agent_welcome` (agent) after coming back.
    pub back: Option<Value>,
    pub finished: bool,
    /// The node it came back on, if it did.
    pub moved_to: usize,
    /// Frames refused with `cluster_unavailable` (Redis slow or away) and sent again.
    pub refused: usize,
}

impl Run {
    fn new(name: &str, role: Role, node: usize) -> Self {
        Run {
            person: Person {
                name: name.to_string(),
                role,
                seen: vec![],
            },
            node,
            errors: vec![],
            ended: vec![],
            requeued: 0,
            back: None,
            finished: false,
            moved_to: node,
            refused: 0,
        }
    }

    /// Records `frame` for the checker if it is one it reads.
    fn record(&mut self, frame: &Value) {
        if let Some(seen) = seen_of(frame) {
            self.person.seen.push(seen);
        }
        match frame["type"].as_str() {
            // Refused for now, delivered to nobody: the client sends it again (counted).
            Some("error") if frame["code"] == "cluster_unavailable" => self.refused += 1,
            Some("error") => self.errors.push(frame.clone()),
            Some("chat_ended") => self.ended.push(frame["reason"].as_str().unwrap_or_default().into()),
            Some("queued") if frame["requeued"] == true => self.requeued += 1,
            _ => {}
        }
    }
}

fn msg(chat: &str, m: &Value) -> Msg {
    Msg {
        chat: chat.to_string(),
        seq: m["seq"].as_u64().expect("a message has a seq"),
        id: m["id"].as_str().expect("a message has an id").to_string(),
    }
}

fn snapshot(chat: &Value) -> (String, Vec<Msg>) {
    let id = chat["chat_id"].as_str().expect("a snapshot has a chat id");
    let messages = chat["messages"]
        .as_array()
        .map_or(vec![], |all| all.iter().map(|m| msg(id, m)).collect());
    (id.to_string(), messages)
}

/// The checker's view of a frame, if it has one.
pub fn seen_of(frame: &Value) -> Option<Seen> {
    let chat = || frame["chat_id"].as_str().unwrap_or_default().to_string();
    Some(match frame["type"].as_str()? {
        "message" => Seen::Message(msg(&chat(), frame)),
        "ack" => Seen::Ack(msg(&chat(), frame)),
        "chat_started" => Seen::ChatStarted {
            chat: chat(),
            peer: frame["peer_name"].as_str().unwrap_or_default().to_string(),
        },
        "chat_ended" => Seen::ChatEnded { chat: chat() },
        "agent_welcome" => Seen::Snapshot {
            chats: frame["chats"]
                .as_array()
                .map_or(vec![], |c| c.iter().map(snapshot).collect()),
        },
        "resumed" => Seen::Snapshot {
            chats: frame["chat"]
                .as_object()
                .map(|_| snapshot(&frame["chat"]))
                .into_iter()
                .collect(),
        },
        _ => return None,
    })
}

/// Sends `frame`; a connection that died meanwhile shows as the next read's `None`.
async fn send(ws: &mut Ws, frame: Value) {
    let _ = ws.inner.send(Message::Text(frame.to_string().into())).await;
}

/// The next JSON frame, or `None` once the connection is gone; stuck for [`STUCK`] panics.
async fn next_frame(ws: &mut Ws, who: &str) -> Option<Value> {
    loop {
        match tokio::time::timeout(STUCK, ws.inner.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => return Some(serde_json::from_str(&t).unwrap()),
            Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) => return None,
            Ok(Some(Ok(_))) => continue,
            Err(_) => panic!("{who} got nothing for {STUCK:?}: the scenario is stuck"),
        }
    }
}

/// The highest seq up to which `have` holds every message (what `resume` asks after).
fn complete_up_to(have: &BTreeSet<u64>) -> u64 {
    (1..).take_while(|seq| have.contains(seq)).last().unwrap_or(0)
}

/// A customer's current chat as they know it.
#[derive(Default)]
struct InChat {
    id: String,
    /// Exchanges done: a message of theirs acknowledged and answered.
    done: usize,
    /// Their message waiting for its ack and the answer: its client id and ack's seq.
    pending: Option<(String, Option<u64>)>,
    have: BTreeSet<u64>,
    agent_seqs: BTreeSet<u64>,
    left: bool,
}

impl InChat {
    fn take(&mut self, frame: &Value, from_agent: bool) {
        let seq = frame["seq"].as_u64().unwrap_or(0);
        self.have.insert(seq);
        if from_agent {
            self.agent_seqs.insert(seq);
        }
    }

    /// Their pending message is acknowledged and the agent answered after it.
    fn answered(&self) -> bool {
        matches!(&self.pending, Some((_, Some(acked))) if self.agent_seqs.range(acked + 1..).next().is_some())
    }
}

/// One customer, `me` among them: joins `category` on node `node`, two exchanges, leaves.
pub async fn customer(me: usize, name: String, category: String, node: usize, ctx: Ctx) -> Run {
    const EXCHANGES: usize = 2;
    let mut run = Run::new(&name, Role::Customer, node);
    let mut go = ctx.go.clone();
    let url = |node: usize| format!("{}/ws/customer", ctx.nodes[node]);
    let mut ws = Ws::connect(&url(node), &[]).await.expect("a node takes the customer");
    send(&mut ws, json!({"type": "join", "name": name, "category": category})).await;
    let mut token = None;
    let mut chat: Option<InChat> = None;
    // Between a `resume` and its answer nothing else may be sent (`not_joined`).
    let mut resuming = false;
    loop {
        // Drive: the next message, or leaving once both exchanges are done.
        if let Some(c) = chat.as_mut().filter(|c| !c.left && !resuming) {
            if c.answered() {
                c.pending = None;
                c.done += 1;
            }
            if c.pending.is_none() {
                if c.done == EXCHANGES {
                    send(&mut ws, json!({"type": "leave"})).await;
                    ctx.note(&name, "SENT leave".into());
                    c.left = true;
                } else if c.done == 0 || *go.borrow() {
                    let client_id = format!("{name}-{}-{}", c.id, c.done);
                    send(
                        &mut ws,
                        json!({"type": "message", "text": format!("hello {}", c.done), "client_id": client_id}),
                    )
                    .await;
                    ctx.note(&name, format!("SENT {client_id}"));
                    c.pending = Some((client_id, None));
                    ctx.set(&name, Phase::Chatting);
                } else {
                    ctx.set(&name, Phase::Ready);
                }
            }
        }
        let holding_back = chat
            .as_ref()
            .is_some_and(|c| c.pending.is_none() && !c.left && c.done > 0 && c.done < EXCHANGES);
        let frame = tokio::select! {
            frame = next_frame(&mut ws, &name) => frame,
            _ = go.changed(), if holding_back && !*go.borrow() => continue,
        };
        let Some(frame) = frame else {
            // The node is gone.
            ctx.note(&name, "CLOSED".into());
            if !ctx.comes_back {
                ctx.set(&name, Phase::Gone);
                return run;
            }
            ctx.set(&name, Phase::Starting);
            let mut reaped = ctx.reaped.clone();
            reaped.wait_for(|r| *r).await.unwrap();
            let other = ctx.elsewhere(node, me);
            run.moved_to = other;
            ws = Ws::connect(&url(other), &[])
                .await
                .expect("another node takes the customer");
            run.person.seen.push(Seen::Connected);
            let last_seq = chat.as_ref().map_or(0, |c| complete_up_to(&c.have));
            let token = token.as_ref().expect("welcomed before the node died");
            send(&mut ws, json!({"type": "resume", "token": token, "last_seq": last_seq})).await;
            ctx.note(&name, format!("SENT resume to node {other}, last_seq {last_seq}"));
            resuming = true;
            continue;
        };
        run.record(&frame);
        ctx.note(&name, frame.to_string());
        match frame["type"].as_str().unwrap_or_default() {
            "welcome" => token = frame["resume_token"].as_str().map(String::from),
            "queued" => ctx.set(&name, Phase::Waiting),
            "chat_started" => {
                chat = Some(InChat {
                    id: frame["chat_id"].as_str().unwrap().to_string(),
                    ..InChat::default()
                });
            }
            "resumed" => {
                resuming = false;
                run.back = Some(frame.clone());
                match frame["chat"]["chat_id"].as_str() {
                    Some(id) => {
                        let c = chat.get_or_insert_with(InChat::default);
                        c.id = id.to_string();
                        for m in frame["chat"]["messages"].as_array().into_iter().flatten() {
                            c.take(m, m["from"] == "agent");
                        }
                    }
                    None => {
                        chat = None;
                        ctx.set(&name, Phase::Waiting);
                    }
                }
            }
            "message" => {
                if let Some(c) = chat.as_mut() {
                    c.take(&frame, true);
                }
            }
            "ack" => {
                if let Some(c) = chat.as_mut() {
                    c.take(&frame, false);
                    if let Some((client_id, acked)) = c.pending.as_mut()
                        && frame["client_id"] == client_id.as_str()
                    {
                        *acked = frame["seq"].as_u64();
                    }
                }
            }
            "error" if frame["code"] == "cluster_unavailable" && (token.is_none() || resuming) => {
                // The join or resume was refused (the node could not reach Redis in
                // time): nothing happened; ask again after a moment.
                tokio::time::sleep(Duration::from_millis(200)).await;
                let again = match (&token, resuming) {
                    (Some(token), true) => {
                        let last_seq = chat.as_ref().map_or(0, |c| complete_up_to(&c.have));
                        json!({"type": "resume", "token": token, "last_seq": last_seq})
                    }
                    _ => json!({"type": "join", "name": name, "category": category}),
                };
                send(&mut ws, again).await;
            }
            "error" if frame["code"] == "cluster_unavailable" => {
                // A busy machine's Redis call timed out: the message reached nobody; the
                // drive sends it again after a moment.
                if let Some(c) = chat.as_mut()
                    && c.pending
                        .as_ref()
                        .is_some_and(|(id, _)| frame["client_id"] == id.as_str())
                {
                    c.pending = None;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
            "chat_ended" => {
                let left = chat.as_ref().is_some_and(|c| c.left);
                chat = None;
                if left {
                    run.finished = true;
                    ctx.set(&name, Phase::Finished);
                    return run;
                }
                // Their agent vanished: back in line (a `queued` follows).
            }
            _ => {}
        }
    }
}

/// One agent, `me` among them, on node `node`: goes available and answers every
/// customer message until the scenario is done.
pub async fn agent(me: usize, name: String, limit: usize, token: String, node: usize, ctx: Ctx) -> Run {
    let mut run = Run::new(&name, Role::Agent { limit }, node);
    let connect = |node: usize| {
        let url = format!("{}/ws/agent", ctx.nodes[node]);
        let auth = format!("Bearer {token}");
        async move {
            let mut ws = Ws::connect(&url, &[("authorization", &auth)]).await.ok()?;
            send(&mut ws, json!({"type": "set_available", "available": true})).await;
            Some(ws)
        }
    };
    let mut ws = connect(node).await.expect("a node takes the agent");
    // Customer messages answered: on another node the history comes again after the
    // welcome, and is not answered twice.
    let mut answered: HashSet<String> = HashSet::new();
    // Replies sent: client id → chat, to send again one refused for now.
    let mut replies: HashMap<String, String> = HashMap::new();
    loop {
        let frame = tokio::select! {
            frame = next_frame(&mut ws, &name) => frame,
            _ = ctx.done.cancelled() => return run,
        };
        let Some(frame) = frame else {
            ctx.note(&name, "CLOSED".into());
            if !ctx.comes_back {
                ctx.set(&name, Phase::Gone);
                return run;
            }
            ctx.set(&name, Phase::Starting);
            let mut reaped = ctx.reaped.clone();
            tokio::select! {
                _ = reaped.wait_for(|r| *r) => {}
                _ = ctx.done.cancelled() => return run,
            }
            run.moved_to = ctx.elsewhere(node, me);
            match connect(run.moved_to).await {
                Some(back) => {
                    ws = back;
                    run.person.seen.push(Seen::Connected);
                }
                // The scenario is over and its nodes are stopping.
                None if ctx.done.is_cancelled() => return run,
                None => panic!("{name}: no other node took the agent"),
            }
            run.back = Some(json!(null));
            continue;
        };
        run.record(&frame);
        ctx.note(&name, frame.to_string());
        match frame["type"].as_str().unwrap_or_default() {
            "agent_welcome" if run.back.is_some() => {
                run.back = Some(frame.clone());
                ctx.set(&name, Phase::Ready);
            }
            "profile" if frame["available"] == true => ctx.set(&name, Phase::Ready),
            "message" if frame["from"] == "customer" && answered.insert(frame["id"].to_string()) => {
                let chat = frame["chat_id"].as_str().unwrap_or_default();
                let client_id = format!("{name}-re-{}", frame["id"].as_str().unwrap_or_default());
                send(
                    &mut ws,
                    json!({"type": "message", "chat_id": chat, "text": "noted", "client_id": client_id}),
                )
                .await;
                replies.insert(client_id, chat.to_string());
            }
            "error" if frame["code"] == "cluster_unavailable" => {
                let client_id = frame["client_id"].as_str().unwrap_or_default();
                if let Some(chat) = replies.get(client_id) {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    send(
                        &mut ws,
                        json!({"type": "message", "chat_id": chat, "text": "noted", "client_id": client_id}),
                    )
                    .await;
                }
            }
            _ => {}
        }
    }
}
