//! Attachments over HTTP: uploading a file for a chat, asking for links to it, and
//! fetching it through such a link.
//!
//! - `POST /api/attachments?conversation=&name=`: the body is the file's bytes, streamed
//!   into a temporary file (never whole in memory) and refused once past
//!   `ATTACHMENT_MAX_BYTES`; its type is told from its bytes and must be on the
//!   allow-list (`attachments::sniff`); images are written afresh with a thumbnail.
//!   The caller is the chat's customer (`X-Customer-Token`: the resume token the page
//!   holds), its agent (a session), or a member of staff in a buddy chat (a session); the
//!   answer is the id a `message` frame names.
//!   Any node takes it: a customer whose socket is on another node is found by their
//!   token in Redis, an agent's chat in the routing replica. The upload's bytes are held
//!   against the quotas (`AttachmentStore::reserve`) before its file is kept, and given
//!   back if anything ends the request before its record is kept: a failure, or the
//!   client gone (`Held`).
//! - `DELETE /api/attachments/{id}`: its uploader takes back a file no message carried
//!   yet (the composer's tray: removed, or cancelled once its bytes were in): record and
//!   file removed, bytes back to the quotas; 409 once a message carried it. A message on
//!   this node and a taking back are one or the other (`Attachments::take_back`).
//! - `GET /api/attachments/{id}/link`: links that work for 15 minutes, for the chat's
//!   customer and for staff (a buddy chat's files: for its members and the admins).
//! - `GET /api/attachments/{id}` and `/{id}/thumbnail` with `exp` and `sig`: the bytes,
//!   as a download (`Content-Disposition: attachment`) except the images the hub wrote
//!   again, never sniffed (`nosniff`), under `Content-Security-Policy: sandbox` so that
//!   whatever a file holds never runs in the hub's origin.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::BytesMut;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, IntoResponses, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::error::{ApiQuery, StatusJson, StoreAnswer};
use super::session::{Authed, session_token};
use super::{ApiError, AppState, ErrorBody};
use crate::attachments::intake::{self, Receiving};
use crate::attachments::links::{self, Variant};
use crate::attachments::scan;
use crate::attachments::sniff::{self, Kind};
use crate::attachments::{
    AttachmentMeta, AttachmentRecord, Attachments, Content, Reservation, images, uploader_of, uploader_tag,
};
use crate::clock::now_ms;
use crate::core::attachments::{Uploader, clean_name};

/// The header a customer's page sends its resume token in.
pub const CUSTOMER_TOKEN: &str = "x-customer-token";

/// The policy every served file carries: no script, no plugin, no form, nothing loaded.
const SANDBOX: &str = "sandbox; default-src 'none'; img-src 'self'; style-src 'unsafe-inline'";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(upload))
        .routes(routes!(link))
        .routes(routes!(file, remove))
        .routes(routes!(thumbnail))
}

/// Who is asking: a chat's customer (the chat) or a signed-in member of staff.
enum Caller {
    Customer { chat: String },
    Staff { account_id: String, admin: bool },
}

/// The caller of a request: a customer token is tried first (a customer has no session),
/// then a session.
async fn caller(state: &AppState, headers: &HeaderMap) -> Result<Caller, ApiError> {
    if let Some(token) = headers.get(CUSTOMER_TOKEN).and_then(|v| v.to_str().ok()) {
        let token = token.trim();
        let chat = match state.hub.chat_of_customer_token(token).await? {
            Some(chat) => Some(chat),
            None => chat_elsewhere(state, token).await?,
        };
        return chat.map(|chat| Caller::Customer { chat }).ok_or_else(|| {
            ApiError::refused(
                StatusCode::UNAUTHORIZED,
                "not_in_chat",
                "this customer token is in no chat of this desk now",
            )
        });
    }
    if session_token(headers).is_none() {
        return Err(ApiError::Unauthorized);
    }
    let mut parts = axum::http::Request::new(()).into_parts().0;
    parts.headers = headers.clone();
    let Authed(account) =
        <Authed as axum::extract::FromRequestParts<AppState>>::from_request_parts(&mut parts, state).await?;
    Ok(Caller::Staff {
        admin: account.role == crate::store::Role::Admin,
        account_id: account.id,
    })
}

