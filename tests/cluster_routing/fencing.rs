//! Fencing: a node that is not alive under its incarnation is refused and changes nothing;
//! and a retried join changes nothing either.

use std::collections::HashMap;

use switchboard::cluster::routing_scripts::{Applied, ClusterRoutingError, RedisRouting};
use switchboard::core::routing::Decision;

use crate::{agent, cat, digest, expire_lease, register, runtime_and_redis, with_redis};

/// Node "n0" registered on `conn`, and category "sales" added through it: the node and its
/// incarnation.
async fn n0_with_sales(conn: &mut redis::aio::ConnectionManager) -> (RedisRouting, u64) {
    let incarnation = register(conn, "n0").await;
    let n0 = RedisRouting::new(conn.clone(), "n0", incarnation);
    n0.add_category(&cat("sales")).await.unwrap();
    (n0, incarnation)
}

#[test]
fn a_node_that_is_not_alive_is_fenced_and_changes_nothing() {
    with_redis(|mut conn| async move {
        let (n0, incarnation) = n0_with_sales(&mut conn).await;
        let (customer, _) = n0.join(&cat("sales")).await.unwrap();

        let fenced = |result: Result<Applied, ClusterRoutingError>| matches!(result, Err(ClusterRoutingError::Fenced));
        let before = digest(&mut conn).await;
        // A stale incarnation (the node restarted since, or was replaced).
        let stale = RedisRouting::new(conn.clone(), "n0", incarnation - 1);
        assert!(fenced(stale.leave(customer).await));
        assert!(fenced(
            stale.agent_online(&agent("ann"), &[cat("sales")], 2, true).await
        ));
        // A node nobody registered.
        let stranger = RedisRouting::new(conn.clone(), "n9", incarnation);
        assert!(fenced(stranger.add_category(&cat("billing")).await));
        assert_eq!(before, digest(&mut conn).await, "a fenced node changed Redis");
        // The right incarnation whose lease ran out (a SIGSTOPped node waking up).
        expire_lease(&mut conn, "n0").await;
        let before = digest(&mut conn).await;
        assert!(fenced(n0.agent_online(&agent("ann"), &[cat("sales")], 2, true).await));
        assert!(fenced(n0.leave(customer).await));
        let joined = n0.join(&cat("sales")).await;
        assert!(matches!(joined, Err(ClusterRoutingError::Fenced)), "{joined:?}");
        assert_eq!(before, digest(&mut conn).await, "a fenced node changed Redis");

        // Another node reaps it; its customer is now held, away, by the reaper; the old
        // incarnation stays fenced even once its lease would be renewed.
        let n1 = RedisRouting::new(conn.clone(), "n1", register(&mut conn, "n1").await);
        let reaped = n1.node_lost("n0").await.unwrap();
        assert!(matches!(
            reaped.decisions.as_slice(),
            [Decision::CustomerGraceStarted { customer: c, .. }] if *c == customer
        ));
        let nodes: HashMap<String, String> = redis::cmd("HGETALL")
            .arg("{sb}:nodes")
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(!nodes.contains_key("n0"), "the reaped node is out of the registry");
        assert!(fenced(n0.leave(customer).await));
        // And a live node cannot be reaped.
        let n2 = RedisRouting::new(conn.clone(), "n2", register(&mut conn, "n2").await);
        let before = digest(&mut conn).await;
        assert!(matches!(n2.node_lost("n1").await, Err(ClusterRoutingError::NodeAlive)));
        assert_eq!(before, digest(&mut conn).await);
    });
}

