//! Attachments end to end on one node: a file uploaded over HTTP by a side of a chat,
//! named in a `message` frame, relayed with its metadata, archived under its seq, and
//! fetched through links that expire; the refusals (size, type, someone else's file,
//! someone else's chat, forged and expired links); on MongoDB across two nodes; and
//! a file acknowledged before the hub's process is killed still served after a restart.

use std::io::Cursor;

use serde_json::{Value, json};

use crate::archive::TempDir;
use crate::common::{Cluster, Endpoint, HubProcess, QUIET, TestHub, Ws, a_customer_line_reaches, find_by, refusal};
use switchboard::attachments::links::{Variant, sign};
use switchboard::config::{Settings, StoreMode};

/// A hub whose attachments live on disk under a fresh `DATA_DIR` (the default
/// configuration's store), with `max_bytes` as `ATTACHMENT_MAX_BYTES`.
async fn hub_on_disk(dir: &TempDir, max_bytes: u64) -> TestHub {
    on_disk(dir, |s| s.attachments.max_bytes = max_bytes).await
}

/// As [`hub_on_disk`] with the default size limit, a conversation's files taking at most
/// `room` bytes together (`ATTACHMENT_CONVERSATION_MAX_BYTES`).
async fn hub_on_disk_with_room(dir: &TempDir, room: u64) -> TestHub {
    on_disk(dir, |s| s.attachments.conversation_max_bytes = room).await
}

/// A hub whose store is on disk under `dir`, with `more` settings.
async fn on_disk(dir: &TempDir, more: impl FnOnce(&mut switchboard::config::Settings)) -> TestHub {
    TestHub::with(|s| {
        s.store.mode = StoreMode::Embedded;
        s.store.data_dir = dir.0.clone();
        more(s);
    })
    .await
}

/// The settings' upload quotas: `conversation` bytes a conversation, `day` bytes a day.
fn quotas(conversation: u64, day: u64) -> impl Fn(&mut Settings) + Copy {
    move |s| {
        s.attachments.conversation_max_bytes = conversation;
        s.attachments.day_max_bytes = day;
    }
}

/// A small PDF file, as the type sniffing knows one.
pub(crate) const PDF: &[u8] = b"%PDF-1.4\n%\xe2\xe3\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n";

/// As [`upload`], asserted to be taken (201; `context` says which upload): the file's id.
pub(crate) async fn uploaded_id(
    hub: &Endpoint,
    auth: Auth<'_>,
    conversation: &str,
    name: &str,
    bytes: Vec<u8>,
    context: &str,
) -> String {
    let (status, uploaded) = upload(hub, auth, conversation, name, bytes).await;
    assert_eq!(status, 201, "{context}: {uploaded}");
    uploaded["id"].as_str().unwrap().to_string()
}