/// On several nodes, the chat of a customer whose socket is on another node (behind a
/// load balancer, the upload and the socket often land apart): their token names them in
/// Redis (`cluster::resume_tokens`, by its SHA-256), and routing knows their chat.
async fn chat_elsewhere(state: &AppState, token: &str) -> Result<Option<String>, ApiError> {
    let Some(cluster) = &state.cluster else {
        return Ok(None);
    };
    let key = crate::cluster::resume_tokens::key(token);
    let customer = crate::cluster::resume_tokens::find(&mut cluster.conn(), &key)
        .await
        .map_err(|e| ApiError::ClusterUnavailable(format!("the cluster's Redis: {e}")))?;
    match customer {
        Some(customer) => Ok(state.hub.chat_of_customer(customer).await?),
        None => Ok(None),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UploadQuery {
    /// The chat (conversation) id the file is for.
    pub conversation: String,
    /// The file's name on the sender's system (cleaned: no folders, no control characters, at most 200 characters).
    pub name: String,
}

/// Upload a file for a chat. The body is the file's bytes (any `Content-Type`; it is not
/// believed). Customers present their resume token in `X-Customer-Token`; agents, and staff
/// in a buddy chat, their session.
#[utoipa::path(
    post,
    path = "/api/attachments",
    tag = "public",
    params(UploadQuery),
    security(("customer_token" = []), ("bearer" = []), ("session_cookie" = [])),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "the file's bytes"),
    responses(
        (status = 201, description = "Kept, durably (on disk and synced before this answer): the id a `message` frame's `attachments` names", body = AttachmentMeta),
        (status = 400, description = "`invalid_name`; `empty_file`; `bad_query`: `conversation` or `name` missing; `upload_cut`: the body broke off", body = ErrorBody),
        (status = 401, description = "`unauthorized`: no customer token and no session; `not_in_chat`: the token is in no chat", body = ErrorBody),
        (status = 403, description = "`not_your_chat`: the caller is not a side of that chat (a customer chat, or a buddy chat between signed-in staff), nor the agent whose conversation it is (its record names them: a file for a line to a customer who is away)", body = ErrorBody),
        (status = 413, description = "`too_large`: over `ATTACHMENT_MAX_BYTES`, or larger than the virus scanner checks (clamd's `StreamMaxLength`); `quota_exceeded`: over `ATTACHMENT_CONVERSATION_MAX_BYTES` or `ATTACHMENT_DAY_MAX_BYTES` (the limit and its setting are named)", body = ErrorBody),
        (status = 415, description = "`type_not_allowed`: the bytes are not an allowed type (whatever the name says); `unreadable_image`", body = ErrorBody),
        (status = 422, description = "`infected`: the virus scanner (`CLAMD_URL`) found a signature, named in the message; nothing was kept", body = ErrorBody),
        (status = 503, description = "`cluster_unavailable`: on several nodes, Redis did not answer whose a customer token is; `unavailable`: the attachment store did not answer; `scanner_unavailable`: a scanner is configured and could not check the file (nothing was kept; try again)", body = ErrorBody),
    )
)]
async fn upload(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<UploadQuery>,
    headers: HeaderMap,
    body: Body,
) -> StatusJson<AttachmentMeta> {
    let name = clean_name(&query.name).ok_or_else(|| ApiError::invalid("invalid_name", "the file needs a name"))?;
    let uploader = match caller(&state, &headers).await? {
        Caller::Customer { chat } if chat == query.conversation => Uploader::Customer,
        Caller::Staff { account_id, .. }
            if state.hub.is_agents_chat(&account_id, &query.conversation).await?
                || holds(&state, &account_id, &query.conversation).await? =>
        {
            Uploader::Agent(account_id)
        }
        Caller::Staff { account_id, .. } if state.hub.is_buddy_chat_of(&account_id, &query.conversation).await? => {
            Uploader::Buddy(account_id)
        }
        _ => {
            return Err(ApiError::refused(
                StatusCode::FORBIDDEN,
                "not_your_chat",
                "files can be sent only in a chat of yours that is going on",
            ));
        }
    };
    let attachments = &state.attachments;
    let limit = attachments.max_bytes;
    let too_large = || {
        ApiError::refused(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("a file may have at most {limit} bytes (ATTACHMENT_MAX_BYTES)"),
        )
    };
    // A length said up front is refused before a byte is read.
    if super::declared_length::declared_over(&headers, limit) {
        return Err(too_large());
    }
    let internal = |e: std::io::Error| ApiError::Internal(format!("attachment store: {e}"));
    let staged = attachments.store.staging().map_err(internal)?;
    let gone = |_| ApiError::Unavailable("the hub is stopping".into());
    let mut receiving = Receiving::new(staged.reopen().map_err(internal)?);
    let mut piece = BytesMut::new();
    let mut stream = body.into_data_stream();
    loop {
        let chunk = stream.next().await;
        if let Some(chunk) = &chunk {
            let chunk = chunk
                .as_ref()
                .map_err(|e| ApiError::invalid("upload_cut", format!("the upload broke off: {e}")))?;
            if receiving.size + (piece.len() + chunk.len()) as u64 > limit {
                return Err(too_large());
            }
            piece.extend_from_slice(chunk);
        }
        let end = chunk.is_none();
        if piece.len() >= intake::PIECE_BYTES || (end && !piece.is_empty()) {
            // Hashed and written on an intake thread, below the relay's priority; the next
            // bytes are read once it is done, and once the uploads' pace allows them.
            let bytes = piece.split().freeze();
            attachments.pace.take(bytes.len()).await;
            let fed;
            (receiving, fed) = attachments
                .intake
                .run(move || {
                    let fed = receiving.feed(&bytes);
                    (receiving, fed)
                })
                .await
                .map_err(gone)?;
            fed.map_err(internal)?;
        }
        if end {
            break;
        }
    }
    let size = receiving.size;
    if size == 0 {
        return Err(ApiError::invalid("empty_file", "the file is empty"));
    }
    let kind = sniff::kind(&receiving.head, || receiving.text.is_text()).map_err(|found| {
        ApiError::refused(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "type_not_allowed",
            format!("files of type {found} cannot be sent; images, PDF, text and office documents can"),
        )
    })?;
    if let Some(scanner) = &attachments.scanner {
        scanned(scanner.file(staged.path()).await, &name)?;
    }
    let id = uuid::Uuid::new_v4().simple().to_string();
    let (conversation, at) = (query.conversation, now_ms());
    // Held until the record is kept, given back if anything ends the request first.
    let ((mime, sha, size, thumbnail), held) = match kind {
        Kind::Document(mime) => {
            let held = reserve(attachments, (&id, &conversation, at), size).await?;
            let sha = receiving.sha256_hex();
            attachments.store.keep_file(staged, &sha).await.map_err(internal)?;
            ((mime.to_string(), sha, size, None), held)
        }
        Kind::Image(format) => {
            let bytes = tokio::fs::read(staged.path()).await.map_err(internal)?;
            drop(receiving);
            let rewritten = attachments
                .intake
                .run(move || images::rewrite(&bytes, format))
                .await
                .map_err(gone)?
                .map_err(|why| ApiError::refused(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unreadable_image", why))?;
            // The image as kept is what the quotas count.
            let held = reserve(attachments, (&id, &conversation, at), rewritten.bytes.len() as u64).await?;
            (attachments.keep_image(rewritten).await.map_err(internal)?, held)
        }
    };
    let record = AttachmentRecord {
        id,
        conversation,
        uploader: uploader_tag(&uploader),
        name,
        mime,
        size,
        sha256: sha,
        thumbnail,
        uploaded_at: at,
    };
    let attachment = record.meta();
    attachments.store.put_record(record).await.map_err(internal)?;
    held.kept();
    Ok((StatusCode::CREATED, Json(attachment)))
}

/// Whether `account` holds conversation `id` whose customer is away (a file for a line
/// written to them): its record names them.
async fn holds(state: &AppState, account: &str, id: &str) -> Result<bool, ApiError> {
    let record = state.store.conversation_record(id).await.if_found()?;
    Ok(record.is_some_and(|r| r.holder.as_deref() == Some(account)))
}

/// The scanner's verdict on upload `name` as the caller hears it: 422 `infected` naming
/// the signature, 503 `scanner_unavailable` while it cannot scan (the cause logged).
fn scanned(verdict: Result<scan::Verdict, scan::ScanFailed>, name: &str) -> Result<(), ApiError> {
    match verdict {
        Ok(scan::Verdict::Clean) => Ok(()),
        Ok(scan::Verdict::Infected(signature)) => {
            tracing::warn!(%name, %signature, "the virus scanner refused an upload");
            Err(ApiError::refused(
                StatusCode::UNPROCESSABLE_ENTITY,
                "infected",
                format!("the virus scanner refused this file ({signature})"),
            ))
        }
        Err(scan::ScanFailed::Unscannable(why)) => {
            tracing::warn!(%name, %why, "an upload the virus scanner cannot scan: refused");
            Err(ApiError::refused(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                "the file is larger than the virus scanner checks (clamd's StreamMaxLength)",
            ))
        }
        Err(scan::ScanFailed::Unavailable(why)) => {
            tracing::error!(%name, %why, "an upload could not be scanned: refused for now");
            Err(ApiError::refused(
                StatusCode::SERVICE_UNAVAILABLE,
                "scanner_unavailable",
                "the virus scanner cannot check files right now; try again shortly",
            ))
        }
    }
}

/// Bytes held against the quotas for an upload on its way ([`reserve`]): given back when
/// dropped, unless [`Held::kept`] said its record is kept. Whatever ends the request before
/// that gives them back: a failure, and a client gone mid-way (the server then drops the
/// handler's future wherever it waits).
struct Held {
    store: crate::attachments::SharedAttachmentStore,
    reservation: Option<Reservation>,
}

impl Held {
    /// The upload's record is kept: its bytes count as its record's now.
    fn kept(mut self) {
        self.reservation = None;
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let Some(held) = self.reservation.take() else {
            return;
        };
        let store = self.store.clone();
        let give_back = async move {
            if let Err(e) = store.release(&held).await {
                tracing::warn!(attachment = %held.id, error = %e, "quota held for an upload not kept not given back");
            }
        };
        // On a task of its own: the request's future is being dropped.
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn(give_back)),
            Err(_) => tracing::warn!("quota held for an upload not given back: the runtime is gone"),
        }
    }
}

