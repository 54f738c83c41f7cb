//! The embedded store's archive journal: an append-only file that makes archive
//! batches durable with one `fdatasync` each, so redb can take them without an
//! fsync of its own.
//!
//! Why: a durable redb commit writes every B-tree page the batch touched (copy on
//! write: one 4 KiB leaf per conversation, plus branches and redb's own trees) and
//! syncs the file; measured on the bench machine that is 0.4 ms of CPU and 3.7 ms of
//! wall time for a batch of one message, 2.5 ms of CPU for a hundred. Appending the
//! same batch to a file and `fdatasync`ing it costs 0.13–0.17 ms of CPU whatever the
//! batch. So the embedded store appends each batch here (durable when [`Journal::append`]
//! returns, which is when the archive acknowledges it), applies it to redb with a
//! non-durable commit (visible to readers at once, on disk at the next durable
//! commit), and every [`CHECKPOINT_BYTES`] makes one durable redb commit and empties
//! the journal. Opening the store replays what the journal holds: events are applied
//! by their natural ids, so replaying one redb already has is harmless.
//!
//! Record format: `[payload length: u32 LE][first 8 bytes of SHA-256(payload)][payload]`,
//! the payload a JSON array of the batch's events (the archive events' serde form, as
//! the spool keeps them). A crash during an append leaves a torn last record: its
//! batch was never acknowledged, so reading stops at the first record that is short or
//! fails its checksum, and the file is cut back to the records before it.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::ArchiveEvent;

/// The journal's file name inside the data directory.
pub const FILE_NAME: &str = "archive-journal.log";

/// Journal size after which the store makes a durable redb commit and empties it:
/// ~16,000 short messages. It bounds the replay at start-up (well under a second) and the
/// disk the journal holds; larger means fewer durable redb commits.
pub const CHECKPOINT_BYTES: u64 = 4 << 20;

/// Bytes before each record's payload: length and checksum.
const HEADER: usize = 4 + 8;

/// The open journal. Its methods block on disk I/O: call them off the async threads.
pub struct Journal {
    file: File,
    path: PathBuf,
    /// Bytes in the file: every one belongs to a whole record.
    len: u64,
}

fn checksum(payload: &[u8]) -> [u8; 8] {
    let digest = Sha256::digest(payload);
    let mut out = [0u8; 8];
    out.copy_from_slice(&digest[..8]);
    out
}

impl Journal {
    /// Opens (creating if missing) the journal in `dir` and reads back the events it holds,
    /// oldest first. A torn last record (a crash during its append) is cut off.
    pub fn open(dir: &Path) -> Result<(Self, Vec<ArchiveEvent>), String> {
        let path = dir.join(FILE_NAME);
        let named = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(|e| named(&e))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(|e| named(&e))?;
        let (events, whole) = parse(&bytes).map_err(|e| named(&e))?;
        if whole < bytes.len() {
            tracing::warn!(
                journal = %path.display(),
                dropped_bytes = bytes.len() - whole,
                "the archive journal ends in a torn record (a crash during its write, never acknowledged); cutting it off"
            );
            file.set_len(whole as u64).map_err(|e| named(&e))?;
            file.sync_data().map_err(|e| named(&e))?;
        }
        let journal = Self {
            file,
            path,
            len: whole as u64,
        };
        Ok((journal, events))
    }

    /// Appends one batch and syncs it: the batch is on disk when this returns.
    pub fn append(&mut self, events: &[ArchiveEvent]) -> Result<(), String> {
        let payload = serde_json::to_vec(events).map_err(|e| self.error(&e))?;
        let length = u32::try_from(payload.len()).map_err(|_| self.error(&"a batch over 4 GiB"))?;
        let mut record = Vec::with_capacity(HEADER + payload.len());
        record.extend_from_slice(&length.to_le_bytes());
        record.extend_from_slice(&checksum(&payload));
        record.extend_from_slice(&payload);
        let written = self.file.write_all(&record).and_then(|()| self.file.sync_data());
        if let Err(e) = written {
            // Cut back a partial write, so later records never follow a torn one.
            let _ = self.file.set_len(self.len);
            return Err(self.error(&e));
        }
        self.len += record.len() as u64;
        Ok(())
    }

