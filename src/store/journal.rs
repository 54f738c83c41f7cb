//! The embedded store's archive journal: an append-only file that makes archive
//! batches durable with one `fdatasync` each, so redb can take them without an
//! fsync of its own.
//!
//! Why: a durable redb commit writes every B-tree page the batch touched (copy on
//! write: one 4 KiB leaf per conversation, plus branches and redb's own trees) and
//! syncs the file; measured on the bench machine that is 0.4 ms of CPU and 3.7 ms of
//! wall time for a batch of one message, 2.5 ms of CPU for a hundred. Writing the
//! same batch to a file and `fdatasync`ing it costs 0.1–0.17 ms of CPU whatever the
//! batch. So the embedded store writes each batch here (durable when [`Journal::append`]
//! returns, which is when the archive acknowledges it), folds many batches into redb in
//! one non-durable commit (on disk at the next durable commit), and once the journal
//! is full makes one durable redb commit and starts the journal again. Opening the
//! store replays what the journal holds: events are applied by their natural ids, so
//! replaying one redb already has is harmless.
//!
//! The file is written full of zeros once ([`FILE_BYTES`]) and records are written in
//! place: an `fdatasync` then flushes data only, with no file size, block allocation or
//! inode to write (those were a third of its cost, profiled). Starting again after a
//! checkpoint writes from offset 0 with the next generation number, so no truncation is
//! needed; reading stops at the first record of another generation.
//!
//! Record format: `[payload length: u32 LE][generation: u32 LE][first 8 bytes of
//! SHA-256(generation, payload)][payload]`, the payload the batch's events (see
//! [`payload`]: chat messages in binary, the rest and older files' whole
//! batches as JSON). A crash during a write leaves a
//! torn last record: its batch was never acknowledged, so reading stops at the first
//! record that is short, fails its checksum or belongs to another generation.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::ArchiveEvent;

mod payload;

pub use payload::Decoded;

/// The journal's file name inside the data directory.
pub const FILE_NAME: &str = "archive-journal.log";
/// The second journal's: the two take turns, so one is checkpointed while the other is
/// appended to (see `embedded::Archiving`).
pub const SECOND_FILE_NAME: &str = "archive-journal-2.log";

/// The journal file's size, written once. A batch beyond it still goes in (the file grows).
pub const FILE_BYTES: u64 = 8 << 20;

/// Journal bytes after which the store checkpoints (one durable redb commit) and starts
/// the journal again: ~16,000 short messages. Half the file, so a whole batch (the archive
/// writer's largest is ~2,000 events) still fits after it. It bounds the replay at
/// start-up (well under a second).
pub const CHECKPOINT_BYTES: u64 = FILE_BYTES / 2;

/// Bytes before each record's payload: length, generation and checksum.
const HEADER: usize = 4 + 4 + 8;

/// The open journal. Its methods block on disk I/O: call them off the async threads.
pub struct Journal {
    file: File,
    path: PathBuf,
    /// The generation records are written with now.
    generation: u32,
    /// Where the next record goes: every byte before it belongs to a whole record.
    len: u64,
}

/// One batch as the journal writes it: the header's place, then the payload. Encoded
/// once, before the append (off the blocking pool, from the caller's borrowed events),
/// and kept until the fold decodes it.
pub struct Record {
    bytes: Vec<u8>,
    events: usize,
}

impl Record {
    /// Encodes a batch.
    pub fn encode(events: &[ArchiveEvent]) -> Result<Self, String> {
        // Room for short messages (~100 bytes of text, ids and times) without regrowing.
        let mut bytes = Vec::with_capacity(HEADER + 1 + events.len() * 192);
        bytes.resize(HEADER, 0);
        payload::encode_into(events, &mut bytes)?;
        Ok(Self {
            bytes,
            events: events.len(),
        })
    }

    /// How many events it holds.
    pub fn events(&self) -> usize {
        self.events
    }

    /// Appends the batch to `out`, its chat messages borrowed from the record.
    pub fn decode_into<'a>(&'a self, out: &mut Vec<Decoded<'a>>) -> Result<(), String> {
        payload::decode_into(&self.bytes[HEADER..], out)
    }
}

fn checksum(generation: u32, payload: &[u8]) -> [u8; 8] {
    let digest = Sha256::new()
        .chain_update(generation.to_le_bytes())
        .chain_update(payload)
        .finalize();
    let mut out = [0u8; 8];
    out.copy_from_slice(&digest[..8]);
    out
}