/// `POST /api/attachments` as whoever `auth` names: the status and the answer.
pub(crate) async fn upload(
    hub: &Endpoint,
    auth: Auth<'_>,
    conversation: &str,
    name: &str,
    bytes: impl Into<Vec<u8>>,
) -> (u16, Value) {
    let client = reqwest::Client::new();
    let mut request = client
        .post(hub.url("/api/attachments"))
        .query(&[("conversation", conversation), ("name", name)])
        // The client's word on the type is not believed.
        .header("content-type", "image/png")
        .body(bytes.into());
    request = auth.apply(request);
    let res = request.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

#[derive(Clone, Copy)]
pub(crate) enum Auth<'a> {
    Customer(&'a str),
    Staff(&'a str),
}

impl Auth<'_> {
    fn apply(self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self {
            Auth::Customer(token) => request.header("x-customer-token", token),
            Auth::Staff(token) => request.bearer_auth(token),
        }
    }
}

pub(crate) async fn link(hub: &Endpoint, auth: Auth<'_>, id: &str) -> (u16, Value) {
    let request = reqwest::Client::new().get(hub.url(&format!("/api/attachments/{id}/link")));
    let res = auth.apply(request).send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

pub(crate) async fn fetch(hub: &Endpoint, path: &str) -> reqwest::Response {
    reqwest::get(hub.url(path)).await.unwrap()
}

pub(crate) fn png(width: u32, height: u32) -> Vec<u8> {
    let picture = image::RgbImage::from_pixel(width, height, image::Rgb([200, 30, 30]));
    let mut out = Cursor::new(Vec::new());
    picture.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// A JPEG from a phone: an EXIF segment with a GPS block and a place name in it.
fn jpeg_with_gps() -> Vec<u8> {
    let picture = image::RgbImage::from_pixel(64, 48, image::Rgb([20, 90, 200]));
    let mut out = Cursor::new(Vec::new());
    picture.write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
    let plain = out.into_inner();
    // TIFF, little-endian: IFD0 has one entry, the GPS IFD pointer; the GPS IFD has
    // GPSLatitudeRef "N" and the GPSAreaInformation text "SECRET-PLACE".
    let mut tiff = b"II*\0\x08\0\0\0".to_vec();
    tiff.extend_from_slice(&1u16.to_le_bytes());
    tiff.extend_from_slice(&[0x25, 0x88, 4, 0, 1, 0, 0, 0]);
    tiff.extend_from_slice(&26u32.to_le_bytes());
    tiff.extend_from_slice(&0u32.to_le_bytes());
    // GPS IFD at 26: two entries.
    tiff.extend_from_slice(&2u16.to_le_bytes());
    tiff.extend_from_slice(&[1, 0, 2, 0, 2, 0, 0, 0, b'N', 0, 0, 0]);
    let text_at = 26 + 2 + 12 * 2 + 4;
    tiff.extend_from_slice(&[0x1C, 0, 7, 0, 12, 0, 0, 0]);
    tiff.extend_from_slice(&(text_at as u32).to_le_bytes());
    tiff.extend_from_slice(&0u32.to_le_bytes());
    tiff.extend_from_slice(b"SECRET-PLACE");
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend_from_slice(&tiff);
    let mut jpeg = plain[..2].to_vec();
    jpeg.extend_from_slice(&[0xFF, 0xE1]);
    jpeg.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
    jpeg.extend_from_slice(&app1);
    jpeg.extend_from_slice(&plain[2..]);
    jpeg
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Agent Ann (with her session token) and customer Carla in a chat: both sockets, the
/// token, the chat id.
async fn chat(hub: &Endpoint) -> (Ws, String, Ws, String) {
    let (mut agent, token) = hub.agent_with_token("ann", &["general"], 2).await;
    let (customer, chat) = hub.paired_customer(&mut agent, "Carla", "general").await;
    (agent, token, customer, chat)
}

#[tokio::test]
async fn a_customers_image_reaches_the_agent_and_the_archive_and_is_fetched_through_a_link() {
    let dir = TempDir::new("attachments");
    let hub = hub_on_disk(&dir, 10 << 20).await;
    let (mut agent, agent_token, mut customer, chat) = chat(&hub).await;
    let token = customer.token.clone().unwrap();

    let (status, uploaded) = upload(
        &hub,
        Auth::Customer(&token),
        &chat,
        "../screens/error shot.png",
        png(800, 600),
    )
    .await;
    assert_eq!(status, 201, "{uploaded}");
    assert_eq!(uploaded["name"], "error shot.png", "folders are dropped from the name");
    assert_eq!(uploaded["type"], "image/png", "told from the bytes");
    assert_eq!(uploaded["thumbnail"], true);
    let id = uploaded["id"].as_str().unwrap().to_string();
    let size = uploaded["size"].as_u64().unwrap();
    assert!(size > 0);

    customer
        .send(json!({"type": "message", "text": "", "attachments": [id], "client_id": "c-1"}))
        .await;
    let received = agent.next_of("message").await;
    assert_eq!(received["chat_id"], chat.as_str());
    assert_eq!(received["text"], "");
    let expected = json!([{"id": id, "name": "error shot.png", "type": "image/png", "size": size, "thumbnail": true}]);
    assert_eq!(received["attachments"], expected, "{received}");
    let ack = customer.next_of("ack").await;
    assert_eq!(ack["client_id"], "c-1");
    assert_eq!(ack["seq"], received["seq"]);

    // The archive keeps it under its seq, with the files' metadata.
    let admin = hub.admin().await;
    let (status, archived) = admin.get(&format!("/api/conversations/{chat}")).await;
    assert_eq!(status, 200, "{archived}");
    let message = find_by(&archived["messages"], "seq", &received["seq"])
        .expect("the message is archived")
        .clone();
    assert_eq!(message["attachments"], expected);

    // The customer and the agent both get links; the file is the image, inline, sandboxed.
    for auth in [Auth::Customer(&token), Auth::Staff(&agent_token)] {
        let (status, links) = link(&hub, auth, &id).await;
        assert_eq!(status, 200, "{links}");
        let res = fetch(&hub, links["url"].as_str().unwrap()).await;
        assert_eq!(res.status(), 200);
        let headers = res.headers().clone();
        assert_eq!(headers["content-type"], "image/png");
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert!(
            headers["content-security-policy"]
                .to_str()
                .unwrap()
                .starts_with("sandbox; default-src 'none'")
        );
        assert!(headers["content-disposition"].to_str().unwrap().starts_with("inline"));
        let served = res.bytes().await.unwrap();
        assert_eq!(served.len() as u64, size);
        let decoded = image::load_from_memory(&served).unwrap();
        assert_eq!((decoded.width(), decoded.height()), (800, 600));
        let thumb = fetch(&hub, links["thumbnail_url"].as_str().unwrap()).await;
        assert_eq!(thumb.status(), 200);
        let thumb = image::load_from_memory(&thumb.bytes().await.unwrap()).unwrap();
        assert_eq!((thumb.width(), thumb.height()), (320, 240));
    }

    // The file is on disk, named by its content.
    let key = std::fs::read(dir.0.join("attachments/link.key")).unwrap();
    let (_, links) = link(&hub, Auth::Customer(&token), &id).await;
    let url = links["url"].as_str().unwrap();
    // A forged signature, a link to another variant, and an expired (well signed) link are refused.
    let forged = format!("{}0000", &url[..url.len() - 4]);
    assert_eq!(fetch(&hub, &forged).await.status(), 403);
    let past = 1_000_000;
    let expired = format!(
        "/api/attachments/{id}?exp={past}&sig={}",
        sign(&key, &id, Variant::File, past)
    );
    let res = fetch(&hub, &expired).await;
    assert_eq!(res.status(), 403);
    assert_eq!(res.json::<Value>().await.unwrap()["error"]["code"], "invalid_link");
    let later = 4_000_000_000i64;
    let thumb_sig = sign(&key, &id, Variant::Thumbnail, later);
    assert_eq!(
        fetch(&hub, &format!("/api/attachments/{id}?exp={later}&sig={thumb_sig}"))
            .await
            .status(),
        403
    );
    let good = format!(
        "/api/attachments/{id}?exp={later}&sig={}",
        sign(&key, &id, Variant::File, later)
    );
    assert_eq!(
        fetch(&hub, &good).await.status(),
        200,
        "the key on disk signs what the hub serves"
    );
    // Without a token or a session, no link.
    let res = reqwest::get(hub.url(&format!("/api/attachments/{id}/link")))
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    hub.stop().await;
}

#[tokio::test]
async fn another_customer_gets_no_link_and_cannot_upload_or_send_into_the_chat() {
    let dir = TempDir::new("attachments-other");
    let hub = hub_on_disk(&dir, 10 << 20).await;
    let (mut agent, agent_token, mut carla, chat) = chat(&hub).await;
    let (mut dora, other_chat) = hub.paired_customer(&mut agent, "Dora", "general").await;
    let (carla_token, dora_token) = (carla.token.clone().unwrap(), dora.token.clone().unwrap());

    let (_, uploaded) = upload(
        &hub,
        Auth::Customer(&carla_token),
        &chat,
        "notes.txt",
        b"my order is 42\n",
    )
    .await;
    let id = uploaded["id"].as_str().unwrap().to_string();
    assert_eq!(uploaded["type"], "text/plain; charset=utf-8");

    // Dora: no link to Carla's file, no upload into Carla's chat, no sending Carla's file.
    assert_eq!(link(&hub, Auth::Customer(&dora_token), &id).await.0, 404);
    refusal(
        upload(&hub, Auth::Customer(&dora_token), &chat, "x.txt", b"hi").await,
        403,
        "not_your_chat",
    );
    dora.send(json!({"type": "message", "text": "look", "attachments": [id]}))
        .await;
    assert_eq!(dora.next_of("error").await["code"], "unknown_attachment");
    // A token of nobody.
    assert_eq!(
        link(&hub, Auth::Customer("0123456789abcdef0123456789abcdef"), &id)
            .await
            .0,
        401
    );

    // The agent cannot pass Carla's upload off as theirs, nor send it into Dora's chat.
    agent
        .send(json!({"type": "message", "chat_id": other_chat, "text": "", "attachments": [id]}))
        .await;
    assert_eq!(agent.next_of("error").await["code"], "unknown_attachment");
    agent
        .send(json!({"type": "message", "chat_id": chat, "text": "", "attachments": [id]}))
        .await;
    assert_eq!(agent.next_of("error").await["code"], "unknown_attachment");
    // Nothing reached Carla.
    assert!(carla.recv_within(QUIET).await.is_none_or(|f| f["type"] != "message"));

    // The agent's own upload for Carla's chat, sent with a caption, reaches Carla.
    let (status, pdf) = upload(&hub, Auth::Staff(&agent_token), &chat, "invoice.pdf", PDF).await;
    assert_eq!(status, 201, "{pdf}");
    assert_eq!(pdf["type"], "application/pdf");
    assert_eq!(pdf["thumbnail"], false);
    let pdf_id = pdf["id"].as_str().unwrap();
    // Not the agent's upload for Dora's chat.
    let (status, _) = upload(&hub, Auth::Staff(&agent_token), "no-such-chat", "x.pdf", b"%PDF-1.4\n").await;
    assert_eq!(status, 403);
    agent
        .send(json!({"type": "message", "chat_id": chat, "text": "Your invoice", "attachments": [pdf_id]}))
        .await;
    let got = carla.next_of("message").await;
    assert_eq!(got["text"], "Your invoice");
    assert_eq!(got["attachments"][0]["name"], "invoice.pdf");
    let (status, links) = link(&hub, Auth::Customer(&carla_token), pdf_id).await;
    assert_eq!(status, 200);
    let res = fetch(&hub, links["url"].as_str().unwrap()).await;
    assert_eq!(res.headers()["content-type"], "application/pdf");
    assert!(
        res.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment;")
    );
    assert!(links.get("thumbnail_url").is_none());
    hub.stop().await;
}

#[tokio::test]
async fn a_file_over_the_limit_is_refused_and_the_chat_goes_on() {
    let dir = TempDir::new("attachments-limit");
    let hub = hub_on_disk(&dir, 4096).await;
    let (mut agent, _, mut customer, chat) = chat(&hub).await;
    let token = customer.token.clone().unwrap();
    let (status, refused) = upload(&hub, Auth::Customer(&token), &chat, "big.txt", vec![b'a'; 100_000]).await;
    assert_eq!(status, 413);
    assert_eq!(refused["error"]["code"], "too_large");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("ATTACHMENT_MAX_BYTES"),
        "{refused}"
    );
    // A body with no length said up front (chunked) is cut off as it passes the limit.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = (0..50).map(|_| Ok(vec![b'b'; 1000])).collect();
    let res = reqwest::Client::new()
        .post(hub.url("/api/attachments"))
        .query(&[("conversation", chat.as_str()), ("name", "big.txt")])
        .header("x-customer-token", &token)
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(chunks)))
        .send()
        .await;
    if let Ok(res) = res {
        assert_eq!(res.status(), 413);
    }
    // Nothing of it was kept.
    let kept = std::fs::read_dir(dir.0.join("attachments/blobs")).unwrap().count();
    assert_eq!(kept, 0, "no blob kept");
    assert_eq!(
        std::fs::read_dir(dir.0.join("attachments/tmp")).unwrap().count(),
        0,
        "nothing left staged"
    );
    // The chat is unaffected.
    a_customer_line_reaches(&mut customer, &mut agent, "still here?").await;
    let (status, _) = upload(&hub, Auth::Customer(&token), &chat, "small.txt", b"fits").await;
    assert_eq!(status, 201);
    hub.stop().await;
}

#[tokio::test]
async fn bytes_that_lie_about_their_type_are_refused_and_a_phone_photo_loses_its_location() {
    let dir = TempDir::new("attachments-types");
    let hub = hub_on_disk(&dir, 10 << 20).await;
    let (_agent, agent_token, customer, chat) = chat(&hub).await;
    let token = customer.token.clone().unwrap();
    for (name, bytes) in [
        (
            "shot.png",
            b"<html><body><script>alert(document.cookie)</script></body></html>".to_vec(),
        ),
        (
            "logo.png",
            b"<svg xmlns=\"http://www.w3.org/2000/svg\"><script>alert(1)</script></svg>".to_vec(),
        ),
        ("tool.pdf", b"MZ\x90\0\x03\0\0\0\x04\0\0\0\xff\xff\0\0".to_vec()),
        ("archive.txt", b"PK\x03\x04\x14\0\0\0\x08\0".to_vec()),
    ] {
        let (status, refused) = upload(&hub, Auth::Customer(&token), &chat, name, bytes).await;
        assert_eq!(
            (status, refused["error"]["code"].as_str()),
            (415, Some("type_not_allowed")),
            "{name}: {refused}"
        );
    }
    // A PNG signature over bytes that are no image.
    refusal(
        upload(
            &hub,
            Auth::Customer(&token),
            &chat,
            "broken.png",
            b"\x89PNG\r\n\x1a\n<script>",
        )
        .await,
        415,
        "unreadable_image",
    );

    let photo = jpeg_with_gps();
    assert!(
        contains(&photo, b"Exif") && contains(&photo, b"SECRET-PLACE"),
        "the upload carries its place"
    );
    let (status, uploaded) = upload(&hub, Auth::Customer(&token), &chat, "IMG_0001.JPG", photo).await;
    assert_eq!(status, 201, "{uploaded}");
    assert_eq!(uploaded["type"], "image/jpeg");
    let (_, links) = link(&hub, Auth::Staff(&agent_token), uploaded["id"].as_str().unwrap()).await;
    let served = fetch(&hub, links["url"].as_str().unwrap()).await.bytes().await.unwrap();
    assert!(!contains(&served, b"Exif"), "no EXIF segment is served");
    assert!(!contains(&served, b"SECRET-PLACE"), "the place is gone");
    let decoded = image::load_from_memory(&served).unwrap();
    assert_eq!((decoded.width(), decoded.height()), (64, 48));
    hub.stop().await;
}

/// Bytes a text file of `len` holds, varied so that a chunk out of place would show.
pub(crate) fn text_file(len: usize) -> Vec<u8> {
    (0..len).map(|i| b"abcdefghijklmnopqrstuvwxyz\n"[i * 7 % 27]).collect()
}

/// On MongoDB, two nodes: agent Ann on alpha (with her session token), customer Carla
/// on beta in a chat with her (her resume token, the chat id), both told.
struct TwoNodes {
    alpha: TestHub,
    beta: TestHub,
    ann: Ws,
    ann_token: String,
    carla: Ws,
    token: String,
    chat: String,
    /// Kept until the nodes are stopped.
    _cluster: Cluster,
}

impl TwoNodes {
    /// Carla's upload of `name` (`bytes`) to her chat through `node`, taken: its id.
    async fn carla_uploads(&self, node: &Endpoint, name: &str, bytes: Vec<u8>) -> String {
        let context = format!("Carla's upload through {}", node.url(""));
        uploaded_id(node, Auth::Customer(&self.token), &self.chat, name, bytes, &context).await
    }

    /// Ann's upload of `name` (`bytes`) to her chat with Carla through `node`, taken: its id.
    async fn ann_uploads(&self, node: &Endpoint, name: &str, bytes: Vec<u8>) -> String {
        let context = format!("Ann's upload through {}", node.url(""));
        uploaded_id(node, Auth::Staff(&self.ann_token), &self.chat, name, bytes, &context).await
    }

    /// Carla sends `text` with her uploaded text file `file` (its id, name and size) as
    /// client id `c-1`: Ann gets the message with the file's metadata (a text file, no
    /// thumbnail), under the seq of Carla's ack: the message as Ann got it.
    async fn carlas_text_file_reaches_ann(&mut self, text: &str, file: Value) -> Value {
        let id = &file["id"];
        self.carla
            .send(json!({"type": "message", "text": text, "attachments": [id], "client_id": "c-1"}))
            .await;
        let ack = self.carla.next_of("ack").await;
        let received = self.ann.next_of("message").await;
        assert_eq!(received["text"], text);
        let expected = json!([{"id": id, "name": file["name"], "type": "text/plain; charset=utf-8", "size": file["size"], "thumbnail": false}]);
        assert_eq!(received["attachments"], expected, "{received}");
        assert_eq!(ack["seq"], received["seq"]);
        received
    }
}

async fn ann_on_alpha_carla_on_beta(tag: &str) -> TwoNodes {
    ann_on_alpha_carla_on_beta_with(tag, |_| {}).await
}

/// As [`ann_on_alpha_carla_on_beta`], both nodes' settings changed by `tweak`.
async fn ann_on_alpha_carla_on_beta_with(tag: &str, tweak: impl Fn(&mut Settings) + Copy) -> TwoNodes {
    let store = crate::archive::mongo_store(&crate::archive::mongo_uri()).await;
    let cluster = Cluster::on(tag, store).await;
    let (alpha, beta) = cluster.two_nodes(tweak).await;
    let (mut ann, ann_token) = alpha.agent_with_token("ann", &["general"], 1).await;
    let (carla, chat) = beta.customer_in_chat("Carla", "general").await;
    ann.next_of("chat_started").await;
    TwoNodes {
        token: carla.token.clone().unwrap(),
        chat: chat.as_str().unwrap().to_string(),
        alpha,
        beta,
        ann,
        ann_token,
        carla,
        _cluster: cluster,
    }
}

/// Carla's page drops and she resumes on the same node (beta) within the grace period; once
/// that period has run out since the drop she is still in her chat, so her token works on
/// every node: an upload through alpha (a load balancer's pick) is taken. Her token's
/// record in Redis, shortened to the grace period at the drop, is held again for her visit
/// by the resume (before, only a resume on another node did that, and alpha answered 401
/// `not_in_chat` once the grace period had passed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_back_on_the_same_node_keeps_her_token_on_every_node_past_the_grace_period() {
    // Long enough for her drop to be told across nodes and her resume on a loaded machine.
    let grace = std::time::Duration::from_secs(3);
    let mut n = ann_on_alpha_carla_on_beta_with("attachments-resumed-here", |s| s.resume_grace = grace).await;
    drop(std::mem::replace(
        &mut n.carla,
        Ws::connect(&n.beta.ws_url("/ws/customer"), &[]).await.unwrap(),
    ));
    assert_eq!(n.ann.next_of("peer_away").await["chat_id"], n.chat.as_str());
    n.carla
        .send(json!({"type": "resume", "token": n.token, "last_seq": 0}))
        .await;
    assert_eq!(n.carla.next_of("resumed").await["chat"]["chat_id"], n.chat.as_str());
    assert_eq!(n.ann.next_of("peer_back").await["chat_id"], n.chat.as_str());

    // Past the grace period since her drop (her resume came after it).
    tokio::time::sleep(grace + std::time::Duration::from_millis(500)).await;
    let id = n.carla_uploads(&n.alpha, "notes.txt", text_file(1_000)).await;
    let file = json!({"id": id, "name": "notes.txt", "size": 1_000});
    n.carlas_text_file_reaches_ann("my notes", file).await;
    n.alpha.stop().await;
    n.beta.stop().await;
}

