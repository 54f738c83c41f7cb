//! The checker of the cluster's cross-process scenarios: pure functions over what every
//! client observed (each person's frames, in the order they arrived), the line's events
//! in the order Redis committed them, and the archive read back through the store. It
//! returns every broken rule, so a scenario asserts the list is empty and says all that
//! went wrong at once. Its own tests feed it hand-made bad histories (a double pairing,
//! an agent over their limit, a FIFO inversion, a seq gap, a duplicate, a lost
//! acknowledgement, a chat missing from the archive, a resume refused or taken back) so
//! we know it catches each one.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// A chat message as a client or the archive names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Msg {
    pub chat: String,
    pub seq: u64,
    pub id: String,
    /// The sender's `client_id`, where the frame carried one (the archive's copy has none).
    pub client_id: Option<String>,
}

/// One thing a person observed, in arrival order over all their connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// A new connection of theirs after a drop (the first one is not marked).
    Connected,
    /// A connection's opening snapshot: an agent's `agent_welcome` (their chats), a
    /// customer's `resumed` (their chat, if any). What it lists is what they now hold,
    /// with the messages it carries.
    Snapshot {
        chats: Vec<(String, Vec<Msg>)>,
    },
    ChatStarted {
        chat: String,
        peer: String,
        /// The chat goes on from an earlier pairing (`transfer` or `continued`): a
        /// conversation continued after its agent went, with the next agent.
        handed_on: bool,
        /// The chat's lines so far that the frame carries (`messages`), as a snapshot's.
        messages: Vec<Msg>,
    },
    ChatEnded {
        chat: String,
    },
    /// The peer's message, live.
    Message(Msg),
    /// The acknowledgement of their own message.
    Ack(Msg),
    /// They finished with their own message in `chat` unanswered: their chat ended and its
    /// `ack` had not come when they gave the connection up (its node stalled meanwhile).
    /// The protocol tells a sender its message's `seq` only in that `ack` (or a later
    /// snapshot), and lets the other side's later messages come before it, so the seq the
    /// message took is not a gap in what they hold.
    Unanswered {
        chat: String,
        client_id: String,
    },
    /// Their `resume` answered `resume_expired`. These scenarios resume only within the
    /// grace period, so it is a refusal the protocol does not allow — but after their own
    /// `leave`, which ends their session even when its answer was lost.
    ResumeExpired,
    /// They sent `leave`. Its answer may be `cluster_unavailable` though Redis applied it
    /// (their node stopped or Redis was slow past the call's deadline), and their token
    /// died with it: a `resume_expired` after it is the truth, not a fault.
    LeaveSent,
    /// An `error` naming no message of theirs (no `client_id`), other than
    /// `cluster_unavailable`: a refusal of what the connection is in.
    Refused {
        code: String,
    },
    /// The server closed the connection, with its close code if it gave one.
    Closed {
        code: Option<u16>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Customer,
    Agent { limit: usize },
}

#[derive(Debug, Clone)]
pub struct Person {
    /// Unique in a scenario; agents' chats name the customer by it (`peer_name`).
    pub name: String,
    pub role: Role,
    pub seen: Vec<Seen>,
}

/// What happened to the line, in the order Redis committed it (tickets are join order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineEvent {
    /// Joined the line, or was put back at the front with their original ticket.
    Entered {
        category: String,
        customer: String,
        ticket: u64,
    },
    /// Lost their connection: keeps their place, is not served meanwhile.
    Away {
        customer: String,
    },
    Back {
        customer: String,
    },
    /// Left the line (on their own, or their grace period ran out).
    Left {
        customer: String,
    },
    Served {
        category: String,
        customer: String,
        ticket: u64,
    },
    /// Their chat ended or was withdrawn from the agent.
    ChatOver {
        customer: String,
    },
}

#[derive(Debug, Default, Clone)]
pub struct History {
    pub people: Vec<Person>,
    pub line: Vec<LineEvent>,
    /// Each chat's archived messages, as read back from the store.
    pub archive: BTreeMap<String, Vec<Msg>>,
}

