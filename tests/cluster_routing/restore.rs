//! Redis restarted empty (docs/cluster.md §9): after the routing domain is written
//! back, a restored chat takes no message until both sides' nodes have claimed it, and its
//! next seq follows the greater of the two sides' last recorded seqs; a claim after the
//! window is fenced; whoever nobody claimed is handed on by `node_lost` of the pseudo-node.

use std::time::Duration;

use redis::aio::ConnectionManager;

use switchboard::cluster::restore::{self, Claims, Restored};
use switchboard::cluster::routing_scripts::{ClusterRoutingError, RedisRouting};
use switchboard::cluster::{chat_log, conversation_seq};
use switchboard::core::routing::{ChatId, ConversationId, CustomerId, Decision, Party, Routing};

use crate::{agent, cat, register, with_redis};

const WINDOW: Duration = Duration::from_millis(600);

/// The core with category "sales", and the decisions it makes from here on.
fn core_with_sales() -> (Routing, Vec<Decision>) {
    let mut core = Routing::new();
    core.add_category(cat("sales")).unwrap();
    (core, vec![])
}

/// The lost domain as the winner's replica holds it: "sales" with Ann online (one chat at a
/// time), and the decisions made from here on.
fn ann_in_sales() -> (Routing, Vec<Decision>) {
    let (mut core, mut out) = core_with_sales();
    core.agent_online(agent("ann"), vec![cat("sales")], 1, true, &mut out)
        .unwrap();
    (core, out)
}

/// `node` (with its `incarnation`) appends line `id` saying `text` from `from` (`sender`) to
/// `chat`'s log: the seq it was stamped with.
async fn append(
    conn: &mut ConnectionManager,
    (node, incarnation): (&str, u64),
    chat: ChatId,
    (from, sender): (Party, &str),
    id: &str,
    text: &str,
) -> Result<u64, ClusterRoutingError> {
    chat_log::append(conn, node, incarnation, chat, from, sender, id, 1, text, None)
        .await
        .map(|stamp| stamp.seq)
}

/// `node` (with its `incarnation`) reaps the pseudo-node the restore left its unclaimed
/// people on: whom it handed on.
async fn reaped_by(
    conn: &ConnectionManager,
    (node, incarnation): (&str, u64),
) -> Result<Vec<Decision>, ClusterRoutingError> {
    let reaper = RedisRouting::new(conn.clone(), node, incarnation);
    reaper.node_lost("{restored}").await.map(|handed| handed.decisions)
}

/// Two customers join "sales" one after the other: their ids, in that order.
fn two_join(core: &mut Routing, out: &mut Vec<Decision>) -> (CustomerId, CustomerId) {
    let first = core.join(&cat("sales"), out).unwrap();
    (first, core.join(&cat("sales"), out).unwrap())
}

/// The chat the first pairing among `out` opened.
fn first_paired(out: &[Decision]) -> ChatId {
    out.iter()
        .find_map(|d| match d {
            Decision::Paired { chat, .. } => Some(*chat),
            _ => None,
        })
        .expect("paired")
}

/// Registers each of `offers`' nodes, which offers its replica (the last event it applied:
/// the first node's the longest), and writes `core`'s state back as the first node once
/// the offers closed: the nodes' incarnations.
async fn restored_by_the_first(conn: &mut ConnectionManager, core: &Routing, offers: &[(&str, &str)]) -> Vec<u64> {
    restored_by_the_first_for(conn, core, offers, WINDOW).await
}

