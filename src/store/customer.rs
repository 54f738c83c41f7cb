//! What a customer told the hub about themselves, kept with each of their conversations:
//! the agent's customer panel shows it, their earlier conversations are found by it, and
//! an erasure on request finds everything of theirs by it.

use super::{Conversation, CustomerTranscript, StoreResult};
use async_trait::async_trait;

use serde::{Deserialize, Serialize};

/// A customer's details as given (each optional, each validated at the edge before it is
/// kept). Stored with the conversation's opening; absent in records written before it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerProfile {
    /// Their email address, trimmed, as given (matched without regard to case).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// The browser's returning-visitor key: an opaque id the customer page and the widget
    /// keep in the browser, the same on every visit from it. Never shown to agents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visitor: Option<String>,
    /// The page they came from (the widget's host page, or the page that linked to the
    /// customer page): an http(s) URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<String>,
    /// Their IANA time zone, as their browser gave it: what mails to them show times in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// Their identity on the embedding site (`core::identity`), kept only when its hash
    /// verified: it finds their conversations on any browser. Never shown to agents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
}

impl CustomerProfile {
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }

    /// Every key this conversation is found by ([`CustomerKey::indexed`]): its email's, its
    /// visitor key's and its verified identity's, where given.
    pub fn indexed_keys(&self) -> Vec<String> {
        let email = self.email.as_ref().map(|e| CustomerKey::Email(e.to_lowercase()));
        email
            .into_iter()
            .chain(self.owner_keys())
            .map(|k| k.indexed())
            .collect()
    }

    /// The keys that own this conversation (may list and continue it): its visitor key's
    /// and its verified identity's, where given. Never its email: anyone can type one.
    pub fn owner_keys(&self) -> Vec<CustomerKey> {
        let visitor = self.visitor.as_ref().map(|v| CustomerKey::Visitor(v.clone()));
        let identity = self.identity.as_ref().map(|i| CustomerKey::Identity(i.clone()));
        visitor.into_iter().chain(identity).collect()
    }

    /// The owner keys as a conversation's record keeps them (`customer_keys`): what the
    /// customer's own list and a continue are checked against.
    pub fn record_keys(&self) -> Vec<String> {
        self.owner_keys().iter().map(CustomerKey::indexed).collect()
    }

    /// The key their conversations are matched by: their verified identity where the site
    /// gave one (it follows them across browsers and is never merely typed), else the email
    /// (lower-cased), else the returning-visitor key. `None`: nothing to match by.
    pub fn match_key(&self) -> Option<CustomerKey> {
        if let Some(identity) = &self.identity {
            return Some(CustomerKey::Identity(identity.clone()));
        }
        match (&self.email, &self.visitor) {
            (Some(email), _) => Some(CustomerKey::Email(email.to_lowercase())),
            (None, Some(visitor)) => Some(CustomerKey::Visitor(visitor.clone())),
            (None, None) => None,
        }
    }
}

/// How a customer is recognised across conversations.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CustomerKey {
    /// An email address, lower-cased.
    Email(String),
    /// A browser's returning-visitor key.
    Visitor(String),
    /// An identity the embedding site vouched for (`core::identity`).
    Identity(String),
}

impl CustomerKey {
    /// The key as the stores index it: `e:` and the lower-cased email, `v:` and the
    /// visitor key, or `i:` and the identity (they never collide).
    pub fn indexed(&self) -> String {
        match self {
            Self::Email(email) => format!("e:{email}"),
            Self::Visitor(visitor) => format!("v:{visitor}"),
            Self::Identity(identity) => format!("i:{identity}"),
        }
    }

    /// Does a conversation with `profile` belong to this customer?
    pub fn matches(&self, profile: &CustomerProfile) -> bool {
        match self {
            Self::Email(email) => profile.email.as_ref().is_some_and(|e| e.to_lowercase() == *email),
            Self::Visitor(visitor) => profile.visitor.as_deref() == Some(visitor.as_str()),
            Self::Identity(identity) => profile.identity.as_deref() == Some(identity.as_str()),
        }
    }
}

/// What is kept of one customer: their earlier conversations, their email, and the
/// transcript they may be mailed (never the notes).
#[async_trait]
pub trait CustomerStore: Send + Sync {
    /// The conversations of the customer `key` names ([`CustomerKey::matches`]), newest
    /// paired first, at most `limit`, as [`super::ArchiveStore::conversations`] lists them. Indexed.
    async fn customer_conversations(&self, key: &CustomerKey, limit: u64) -> StoreResult<Vec<Conversation>>;
    /// Sets the email of conversation `id`'s customer (given during or after their chat),
    /// so it is found by it from now on. `NotFound` when the conversation is not stored.
    async fn set_customer_email(&self, id: &str, email: &str) -> StoreResult<()>;
    /// Conversation `id` as its customer may be mailed it: its opening, closing, messages
    /// and rating, never its notes ([`CustomerTranscript`]: the notes' table is not read).
    /// `NotFound` when its opening is not stored (yet), or it was erased.
    async fn customer_transcript(&self, id: &str) -> StoreResult<CustomerTranscript>;
}
