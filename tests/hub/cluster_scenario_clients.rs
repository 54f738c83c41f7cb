//! The scripted clients of the cluster's cross-process scenarios. Each customer joins on
//! one node, exchanges two messages with the agent (each waits for its acknowledgement
//! and the agent's reply), then leaves; each agent answers every customer message. Both
//! record every frame that matters to the checker, in arrival order; a client whose
//! node dies either comes back on another node once the dead node is reaped (a customer
//! with `resume` and their last complete seq, an agent with their session) or stays gone.
//!
//! With [`Traffic`] (scenario 3) the script is drawn from a seed: how many exchanges, a
//! pause before each message, agents ending chats themselves (after an answer, or when
//! the customer went away), and a patience: a client whose acknowledgement does not come
//! gives the connection up and moves to another node, as a client with a heartbeat
//! would; a client whose connection closes moves at once.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use crate::cluster_checker::{Msg, Person, Role, Seen};
use crate::common::Ws;

/// How long a client waits for its next frame before the scenario counts as stuck: a
/// whole scenario's worth (customers late in line wait for many chats before theirs).
const STUCK: Duration = Duration::from_secs(240);

/// How long a client waits for a node to take its connection before trying another (a
/// stopped node's kernel takes the TCP connection, and nothing answers).
const CONNECT_PATIENCE: Duration = Duration::from_secs(3);

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
    /// Scenario 3's random traffic; `None`: the fixed script.
    pub traffic: Option<Traffic>,
}

/// Scenario 3's random traffic: each client draws its own script from `seed`.
#[derive(Clone, Copy, Debug)]
pub struct Traffic {
    pub seed: u64,
    /// A customer's exchanges: 1 to this many.
    pub max_exchanges: usize,
    /// A pause before each message: up to this long.
    pub max_think: Duration,
    /// How long a client waits for the acknowledgement of what it sent (with nothing
    /// at all coming) before it gives the connection up and moves: drawn in this range.
    pub patience: (Duration, Duration),
    /// The chance an agent ends a chat after answering in it.
    pub agent_ends: f64,
    /// The chance an agent ends a chat when told its customer went away.
    pub agent_ends_when_away: f64,
}

impl Traffic {
    /// Client `me`'s own random numbers (`role` keeps customers' and agents' apart).
    fn rng(&self, role: u64, me: usize) -> StdRng {
        StdRng::seed_from_u64(self.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (role << 32) ^ me as u64)
    }

    fn patience(&self, rng: &mut StdRng) -> Duration {
        rng.random_range(self.patience.0..=self.patience.1)
    }
}

/// Seconds since the process's first call: the time of every traced frame, and of the
/// scenarios' faults as they print them.
pub fn clock() -> f64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START.get_or_init(std::time::Instant::now).elapsed().as_secs_f64()
}

impl Ctx {
    fn note(&self, name: &str, what: String) {
        // Stamped (`clock`), to line the stories up with the faults.
        let what = format!("{:8.3} {what}", clock());
        self.trace
            .lock()
            .unwrap()
            .entry(name.to_string())
            .or_default()
            .push(what);
    }

