//! Attachments in MongoDB (`STORE=mongodb`), so that every node serves every file: the
//! GridFS layout, written by hand.
//!
//! - `attachments.chunks`: `{files_id: <sha256 hex>, n, data}`, at most [`CHUNK_BYTES`]
//!   of the blob each, with a unique index on `(files_id, n)`;
//! - `attachments.files`: `{_id: <sha256 hex>, length, chunkSize, uploadDate}`, written
//!   only once every chunk is: a blob is there when its files document is;
//! - `attachment_records`: the records (who uploaded what for which conversation), `_id`
//!   the attachment id;
//! - `attachment_keys`: the key that signs links, made once for the whole desk, so a link
//!   given by one node works on every node;
//! - `attachment_quotas`: `{_id: "conversation:<id>" | "day:<Unix ms of the UTC day>", bytes}`,
//!   the bytes the quotas count, each taken by one conditional `$inc` (`bytes` at most the
//!   limit less the upload) before a file is kept, so uploads at once on any nodes never
//!   pass a quota together; given back when the upload fails, when its uploader takes it
//!   back before sending it (`remove_upload`), and when files are erased.
//!   A counter missing (the first upload of a conversation or a day, or a desk whose files
//!   predate the counters) is made from the records first.
//!
//! Why by hand rather than the driver's GridFS: a blob is named by its SHA-256 (the same
//! bytes are kept once, as on disk), and a write cut short (a node killed mid-upload)
//! must not stop the next upload of the same bytes. The driver's upload stream inserts
//! its chunks, so the retry fails on the leftover chunks' unique keys; here each chunk is
//! an upsert on `(files_id, n)`, which writes the same bytes again, whatever is left.
//! The layout stays GridFS's, so `mongofiles --prefix attachments` reads the blobs.
//! Each chunk and the files document are written with the store's durable write concern
//! before the upload is answered (and so before any message naming it is acknowledged).
//! A blob is read chunk by chunk (a cursor), never whole in memory.

use std::io;

use async_trait::async_trait;
use bson::{Binary, Bson, doc, spec::BinarySubtype};
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use mongodb::options::ReplaceOptions;
use mongodb::{Collection, Database};
use serde::{Deserialize, Serialize};
use tempfile::NamedTempFile;
use tokio::io::AsyncReadExt;

use super::{index, unique_index};
use crate::attachments::AttachmentRecord;
use crate::attachments::Quotas;
use crate::attachments::store::{AttachmentStore, Content, Exceeded, Records, Reservation, Usage, day_of};

/// Bytes per chunk: GridFS's default, well under the 16 MiB document limit.
pub const CHUNK_BYTES: usize = 255 * 1024;

fn io_error(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("mongodb: {e}"))
}

/// A blob's files document (GridFS's field names).
#[derive(Debug, Serialize, Deserialize)]
struct FileDoc {
    #[serde(rename = "_id")]
    sha: String,
    length: i64,
    #[serde(rename = "chunkSize")]
    chunk_size: i32,
    #[serde(rename = "uploadDate")]
    upload_date: bson::DateTime,
}

/// A record as kept: the record itself, its id as `_id`.
#[derive(Debug, Serialize, Deserialize)]
struct RecordDoc {
    #[serde(rename = "_id")]
    id: String,
    #[serde(flatten)]
    record: AttachmentRecord,
}

/// The attachments of a desk on MongoDB.
pub struct MongoAttachmentStore {
    files: Collection<FileDoc>,
    chunks: Collection<bson::Document>,
    records: Collection<RecordDoc>,
    quotas: Collection<bson::Document>,
    known: Records,
}

/// The counters' keys: a conversation's files, and the desk's of a UTC day.
fn conversation_key(conversation: &str) -> String {
    format!("conversation:{conversation}")
}

fn day_key(at: i64) -> String {
    format!("day:{}", day_of(at))
}