/// Holds `size` bytes for upload `id` to `conversation` at `at` (Unix ms) against the
/// quotas, before its file is kept: 413 `quota_exceeded` naming the setting when it
/// would pass one (uploads at once, on any nodes, never pass one together).
async fn reserve(
    attachments: &Attachments,
    (id, conversation, at): (&str, &str, i64),
    size: u64,
) -> Result<Held, ApiError> {
    let wanted = Reservation {
        id: id.to_string(),
        conversation: conversation.to_string(),
        at,
        size,
    };
    let held = attachments
        .store
        .reserve(&wanted, attachments.quotas)
        .await
        .map_err(attachments_unavailable)?;
    match held {
        Ok(()) => Ok(Held {
            store: attachments.store.clone(),
            reservation: Some(wanted),
        }),
        Err((setting, quota)) => {
            let what = match setting {
                "ATTACHMENT_DAY_MAX_BYTES" => "the files the desk takes in a day",
                _ => "the files of one conversation",
            };
            Err(ApiError::refused(
                StatusCode::PAYLOAD_TOO_LARGE,
                "quota_exceeded",
                format!("{what} may have at most {quota} bytes together ({setting})"),
            ))
        }
    }
}

/// Links to a file, valid until `expires_at`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Links {
    pub url: String,
    /// Images only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thumbnail_url: Option<String>,
    /// Unix seconds.
    pub expires_at: i64,
    pub attachment: AttachmentMeta,
}

