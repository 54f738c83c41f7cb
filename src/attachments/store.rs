//! Where uploaded files and their records are kept: [`AttachmentStore`], on disk under
//! `DATA_DIR` ([`DiskStore`], the default), in memory ([`MemoryStore`], `STORE=memory`),
//! or in MongoDB (`store::mongo::attachments`, `STORE=mongodb`, shared by every node).
//!
//! Files are content-addressed: a blob's name is the SHA-256 of its bytes, so the same
//! screenshot sent twice is kept once and a blob never changes once written. A blob is
//! written to a temporary file in the same directory tree, fsynced, renamed into place
//! and its directory fsynced, so after a crash a blob is either whole or absent, and once
//! an upload is answered its file survives a power loss (a message naming it is
//! acknowledged only later, so the acknowledgement still means durable). Records (who
//! uploaded what for which conversation) are small JSON files written the same way, all
//! read into memory at start: the hub checks a message's attachments without I/O.

use std::collections::HashMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use async_trait::async_trait;
use bytes::Bytes;
use tempfile::NamedTempFile;

use super::{AttachmentRecord, Quotas};

/// A kept file's bytes, to be sent.
pub enum Content {
    /// An open file and its length (streamed, never read whole).
    File(tokio::fs::File, u64),
    Bytes(Bytes),
    /// Chunks read one after another from a database, and the whole length.
    Stream(futures_util::stream::BoxStream<'static, io::Result<Bytes>>, u64),
}

#[async_trait]
pub trait AttachmentStore: Send + Sync {
    /// A new temporary file for an upload to be streamed into.
    fn staging(&self) -> io::Result<NamedTempFile>;
    /// Keeps the (complete, flushed) staged file as the blob `sha` (its SHA-256, hex).
    async fn keep_file(&self, staged: NamedTempFile, sha: &str) -> io::Result<()>;
    /// Keeps `bytes` as the blob `sha`.
    async fn keep_bytes(&self, bytes: Vec<u8>, sha: &str) -> io::Result<()>;
    /// Keeps a record, durably; its blobs must be kept already.
    async fn put_record(&self, record: AttachmentRecord) -> io::Result<()>;
    /// The records this process knows, by id (all of them for a store of one node; a
    /// shared store's, those written or loaded here), and, for a store of one node, the
    /// bytes held for uploads on their way.
    fn records(&self) -> &Records;
    /// The record of attachment `id` as this process knows it (no I/O: records are in
    /// memory; a shared store knows those written or loaded here).
    fn record(&self, id: &str) -> Option<AttachmentRecord> {
        self.records().get(id)
    }
    /// The record of attachment `id` as it is kept now: a shared store reads it (another
    /// node's upload, or another node's erasure), then known to [`Self::record`].
    async fn load_record(&self, id: &str) -> io::Result<Option<AttachmentRecord>> {
        Ok(self.record(id))
    }
    /// The bytes of blob `sha`.
    async fn content(&self, sha: &str) -> io::Result<Content>;
    /// Erases the attachments of conversations `ids` (a customer's erasure): their
    /// records, and each blob no other record names (the same bytes sent in another
    /// conversation stay for it). The number of attachments erased. Idempotent.
    async fn erase_conversations(&self, ids: &[String]) -> io::Result<u64>;
    /// Removes upload `id`, which its uploader took back before any line named it: its
    /// record, and each of its blobs no other record names; its bytes count against the
    /// quotas no more. The record removed; `None` when there was none (removed already).
    async fn remove_upload(&self, id: &str) -> io::Result<Option<AttachmentRecord>>;
    /// Bytes kept for `conversation`, and for the whole desk since `since` (Unix ms):
    /// what the quotas count. By default the [`Self::records`] of a store of one node; a
    /// shared store counts every node's.
    async fn usage(&self, conversation: &str, since: i64) -> io::Result<Usage> {
        Ok(self.records().usage(conversation, since))
    }
    /// Holds `wanted.size` bytes for upload `wanted.id` against `quotas` (the files of
    /// `wanted.conversation`, and the desk's of `wanted.at`'s UTC day), before its file
    /// is kept: the check and the hold are one step for every upload sharing the store
    /// (on every node, with MongoDB), so uploads at once never pass a quota together.
    /// `Ok(Err(..))`: the quota it would pass; nothing held. Held bytes count until the
    /// record of `wanted.id` is kept (its bytes then) or [`Self::release`] gives them back.
    /// By default held in the [`Self::records`] of a store of one node; a shared store
    /// holds them where every node counts them.
    async fn reserve(&self, wanted: &Reservation, quotas: Quotas) -> io::Result<Result<(), Exceeded>> {
        Ok(self.records().reserve(wanted, quotas))
    }
    /// Gives back what [`Self::reserve`] held for an upload that was not kept.
    async fn release(&self, held: &Reservation) -> io::Result<()> {
        self.records().release(&held.id);
        Ok(())
    }
}

/// Bytes an upload holds against the quotas from before its file is kept
/// ([`AttachmentStore::reserve`]): counted as kept until its record is, or given back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    /// The attachment id its record will have.
    pub id: String,
    pub conversation: String,
    /// Unix ms: its record's `uploaded_at` (the UTC day it counts in).
    pub at: i64,
    /// Bytes, as its record will say.
    pub size: u64,
}