fn as_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl MongoAttachmentStore {
    /// The store on `db` (indexes created) and the desk's link key (made by the first
    /// node to ask, read by the others).
    pub async fn open(db: &Database) -> io::Result<(Self, Vec<u8>)> {
        let store = Self {
            files: db.collection("attachments.files"),
            chunks: db.collection("attachments.chunks"),
            records: db.collection("attachment_records"),
            quotas: db.collection("attachment_quotas"),
            known: Records::default(),
        };
        store
            .chunks
            .create_indexes([unique_index(doc! {"files_id": 1, "n": 1}, "files_id_n")])
            .await
            .map_err(io_error)?;
        store
            .records
            .create_indexes([
                index(doc! {"conversation": 1}, "conversation"),
                index(doc! {"uploaded_at": 1}, "uploaded_at"),
            ])
            .await
            .map_err(io_error)?;
        let key = link_key(db).await?;
        Ok((store, key))
    }

    async fn has_blob(&self, sha: &str) -> io::Result<bool> {
        Ok(self
            .files
            .find_one(doc! {"_id": sha})
            .await
            .map_err(io_error)?
            .is_some())
    }

    /// Writes chunk `n` of blob `sha` (an upsert: written again, it changes nothing).
    async fn put_chunk(&self, sha: &str, n: i64, data: Vec<u8>) -> io::Result<()> {
        let data = Binary {
            subtype: BinarySubtype::Generic,
            bytes: data,
        };
        self.chunks
            .replace_one(
                doc! {"files_id": sha, "n": n},
                doc! {"files_id": sha, "n": n, "data": Bson::Binary(data)},
            )
            .with_options(ReplaceOptions::builder().upsert(true).build())
            .await
            .map_err(io_error)?;
        Ok(())
    }

    /// Marks blob `sha` of `length` bytes whole: its chunks are all written.
    async fn put_file(&self, sha: &str, length: u64) -> io::Result<()> {
        let file = FileDoc {
            sha: sha.to_string(),
            length: i64::try_from(length).map_err(io_error)?,
            chunk_size: CHUNK_BYTES as i32,
            upload_date: bson::DateTime::now(),
        };
        self.files
            .replace_one(doc! {"_id": sha}, file)
            .with_options(ReplaceOptions::builder().upsert(true).build())
            .await
            .map_err(io_error)?;
        Ok(())
    }
}

impl MongoAttachmentStore {
    /// The sizes of the records `filter` finds, summed here (a few numbers per upload;
    /// no aggregation pipeline needed of the server).
    async fn total(&self, filter: bson::Document) -> io::Result<u64> {
        let sizes: Vec<bson::Document> = self
            .records
            .clone_with_type::<bson::Document>()
            .find(filter)
            .projection(doc! {"size": 1, "_id": 0})
            .await
            .map_err(io_error)?
            .try_collect()
            .await
            .map_err(io_error)?;
        Ok(sizes
            .iter()
            .map(|d| {
                d.get_i64("size")
                    .or_else(|_| d.get_i32("size").map(i64::from))
                    .unwrap_or(0)
            })
            .map(|n| u64::try_from(n).unwrap_or(0))
            .sum())
    }

    /// Takes `size` bytes of counter `key` when it stays within `limit`: one conditional
    /// `$inc`, atomic on the server. The counter is made from the records `counted` finds
    /// when missing (by whichever node comes first: no upload takes from it before).
    async fn take(&self, key: &str, size: u64, limit: u64, counted: bson::Document) -> io::Result<bool> {
        let Some(room) = limit.checked_sub(size) else {
            return Ok(false);
        };
        if self
            .quotas
            .find_one(doc! {"_id": key})
            .await
            .map_err(io_error)?
            .is_none()
        {
            let bytes = as_i64(self.total(counted).await?);
            if let Err(e) = self.quotas.insert_one(doc! {"_id": key, "bytes": bytes}).await
                && !super::is_duplicate_key(&e)
            {
                return Err(io_error(e));
            }
        }
        let taken = self
            .quotas
            .update_one(
                doc! {"_id": key, "bytes": {"$lte": as_i64(room)}},
                doc! {"$inc": {"bytes": as_i64(size)}},
            )
            .await
            .map_err(io_error)?;
        Ok(taken.matched_count == 1)
    }

    /// Gives `size` bytes back to counter `key`.
    async fn give(&self, key: &str, size: u64) -> io::Result<()> {
        self.quotas
            .update_one(doc! {"_id": key}, doc! {"$inc": {"bytes": -as_i64(size)}})
            .await
            .map_err(io_error)?;
        Ok(())
    }
}

impl MongoAttachmentStore {
    /// Deletes each blob of `erased` (their records deleted already) that no record names.
    async fn delete_blobs_of(&self, erased: &[AttachmentRecord]) -> io::Result<()> {
        for sha in crate::attachments::store::blobs_of(erased) {
            let named = doc! {"$or": [{"sha256": &sha}, {"thumbnail": &sha}]};
            if self.records.count_documents(named).await.map_err(io_error)? > 0 {
                continue;
            }
            // The files document first: without it the blob is absent, whatever chunks
            // are left should this stop halfway (the erasure is asked again to finish).
            self.files.delete_one(doc! {"_id": &sha}).await.map_err(io_error)?;
            self.chunks
                .delete_many(doc! {"files_id": &sha})
                .await
                .map_err(io_error)?;
        }
        Ok(())
    }
}