fn signed(attachments: &Attachments, id: &str, variant: Variant, exp: i64) -> String {
    let sig = links::sign(attachments.link_key(), id, variant, exp);
    let path = match variant {
        Variant::File => format!("/api/attachments/{id}"),
        Variant::Thumbnail => format!("/api/attachments/{id}/thumbnail"),
    };
    format!("{path}?exp={exp}&sig={sig}")
}

/// Links to an attachment, for the customer of its chat (`X-Customer-Token`) and for staff;
/// a buddy chat's, for its members while it runs, its uploader and the admins.
#[utoipa::path(
    get,
    path = "/api/attachments/{id}/link",
    tag = "public",
    params(("id" = String, Path, description = "the attachment id")),
    security(("customer_token" = []), ("bearer" = []), ("session_cookie" = [])),
    responses(
        (status = 200, description = "Links that work for 15 minutes", body = Links),
        (status = 401, description = "`unauthorized`; `not_in_chat`", body = ErrorBody),
        (status = 403, description = "`forbidden`: the account is disabled", body = ErrorBody),
        (status = 404, description = "`not_found`: no such attachment, not in the customer's chat, or a buddy chat's the caller is not in (nor an admin)", body = ErrorBody),
        (status = 503, description = "`cluster_unavailable`: on several nodes, Redis did not answer whose a customer token is; `unavailable`: the attachment store did not answer", body = ErrorBody),
    )
)]
async fn link(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Links>, ApiError> {
    let (_, record) = visible_record(&state, &headers, &id).await?;
    let exp = now_ms() / 1000 + links::TTL_SECS;
    Ok(Json(Links {
        url: signed(&state.attachments, &id, Variant::File, exp),
        thumbnail_url: record
            .thumbnail
            .as_ref()
            .map(|_| signed(&state.attachments, &id, Variant::Thumbnail, exp)),
        expires_at: exp,
        attachment: record.meta(),
    }))
}

/// Whether `caller` may have links to the file of `record`: a customer, their chat's; staff,
/// any service chat's (as they may open the chat); a buddy chat's, as its archive is read,
/// only its members (while it runs: its uploader after that too) and the admins.
async fn may_see(state: &AppState, caller: &Caller, record: &AttachmentRecord) -> Result<bool, ApiError> {
    match caller {
        Caller::Customer { chat } => Ok(*chat == record.conversation),
        Caller::Staff { admin: true, .. } => Ok(true),
        Caller::Staff { account_id, .. } => match uploader_of(&record.uploader) {
            Some(Uploader::Buddy(uploader)) => {
                Ok(uploader == *account_id || state.hub.is_buddy_chat_of(account_id, &record.conversation).await?)
            }
            _ => Ok(true),
        },
    }
}

/// The caller and the record of attachment `id`, where they may see it ([`may_see`]); one
/// they may not see is `not_found`, as one that does not exist.
async fn visible_record(
    state: &AppState,
    headers: &HeaderMap,
    id: &str,
) -> Result<(Caller, AttachmentRecord), ApiError> {
    let caller = caller(state, headers).await?;
    let record = stored_record(state, id).await?;
    if !may_see(state, &caller, &record).await? {
        return Err(ApiError::NotFound("attachment"));
    }
    Ok((caller, record))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LinkQuery {
    /// Unix seconds the link works until.
    pub exp: i64,
    /// Its signature.
    pub sig: String,
}

/// A file, through a link from `GET /api/attachments/{id}/link`.
#[utoipa::path(
    get,
    path = "/api/attachments/{id}",
    tag = "public",
    params(AttachmentId, LinkQuery),
    responses(
        (status = 200, description = "The file: a download, except images the hub wrote again", content_type = "application/octet-stream"),
        LinkRefused,
    )
)]
async fn file(
    State(state): State<AppState>,
    id: Path<AttachmentId>,
    q: ApiQuery<LinkQuery>,
) -> Result<Response, ApiError> {
    serve(&state, id, Variant::File, q).await
}

