//! Attachments: files a customer or an agent sends in a chat.
//!
//! A file is uploaded over HTTP (`POST /api/attachments`, `http::attachments`), streamed
//! into a temporary file, its type told from its bytes ([`sniff`]), images written afresh
//! ([`images`]), scanned for viruses when a scanner is configured ([`scan`]), then kept by
//! content ([`store`]) with a record of who uploaded it for
//! which conversation. A `message` frame names uploads by id; the hub checks them
//! (`core::attachments`) and the message carries their [`AttachmentMeta`] to the peer and
//! into the archive. Files are fetched through links that expire ([`links`]).
//!
//! With `STORE=mongodb` the files and their records are in MongoDB
//! (`store::mongo::attachments`) and the link key is the desk's, so on several nodes
//! every node serves every file and checks every link.

pub mod images;
pub mod intake;
pub mod links;
pub mod pace;
pub mod scan;
pub mod sniff;
pub mod store;

use std::collections::HashSet;
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::{Settings, StoreMode};
use crate::core::attachments::{Upload, Uploader};
pub use store::{AttachmentStore, Content, Exceeded, Reservation, SharedAttachmentStore};

/// An attachment as a message carries it, on the wire and in the archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AttachmentMeta {
    pub id: String,
    /// The file's name as its sender's system gave it, cleaned (no folders, no control characters).
    pub name: String,
    /// The type told from the file's bytes (for images, of the image as written again).
    #[serde(rename = "type")]
    pub mime: String,
    /// Bytes, as kept.
    pub size: u64,
    /// Is there a thumbnail (images)?
    #[serde(default)]
    pub thumbnail: bool,
}

/// Files as a chat line in Redis carries them (a customer chat's or a buddy chat's log, a
/// node's channel): the JSON array of their metadata, empty for none.
pub fn files_json(files: &[AttachmentMeta]) -> String {
    if files.is_empty() {
        return String::new();
    }
    serde_json::to_string(files).expect("attachment metadata is JSON")
}

/// [`files_json`] read back. Written by a node of this desk; unreadable only if the log was
/// tampered with, and then `line` goes on without its files rather than not at all.
pub fn files_from_json(json: &str, line: impl std::fmt::Display) -> Vec<AttachmentMeta> {
    if json.is_empty() {
        return Vec::new();
    }
    serde_json::from_str(json).unwrap_or_else(|e| {
        tracing::warn!(%line, error = %e, "a chat line's files are unreadable");
        Vec::new()
    })
}

/// What is kept of an upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachmentRecord {
    pub id: String,
    /// The conversation (chat) id it was uploaded for.
    pub conversation: String,
    /// `customer`, `agent:<account id>`, or `buddy:<account id>` (a buddy chat's).
    pub uploader: String,
    pub name: String,
    pub mime: String,
    pub size: u64,
    /// The blob of its bytes.
    pub sha256: String,
    /// The blob of its thumbnail (images).
    pub thumbnail: Option<String>,
    pub uploaded_at: i64,
}

impl AttachmentRecord {
    pub fn meta(&self) -> AttachmentMeta {
        AttachmentMeta {
            id: self.id.clone(),
            name: self.name.clone(),
            mime: self.mime.clone(),
            size: self.size,
            thumbnail: self.thumbnail.is_some(),
        }
    }

    /// Is it an image written again by the hub (shown inline rather than downloaded)?
    pub fn is_rewritten_image(&self) -> bool {
        self.thumbnail.is_some() && matches!(self.mime.as_str(), "image/png" | "image/jpeg")
    }
}

/// The `uploader` field of a record by `who`.
pub fn uploader_tag(who: &Uploader) -> String {
    match who {
        Uploader::Customer => "customer".into(),
        Uploader::Agent(id) => format!("agent:{id}"),
        Uploader::Buddy(id) => format!("buddy:{id}"),
    }
}

/// The uploader an `uploader` field names ([`uploader_tag`] read back).
pub fn uploader_of(tag: &str) -> Option<Uploader> {
    if tag == "customer" {
        return Some(Uploader::Customer);
    }
    if let Some(id) = tag.strip_prefix("buddy:") {
        return Some(Uploader::Buddy(id.to_string()));
    }
    tag.strip_prefix("agent:").map(|id| Uploader::Agent(id.to_string()))
}