/// The desk's link key: one document, inserted by whichever node comes first (a
/// duplicate key means another node was first: its key is read back).
async fn link_key(db: &Database) -> io::Result<Vec<u8>> {
    let keys: Collection<bson::Document> = db.collection("attachment_keys");
    let mut key = vec![0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut key);
    let fresh = doc! {"_id": "links", "key": Bson::Binary(Binary { subtype: BinarySubtype::Generic, bytes: key })};
    if let Err(e) = keys.insert_one(fresh).await
        && !super::is_duplicate_key(&e)
    {
        return Err(io_error(e));
    }
    let kept = keys
        .find_one(doc! {"_id": "links"})
        .await
        .map_err(io_error)?
        .ok_or_else(|| io_error("the link key is gone"))?;
    match kept.get("key") {
        Some(Bson::Binary(b)) if b.bytes.len() >= 32 => Ok(b.bytes.clone()),
        _ => Err(io_error("attachment_keys: the link key is not 32 bytes of binary")),
    }
}

fn check_sha(sha: &str) -> io::Result<()> {
    if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a SHA-256"));
    }
    Ok(())
}

#[async_trait]
impl AttachmentStore for MongoAttachmentStore {
    fn staging(&self) -> io::Result<NamedTempFile> {
        NamedTempFile::new()
    }

    async fn keep_file(&self, staged: NamedTempFile, sha: &str) -> io::Result<()> {
        check_sha(sha)?;
        if self.has_blob(sha).await? {
            return Ok(());
        }
        let mut file = tokio::fs::File::open(staged.path()).await?;
        let (mut n, mut length) = (0i64, 0u64);
        loop {
            // One chunk in memory at a time.
            let mut chunk = Vec::with_capacity(CHUNK_BYTES);
            while chunk.len() < CHUNK_BYTES {
                let read = (&mut file)
                    .take((CHUNK_BYTES - chunk.len()) as u64)
                    .read_to_end(&mut chunk)
                    .await?;
                if read == 0 {
                    break;
                }
            }
            if chunk.is_empty() {
                break;
            }
            length += chunk.len() as u64;
            let last = chunk.len() < CHUNK_BYTES;
            self.put_chunk(sha, n, chunk).await?;
            n += 1;
            if last {
                break;
            }
        }
        self.put_file(sha, length).await
    }

    async fn keep_bytes(&self, bytes: Vec<u8>, sha: &str) -> io::Result<()> {
        check_sha(sha)?;
        if self.has_blob(sha).await? {
            return Ok(());
        }
        for (n, chunk) in bytes.chunks(CHUNK_BYTES).enumerate() {
            self.put_chunk(sha, n as i64, chunk.to_vec()).await?;
        }
        self.put_file(sha, bytes.len() as u64).await
    }

    async fn put_record(&self, record: AttachmentRecord) -> io::Result<()> {
        let id = record.id.clone();
        let kept = RecordDoc {
            id: id.clone(),
            record: record.clone(),
        };
        self.records
            .replace_one(doc! {"_id": &id}, kept)
            .with_options(ReplaceOptions::builder().upsert(true).build())
            .await
            .map_err(io_error)?;
        self.known.insert(record);
        Ok(())
    }

    fn records(&self) -> &Records {
        &self.known
    }

    /// Always read from the database, never from memory: another node may have erased it.
    async fn load_record(&self, id: &str) -> io::Result<Option<AttachmentRecord>> {
        let found = self.records.find_one(doc! {"_id": id}).await.map_err(io_error)?;
        match found {
            Some(doc) => {
                self.known.insert(doc.record.clone());
                Ok(Some(doc.record))
            }
            None => {
                self.known.forget(id);
                Ok(None)
            }
        }
    }

    async fn content(&self, sha: &str) -> io::Result<Content> {
        check_sha(sha)?;
        let file = self
            .files
            .find_one(doc! {"_id": sha})
            .await
            .map_err(io_error)?
            .ok_or(io::ErrorKind::NotFound)?;
        let length = u64::try_from(file.length).map_err(io_error)?;
        let cursor = self
            .chunks
            .find(doc! {"files_id": sha})
            .sort(doc! {"n": 1})
            .await
            .map_err(io_error)?;
        // Chunks in order, each checked to be the next: a missing chunk ends the body
        // with an error rather than serving a file with a hole.
        let expected = length.div_ceil(CHUNK_BYTES as u64) as i64;
        let chunks = cursor.map_err(io_error).enumerate().map(move |(i, chunk)| {
            let chunk = chunk?;
            let n = chunk.get_i64("n").or_else(|_| chunk.get_i32("n").map(i64::from));
            if n != Ok(i as i64) || i as i64 >= expected {
                return Err(io_error(format!("chunk {i} of a blob is missing")));
            }
            match chunk.get("data") {
                Some(Bson::Binary(b)) => Ok(Bytes::from(b.bytes.clone())),
                _ => Err(io_error("a chunk without data")),
            }
        });
        Ok(Content::Stream(chunks.boxed(), length))
    }

