//! Pairing customers with agents: who gets whom, and places in line.

use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn two_agents_one_customer_the_chat_reaches_exactly_one_agent() {
    let (hub, mut a) = TestHub::with_agent("ann", &["general"], 2).await;
    let mut b = hub.agent("bob", &["general"], 2).await;
    let mut c = hub.customer("Carla", "general").await;
    let started = c.next_of("chat_started").await;
    c.send(json!({"type": "message", "text": "hello?"})).await;
    c.next_of("ack").await;
    let (fa, fb) = (a.drain().await, b.drain().await);
    let got = |frames: &[serde_json::Value]| frames.iter().any(|f| f["type"] == "message" && f["text"] == "hello?");
    assert!(
        got(&fa) ^ got(&fb),
        "exactly one agent got the message: {fa:?} / {fb:?}"
    );
    // Both were idle: ann came online first, so she has waited longest.
    assert_eq!(started["peer_name"], "ANN");
    hub.stop().await;
}

#[tokio::test]
async fn one_agent_two_customers_the_second_waits_sees_nothing_and_is_paired_after() {
    let (hub, mut agent) = TestHub::with_agent("ann", &["general"], 1).await;
    let (mut first, chat) = hub.customer_in_chat("First", "general").await;
    let mut second = hub.customer_queued("Second", "general", 1).await;

    agent.next_of("chat_started").await;
    first.send(json!({"type": "message", "text": "private words"})).await;
    agent
        .send(json!({"type": "message", "chat_id": chat, "text": "private reply"}))
        .await;
    first.each_of(&["ack", "message"]).await;
    let leaked = second.drain().await;
    assert!(
        leaked.iter().all(|f| f["type"] != "message" && f["type"] != "typing"),
        "{leaked:?}"
    );

    agent.send(json!({"type": "end_chat", "chat_id": chat})).await;
    let ended = first.next_of("chat_ended").await;
    assert_eq!(
        (ended["ended_by"].as_str(), ended["reason"].as_str()),
        (Some("agent"), Some("ended"))
    );
    let started = second.next_of("chat_started").await;
    assert_eq!(started["peer_name"], "ANN");
    hub.stop().await;
}

#[tokio::test]
async fn two_agents_two_customers_chat_concurrently_and_nothing_crosses() {
    let (hub, mut a) = TestHub::with_agent("ann", &["general"], 1).await;
    let mut b = hub.agent("bob", &["general"], 1).await;
    let mut c1 = hub.customer("One", "general").await;
    let mut c2 = hub.customer("Two", "general").await;
    let chat1 = c1.next_of("chat_started").await["chat_id"].clone();
    let chat2 = c2.next_of("chat_started").await["chat_id"].clone();
    assert_ne!(chat1, chat2);
    let sa = a.next_of("chat_started").await;
    let sb = b.next_of("chat_started").await;
    let (agent_of_1, agent_of_2) = if sa["chat_id"] == chat1 {
        (&mut a, &mut b)
    } else {
        (&mut b, &mut a)
    };
    assert_eq!(
        if sa["chat_id"] == chat1 {
            &sb["chat_id"]
        } else {
            &sa["chat_id"]
        },
        &chat2
    );

    c1.send(json!({"type": "message", "text": "from one"})).await;
    c2.send(json!({"type": "message", "text": "from two"})).await;
    agent_of_1
        .send(json!({"type": "message", "chat_id": chat1, "text": "to one"}))
        .await;
    agent_of_2
        .send(json!({"type": "message", "chat_id": chat2, "text": "to two"}))
        .await;
    for (ws, chat) in [
        (&mut c1, &chat1),
        (&mut c2, &chat2),
        (agent_of_1, &chat1),
        (agent_of_2, &chat2),
    ] {
        let frames = ws.drain().await;
        // The peer's message and the acknowledgement of one's own.
        let messages: Vec<_> = frames
            .iter()
            .filter(|f| f["type"] == "message" || f["type"] == "ack")
            .collect();
        assert_eq!(messages.len(), 2, "{frames:?}");
        assert!(
            messages.iter().all(|m| &m["chat_id"] == chat),
            "a message crossed chats: {messages:?}"
        );
    }
    hub.stop().await;
}