/// The SHA-256 of `bytes`, lower-case hex: a blob's name.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Attachments as the hub and the HTTP API share them: the store, the key of links,
/// the size limit.
#[derive(Clone)]
pub struct Attachments {
    pub store: SharedAttachmentStore,
    link_key: Arc<Vec<u8>>,
    pub max_bytes: u64,
    pub quotas: Quotas,
    /// Where uploads are hashed and written and images re-encoded, below the relay's priority.
    pub intake: intake::Intake,
    /// How fast all uploads together are read (`ATTACHMENT_UPLOAD_MB_PER_SEC`).
    pub pace: pace::UploadPace,
    /// The virus scanner every file goes through before it is kept (`CLAMD_URL`), if any.
    pub scanner: Option<scan::Scanner>,
    /// Uploads a message on this node named, and those being taken back.
    marks: Arc<Mutex<Marks>>,
}

/// Uploads a message on this node named since it started ([`Attachments::for_message`]),
/// and those their uploader is taking back ([`Attachments::take_back`]), under one lock:
/// on one node a file is either sent or taken back, never both.
#[derive(Default)]
struct Marks {
    sent: HashSet<String>,
    taken_back: HashSet<String>,
}

/// A file a message named already: its uploader cannot take it back.
#[derive(Debug)]
pub struct AlreadySent;

/// How much the files of one conversation, and of the whole desk in one UTC day, may
/// take together (`ATTACHMENT_CONVERSATION_MAX_BYTES`, `ATTACHMENT_DAY_MAX_BYTES`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quotas {
    pub conversation: u64,
    pub day: u64,
}

impl Quotas {
    /// No quota: what files kept without an upload (a mail's) count under.
    pub const NONE: Self = Self {
        conversation: u64::MAX,
        day: u64::MAX,
    };

    pub fn of(settings: &Settings) -> Self {
        Self {
            conversation: settings.attachments.conversation_max_bytes,
            day: settings.attachments.day_max_bytes,
        }
    }

    /// Which quota `size` more bytes would pass given `usage` (today's for the desk):
    /// the setting's name and its limit.
    pub fn exceeded(&self, usage: store::Usage, size: u64) -> Option<Exceeded> {
        if usage.conversation.saturating_add(size) > self.conversation {
            return Some(("ATTACHMENT_CONVERSATION_MAX_BYTES", self.conversation));
        }
        if usage.since.saturating_add(size) > self.day {
            return Some(("ATTACHMENT_DAY_MAX_BYTES", self.day));
        }
        None
    }
}

/// What keeping a re-encoded image gives its record: its type, its SHA-256, its size and
/// its thumbnail's SHA-256.
pub type KeptImage = (String, String, u64, Option<String>);

impl Attachments {
    /// Keeps a re-encoded image and its thumbnail, each under its SHA-256 (an upload's and
    /// a mail's files are kept the same way).
    pub async fn keep_image(&self, image: images::Rewritten) -> io::Result<KeptImage> {
        let (sha, thumb_sha) = (sha256_hex(&image.bytes), sha256_hex(&image.thumbnail));
        let size = image.bytes.len() as u64;
        self.store.keep_bytes(image.bytes, &sha).await?;
        self.store.keep_bytes(image.thumbnail, &thumb_sha).await?;
        Ok((image.mime.to_string(), sha, size, Some(thumb_sha)))
    }

    /// Opens the store `settings` call for: the store's own when it shares files between
    /// nodes (MongoDB), in memory for `STORE=memory`, else under `DATA_DIR/attachments`
    /// with its link key (made once, kept in `link.key`).
    /// `shared`: what the store gave for that (`Store::shared_attachments`), if anything.
    pub fn open(settings: &Settings, shared: Option<(SharedAttachmentStore, Vec<u8>)>) -> io::Result<Self> {
        let (store, link_key): (SharedAttachmentStore, Vec<u8>) = match shared {
            Some(shared) => shared,
            None if settings.store.mode == StoreMode::Memory => (Arc::new(store::MemoryStore::default()), random_key()),
            None => {
                let root = settings.store.data_dir.join("attachments");
                (
                    Arc::new(store::DiskStore::open(&root)?),
                    link_key(&root.join("link.key"))?,
                )
            }
        };
        Ok(Self {
            store,
            link_key: Arc::new(link_key),
            max_bytes: settings.attachments.max_bytes,
            quotas: Quotas::of(settings),
            intake: intake::Intake::default(),
            pace: pace::UploadPace::new(settings.attachments.upload_mb_per_sec),
            scanner: settings.clamd.clone().map(scan::Scanner::new),
            marks: Arc::default(),
        })
    }