/// Take back an upload no message carried yet (removed from the composer's tray, or
/// cancelled once its bytes were in): its record and file go, and its bytes go back to
/// the conversation's and the day's quotas. Only its uploader may: the customer by their
/// token, staff by their session.
#[utoipa::path(
    delete,
    path = "/api/attachments/{id}",
    tag = "public",
    params(AttachmentId),
    security(("customer_token" = []), ("bearer" = []), ("session_cookie" = [])),
    responses(
        (status = 204, description = "Removed: no message can name it any more, and its bytes count against the quotas no more"),
        (status = 401, description = "`unauthorized`: no customer token and no session; `not_in_chat`: the token is in no chat", body = ErrorBody),
        (status = 403, description = "`not_your_upload`: someone else uploaded it; `forbidden`: the account is disabled", body = ErrorBody),
        (status = 404, description = "`not_found`: no such upload (or removed already), or one the caller may not see", body = ErrorBody),
        (status = 409, description = "`already_sent`: a message carried it; it stays for that message", body = ErrorBody),
        (status = 503, description = "`cluster_unavailable`: on several nodes, Redis did not answer whose a customer token is; `unavailable`: the attachment store or the archive did not answer (nothing removed; try again)", body = ErrorBody),
    )
)]
async fn remove(
    State(state): State<AppState>,
    Path(AttachmentId { id }): Path<AttachmentId>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let (caller, record) = visible_record(&state, &headers, &id).await?;
    let uploader = match &caller {
        Caller::Customer { .. } => Uploader::Customer,
        Caller::Staff { account_id, .. } => match uploader_of(&record.uploader) {
            Some(Uploader::Buddy(_)) => Uploader::Buddy(account_id.clone()),
            _ => Uploader::Agent(account_id.clone()),
        },
    };
    if uploader_tag(&uploader) != record.uploader {
        return Err(ApiError::refused(
            StatusCode::FORBIDDEN,
            "not_your_upload",
            "only whoever uploaded a file can take it back",
        ));
    }
    let attachments = &state.attachments;
    let already_sent = || {
        ApiError::refused(
            StatusCode::CONFLICT,
            "already_sent",
            "a message carried this file: it stays for that message",
        )
    };
    // From here no message on this node may name it; one named it already, or one another
    // node took is in the archive: it stays.
    attachments.take_back(&id).map_err(|_| already_sent())?;
    let removed = match in_archive(&state, &record).await {
        Ok(true) => Err(already_sent()),
        Ok(false) => read_within(&state, attachments.store.remove_upload(&id))
            .await
            .map_err(attachments_unavailable),
        Err(e) => Err(e),
    };
    attachments.taken_back(&id);
    removed?.ok_or(ApiError::NotFound("attachment"))?;
    Ok(StatusCode::NO_CONTENT)
}