/// [`restored_by_the_first`], whose claim window (the restore's, and each claim's) is
/// `claims_window`: a test whose claims are large gives them a window a loaded machine
/// cannot overrun (the window's length is not what it tests).
async fn restored_by_the_first_for(
    conn: &mut ConnectionManager,
    core: &Routing,
    offers: &[(&str, &str)],
    claims_window: Duration,
) -> Vec<u64> {
    let mut incarnations = vec![];
    for (node, last_event) in offers {
        let incarnation = register(conn, node).await;
        restore::offer(conn, node, incarnation, last_event, WINDOW)
            .await
            .unwrap();
        incarnations.push(incarnation);
    }
    tokio::time::sleep(WINDOW).await;
    let written = restore::restore(
        conn,
        offers[0].0,
        incarnations[0],
        &core.state(),
        "lost-id",
        claims_window,
    )
    .await;
    assert_eq!(written.unwrap(), Restored::Written);
    incarnations
}

#[test]
fn a_restored_chat_goes_on_once_both_sides_are_claimed_with_the_greater_seq() {
    with_redis(|mut conn| async move {
        // The lost domain: Ann chats with a customer, a second customer waits.
        let (mut core, mut out) = ann_in_sales();
        let (chatting, waiting) = two_join(&mut core, &mut out);
        let chat = first_paired(&out);
        let state = core.state();

        let n0 = register(&mut conn, "n0").await;
        let n1 = register(&mut conn, "n1").await;
        let offers = restore::offer(&mut conn, "n0", n0, "9-0", WINDOW).await.unwrap();
        assert_eq!(offers.winner, "n0");
        tokio::time::sleep(WINDOW).await;
        let written = restore::restore(&mut conn, "n0", n0, &state, "lost-id", WINDOW)
            .await
            .unwrap();
        assert_eq!(written, Restored::Written);
        let id: String = redis::cmd("GET")
            .arg("{sb}:cluster-id")
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(id, "lost-id", "chats keep their wire ids");

        let customer = chatting.0.to_string();
        let from_customer = (Party::Customer, customer.as_str());
        // n0 holds the customer (its node recorded seq 5), n1 the agent (seq 7: a line
        // recorded there and still on its way to n0 when Redis died).
        let claims = Claims {
            customers: vec![chatting, waiting],
            chats: vec![(chat, Party::Customer, 5)],
            ..Claims::default()
        };
        restore::claim(&mut conn, "n0", n0, &claims, WINDOW).await.unwrap();
        let early = append(&mut conn, ("n0", n0), chat, from_customer, "too early", "too early").await;
        assert!(
            matches!(&early, Err(ClusterRoutingError::Redis(e)) if e.code() == Some("RESTORING")),
            "a message before the other side's claim is refused: {early:?}"
        );
        let claims = Claims {
            agents: vec![agent("ann")],
            chats: vec![(chat, Party::Agent, 7)],
            ..Claims::default()
        };
        restore::claim(&mut conn, "n1", n1, &claims, WINDOW).await.unwrap();
        let seq = append(&mut conn, ("n0", n0), chat, from_customer, "after", "after")
            .await
            .unwrap();
        assert_eq!(seq, 8, "the next seq follows the greater side's");
        let seq = append(&mut conn, ("n1", n1), chat, (Party::Agent, "ann"), "reply", "reply")
            .await
            .unwrap();
        assert_eq!(seq, 9);

        // Past the window a claim is fenced; the pseudo-node's people are handed on.
        tokio::time::sleep(WINDOW).await;
        let late = restore::claim(&mut conn, "n1", n1, &Claims::default(), WINDOW).await;
        assert!(matches!(late, Err(ClusterRoutingError::Fenced)), "{late:?}");
        let handed = reaped_by(&conn, ("n1", n1)).await.unwrap();
        assert!(handed.is_empty(), "everyone was claimed: {handed:?}");
    });
}

