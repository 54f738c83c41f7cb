//! Files in buddy chats: two signed-in members of staff in a buddy chat upload files for
//! it, send them, and fetch each other's, exactly as in a customer chat (`attachments`);
//! nobody else uploads for it or gets a link to its files (other agents, customers, the
//! public roster), the admins excepted; on one node and on MongoDB across two nodes.

use serde_json::{Value, json};

use crate::attachments::{Auth, fetch, link, png, text_file, upload};
use crate::buddy::invite_and_accept;
use crate::common::{Cluster, Endpoint, QUIET, TestHub, Ws, find_by, refusal};

/// `ann` invites `bob` (listed as `bob_name` on her roster, whose page may be on another
/// node: waited for), `bob` accepts: the chat's id, as both are told.
async fn buddy_chat(ann: &mut Ws, ann_welcome: &Value, bob: &mut Ws, bob_name: &str) -> String {
    let listed = find_by(&ann_welcome["buddies"], "name", bob_name).cloned();
    let bob_entry = match listed {
        Some(entry) => entry,
        None => ann
            .next_matching(|f| f["type"] == "buddy_joined" && f["buddy"]["name"] == bob_name)
            .await["buddy"]
            .clone(),
    };
    invite_and_accept(ann, bob, &bob_entry["id"]).await;
    let chat = ann.chat_id_in("buddy_chat_started").await;
    assert_eq!(bob.next_of("buddy_chat_started").await["chat_id"], chat.as_str());
    chat
}

