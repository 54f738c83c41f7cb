//! The files a customer's mail carries, kept as uploads are: the same size limit
//! (`ATTACHMENT_MAX_BYTES`), the type told from the bytes and checked against the
//! allow-list (`attachments::sniff`), scanned when a scanner is configured
//! (`attachments::scan`: a scanner that cannot scan holds the mail for the next look),
//! images written afresh with a thumbnail (`attachments::images`), then kept through the attachments store's public API with a
//! record naming the conversation and its customer as uploader. A file refused is never
//! dropped silently: the line's text says which and why, e.g. "(attachment run.exe
//! refused: type application/x-msdownload not allowed)".
//!
//! A record's id is made from the mail's key and the file's place in it, so a mail
//! delivered again keeps the same records (and the content-addressed blobs once).

use crate::attachments::scan::{ScanFailed, Verdict};
use crate::attachments::sniff::{self, Kind, TextCheck};
use crate::attachments::{AttachmentMeta, AttachmentRecord, Attachments, images, sha256_hex, uploader_tag};
use crate::core::attachments::{MAX_PER_MESSAGE, Uploader, clean_name};
use crate::core::inbound_mail::MailFile;

/// What became of a mail's files: those kept, for the line, and a note per file refused,
/// for its text.
#[derive(Debug, Default)]
pub struct Kept {
    pub files: Vec<AttachmentMeta>,
    pub notes: Vec<String>,
}

impl Kept {
    /// `text` with the notes of refused files after it, one a line.
    pub fn noted(&self, text: String) -> String {
        self.notes.iter().fold(text, |mut text, note| {
            if !text.is_empty() {
                text.push('\n');
            }
            text.push_str(note);
            text
        })
    }
}

/// Keeps `files` of the mail with key `key` for conversation `conversation`. `Err`: the
/// store failed (the mail is offered again); a file refused is a note, not an error.
pub async fn keep(
    attachments: &Attachments,
    conversation: &str,
    key: &str,
    files: &[MailFile],
) -> Result<Kept, String> {
    let mut kept = Kept::default();
    for (n, file) in files.iter().enumerate() {
        let name = clean_name(&file.name).unwrap_or_else(|| "attachment".to_string());
        if n >= MAX_PER_MESSAGE {
            kept.notes.push(format!(
                "(attachment {name} refused: at most {MAX_PER_MESSAGE} files a line)"
            ));
            continue;
        }
        let id = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, format!("{key}#{n}").as_bytes())
            .simple()
            .to_string();
        if let Some(record) = attachments.store.record(&id) {
            kept.files.push(record.meta());
            continue;
        }
        match keep_one(attachments, &id, conversation, name.clone(), &file.bytes).await? {
            Ok(meta) => kept.files.push(meta),
            Err(why) => {
                tracing::info!(conversation, %name, %why, "an attachment of a mail was refused");
                kept.notes.push(format!("(attachment {name} refused: {why})"));
            }
        }
    }
    Ok(kept)
}

/// One file, checked and kept as record `id`: `Ok(Err(why))` when refused.
async fn keep_one(
    attachments: &Attachments,
    id: &str,
    conversation: &str,
    name: String,
    bytes: &[u8],
) -> Result<Result<AttachmentMeta, String>, String> {
    let limit = attachments.max_bytes;
    if bytes.is_empty() {
        return Ok(Err("the file is empty".into()));
    }
    if bytes.len() as u64 > limit {
        return Ok(Err(format!("over {limit} bytes (ATTACHMENT_MAX_BYTES)")));
    }
    let head = &bytes[..bytes.len().min(sniff::HEAD)];
    let kind = sniff::kind(head, || {
        let mut check = TextCheck::default();
        check.feed(bytes);
        check.is_text()
    });
    let kind = match kind {
        Ok(kind) => kind,
        Err(found) => return Ok(Err(format!("type {found} not allowed"))),
    };
    if let Err(refused) = scanned(attachments, bytes).await? {
        return Ok(Err(refused));
    }
    let store = |e: std::io::Error| format!("attachment store: {e}");
    let (mime, sha, size, thumbnail) = match kind {
        Kind::Document(mime) => {
            let sha = sha256_hex(bytes);
            attachments
                .store
                .keep_bytes(bytes.to_vec(), &sha)
                .await
                .map_err(store)?;
            (mime.to_string(), sha, bytes.len() as u64, None)
        }
        Kind::Image(format) => {
            let owned = bytes.to_vec();
            let rewritten = attachments
                .intake
                .run(move || images::rewrite(&owned, format))
                .await
                .map_err(|_| "the hub is stopping".to_string())?;
            let rewritten = match rewritten {
                Ok(rewritten) => rewritten,
                Err(why) => return Ok(Err(format!("unreadable image ({why})"))),
            };
            attachments.keep_image(rewritten).await.map_err(store)?
        }
    };
    let record = AttachmentRecord {
        id: id.to_string(),
        conversation: conversation.to_string(),
        uploader: uploader_tag(&Uploader::Customer),
        name,
        mime,
        size,
        sha256: sha,
        thumbnail,
        uploaded_at: crate::clock::now_ms(),
    };
    put_record(attachments, record).await.map(Ok)
}

