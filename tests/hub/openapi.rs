//! The OpenAPI document the hub serves is complete and true: a walk over every
//! operation it lists, by every kind of caller (nobody, a stale token, an admin
//! from outside the whitelist, an agent, an admin by cookie and by bearer token),
//! with the documented request, an unknown id, a malformed body and a malformed
//! query. Every answer must have a status the document declares for that
//! operation, a body valid against the declared schema (every 4xx an
//! `ErrorBody`), and the declared headers; every operation must succeed at least
//! once; and what needs a session must say so in its `security`.

use std::collections::{BTreeMap, BTreeSet};

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::*;

/// A documented client address outside the default whitelist (TEST-NET-3).
const OUTSIDE: &str = "203.0.113.5";
/// A path parameter no record has.
const UNKNOWN_ID: &str = "no-such-id";

struct Caller {
    name: &'static str,
    headers: Vec<(&'static str, String)>,
}

/// One request of the walk.
struct Call {
    method: Method,
    path: String,
    body: Option<String>,
    /// The operation's declared header parameters, each with its example.
    headers: Vec<(String, String)>,
}

/// What came back.
struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    text: String,
}

struct Operation {
    method: Method,
    template: String,
    spec: Value,
}

impl Operation {
    fn name(&self) -> String {
        format!("{} {}", self.method, self.template)
    }

    /// Ending things (a deletion, a sign-out) goes last, so the rest of the walk has what it needs.
    fn order(&self) -> (bool, bool) {
        (self.template.ends_with("/logout"), self.method == Method::DELETE)
    }
}

/// The schema `reference` points at, `$ref`s followed.
fn resolve<'a>(doc: &'a Value, mut schema: &'a Value) -> &'a Value {
    while let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        let pointer = reference.trim_start_matches('#');
        schema = doc.pointer(pointer).unwrap_or_else(|| panic!("dangling {reference}"));
    }
    schema
}

/// The smallest value a schema accepts as far as its types go (required fields only).
fn synthesize(doc: &Value, schema: &Value) -> Value {
    let schema = resolve(doc, schema);
    if let Some(example) = schema.get("example").or_else(|| schema.pointer("/examples/0")) {
        return example.clone();
    }
    if let Some(first) = schema.pointer("/enum/0") {
        return first.clone();
    }
    for combinator in ["allOf", "oneOf", "anyOf"] {
        if let Some(parts) = schema.get(combinator).and_then(Value::as_array) {
            let mut merged = serde_json::Map::new();
            for part in parts {
                match synthesize(doc, part) {
                    Value::Object(o) => merged.extend(o),
                    other if combinator != "allOf" => return other,
                    _ => {}
                }
            }
            return Value::Object(merged);
        }
    }
    let kind = match schema.get("type") {
        Some(Value::Array(kinds)) => kinds.iter().find(|k| *k != "null").cloned().unwrap_or(Value::Null),
        Some(kind) => kind.clone(),
        None => Value::Null,
    };
    match kind.as_str() {
        Some("string") => json!("walk"),
        Some("integer") | Some("number") => json!(1),
        Some("boolean") => json!(false),
        Some("array") => json!([]),
        Some("object") => {
            let mut out = serde_json::Map::new();
            for field in schema["required"].as_array().into_iter().flatten() {
                let field = field.as_str().unwrap();
                out.insert(field.to_string(), synthesize(doc, &schema["properties"][field]));
            }
            Value::Object(out)
        }
        _ => Value::Null,
    }
}

/// The request body the document shows for an operation: its example, else one built from the schema.
fn documented_body(doc: &Value, op: &Value) -> Option<String> {
    let media = op.pointer("/requestBody/content/application~1json")?;
    let body = media
        .get("example")
        .cloned()
        .unwrap_or_else(|| synthesize(doc, &media["schema"]));
    Some(body.to_string())
}

/// Validates `instance` against `schema`, whose `$ref`s point into the document. Each
/// (document, schema) pair is compiled once: the walk checks hundreds of answers against a
/// few dozen schemas, and compiling every component for each answer took most of its time.
/// The cache holds the components it was compiled against and starts afresh when they
/// differ (comparing is cheap; printing them for a key, on each answer, took a fifth of the walk).
fn schema_errors(doc: &Value, schema: &Value, instance: &Value) -> Vec<String> {
    type Compiled = std::collections::HashMap<String, std::sync::Arc<jsonschema::Validator>>;
    static COMPILED: std::sync::LazyLock<std::sync::Mutex<(Value, Compiled)>> =
        std::sync::LazyLock::new(Default::default);
    let components = &doc["components"];
    let key = schema.to_string();
    let cached = {
        let mut cache = COMPILED.lock().unwrap();
        if cache.0 != *components {
            *cache = (components.clone(), Compiled::new());
        }
        cache.1.get(&key).cloned()
    };
    let validator = cached.unwrap_or_else(|| {
        let root = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "components": components,
            "allOf": [schema],
        });
        let compiled = std::sync::Arc::new(jsonschema::validator_for(&root).expect("the document's schemas compile"));
        let mut cache = COMPILED.lock().unwrap();
        if cache.0 == *components {
            cache.1.insert(key, compiled.clone());
        }
        compiled
    });
    validator
        .iter_errors(instance)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect()
}