/// On MongoDB, two nodes: Carla (on beta) uploads a file of several chunks on beta and
/// sends it; Ann (on alpha) gets the message with its metadata, the archive keeps it,
/// and the file is served by both nodes, through a link given by either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_uploaded_on_one_node_is_relayed_and_served_on_the_other() {
    let mut n = ann_on_alpha_carla_on_beta("attachments-cluster").await;

    let bytes = text_file(700_000);
    let id = n.carla_uploads(&n.beta, "server.log", bytes.clone()).await;
    let file = json!({"id": id, "name": "server.log", "size": 700_000});
    let received = n.carlas_text_file_reaches_ann("the log", file).await;

    for (giver, auth) in [
        (&*n.alpha, Auth::Staff(&n.ann_token)),
        (&*n.beta, Auth::Customer(&n.token)),
    ] {
        let (status, links) = link(giver, auth, &id).await;
        assert_eq!(status, 200, "{links}");
        for server in [&*n.alpha, &*n.beta] {
            let res = fetch(server, links["url"].as_str().unwrap()).await;
            assert_eq!(res.status(), 200, "a link of one node works on every node");
            assert!(
                res.headers()["content-disposition"]
                    .to_str()
                    .unwrap()
                    .starts_with("attachment")
            );
            assert!(res.bytes().await.unwrap() == bytes, "the bytes as uploaded");
        }
    }

    // Archived with its files, whichever node archives the chat.
    let admin = n.alpha.admin().await;
    let mut archived = None;
    for _ in 0..200 {
        let (status, conversation) = admin.get(&format!("/api/conversations/{}", n.chat)).await;
        let found = conversation["messages"]
            .as_array()
            .and_then(|ms| ms.iter().find(|m| m["seq"] == received["seq"]).cloned());
        if status == 200 && found.is_some() {
            archived = found;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let archived = archived.expect("the message is archived");
    assert_eq!(archived["attachments"], received["attachments"], "as Ann got them");
    n.alpha.stop().await;
    n.beta.stop().await;
}

/// Behind a load balancer an upload and the sender's websocket land on different nodes:
/// Carla (her socket on beta) uploads on alpha and sends on beta; Ann (her socket on
/// alpha) uploads on beta and sends on alpha. Each message is relayed with its file, and
/// the other side fetches it from either node. The checks hold across nodes too: Ann
/// cannot send Carla's upload as hers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_uploaded_on_another_node_than_the_senders_socket_is_accepted() {
    let mut n = ann_on_alpha_carla_on_beta("attachments-elsewhere").await;

    let bytes = text_file(300_000);
    // Each uploads on the node without their socket.
    let carlas = n.carla_uploads(&n.alpha, "carla.log", bytes.clone()).await;

    // Carla's upload is not Ann's to send, on whichever node.
    n.ann
        .send(json!({"type": "message", "chat_id": n.chat, "text": "", "attachments": [carlas], "client_id": "a-0"}))
        .await;
    let refused = n.ann.next_of("error").await;
    assert_eq!(refused["code"], "unknown_attachment", "{refused}");

    let file = json!({"id": carlas, "name": "carla.log", "size": 300_000});
    n.carlas_text_file_reaches_ann("my log", file).await;

    let anns = n.ann_uploads(&n.beta, "shot.png", png(40, 30)).await;
    n.ann
        .send(json!({"type": "message", "chat_id": n.chat, "text": "here", "attachments": [anns], "client_id": "a-1"}))
        .await;
    n.ann.next_of("ack").await;
    let received = n.carla.next_of("message").await;
    assert_eq!(received["attachments"][0]["id"], anns.as_str(), "{received}");
    assert_eq!(received["attachments"][0]["thumbnail"], true);

    // Each side fetches the other's file through a link of either node, from either node.
    for (id, auth) in [(&carlas, Auth::Staff(&n.ann_token)), (&anns, Auth::Customer(&n.token))] {
        for giver in [&*n.alpha, &*n.beta] {
            let (status, links) = link(giver, auth, id).await;
            assert_eq!(status, 200, "{links}");
            for server in [&*n.alpha, &*n.beta] {
                let res = fetch(server, links["url"].as_str().unwrap()).await;
                assert_eq!(res.status(), 200);
            }
        }
    }
    let (_, links) = link(&n.alpha, Auth::Staff(&n.ann_token), &carlas).await;
    let served = fetch(&n.beta, links["url"].as_str().unwrap())
        .await
        .bytes()
        .await
        .unwrap();
    assert!(served == bytes, "the bytes as uploaded");
    n.alpha.stop().await;
    n.beta.stop().await;
}

