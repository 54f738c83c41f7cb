//! Transcripts by mail in the embedded store: a conversation read without its notes (the
//! `notes` table is not opened), and an outbox mail added only when its id is new, in one
//! write transaction (redb runs one at a time, so of two adders of one id one wins).

use super::outbox::{MAILS, load, put_in};
use super::{CONVERSATIONS, EmbeddedStore, ReadableTable, load_record, unavailable};
use crate::store::{CustomerTranscript, OutboxMail, StoreError, StoreResult};

impl EmbeddedStore {
    pub(super) async fn read_transcript(&self, id: &str) -> StoreResult<CustomerTranscript> {
        let id = id.to_string();
        self.read(move |tx| {
            let conversations = tx.open_table(CONVERSATIONS).map_err(unavailable)?;
            let rec = load_record(&conversations, &id)?.ok_or(StoreError::NotFound)?;
            let messages = super::message_log::load(tx, &id)?;
            let rating = super::ratings::load(tx, &id)?;
            Ok(CustomerTranscript {
                opened: rec.opened(),
                closed: rec.closed(),
                messages,
                rating,
            })
        })
        .await
    }

    pub(super) async fn add_new_mail(&self, mail: OutboxMail) -> StoreResult<()> {
        self.write(move |tx| {
            let taken = tx
                .open_table(MAILS)
                .map_err(unavailable)?
                .get(mail.id.as_str())
                .map_err(unavailable)?
                .is_some();
            if taken {
                return Err(StoreError::Conflict);
            }
            put_in(tx, &mail)
        })
        .await
    }

    pub(super) async fn mails_with_prefix(&self, prefix: &str) -> StoreResult<Vec<OutboxMail>> {
        let prefix = prefix.to_string();
        self.read(move |tx| {
            let mails = tx.open_table(MAILS).map_err(unavailable)?;
            let mut out = Vec::new();
            for row in mails.range(prefix.as_str()..).map_err(unavailable)? {
                let (key, _) = row.map_err(unavailable)?;
                let id = key.value();
                if !id.starts_with(prefix.as_str()) {
                    break;
                }
                out.push(load(&mails, id)?);
            }
            Ok(out)
        })
        .await
    }
}