#[test]
fn whoever_nobody_claims_is_handed_on_with_the_pseudo_node() {
    with_redis(|mut conn| async move {
        let (mut core, mut out) = core_with_sales();
        let (lost, kept) = two_join(&mut core, &mut out);
        let n0 = restored_by_the_first(&mut conn, &core, &[("n0", "0-0")]).await[0];
        let claims = Claims {
            customers: vec![kept],
            ..Claims::default()
        };
        restore::claim(&mut conn, "n0", n0, &claims, WINDOW).await.unwrap();
        let early = reaped_by(&conn, ("n0", n0)).await;
        assert!(matches!(early, Err(ClusterRoutingError::NodeAlive)), "{early:?}");
        tokio::time::sleep(WINDOW).await;
        let handed = reaped_by(&conn, ("n0", n0)).await.unwrap();
        assert!(
            matches!(handed.as_slice(), [Decision::CustomerGraceStarted { customer, .. }] if *customer == lost),
            "only the unclaimed customer goes into a grace period, on the reaper: {handed:?}"
        );
    });
}

/// A conversation's one seq counter is written back too: a continued chat counts on from
/// the highest seq any node claims for it, and so does a line to an away customer of
/// another conversation (a line one node stamped but had not stored when Redis died);
/// neither draws before every node that offered has claimed.
#[test]
fn a_conversation_counts_on_from_the_highest_seq_the_nodes_claim() {
    with_redis(|mut conn| async move {
        let (mut core, mut out) = ann_in_sales();
        let (v0, v1) = ("conv-0".to_string(), "conv-1".to_string());
        let carla = core
            .join_continuing(&cat("sales"), &ConversationId(v0.clone()), None, &mut out)
            .unwrap();
        let chat = first_paired(&out);
        let [n0, n1] = restored_by_the_first(&mut conn, &core, &[("n0", "9-0"), ("n1", "8-0")]).await[..] else {
            unreachable!("two nodes")
        };
        // n0 holds Carla (her chat's last line: 4), n1 Ann (6, on its way to n0) and a
        // line to v1's away customer it stamped (3), not yet in the archive (which has 1).
        let claims = Claims {
            customers: vec![carla],
            chats: vec![(chat, Party::Customer, 4)],
            ..Claims::default()
        };
        restore::claim(&mut conn, "n0", n0, &claims, WINDOW).await.unwrap();
        let early = conversation_seq::next(&mut conn, ("n0", n0), &v1, 1, None).await;
        assert!(
            matches!(&early, Err(conversation_seq::SeqError::Cluster(ClusterRoutingError::Redis(e))) if e.code() == Some("RESTORING")),
            "no line is drawn before every node claimed: {early:?}"
        );
        let claims = Claims {
            agents: vec![agent("ann")],
            chats: vec![(chat, Party::Agent, 6)],
            conversations: vec![(v1.clone(), 3)],
            ..Claims::default()
        };
        restore::claim(&mut conn, "n1", n1, &claims, WINDOW).await.unwrap();
        let customer = carla.0.to_string();
        let seq = append(&mut conn, ("n0", n0), chat, (Party::Customer, &customer), "m", "after")
            .await
            .unwrap();
        assert_eq!(seq, 7, "the continued chat goes on after the greater side's");
        let counter: u64 = redis::cmd("GET")
            .arg(format!("{{sb}}:conv-seq:{v0}"))
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(counter, 7, "from its conversation's counter");
        let line = conversation_seq::next(&mut conn, ("n0", n0), &v1, 1, None)
            .await
            .unwrap();
        assert_eq!(
            line, 4,
            "a line to an away customer goes on after the one stamped elsewhere"
        );
    });
}

/// A line of a restored chat's log as a node holds it.
fn held(chat: ChatId, seq: u64, from: Party) -> chat_log::ChatLine {
    chat_log::ChatLine {
        chat,
        seq,
        id: format!("m{seq}"),
        at: 1_000 + seq as i64,
        from,
        text: format!("line {seq}"),
        client_id: None,
        files: String::new(),
        via: None,
    }
}