fn status_declared(op: &Value, status: u16) -> Option<&Value> {
    let responses = op["responses"].as_object()?;
    responses
        .get(&status.to_string())
        .or_else(|| responses.get(&format!("{}XX", status / 100)))
        .or_else(|| responses.get("default"))
}

/// Every problem one answer shows against the document.
fn check_answer(doc: &Value, op: &Operation, caller: &Caller, call: &Call, answer: &Answer) -> Vec<String> {
    let what = format!(
        "{} as {} ({} {}{}) answered {}: {}",
        op.name(),
        caller.name,
        call.method,
        call.path,
        call.body.as_deref().map(|b| format!(" {b}")).unwrap_or_default(),
        answer.status,
        answer.text.chars().take(200).collect::<String>()
    );
    let mut problems = vec![];
    let Some(declared) = status_declared(&op.spec, answer.status) else {
        return vec![format!("{what}: status not declared")];
    };
    let parsed: Option<Value> = serde_json::from_str(&answer.text).ok();
    if answer.status >= 400 && answer.status < 500 {
        let error_body = json!({"$ref": "#/components/schemas/ErrorBody"});
        match &parsed {
            Some(body) => problems.extend(
                schema_errors(doc, &error_body, body)
                    .into_iter()
                    .map(|e| format!("{what}: not an ErrorBody: {e}")),
            ),
            None => problems.push(format!("{what}: an error without a JSON body")),
        }
    }
    let content_type = answer
        .headers
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    // A response declared in several media types (an export: CSV or JSON) may answer any
    // of them; JSON is checked against its schema when it is JSON.
    let other_declared = declared["content"].as_object().is_some_and(|types| {
        types
            .keys()
            .any(|t| t != "application/json" && content_type.split(';').next() == Some(t.as_str()))
    });
    match declared.pointer("/content/application~1json/schema") {
        Some(_) if other_declared => {}
        Some(schema) => {
            if !content_type.starts_with("application/json") {
                problems.push(format!("{what}: content type {content_type:?}, declared JSON"));
            }
            match &parsed {
                Some(body) => problems.extend(
                    schema_errors(doc, schema, body)
                        .into_iter()
                        .map(|e| format!("{what}: body does not match the declared schema: {e}")),
                ),
                None => problems.push(format!("{what}: declared JSON, got none")),
            }
        }
        None if declared.get("content").is_none() && !answer.text.is_empty() => {
            problems.push(format!("{what}: declared without a body, got one"));
        }
        None => {}
    }
    for header in declared["headers"].as_object().into_iter().flat_map(|h| h.keys()) {
        if !answer.headers.contains_key(header.as_str()) {
            problems.push(format!("{what}: declared header {header} missing"));
        }
    }
    problems
}

async fn send(client: &reqwest::Client, base: &str, caller: &Caller, call: &Call) -> Answer {
    let mut request = client.request(call.method.clone(), format!("{base}{}", call.path));
    for (name, value) in &caller.headers {
        request = request.header(*name, value);
    }
    for (name, value) in &call.headers {
        request = request.header(name.as_str(), value);
    }
    if let Some(body) = &call.body {
        request = request.header("content-type", "application/json").body(body.clone());
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("{} {}: {e}", call.method, call.path));
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    Answer { status, headers, text }
}