/// Upload, send, the acknowledgement: then the hub's process is killed (SIGKILL) and
/// started again on the same `DATA_DIR`; the file is served as it was acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_acknowledged_before_a_sigkill_is_served_after_the_restart() {
    let dir = TempDir::new("attachments-kill");
    let data_dir = dir.0.to_str().unwrap().to_string();
    let envs = [("STORE", "embedded"), ("DATA_DIR", data_dir.as_str())];
    let mut hub = HubProcess::start(Some(&dir.0), &envs).await;
    let (mut agent, _agent_token, mut customer, chat) = chat(&hub).await;
    let token = customer.token.clone().unwrap();
    let bytes = text_file(300_000);
    let id = uploaded_id(
        &hub,
        Auth::Customer(&token),
        &chat,
        "notes.txt",
        bytes.clone(),
        "the upload",
    )
    .await;
    customer
        .send(json!({"type": "message", "text": "", "attachments": [id], "client_id": "k-1"}))
        .await;
    customer.next_of("ack").await;
    agent.next_of("message").await;
    hub.kill();

    let hub = HubProcess::start(Some(&dir.0), &envs).await;
    let key = std::fs::read(dir.0.join("attachments/link.key")).unwrap();
    let exp = 4_000_000_000i64;
    let url = format!(
        "/api/attachments/{id}?exp={exp}&sig={}",
        sign(&key, &id, Variant::File, exp)
    );
    let res = fetch(&hub, &url).await;
    assert_eq!(res.status(), 200);
    assert!(res.bytes().await.unwrap() == bytes, "the file as acknowledged");
    // And the archived message still names it.
    let admin = hub.admin().await;
    let (status, archived) = admin.get(&format!("/api/conversations/{chat}")).await;
    assert_eq!(status, 200, "{archived}");
    let names: Vec<&Value> = archived["messages"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|m| m["attachments"].as_array().into_iter().flatten())
        .map(|a| &a["id"])
        .collect();
    assert_eq!(names, [&json!(id)]);
}