/// A broken rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// A customer held two chats at once, a chat had two agents, an agent held a chat
    /// its customer never had, or the line served a customer already chatting.
    DoublePairing {
        customer: String,
        detail: String,
    },
    OverLimit {
        agent: String,
        open: usize,
        limit: usize,
    },
    /// `served` got an agent while `skipped`, earlier in the same category, waited present.
    FifoInversion {
        category: String,
        served: String,
        skipped: String,
    },
    /// `who` (a person or "archive") has a message of `chat` after `missing` but not it.
    SeqGap {
        who: String,
        chat: String,
        missing: u64,
    },
    /// `who` got the message at `seq` live twice (or the archive holds it twice).
    Duplicate {
        who: String,
        chat: String,
        seq: u64,
    },
    /// Two different messages were given one seq.
    SeqConflict {
        chat: String,
        seq: u64,
        ids: Vec<String>,
    },
    /// An acknowledged message archived `archived` times instead of once.
    LostAck {
        chat: String,
        seq: u64,
        id: String,
        archived: usize,
    },
    /// A chat someone was given that the archive does not hold at all.
    ChatNotArchived {
        chat: String,
    },
    /// A customer's `resume` within the grace period was answered `resume_expired`.
    ResumeExpired {
        customer: String,
    },
    /// A customer's `resumed` was taken back on the same connection (`then`: the refusal
    /// or the close 1013 that followed it before anything else).
    ResumeTakenBack {
        customer: String,
        then: String,
    },
}

/// Every broken rule in `history`, in a stable order.
pub fn check(history: &History) -> Vec<Fault> {
    let mut faults = vec![];
    faults.extend(pairings(history));
    faults.extend(limits(history));
    faults.extend(fifo(&history.line));
    faults.extend(sequences(history));
    faults.extend(acks(history));
    faults.extend(unarchived(history));
    faults.extend(resumes(history));
    faults
}

/// Each customer holds at most one chat at a time; each chat has one agent, but for one
/// handed on to the next (a conversation continued after its agent went); every chat an
/// agent was given is one its customer was given.
fn pairings(history: &History) -> Vec<Fault> {
    let mut faults = vec![];
    let mut customer_chats: HashMap<&str, HashSet<&str>> = HashMap::new();
    for person in history.people.iter().filter(|p| p.role == Role::Customer) {
        let chats = customer_chats.entry(&person.name).or_default();
        let mut open: Option<&str> = None;
        for seen in &person.seen {
            match seen {
                // A `resumed` holds the chat they were given while away.
                Seen::Snapshot { chats: held } => {
                    chats.extend(held.iter().map(|(chat, _)| chat.as_str()));
                    open = held.first().map(|(chat, _)| chat.as_str());
                }
                Seen::ChatStarted { chat, .. } => {
                    if let Some(before) = open.filter(|before| before != chat) {
                        faults.push(Fault::DoublePairing {
                            customer: person.name.clone(),
                            detail: format!("given chat {chat} while in chat {before}"),
                        });
                    }
                    chats.insert(chat);
                    open = Some(chat);
                }
                Seen::ChatEnded { chat } if open == Some(chat.as_str()) => open = None,
                _ => {}
            }
        }
    }
    // Who was given each chat other than by a hand-over: one agent at most.
    let mut agent_of: BTreeMap<&str, &str> = BTreeMap::new();
    for person in history.people.iter().filter(|p| p.role != Role::Customer) {
        for seen in &person.seen {
            let Seen::ChatStarted {
                chat, peer, handed_on, ..
            } = seen
            else {
                continue;
            };
            if !handed_on
                && let Some(other) = agent_of.insert(chat, &person.name)
                && other != person.name
            {
                faults.push(Fault::DoublePairing {
                    customer: peer.clone(),
                    detail: format!("chat {chat} given to {other} and to {}", person.name),
                });
            }
            if let Some(theirs) = customer_chats.get(peer.as_str())
                && !theirs.contains(chat.as_str())
            {
                faults.push(Fault::DoublePairing {
                    customer: peer.clone(),
                    detail: format!("{} was given chat {chat}, which the customer never had", person.name),
                });
            }
        }
    }
    faults
}