impl Journal {
    /// Opens (creating if missing) the journal in `dir` and reads back the events it holds,
    /// oldest first. The caller must make them durable elsewhere, then [`Journal::clear`].
    pub fn open(dir: &Path) -> Result<(Self, Vec<ArchiveEvent>), String> {
        Self::open_file(dir, FILE_NAME)
    }

    /// As [`Journal::open`], for the journal file `name` in `dir`.
    pub fn open_file(dir: &Path, name: &str) -> Result<(Self, Vec<ArchiveEvent>), String> {
        let path = dir.join(name);
        let named = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| named(&e))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(|e| named(&e))?;
        let (events, generation, whole) = parse(&bytes).map_err(|e| named(&e))?;
        if (bytes.len() as u64) < FILE_BYTES {
            // Written once with zeros (not just sized): in-place writes then allocate nothing.
            file.seek(SeekFrom::Start(bytes.len() as u64)).map_err(|e| named(&e))?;
            let zeros = vec![0u8; (FILE_BYTES - bytes.len() as u64) as usize];
            file.write_all(&zeros)
                .and_then(|()| file.sync_all())
                .map_err(|e| named(&e))?;
        }
        let journal = Self {
            file,
            path,
            generation,
            len: whole as u64,
        };
        Ok((journal, events))
    }

    /// Writes one batch and syncs it: the batch is on disk when this returns (the tests';
    /// the store encodes first and calls [`Journal::append_record`]).
    #[cfg(test)]
    pub fn append(&mut self, events: &[ArchiveEvent]) -> Result<(), String> {
        let mut record = Record::encode(events).map_err(|e| self.error(&e))?;
        self.append_record(&mut record)
    }

    /// Writes one encoded batch and syncs it: the batch is on disk when this returns. The
    /// record is kept by the caller until it is folded (its payload decodes to the batch),
    /// so the batch's events need no copy of their own alongside it.
    pub fn append_record(&mut self, record: &mut Record) -> Result<(), String> {
        let bytes = &mut record.bytes;
        let length = u32::try_from(bytes.len() - HEADER).map_err(|_| self.error(&"a batch over 4 GiB"))?;
        let sum = checksum(self.generation, &bytes[HEADER..]);
        bytes[..4].copy_from_slice(&length.to_le_bytes());
        bytes[4..8].copy_from_slice(&self.generation.to_le_bytes());
        bytes[8..HEADER].copy_from_slice(&sum);
        self.file
            .write_all_at(bytes, self.len)
            .and_then(|()| self.file.sync_data())
            .map_err(|e| self.error(&e))?;
        self.len += bytes.len() as u64;
        Ok(())
    }

    /// Bytes held.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Forgets every record: call only once their events are durable elsewhere. Nothing
    /// is written: the next record starts at offset 0 in the next generation, which ends
    /// reading there (should it be torn, the old records it overwrote are not read either).
    pub fn clear(&mut self) {
        self.generation = self.generation.wrapping_add(1);
        self.len = 0;
    }

    fn error(&self, e: &dyn std::fmt::Display) -> String {
        format!("{}: {e}", self.path.display())
    }
}