#[test]
fn a_retried_join_gets_the_first_reply_and_changes_nothing() {
    with_redis(|mut conn| async move {
        let n0 = RedisRouting::new(conn.clone(), "n0", register(&mut conn, "n0").await);
        n0.add_category(&cat("sales")).await.unwrap();
        n0.agent_online(&agent("ann"), &[cat("sales")], 1, true).await.unwrap();
        let (customer, first) = n0.join_request(&cat("sales"), "connection-1").await.unwrap();
        assert!(first.decisions.iter().any(|d| matches!(d, Decision::Paired { .. })));
        let before = digest(&mut conn).await;
        let (again, second) = n0.join_request(&cat("sales"), "connection-1").await.unwrap();
        assert_eq!((customer, &first), (again, &second), "the retry gets the first reply");
        assert_eq!(before, digest(&mut conn).await, "the retry changed Redis");
        let (other, _) = n0.join_request(&cat("sales"), "connection-2").await.unwrap();
        assert_ne!(other, customer, "another request is another customer");
    });
}

/// A chat message sent again with the same id (the router's retry after
/// a connection broke under the call) gets its first seq and is logged once; so does one
/// the client sends again with its client id and text (a refusal whose call Redis applied
/// late), while another text under that client id, or the other side's, is a message of
/// its own; a buddy event sent again with the same id is recorded once.
#[test]
fn a_message_or_buddy_event_sent_again_with_its_id_is_recorded_once() {
    use switchboard::cluster::{buddy_log, chat_log};
    use switchboard::core::routing::Party;
    let (runtime, server) = runtime_and_redis();
    runtime.block_on(async {
        let mut conn = server.connect().await;
        let (incarnation, customer, chat) = one_chat(&mut conn).await;
        let stamp = |conn: &mut redis::aio::ConnectionManager,
                     from: Party,
                     id: &'static str,
                     text: &'static str,
                     client_id: Option<&'static str>| {
            let mut conn = conn.clone();
            let sender = match from {
                Party::Customer => customer.0.to_string(),
                _ => "ann".to_string(),
            };
            async move {
                chat_log::append(
                    &mut conn,
                    "n0",
                    incarnation,
                    chat,
                    from,
                    &sender,
                    id,
                    i64::from(id.as_bytes()[1]),
                    text,
                    client_id,
                )
                .await
                .unwrap()
            }
        };
        let send = |conn: &mut redis::aio::ConnectionManager, id: &'static str| {
            let stamped = stamp(conn, Party::Customer, id, "hi", None);
            async move { stamped.await.seq }
        };
        assert_eq!(send(&mut conn, "m1").await, 1);
        assert_eq!(send(&mut conn, "m1").await, 1, "the same id: the same seq");
        assert_eq!(send(&mut conn, "m2").await, 2, "the next message follows");
        let read = chat_log::read_after(&mut conn, chat, 0).await.unwrap();
        let seqs: Vec<u64> = read.lines.iter().map(|l| l.seq).collect();
        assert_eq!(seqs, [1, 2], "logged once each");
        assert_eq!(
            read.lines.first().map(|l| l.seq),
            Some(1),
            "the log starts at the chat's first message"
        );

        // Sent again by the client (a new id: another call, maybe on another node) with its
        // client id and text: the first message's stamp, logged once.
        let first = stamp(&mut conn, Party::Customer, "m3", "refund?", Some("c-1")).await;
        assert_eq!((first.seq, &first.first), (3, &None));
        let again = stamp(&mut conn, Party::Customer, "m4", "refund?", Some("c-1")).await;
        assert_eq!(
            (again.seq, again.first),
            (3, Some(("m3".to_string(), i64::from(b'3')))),
            "sent again: the first's seq, id and time"
        );
        // Another text under a client id used again (a reloaded page counting from 1), or
        // the other side's message with the same client id and text: messages of their own.
        let reused = stamp(&mut conn, Party::Customer, "m5", "thanks", Some("c-1")).await;
        assert_eq!((reused.seq, reused.first), (4, None));
        let other_side = stamp(&mut conn, Party::Agent, "m6", "refund?", Some("c-1")).await;
        assert_eq!((other_side.seq, other_side.first), (5, None));
        let read = chat_log::read_after(&mut conn, chat, 2).await.unwrap();
        let ids: Vec<&str> = read.lines.iter().map(|l| l.id.as_str()).collect();
        assert_eq!(ids, ["m3", "m5", "m6"], "logged once each");

        let events = || async {
            let n: u64 = redis::cmd("XLEN")
                .arg("{sb}:routing-events")
                .query_async(&mut server.connect().await)
                .await
                .unwrap();
            n
        };
        let before = events().await;
        for _ in 0..2 {
            buddy_log::append(&mut conn, "n0", incarnation, "{}", "p", Some("e1"))
                .await
                .unwrap();
        }
        assert_eq!(events().await, before + 1, "the same id: recorded once");
        buddy_log::append(&mut conn, "n0", incarnation, "{}", "p", None)
            .await
            .unwrap();
        assert_eq!(events().await, before + 2);
    });
}

