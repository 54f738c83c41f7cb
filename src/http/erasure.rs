//! A customer's data erased on request (a GDPR erasure), by admins: found by their email
//! (any case), their returning-visitor key, their identity on the embedding site (as a
//! verified `join.identifier` kept it), or one conversation of theirs (then, when that
//! conversation names an email or a visitor key, every conversation found by it), every
//! conversation of theirs is erased whole (messages, notes, rating, transfers, details)
//! with their offline messages, in every store and against late writes (tombstones, see
//! `store::Erased`), and the erasure is logged (who, when, counts, a hash of the key).

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::error::{ApiJson, ApiQuery, JsonResult, StoreAnswer};
use super::paging::PageQuery;
use super::responses::{AdminsOnly, Unavailable};
use super::session::{Admin, AdminOnly};
use super::{ApiError, AppState, ErrorBody};
use crate::core::customer_details;
use crate::store::{CustomerKey, Erased, ErasureRecord};

/// The most conversations one erasure request takes; a customer with more is erased by
/// repeating the request (each answers how many it erased; 0 when none are left).
const MAX_CONVERSATIONS: u64 = 10_000;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(erase, log))
}

/// Whose data to erase: exactly one of the four.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "carla@example.com"}))]
pub struct ErasureRequest {
    /// Their email address (matched in any case).
    pub email: Option<String>,
    /// Their browser's returning-visitor key.
    pub visitor: Option<String>,
    /// Their identity on the embedding site (`join.identifier`, exactly as the site sends it):
    /// every conversation it was verified in.
    pub identifier: Option<String>,
    /// One conversation of theirs (the customer is then found by its email, else its
    /// visitor key; with neither, that conversation alone).
    pub conversation_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErasedView {
    pub conversations: u64,
    pub messages: u64,
    pub notes: u64,
    pub ratings: u64,
    pub offline_messages: u64,
}

impl From<Erased> for ErasedView {
    fn from(e: Erased) -> Self {
        Self {
            conversations: e.conversations,
            messages: e.messages,
            notes: e.notes,
            ratings: e.ratings,
            offline_messages: e.offline_messages,
        }
    }
}

/// One erasure, as logged.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErasureView {
    pub id: String,
    /// When (ms since the Unix epoch).
    pub at: i64,
    /// The username of the admin who asked.
    pub by: String,
    /// `email`, `visitor`, `identity` or `conversation`.
    pub found_by: String,
    /// Hex SHA-256 of what the customer was found by (the lower-cased email, the visitor
    /// key, the identifier, or the conversation id): the log keeps nothing of theirs.
    pub key_sha256: String,
    pub erased: ErasedView,
}

impl From<ErasureRecord> for ErasureView {
    fn from(r: ErasureRecord) -> Self {
        Self {
            id: r.id,
            at: r.at,
            by: r.by,
            found_by: r.found_by,
            key_sha256: r.key_sha256,
            erased: r.erased.into(),
        }
    }
}

fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Erases everything of one customer.
#[utoipa::path(post, path = "/api/admin/erasures", tag = "admin", request_body = ErasureRequest,
    responses((status = 200, description = "erased (counts may be 0: nothing of theirs was kept)", body = ErasureView),
        (status = 400, description = "`bad_request`: not exactly one of `email`, `visitor`, `identifier`, `conversation_id`; `invalid_email`, `invalid_visitor`, `invalid_identifier`", body = ErrorBody),
        (status = 404, description = "`not_found`: no such conversation", body = ErrorBody),
        AdminsOnly, Unavailable))]