/// Whether the archive has a line carrying the file of `record` (sent, on any node).
async fn in_archive(state: &AppState, record: &AttachmentRecord) -> Result<bool, ApiError> {
    let archived = state.store.conversation(&record.conversation).await.if_found()?;
    let carries = |m: &crate::store::ArchivedMessage| m.attachments.iter().any(|a| a.id == record.id);
    Ok(archived.is_some_and(|c| c.messages.iter().any(carries)))
}

/// A thumbnail (images), through a link from `GET /api/attachments/{id}/link`.
#[utoipa::path(
    get,
    path = "/api/attachments/{id}/thumbnail",
    tag = "public",
    params(AttachmentId, LinkQuery),
    responses(
        (status = 200, description = "A PNG at most 320 pixels on each side", content_type = "image/png"),
        LinkRefused,
    )
)]
async fn thumbnail(
    State(state): State<AppState>,
    id: Path<AttachmentId>,
    q: ApiQuery<LinkQuery>,
) -> Result<Response, ApiError> {
    serve(&state, id, Variant::Thumbnail, q).await
}

/// The id in the path of the file and thumbnail links.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct AttachmentId {
    /// the attachment id
    pub id: String,
}

/// What the file and thumbnail links refuse, alike for both.
#[derive(IntoResponses)]
pub enum LinkRefused {
    /// `bad_query`: `exp` or `sig` missing or malformed
    #[response(status = 400)]
    BadQuery(ErrorBody),
    /// `invalid_link`: forged, for another file, or expired
    #[response(status = 403)]
    InvalidLink(ErrorBody),
    /// `not_found`
    #[response(status = 404)]
    NotFound(ErrorBody),
    /// `unavailable`: the attachment store failed or did not answer within `STORE_READ_TIMEOUT_MS`; try again
    #[response(status = 503)]
    Unavailable(ErrorBody),
}