    /// Bytes held.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Forgets every record: call only once redb holds their events durably.
    pub fn clear(&mut self) -> Result<(), String> {
        // Not synced on purpose: should the cut be lost in a crash, the old records are
        // replayed once more, which is harmless.
        self.file.set_len(0).map_err(|e| self.error(&e))?;
        self.len = 0;
        Ok(())
    }

    fn error(&self, e: &dyn std::fmt::Display) -> String {
        format!("{}: {e}", self.path.display())
    }
}

/// The events of every whole record, and how many bytes those records take.
/// A record whose checksum passes but which does not decode is an error: that is not a
/// torn write but a file this build cannot read.
fn parse(bytes: &[u8]) -> Result<(Vec<ArchiveEvent>, usize), String> {
    let mut events = Vec::new();
    let mut at = 0;
    while bytes.len() - at >= HEADER {
        let length = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
        let Some(payload) = bytes.get(at + HEADER..at + HEADER + length) else {
            break;
        };
        if bytes[at + 4..at + HEADER] != checksum(payload) {
            break;
        }
        let batch: Vec<ArchiveEvent> =
            serde_json::from_slice(payload).map_err(|e| format!("record at byte {at} is unreadable: {e}"))?;
        events.extend(batch);
        at += HEADER + length;
    }
    Ok((events, at))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{ConversationClosed, EndReason, Side};

    fn closed(id: &str) -> ArchiveEvent {
        ArchiveEvent::Closed(ConversationClosed {
            id: id.into(),
            ended_at: 1,
            ended_by: Side::Agent,
            reason: EndReason::Ended,
        })
    }

    fn temp_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("switchboard-journal-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn batches_come_back_in_order_after_a_reopen_and_go_once_cleared() {
        let dir = temp_dir();
        {
            let (mut journal, events) = Journal::open(&dir).unwrap();
            assert!(events.is_empty());
            journal.append(&[closed("a"), closed("b")]).unwrap();
            journal.append(&[closed("c")]).unwrap();
        }
        let (mut journal, events) = Journal::open(&dir).unwrap();
        assert_eq!(events, vec![closed("a"), closed("b"), closed("c")]);
        journal.clear().unwrap();
        journal.append(&[closed("d")]).unwrap();
        drop(journal);
        let (_, events) = Journal::open(&dir).unwrap();
        assert_eq!(events, vec![closed("d")], "a cleared journal keeps only what came after");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_torn_last_record_is_cut_off_and_later_appends_are_read() {
        let dir = temp_dir();
        {
            let (mut journal, _) = Journal::open(&dir).unwrap();
            journal.append(&[closed("a")]).unwrap();
            journal.append(&[closed("b")]).unwrap();
        }
        let path = dir.join(FILE_NAME);
        let whole = std::fs::read(&path).unwrap();
        for cut in 1..whole.len() / 2 {
            // Every way the second record can be torn: short, or with a damaged byte.
            let first_len = whole.len() / 2;
            let mut torn = whole[..whole.len() - cut].to_vec();
            std::fs::write(&path, &torn).unwrap();
            let (_, events) = Journal::open(&dir).unwrap();
            assert_eq!(events, vec![closed("a")], "cut {cut} bytes");
            torn = whole.clone();
            torn[first_len + cut] ^= 0x55;
            std::fs::write(&path, &torn).unwrap();
            let (_, events) = Journal::open(&dir).unwrap();
            assert_eq!(events, vec![closed("a")], "damaged byte {cut} of the second record");
        }
        let (mut journal, _) = Journal::open(&dir).unwrap();
        journal.append(&[closed("c")]).unwrap();
        drop(journal);
        let (_, events) = Journal::open(&dir).unwrap();
        assert_eq!(events, vec![closed("a"), closed("c")], "appends after a cut torn record are read");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