/// The requests of the walk for one operation.
fn calls_for(
    doc: &Value,
    op: &Operation,
    real_ids: &BTreeMap<&str, String>,
    real_params: &BTreeMap<&str, Vec<String>>,
    real_queries: &BTreeMap<&str, String>,
    extra_bodies: &[String],
) -> Vec<Call> {
    let path_params: Vec<&str> = op.spec["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["in"] == "path")
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    let query_params: Vec<&Value> = op.spec["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["in"] == "query")
        .collect();
    let fill = |id: &str| {
        path_params.iter().fold(op.template.clone(), |path, name| {
            path.replace(&format!("{{{name}}}"), id)
        })
    };
    let required_query: String = query_params
        .iter()
        .filter(|p| p["required"] == true)
        .map(|p| {
            // The parameter's example, else one from its schema; a string goes into a query as
            // itself, not as its JSON with quotes.
            let value = p
                .get("example")
                .cloned()
                .unwrap_or_else(|| synthesize(doc, &p["schema"]));
            let shown = value.as_str().map(str::to_string).unwrap_or_else(|| value.to_string());
            format!("{}={shown}", p["name"].as_str().unwrap())
        })
        .collect::<Vec<_>>()
        .join("&");
    // A query naming a real record (a cancel link's token) replaces the synthesized one.
    let required_query = real_queries
        .get(op.template.as_str())
        .cloned()
        .unwrap_or(required_query);
    let with_query = |path: String, query: &str| {
        if query.is_empty() {
            path
        } else {
            format!("{path}?{query}")
        }
    };
    let documented_path = with_query(
        match (
            real_params.get(op.template.as_str()),
            real_ids.get(op.template.as_str()),
        ) {
            // A record under another (a delivery of an endpoint): one real id per parameter.
            (Some(ids), _) => path_params
                .iter()
                .zip(ids)
                .fold(op.template.clone(), |path, (name, id)| {
                    path.replace(&format!("{{{name}}}"), id)
                }),
            (None, Some(id)) => fill(id),
            (None, None) => fill(UNKNOWN_ID),
        },
        &required_query,
    );
    let body = documented_body(doc, &op.spec);
    // A header parameter (a returning customer's visitor key) is sent as its example.
    let headers: Vec<(String, String)> = op.spec["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["in"] == "header")
        .filter_map(|p| Some((p["name"].as_str()?.to_string(), p["example"].as_str()?.to_string())))
        .collect();
    let call = |path: String, body: Option<String>| Call {
        method: op.method.clone(),
        path,
        body,
        headers: headers.clone(),
    };
    let mut calls = vec![];
    for extra in extra_bodies {
        calls.push(call(documented_path.clone(), Some(extra.clone())));
    }
    calls.push(call(documented_path.clone(), body.clone()));
    if !path_params.is_empty() {
        calls.push(call(with_query(fill(UNKNOWN_ID), &required_query), body.clone()));
    }
    if body.is_some() {
        calls.push(call(documented_path.clone(), Some("{\"unfinished\": ".into())));
    }
    for param in &query_params {
        let schema = resolve(doc, &param["schema"]);
        let numeric = ["integer", "number"]
            .iter()
            .any(|k| schema["type"] == *k || schema["type"].as_array().is_some_and(|t| t.contains(&json!(k))));
        if numeric {
            let bad = format!("{}=not-a-number", param["name"].as_str().unwrap());
            let query = [required_query.as_str(), bad.as_str()]
                .iter()
                .filter(|q| !q.is_empty())
                .cloned()
                .collect::<Vec<_>>()
                .join("&");
            calls.push(call(with_query(fill(UNKNOWN_ID), &query), None));
            calls.push(call(
                with_query(documented_path.split('?').next().unwrap().to_string(), &query),
                None,
            ));
        }
    }
    calls
}

#[tokio::test]
async fn every_operation_of_the_served_document_answers_only_what_it_declares() {
    let hub = TestHub::with(|s| {
        // The hub's own address is a trusted proxy, so a request can come "from outside" through it.
        s.access.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        // appointments: the walk's appointment, two days ahead, can be started.
        s.appointments.start_window = std::time::Duration::from_secs(3 * 86_400);
    })
    .await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let base = hub.url("");
    let doc = get_json(&hub, "/api/openapi.json").await;

    // The document declares how to sign in: a bearer token, or the session cookie.
    let mut problems = vec![];
    let schemes = &doc["components"]["securitySchemes"];
    let bearer = schemes
        .as_object()
        .into_iter()
        .flatten()
        .find(|(_, s)| s["type"] == "http" && s["scheme"] == "bearer");
    let cookie = schemes
        .as_object()
        .into_iter()
        .flatten()
        .find(|(_, s)| s["type"] == "apiKey" && s["in"] == "cookie" && s["name"] == "sb_session");
    if bearer.is_none() || cookie.is_none() {
        problems.push(format!(
            "security schemes: a bearer token and the sb_session cookie; declared: {schemes}"
        ));
    }

    // The checker bites: an error body of the wrong shape does not pass for an ErrorBody.
    let error_body = json!({"$ref": "#/components/schemas/ErrorBody"});
    assert!(schema_errors(&doc, &error_body, &json!({"error": {"code": "x", "message": "y"}})).is_empty());
    assert!(!schema_errors(&doc, &error_body, &json!({"error": {"code": 7}})).is_empty());

    // Something to read: an agent with a finished conversation.
    let agent_token = hub.agent_account("walker", &["general"], 1).await;
    let admin = hub.admin().await;
    let agent_id = admin.agent_id("walker").await;
    let walker_id = agent_id.clone();
    let rating_token;
    let chat_id = {
        let mut agent = Ws::agent(&hub, &agent_token).await;
        agent.send(json!({"type": "set_available", "available": true})).await;
        agent.next_of("profile").await;
        let mut customer = hub.customer("Carla", "general").await;
        let chat = customer.chat_started().await;
        customer.send(json!({"type": "message", "text": "hello"})).await;
        customer.next_of("ack").await;
        customer.send(json!({"type": "leave"})).await;
        let ended = customer.next_of("chat_ended").await;
        rating_token = ended["rating"]["token"].as_str().expect("a rating offer").to_string();
        chat
    };
    let mut archived = false;
    for _ in 0..100 {
        if admin.get(&format!("/api/conversations/{chat_id}")).await.0 == 200 {
            archived = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(archived, "the conversation reached the archive");
    // appointments: one booked with the walker, for its cancel link and id, on
    // days computed from today (the documented example names a fixed day, which passes).
    let day_after = |days: i64| {
        use jiff::ToSpan;
        jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC).date() + days.days()
    };
    // A booking in two days at `hour` (UTC): its id and cancel token.
    let book = |hour: &str, name: &str, email: &str| {
        let body = json!({"start": format!("{}T{hour}:00Z", day_after(2)), "name": name, "email": email});
        async {
            let booked = post(&hub, "/api/appointments", body).await.1;
            let token = booked["cancel_token"].as_str().expect("booked").to_string();
            (booked["id"].as_str().expect("booked").to_string(), token)
        }
    };
    let (appointment_id, cancel_token) = book("10:00", "Walker's customer", "w@example.com").await;
    // Another one, to be moved (the first is cancelled by the walk).
    let (_, move_token) = book("12:00", "Walker's third", "w3@example.com").await;
    let cookie_admin = hub.admin().await;
    // ---- rooms and 1-to-1 video ----
    // The agent's open room, with the phone and password of the documented join example.
    let room_id = {
        let walker = hub.login("walker", "agent-password").await;
        let room = walker
            .post_answering(
                201,
                "/api/rooms",
                json!({"title": "Walk", "audience": "customer", "phone": "+4915112345678", "password": "tulip-42"}),
            )
            .await;
        room["id"].as_str().unwrap().to_string()
    };
    // Another agent in a live chat, which the walk turns into a video call (the walker
    // cannot: their room is open).
    let (video_agent, video_token) = hub.agent_with_token("vidal", &["sales"], 1).await;
    let mut video_customer = hub.customer("Vic", "sales").await;
    let live_chat = video_customer.chat_started().await;
    // attachments: an image the agent in the live chat uploaded for it, and a link to it.
    let (attachment_id, attachment_query, thumbnail_query) = {
        let picture = image::RgbImage::from_pixel(40, 30, image::Rgb([1, 2, 3]));
        let mut png = std::io::Cursor::new(Vec::new());
        picture.write_to(&mut png, image::ImageFormat::Png).unwrap();
        let res = client
            .post(hub.url("/api/attachments"))
            .query(&[("conversation", live_chat.as_str()), ("name", "walk.png")])
            .bearer_auth(&video_token)
            .body(png.into_inner())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
        let id = res.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
        let link_of = format!("/api/attachments/{id}/link");
        let (_, links) = Api::bearer(&hub, &video_token).get(&link_of).await;
        let query = |url: &Value| url.as_str().unwrap().split_once('?').unwrap().1.to_string();
        (id, query(&links["url"]), query(&links["thumbnail_url"]))
    };
    // appointments: an appointment of an agent without an open room, started
    // already (starting again answers the same room), for the start and the customer's join.
    let (started_id, started_token) = {
        let starter = hub.agent_account("starter", &[], 1).await;
        let starter_id = admin.agent_id("starter").await;
        let booked = post(&hub, "/api/appointments", json!({"start": format!("{}T12:00:00Z", day_after(2)), "name": "Started", "email": "s@example.com", "representative": starter_id})).await.1;
        let id = booked["id"].as_str().expect("booked").to_string();
        let res = client
            .post(hub.url(&format!("/api/agent/appointments/{id}/start")))
            .bearer_auth(&starter)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
        (id, booked["cancel_token"].as_str().unwrap().to_string())
    };
    // Bots: a socket bot holding one conversation per bot operation (each may end its own).
    let bot_secret = admin
        .post_answering(
            201,
            "/api/admin/api-tokens",
            json!({"name": "walk bot", "scopes": ["bot"], "bot": "Walker"}),
        )
        .await["secret"]
        .as_str()
        .unwrap()
        .to_string();
    admin
        .post_answering(201, "/api/admin/categories", json!({"name": "Bot walk"}))
        .await;
    admin
        .put_answering(200, "/api/admin/category-bots/bot-walk", json!({"bot": "Walker"}))
        .await;
    let (walk_bot, _) = Ws::with_bearer(&hub, "/ws/bot", &bot_secret, "bot_welcome").await;
    let mut bot_customers = vec![];
    let mut bot_chats = vec![];
    for name in ["Ask", "Hand", "Say", "Done"] {
        let mut customer = hub.customer(name, "bot-walk").await;
        bot_chats.push(customer.chat_started().await);
        bot_customers.push(customer);
    }
    // Canned replies: one of the desk's, one of the walker's own.
    let walked_reply = json!({"shortcut": "walked", "title": "Walked", "text": "Walked."});
    let desk_reply = admin
        .created_id("/api/admin/canned-replies", walked_reply.clone())
        .await;
    let own_reply = {
        let walker = hub.login("walker", "agent-password").await;
        walker.created_id("/api/canned-replies", walked_reply).await
    };
    // Webhooks: the walk registers them on loopback (the documented example's host does not
    // resolve here), allowed by the admin signed in by cookie (as the walk's PUT does again).
    let (status, allowed) = admin
        .put("/api/admin/webhooks/private-addresses", json!({"allowed": true}))
        .await;
    assert_eq!(status, 200, "{allowed}");
    // Webhooks: one whose logged delivery (of an offline message below) is sent again.
    let resent_hook = admin
        .created_id(
            "/api/admin/webhooks",
            json!({"url": hub.url("/walked-resent-hook"), "events": ["offline_message.created"]}),
        )
        .await;
    // offline messages: one each to take, mark handled and answer (taking a handled one is refused).
    let mut offline_ids = vec![];
    for _ in 0..3 {
        let olga = json!({"category": "general", "name": "Olga", "email": "olga@example.com", "text": "Hello?"});
        let (_, left) = post(&hub, "/api/offline-messages", olga).await;
        offline_ids.push(left["id"].as_str().expect("left").to_string());
    }
    // Labels: one to edit and delete, and one whose id is the conversation's, as the walk
    // puts one id in every parameter of a path.
    for (id, name) in [
        ("walked-label", "Walked"),
        (chat_id.as_str(), "Walked on a conversation"),
    ] {
        admin
            .post_answering(
                201,
                "/api/admin/labels",
                json!({"id": id, "name": name, "colour": "#1f6feb"}),
            )
            .await;
    }
    // Webhooks: one to enable, read the log of and delete.
    let webhook_id = admin
        .created_id(
            "/api/admin/webhooks",
            json!({"url": hub.url("/walked-hook"), "events": ["message.created"]}),
        )
        .await;
    // API tokens: one to revoke.
    let api_token = admin
        .created_id("/api/admin/api-tokens", json!({"name": "walked", "scopes": ["read"]}))
        .await;
    // The offline messages' deliveries are written by a background task: waited for.
    let resent_delivery = {
        let mut waited = 0;
        loop {
            let (_, log) = admin
                .get(&format!("/api/admin/webhooks/{resent_hook}/deliveries"))
                .await;
            if let Some(id) = log[0]["id"].as_str() {
                break id.to_string();
            }
            waited += 1;
            assert!(waited < 200, "no delivery was logged: {log}");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    };
    let real_params = BTreeMap::from([(
        "/api/admin/webhooks/{id}/deliveries/{delivery}/redeliver",
        vec![resent_hook, resent_delivery],
    )]);
    let real_ids = BTreeMap::from([
        ("/api/admin/api-tokens/{id}", api_token),
        ("/api/admin/webhooks/{id}", webhook_id.clone()),
        ("/api/admin/webhooks/{id}/deliveries", webhook_id),
        ("/api/admin/labels/{id}", "walked-label".to_string()),
        ("/api/conversations/{id}/labels/{label}", chat_id.clone()),
        ("/api/admin/canned-replies/{id}", desk_reply),
        ("/api/canned-replies/{id}", own_reply),
        ("/api/offline-messages/{id}/take", offline_ids[0].clone()),
        ("/api/offline-messages/{id}/handled", offline_ids[1].clone()),
        ("/api/offline-messages/{id}/reply", offline_ids[2].clone()),
        ("/api/agent/appointments/{id}/start", started_id),
        ("/api/chats/{id}/video", live_chat.clone()),
        // attachments
        ("/api/attachments/{id}/link", attachment_id.clone()),
        ("/api/attachments/{id}/thumbnail", attachment_id.clone()),
        ("/api/attachments/{id}", attachment_id),
        ("/api/rooms/{id}", room_id.clone()),
        ("/api/rooms/{id}/invite", room_id.clone()),
        ("/api/rooms/{id}/token", room_id.clone()),
        ("/api/join/{id}", room_id),
        ("/api/admin/agents/{id}", agent_id),
        ("/api/admin/categories/{id}", "sales".to_string()),
        ("/api/admin/chat-hours/{category}", "sales".to_string()),
        ("/api/admin/routing/{category}", "sales".to_string()),
        ("/api/admin/category-bots/{category}", "sales".to_string()),
        // The walk's bot (a URL is given only to a bot a live token acts as).
        ("/api/admin/bot-hooks/{bot}", "Walker".to_string()),
        ("/api/bot/conversations/{id}/ask-email", bot_chats[0].clone()),
        ("/api/bot/conversations/{id}/handover", bot_chats[1].clone()),
        ("/api/bot/conversations/{id}/messages", bot_chats[2].clone()),
        ("/api/bot/conversations/{id}/resolve", bot_chats[3].clone()),
        ("/api/conversations/{id}/customer", chat_id.clone()),
        // The conversation is its own customer's (both ids the same).
        (
            "/api/conversations/{id}/customer/conversations/{other}",
            chat_id.clone(),
        ),
        ("/api/conversations/{id}/export", chat_id.clone()),
        ("/api/conversations/{id}/mails", chat_id.clone()),
        ("/api/conversations/{id}/notes", chat_id.clone()),
        ("/api/conversations/{id}/assignees", chat_id.clone()),
        ("/api/conversations/{id}/assign", chat_id.clone()),
        ("/api/conversations/{id}/opened", chat_id.clone()),
        ("/api/conversations/{id}/status", chat_id.clone()),
        ("/api/conversations/{id}", chat_id),
        // appointments
        ("/api/agent/appointments/{id}/cancel", appointment_id.clone()),
        ("/api/admin/appointments/{id}/cancel", appointment_id),
    ]);
    let real_queries = BTreeMap::from([
        // attachments: the live chat's, and links to the file and its thumbnail
        ("/api/attachments", format!("conversation={live_chat}&name=walk.txt")),
        ("/api/attachments/{id}", attachment_query),
        ("/api/attachments/{id}/thumbnail", thumbnail_query),
        ("/api/appointments/cancel", format!("token={cancel_token}")),
        ("/api/appointments/booking", format!("token={move_token}")),
        ("/api/appointments/ics", format!("token={move_token}")),
        ("/api/appointments/room", format!("token={started_token}")),
    ]);
    // Bodies the documented example cannot be (a real password), tried before it.
    let extra_bodies = BTreeMap::from([
        // a conversation's note, and its assignment to the walker, who holds it already
        (
            "POST /api/conversations/{id}/notes",
            vec![json!({"text": "walked note"}).to_string()],
        ),
        (
            "POST /api/conversations/{id}/assign",
            vec![json!({"agent_id": walker_id}).to_string()],
        ),
        (
            "POST /api/login",
            vec![json!({"username": "admin", "password": ADMIN_PASSWORD}).to_string()],
        ),
        // attachments: a text file (the documented body is bytes)
        ("POST /api/attachments", vec!["walked, a text file\n".to_string()]),
        (
            "POST /api/ratings",
            vec![json!({"token": rating_token, "score": 5}).to_string()],
        ),
        (
            "POST /api/admin/webhooks",
            vec![json!({"url": hub.url("/walked-hook-2"), "events": ["rating.given"]}).to_string()],
        ),
        (
            "PUT /api/admin/bot-hooks/{bot}",
            vec![json!({"url": hub.url("/walked-bot")}).to_string()],
        ),
        // transcripts by mail
        (
            "POST /api/transcripts",
            vec![json!({"token": rating_token, "email": "carla@example.com"}).to_string()],
        ),
        // appointments
        (
            "POST /api/appointments/cancel",
            vec![json!({"token": cancel_token}).to_string()],
        ),
        (
            "POST /api/appointments/join",
            vec![json!({"token": started_token}).to_string()],
        ),
        (
            "POST /api/appointments/reschedule",
            vec![json!({"token": move_token, "start": format!("{}T13:00:00Z", day_after(2))}).to_string()],
        ),
        (
            "POST /api/appointments",
            vec![
                json!({"start": format!("{}T11:00:00Z", day_after(2)), "name": "Walker's second",
                        "email": "w2@example.com"})
                .to_string(),
            ],
        ),
    ]);

    let callers = [
        Caller {
            name: "nobody",
            headers: vec![],
        },
        Caller {
            name: "a stale token",
            headers: vec![("authorization", "Bearer 0123456789abcdef".into())],
        },
        Caller {
            name: "an admin outside the whitelist",
            headers: vec![
                ("authorization", format!("Bearer {}", admin.token)),
                ("x-forwarded-for", OUTSIDE.into()),
            ],
        },
        Caller {
            name: "an agent",
            headers: vec![("authorization", format!("Bearer {agent_token}"))],
        },
        // ---- rooms and 1-to-1 video ----
        Caller {
            name: "an agent in a live chat",
            headers: vec![("authorization", format!("Bearer {video_token}"))],
        },
        Caller {
            name: "an admin by cookie",
            headers: vec![("cookie", format!("sb_session={}", cookie_admin.token))],
        },
        Caller {
            name: "an admin by bearer token",
            headers: vec![("authorization", format!("Bearer {}", admin.token))],
        },
    ];

    // Only bot operations are walked by a bot as well.
    let bot_caller = Caller {
        name: "a bot",
        headers: vec![("authorization", format!("Bearer {bot_secret}"))],
    };

    let mut operations = vec![];
    for (template, item) in doc["paths"].as_object().expect("paths") {
        for (method, spec) in item.as_object().unwrap() {
            let Ok(method) = Method::from_bytes(method.to_uppercase().as_bytes()) else {
                continue;
            };
            if !matches!(
                method,
                Method::GET | Method::POST | Method::PUT | Method::PATCH | Method::DELETE
            ) {
                continue;
            }
            operations.push(Operation {
                method,
                template: template.clone(),
                spec: spec.clone(),
            });
        }
    }
    operations.sort_by_key(Operation::order);
    assert!(
        operations.len() >= 15,
        "the document lists the API: {}",
        operations.len()
    );

    let mut seen: BTreeMap<String, BTreeSet<(String, u16)>> = BTreeMap::new();
    for op in &operations {
        let extra = extra_bodies.get(op.name().as_str()).cloned().unwrap_or_default();
        let calls = calls_for(&doc, op, &real_ids, &real_params, &real_queries, &extra);
        // The sign-out ends the session it is called with: each caller signs out last.
        let bot = op.template.starts_with("/api/bot/").then_some(&bot_caller);
        for caller in callers.iter().chain(bot) {
            for call in &calls {
                let answer = send(&client, &base, caller, call).await;
                problems.extend(check_answer(&doc, op, caller, call, &answer));
                seen.entry(op.name())
                    .or_default()
                    .insert((caller.name.to_string(), answer.status));
            }
        }
        let statuses = &seen[&op.name()];
        if !statuses.iter().any(|(_, s)| (200..300).contains(s)) {
            problems.push(format!("{}: no call succeeded: {statuses:?}", op.name()));
        }
        // What answers 401 without a session says in its `security` that it needs one, and the other way round.
        let requirements = op.spec["security"].as_array().cloned().unwrap_or_default();
        let optional = requirements.iter().any(|r| r.as_object().is_some_and(|o| o.is_empty()));
        let needs_session = !requirements.is_empty() && !optional;
        let anonymous_refused = statuses.iter().any(|(c, s)| c == "nobody" && *s == 401);
        if anonymous_refused != needs_session {
            problems.push(format!(
                "{}: declares security {requirements:?} but answered nobody with {statuses:?}",
                op.name()
            ));
        }
        for requirement in &requirements {
            for scheme in requirement.as_object().unwrap().keys() {
                if schemes.get(scheme).is_none() {
                    problems.push(format!("{}: unknown security scheme {scheme}", op.name()));
                }
            }
        }
    }
    drop((video_agent, video_customer, walk_bot, bot_customers));
    for (operation, statuses) in &seen {
        eprintln!("{operation}: {statuses:?}");
    }
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
    hub.stop().await;
}

/// The appointment answers name the appointment's own schema (a start, an end, links), not
/// the chat panel's customer, which once shared its name and took its place in the document.
#[tokio::test]
async fn appointment_answers_point_at_the_appointments_schema() {
    let hub = TestHub::start().await;
    let doc: Value = get_json(&hub, "/api/openapi.json").await;
    let schemas = &doc["components"]["schemas"];
    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.push(r.rsplit('/').next().unwrap().to_string());
                }
                m.values().for_each(|x| refs(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
            _ => {}
        }
    }
    for answer in ["Booked", "Rescheduled", "CancelOutcome"] {
        let mut named = Vec::new();
        refs(&schemas[answer], &mut named);
        let appointment = named
            .iter()
            .find(|n| schemas[n.as_str()]["properties"].get("start").is_some())
            .unwrap_or_else(|| panic!("{answer} names no appointment schema: {named:?}"));
        let properties = &schemas[appointment.as_str()]["properties"];
        let context = format!("{answer} → {appointment}");
        assert_properties_name(properties, ["start", "end", "status", "links"], &context);
    }
    hub.stop().await;
}

/// Asserts that a schema's `properties` name each of `fields` (`context` says whose).
fn assert_properties_name<'a>(properties: &Value, fields: impl IntoIterator<Item = &'a str>, context: &str) {
    for field in fields {
        assert!(
            properties.get(field).is_some(),
            "{context}: `{field}` is not in its schema's properties {properties}"
        );
    }
}

/// The webhook payloads are in the document (OpenAPI 3.1 `webhooks`: per event type the
/// envelope with its `version`, the type's `data` schema and the signature headers), and
/// what a receiver really gets matches them, with no field the schema does not name.
#[tokio::test]
async fn the_webhook_payloads_are_documented_and_real_deliveries_match_them() {
    let (hub, admin) = crate::webhooks::hub_delivering_to_loopback().await;
    let doc: Value = get_json(&hub, "/api/openapi.json").await;
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let types = switchboard::core::webhooks::EVENT_TYPES;
    let documented: BTreeSet<&str> = doc["webhooks"]
        .as_object()
        .expect("a webhooks section")
        .keys()
        .map(String::as_str)
        .filter(|name| !name.starts_with("bot."))
        .collect();
    assert_eq!(documented, types.into_iter().collect(), "{}", doc["webhooks"]);
    let envelope = &doc["components"]["schemas"]["WebhookEnvelope"];
    let required: BTreeSet<&str> = strs(&envelope["required"]).into_iter().collect();
    assert_eq!(
        required,
        ["version", "id", "type", "created_at", "data"].into_iter().collect(),
        "{envelope}"
    );
    let body_schema =
        |t: &str| doc["webhooks"][t]["post"]["requestBody"]["content"]["application/json"]["schema"].clone();
    let data_schema = |t: &str| resolve(&doc, &body_schema(t)["allOf"][1]["properties"]["data"]).clone();
    for t in types {
        let post = &doc["webhooks"][t]["post"];
        let headers: Vec<&str> = strs_in(&post["parameters"], "name");
        assert!(headers.contains(&"Switchboard-Signature"), "{t}: {post}");
        assert!(
            data_schema(t)["properties"].as_object().is_some_and(|p| !p.is_empty()),
            "{t}"
        );
    }

    // A conversation's life and an offline message, as a receiver gets them.
    let (url, got) = crate::webhooks::receiver(0).await;
    crate::webhooks::register(&admin, &url, &types).await;
    let (mut ann, mut carla, chat) = hub.agent_and_customer_in_a_chat().await;
    carla.say("Hello", "c1").await;
    ann.next_of("message").await;
    ann.say_in(&chat, "Hi Carla", "a1").await;
    ann.note_in(&chat, "VIP", "n1").await;
    resolved(&mut ann, &mut carla, &chat).await;
    let (status, _) = post(
        &hub,
        "/api/offline-messages",
        json!({"category": "general", "name": "Olga", "email": "olga@example.com", "text": "Call me back"}),
    )
    .await;
    assert_eq!(status, 201);
    // Dora's chat, handed to billing's line, where Bill takes it.
    let mut dora = hub.customer("Dora", "general").await;
    let dora_chat = ann.next_of("chat_started").await["chat_id"].clone();
    dora.next_of("chat_started").await;
    ann.send(json!({"type": "transfer", "chat_id": dora_chat, "to_category": "billing"}))
        .await;
    dora.next_of("queued").await;
    let mut bill = hub.agent("bill", &["billing"], 1).await;
    bill.next_of("chat_started").await;
    // An appointment booked, moved and cancelled.
    let (status, booked) = post(
        &hub,
        "/api/appointments",
        json!({"start": at(2, 10), "name": "Eve", "email": "eve@example.com"}),
    )
    .await;
    assert_eq!(status, 201, "{booked}");
    let token = booked["cancel_token"].clone();
    let (status, _) = post(
        &hub,
        "/api/appointments/reschedule",
        json!({"token": token, "start": at(2, 12)}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = post(&hub, "/api/appointments/cancel", json!({"token": token})).await;
    assert_eq!(status, 200);

    let deliveries = crate::webhooks::delivered(&got, 12).await;
    let seen: BTreeSet<&str> = deliveries.iter().map(|(_, b)| b["type"].as_str().unwrap()).collect();
    assert_eq!(seen.len(), types.len() - 1, "every type but a rating: {seen:?}");
    for (_, body) in &deliveries {
        let t = body["type"].as_str().unwrap();
        assert_eq!(body["version"], "1", "{body}");
        let errors = schema_errors(&doc, &body_schema(t), body);
        assert!(errors.is_empty(), "{t}: {errors:?} in {body}");
        let named = data_schema(t);
        let fields = body["data"].as_object().unwrap().keys().map(String::as_str);
        assert_properties_name(&named["properties"], fields, &format!("{t}: {body}"));
    }
    hub.stop().await;
}

/// The calls a webhook bot gets are in the document's `webhooks` section too (under
/// `bot.<frame type>`, signed as webhooks are), and what a real bot is POSTed matches them,
/// with no field the schema does not name.
#[tokio::test]
async fn a_webhook_bots_calls_are_documented_and_real_calls_match_them() {
    let (hub, admin) = crate::webhooks::hub_delivering_to_loopback().await;
    let doc: Value = get_json(&hub, "/api/openapi.json").await;
    let frame_types = ["conversation", "message", "customer_email", "conversation_ended"];
    let body_schema = |t: &str| {
        doc["webhooks"][format!("bot.{t}")]["post"]["requestBody"]["content"]["application/json"]["schema"].clone()
    };
    for t in frame_types {
        let post = &doc["webhooks"][format!("bot.{t}")]["post"];
        let headers: Vec<&str> = strs_in(&post["parameters"], "name");
        assert!(headers.contains(&"Switchboard-Signature"), "bot.{t}: {post}");
        assert!(body_schema(t)["allOf"].is_array(), "bot.{t}: {post}");
    }

    // A customer talks to the bot, gives her address, is answered, and asks for a person.
    let (calls, secret) =
        crate::bot_webhooks::webhook_bot(&admin, hub.url(""), crate::bot_webhooks::Behaviour::Answers).await;
    let _ann = hub.agent("ann", &["general"], 1).await;
    let mut carla = hub.customer("Carla", "general").await;
    carla.chat_started().await;
    carla.send(json!({"type": "email", "email": "carla@example.com"})).await;
    carla.say("what are your opening hours?", "c1").await;
    carla
        .seen_or_next_matching(|f| f["type"] == "message" && f["via"] == "bot")
        .await;
    carla.say("I need a person", "c2").await;
    carla.next_of("transferred").await;

    let frames = crate::bot_webhooks::calls_signed(&calls, 5, &secret).await;
    let seen: BTreeSet<&str> = frames.iter().map(|f| f["type"].as_str().unwrap()).collect();
    assert_eq!(seen, frame_types.into_iter().collect(), "{frames:?}");
    for frame in &frames {
        let t = frame["type"].as_str().unwrap();
        let errors = schema_errors(&doc, &body_schema(t), frame);
        assert!(errors.is_empty(), "bot.{t}: {errors:?} in {frame}");
        let body = body_schema(t);
        let named = resolve(&doc, &body["allOf"][0]);
        let fields = frame
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .filter(|f| *f != "type");
        assert_properties_name(&named["properties"], fields, &format!("bot.{t}: {frame}"));
    }
    hub.stop().await;
}