    /// What `name` sent and got, and (for a customer) what their agents did. A customer
    /// who joined again under another name (`name~n`) is traced under their first.
    pub fn story(&self, name: &str) -> String {
        let trace = self.trace.lock().unwrap();
        let name = name.split('~').next().unwrap_or(name);
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

    /// A connection to `path` on another node than `from` (the client was there): the
    /// first that takes it, trying the nodes in turn a moment apart (scenario 4: one may
    /// be down, or stopped and not answering, or restarting). With the node it is on;
    /// `None` once the scenario is over.
    async fn connect_elsewhere(
        &self,
        from: usize,
        me: usize,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Option<(usize, Ws)> {
        let deadline = tokio::time::Instant::now() + STUCK;
        let mut node = self.elsewhere(from, me);
        loop {
            let url = format!("{}{path}", self.nodes[node]);
            if let Ok(Ok(ws)) = tokio::time::timeout(CONNECT_PATIENCE, Ws::connect(&url, headers)).await {
                return Some((node, ws));
            }
            if self.done.is_cancelled() {
                return None;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no node took a connection for {STUCK:?}"
            );
            node = (node + 1) % self.nodes.len();
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
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
    /// Frames refused with `cluster_unavailable` (Redis slow or away) and sent again,
    /// and (scenario 3) an agent's desk refused while another node still holds them.
    pub refused: usize,
    /// Scenario 3: frames that crossed their chat's end (the other side ended it
    /// meanwhile), refused (`crossed_the_end`).
    pub crossed_the_end: usize,
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
            crossed_the_end: 0,
        }
    }

    /// Records `frame` for the checker if it is one it reads; `traffic`: scenario 3's
    /// (where a chat's end may cross what the other side sends).
    fn record(&mut self, frame: &Value, traffic: bool) {
        if let Some(seen) = seen_of(frame) {
            self.person.seen.push(seen);
        }
        let crossed = traffic && crossed_the_end(frame);
        match frame["type"].as_str() {
            // Refused for now, delivered to nobody: the client sends it again (counted).
            Some("error") if frame["code"] == "cluster_unavailable" => self.refused += 1,
            // Another node still holds the agent (it stalled): the desk tries again.
            Some("error") if frame["code"] == "already_online" && traffic => self.refused += 1,
            Some("error") if crossed => self.crossed_the_end += 1,
            // Counted by the checker.
            Some("error") if frame["code"] == "resume_expired" => {}
            Some("error") => self.errors.push(frame.clone()),
            Some("chat_ended") => self.ended.push(frame["reason"].as_str().unwrap_or_default().into()),
            Some("queued") if frame["requeued"] == true => self.requeued += 1,
            _ => {}
        }
    }
}

/// A refusal of a frame that crossed its chat's end (the other side ended it meanwhile):
/// `unknown_chat`, `not_in_chat`, or, a customer's visit being over, `not_joined` (a
/// message, refused without its client id) and `unknown_customer` (a `leave`).
fn crossed_the_end(frame: &Value) -> bool {
    let code = frame["code"].as_str().unwrap_or_default();
    frame["type"] == "error" && ["unknown_chat", "not_in_chat", "not_joined", "unknown_customer"].contains(&code)
}

fn msg(chat: &str, m: &Value) -> Msg {
    Msg {
        chat: chat.to_string(),
        seq: m["seq"].as_u64().expect("a message has a seq"),
        id: m["id"].as_str().expect("a message has an id").to_string(),
        client_id: m["client_id"].as_str().map(String::from),
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
            handed_on: frame["transfer"].is_object() || frame["continued"] == true,
            messages: snapshot(frame).1,
        },
        "chat_ended" => Seen::ChatEnded { chat: chat() },
        "error" if frame["code"] == "resume_expired" => Seen::ResumeExpired,
        "error" if frame["client_id"].is_null() && frame["code"] != "cluster_unavailable" => Seen::Refused {
            code: frame["code"].as_str().unwrap_or_default().to_string(),
        },
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

/// What a client's connection brought next.
enum Next {
    Frame(Value),
    /// The connection is gone: the server closed it (with its close code, if it gave
    /// one), or (`None`) it broke, or the client gave it up for want of an answer.
    Gone(Option<u16>),
}

/// The next JSON frame, or the connection's end. With `patience`, nothing for that
/// long gives the connection up (scenario 3: an acknowledgement is awaited); otherwise
/// stuck for [`STUCK`] panics.
async fn next_frame(ws: &mut Ws, who: &str, patience: Option<Duration>) -> Next {
    loop {
        match tokio::time::timeout(patience.unwrap_or(STUCK), ws.inner.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => return Next::Frame(serde_json::from_str(&t).unwrap()),
            Ok(Some(Ok(Message::Close(frame)))) => return Next::Gone(frame.map(|f| u16::from(f.code))),
            Ok(None) | Ok(Some(Err(_))) => return Next::Gone(None),
            Ok(Some(Ok(_))) => continue,
            Err(_) if patience.is_some() => return Next::Gone(None),
            Err(_) => panic!("{who} got nothing for {STUCK:?}: the scenario is stuck"),
        }
    }
}

/// What is noted of a connection's end: a close with its code is the checker's too.
fn gone(run: &mut Run, ctx: &Ctx, code: Option<u16>) {
    ctx.note(&run.person.name, format!("CLOSED {code:?}"));
    if code.is_some() {
        run.person.seen.push(Seen::Closed { code });
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
    /// Which of the visit's pairings it is (from 1): a conversation continued after
    /// `agent_gone` comes back under its id, and its messages need client ids of their
    /// own — a message sent with an earlier one's client id and text within 30 s is taken
    /// for that one, sent again (docs/protocol.md, several nodes).
    pairing: usize,
    /// Exchanges done: a message of theirs acknowledged and answered.
    done: usize,
    /// Their message waiting for its ack and the answer: its client id and ack's seq.
    pending: Option<(String, Option<u64>)>,
    have: BTreeSet<u64>,
    agent_seqs: BTreeSet<u64>,
    left: bool,
    /// Over (its `chat_ended` came) with their last message's ack still on the way:
    /// the agent's answer and the end may pass it.
    ended: bool,
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

/// One customer, `me` among them: joins `category` on node `node`, two exchanges (with
/// [`Traffic`]: one to its most, each after a pause), leaves. A chat the agent ends is
/// over for them too.
pub async fn customer(me: usize, name: String, category: String, node: usize, ctx: Ctx) -> Run {
    let traffic = ctx.traffic;
    let mut rng = traffic.map_or_else(|| StdRng::seed_from_u64(0), |t| t.rng(0, me));
    let exchanges = traffic.map_or(2, |t| rng.random_range(1..=t.max_exchanges));
    let patience = traffic.map(|t| t.patience(&mut rng));
    let mut run = Run::new(&name, Role::Customer, node);
    let mut go = ctx.go.clone();
    let url = |node: usize| format!("{}/ws/customer", ctx.nodes[node]);
    // Its node may be down for now (scenario 4): another takes them.
    let mut ws = match Ws::connect(&url(node), &[]).await {
        Ok(ws) => ws,
        Err(_) => {
            let (other, ws) = ctx
                .connect_elsewhere(node, me, "/ws/customer", &[])
                .await
                .expect("another node takes the customer");
            run.moved_to = other;
            ws
        }
    };
    send(&mut ws, json!({"type": "join", "name": name, "category": category})).await;
    let mut token: Option<String> = None;
    let mut chat: Option<InChat> = None;
    // Between a `resume` and its answer nothing else may be sent (`not_joined`).
    let mut resuming = false;
    // Joins sent again after a connection closed before its welcome.
    let mut rejoins = 0;
    // Chats started (or found in a `resumed`, paired while away) so far.
    let mut pairings = 0;
    loop {
        if chat
            .as_ref()
            .is_some_and(|c| c.ended && !matches!(c.pending, Some((_, None))))
        {
            // Over, and their last message answered.
            run.finished = true;
            ctx.set(&name, Phase::Finished);
            return run;
        }
        // Drive: the next message, or leaving once every exchange is done.
        if let Some(c) = chat.as_mut().filter(|c| !c.left && !resuming) {
            if c.answered() {
                c.pending = None;
                c.done += 1;
            }
            if c.pending.is_none() {
                if c.done == exchanges {
                    send(&mut ws, json!({"type": "leave"})).await;
                    ctx.note(&name, "SENT leave".into());
                    run.person.seen.push(Seen::LeaveSent);
                    c.left = true;
                } else if c.done == 0 || *go.borrow() {
                    if let Some(t) = traffic {
                        tokio::time::sleep(rng.random_range(Duration::ZERO..=t.max_think)).await;
                    }
                    let client_id = format!("{name}-{}-{}-{}", c.id, c.pairing, c.done);
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
            .is_some_and(|c| c.pending.is_none() && !c.left && c.done > 0 && c.done < exchanges);
        let awaiting_ack = chat.as_ref().is_some_and(|c| matches!(c.pending, Some((_, None))));
        let next = tokio::select! {
            next = next_frame(&mut ws, &name, patience.filter(|_| awaiting_ack)) => next,
            _ = go.changed(), if holding_back && !*go.borrow() => continue,
        };
        let frame = match next {
            Next::Frame(frame) => frame,
            Next::Gone(code) => {
                // The node is gone (or stalled, or refused the resume for now).
                gone(&mut run, &ctx, code);
                if let Some(c) = chat.as_ref().filter(|c| c.ended) {
                    // They saw their chat end: nothing to come back to. Their last
                    // message was never acknowledged: sent after the end (refused), or
                    // before it, its `ack` held by a node that stalled right after.
                    if let Some((client_id, None)) = &c.pending {
                        run.person.seen.push(Seen::Unanswered {
                            chat: c.id.clone(),
                            client_id: client_id.clone(),
                        });
                    }
                    run.finished = true;
                    ctx.set(&name, Phase::Finished);
                    return run;
                }
                if !ctx.comes_back {
                    ctx.set(&name, Phase::Gone);
                    return run;
                }
                ctx.set(&name, Phase::Starting);
                let mut reaped = ctx.reaped.clone();
                reaped.wait_for(|r| *r).await.unwrap();
                if traffic.is_some() {
                    // Moving at once: a refusal ("try again") is tried again after a moment.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                let (other, back) = ctx
                    .connect_elsewhere(run.moved_to, me, "/ws/customer", &[])
                    .await
                    .expect("another node takes the customer");
                run.moved_to = other;
                ws = back;
                run.person.seen.push(Seen::Connected);
                match &token {
                    Some(token) => {
                        let last_seq = chat.as_ref().map_or(0, |c| complete_up_to(&c.have));
                        send(&mut ws, json!({"type": "resume", "token": token, "last_seq": last_seq})).await;
                        ctx.note(&name, format!("SENT resume to node {other}, last_seq {last_seq}"));
                        resuming = true;
                    }
                    None => {
                        // Never welcomed: nothing to resume, join again. The join the node
                        // took (if it did) is another visitor, never told of: the new one
                        // goes by another name, so the checker tells them apart.
                        rejoins += 1;
                        run.person.name = format!("{name}~{rejoins}");
                        let again = json!({"type": "join", "name": run.person.name, "category": category});
                        send(&mut ws, again).await;
                        ctx.note(&name, format!("SENT join to node {other} as {}", run.person.name));
                    }
                }
                continue;
            }
        };
        run.record(&frame, traffic.is_some());
        ctx.note(&name, frame.to_string());
        match frame["type"].as_str().unwrap_or_default() {
            "welcome" => token = frame["resume_token"].as_str().map(String::from),
            "queued" => ctx.set(&name, Phase::Waiting),
            "chat_started" => {
                pairings += 1;
                chat = Some(InChat {
                    id: frame["chat_id"].as_str().unwrap().to_string(),
                    pairing: pairings,
                    ..InChat::default()
                });
            }
            "resumed" => {
                resuming = false;
                run.back = Some(frame.clone());
                match frame["chat"]["chat_id"].as_str() {
                    Some(id) => {
                        let c = chat.get_or_insert_with(InChat::default);
                        if c.id != id {
                            // Paired while away.
                            pairings += 1;
                            *c = InChat {
                                id: id.to_string(),
                                pairing: pairings,
                                ..InChat::default()
                            };
                        }
                        for m in frame["chat"]["messages"].as_array().into_iter().flatten() {
                            c.take(m, m["from"] == "agent");
                            if let Some((client_id, acked @ None)) = c.pending.as_mut()
                                && m["client_id"] == client_id.as_str()
                            {
                                *acked = m["seq"].as_u64();
                            }
                        }
                        if matches!(c.pending, Some((_, None))) {
                            // Never stamped (its node stalled or died first): sent again.
                            c.pending = None;
                        }
                        // A `leave` the chat outlived never took: sent again.
                        c.left = false;
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
            "error" if frame["code"] == "resume_expired" => {
                // Their visit is over. After their own `leave` (its answer lost: refused
                // `cluster_unavailable` when its call timed out on a stalled node, yet
                // applied) that is the leave taking: they finished, and the checker
                // requires their chat archived as closed. Otherwise the checker counts
                // it: every resume here is within the grace period.
                if run.person.seen.iter().any(|s| matches!(s, Seen::LeaveSent)) {
                    run.finished = true;
                    ctx.set(&name, Phase::Finished);
                } else {
                    ctx.set(&name, Phase::Gone);
                }
                return run;
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
                    _ => json!({"type": "join", "name": run.person.name, "category": category}),
                };
                send(&mut ws, again).await;
            }
            "error" if frame["code"] == "cluster_unavailable" => {
                // A busy machine's Redis call timed out: the message (or the `leave`,
                // which has no client id) reached nobody; the drive sends it again after
                // a moment.
                if let Some(c) = chat.as_mut() {
                    if c.pending
                        .as_ref()
                        .is_some_and(|(id, _)| frame["client_id"] == id.as_str())
                    {
                        c.pending = None;
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    } else if c.left && !c.ended && frame["client_id"].is_null() {
                        c.left = false;
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
            "error" if traffic.is_some() && crossed_the_end(&frame) => {
                // Their message crossed the chat's end (recorded): nothing more to say;
                // its `chat_ended` is on the way, or came (then they are done).
                if let Some(c) = chat.as_mut() {
                    c.pending = None;
                    c.left = true;
                }
            }
            "chat_ended" => {
                let left = chat.as_ref().is_some_and(|c| c.left);
                if !left && frame["reason"] != "ended" {
                    // Their agent vanished: back in line (a `queued` follows).
                    chat = None;
                    continue;
                }
                // They left, or the agent ended it: the visit is over, once their last
                // message's answer (an ack, or its refusal) is in.
                if let Some(c) = chat.as_mut().filter(|c| matches!(c.pending, Some((_, None)))) {
                    c.left = true;
                    c.ended = true;
                    continue;
                }
                run.finished = true;
                ctx.set(&name, Phase::Finished);
                return run;
            }
            _ => {}
        }
    }
}

/// An agent's answer to a customer message, under its client id.
fn reply(chat: &str, client_id: &str) -> Value {
    json!({"type": "message", "chat_id": chat, "text": "noted", "client_id": client_id})
}

/// One agent, `me` among them, on node `node`: goes available and answers every
/// customer message until the scenario is done; with [`Traffic`], ends some chats.
pub async fn agent(me: usize, name: String, limit: usize, token: String, node: usize, ctx: Ctx) -> Run {
    let traffic = ctx.traffic;
    let mut rng = traffic.map_or_else(|| StdRng::seed_from_u64(0), |t| t.rng(1, me));
    let patience = traffic.map(|t| t.patience(&mut rng));
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
    // Replies sent and not yet acknowledged: client id → chat, to send again one
    // refused for now or never stamped.
    let mut replies: HashMap<String, String> = HashMap::new();
    // The chats they hold: one is ended only while it runs.
    let mut open: HashSet<String> = HashSet::new();
    loop {
        let next = tokio::select! {
            next = next_frame(&mut ws, &name, patience.filter(|_| !replies.is_empty())) => next,
            _ = ctx.done.cancelled() => return run,
        };
        let frame = match next {
            Next::Frame(frame) => frame,
            Next::Gone(code) => {
                gone(&mut run, &ctx, code);
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
                if traffic.is_some() {
                    // Moving at once: a desk refused for now is tried again after a moment.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                let auth = format!("Bearer {token}");
                let back = ctx
                    .connect_elsewhere(run.moved_to, me, "/ws/agent", &[("authorization", &auth)])
                    .await;
                match back {
                    Some((other, mut back)) => {
                        send(&mut back, json!({"type": "set_available", "available": true})).await;
                        run.moved_to = other;
                        ws = back;
                        run.person.seen.push(Seen::Connected);
                    }
                    // The scenario is over and its nodes are stopping.
                    None if ctx.done.is_cancelled() => return run,
                    None => panic!("{name}: no other node took the agent"),
                }
                run.back = Some(json!(null));
                continue;
            }
        };
        run.record(&frame, traffic.is_some());
        ctx.note(&name, frame.to_string());
        let chat = frame["chat_id"].as_str().unwrap_or_default().to_string();
        match frame["type"].as_str().unwrap_or_default() {
            "agent_welcome" => {
                if run.back.is_some() {
                    run.back = Some(frame.clone());
                    ctx.set(&name, Phase::Ready);
                }
                // What they missed while away: customer messages not yet answered, and
                // their own replies that were never stamped (sent again; the rest were).
                open.clear();
                let mut stamped = HashSet::new();
                let mut unanswered = vec![];
                for held in frame["chats"].as_array().into_iter().flatten() {
                    let chat = held["chat_id"].as_str().unwrap_or_default().to_string();
                    for m in held["messages"].as_array().into_iter().flatten() {
                        let id = m["id"].as_str().unwrap_or_default().to_string();
                        if m["from"] == "customer" && answered.insert(id.clone()) {
                            unanswered.push((chat.clone(), id));
                        } else if let Some(client_id) = m["client_id"].as_str() {
                            stamped.insert(client_id.to_string());
                        }
                    }
                    open.insert(chat);
                }
                replies.retain(|client_id, chat| !stamped.contains(client_id) && open.contains(chat));
                for (client_id, chat) in &replies {
                    send(&mut ws, reply(chat, client_id)).await;
                }
                for (chat, id) in unanswered {
                    let client_id = format!("{name}-re-{id}");
                    send(&mut ws, reply(&chat, &client_id)).await;
                    replies.insert(client_id, chat);
                }
            }
            "profile" if frame["available"] == true => ctx.set(&name, Phase::Ready),
            "chat_started" => {
                open.insert(chat);
            }
            "chat_ended" => {
                open.remove(&chat);
                replies.retain(|_, of| *of != chat);
            }
            "message"
                if frame["from"] == "customer" && answered.insert(frame["id"].as_str().unwrap_or_default().into()) =>
            {
                let client_id = format!("{name}-re-{}", frame["id"].as_str().unwrap_or_default());
                send(&mut ws, reply(&chat, &client_id)).await;
                replies.insert(client_id, chat.clone());
                if traffic.is_some_and(|t| rng.random_bool(t.agent_ends)) && open.remove(&chat) {
                    send(&mut ws, json!({"type": "end_chat", "chat_id": chat})).await;
                    ctx.note(&name, format!("SENT end_chat {chat}"));
                }
            }
            "peer_away" if traffic.is_some_and(|t| rng.random_bool(t.agent_ends_when_away)) && open.remove(&chat) => {
                send(&mut ws, json!({"type": "end_chat", "chat_id": chat})).await;
                ctx.note(&name, format!("SENT end_chat {chat} (customer away)"));
            }
            "ack" => {
                replies.remove(frame["client_id"].as_str().unwrap_or_default());
            }
            "error" if frame["code"] == "cluster_unavailable" => {
                let client_id = frame["client_id"].as_str().unwrap_or_default();
                if let Some(chat) = replies.get(client_id) {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    send(&mut ws, reply(chat, client_id)).await;
                }
            }
            "error" => {
                // Refused for good (a reply that crossed the chat's end): not sent again.
                replies.remove(frame["client_id"].as_str().unwrap_or_default());
            }
            _ => {}
        }
    }
}