/// A customer chatting with Ann, restored by "n0" (the longer replica) with "n1" offering
/// too: the customer, their chat, and the two nodes' incarnations.
async fn chatting_restored(conn: &mut ConnectionManager) -> (CustomerId, ChatId, [u64; 2]) {
    let (mut core, mut out) = ann_in_sales();
    let chatting = core.join(&cat("sales"), &mut out).unwrap();
    let chat = first_paired(&out);
    let incarnations = restored_by_the_first(conn, &core, &[("n0", "9-0"), ("n1", "8-0")]).await;
    (chatting, chat, [incarnations[0], incarnations[1]])
}

#[test]
fn the_claims_write_back_the_lines_their_nodes_hold_each_seq_once_in_order() {
    with_redis(|mut conn| async move {
        let (chatting, chat, [n0, n1]) = chatting_restored(&mut conn).await;

        // n1 (the agent's node) holds lines 5-7; n0 (the customer's) holds 6-8: the
        // customer's 8 was stamped and acknowledged there, and never reached n1.
        let claims_of = |party: Party, seqs: &[u64], last: u64| Claims {
            customers: if party == Party::Customer {
                vec![chatting]
            } else {
                vec![]
            },
            agents: if party == Party::Agent {
                vec![agent("ann")]
            } else {
                vec![]
            },
            chats: vec![(chat, party, last)],
            lines: seqs.iter().map(|seq| held(chat, *seq, Party::Customer)).collect(),
            ..Claims::default()
        };
        restore::claim(&mut conn, "n1", n1, &claims_of(Party::Agent, &[5, 6, 7], 7), WINDOW)
            .await
            .unwrap();
        let early = chat_log::read_after(&mut conn, chat, 0).await.unwrap();
        assert!(early.restoring, "a side is still to claim the chat");
        assert_eq!(seqs_of(&early), [5, 6, 7]);
        restore::claim(&mut conn, "n0", n0, &claims_of(Party::Customer, &[6, 7, 8], 8), WINDOW)
            .await
            .unwrap();
        let whole = chat_log::read_after(&mut conn, chat, 0).await.unwrap();
        assert_eq!(
            seqs_of(&whole),
            [5, 6, 7, 8],
            "the log runs gapless from the lowest line written back"
        );
        let read = chat_log::read_after(&mut conn, chat, 6).await.unwrap();
        assert!(!read.restoring);
        assert_eq!(seqs_of(&read), [7, 8], "each seq once, in seq order");
        assert_eq!(read.lines[1], held(chat, 8, Party::Customer), "as it was stamped");

        // The chat goes on after them; a claim past the pending mark writes nothing back.
        let customer = chatting.0.to_string();
        let seq = append(&mut conn, ("n0", n0), chat, (Party::Customer, &customer), "n", "nine")
            .await
            .unwrap();
        assert_eq!(seq, 9);
        restore::claim(&mut conn, "n0", n0, &claims_of(Party::Customer, &[2, 3], 8), WINDOW)
            .await
            .unwrap();
        let read = chat_log::read_after(&mut conn, chat, 0).await.unwrap();
        let seqs: Vec<u64> = read.lines.iter().map(|l| l.seq).collect();
        assert_eq!(seqs, [5, 6, 7, 8, 9]);
    });
}

/// The claim of the node holding `customer`, in `chat` recorded up to `last`, writing back `lines`.
fn customers_claim(
    customer: CustomerId,
    chat: ChatId,
    last: u64,
    lines: impl IntoIterator<Item = chat_log::ChatLine>,
) -> Claims {
    Claims {
        customers: vec![customer],
        chats: vec![(chat, Party::Customer, last)],
        lines: lines.into_iter().collect(),
        ..Claims::default()
    }
}

/// The claim of the node holding the agent "ann", in `chat` recorded up to `last`, writing
/// back `lines`.
fn anns_claim(chat: ChatId, last: u64, lines: impl IntoIterator<Item = chat_log::ChatLine>) -> Claims {
    Claims {
        agents: vec![agent("ann")],
        chats: vec![(chat, Party::Agent, last)],
        lines: lines.into_iter().collect(),
        ..Claims::default()
    }
}