/// A quota an upload would pass: its setting's name and its limit.
pub type Exceeded = (&'static str, u64);

const DAY_MS: i64 = 86_400_000;

/// The start (Unix ms) of the UTC day `at` (Unix ms) falls in: the day quota's day.
pub fn day_of(at: i64) -> i64 {
    at - at.rem_euclid(DAY_MS)
}

/// What the quotas count ([`AttachmentStore::usage`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub conversation: u64,
    pub since: u64,
}

/// Records by id, in memory: what the stores answer [`AttachmentStore::record`] from;
/// and, for the stores of one node, the bytes held for uploads on their way.
#[derive(Default)]
pub struct Records {
    by_id: RwLock<HashMap<String, AttachmentRecord>>,
    /// Held by [`Records::reserve`] until the upload's record is kept or it is released.
    /// Locked before `by_id` wherever both are.
    held: Mutex<Vec<Reservation>>,
}

impl Records {
    /// Keeps `record`; the bytes held for it ([`Records::reserve`]) are its record's now.
    pub fn insert(&self, record: AttachmentRecord) {
        let mut held = self.held.lock().expect("held lock");
        held.retain(|h| h.id != record.id);
        self.by_id
            .write()
            .expect("records lock")
            .insert(record.id.clone(), record);
    }

    pub fn get(&self, id: &str) -> Option<AttachmentRecord> {
        self.by_id.read().expect("records lock").get(id).cloned()
    }

    /// Forgets the record of `id`: the one it held.
    pub fn remove(&self, id: &str) -> Option<AttachmentRecord> {
        self.by_id.write().expect("records lock").remove(id)
    }

    pub fn forget(&self, id: &str) {
        self.by_id.write().expect("records lock").remove(id);
    }

    /// Forgets the records of conversations `ids`: those it held.
    pub fn remove_conversations(&self, ids: &[String]) -> Vec<AttachmentRecord> {
        let mut records = self.by_id.write().expect("records lock");
        let gone: Vec<String> = records
            .values()
            .filter(|r| ids.contains(&r.conversation))
            .map(|r| r.id.clone())
            .collect();
        gone.iter().filter_map(|id| records.remove(id)).collect()
    }

    pub fn usage(&self, conversation: &str, since: i64) -> Usage {
        let held = self.held.lock().expect("held lock");
        self.counted(&held, conversation, since)
    }

    /// Bytes of the records and of `held` for `conversation`, and since `since`.
    fn counted(&self, held: &[Reservation], conversation: &str, since: i64) -> Usage {
        let records = self.by_id.read().expect("records lock");
        let kept = records
            .values()
            .map(|r| (r.conversation.as_str(), r.uploaded_at, r.size));
        let on_the_way = held.iter().map(|h| (h.conversation.as_str(), h.at, h.size));
        let mut usage = Usage::default();
        for (of, at, size) in kept.chain(on_the_way) {
            if of == conversation {
                usage.conversation += size;
            }
            if at >= since {
                usage.since += size;
            }
        }
        usage
    }

    /// [`AttachmentStore::reserve`] for a store of one node: the check and the hold under
    /// one lock, so two uploads at once never both take the last room.
    pub fn reserve(&self, wanted: &Reservation, quotas: Quotas) -> Result<(), Exceeded> {
        let mut held = self.held.lock().expect("held lock");
        let usage = self.counted(&held, &wanted.conversation, day_of(wanted.at));
        if let Some(exceeded) = quotas.exceeded(usage, wanted.size) {
            return Err(exceeded);
        }
        held.push(wanted.clone());
        Ok(())
    }

    /// Gives back what [`Records::reserve`] held for upload `id`.
    pub fn release(&self, id: &str) {
        self.held.lock().expect("held lock").retain(|h| h.id != id);
    }

    /// Does any record name blob `sha` (as its file or its thumbnail)?
    pub fn names(&self, sha: &str) -> bool {
        self.by_id
            .read()
            .expect("records lock")
            .values()
            .any(|r| r.sha256 == sha || r.thumbnail.as_deref() == Some(sha))
    }
}