/// An agent never holds more chats than their limit, counted over what their
/// connections were told in order (a welcome says what they hold at that moment).
fn limits(history: &History) -> Vec<Fault> {
    let mut faults = vec![];
    for person in &history.people {
        let Role::Agent { limit } = person.role else { continue };
        let mut open: BTreeSet<&str> = BTreeSet::new();
        let mut worst = 0;
        for seen in &person.seen {
            match seen {
                Seen::Snapshot { chats } => open = chats.iter().map(|(chat, _)| chat.as_str()).collect(),
                Seen::ChatStarted { chat, .. } => {
                    open.insert(chat);
                }
                Seen::ChatEnded { chat } => {
                    open.remove(chat.as_str());
                }
                _ => {}
            }
            worst = worst.max(open.len());
        }
        if worst > limit {
            faults.push(Fault::OverLimit {
                agent: person.name.clone(),
                open: worst,
                limit,
            });
        }
    }
    faults
}

/// Within a category, nobody is served while an earlier customer waits present (any
/// agent of the category could take either); nobody chatting is served again.
pub fn fifo(line: &[LineEvent]) -> Vec<Fault> {
    struct Waiting<'a> {
        category: &'a str,
        ticket: u64,
        away: bool,
    }
    let mut faults = vec![];
    let mut waiting: HashMap<&str, Waiting> = HashMap::new();
    let mut chatting: HashSet<&str> = HashSet::new();
    // Away before their line entry shows (a resume racing the stream): applied on entry.
    let mut away: HashSet<&str> = HashSet::new();
    for event in line {
        match event {
            LineEvent::Entered {
                category,
                customer,
                ticket,
            } => {
                chatting.remove(customer.as_str());
                let is_away = away.contains(customer.as_str());
                waiting.insert(
                    customer,
                    Waiting {
                        category,
                        ticket: *ticket,
                        away: is_away,
                    },
                );
            }
            LineEvent::Away { customer } => {
                away.insert(customer);
                if let Some(w) = waiting.get_mut(customer.as_str()) {
                    w.away = true;
                }
            }
            LineEvent::Back { customer } => {
                away.remove(customer.as_str());
                if let Some(w) = waiting.get_mut(customer.as_str()) {
                    w.away = false;
                }
            }
            LineEvent::Left { customer } => {
                waiting.remove(customer.as_str());
                away.remove(customer.as_str());
            }
            LineEvent::ChatOver { customer } => {
                chatting.remove(customer.as_str());
            }
            LineEvent::Served {
                category,
                customer,
                ticket,
            } => {
                waiting.remove(customer.as_str());
                if !chatting.insert(customer) {
                    faults.push(Fault::DoublePairing {
                        customer: customer.clone(),
                        detail: "served again while chatting".into(),
                    });
                }
                let mut skipped: Vec<(&u64, &&str)> = vec![];
                for (other, w) in &waiting {
                    if w.category == category && !w.away && w.ticket < *ticket {
                        skipped.push((&w.ticket, other));
                    }
                }
                skipped.sort();
                if let Some((_, first)) = skipped.first() {
                    faults.push(Fault::FifoInversion {
                        category: category.clone(),
                        served: customer.clone(),
                        skipped: first.to_string(),
                    });
                }
            }
        }
    }
    faults
}