#[tokio::test]
async fn an_agent_with_limit_three_and_five_customers() {
    let (hub, mut agent) = TestHub::with_agent("ann", &["general"], 3).await;
    let mut customers = vec![];
    for i in 0..5 {
        customers.push(hub.customer(&format!("C{i}"), "general").await);
    }
    let mut chats = vec![];
    for c in customers.iter_mut().take(3) {
        chats.push(c.next_of("chat_started").await["chat_id"].clone());
    }
    assert_eq!(customers[3].next_of("queued").await["place"], 1);
    assert_eq!(customers[4].next_of("queued").await["place"], 2);
    let stats = hub.admin().await.get("/api/admin/stats").await.1;
    assert_eq!(stats["chats_active"], 3);
    assert_eq!(stats["customers_waiting"]["general"], 2);

    agent.send(json!({"type": "end_chat", "chat_id": chats[0]})).await;
    customers[3].next_of("chat_started").await;
    assert_eq!(customers[4].next_of("place").await["place"], 1);
    // The agent's live queue figure follows.
    loop {
        let stats = agent.next_of("queue_stats").await;
        if stats["waiting"]["general"] == 1 {
            break;
        }
    }
    hub.stop().await;
}

#[tokio::test]
async fn categories_route_only_to_agents_who_hold_them() {
    let (hub, mut sales) = TestHub::with_agent("sam", &["sales"], 1).await;
    let mut billing = hub.customer_queued("Bea", "billing", 1).await;
    let sales_frames = sales.drain().await;
    assert!(!types(&sales_frames).contains(&"chat_started".to_string()));
    let mut bill = hub.agent("bill", &["billing"], 1).await;
    billing.next_of("chat_started").await;
    bill.next_of("chat_started").await;
    hub.stop().await;
}

#[tokio::test]
async fn the_least_loaded_agent_gets_the_next_customer() {
    let (hub, mut a) = TestHub::with_agent("ann", &["general"], 4).await;
    let _c1 = hub.customer("One", "general").await;
    a.next_of("chat_started").await;
    let mut b = hub.agent("bob", &["general"], 4).await;
    let mut c2 = hub.customer("Two", "general").await;
    assert_eq!(c2.next_of("chat_started").await["peer_name"], "BOB");
    b.next_of("chat_started").await;
    hub.stop().await;
}

#[tokio::test]
async fn a_freed_agent_takes_the_longest_waiting_across_their_categories() {
    let (hub, mut a) = TestHub::with_agent("ann", &["sales", "billing"], 1).await;
    let (_busy, chat) = hub.customer_in_chat("Busy", "sales").await;
    let mut early = hub.customer("Early", "billing").await;
    let mut late = hub.customer("Late", "sales").await;
    early.next_of("queued").await;
    late.next_of("queued").await;
    a.send(json!({"type": "end_chat", "chat_id": chat})).await;
    early.next_of("chat_started").await;
    let late_frames = late.drain().await;
    assert!(!types(&late_frames).contains(&"chat_started".to_string()));
    hub.stop().await;
}

#[tokio::test]
async fn places_update_only_for_those_whose_place_changed() {
    let hub = TestHub::start().await;
    let mut c1 = hub.customer_queued("One", "general", 1).await;
    let mut c2 = hub.customer_queued("Two", "general", 2).await;
    let mut c3 = hub.customer_queued("Three", "general", 3).await;
    c3.send(json!({"type": "leave"})).await;
    c3.next_of("removed").await;
    assert!(c1.drain().await.is_empty());
    assert!(c2.drain().await.is_empty());
    c1.send(json!({"type": "leave"})).await;
    assert_eq!(c2.next_of("place").await["place"], 1);
    hub.stop().await;
}
