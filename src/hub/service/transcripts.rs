//! A customer's `transcript` frame in their chat: "email me this transcript". The address
//! is checked here (`invalid_email`, the connection lives on); the ask is stored by
//! `transcripts::request` on a task of its own (the hub never waits on the store), which
//! answers the asking connection with `transcript_requested` or an `error`. The chat is
//! always the asker's own (the frame names none), so nobody can ask for another's.

use super::HubState;
use crate::clock::now_ms;
use crate::core::routing::{ChatId, CustomerId};
use crate::hub::delivery::{ConnId, Outbound};
use crate::protocol::ServerFrame;
use crate::transcripts::{self, Refused, Requested};

impl HubState {
    pub(super) fn transcript_frame(
        &mut self,
        conn: ConnId,
        customer: CustomerId,
        chat: ChatId,
        email: Option<String>,
    ) -> Result<(), (&'static str, String)> {
        let email = crate::core::customer_details::optional_email(email.as_deref()).map_err(|e| (e.code, e.message))?;
        let email = email.or_else(|| self.customers.get(&customer)?.profile.email.clone());
        let chat_id = self.wire(chat);
        let Some(handle) = self.conns.get(&conn).map(|entry| entry.handle.clone()) else {
            return Ok(());
        };
        if chat_id.is_empty() {
            return Err(("not_in_chat", "this chat is not held here; try again".into()));
        }
        let store = self.archive.store();
        tokio::spawn(async move {
            let answer = match transcripts::request(store.as_ref(), &chat_id, email, false, now_ms()).await {
                Ok((done, email)) => ServerFrame::TranscriptRequested {
                    chat_id,
                    email,
                    already: done == Requested::AlreadyAsked,
                },
                Err(refused) => {
                    let code = match &refused {
                        Refused::EmailRequired => "email_required",
                        Refused::TooMany => "too_many_transcripts",
                        Refused::NotFound => "unknown_chat",
                        Refused::Store(e) => {
                            tracing::warn!(chat = %chat_id, error = %e, "a transcript ask was not stored");
                            "archive_unavailable"
                        }
                    };
                    let message = match refused {
                        Refused::Store(_) => "the transcript could not be asked for now: try again shortly".into(),
                        other => other.to_string(),
                    };
                    ServerFrame::Error {
                        code,
                        message,
                        client_id: None,
                    }
                }
            };
            handle.send(Outbound::Frame(answer.encode()));
        });
        Ok(())
    }
}