/// The events of the whole records of the first record's generation, the generation to
/// write next, and how many bytes those records take. A record whose checksum passes but
/// which does not decode is an error: that is not a torn write but a file this build
/// cannot read.
fn parse(bytes: &[u8]) -> Result<(Vec<ArchiveEvent>, u32, usize), String> {
    let mut events = Vec::new();
    let mut generation = None;
    let mut at = 0;
    while bytes.len() - at >= HEADER {
        let length = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
        let record_generation = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().expect("4 bytes"));
        if generation.is_some_and(|g| g != record_generation) {
            break;
        }
        let Some(payload) = bytes.get(at + HEADER..at + HEADER + length) else {
            break;
        };
        if bytes[at + 8..at + HEADER] != checksum(record_generation, payload) {
            break;
        }
        let batch = payload::decode(payload).map_err(|e| format!("record at byte {at} is unreadable: {e}"))?;
        events.extend(batch);
        generation = Some(record_generation);
        at += HEADER + length;
    }
    // No whole first record: a fresh file, or a crash tore the first record of a new
    // generation. Older records may still lie further on, of any earlier generation, so
    // the next one must not be a small number that one of them could carry (reading would
    // run on into an old record that happens to start where the new ones end, and replay
    // it): a random one makes that a 1-in-2^32 chance, and even then the replay is of
    // events redb already holds.
    Ok((events, generation.unwrap_or_else(rand::random), at))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn closed(id: &str) -> ArchiveEvent {
        ArchiveEvent::closed_for_tests(id)
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
        assert_eq!(std::fs::metadata(dir.join(FILE_NAME)).unwrap().len(), FILE_BYTES);
        let (mut journal, events) = Journal::open(&dir).unwrap();
        assert_eq!(events, vec![closed("a"), closed("b"), closed("c")]);
        // As the store does after replaying them: the next record starts a new generation.
        journal.clear();
        journal.append(&[closed("d")]).unwrap();
        drop(journal);
        let (mut journal, events) = Journal::open(&dir).unwrap();
        assert_eq!(events, vec![closed("d")], "the older generation after it is not read");
        journal.clear();
        drop(journal);
        let (_, events) = Journal::open(&dir).unwrap();
        assert_eq!(
            events,
            vec![closed("d")],
            "a clear that wrote nothing replays again, harmlessly"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn after_a_torn_first_record_old_records_of_a_low_generation_are_not_replayed() {
        let dir = temp_dir();
        let path = dir.join(FILE_NAME);
        {
            let (mut journal, _) = Journal::open(&dir).unwrap();
            journal.append(&[closed("a")]).unwrap();
            journal.append(&[closed("b")]).unwrap();
            journal.clear(); // a checkpoint: a and b are in redb
            journal.append(&[closed("c")]).unwrap();
            journal.append(&[closed("d")]).unwrap();
            journal.clear(); // another: c and d are in redb
            journal.append(&[closed("f")]).unwrap();
        }
        // The crash tore f, the first record of its generation.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[HEADER] ^= 0x55;
        std::fs::write(&path, &bytes).unwrap();
        for _ in 0..20 {
            let (mut journal, events) = Journal::open(&dir).unwrap();
            assert!(events.is_empty(), "f was never acknowledged");
            journal.clear();
            journal.append(&[closed("g")]).unwrap();
            drop(journal);
            let (_, events) = Journal::open(&dir).unwrap();
            assert_eq!(
                events,
                vec![closed("g")],
                "d (checkpointed long ago) must not come back"
            );
            // Tear g too, for the next round.
            let mut bytes = std::fs::read(&path).unwrap();
            bytes[HEADER] ^= 0x55;
            std::fs::write(&path, &bytes).unwrap();
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A journal an older build left (JSON payloads) replays after an upgrade.
    #[test]
    fn a_journal_of_json_records_written_by_an_older_build_replays() {
        let dir = temp_dir();
        let json = serde_json::to_vec(&[closed("old-a"), closed("old-b")]).unwrap();
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&(json.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&7u32.to_le_bytes());
        bytes.extend_from_slice(&checksum(7, &json));
        bytes.extend_from_slice(&json);
        std::fs::write(dir.join(FILE_NAME), &bytes).unwrap();
        let (mut journal, events) = Journal::open(&dir).unwrap();
        assert_eq!(events, vec![closed("old-a"), closed("old-b")]);
        journal.append(&[closed("new")]).unwrap();
        drop(journal);
        let (_, events) = Journal::open(&dir).unwrap();
        assert_eq!(events, vec![closed("old-a"), closed("old-b"), closed("new")]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_torn_last_record_is_not_read_and_a_new_generation_follows_it() {
        let dir = temp_dir();
        {
            let (mut journal, _) = Journal::open(&dir).unwrap();
            journal.append(&[closed("a")]).unwrap();
            journal.append(&[closed("b")]).unwrap();
        }
        let path = dir.join(FILE_NAME);
        let whole = std::fs::read(&path).unwrap();
        let mut one = Vec::new();
        payload::encode_into(&[closed("a")], &mut one).unwrap();
        let record = HEADER + one.len();
        for k in 0..record {
            // The second record short (its end never written: still zeros) from byte k on ...
            let mut torn = whole.clone();
            torn[record + k..2 * record].fill(0);
            std::fs::write(&path, &torn).unwrap();
            let (_, events) = Journal::open(&dir).unwrap();
            assert_eq!(events, vec![closed("a")], "second record written up to byte {k}");
            // ... or with byte k damaged.
            let mut torn = whole.clone();
            torn[record + k] ^= 0x55;
            std::fs::write(&path, &torn).unwrap();
            let (_, events) = Journal::open(&dir).unwrap();
            assert_eq!(events, vec![closed("a")], "byte {k} of the second record damaged");
        }
        let (mut journal, _) = Journal::open(&dir).unwrap();
        journal.clear();
        journal.append(&[closed("c")]).unwrap();
        drop(journal);
        let (_, events) = Journal::open(&dir).unwrap();
        assert_eq!(events, vec![closed("c")]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