/// The routing rules are a Functions library: a Redis that lost its functions (restarted
/// without its data) gets it again from the first call, which goes on as asked; the next
/// call of a node finds it loaded.
#[test]
fn a_redis_without_the_routing_library_is_given_it_by_the_first_call() {
    with_redis(|mut conn| async move {
        let (n0, _) = n0_with_sales(&mut conn).await;
        let _: () = redis::cmd("FUNCTION")
            .arg("FLUSH")
            .query_async(&mut conn)
            .await
            .unwrap();
        let (customer, _) = n0.join(&cat("sales")).await.unwrap();
        let libraries: Vec<redis::Value> = redis::cmd("FUNCTION").arg("LIST").query_async(&mut conn).await.unwrap();
        assert_eq!(libraries.len(), 1, "one library, loaded again");
        n0.leave(customer).await.unwrap();
    });
}

/// A node's waiting messages go to Redis in one pipeline (`chat_log::append_many`): each is
/// stamped in the order given, a refused one (not the sender's chat) takes no seq and
/// leaves the others alone, a message id sent again in the same batch gets its first seq,
/// and a Redis without the script (flushed, as after a restart) is given it by the call.
#[test]
fn a_batch_of_messages_is_stamped_in_order_each_with_its_own_answer() {
    use switchboard::cluster::chat_log::{self, Outgoing};
    use switchboard::cluster::routing_scripts::ClusterRoutingError;
    use switchboard::core::routing::{ChatId, Party, RoutingError};
    with_redis(|mut conn| async move {
        let (incarnation, customer, chat) = one_chat(&mut conn).await;
        let customer = customer.0.to_string();
        let customer = customer.as_str();
        fn message<'a>(chat: ChatId, from: Party, sender: &'a str, id: &'a str) -> Outgoing<'a> {
            Outgoing {
                chat,
                from,
                sender,
                id,
                at: 7,
                text: id,
                client_id: None,
                files: "",
                via: None,
            }
        }
        let _: () = redis::cmd("SCRIPT").arg("FLUSH").query_async(&mut conn).await.unwrap();
        let mut batch = [
            message(chat, Party::Customer, customer, "m1"),
            message(chat, Party::Agent, "ann", "m2"),
            message(chat, Party::Agent, "bob", "m3"),
            message(chat, Party::Customer, customer, "m4"),
            message(chat, Party::Customer, customer, "m1"),
        ];
        // The customer's mail: the log keeps how it came.
        batch[3].via = Some(switchboard::store::Via::Email);
        let answers = chat_log::append_many(&mut conn, "n0", incarnation, &batch)
            .await
            .unwrap();
        let seqs: Vec<Option<u64>> = answers.iter().map(|a| a.as_ref().ok().map(|s| s.seq)).collect();
        assert_eq!(seqs, [Some(1), Some(2), None, Some(3), Some(1)]);
        assert!(
            matches!(answers[2], Err(ClusterRoutingError::Refused(RoutingError::NotYourChat))),
            "{:?}",
            answers[2]
        );
        let read = chat_log::read_after(&mut conn, chat, 0).await.unwrap();
        let logged: Vec<(u64, &str, _)> = read.lines.iter().map(|l| (l.seq, l.id.as_str(), l.via)).collect();
        let by_mail = Some(switchboard::store::Via::Email);
        assert_eq!(
            logged,
            [(1, "m1", None), (2, "m2", None), (3, "m4", by_mail)],
            "logged once each, in order"
        );
    });
}