/// Erasing a customer erases their files: the records and the blobs, except a blob the
/// same bytes sent in another conversation still name, which stays until that one goes.
#[tokio::test]
async fn erasure_deletes_the_files_a_file_shared_by_another_conversation_stays() {
    let dir = TempDir::new("attachments-erasure");
    let hub = hub_on_disk(&dir, 10 << 20).await;
    let (mut agent, _token, carla, carla_chat) = chat(&hub).await;
    let (dora, dora_chat) = hub.paired_customer(&mut agent, "Dora", "general").await;
    let bytes = text_file(1_000);
    let mut ids = vec![];
    for (customer, chat) in [(&carla, &carla_chat), (&dora, &dora_chat)] {
        let token = customer.token.clone().unwrap();
        ids.push(
            uploaded_id(
                &hub,
                Auth::Customer(&token),
                chat,
                "same.txt",
                bytes.clone(),
                "the upload",
            )
            .await,
        );
    }
    let blobs = || walk(&dir.0.join("attachments/blobs"));
    assert_eq!(blobs(), 1, "the same bytes are kept once");
    let key = std::fs::read(dir.0.join("attachments/link.key")).unwrap();
    let served = |id: String| {
        let hub = &hub;
        let exp = 4_000_000_000i64;
        let url = format!(
            "/api/attachments/{id}?exp={exp}&sig={}",
            sign(&key, &id, Variant::File, exp)
        );
        async move { fetch(hub, &url).await.status().as_u16() }
    };
    let admin = hub.admin().await;
    let (status, erased) = admin
        .post("/api/admin/erasures", json!({"conversation_id": carla_chat}))
        .await;
    assert_eq!(status, 200, "{erased}");
    assert_eq!(served(ids[0].clone()).await, 404, "Carla's file is gone");
    assert_eq!(served(ids[1].clone()).await, 200, "Dora's, the same bytes, stays");
    assert_eq!(blobs(), 1);
    let (status, erased) = admin
        .post("/api/admin/erasures", json!({"conversation_id": dora_chat}))
        .await;
    assert_eq!(status, 200, "{erased}");
    assert_eq!(served(ids[1].clone()).await, 404);
    assert_eq!(blobs(), 0, "no blob nobody names");
    assert_eq!(walk(&dir.0.join("attachments/records")), 0);
    hub.stop().await;
}