fn seqs_of(read: &chat_log::LogRead) -> Vec<u64> {
    read.lines.iter().map(|l| l.seq).collect()
}

/// What a node that recorded up to `last` takes of `read`, as the hub does
/// (`LogRead::in_order`): each line next in seq order, after stepping over what no log holds.
fn taken(read: chat_log::LogRead, mut last: u64) -> Vec<u64> {
    let mut taken = vec![];
    for (floor, line) in read.in_order() {
        last = last.max(floor.unwrap_or(0));
        if line.seq == last + 1 {
            last = line.seq;
            taken.push(line.seq);
        }
    }
    taken
}

/// The customer's node writes back lines 1..7, the agent's 9..24 (line 8 held by neither:
/// a hole the claims leave). A node at 4 reading the log once both claims are in takes
/// 5..7 and 9..24, skipping only the hole; while the agent's claim is still to come it
/// takes 5..7 and stops at the hole (that claim may write it back). Before, a read said
/// where the log's run to its newest line starts (9), and a node at 4 went on after 8,
/// skipping 5..7 too, which the log held.
#[test]
fn a_node_below_a_hole_of_a_restored_log_takes_every_line_around_it() {
    with_redis(|mut conn| async move {
        let (chatting, chat, [n0, n1]) = chatting_restored(&mut conn).await;
        let customers_node = customers_claim(chatting, chat, 7, (1..=7).map(|seq| held(chat, seq, Party::Customer)));
        restore::claim(&mut conn, "n0", n0, &customers_node, WINDOW)
            .await
            .unwrap();
        let early = chat_log::read_after(&mut conn, chat, 4).await.unwrap();
        assert!(early.restoring);
        assert_eq!(taken(early, 4), [5, 6, 7]);
        let agents_node = anns_claim(chat, 24, (9..=24).map(|seq| held(chat, seq, Party::Agent)));
        restore::claim(&mut conn, "n1", n1, &agents_node, WINDOW).await.unwrap();
        let read = chat_log::read_after(&mut conn, chat, 4).await.unwrap();
        assert!(!read.restoring);
        assert_eq!(taken(read, 4), (5..=7).chain(9..=24).collect::<Vec<_>>());
    });
}

/// Review test (fails on main 21b551fb): a claim writes back a line its node holds past a
/// gap (`chat::lines_to_write_back` adds the held lines) but raises the chat's counter only
/// to the last seq it *recorded* (`standing.rs`: `log.live.last_seq()`). The agent's node
/// recorded up to 5 and held its own line 7 (the customer's 6 still on its way); the
/// customer's node recorded 6 and never got 7 (both deliveries lost with Redis). After the
/// claims the log holds 1..7, yet the next stamp is 7 again: a second line 7, which every
/// reader drops (`read_after` keeps the first of a seq; a node that recorded 7 ignores a
/// line at or below its last), so that line is acknowledged never, delivered never.
#[test]
fn a_line_written_back_past_a_gap_is_never_stamped_over() {
    with_redis(|mut conn| async move {
        let (mut core, mut out) = core_with_sales();
        core.agent_online(agent("ann"), vec![cat("sales")], 1, true, &mut out)
            .unwrap();
        let chatting = core.join(&cat("sales"), &mut out).unwrap();
        let chat = first_paired(&out);
        let incarnations = restored_by_the_first(&mut conn, &core, &[("n0", "9-0"), ("n1", "8-0")]).await;
        let (n0, n1) = (incarnations[0], incarnations[1]);

        let agents_node = anns_claim(
            chat,
            5,
            [1, 2, 3, 4, 5, 7].map(|seq| held(chat, seq, if seq == 7 { Party::Agent } else { Party::Customer })),
        );
        restore::claim(&mut conn, "n1", n1, &agents_node, WINDOW).await.unwrap();
        let customers_node = customers_claim(chatting, chat, 6, (1..=6).map(|seq| held(chat, seq, Party::Customer)));
        restore::claim(&mut conn, "n0", n0, &customers_node, WINDOW)
            .await
            .unwrap();
        let before = chat_log::read_after(&mut conn, chat, 0).await.unwrap();
        let written: Vec<u64> = before.lines.iter().map(|l| l.seq).collect();
        assert_eq!(written, [1, 2, 3, 4, 5, 6, 7], "the claims wrote back every line held");

        let seq = chat_log::append(
            &mut conn,
            "n0",
            n0,
            chat,
            Party::Customer,
            &chatting.0.to_string(),
            "new",
            1,
            "the customer's next line",
            None,
        )
        .await
        .unwrap()
        .seq;
        assert_eq!(
            seq, 8,
            "the next stamp follows every line the log holds (got {seq}: a second line {seq})"
        );
    });
}