/// Per chat: one id per seq everywhere; nobody gets a message live twice; what each
/// person ends up with (live and from snapshots) and what the archive holds have no gap.
/// "Twice" spans a customer's connections (a resume names the last seq they have), but
/// only one connection of an agent's: an agent's new connection has no such seq, and on
/// another node the chats' history comes as messages (around its welcome).
fn sequences(history: &History) -> Vec<Fault> {
    let mut faults = vec![];
    let mut ids: BTreeMap<(&str, u64), BTreeSet<&str>> = BTreeMap::new();
    let mut holdings: Vec<(String, BTreeMap<&str, Vec<u64>>)> = vec![];
    // Each unanswered message's seq, from whoever got it with its client id.
    let mut by_client_id: HashMap<(&str, &str), u64> = HashMap::new();
    for seen in history.people.iter().flat_map(|p| &p.seen) {
        if let Seen::Message(m) | Seen::Ack(m) = seen
            && let Some(client_id) = &m.client_id
        {
            by_client_id.insert((&m.chat, client_id), m.seq);
        }
    }
    for person in &history.people {
        let mut live: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
        let mut have: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
        for seen in &person.seen {
            if let Seen::Unanswered { chat, client_id } = seen
                && let Some(seq) = by_client_id.get(&(chat.as_str(), client_id.as_str()))
            {
                // Not live: a copy of it arriving after all would still be counted once.
                have.entry(chat).or_default().push(*seq);
            }
            if *seen == Seen::Connected && person.role != Role::Customer {
                for (chat, seqs) in std::mem::take(&mut live) {
                    faults.extend(duplicates(&person.name, chat, &seqs));
                }
            }
            match seen {
                Seen::Message(m) | Seen::Ack(m) => {
                    ids.entry((&m.chat, m.seq)).or_default().insert(&m.id);
                    live.entry(&m.chat).or_default().push(m.seq);
                    have.entry(&m.chat).or_default().push(m.seq);
                }
                Seen::Snapshot { chats } => {
                    for m in chats.iter().flat_map(|(_, messages)| messages) {
                        ids.entry((&m.chat, m.seq)).or_default().insert(&m.id);
                        have.entry(&m.chat).or_default().push(m.seq);
                    }
                }
                Seen::ChatStarted { messages, .. } => {
                    for m in messages {
                        ids.entry((&m.chat, m.seq)).or_default().insert(&m.id);
                        have.entry(&m.chat).or_default().push(m.seq);
                    }
                }
                _ => {}
            }
        }
        for (chat, seqs) in &live {
            faults.extend(duplicates(&person.name, chat, seqs));
        }
        holdings.push((person.name.clone(), have));
    }
    let mut archived: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for m in history.archive.values().flatten() {
        ids.entry((&m.chat, m.seq)).or_default().insert(&m.id);
        archived.entry(&m.chat).or_default().push(m.seq);
    }
    for (chat, seqs) in &archived {
        faults.extend(duplicates("archive", chat, seqs));
    }
    holdings.push(("archive".into(), archived));
    for (who, have) in holdings {
        for (chat, seqs) in have {
            let seqs: BTreeSet<u64> = seqs.into_iter().collect();
            let top = seqs.last().copied().unwrap_or(0);
            if let Some(missing) = (1..top).find(|seq| !seqs.contains(seq)) {
                faults.push(Fault::SeqGap {
                    who: who.clone(),
                    chat: chat.to_string(),
                    missing,
                });
            }
        }
    }
    for ((chat, seq), at) in ids {
        if at.len() > 1 {
            faults.push(Fault::SeqConflict {
                chat: chat.to_string(),
                seq,
                ids: at.into_iter().map(String::from).collect(),
            });
        }
    }
    faults
}

fn duplicates(who: &str, chat: &str, seqs: &[u64]) -> Vec<Fault> {
    let mut once = BTreeSet::new();
    let twice: BTreeSet<u64> = seqs.iter().copied().filter(|seq| !once.insert(*seq)).collect();
    twice
        .into_iter()
        .map(|seq| Fault::Duplicate {
            who: who.to_string(),
            chat: chat.to_string(),
            seq,
        })
        .collect()
}

/// Every acknowledged message is archived exactly once, at its seq.
fn acks(history: &History) -> Vec<Fault> {
    let mut faults = vec![];
    for person in &history.people {
        for seen in &person.seen {
            let Seen::Ack(m) = seen else { continue };
            let archived = history
                .archive
                .get(&m.chat)
                .map_or(0, |kept| kept.iter().filter(|a| a.id == m.id && a.seq == m.seq).count());
            if archived != 1 {
                faults.push(Fault::LostAck {
                    chat: m.chat.clone(),
                    seq: m.seq,
                    id: m.id.clone(),
                    archived,
                });
            }
        }
    }
    faults
}

/// Every chat anyone was given (started, or held in a snapshot) is in the archive.
fn unarchived(history: &History) -> Vec<Fault> {
    let given: BTreeSet<&str> = history
        .people
        .iter()
        .flat_map(|p| &p.seen)
        .flat_map(|seen| match seen {
            Seen::ChatStarted { chat, .. } => vec![chat.as_str()],
            Seen::Snapshot { chats } => chats.iter().map(|(chat, _)| chat.as_str()).collect(),
            _ => vec![],
        })
        .collect();
    given
        .into_iter()
        .filter(|chat| !history.archive.contains_key(*chat))
        .map(|chat| Fault::ChatNotArchived { chat: chat.to_string() })
        .collect()
}