/// Files under `dir`, however deep.
fn walk(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| if p.is_dir() { walk(&p) } else { 1 })
        .sum()
}

/// The quotas: the files of one conversation together, and the desk's in a day; past
/// either, 413 naming the setting, nothing kept, and the other conversation goes on.
#[tokio::test]
async fn uploads_past_a_quota_are_refused_naming_the_setting() {
    let hub = TestHub::with(quotas(2_500, 4_000)).await;
    let (mut agent, _token, carla, carla_chat) = chat(&hub).await;
    let (dora, dora_chat) = hub.paired_customer(&mut agent, "Dora", "general").await;
    let (carla_token, dora_token) = (carla.token.clone().unwrap(), dora.token.clone().unwrap());
    let send = |token: &str, chat: &str, len: usize| {
        let (hub, token, chat) = (&hub, token.to_string(), chat.to_string());
        async move { upload(hub, Auth::Customer(&token), &chat, "a.txt", text_file(len)).await }
    };
    assert_eq!(send(&carla_token, &carla_chat, 1_000).await.0, 201);
    assert_eq!(send(&carla_token, &carla_chat, 1_000).await.0, 201);
    let (status, refused) = send(&carla_token, &carla_chat, 1_000).await;
    assert_eq!(status, 413, "{refused}");
    assert_eq!(refused["error"]["code"], "quota_exceeded");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("ATTACHMENT_CONVERSATION_MAX_BYTES") && message.contains("2500"),
        "{message}"
    );
    // Dora's conversation has room of its own, until the desk's day is full.
    assert_eq!(send(&dora_token, &dora_chat, 1_500).await.0, 201);
    let (status, refused) = send(&dora_token, &dora_chat, 600).await;
    assert_eq!(status, 413, "{refused}");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("ATTACHMENT_DAY_MAX_BYTES") && message.contains("4000"),
        "{message}"
    );
    assert_eq!(send(&dora_token, &dora_chat, 400).await.0, 201, "what fits still goes");
    hub.stop().await;
}

/// Uploads of `len` bytes each, all at once, each on its node as its uploader into its
/// chat: how many were kept, and the refusals (status and answer).
async fn at_once(uploads: &[(&Endpoint, Auth<'_>, &str)], len: usize) -> (usize, Vec<(u16, Value)>) {
    let all = uploads
        .iter()
        .map(|(hub, auth, chat)| upload(hub, *auth, chat, "a.txt", text_file(len)));
    let answers = futures_util::future::join_all(all).await;
    let kept = answers.iter().filter(|(status, _)| *status == 201).count();
    let refused = answers.into_iter().filter(|(status, _)| *status != 201).collect();
    (kept, refused)
}

/// Each refusal is the documented one: 413 `quota_exceeded` naming one of `settings`.
fn all_refused_naming(refused: &[(u16, Value)], settings: &[&str]) {
    for (status, answer) in refused {
        assert_eq!(*status, 413, "{answer}");
        assert_eq!(answer["error"]["code"], "quota_exceeded", "{answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(settings.iter().any(|s| message.contains(s)), "{message}");
    }
}

/// Uploads at once that together pass a quota: exactly those that fit are kept (the
/// quota is held before a file is stored, not counted after), the others refused. On
/// disk, where keeping a file takes an fsync: the window two uploads once slipped through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_at_once_never_pass_a_quota_together() {
    let dir = TempDir::new("attachments-at-once");
    let data_dir = dir.0.clone();
    let hub = TestHub::with(move |s| {
        s.store.mode = StoreMode::Embedded;
        s.store.data_dir = data_dir;
        quotas(5_000, 8_000)(s);
    })
    .await;
    let (mut agent, ann_token, carla, carla_chat) = chat(&hub).await;
    let (dora, dora_chat) = hub.paired_customer(&mut agent, "Dora", "general").await;
    let (carla_token, dora_token) = (carla.token.clone().unwrap(), dora.token.clone().unwrap());
    let (carla, dora, ann) = (
        Auth::Customer(&carla_token),
        Auth::Customer(&dora_token),
        Auth::Staff(&ann_token),
    );
    // Twelve at once into Carla's chat, hers and the agent's in turn: five fit its quota.
    // Then the desk's day: 5,000 taken, 3,000 left for twelve at once into Dora's chat.
    let rounds = [
        (carla, carla_chat.as_str(), 5, "ATTACHMENT_CONVERSATION_MAX_BYTES"),
        (dora, dora_chat.as_str(), 3, "ATTACHMENT_DAY_MAX_BYTES"),
    ];
    for (customer, chat, fit, setting) in rounds {
        let uploads: Vec<_> = (0..12).map(|i| (&*hub, [customer, ann][i % 2], chat)).collect();
        let (kept, refused) = at_once(&uploads, 1_000).await;
        assert_eq!(kept, fit, "{setting}: {refused:?}");
        all_refused_naming(&refused, &[setting]);
    }
    hub.stop().await;
}

/// The same across two nodes on MongoDB, the uploads shared between them (the agent's
/// too, on the node that holds neither side of Dora's chat): the quota is held in the
/// shared store, so the nodes together keep exactly what fits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_at_once_on_two_nodes_never_pass_a_quota_together() {
    let store = crate::archive::mongo_store(&crate::archive::mongo_uri()).await;
    let cluster = Cluster::on("attachments-quota", store).await;
    let (alpha, beta) = cluster.two_nodes(quotas(5_000, 8_000)).await;
    let (mut ann, ann_token) = alpha.agent_with_token("ann", &["general"], 2).await;
    let (carla, carla_chat) = beta.customer_in_chat("Carla", "general").await;
    ann.next_of("chat_started").await;
    let (dora, dora_chat) = alpha.customer_in_chat("Dora", "general").await;
    ann.next_of("chat_started").await;
    let (carla_chat, dora_chat) = (carla_chat.as_str().unwrap(), dora_chat.as_str().unwrap());
    let (carla_token, dora_token) = (carla.token.clone().unwrap(), dora.token.clone().unwrap());
    let (carla, dora, ann) = (
        Auth::Customer(&carla_token),
        Auth::Customer(&dora_token),
        Auth::Staff(&ann_token),
    );
    let nodes = [&*alpha, &*beta];
    let uploads: Vec<_> = (0..12)
        .map(|i| (nodes[i % 2], [carla, ann][i / 2 % 2], carla_chat))
        .collect();
    let (kept, refused) = at_once(&uploads, 1_000).await;
    assert_eq!(kept, 5, "{refused:?}");
    all_refused_naming(&refused, &["ATTACHMENT_CONVERSATION_MAX_BYTES"]);
    let uploads: Vec<_> = (0..12)
        .map(|i| (nodes[i % 2], [dora, ann][i / 2 % 2], dora_chat))
        .collect();
    let (kept, refused) = at_once(&uploads, 1_000).await;
    assert_eq!(kept, 3, "{refused:?}");
    // Across nodes the two quotas are two counters: an upload may find the conversation's
    // room held by uploads under way that the day then refuses, and is refused naming
    // either (refused all the same: the day was full).
    all_refused_naming(
        &refused,
        &["ATTACHMENT_DAY_MAX_BYTES", "ATTACHMENT_CONVERSATION_MAX_BYTES"],
    );
    alpha.stop().await;
    beta.stop().await;
}

/// With a virus scanner (`CLAMD_URL`, a real clamd with one test signature): a file it
/// finds a signature in is refused 422 `infected`, named, and nothing of it is kept; a
/// clean one goes through and is relayed; with the scanner down, uploads are refused 503
/// `scanner_unavailable` (never kept unscanned), and the chat goes on.
#[tokio::test]
async fn with_a_virus_scanner_an_infected_file_is_refused_and_a_scanner_down_keeps_nothing() {
    let mut clamd = crate::clamd::Clamd::start().await;
    let dir = TempDir::new("attachments-scanned");
    let (data_dir, socket) = (dir.0.clone(), clamd.socket.clone());
    let hub = TestHub::with(move |s| {
        s.store.mode = StoreMode::Embedded;
        s.store.data_dir = data_dir;
        s.clamd = Some(switchboard::config::clamd::Clamd::Unix(socket));
    })
    .await;
    let (mut agent, _, mut customer, chat) = chat(&hub).await;
    let token = customer.token.clone().unwrap();

    let mut infected = b"Hello, see the attached notes.\n".to_vec();
    infected.extend_from_slice(crate::clamd::MARKER);
    let refused = refusal(
        upload(&hub, Auth::Customer(&token), &chat, "notes.txt", infected).await,
        422,
        "infected",
    );
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains(crate::clamd::SIGNATURE),
        "{refused}"
    );
    assert_eq!(walk(&dir.0.join("attachments/blobs")), 0, "nothing of it kept");

    let (status, clean) = upload(&hub, Auth::Customer(&token), &chat, "clean.txt", text_file(2000)).await;
    assert_eq!(status, 201, "{clean}");
    customer
        .send(json!({"type": "message", "text": "here", "attachments": [clean["id"]]}))
        .await;
    let relayed = agent.next_of("message").await;
    assert_eq!(relayed["attachments"][0]["id"], clean["id"], "{relayed}");

    clamd.kill();
    refusal(
        upload(&hub, Auth::Customer(&token), &chat, "later.txt", text_file(100)).await,
        503,
        "scanner_unavailable",
    );
    a_customer_line_reaches(&mut customer, &mut agent, "still here?").await;
    hub.stop().await;
}