    /// In memory, with a key of this process's, and no quota but the size of a file.
    pub fn in_memory(max_bytes: u64) -> Self {
        Self {
            store: Arc::new(store::MemoryStore::default()),
            link_key: Arc::new(random_key()),
            max_bytes,
            quotas: Quotas::NONE,
            intake: intake::Intake::default(),
            pace: pace::UploadPace::default(),
            scanner: None,
            marks: Arc::default(),
        }
    }

    pub fn link_key(&self) -> &[u8] {
        &self.link_key
    }

    /// Marks upload `id` as being taken back by its uploader, so that no message names it
    /// from now on (on this node): [`AlreadySent`] when a message here named it already.
    /// Until [`Self::taken_back`] says it is over, removed or not.
    pub fn take_back(&self, id: &str) -> Result<(), AlreadySent> {
        let mut marks = crate::poison::lock(&self.marks);
        if marks.sent.contains(id) {
            return Err(AlreadySent);
        }
        marks.taken_back.insert(id.to_string());
        Ok(())
    }

    /// The taking back of `id` is over: removed (no record is left for a message to
    /// name), or refused (a message may name it again).
    pub fn taken_back(&self, id: &str) {
        let mut marks = crate::poison::lock(&self.marks);
        marks.taken_back.remove(id);
    }

    /// The ids of a message `sender` sends in `conversation`, checked
    /// (`core::attachments::check_ids`), as the message carries them; marked as sent
    /// (their uploader can no longer take them back). A file being taken back is unknown.
    pub fn for_message(
        &self,
        ids: &[String],
        conversation: &str,
        sender: &Uploader,
    ) -> Result<Vec<AttachmentMeta>, crate::core::attachments::Refusal> {
        let mut marks = crate::poison::lock(&self.marks);
        let records: Vec<(AttachmentRecord, Option<Uploader>)> = ids
            .iter()
            .filter(|id| !marks.taken_back.contains(*id))
            .filter_map(|id| self.store.record(id))
            .map(|r| {
                let who = uploader_of(&r.uploader);
                (r, who)
            })
            .collect();
        let find = |id: &str| {
            records.iter().find(|(r, _)| r.id == id).and_then(|(r, who)| {
                Some(Upload {
                    conversation: &r.conversation,
                    uploader: who.as_ref()?,
                })
            })
        };
        let kept = crate::core::attachments::check_ids(ids, conversation, sender, find)?;
        marks.sent.extend(kept.iter().cloned());
        Ok(kept
            .iter()
            .filter_map(|id| records.iter().find(|(r, _)| &r.id == id))
            .map(|(r, _)| r.meta())
            .collect())
    }
}

/// Makes the records of `ids` known to this process ([`AttachmentStore::record`], what
/// the hub checks a message's files against without I/O): those it does not know yet are
/// read from the store. On one node that changes nothing (every record is in memory); with
/// `STORE=mongodb` it brings in uploads another node took. An id the store does not have
/// stays unknown and the hub refuses it; so does one the store could not be asked about
/// (logged). A frame naming more files than a message may carry is the hub's to refuse:
/// nothing is read for it.
pub async fn learn(store: &SharedAttachmentStore, ids: &[String]) {
    if ids.len() > crate::core::attachments::MAX_PER_MESSAGE {
        return;
    }
    for id in ids {
        if store.record(id).is_some() {
            continue;
        }
        // Bounded: a store that hangs (MongoDB frozen) must not hold the sender's frames.
        match tokio::time::timeout(LEARN_TIMEOUT, store.load_record(id)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(attachment = %id, error = %e, "attachment record not read from the store"),
            Err(_) => tracing::warn!(attachment = %id, "attachment record not read from the store: no answer in time"),
        }
    }
}

/// How long a message's sender waits for the store to give an upload's record that another
/// node took: the longest a connection's later frames wait behind it.
const LEARN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

fn random_key() -> Vec<u8> {
    use rand::RngCore;
    let mut key = vec![0u8; 32];
    rand::rng().fill_bytes(&mut key);
    key
}

/// The link key kept at `path`, made (and written durably, readable by the owner only)
/// on first start: links stay valid across a restart.
fn link_key(path: &Path) -> io::Result<Vec<u8>> {
    match std::fs::read(path) {
        Ok(key) if key.len() >= 32 => return Ok(key),
        Ok(_) => return Err(io::Error::other(format!("{}: a key of under 32 bytes", path.display()))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let key = random_key();
    let dir = path.parent().expect("the key has a directory");
    let mut staged = tempfile::NamedTempFile::new_in(dir)?;
    io::Write::write_all(&mut staged, &key)?;
    staged.as_file().sync_all()?;
    staged.persist(path).map_err(|e| e.error)?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(key)
}