/// A customer's `resume` within the grace period is never `resume_expired` (but after
/// their own `leave`, whose answer may have been lost though it was applied), and a
/// `resumed` is never taken back: the next thing on that connection is no refusal of
/// its state and no close 1013 ("try again").
fn resumes(history: &History) -> Vec<Fault> {
    let mut faults = vec![];
    for person in history.people.iter().filter(|p| p.role == Role::Customer) {
        let mut just_resumed = false;
        let mut left = false;
        for seen in &person.seen {
            let then = match seen {
                Seen::LeaveSent => {
                    left = true;
                    None
                }
                Seen::ResumeExpired if left => None,
                Seen::ResumeExpired => {
                    faults.push(Fault::ResumeExpired {
                        customer: person.name.clone(),
                    });
                    None
                }
                Seen::Refused { code } => Some(format!("error {code}")),
                Seen::Closed { code: Some(1013) } => Some("close 1013".to_string()),
                _ => None,
            };
            if just_resumed && let Some(then) = then {
                faults.push(Fault::ResumeTakenBack {
                    customer: person.name.clone(),
                    then,
                });
            }
            just_resumed = matches!(seen, Seen::Snapshot { .. });
        }
    }
    faults
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(chat: &str, seq: u64) -> Msg {
        Msg {
            chat: chat.into(),
            seq,
            id: format!("{chat}-m{seq}"),
            client_id: None,
        }
    }

    fn started(chat: &str, peer: &str) -> Seen {
        Seen::ChatStarted {
            chat: chat.into(),
            peer: peer.into(),
            handed_on: false,
            messages: vec![],
        }
    }

    /// `chat` handed on to the one who sees this, carrying its lines `seqs`.
    fn handed_on(chat: &str, peer: &str, seqs: &[u64]) -> Seen {
        Seen::ChatStarted {
            chat: chat.into(),
            peer: peer.into(),
            handed_on: true,
            messages: seqs.iter().map(|seq| msg(chat, *seq)).collect(),
        }
    }

    fn ended(chat: &str) -> Seen {
        Seen::ChatEnded { chat: chat.into() }
    }

    /// A customer's side of `chat` with `agent`: they say line 1 (acknowledged), hear
    /// line 2, and the chat ends.
    fn one_exchange_as_customer(chat: &str, agent: &str) -> Vec<Seen> {
        vec![
            started(chat, agent),
            Seen::Ack(msg(chat, 1)),
            Seen::Message(msg(chat, 2)),
            ended(chat),
        ]
    }

    fn person(name: &str, role: Role, seen: Vec<Seen>) -> Person {
        Person {
            name: name.into(),
            role,
            seen,
        }
    }

    fn entered(category: &str, customer: &str, ticket: u64) -> LineEvent {
        LineEvent::Entered {
            category: category.into(),
            customer: customer.into(),
            ticket,
        }
    }

    fn chat_over(customer: &str) -> LineEvent {
        LineEvent::ChatOver {
            customer: customer.into(),
        }
    }

    fn went_away(customer: &str) -> LineEvent {
        LineEvent::Away {
            customer: customer.into(),
        }
    }

    fn came_back(customer: &str) -> LineEvent {
        LineEvent::Back {
            customer: customer.into(),
        }
    }

    fn served(category: &str, customer: &str, ticket: u64) -> LineEvent {
        LineEvent::Served {
            category: category.into(),
            customer: customer.into(),
            ticket,
        }
    }

    /// A good history: two customers served in order by one agent (limit 1) one after
    /// the other; two messages each, acknowledged and archived once; the second customer
    /// dropped and resumed with the message they missed in the snapshot.
    fn good() -> History {
        let agent = person(
            "ann",
            Role::Agent { limit: 1 },
            vec![
                Seen::Snapshot { chats: vec![] },
                started("c1", "carla"),
                Seen::Message(msg("c1", 1)),
                Seen::Ack(msg("c1", 2)),
                ended("c1"),
                started("c2", "dora"),
                Seen::Ack(msg("c2", 1)),
                Seen::Message(msg("c2", 2)),
                ended("c2"),
            ],
        );
        let carla = person("carla", Role::Customer, one_exchange_as_customer("c1", "ANN"));
        let dora = person(
            "dora",
            Role::Customer,
            vec![
                started("c2", "ANN"),
                Seen::Snapshot {
                    chats: vec![("c2".into(), vec![msg("c2", 1)])],
                },
                Seen::Ack(msg("c2", 2)),
                ended("c2"),
            ],
        );
        History {
            people: vec![agent, carla, dora],
            line: vec![
                entered("general", "carla", 1),
                entered("general", "dora", 2),
                served("general", "carla", 1),
                chat_over("carla"),
                served("general", "dora", 2),
            ],
            archive: BTreeMap::from([
                ("c1".to_string(), vec![msg("c1", 1), msg("c1", 2)]),
                ("c2".to_string(), vec![msg("c2", 1), msg("c2", 2)]),
            ]),
        }
    }

    #[test]
    fn a_good_history_passes() {
        assert_eq!(check(&good()), vec![]);
    }

    #[test]
    fn a_customer_given_a_second_chat_while_in_one_is_a_double_pairing() {
        let mut h = good();
        h.people[1].seen.insert(2, started("c9", "BOB"));
        let faults = check(&h);
        assert!(
            faults
                .iter()
                .any(|f| matches!(f, Fault::DoublePairing { customer, .. } if customer == "carla")),
            "{faults:?}"
        );
    }

    #[test]
    fn one_chat_given_to_two_agents_or_unknown_to_its_customer_is_a_double_pairing() {
        let mut h = good();
        h.people.push(person(
            "bob",
            Role::Agent { limit: 2 },
            vec![started("c1", "carla"), started("c7", "dora")],
        ));
        let faults = check(&h);
        let doubles: Vec<&Fault> = faults
            .iter()
            .filter(|f| matches!(f, Fault::DoublePairing { .. }))
            .collect();
        assert_eq!(doubles.len(), 2, "{faults:?}");
    }

    /// Ann's node died: her customer went on in the same chat with Bob, who was handed it
    /// with its lines so far. One agent at a time, nothing missing; but the same chat
    /// given to Bob without a hand-over is two agents for it, and a hand-over without the
    /// lines leaves Bob a gap.
    #[test]
    fn a_chat_handed_on_to_the_next_agent_is_one_pairing_and_its_lines_count_as_held() {
        let history = |bob_started: Seen| History {
            people: vec![
                person(
                    "ann",
                    Role::Agent { limit: 1 },
                    vec![
                        started("c1", "carla"),
                        Seen::Message(msg("c1", 1)),
                        Seen::Ack(msg("c1", 2)),
                    ],
                ),
                person(
                    "bob",
                    Role::Agent { limit: 1 },
                    vec![bob_started, Seen::Message(msg("c1", 3)), ended("c1")],
                ),
                person(
                    "carla",
                    Role::Customer,
                    [
                        one_exchange_as_customer("c1", "ANN"),
                        vec![handed_on("c1", "BOB", &[1, 2]), Seen::Ack(msg("c1", 3)), ended("c1")],
                    ]
                    .concat(),
                ),
            ],
            line: vec![
                entered("general", "carla", 1),
                served("general", "carla", 1),
                chat_over("carla"),
                entered("general", "carla", 1),
                served("general", "carla", 1),
            ],
            archive: BTreeMap::from([("c1".to_string(), vec![msg("c1", 1), msg("c1", 2), msg("c1", 3)])]),
        };
        assert_eq!(check(&history(handed_on("c1", "carla", &[1, 2]))), vec![]);
        // Whoever is read first.
        let mut bob_first = history(handed_on("c1", "carla", &[1, 2]));
        bob_first.people.swap(0, 1);
        assert_eq!(check(&bob_first), vec![]);
        let faults = check(&history(started("c1", "carla")));
        assert!(
            matches!(&faults[..], [Fault::DoublePairing { customer, .. }, ..] if customer == "carla"),
            "{faults:?}"
        );
        assert_eq!(
            check(&history(handed_on("c1", "carla", &[]))),
            vec![Fault::SeqGap {
                who: "bob".into(),
                chat: "c1".into(),
                missing: 1
            }]
        );
    }

    #[test]
    fn the_line_serving_someone_already_chatting_is_a_double_pairing() {
        let line = vec![
            entered("general", "carla", 1),
            served("general", "carla", 1),
            served("general", "carla", 1),
        ];
        assert!(matches!(&fifo(&line)[..], [Fault::DoublePairing { customer, .. }] if customer == "carla"));
    }

    #[test]
    fn an_agent_holding_more_than_their_limit_is_caught() {
        let mut h = good();
        // The second chat starts before the first ends.
        let seen = &mut h.people[0].seen;
        let end = seen.remove(4);
        seen.insert(5, end);
        assert!(
            check(&h).contains(&Fault::OverLimit {
                agent: "ann".into(),
                open: 2,
                limit: 1
            }),
            "{:?}",
            check(&h)
        );
        // A welcome listing two chats for a limit of one, too.
        let mut h = good();
        h.people[0].seen[0] = Seen::Snapshot {
            chats: vec![("x".into(), vec![]), ("y".into(), vec![])],
        };
        assert!(
            check(&h)
                .iter()
                .any(|f| matches!(f, Fault::OverLimit { agent, .. } if agent == "ann"))
        );
    }

    #[test]
    fn a_later_customer_served_before_an_earlier_present_one_is_a_fifo_inversion() {
        let line = vec![
            entered("general", "carla", 1),
            entered("sales", "erin", 2),
            entered("general", "dora", 3),
            served("sales", "erin", 2),
            served("general", "dora", 3),
        ];
        assert_eq!(
            fifo(&line),
            vec![Fault::FifoInversion {
                category: "general".into(),
                served: "dora".into(),
                skipped: "carla".into()
            }],
            "another category's earlier customer is no inversion; the same category's is"
        );
        // Skipping a customer who is away is the rule, not an inversion; once back, not.
        let mut away = line.clone();
        away.insert(3, went_away("carla"));
        assert_eq!(fifo(&away), vec![]);
        away.insert(4, came_back("carla"));
        assert_eq!(fifo(&away).len(), 1);
        // A customer put back at the front keeps their original ticket.
        let requeued = vec![
            entered("general", "carla", 1),
            served("general", "carla", 1),
            entered("general", "dora", 2),
            chat_over("carla"),
            entered("general", "carla", 1),
            served("general", "dora", 2),
        ];
        assert_eq!(fifo(&requeued).len(), 1, "carla was back at the front");
    }

    #[test]
    fn a_missing_seq_is_a_gap_for_whoever_misses_it() {
        let mut h = good();
        // Carla never got the agent's seq 2 but the agent's later seq 3 in chat c1.
        h.people[1].seen[2] = Seen::Message(msg("c1", 3));
        h.people[0].seen[3] = Seen::Ack(msg("c1", 3));
        h.archive.get_mut("c1").unwrap()[1] = msg("c1", 3);
        let faults = check(&h);
        for who in ["carla", "ann", "archive"] {
            assert!(
                faults.contains(&Fault::SeqGap {
                    who: who.into(),
                    chat: "c1".into(),
                    missing: 2
                }),
                "{who}: {faults:?}"
            );
        }
    }

    #[test]
    fn an_own_message_whose_ack_never_came_is_no_gap_but_any_other_missing_seq_is() {
        // Carla's message took seq 1 (Ann got it, with its client id), Ann answered (seq 2)
        // and ended the chat; Carla's node stalled before her `ack`, and she gave up.
        let sent = Msg {
            client_id: Some("carla-c1-0".into()),
            ..msg("c1", 1)
        };
        let mut h = good();
        h.people[0].seen[2] = Seen::Message(sent.clone());
        h.people[1].seen = vec![
            started("c1", "ANN"),
            Seen::Message(msg("c1", 2)),
            ended("c1"),
            Seen::Unanswered {
                chat: "c1".into(),
                client_id: "carla-c1-0".into(),
            },
        ];
        assert_eq!(check(&h), vec![]);
        // Without the unanswered message, seq 1 is a gap for her.
        h.people[1].seen.pop();
        assert!(check(&h).contains(&Fault::SeqGap {
            who: "carla".into(),
            chat: "c1".into(),
            missing: 1
        }));
        // An unanswered message nobody got (never stamped) covers nothing.
        h.people[1].seen.push(Seen::Unanswered {
            chat: "c1".into(),
            client_id: "carla-c1-1".into(),
        });
        assert!(check(&h).contains(&Fault::SeqGap {
            who: "carla".into(),
            chat: "c1".into(),
            missing: 1
        }));
    }

    #[test]
    fn a_message_delivered_twice_or_two_messages_at_one_seq_are_caught() {
        let mut h = good();
        h.people[1].seen.insert(3, Seen::Message(msg("c1", 2)));
        assert!(check(&h).contains(&Fault::Duplicate {
            who: "carla".into(),
            chat: "c1".into(),
            seq: 2
        }));
        // An agent's new connection may get the history again, live; one connection
        // getting a message twice may not.
        let mut h = good();
        let again = [
            Seen::Connected,
            Seen::Message(msg("c1", 1)),
            Seen::Snapshot {
                chats: vec![("c1".into(), vec![msg("c1", 1)])],
            },
        ];
        h.people[0].seen.splice(4..4, again.clone());
        assert_eq!(check(&h), vec![]);
        h.people[0].seen.splice(6..6, [Seen::Message(msg("c1", 1))]);
        assert!(check(&h).contains(&Fault::Duplicate {
            who: "ann".into(),
            chat: "c1".into(),
            seq: 1
        }));
        // A customer's resume names what they have: nothing they had may come again live.
        let mut h = good();
        h.people[1].seen.splice(3..3, again);
        assert!(check(&h).contains(&Fault::Duplicate {
            who: "carla".into(),
            chat: "c1".into(),
            seq: 1
        }));
        // A snapshot repeating what was had is allowed (clients show it once).
        let mut h = good();
        h.people[1].seen.insert(
            3,
            Seen::Snapshot {
                chats: vec![("c1".into(), vec![msg("c1", 1), msg("c1", 2)])],
            },
        );
        assert_eq!(check(&h), vec![]);
        // The same seq with another id.
        let mut h = good();
        h.people[1].seen[2] = Seen::Message(Msg {
            id: "other".into(),
            ..msg("c1", 2)
        });
        assert!(check(&h).iter().any(|f| matches!(f, Fault::SeqConflict { seq: 2, .. })));
        // The archive holding a message twice.
        let mut h = good();
        h.archive.get_mut("c2").unwrap().push(msg("c2", 2));
        let faults = check(&h);
        assert!(faults.contains(&Fault::Duplicate {
            who: "archive".into(),
            chat: "c2".into(),
            seq: 2
        }));
        assert!(faults.iter().any(|f| matches!(f, Fault::LostAck { archived: 2, .. })));
    }

    #[test]
    fn a_chat_missing_from_the_archive_is_caught_with_its_acknowledgements() {
        let mut h = good();
        h.archive.remove("c2");
        let faults = check(&h);
        assert!(
            faults.contains(&Fault::ChatNotArchived { chat: "c2".into() }),
            "{faults:?}"
        );
        let lost = faults
            .iter()
            .filter(|f| matches!(f, Fault::LostAck { chat, archived: 0, .. } if chat == "c2"))
            .count();
        assert_eq!(lost, 2, "both acknowledged messages of c2: {faults:?}");
    }

    #[test]
    fn a_resume_expired_after_the_customers_own_leave_is_no_fault() {
        let mut h = good();
        h.people[2].seen.push(Seen::LeaveSent);
        h.people[2].seen.push(Seen::Closed { code: Some(1012) });
        h.people[2].seen.push(Seen::Connected);
        h.people[2].seen.push(Seen::ResumeExpired);
        assert_eq!(check(&h), vec![]);
    }

    #[test]
    fn a_resume_expired_or_a_resumed_taken_back_is_caught() {
        let mut h = good();
        h.people[2].seen.push(Seen::Connected);
        h.people[2].seen.push(Seen::ResumeExpired);
        assert_eq!(
            check(&h),
            vec![Fault::ResumeExpired {
                customer: "dora".into()
            }]
        );
        // Dora's `resumed` (her snapshot) followed by a refusal of her state, or by a
        // close 1013; a close or refusal after anything else is no taking back.
        for then in [
            Seen::Refused {
                code: "wrong_state".into(),
            },
            Seen::Closed { code: Some(1013) },
        ] {
            let mut h = good();
            h.people[2].seen.insert(2, then.clone());
            assert!(
                check(&h)
                    .iter()
                    .any(|f| matches!(f, Fault::ResumeTakenBack { customer, .. } if customer == "dora")),
                "{then:?}: {:?}",
                check(&h)
            );
            let mut h = good();
            h.people[2].seen.push(then);
            assert_eq!(check(&h), vec![]);
        }
    }

    #[test]
    fn an_acknowledged_message_missing_from_the_archive_is_a_lost_ack() {
        let mut h = good();
        h.archive.get_mut("c2").unwrap().pop();
        assert_eq!(
            check(&h),
            vec![Fault::LostAck {
                chat: "c2".into(),
                seq: 2,
                id: "c2-m2".into(),
                archived: 0
            }]
        );
    }
}