/// The archive's exports list a conversation's files: the CSV in an `attachments` column
/// (`name (size bytes)` joined with `; `), the JSON with what staff need to fetch one
/// (id, name, type, size) and no link (links expire within minutes; a file outlives them).
#[tokio::test]
async fn an_export_lists_each_messages_files_by_name_size_and_id() {
    let hub = TestHub::start().await;
    let (mut agent, _agent_token, mut customer, chat) = chat(&hub).await;
    let token = customer.token.clone().unwrap();
    let (_, picture) = upload(&hub, Auth::Customer(&token), &chat, "error shot.png", png(40, 30)).await;
    let (_, notes) = upload(&hub, Auth::Customer(&token), &chat, "=notes.txt", b"order 42\n").await;
    customer
        .send(json!({"type": "message", "text": "see", "attachments": [picture["id"], notes["id"]]}))
        .await;
    agent.next_of("message").await;
    customer.next_of("ack").await;
    customer.say("and no file here", "c-2").await;

    let admin = hub.admin().await;
    let export = |format: &'static str| {
        let (admin, chat) = (&admin, chat.clone());
        async move {
            let res = admin
                .client
                .get(format!(
                    "{}/api/conversations/{chat}/export?format={format}",
                    admin.base
                ))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
            res.text().await.unwrap()
        }
    };
    let csv = export("csv").await;
    let rows: Vec<Vec<String>> = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(csv.as_bytes())
        .records()
        .map(|r| r.unwrap().iter().map(str::to_string).collect())
        .collect();
    let column = |name: &str| rows[0].iter().position(|c| c == name).unwrap();
    let (text, files) = (column("text"), column("attachments"));
    let by_text = |t: &str| {
        rows[1..]
            .iter()
            .find(|r| r[text] == t)
            .unwrap_or_else(|| panic!("{csv}"))
    };
    let (png_size, txt_size) = (picture["size"].as_u64().unwrap(), notes["size"].as_u64().unwrap());
    assert_eq!(
        by_text("see")[files],
        format!("error shot.png ({png_size} bytes); =notes.txt ({txt_size} bytes)"),
        "a cell starting with = would be defused; this one starts with the first name"
    );
    assert_eq!(by_text("and no file here")[files], "");

    let json: Value = serde_json::from_str(&export("json").await).unwrap();
    let messages = json["conversations"][0]["messages"].as_array().unwrap();
    let sent = messages.iter().find(|m| m["text"] == "see").unwrap();
    let listed = &sent["attachments"];
    assert_eq!(listed[0]["id"], picture["id"]);
    assert_eq!(listed[0]["name"], "error shot.png");
    assert_eq!(listed[0]["type"], "image/png");
    assert_eq!(listed[0]["size"], png_size);
    assert_eq!(listed[1]["name"], "=notes.txt");
    assert!(
        listed[0].get("url").is_none(),
        "no link that would expire in the file: {sent}"
    );
    // Staff fetch a listed file by its id.
    let (status, links) = admin
        .get(&format!("/api/attachments/{}/link", listed[1]["id"].as_str().unwrap()))
        .await;
    assert_eq!(status, 200, "{links}");
    hub.stop().await;
}