    async fn erase_conversations(&self, ids: &[String]) -> io::Result<u64> {
        let filter = doc! {"conversation": {"$in": ids}};
        let erased: Vec<AttachmentRecord> = self
            .records
            .find(filter.clone())
            .await
            .map_err(io_error)?
            .map_ok(|doc| doc.record)
            .try_collect()
            .await
            .map_err(io_error)?;
        self.records.delete_many(filter).await.map_err(io_error)?;
        self.known.remove_conversations(ids);
        // The quotas count them no more: their days' bytes back, their conversations' gone.
        for record in &erased {
            self.give(&day_key(record.uploaded_at), record.size).await?;
        }
        let counters: Vec<String> = ids.iter().map(|id| conversation_key(id)).collect();
        self.quotas
            .delete_many(doc! {"_id": {"$in": counters}})
            .await
            .map_err(io_error)?;
        self.delete_blobs_of(&erased).await?;
        Ok(erased.len() as u64)
    }

    async fn remove_upload(&self, id: &str) -> io::Result<Option<AttachmentRecord>> {
        self.known.forget(id);
        let Some(found) = self.records.find_one(doc! {"_id": id}).await.map_err(io_error)? else {
            return Ok(None);
        };
        // Whoever deletes it gives its bytes back, once (two nodes asked at once: one does).
        let deleted = self.records.delete_one(doc! {"_id": id}).await.map_err(io_error)?;
        if deleted.deleted_count == 0 {
            return Ok(None);
        }
        let removed = found.record;
        self.give(&conversation_key(&removed.conversation), removed.size)
            .await?;
        self.give(&day_key(removed.uploaded_at), removed.size).await?;
        self.delete_blobs_of(std::slice::from_ref(&removed)).await?;
        Ok(Some(removed))
    }

    async fn usage(&self, conversation: &str, since: i64) -> io::Result<Usage> {
        Ok(Usage {
            conversation: self.total(doc! {"conversation": conversation}).await?,
            since: self.total(doc! {"uploaded_at": {"$gte": since}}).await?,
        })
    }

    async fn reserve(&self, wanted: &Reservation, quotas: Quotas) -> io::Result<Result<(), Exceeded>> {
        let conversation = conversation_key(&wanted.conversation);
        let counted = doc! {"conversation": &wanted.conversation};
        if !self
            .take(&conversation, wanted.size, quotas.conversation, counted)
            .await?
        {
            // The conversation's room may be held by its uploads under way that the day
            // will refuse: then the day is what this one passes too, and is named.
            let day = self
                .quotas
                .find_one(doc! {"_id": day_key(wanted.at)})
                .await
                .map_err(io_error)?;
            let day_bytes = day.map_or(0, |d| {
                d.get_i64("bytes")
                    .or_else(|_| d.get_i32("bytes").map(i64::from))
                    .unwrap_or(0)
            });
            if u64::try_from(day_bytes).unwrap_or(0).saturating_add(wanted.size) > quotas.day {
                return Ok(Err(("ATTACHMENT_DAY_MAX_BYTES", quotas.day)));
            }
            return Ok(Err(("ATTACHMENT_CONVERSATION_MAX_BYTES", quotas.conversation)));
        }
        let day = day_of(wanted.at);
        let counted = doc! {"uploaded_at": {"$gte": day, "$lt": day + 86_400_000}};
        let took_day = self.take(&day_key(wanted.at), wanted.size, quotas.day, counted).await;
        if !matches!(took_day, Ok(true)) {
            // The conversation's bytes go back: nothing is held when refused.
            self.give(&conversation, wanted.size).await?;
        }
        Ok(took_day?.then_some(()).ok_or(("ATTACHMENT_DAY_MAX_BYTES", quotas.day)))
    }

    async fn release(&self, held: &Reservation) -> io::Result<()> {
        self.give(&conversation_key(&held.conversation), held.size).await?;
        self.give(&day_key(held.at), held.size).await
    }
}
