//! Which of an agent's lines went out by mail, for the console: the follow-up mails of a
//! conversation whose customer left (`conversations::follow_up_mail`), each with the lines
//! it carries and how its delivery stands. Readable by whoever may read the conversation.

use axum::Json;
use axum::extract::Path;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::AppState;
use super::error::JsonResult;
use super::history::readable;
use super::responses::{NotServed, SignedIn, Unavailable};
use super::session::Staff;
use crate::conversations::follow_up_mail::{self, Delivery};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(mails))
}

/// One follow-up mail.
#[derive(Debug, Serialize, ToSchema)]
pub struct FollowUpMailView {
    /// The outbox id (admins find it in `/api/admin/mails`).
    pub id: String,
    /// The customer's address it goes to.
    pub to: String,
    pub status: Delivery,
    /// The seqs of the agent's lines it carries (those archived so far), in order.
    pub seqs: Vec<u64>,
    /// When it is (next) tried while queued (ms since the Unix epoch).
    pub due_at: i64,
    pub sent_at: Option<i64>,
    /// Failed attempts so far.
    pub attempts: u32,
    /// Why its last attempt failed, if it did.
    pub error: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FollowUpMails {
    /// Oldest first; empty when nothing went out by mail.
    pub mails: Vec<FollowUpMailView>,
}

/// The mails conversation `id`'s follow-up lines went out in, and their delivery state.
#[utoipa::path(get, path = "/api/conversations/{id}/mails", tag = "history",
    params(("id" = String, Path, description = "the conversation id")),
    responses((status = 200, body = FollowUpMails), NotServed, SignedIn, Unavailable))]
async fn mails(Staff(me, state): Staff, Path(id): Path<String>) -> JsonResult<FollowUpMails> {
    let c = readable(&state, &me, &id).await?;
    let batches = follow_up_mail::batches(state.store.as_ref(), &c, state.settings.follow_up_mail_delay).await?;
    let mails = batches
        .into_iter()
        .map(|(m, seqs)| FollowUpMailView {
            id: m.id,
            to: m.to,
            status: m.status.into(),
            seqs,
            due_at: m.due_at,
            sent_at: m.sent_at,
            attempts: m.attempts,
            error: m.last_error,
        })
        .collect();
    Ok(Json(FollowUpMails { mails }))
}
