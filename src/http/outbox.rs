//! The appointment mail outbox for admins: what was sent, what waits for a
//! retry and what was given up (dead), with the last error, so a broken relay or a
//! refused address is seen, not lost.

use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::AppState;
use super::error::{ApiQuery, JsonResult};
use super::paging::PageQuery;
use super::responses::{AdminsOnly, BadQuery, Unavailable};
use super::session::Admin;
use crate::store::{MailPurpose, MailStatus, OutboxMail};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MailQuery {
    /// Only mails in this state (`pending`, `sent`, `dead`).
    pub status: Option<MailStatus>,
}

/// One mail of the outbox (its text and attachment are not shown: they hold the cancel link).
#[derive(Debug, Serialize, ToSchema)]
pub struct MailView {
    pub id: String,
    pub appointment_id: String,
    pub purpose: MailPurpose,
    pub to: String,
    pub subject: String,
    pub status: MailStatus,
    /// Failed attempts so far.
    pub attempts: u32,
    /// When it is (next) tried, ms since the Unix epoch.
    pub due_at: i64,
    /// The node that last claimed it.
    pub claimed_by: Option<String>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub sent_at: Option<i64>,
}

impl From<OutboxMail> for MailView {
    fn from(m: OutboxMail) -> Self {
        MailView {
            id: m.id,
            appointment_id: m.appointment_id,
            purpose: m.purpose,
            to: m.to,
            subject: m.subject,
            status: m.status,
            attempts: m.attempts,
            due_at: m.due_at,
            claimed_by: m.claimed_by,
            last_error: m.last_error,
            created_at: m.created_at,
            sent_at: m.sent_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MailPage {
    /// Mails matching the filter, before paging.
    pub total: u64,
    /// Newest first.
    pub items: Vec<MailView>,
}

/// The appointment mail outbox, newest first; `status=dead` lists the mails given up.
#[utoipa::path(get, path = "/api/admin/mails", tag = "admin", params(MailQuery, PageQuery),
    responses((status = 200, body = MailPage), BadQuery, AdminsOnly, Unavailable))]
async fn list(
    Admin(state): Admin,
    ApiQuery(q): ApiQuery<MailQuery>,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> JsonResult<MailPage> {
    let (items, total) = state.store.mails(q.status, page.page()?).await?;
    Ok(Json(MailPage {
        total,
        items: items.into_iter().map(MailView::from).collect(),
    }))
}