/// The blobs `erased` records named, each once.
pub fn blobs_of(erased: &[AttachmentRecord]) -> Vec<String> {
    let mut blobs: Vec<String> = erased
        .iter()
        .flat_map(|r| std::iter::once(r.sha256.clone()).chain(r.thumbnail.clone()))
        .collect();
    blobs.sort();
    blobs.dedup();
    blobs
}

/// Files under a directory (`DATA_DIR/attachments`): `blobs/<2 hex>/<sha256>`,
/// `records/<id>.json`, `tmp/` for uploads on their way.
pub struct DiskStore {
    root: PathBuf,
    records: Records,
}

impl DiskStore {
    /// Opens (creating) the tree under `root` and reads every record; leftovers of
    /// uploads cut short by a crash are removed.
    pub fn open(root: &Path) -> io::Result<Self> {
        for dir in ["blobs", "records", "tmp"] {
            std::fs::create_dir_all(root.join(dir))?;
        }
        for leftover in std::fs::read_dir(root.join("tmp"))? {
            let _ = std::fs::remove_file(leftover?.path());
        }
        let mut records = HashMap::new();
        for entry in std::fs::read_dir(root.join("records"))? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "json") {
                let record: AttachmentRecord = serde_json::from_slice(&std::fs::read(&path)?)
                    .map_err(|e| io::Error::other(format!("{}: {e}", path.display())))?;
                records.insert(record.id.clone(), record);
            }
        }
        Ok(Self {
            root: root.to_path_buf(),
            records: Records {
                by_id: RwLock::new(records),
                held: Mutex::default(),
            },
        })
    }

    fn blob_path(&self, sha: &str) -> io::Result<PathBuf> {
        if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a SHA-256"));
        }
        Ok(self.root.join("blobs").join(&sha[..2]).join(sha))
    }
}

/// Makes `staged` (written, not yet synced) the file `target`, durably: fsync, rename,
/// fsync of the directory (the rename itself is what a crash could lose).
fn settle(staged: NamedTempFile, target: &Path) -> io::Result<()> {
    let dir = target.parent().expect("a blob has a directory");
    std::fs::create_dir_all(dir)?;
    staged.as_file().sync_all()?;
    staged.persist(target).map_err(|e| e.error)?;
    std::fs::File::open(dir)?.sync_all()
}

#[async_trait]
impl AttachmentStore for DiskStore {
    fn staging(&self) -> io::Result<NamedTempFile> {
        NamedTempFile::new_in(self.root.join("tmp"))
    }

    async fn keep_file(&self, staged: NamedTempFile, sha: &str) -> io::Result<()> {
        let target = self.blob_path(sha)?;
        tokio::task::spawn_blocking(move || {
            // The same bytes are there already (content addressing): nothing to write.
            if target.exists() {
                return Ok(());
            }
            settle(staged, &target)
        })
        .await
        .map_err(io::Error::other)?
    }

    async fn keep_bytes(&self, bytes: Vec<u8>, sha: &str) -> io::Result<()> {
        let target = self.blob_path(sha)?;
        let mut staged = self.staging()?;
        tokio::task::spawn_blocking(move || {
            if target.exists() {
                return Ok(());
            }
            staged.write_all(&bytes)?;
            settle(staged, &target)
        })
        .await
        .map_err(io::Error::other)?
    }

    async fn put_record(&self, record: AttachmentRecord) -> io::Result<()> {
        let target = self.root.join("records").join(format!("{}.json", record.id));
        let mut staged = self.staging()?;
        let json = serde_json::to_vec(&record).map_err(io::Error::other)?;
        tokio::task::spawn_blocking(move || {
            staged.write_all(&json)?;
            settle(staged, &target)
        })
        .await
        .map_err(io::Error::other)??;
        self.records.insert(record);
        Ok(())
    }

    fn records(&self) -> &Records {
        &self.records
    }

    async fn content(&self, sha: &str) -> io::Result<Content> {
        let file = tokio::fs::File::open(self.blob_path(sha)?).await?;
        let len = file.metadata().await?.len();
        Ok(Content::File(file, len))
    }

    async fn erase_conversations(&self, ids: &[String]) -> io::Result<u64> {
        let erased = self.records.remove_conversations(ids);
        self.delete_files_of(&erased).await?;
        Ok(erased.len() as u64)
    }

    async fn remove_upload(&self, id: &str) -> io::Result<Option<AttachmentRecord>> {
        let Some(removed) = self.records.remove(id) else {
            return Ok(None);
        };
        self.delete_files_of(std::slice::from_ref(&removed)).await?;
        Ok(Some(removed))
    }
}