/// An attachment's record, or `not_found`; 503 `unavailable` when the attachment store
/// (MongoDB's, shared by the nodes) fails or does not answer within `STORE_READ_TIMEOUT_MS`.
async fn stored_record(state: &AppState, id: &str) -> Result<AttachmentRecord, ApiError> {
    read_within(state, state.attachments.store.load_record(id))
        .await
        .map_err(attachments_unavailable)?
        .ok_or(ApiError::NotFound("attachment"))
}

/// An attachment store read within `STORE_READ_TIMEOUT_MS`, as the store's own reads are
/// (`store::bounded`): a frozen MongoDB would hold the request otherwise.
async fn read_within<T>(
    state: &AppState,
    read: impl std::future::Future<Output = std::io::Result<T>>,
) -> std::io::Result<T> {
    let limit = state.settings.store.read_timeout;
    tokio::time::timeout(limit, read).await.unwrap_or_else(|_| {
        Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no answer within {limit:?}"),
        ))
    })
}

/// A blob read from a database chunk by chunk, each chunk within `limit`: a server that
/// stops answering mid-file ends the body with an error (the client sees the download
/// cut short) instead of holding the connection.
fn chunks_within(
    chunks: futures_util::stream::BoxStream<'static, std::io::Result<bytes::Bytes>>,
    limit: std::time::Duration,
) -> futures_util::stream::BoxStream<'static, std::io::Result<bytes::Bytes>> {
    futures_util::stream::unfold(Some(chunks), move |left| async move {
        let mut chunks = left?;
        match tokio::time::timeout(limit, chunks.next()).await {
            Ok(Some(chunk)) => Some((chunk, Some(chunks))),
            Ok(None) => None,
            Err(_) => Some((
                Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no chunk within {limit:?}"),
                )),
                None,
            )),
        }
    })
    .boxed()
}

/// 503 `unavailable` for an attachment store that failed; what failed goes to the log only.
fn attachments_unavailable(e: std::io::Error) -> ApiError {
    tracing::warn!(error = %e, "attachment store unavailable");
    ApiError::Unavailable("the attachment store is unavailable; try again shortly".into())
}

