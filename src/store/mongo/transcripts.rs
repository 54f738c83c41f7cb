//! Transcripts by mail in MongoDB: a conversation read without its notes (the `notes`
//! collection is not queried), and an outbox mail inserted only when its `_id` is new (the
//! server's unique `_id` decides, between nodes too).

use bson::doc;
use futures_util::TryStreamExt;
use mongodb::options::FindOptions;

use super::{MongoStore, conflict_or_unavailable, unavailable};
use crate::store::{CustomerTranscript, OutboxMail, StoreError, StoreResult};

impl MongoStore {
    pub(super) async fn read_transcript(&self, id: &str) -> StoreResult<CustomerTranscript> {
        let found = self
            .conversations
            .find_one(doc! {"_id": id})
            .await
            .map_err(unavailable)?
            .ok_or(StoreError::NotFound)?;
        // `whole` joins the messages and the rating; the notes are only ever read by
        // `notes_of`, which this does not call.
        let c = self.whole(vec![found]).await?.remove(0);
        Ok(CustomerTranscript {
            opened: c.opened,
            closed: c.closed,
            messages: c.messages,
            rating: c.rating,
        })
    }

    pub(super) async fn add_new_mail(&self, mail: OutboxMail) -> StoreResult<()> {
        self.outbox()
            .insert_one(super::outbox::MailDoc::from(mail))
            .await
            .map(|_| ())
            .map_err(conflict_or_unavailable)
    }

    pub(super) async fn mails_with_prefix(&self, prefix: &str) -> StoreResult<Vec<OutboxMail>> {
        // An anchored regex of a literal: the server walks the `_id` index's range.
        let pattern = format!("^{}", escape_regex(prefix));
        let docs: Vec<_> = self
            .outbox()
            .find(doc! {"_id": {"$regex": pattern}})
            .with_options(FindOptions::builder().sort(doc! {"_id": 1}).build())
            .await
            .map_err(unavailable)?
            .try_collect()
            .await
            .map_err(unavailable)?;
        Ok(docs.into_iter().map(OutboxMail::from).collect())
    }
}

/// `text` as a regular expression matching itself: every character but letters and digits
/// escaped (PCRE takes an escaped punctuation character literally).
fn escape_regex(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 2);
    for c in text.chars() {
        if !c.is_ascii_alphanumeric() {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