/// Keeps the record of a kept file (one naming its conversation and its customer as
/// uploader); what a line shows of it.
async fn put_record(attachments: &Attachments, record: AttachmentRecord) -> Result<AttachmentMeta, String> {
    let meta = record.meta();
    // Counted by the quotas as uploads are (held, then its record's), never refused by
    // them: the customer's mail is taken whole.
    let counted = crate::attachments::Reservation {
        id: record.id.clone(),
        conversation: record.conversation.clone(),
        at: record.uploaded_at,
        size: record.size,
    };
    let held = attachments
        .store
        .reserve(&counted, crate::attachments::Quotas::NONE)
        .await;
    held.map_err(|e| format!("attachment store: {e}"))?
        .map_err(|(setting, _)| format!("{setting} has no limit here"))?;
    if let Err(e) = attachments.store.put_record(record).await {
        // The mail is offered again later: what it held is given back meanwhile.
        let _ = attachments.store.release(&counted).await;
        return Err(format!("attachment store: {e}"));
    }
    Ok(meta)
}

/// The scanner's word on `bytes`, when one is configured: `Ok(Err(why))` refused (found a
/// signature, or cannot scan it: the line says so); `Err` while it cannot be reached (the
/// mail is offered again later, as when the store fails: never kept unscanned).
async fn scanned(attachments: &Attachments, bytes: &[u8]) -> Result<Result<(), String>, String> {
    let Some(scanner) = &attachments.scanner else {
        return Ok(Ok(()));
    };
    match scanner.bytes(bytes).await {
        Ok(Verdict::Clean) => Ok(Ok(())),
        Ok(Verdict::Infected(signature)) => Ok(Err(format!("the virus scanner found {signature}"))),
        Err(ScanFailed::Unscannable(why)) => {
            tracing::warn!(%why, "a mail's file the virus scanner cannot scan: refused");
            Ok(Err("too large for the virus scanner".to_string()))
        }
        Err(ScanFailed::Unavailable(why)) => Err(format!("virus scanner: {why}")),
    }
}

/// The name the whole mail is kept under, beside the files it carries.
pub const ORIGINAL_NAME: &str = "original-mail.eml";

/// The line's note when the whole mail is not kept because a file in it was refused.
pub const ORIGINAL_ONLY_IN_MAILBOX: &str =
    "(the whole mail is kept only in the mailbox: it carries a file that was refused)";

/// Keeps the whole mail `raw` (headers, quoted history, every part, as it came) for
/// conversation `conversation` as a file of its line, `message/rfc822`, served as a
/// download: what the line shows is the mail's new text, this is what was sent. Only for a
/// mail none of whose files was refused (the caller's check). `Ok(Err)`
/// with a note for the line when it is over `ATTACHMENT_MAX_BYTES` (it stays in the
/// mailbox); `Err`: the store failed (the mail is offered again).
pub async fn keep_original(
    attachments: &Attachments,
    conversation: &str,
    key: &str,
    raw: &[u8],
) -> Result<Result<AttachmentMeta, String>, String> {
    let id = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, format!("{key}#original").as_bytes())
        .simple()
        .to_string();
    if let Some(record) = attachments.store.record(&id) {
        return Ok(Ok(record.meta()));
    }
    let limit = attachments.max_bytes;
    if raw.len() as u64 > limit {
        return Ok(Err(format!(
            "(the whole mail, {} bytes, is over {limit} bytes (ATTACHMENT_MAX_BYTES) and is kept only in the mailbox)",
            raw.len()
        )));
    }
    // The whole mail holds what its files do and more (an HTML body, parts a mail program
    // reads differently): scanned as they are. A scanner that cannot be reached holds no
    // line for it (its files, if any, were scanned already): the line goes in without it.
    match scanned(attachments, raw).await {
        Ok(Ok(())) => {}
        Ok(Err(refused)) => return Ok(Err(format!("(the whole mail is kept only in the mailbox: {refused})"))),
        Err(why) => {
            tracing::warn!(%why, "a whole mail could not be scanned: kept only in the mailbox");
            return Ok(Err(
                "(the whole mail is kept only in the mailbox: the virus scanner could not check it)".to_string(),
            ));
        }
    }
    let sha = sha256_hex(raw);
    attachments
        .store
        .keep_bytes(raw.to_vec(), &sha)
        .await
        .map_err(|e| format!("attachment store: {e}"))?;
    let record = AttachmentRecord {
        id,
        conversation: conversation.to_string(),
        uploader: uploader_tag(&Uploader::Customer),
        name: ORIGINAL_NAME.to_string(),
        mime: "message/rfc822".to_string(),
        size: raw.len() as u64,
        sha256: sha,
        thumbnail: None,
        uploaded_at: crate::clock::now_ms(),
    };
    let meta = put_record(attachments, record).await?;
    Ok(Ok(meta))
}
