//! One buddy chat message as stamped, the one shape of it everywhere: what its chat's log
//! holds (`buddy_chat_log`) and what a node's channel carries to the others (`chat_log`).

/// One buddy chat message as stamped: what its log holds and what nodes publish.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BuddyLine {
    /// The chat's wire id.
    pub chat: String,
    pub seq: u64,
    /// The routing events stream's newest entry id when it was stamped.
    pub p: String,
    /// The sender's buddy id.
    pub sender: u64,
    pub id: String,
    pub at: i64,
    pub text: String,
    pub client_id: Option<String>,
    /// The files it carries (`attachments::files_json`); empty for none, and absent from
    /// what a node of an earlier version published.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub files: String,
}

impl BuddyLine {
    /// The files it carries.
    pub fn attachments(&self) -> Vec<crate::attachments::AttachmentMeta> {
        crate::attachments::files_from_json(&self.files, format_args!("buddy chat {} seq {}", self.chat, self.seq))
    }
}
