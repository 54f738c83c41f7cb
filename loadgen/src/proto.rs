//! The few fields of the hub's frames the loadgen looks at, parsed without
//! copying, and the frames it sends.

use std::borrow::Cow;

use serde::Deserialize;

/// A hub → client frame; fields a frame lacks are None.
#[derive(Debug, Deserialize)]
pub struct In<'a> {
    #[serde(rename = "type", borrow)]
    pub kind: Cow<'a, str>,
    #[serde(default, borrow)]
    pub chat_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub client_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub code: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub peer_name: Option<Cow<'a, str>>,
    #[serde(default)]
    pub place: Option<u64>,
}

pub fn parse(text: &str) -> Option<In<'_>> {
    serde_json::from_str(text).ok()
}

pub fn join(name: &str, category: &str) -> String {
    serde_json::json!({"type": "join", "name": name, "category": category}).to_string()
}

/// A chat message; `chat_id` only for agents. `text` must need no JSON escaping.
pub fn message(chat_id: Option<&str>, text: &str, client_id: &str) -> String {
    match chat_id {
        Some(c) => format!(r#"{{"type":"message","chat_id":"{c}","text":"{text}","client_id":"{client_id}"}}"#),
        None => format!(r#"{{"type":"message","text":"{text}","client_id":"{client_id}"}}"#),
    }
}