/// The archived message at `seq` of conversation `chat`, as an admin reads it (waited for:
/// with several nodes one of them archives the chat).
async fn archived(hub: &Endpoint, chat: &str, seq: &Value) -> Value {
    let admin = hub.admin().await;
    for _ in 0..200 {
        let (status, conversation) = admin.get(&format!("/api/conversations/{chat}")).await;
        let found = conversation["messages"]
            .as_array()
            .and_then(|ms| ms.iter().find(|m| &m["seq"] == seq).cloned());
        if let Some(found) = found.filter(|_| status == 200) {
            assert_eq!(conversation["kind"], "buddy");
            return found;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("message {seq} of buddy chat {chat} was never archived");
}

/// One node: Ann uploads a picture for her buddy chat with Bob and sends it; Bob gets the
/// line with the file, Ann the ack, the archive the file's metadata, and Bob the picture
/// through a link. Another agent, a customer and the public roster neither upload for the
/// chat nor get a link to its files (an admin does); Bob cannot send Ann's upload as his;
/// the chat's quota holds; files in a public-roster chat are refused.
#[tokio::test]
async fn staff_in_a_buddy_chat_exchange_files_and_nobody_else_gets_them() {
    let hub = TestHub::with(|s| s.attachments.conversation_max_bytes = 200_000).await;
    let ann_token = hub.agent_account("ann", &["general"], 1).await;
    let bob_token = hub.agent_account("bob", &["general"], 1).await;
    let (mut bob, _) = Ws::staff_buddy(&hub, &bob_token).await;
    let (mut ann, ann_welcome) = Ws::staff_buddy(&hub, &ann_token).await;
    let chat = buddy_chat(&mut ann, &ann_welcome, &mut bob, "BOB").await;

    let (status, uploaded) = upload(&hub, Auth::Staff(&ann_token), &chat, "where.png", png(640, 480)).await;
    assert_eq!(status, 201, "{uploaded}");
    let id = uploaded["id"].as_str().unwrap().to_string();
    ann.send(json!({"type": "message", "chat_id": chat, "text": "here", "attachments": [id], "client_id": "a-1"}))
        .await;
    let line = bob.next_of("message").await;
    let expected =
        json!([{"id": id, "name": "where.png", "type": "image/png", "size": uploaded["size"], "thumbnail": true}]);
    assert_eq!(
        (line["from"].as_str(), line["text"].as_str()),
        (Some("buddy"), Some("here"))
    );
    assert_eq!(line["attachments"], expected, "{line}");
    let ack = ann.next_of("ack").await;
    assert_eq!((&ack["client_id"], &ack["seq"]), (&json!("a-1"), &line["seq"]));
    assert_eq!(archived(&hub, &chat, &line["seq"]).await["attachments"], expected);

    // Bob fetches the picture and its thumbnail; so may Ann and an admin.
    let (status, links) = link(&hub, Auth::Staff(&bob_token), &id).await;
    assert_eq!(status, 200, "{links}");
    let res = fetch(&hub, links["url"].as_str().unwrap()).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "image/png");
    let picture = image::load_from_memory(&res.bytes().await.unwrap()).unwrap();
    assert_eq!((picture.width(), picture.height()), (640, 480));
    let thumbnail = fetch(&hub, links["thumbnail_url"].as_str().unwrap()).await;
    assert_eq!(thumbnail.status(), 200);
    let admin = hub.admin().await;
    for auth in [Auth::Staff(&ann_token), Auth::Staff(&admin.token)] {
        assert_eq!(link(&hub, auth, &id).await.0, 200);
    }

    // Bob's own file back, a PDF; Ann's upload is not his to send.
    let pdf = crate::attachments::PDF.to_vec();
    let (status, bobs) = upload(&hub, Auth::Staff(&bob_token), &chat, "plan.pdf", pdf).await;
    assert_eq!(status, 201, "{bobs}");
    bob.send(json!({"type": "message", "chat_id": chat, "text": "", "attachments": [id], "client_id": "b-1"}))
        .await;
    bob.next_refusal("unknown_attachment", "b-1").await;
    bob.send(json!({"type": "message", "chat_id": chat, "text": "", "attachments": [bobs["id"]], "client_id": "b-2"}))
        .await;
    let line = ann.next_of("message").await;
    assert_eq!(line["attachments"][0]["name"], "plan.pdf", "{line}");
    assert_eq!(bob.next_of("ack").await["seq"], line["seq"]);
    assert_eq!(
        link(&hub, Auth::Staff(&ann_token), bobs["id"].as_str().unwrap())
            .await
            .0,
        200
    );

    // Another agent (in a customer chat of her own) and her customer: no upload for the
    // buddy chat, no link to its files.
    let (mut cid, cid_token) = hub.agent_with_token("cid", &["general"], 1).await;
    let (carla, carla_chat) = hub.paired_customer(&mut cid, "Carla", "general").await;
    let carla_token = carla.token.clone().unwrap();
    for auth in [Auth::Staff(&cid_token), Auth::Customer(&carla_token)] {
        refusal(
            upload(&hub, auth, &chat, "x.txt", b"hi\n".to_vec()).await,
            403,
            "not_your_chat",
        );
        let (status, _) = link(&hub, auth, &id).await;
        assert_eq!(status, 404, "a buddy chat's file is its members' and the admins'");
    }
    // Her own customer chat's files are still hers to upload.
    assert_eq!(
        upload(&hub, Auth::Staff(&cid_token), &carla_chat, "y.txt", b"ok\n".to_vec())
            .await
            .0,
        201
    );
    // Without a session or a token, nothing.
    let res = reqwest::Client::new()
        .post(hub.url("/api/attachments"))
        .query(&[("conversation", chat.as_str()), ("name", "x.txt")])
        .body("hi\n")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);

    // The chat's quota counts as a customer chat's, both members' files together.
    let (status, _) = upload(&hub, Auth::Staff(&bob_token), &chat, "a.txt", text_file(120_000)).await;
    assert_eq!(status, 201);
    let (status, refused) = upload(&hub, Auth::Staff(&ann_token), &chat, "b.txt", text_file(120_000)).await;
    assert_eq!(status, 413, "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("ATTACHMENT_CONVERSATION_MAX_BYTES"),
        "{refused}"
    );

    // The public roster has no account to upload with: its chats take no files.
    let (mut pat, _) = crate::buddy_cluster::buddy(&hub, "Pat", None).await;
    let (mut quinn, quinn_welcome) = crate::buddy_cluster::buddy(&hub, "Quinn", None).await;
    invite_and_accept(&mut pat, &mut quinn, quinn_welcome["you"].clone()).await;
    let public_chat = pat.chat_id_in("buddy_chat_started").await;
    pat.send(json!({"type": "message", "chat_id": public_chat, "text": "", "attachments": [id], "client_id": "p-1"}))
        .await;
    assert_eq!(pat.next_of("error").await["code"], "attachments_unavailable");
    assert!(quinn.recv_within(QUIET).await.is_none_or(|f| f["type"] != "message"));
    hub.stop().await;
}