/// `DELETE /api/attachments/{id}` as whoever `auth` names: the status and the answer.
pub(crate) async fn remove(hub: &Endpoint, auth: Auth<'_>, id: &str) -> (u16, Value) {
    let request = reqwest::Client::new().delete(hub.url(&format!("/api/attachments/{id}")));
    let res = auth.apply(request).send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// An upload taken back from the tray (removed, or cancelled once its bytes were in) is
/// deleted by its uploader: its file and record go, its bytes go back to the conversation's
/// and the day's quotas, and no message may name it. A file a message carried stays (409),
/// and nobody but its uploader takes a file back.
#[tokio::test]
async fn an_upload_taken_back_before_sending_gives_its_bytes_back_and_a_sent_one_stays() {
    let dir = TempDir::new("attachments-taken-back");
    let hub = hub_on_disk_with_room(&dir, 2_500).await;
    let (mut agent, agent_token, mut carla, chat) = chat(&hub).await;
    let (dora, _) = hub.paired_customer(&mut agent, "Dora", "general").await;
    let (token, dora_token) = (carla.token.clone().unwrap(), dora.token.clone().unwrap());
    let send = |len: usize, tag: u8| {
        let (hub, token, chat) = (&hub, token.clone(), chat.clone());
        async move { upload(hub, Auth::Customer(&token), &chat, "a.txt", vec![tag; len]).await }
    };
    let (_, first) = send(1_000, b'a').await;
    let (_, second) = send(1_000, b'b').await;
    assert_eq!(send(1_000, b'c').await.0, 413, "the conversation is full");
    let blobs = walk(&dir.0.join("attachments/blobs"));
    let (first, second) = (first["id"].as_str().unwrap(), second["id"].as_str().unwrap());

    // Only its uploader takes it back: not the agent, not another customer.
    refusal(
        remove(&hub, Auth::Staff(&agent_token), first).await,
        403,
        "not_your_upload",
    );
    assert_eq!(remove(&hub, Auth::Customer(&dora_token), first).await.0, 404);
    let res = reqwest::Client::new()
        .delete(hub.url(&format!("/api/attachments/{first}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);

    let (status, answer) = remove(&hub, Auth::Customer(&token), first).await;
    assert_eq!(status, 204, "{answer}");
    assert_eq!(walk(&dir.0.join("attachments/blobs")), blobs - 1, "its file is gone");
    assert_eq!(remove(&hub, Auth::Customer(&token), first).await.0, 404, "gone once");
    assert_eq!(link(&hub, Auth::Customer(&token), first).await.0, 404);
    carla
        .send(json!({"type": "message", "text": "", "attachments": [first], "client_id": "c-1"}))
        .await;
    assert_eq!(carla.next_of("error").await["code"], "unknown_attachment");
    // Its bytes are back: the conversation takes 1,000 more, and no more.
    assert_eq!(send(1_000, b'c').await.0, 201);
    assert_eq!(send(1_000, b'd').await.0, 413);

    // A file sent in a line stays: its line needs it.
    carla
        .send(json!({"type": "message", "text": "", "attachments": [second], "client_id": "c-2"}))
        .await;
    assert_eq!(agent.next_of("message").await["attachments"][0]["id"], second);
    carla.next_of("ack").await;
    refusal(remove(&hub, Auth::Customer(&token), second).await, 409, "already_sent");
    assert_eq!(link(&hub, Auth::Staff(&agent_token), second).await.0, 200);
    hub.stop().await;
}

/// An upload whose client goes away mid-body keeps nothing and holds nothing: no file
/// staged, and the conversation's whole quota is there for the next upload.
#[tokio::test]
async fn an_upload_cut_off_mid_body_keeps_and_holds_nothing() {
    use tokio::io::AsyncWriteExt;
    let dir = TempDir::new("attachments-cut");
    let hub = hub_on_disk_with_room(&dir, 300_000).await;
    let (_agent, _, carla, chat) = chat(&hub).await;
    let token = carla.token.clone().unwrap();
    let address = hub.addr.to_string();
    let mut socket = tokio::net::TcpStream::connect(&address).await.unwrap();
    let head = format!(
        "POST /api/attachments?conversation={chat}&name=cut.txt HTTP/1.1\r\nhost: {address}\r\n\
         x-customer-token: {token}\r\ncontent-length: 300000\r\n\r\n"
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    socket.write_all(&text_file(150_000)).await.unwrap();
    socket.flush().await.unwrap();
    drop(socket);
    // The whole quota, once the hub has seen the client go (it answers the next upload
    // only after it read what came before: retried until then, with a bound).
    let mut tries = 0;
    loop {
        let (status, answer) = upload(&hub, Auth::Customer(&token), &chat, "whole.txt", text_file(300_000)).await;
        if status == 201 {
            break;
        }
        tries += 1;
        assert!(tries < 100, "the quota stays held: {status} {answer}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(walk(&dir.0.join("attachments/tmp")), 0, "nothing left staged");
    hub.stop().await;
}

/// Polyglots: a valid PNG with an HTML page and script after its end, and a GIF with
/// JavaScript after its trailer, are taken only as the images they are, written again:
/// the bytes served hold no trace of what followed the picture.
#[tokio::test]
async fn a_polyglot_image_is_kept_only_as_its_picture_written_again() {
    let hub = TestHub::start().await;
    let (_agent, agent_token, customer, chat) = chat(&hub).await;
    let token = customer.token.clone().unwrap();
    let payload: &[u8] = b"<html><body><script>document.title='ran'</script></body></html>";
    let mut png_polyglot = png(30, 20);
    png_polyglot.extend_from_slice(payload);
    let mut gif_polyglot = {
        let picture = image::RgbaImage::from_pixel(30, 20, image::Rgba([10, 200, 10, 255]));
        let mut out = Cursor::new(Vec::new());
        picture.write_to(&mut out, image::ImageFormat::Gif).unwrap();
        out.into_inner()
    };
    gif_polyglot.extend_from_slice(b"*/=1;document.title='ran';//");
    for (name, bytes, marker) in [
        ("shot.png", png_polyglot, &b"<script>"[..]),
        ("anim.gif", gif_polyglot, &b"document.title"[..]),
    ] {
        assert!(contains(&bytes, marker));
        let (status, uploaded) = upload(&hub, Auth::Customer(&token), &chat, name, bytes.clone()).await;
        assert_eq!(status, 201, "{name}: {uploaded}");
        assert_eq!(uploaded["type"], "image/png", "{name}: written again as PNG");
        let (_, links) = link(&hub, Auth::Staff(&agent_token), uploaded["id"].as_str().unwrap()).await;
        for url in [&links["url"], &links["thumbnail_url"]] {
            let res = fetch(&hub, url.as_str().unwrap()).await;
            assert_eq!(res.headers()["content-type"], "image/png");
            let served = res.bytes().await.unwrap();
            assert!(!contains(&served, marker), "{name}: the payload is not served");
            assert!(!contains(&served, b"title"), "{name}: nothing of it");
            assert_ne!(served.as_ref(), bytes.as_slice());
            image::load_from_memory_with_format(&served, image::ImageFormat::Png).unwrap();
        }
    }
    hub.stop().await;
}