async fn erase(
    AdminOnly(me): AdminOnly,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<ErasureRequest>,
) -> JsonResult<ErasureView> {
    let given = [&body.email, &body.visitor, &body.identifier, &body.conversation_id];
    if given
        .iter()
        .filter(|g| g.as_deref().is_some_and(|v| !v.trim().is_empty()))
        .count()
        != 1
    {
        return Err(ApiError::invalid(
            "bad_request",
            "give exactly one of email, visitor, identifier, conversation_id",
        ));
    }
    let (key, lone) = if let Some(email) = body.email.as_deref().filter(|e| !e.trim().is_empty()) {
        (
            Some(CustomerKey::Email(customer_details::email(email)?.to_lowercase())),
            None,
        )
    } else if let Some(visitor) = customer_details::visitor(body.visitor.as_deref())? {
        (Some(CustomerKey::Visitor(visitor)), None)
    } else if let Some(identifier) = body.identifier.as_deref().filter(|i| !i.trim().is_empty()) {
        if !crate::core::identity::valid_identifier(identifier) {
            return Err(ApiError::invalid(
                "invalid_identifier",
                "an identifier is 1 to 200 characters, none of them a control character",
            ));
        }
        (Some(CustomerKey::Identity(identifier.to_string())), None)
    } else {
        let id = body.conversation_id.unwrap_or_default().trim().to_string();
        let found = super::fresh::until_found(&state, super::fresh::not_found, || state.store.conversation(&id)).await;
        let c = found.missing_as(ApiError::NotFound("conversation"))?;
        match c.opened.customer.match_key() {
            Some(key) => (Some(key), None),
            None => (None, Some(id)),
        }
    };
    let mut ids: Vec<String> = lone.iter().cloned().collect();
    if let Some(key) = &key {
        let found = state.store.customer_conversations(key, MAX_CONVERSATIONS).await?;
        ids.extend(found.into_iter().map(|c| c.opened.id));
        // Found by email: the visitor keys of those conversations may hold more of
        // theirs (visits before they gave the email) — not erased: a browser key may be
        // shared (a family computer); an admin erases by it on its own request.
    }
    let mut erased = state.store.erase_conversations(&ids).await?;
    // Their files too (the same bytes sent in another conversation stay for it). Asked
    // again, an erasure finishes what a failure here left.
    let files = state
        .attachments
        .store
        .erase_conversations(&ids)
        .await
        .map_err(|e| ApiError::Unavailable(format!("attachment store: {e}")))?;
    if let Some(CustomerKey::Email(email)) = &key {
        erased.offline_messages = state.store.erase_offline_messages_of(email).await?;
    }
    let (found_by, hashed) = match (&key, &lone) {
        (Some(CustomerKey::Email(e)), _) => ("email", sha256_hex(e)),
        (Some(CustomerKey::Visitor(v)), _) => ("visitor", sha256_hex(v)),
        (Some(CustomerKey::Identity(i)), _) => ("identity", sha256_hex(i)),
        (None, Some(id)) => ("conversation", sha256_hex(id)),
        (None, None) => unreachable!("a key or a lone conversation"),
    };
    let record = ErasureRecord {
        id: uuid::Uuid::now_v7().to_string(),
        at: crate::clock::now_ms(),
        by: me.username.clone(),
        found_by: found_by.to_string(),
        key_sha256: hashed,
        erased,
    };
    state.store.add_erasure_record(record.clone()).await?;
    tracing::info!(
        erasure = %record.id, by = %me.username, found_by, conversations = erased.conversations,
        messages = erased.messages, notes = erased.notes, ratings = erased.ratings,
        offline_messages = erased.offline_messages, files, "a customer's data erased on request"
    );
    Ok(Json(record.into()))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErasureLog {
    pub total: u64,
    pub items: Vec<ErasureView>,
}

/// The erasure log, newest first.
#[utoipa::path(get, path = "/api/admin/erasures", tag = "admin", params(PageQuery),
    responses((status = 200, body = ErasureLog),
        (status = 400, description = "`bad_query`", body = ErrorBody), AdminsOnly, Unavailable))]
async fn log(Admin(state): Admin, ApiQuery(page): ApiQuery<PageQuery>) -> JsonResult<ErasureLog> {
    let (items, total) = state.store.erasure_records(page.page()?).await?;
    Ok(Json(ErasureLog {
        total,
        items: items.into_iter().map(Into::into).collect(),
    }))
}