/// On MongoDB, two nodes: Ann's buddy page on alpha, Bob's on beta. Ann uploads on beta
/// (not where her page is) and sends on alpha; Bob, on beta, gets the line with the file
/// and fetches it from either node; Bob's file goes back the other way; the archive keeps
/// both; another agent gets no link on either node; a page opened on a third node reads
/// both lines, files included, from the chat's log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buddy_chat_files_cross_nodes_on_mongodb() {
    let store = crate::archive::mongo_store(&crate::archive::mongo_uri()).await;
    let cluster = Cluster::on("buddy-files-cluster", store).await;
    let (alpha, beta) = cluster.two_nodes(|_| {}).await;
    let ann_token = alpha.agent_account("ann", &["general"], 1).await;
    let bob_token = alpha.agent_account("bob", &["general"], 1).await;
    let cid_token = alpha.agent_account("cid", &["general"], 1).await;
    let (mut ann, ann_welcome) = Ws::staff_buddy(&alpha, &ann_token).await;
    let (mut bob, _) = Ws::staff_buddy(&beta, &bob_token).await;
    let chat = buddy_chat(&mut ann, &ann_welcome, &mut bob, "BOB").await;

    let bytes = text_file(700_000);
    let (status, uploaded) = upload(&beta, Auth::Staff(&ann_token), &chat, "server.log", bytes.clone()).await;
    assert_eq!(status, 201, "{uploaded}");
    let id = uploaded["id"].as_str().unwrap().to_string();
    ann.send(json!({"type": "message", "chat_id": chat, "text": "the log", "attachments": [id], "client_id": "a-1"}))
        .await;
    let ack = ann.next_of("ack").await;
    let line = bob.next_of("message").await;
    let expected = json!([{"id": id, "name": "server.log", "type": "text/plain; charset=utf-8", "size": 700_000, "thumbnail": false}]);
    assert_eq!(line["attachments"], expected, "{line}");
    assert_eq!(ack["seq"], line["seq"]);
    for giver in [&*alpha, &*beta] {
        let (status, links) = link(giver, Auth::Staff(&bob_token), &id).await;
        assert_eq!(status, 200, "{links}");
        for server in [&*alpha, &*beta] {
            let res = fetch(server, links["url"].as_str().unwrap()).await;
            assert_eq!(res.status(), 200, "a link of one node works on every node");
            assert!(res.bytes().await.unwrap() == bytes, "the bytes as uploaded");
        }
        assert_eq!(link(giver, Auth::Staff(&cid_token), &id).await.0, 404);
    }
    assert_eq!(archived(&alpha, &chat, &line["seq"]).await["attachments"], expected);

    // Bob's picture, uploaded on alpha, sent on beta, reaches Ann on alpha.
    let (status, picture) = upload(&alpha, Auth::Staff(&bob_token), &chat, "shot.png", png(300, 200)).await;
    assert_eq!(status, 201, "{picture}");
    bob.send(
        json!({"type": "message", "chat_id": chat, "text": "", "attachments": [picture["id"]], "client_id": "b-1"}),
    )
    .await;
    let back = ann.next_of("message").await;
    assert_eq!(back["attachments"][0]["id"], picture["id"], "{back}");
    assert_eq!(back["attachments"][0]["thumbnail"], true);
    assert_eq!(bob.next_of("ack").await["seq"], back["seq"]);
    let (status, links) = link(&alpha, Auth::Staff(&ann_token), picture["id"].as_str().unwrap()).await;
    assert_eq!(status, 200, "{links}");
    assert_eq!(
        fetch(&beta, links["thumbnail_url"].as_str().unwrap()).await.status(),
        200
    );
    assert_eq!(
        archived(&beta, &chat, &back["seq"]).await["attachments"],
        back["attachments"]
    );

    // A page of Ann's on gamma, which held neither member: its welcome waits for a read
    // of the chat's log, which has both lines with their files.
    let gamma = cluster.node("gamma", |_| {}).await;
    let (_ann_gamma, welcome) = Ws::staff_buddy(&gamma, &ann_token).await;
    let messages = &welcome["chat"]["messages"];
    let files_of = |seq: &Value| {
        messages
            .as_array()
            .and_then(|ms| ms.iter().find(|m| &m["seq"] == seq))
            .map(|m| m["attachments"].clone())
    };
    assert_eq!(files_of(&line["seq"]), Some(expected), "{welcome}");
    assert_eq!(files_of(&back["seq"]), Some(back["attachments"].clone()), "{welcome}");
    gamma.stop().await;
    alpha.stop().await;
    beta.stop().await;
}