async fn serve(
    state: &AppState,
    Path(AttachmentId { id }): Path<AttachmentId>,
    variant: Variant,
    ApiQuery(q): ApiQuery<LinkQuery>,
) -> Result<Response, ApiError> {
    let (id, attachments) = (id.as_str(), &state.attachments);
    if !links::valid(attachments.link_key(), id, variant, q.exp, &q.sig, now_ms() / 1000) {
        return Err(ApiError::refused(
            StatusCode::FORBIDDEN,
            "invalid_link",
            "this link is not valid (or no longer): ask for a new one",
        ));
    }
    let record = stored_record(state, id).await?;
    let (sha, mime, inline) = match variant {
        Variant::File => (record.sha256.clone(), record.mime.clone(), record.is_rewritten_image()),
        Variant::Thumbnail => (
            record.thumbnail.clone().ok_or(ApiError::NotFound("thumbnail"))?,
            "image/png".to_string(),
            true,
        ),
    };
    let content = read_within(state, attachments.store.content(&sha))
        .await
        .map_err(|e| match e.kind() {
            // Erased since this node read its record (another node's erasure).
            std::io::ErrorKind::NotFound => ApiError::NotFound("attachment"),
            // Timed out or failed: the store's to mend, the caller's to try again (logged).
            _ => attachments_unavailable(e),
        })?;
    let (body, length) = match content {
        Content::File(file, len) => (Body::from_stream(tokio_util::io::ReaderStream::new(file)), len),
        Content::Bytes(bytes) => {
            let len = bytes.len() as u64;
            (Body::from(bytes), len)
        }
        Content::Stream(chunks, len) => (
            Body::from_stream(chunks_within(chunks, state.settings.store.read_timeout)),
            len,
        ),
    };
    let disposition = format!(
        "{}; filename=\"{}\"; filename*=UTF-8''{}",
        if inline { "inline" } else { "attachment" },
        ascii_fallback(&record.name),
        percent_encoding::utf8_percent_encode(&record.name, percent_encoding::NON_ALPHANUMERIC)
    );
    let mut response = body.into_response();
    let headers = response.headers_mut();
    let value = |s: &str| HeaderValue::from_str(s).map_err(|e| ApiError::Internal(e.to_string()));
    headers.insert(header::CONTENT_TYPE, value(&mime)?);
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    headers.insert(header::CONTENT_DISPOSITION, value(&disposition)?);
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(SANDBOX));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, max-age=600"));
    headers.insert(
        header::HeaderName::from_static("cross-origin-resource-policy"),
        HeaderValue::from_static("same-origin"),
    );
    Ok(response)
}

/// The name for `filename=`: ASCII, no quotes or backslashes (the full name is in `filename*`).
fn ascii_fallback(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An upload's handler dropped once its bytes are held (its client went away while
    /// its file was being kept: the server drops the handler's future) gives them back.
    #[tokio::test]
    async fn bytes_held_for_an_upload_whose_client_went_away_are_given_back() {
        let mut attachments = Attachments::in_memory(10_000);
        attachments.quotas = crate::attachments::Quotas {
            conversation: 1_000,
            day: 1_000,
        };
        let at = 1_795_000_000_000;
        let handler = async {
            let _held = reserve(&attachments, ("u1", "c1", at), 1_000).await.unwrap();
            // Keeping its file, when the client goes.
            std::future::pending::<()>().await;
        };
        let cut = tokio::time::timeout(std::time::Duration::from_millis(20), handler).await;
        assert!(cut.is_err(), "the handler was dropped mid-way");
        let mut again = reserve(&attachments, ("u2", "c1", at), 1_000).await;
        for _ in 0..100 {
            if again.is_ok() {
                break;
            }
            tokio::task::yield_now().await;
            again = reserve(&attachments, ("u2", "c1", at), 1_000).await;
        }
        assert!(again.is_ok(), "the bytes held for u1 are back");
        // Kept, an upload's bytes stay counted.
        again.unwrap().kept();
        assert!(reserve(&attachments, ("u3", "c1", at), 1).await.is_err());
    }

    /// A blob whose server stops answering after its first chunk: the body gets that chunk,
    /// then an error, then ends, rather than waiting for the next chunk without end.
    #[tokio::test]
    async fn a_chunk_that_does_not_come_in_time_ends_the_body_with_an_error() {
        let first = futures_util::stream::iter([Ok(bytes::Bytes::from_static(b"first"))]);
        let stalled = first.chain(futures_util::stream::pending()).boxed();
        let mut body = chunks_within(stalled, std::time::Duration::from_millis(20));
        assert_eq!(body.next().await.unwrap().unwrap(), "first");
        let cut = body.next().await.unwrap().unwrap_err();
        assert_eq!(cut.kind(), std::io::ErrorKind::TimedOut);
        assert!(body.next().await.is_none());
    }
}