/// Node `n0` registered, customer and agent `ann` paired in `sales`: its incarnation, the
/// customer and their chat.
async fn one_chat(
    conn: &mut redis::aio::ConnectionManager,
) -> (
    u64,
    switchboard::core::routing::CustomerId,
    switchboard::core::routing::ChatId,
) {
    let incarnation = register(conn, "n0").await;
    let n0 = RedisRouting::new(conn.clone(), "n0", incarnation);
    n0.add_category(&cat("sales")).await.unwrap();
    let (customer, _) = n0.join(&cat("sales")).await.unwrap();
    let paired = n0.agent_online(&agent("ann"), &[cat("sales")], 1, true).await.unwrap();
    let chat = paired
        .decisions
        .iter()
        .find_map(|d| match d {
            Decision::Paired { chat, .. } => Some(*chat),
            _ => None,
        })
        .expect("paired");
    (incarnation, customer, chat)
}

/// A lookup of a resume token takes the ended visit it finds (a visit is shown once). A
/// node reaped while stopped, woken with a customer's `resume` in its socket, looked the
/// token up before it knew it was fenced, took the ending kept for them and closed every
/// connection (1012) without showing it: the node they resumed on next found nothing and
/// answered `resume_expired` (scenario 3 on CI). Only a live member may take it now.
#[test]
fn a_node_that_is_not_alive_cannot_take_an_ended_visit() {
    use std::time::Duration;
    use switchboard::cluster::resume_tokens::{self, Found};
    use switchboard::core::routing::CustomerId;

    with_redis(|mut conn| async move {
        let incarnation = register(&mut conn, "n0").await;
        let customer = CustomerId(7);
        let (key, ended) = (
            resume_tokens::key("their-token"),
            resume_tokens::ended_key("their-token"),
        );
        let minute = Duration::from_secs(60);
        resume_tokens::remember(&mut conn, &key, customer, minute)
            .await
            .unwrap();
        let kept = r#"{"resumed":{},"ended":{}}"#;
        let of_customer = resume_tokens::ended_customer_key(customer);
        resume_tokens::remember_ended(&mut conn, &of_customer, kept, minute)
            .await
            .unwrap();
        let ask = async |conn: &mut redis::aio::ConnectionManager, node: &str, incarnation: u64| {
            resume_tokens::find_or_take_ended(conn, &key, &ended, Duration::ZERO, node, incarnation)
                .await
                .unwrap()
        };

        let before = digest(&mut conn).await;
        assert_eq!(
            ask(&mut conn, "n0", incarnation - 1).await,
            Found::NotMember,
            "a stale incarnation"
        );
        assert_eq!(
            ask(&mut conn, "n9", incarnation).await,
            Found::NotMember,
            "a node nobody registered"
        );
        expire_lease(&mut conn, "n0").await;
        let expired = digest(&mut conn).await;
        assert_ne!(before, expired);
        assert_eq!(
            ask(&mut conn, "n0", incarnation).await,
            Found::NotMember,
            "a lease run out"
        );
        assert_eq!(
            expired,
            digest(&mut conn).await,
            "a node that is no member took something"
        );

        // A live node takes it, once.
        let n1 = register(&mut conn, "n1").await;
        match ask(&mut conn, "n1", n1).await {
            Found::Known {
                customer: Some(c),
                ended_visit: Some(visit),
                ..
            } => {
                assert_eq!(c, customer);
                assert_eq!(visit, kept);
            }
            other => panic!("a live node finds the kept ending: {other:?}"),
        }
        let again = ask(&mut conn, "n1", n1).await;
        assert!(
            !matches!(
                again,
                Found::Known {
                    ended_visit: Some(_),
                    ..
                }
            ),
            "shown twice: {again:?}"
        );
    });
}