impl DiskStore {
    /// Deletes the record files of `erased` (forgotten in memory already) and each of
    /// their blobs no record left names.
    async fn delete_files_of(&self, erased: &[AttachmentRecord]) -> io::Result<()> {
        // Every record is in memory: a blob no record left names is nobody's.
        let blobs: Vec<PathBuf> = blobs_of(erased)
            .into_iter()
            .filter(|sha| !self.records.names(sha))
            .map(|sha| self.blob_path(&sha))
            .collect::<io::Result<_>>()?;
        let records: Vec<PathBuf> = erased
            .iter()
            .map(|r| self.root.join("records").join(format!("{}.json", r.id)))
            .collect();
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || {
            // Records first: a crash between leaves a blob nobody names, never a record
            // naming a blob that is gone.
            for path in records.iter().chain(&blobs) {
                match std::fs::remove_file(path) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
            std::fs::File::open(root.join("records"))?.sync_all()
        })
        .await
        .map_err(io::Error::other)?
    }
}

/// Everything in memory: nothing survives a restart (`STORE=memory`, tests). Uploads
/// are still staged in a temporary file of the system's, not in memory.
#[derive(Default)]
pub struct MemoryStore {
    blobs: RwLock<HashMap<String, Bytes>>,
    records: Records,
}

#[async_trait]
impl AttachmentStore for MemoryStore {
    fn staging(&self) -> io::Result<NamedTempFile> {
        NamedTempFile::new()
    }

    async fn keep_file(&self, staged: NamedTempFile, sha: &str) -> io::Result<()> {
        let bytes = tokio::fs::read(staged.path()).await?;
        self.keep_bytes(bytes, sha).await
    }

    async fn keep_bytes(&self, bytes: Vec<u8>, sha: &str) -> io::Result<()> {
        self.blobs
            .write()
            .expect("blobs lock")
            .entry(sha.to_string())
            .or_insert_with(|| Bytes::from(bytes));
        Ok(())
    }

    async fn put_record(&self, record: AttachmentRecord) -> io::Result<()> {
        self.records.insert(record);
        Ok(())
    }

    fn records(&self) -> &Records {
        &self.records
    }

    async fn content(&self, sha: &str) -> io::Result<Content> {
        let blobs = self.blobs.read().expect("blobs lock");
        let bytes = blobs.get(sha).cloned().ok_or(io::ErrorKind::NotFound)?;
        Ok(Content::Bytes(bytes))
    }

    async fn erase_conversations(&self, ids: &[String]) -> io::Result<u64> {
        let erased = self.records.remove_conversations(ids);
        self.drop_blobs_of(&erased);
        Ok(erased.len() as u64)
    }

    async fn remove_upload(&self, id: &str) -> io::Result<Option<AttachmentRecord>> {
        let removed = self.records.remove(id);
        self.drop_blobs_of(removed.as_slice());
        Ok(removed)
    }
}

impl MemoryStore {
    /// Drops the blobs of `erased` (forgotten already) that no record left names.
    fn drop_blobs_of(&self, erased: &[AttachmentRecord]) {
        let mut blobs = self.blobs.write().expect("blobs lock");
        for sha in blobs_of(erased) {
            if !self.records.names(&sha) {
                blobs.remove(&sha);
            }
        }
    }
}

/// A shared handle to either store.
pub type SharedAttachmentStore = Arc<dyn AttachmentStore>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attachments::{AttachmentRecord, sha256_hex};

    fn record(id: &str, sha: &str) -> AttachmentRecord {
        AttachmentRecord {
            id: id.into(),
            conversation: "c1".into(),
            uploader: "customer".into(),
            name: "a.txt".into(),
            mime: "text/plain; charset=utf-8".into(),
            size: 5,
            sha256: sha.into(),
            thumbnail: None,
            uploaded_at: 1,
        }
    }

    #[tokio::test]
    async fn a_kept_file_and_its_record_are_there_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let sha = sha256_hex(b"hello");
        {
            let store = DiskStore::open(dir.path()).unwrap();
            let mut staged = store.staging().unwrap();
            staged.write_all(b"hello").unwrap();
            store.keep_file(staged, &sha).await.unwrap();
            store.put_record(record("a1", &sha)).await.unwrap();
            // Kept once by content: the same bytes again change nothing.
            store.keep_bytes(b"hello".to_vec(), &sha).await.unwrap();
        }
        let reopened = DiskStore::open(dir.path()).unwrap();
        assert_eq!(reopened.record("a1"), Some(record("a1", &sha)));
        let Content::File(_, len) = reopened.content(&sha).await.unwrap() else {
            panic!("a file");
        };
        assert_eq!(len, 5);
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0,
            "nothing left staged"
        );
        assert!(reopened.content("../../etc/passwd").await.is_err());
    }
}