/// A node holding many chats writes their lines back in bounded calls, never one huge
/// argument that holds Redis for every node: with Redis's bulk limit at its least (1 MB),
/// 100 chats' last 16 lines of 700 characters (about 1.2 MB) are all written back, and
/// each chat stamps on after them. On the code before, the one claim call carried every
/// line, and Redis refused it.
#[test]
fn a_claim_of_many_chats_writes_their_lines_back_in_bounded_calls() {
    with_redis(|mut conn| async move {
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg("proto-max-bulk-len")
            .arg("1mb")
            .query_async(&mut conn)
            .await
            .unwrap();
        let (mut core, mut out) = core_with_sales();
        let agents: Vec<_> = (0..25).map(|i| agent(&format!("agent{i}"))).collect();
        for a in &agents {
            core.agent_online(a.clone(), vec![cat("sales")], 4, true, &mut out)
                .unwrap();
        }
        let customers: Vec<_> = (0..100).map(|_| core.join(&cat("sales"), &mut out).unwrap()).collect();
        let chats: Vec<ChatId> = out
            .iter()
            .filter_map(|d| match d {
                Decision::Paired { chat, .. } => Some(*chat),
                _ => None,
            })
            .collect();
        assert_eq!(chats.len(), 100, "every customer is paired");
        // 1.1 MB of lines, built and sent by a debug build: more than the 600 ms window on
        // a loaded machine (a fresh clone's run, 2026-11-30: refused as fenced).
        const CLAIMS_WINDOW: Duration = Duration::from_secs(30);
        let incarnations = restored_by_the_first_for(&mut conn, &core, &[("n0", "9-0")], CLAIMS_WINDOW).await;

        let claims = Claims {
            customers: customers.clone(),
            agents,
            chats: chats
                .iter()
                .flat_map(|chat| [(*chat, Party::Customer, 16), (*chat, Party::Agent, 16)])
                .collect(),
            lines: chats
                .iter()
                .flat_map(|chat| {
                    (1..=16).map(|seq| chat_log::ChatLine {
                        text: format!("{seq:>700}"),
                        ..held(*chat, seq, Party::Customer)
                    })
                })
                .collect(),
            ..Claims::default()
        };
        restore::claim(&mut conn, "n0", incarnations[0], &claims, CLAIMS_WINDOW)
            .await
            .unwrap();
        for chat in &chats {
            let log = chat_log::read_after(&mut conn, *chat, 0).await.unwrap();
            let seqs: Vec<u64> = log.lines.iter().map(|l| l.seq).collect();
            assert_eq!(seqs, (1..=16).collect::<Vec<_>>(), "chat {chat:?}");
        }
        let seq = chat_log::append(
            &mut conn,
            "n0",
            incarnations[0],
            chats[99],
            Party::Customer,
            &customers[99].0.to_string(),
            "next",
            1,
            "the next line",
            None,
        )
        .await
        .unwrap()
        .seq;
        assert_eq!(seq, 17, "the chat stamps on after the lines written back");
    });
}
