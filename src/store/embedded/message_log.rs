//! Archived messages laid out so that redb's B-tree leaves fill (schema 3).
//!
//! Schema 2 keyed each message `(conversation id, seq, message id)`. With 100
//! conversations appending interleaved, every insert landed in the middle of the tree,
//! leaves split evenly and stayed about half full: ~190 B of row took ~380 B of pages
//! (and ~670 B of file once freed pages waiting for a durable commit were counted).
//!
//! Now a message is two rows:
//! - `message_log`: `global position -> [0x02][side][at: i64 LE][id length: u16 LE][id]
//!   [text]`, or since schema 4, for an id that is a UUID as the hub writes them,
//!   `[0x03][side][at: i64 LE][the UUID's 16 bytes][text]`. Positions only grow, so every insert goes to the rightmost leaf, which redb
//!   keeps packed and starts a new one beside when full: the leaves fill completely.
//! - `message_index`: `(conversation number, first seq) -> (first position, count)`: one
//!   fixed-width row per *run*, messages of one conversation with consecutive seqs at
//!   consecutive positions (a number stands for the conversation's id, in
//!   `conversation_numbers`). An archive batch appends each conversation's messages
//!   together (see `apply`), so a run is about a batch's share of a conversation, and the
//!   interleaved part of the file is a few bytes a message even half full. It also makes
//!   the append idempotent: a seq names one message of its conversation, and a seq inside
//!   a run is taken (replaying the journal adds nothing twice).
//!
//! Since schema 6 a fold writes a conversation's consecutive messages of one
//! batch as one *block* row, `[0x04][count: u32 LE]` then each message's record as
//! `[length: u32 LE][record]`, at the first of the `count` positions they stand for (the
//! rest stay empty). Position arithmetic is unchanged, so a run may hold single records
//! and blocks, and a schema 5 file reads as it is; what changed is one B-tree insert per
//! conversation and fold instead of one per message (redb rebuilds the leaf it inserts
//! into, so that insert was most of a fold's cost with many conversations).
//!
//! Reading a conversation is one range scan of the index and one of the log per run.

use redb::{ReadableTable, TableDefinition};

use super::super::{ArchivedMessage, ArchivedMessageRef, Side, StoreError, StoreResult};
use super::{META, message_value, unavailable};

/// Global position -> the message's record ([`encode`]).
pub const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("message_log");
/// (conversation number, first seq) -> (first position in [`LOG`], count): one run.
pub const INDEX: TableDefinition<(u64, u64), (u64, u64)> = TableDefinition::new("message_index");
/// Conversation id -> its number in [`INDEX`] (given when the conversation opens).
pub const NUMBERS: TableDefinition<&str, u64> = TableDefinition::new("conversation_numbers");
/// Schema 2's table, `(conversation id, seq, message id) -> value`; migrated, then dropped.
pub const MESSAGES_V2: TableDefinition<(&str, u64, &str), &[u8]> = TableDefinition::new("messages");

const NEXT_POSITION: &str = "next_message_position";
const NEXT_NUMBER: &str = "next_conversation_number";

/// The first byte of a log record with its id as text (schema 2's binary row value was
/// 0x01, JSON `{`).
const LOGGED_V1: u8 = 0x02;
/// Bytes before the id: format, side, time, id length.
const HEADER: usize = 1 + 1 + 8 + 2;
/// The first byte of a log record with its id as a UUID's 16 bytes (schema 4):
/// `[0x03][side][at: i64 LE][id: 16 bytes][text: UTF-8, to the end]`. The hub's ids are
/// UUIDs written hyphenated in lower case (36 characters), so this takes 22 bytes less a
/// message than the id as text; an id spelt any other way is stored as text
/// ([`LOGGED_V1`]), so every id reads back exactly as it was written.
const LOGGED_UUID: u8 = 0x03;
/// Bytes before the text of a [`LOGGED_UUID`] record: format, side, time, id.
const UUID_HEADER: usize = 1 + 1 + 8 + 16;
/// The first byte of a block (schema 6): several messages of consecutive seqs in one row,
/// `[0x04][count: u32 LE]` then `count` times `[length: u32 LE][record]`, each record a
/// [`LOGGED_V1`] or [`LOGGED_UUID`] one. The row stands for `count` positions.
const LOGGED_BLOCK: u8 = 0x04;
/// The first byte of the record of a message that carries files or a `via`: `[0x05]` then
/// the message as JSON (its seq too, read back from the index's key). Such messages are
/// few beside the text lines, which keep their compact records.
const LOGGED_JSON: u8 = 0x05;
/// Bytes before a block's first record: format, count.
const BLOCK_HEADER: usize = 1 + 4;
/// The most messages one block holds.
const BLOCK_MAX: usize = 256;
/// The most bytes a block's records take (a message longer than this is a row of its
/// own). redb keeps whole values in its leaves, 4 KiB pages: rows of a quarter page fill
/// them as single records did (`an_archived_message_takes_a_bounded_share_of_the_file`:
/// 145 B of pages a message, as before blocks); blocks of ten 130-byte messages left a
/// part of each leaf empty (164 B, and twice the file).
const BLOCK_BYTES: usize = 1024;

/// At most the bytes `message` takes in a block: its record and its length.
fn stored_bytes(message: &ArchivedMessageRef<'_>) -> usize {
    if !message.is_plain() {
        return 4 + 1 + serde_json::to_vec(message).map_or(0, |json| json.len());
    }
    4 + HEADER + message.id.len() + message.text.len()
}

/// The id's 16 bytes if it is a UUID in the hub's spelling (hyphenated, lower case),
/// the one spelling [`decode`] gives back.
fn uuid_bytes(id: &str) -> Option<[u8; 16]> {
    if id.len() != uuid::fmt::Hyphenated::LENGTH {
        return None;
    }
    let parsed = uuid::Uuid::try_parse(id).ok()?;
    let mut spelt = uuid::Uuid::encode_buffer();
    (parsed.hyphenated().encode_lower(&mut spelt) == id).then(|| *parsed.as_bytes())
}

pub fn create_tables(tx: &redb::WriteTransaction) -> StoreResult<()> {
    tx.open_table(LOG).map_err(unavailable)?;
    tx.open_table(INDEX).map_err(unavailable)?;
    tx.open_table(NUMBERS).map_err(unavailable)?;
    Ok(())
}

/// The log record of `message` (its seq lives in the index's key).
#[cfg(test)]
pub fn encode(message: &ArchivedMessage) -> StoreResult<Vec<u8>> {
    let mut out = Vec::with_capacity(HEADER + message.id.len() + message.text.len());
    encode_into(&message.borrowed(), &mut out)?;
    Ok(out)
}

/// As [`encode`], appending to `out` (a buffer reused across a batch: one allocation
/// per fold, not one per message).
fn encode_into(message: &ArchivedMessageRef<'_>, out: &mut Vec<u8>) -> StoreResult<()> {
    if !message.is_plain() {
        out.push(LOGGED_JSON);
        return serde_json::to_writer(&mut *out, message).map_err(|e| unavailable(e.to_string()));
    }
    let id_len = u16::try_from(message.id.len()).map_err(|_| {
        unavailable(format!(
            "a message id of {} bytes is too long to store",
            message.id.len()
        ))
    })?;
    if let Some(id) = uuid_bytes(message.id) {
        out.reserve(UUID_HEADER + message.text.len());
        out.push(LOGGED_UUID);
        out.push(message_value::side_byte(message.from));
        out.extend_from_slice(&message.at.to_le_bytes());
        out.extend_from_slice(&id);
        out.extend_from_slice(message.text.as_bytes());
        return Ok(());
    }
    out.reserve(HEADER + message.id.len() + message.text.len());
    out.push(LOGGED_V1);
    out.push(message_value::side_byte(message.from));
    out.extend_from_slice(&message.at.to_le_bytes());
    out.extend_from_slice(&id_len.to_le_bytes());
    out.extend_from_slice(message.id.as_bytes());
    out.extend_from_slice(message.text.as_bytes());
    Ok(())
}

/// The message at `seq` whose log record is `value`.
pub fn decode(seq: u64, value: &[u8]) -> StoreResult<ArchivedMessage> {
    let corrupt = |why: String| StoreError::Unavailable(format!("embedded store: corrupt message record: {why}"));
    if value.first() == Some(&LOGGED_JSON) {
        let mut message: ArchivedMessage =
            serde_json::from_slice(&value[1..]).map_err(|e| corrupt(format!("unreadable JSON record: {e}")))?;
        message.seq = seq;
        return Ok(message);
    }
    match value.first() {
        Some(&LOGGED_V1) if value.len() >= HEADER => {}
        Some(&LOGGED_UUID) if value.len() >= UUID_HEADER => {}
        Some(other @ (&LOGGED_V1 | &LOGGED_UUID)) => {
            return Err(corrupt(format!(
                "{} bytes is too short for a record of format {other:#04x}",
                value.len()
            )));
        }
        Some(other) if value.len() >= HEADER => {
            return Err(corrupt(format!(
                "record format {other:#04x} is not one this build reads ({LOGGED_V1:#04x}, {LOGGED_UUID:#04x})"
            )));
        }
        _ => return Err(corrupt(format!("{} bytes is too short", value.len()))),
    }
    let from: Side =
        message_value::side_of(value[1]).ok_or_else(|| corrupt(format!("unknown side byte {}", value[1])))?;
    let at = i64::from_le_bytes(value[2..10].try_into().expect("8 bytes"));
    if value[0] == LOGGED_UUID {
        let id = uuid::Uuid::from_bytes(value[10..UUID_HEADER].try_into().expect("16 bytes"));
        let text = std::str::from_utf8(&value[UUID_HEADER..]).map_err(|_| corrupt("text is not UTF-8".into()))?;
        let mut id_buffer = uuid::Uuid::encode_buffer();
        let id = id.hyphenated().encode_lower(&mut id_buffer);
        return Ok(ArchivedMessage::plain(&*id, seq, from, text, at));
    }
    let id_len = u16::from_le_bytes(value[10..12].try_into().expect("2 bytes")) as usize;
    let rest = &value[HEADER..];
    if rest.len() < id_len {
        return Err(corrupt("the id runs past the record".into()));
    }
    let id = std::str::from_utf8(&rest[..id_len]).map_err(|_| corrupt("id is not UTF-8".into()))?;
    let text = std::str::from_utf8(&rest[id_len..]).map_err(|_| corrupt("text is not UTF-8".into()))?;
    Ok(ArchivedMessage::plain(id, seq, from, text, at))
}

/// Appends the block of `messages` (consecutive seqs, at most [`BLOCK_MAX`]) to `out`.
fn encode_block_into(messages: &[ArchivedMessageRef<'_>], out: &mut Vec<u8>) -> StoreResult<()> {
    out.push(LOGGED_BLOCK);
    out.extend_from_slice(&(messages.len() as u32).to_le_bytes());
    for message in messages {
        let at = out.len();
        out.extend_from_slice(&[0; 4]);
        encode_into(message, out)?;
        let length = u32::try_from(out.len() - at - 4)
            .map_err(|_| unavailable("a message too long to store in a block".to_string()))?;
        out[at..at + 4].copy_from_slice(&length.to_le_bytes());
    }
    Ok(())
}

/// How many messages the log row `value` holds (a block's count, else one), without
/// decoding them.
fn messages_in_row(value: &[u8]) -> u64 {
    match value {
        [LOGGED_BLOCK, a, b, c, d, ..] => u64::from(u32::from_le_bytes([*a, *b, *c, *d])),
        _ => 1,
    }
}

/// Decodes the log row `value` (one record or a block), its first message at `seq`,
/// onto `out`; returns how many messages it held.
pub fn decode_row(seq: u64, value: &[u8], out: &mut Vec<ArchivedMessage>) -> StoreResult<u64> {
    if value.first() != Some(&LOGGED_BLOCK) {
        out.push(decode(seq, value)?);
        return Ok(1);
    }
    let corrupt = |why: &str| StoreError::Unavailable(format!("embedded store: corrupt message block: {why}"));
    if value.len() < BLOCK_HEADER {
        return Err(corrupt("too short for its count"));
    }
    let count = messages_in_row(value);
    let mut rest = &value[BLOCK_HEADER..];
    for offset in 0..count {
        let Some((length, after)) = rest.split_first_chunk::<4>() else {
            return Err(corrupt("a record's length runs past the block"));
        };
        let length = u32::from_le_bytes(*length) as usize;
        if after.len() < length {
            return Err(corrupt("a record runs past the block"));
        }
        let (record, next) = after.split_at(length);
        if record.first() == Some(&LOGGED_BLOCK) {
            return Err(corrupt("a block inside a block"));
        }
        out.push(decode(seq + offset, record)?);
        rest = next;
    }
    if !rest.is_empty() {
        return Err(corrupt("bytes after its last record"));
    }
    Ok(count)
}

/// The tables one archive apply writes, opened once for its whole batch.
pub struct Writer<'tx> {
    meta: redb::Table<'tx, &'static str, u64>,
    log: redb::Table<'tx, u64, &'static [u8]>,
    index: redb::Table<'tx, (u64, u64), (u64, u64)>,
    numbers: redb::Table<'tx, &'static str, u64>,
    next_position: u64,
    next_number: u64,
    /// The record being inserted, reused (see [`encode_into`]).
    record: Vec<u8>,
}

impl<'tx> Writer<'tx> {
    pub fn open(tx: &'tx redb::WriteTransaction) -> StoreResult<Self> {
        let meta = tx.open_table(META).map_err(unavailable)?;
        let counter = |name: &str| -> StoreResult<u64> {
            Ok(meta.get(name).map_err(unavailable)?.map(|v| v.value()).unwrap_or(0))
        };
        let (next_position, next_number) = (counter(NEXT_POSITION)?, counter(NEXT_NUMBER)?);
        Ok(Self {
            meta,
            log: tx.open_table(LOG).map_err(unavailable)?,
            index: tx.open_table(INDEX).map_err(unavailable)?,
            numbers: tx.open_table(NUMBERS).map_err(unavailable)?,
            next_position,
            next_number,
            record: Vec::new(),
        })
    }

    /// Gives `conversation_id` a number if it has none.
    pub fn number(&mut self, conversation_id: &str) -> StoreResult<u64> {
        if let Some(number) = self.numbers.get(conversation_id).map_err(unavailable)? {
            return Ok(number.value());
        }
        let number = self.next_number;
        self.next_number += 1;
        self.numbers.insert(conversation_id, number).map_err(unavailable)?;
        Ok(number)
    }

    /// Appends `message` to the conversation numbered `number` unless its seq is taken
    /// (a retry or a replay: a seq names one message). It extends the run ending just
    /// before it when that run ends at the log's last position, else starts a run. True
    /// when it was appended.
    pub fn append(&mut self, number: u64, message: &ArchivedMessageRef<'_>) -> StoreResult<bool> {
        let seq = message.seq;
        let before = self
            .index
            .range((number, 0u64)..=(number, seq))
            .map_err(unavailable)?
            .next_back()
            .transpose()
            .map_err(unavailable)?
            .map(|(key, run)| (key.value().1, run.value()));
        if let Some((first, (_, count))) = before
            && seq < first + count
        {
            return Ok(false);
        }
        let position = self.next_position;
        self.next_position += 1;
        self.record.clear();
        encode_into(message, &mut self.record)?;
        self.log.insert(position, self.record.as_slice()).map_err(unavailable)?;
        match before {
            Some((first, (start, count))) if first + count == seq && start + count == position => {
                self.index
                    .insert((number, first), (start, count + 1))
                    .map_err(unavailable)?;
            }
            _ => {
                self.index.insert((number, seq), (position, 1)).map_err(unavailable)?;
            }
        }
        Ok(true)
    }

    /// Appends one conversation's messages of a batch, `messages` sorted by seq (of one
    /// seq, the first is kept), with the effect of [`Writer::append`] on each in turn.
    /// The usual case, every seq beyond the conversation's last run (nothing is a retry),
    /// costs one index lookup and one index write per run, not three B-tree operations
    /// per message (that was most of a fold's CPU); otherwise message by message.
    /// Returns the messages it appended (not those whose seq was taken): what the search
    /// index posts.
    pub fn append_sorted<'m>(
        &mut self,
        number: u64,
        messages: &[ArchivedMessageRef<'m>],
    ) -> StoreResult<Vec<ArchivedMessageRef<'m>>> {
        let Some(lowest) = messages.first() else {
            return Ok(Vec::new());
        };
        // Runs of one conversation are disjoint, so the last by first seq ends highest.
        let last_run = self
            .index
            .range((number, 0u64)..=(number, u64::MAX))
            .map_err(unavailable)?
            .next_back()
            .transpose()
            .map_err(unavailable)?
            .map(|(key, run)| (key.value().1, run.value()));
        if last_run.is_some_and(|(first, (_, count))| lowest.seq < first + count) {
            let mut appended = Vec::new();
            for message in messages {
                if self.append(number, message)? {
                    appended.push(*message);
                }
            }
            return Ok(appended);
        }
        // The run being extended, `(first seq, (first position, count))`, and whether
        // its index row is to be written.
        let mut run = last_run;
        let mut run_changed = false;
        let mut appended: Vec<ArchivedMessageRef<'m>> = Vec::with_capacity(messages.len());
        for message in messages {
            if appended.last().is_some_and(|last| last.seq == message.seq) {
                continue; // the first of one seq wins, as in `append`
            }
            appended.push(*message);
        }
        // Consecutive seqs go into one row (a block when there are several), which takes
        // as many positions as it holds messages, so a run's arithmetic is a message's.
        let mut rest = appended.as_slice();
        while let Some(first) = rest.first() {
            let mut length = 1;
            let mut bytes = stored_bytes(first);
            while let Some(next) = rest.get(length)
                && length < BLOCK_MAX
                && next.seq == rest[length - 1].seq + 1
                && bytes + stored_bytes(next) <= BLOCK_BYTES
            {
                bytes += stored_bytes(next);
                length += 1;
            }
            let (row, after) = rest.split_at(length);
            rest = after;
            let position = self.next_position;
            self.next_position += length as u64;
            self.record.clear();
            match row {
                [single] => encode_into(single, &mut self.record)?,
                several => encode_block_into(several, &mut self.record)?,
            }
            self.log.insert(position, self.record.as_slice()).map_err(unavailable)?;
            match &mut run {
                Some((first_seq, (start, count)))
                    if *first_seq + *count == first.seq && *start + *count == position =>
                {
                    *count += length as u64;
                }
                _ => {
                    if let (true, Some((first_seq, value))) = (run_changed, run) {
                        self.index.insert((number, first_seq), value).map_err(unavailable)?;
                    }
                    run = Some((first.seq, (position, length as u64)));
                }
            }
            run_changed = true;
        }
        if let (true, Some((first, value))) = (run_changed, run) {
            self.index.insert((number, first), value).map_err(unavailable)?;
        }
        Ok(appended)
    }

    /// Writes the counters back; call once the batch is applied.
    pub fn finish(mut self) -> StoreResult<()> {
        self.meta
            .insert(NEXT_POSITION, self.next_position)
            .map_err(unavailable)?;
        self.meta.insert(NEXT_NUMBER, self.next_number).map_err(unavailable)?;
        Ok(())
    }
}

/// The messages of `conversation_id` in seq order (none if it has no number).
pub fn load(tx: &redb::ReadTransaction, conversation_id: &str) -> StoreResult<Vec<ArchivedMessage>> {
    let numbers = tx.open_table(NUMBERS).map_err(unavailable)?;
    let index = tx.open_table(INDEX).map_err(unavailable)?;
    let log = tx.open_table(LOG).map_err(unavailable)?;
    load_from(&numbers, &index, &log, conversation_id)
}

/// As [`load`], inside a write transaction (erasure, the search index's backfill).
pub fn load_for_write(tx: &redb::WriteTransaction, conversation_id: &str) -> StoreResult<Vec<ArchivedMessage>> {
    let numbers = tx.open_table(NUMBERS).map_err(unavailable)?;
    let index = tx.open_table(INDEX).map_err(unavailable)?;
    let log = tx.open_table(LOG).map_err(unavailable)?;
    load_from(&numbers, &index, &log, conversation_id)
}

fn load_from(
    numbers: &impl ReadableTable<&'static str, u64>,
    index: &impl ReadableTable<(u64, u64), (u64, u64)>,
    log: &impl ReadableTable<u64, &'static [u8]>,
    conversation_id: &str,
) -> StoreResult<Vec<ArchivedMessage>> {
    let Some(number) = numbers.get(conversation_id).map_err(unavailable)? else {
        return Ok(Vec::new());
    };
    let number = number.value();
    let mut out = Vec::new();
    for run in index.range((number, 0u64)..=(number, u64::MAX)).map_err(unavailable)? {
        let (key, run) = run.map_err(unavailable)?;
        let (first, (start, count)) = (key.value().1, run.value());
        let mut read = 0;
        for row in log.range(start..start + count).map_err(unavailable)? {
            let (_, record) = row.map_err(unavailable)?;
            read += decode_row(first + read, record.value(), &mut out)?;
        }
        if read != count {
            return Err(unavailable(format!(
                "messages {first}..{} of {conversation_id} are missing from the log",
                first + count
            )));
        }
    }
    Ok(out)
}

/// Removes every message of `conversation_id` (its runs, their log records and its
/// number; an erasure on request). Returns how many messages it held.
pub fn erase(tx: &redb::WriteTransaction, conversation_id: &str) -> StoreResult<u64> {
    let mut numbers = tx.open_table(NUMBERS).map_err(unavailable)?;
    let Some(number) = numbers.remove(conversation_id).map_err(unavailable)?.map(|n| n.value()) else {
        return Ok(0);
    };
    let mut index = tx.open_table(INDEX).map_err(unavailable)?;
    let mut log = tx.open_table(LOG).map_err(unavailable)?;
    let runs: Vec<((u64, u64), (u64, u64))> = index
        .range((number, 0u64)..=(number, u64::MAX))
        .map_err(unavailable)?
        .map(|row| row.map(|(k, v)| (k.value(), v.value())).map_err(unavailable))
        .collect::<StoreResult<_>>()?;
    let mut erased = 0;
    for (key, (start, count)) in runs {
        index.remove(key).map_err(unavailable)?;
        // A block stands for the positions after its own, which hold nothing.
        for position in start..start + count {
            if let Some(row) = log.remove(position).map_err(unavailable)? {
                erased += messages_in_row(row.value());
            }
        }
    }
    Ok(erased)
}

/// Moves schema 2's `messages` rows into the log (conversation by conversation, in seq
/// order) and drops that table. Returns how many messages moved.
pub fn migrate_v2(tx: &redb::WriteTransaction) -> StoreResult<u64> {
    let mut moved = 0u64;
    {
        let old = tx.open_table(MESSAGES_V2).map_err(unavailable)?;
        let mut writer = Writer::open(tx)?;
        let mut current: Option<(String, u64)> = None;
        for row in old.iter().map_err(unavailable)? {
            let (key, value) = row.map_err(unavailable)?;
            let (conversation, seq, id) = key.value();
            let message = message_value::decode(seq, id, value.value())?;
            let number = match &current {
                Some((known, number)) if known == conversation => *number,
                _ => {
                    let number = writer.number(conversation)?;
                    current = Some((conversation.to_owned(), number));
                    number
                }
            };
            writer.append(number, &message.borrowed())?;
            moved += 1;
        }
        writer.finish()?;
    }
    tx.delete_table(MESSAGES_V2).map_err(unavailable)?;
    Ok(moved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_record_reads_back() {
        for from in [Side::Customer, Side::Agent, Side::System] {
            for (id, text) in [("", ""), ("0193a-id", "hello"), ("é", "quote \" é 🎉 {")] {
                let m = ArchivedMessage::plain(id, 42, from, text, 1_795_279_801_122);
                let value = encode(&m).unwrap();
                assert_eq!(value.len(), HEADER + id.len() + text.len());
                assert_eq!(decode(42, &value).unwrap(), m);
            }
        }
    }

    /// A message that carries files keeps their metadata (a JSON record), alone or in a block.
    #[test]
    fn a_message_with_files_reads_back_with_them() {
        let file = crate::attachments::AttachmentMeta {
            id: "a1".into(),
            name: "shot.png".into(),
            mime: "image/png".into(),
            size: 1234,
            thumbnail: true,
        };
        let message = |seq: u64, files: Vec<crate::attachments::AttachmentMeta>| ArchivedMessage {
            via: None,
            attachments: files,
            id: uuid::Uuid::now_v7().hyphenated().to_string().into(),
            seq,
            from: Side::Customer,
            text: String::new(),
            at: 1_795_279_801_122,
        };
        let with = message(3, vec![file.clone()]);
        assert_eq!(decode(3, &encode(&with).unwrap()).unwrap(), with);
        let (a, b, c) = (
            message(4, vec![]),
            message(5, vec![file.clone(), file]),
            message(6, vec![]),
        );
        let mut block = Vec::new();
        encode_block_into(&[a.borrowed(), b.borrowed(), c.borrowed()], &mut block).unwrap();
        let mut out = Vec::new();
        assert_eq!(decode_row(4, &block, &mut out).unwrap(), 3);
        assert_eq!(out, vec![a, b, c]);
        // A customer's answer by mail keeps its `via` (a JSON record too).
        let by_mail = ArchivedMessage {
            via: Some(crate::store::Via::Email),
            ..message(7, vec![])
        };
        assert_eq!(decode(7, &encode(&by_mail).unwrap()).unwrap(), by_mail);
    }

    /// A message id the hub made (a UUID, 36 characters as text) is stored as its 16
    /// bytes; any other id as its text, and both read back exactly as written.
    #[test]
    fn a_uuid_message_id_takes_16_bytes_and_any_other_id_reads_back_as_written() {
        let uuid = uuid::Uuid::now_v7();
        let message = |id: String| ArchivedMessage::plain(id, 7, Side::Customer, "x".repeat(100), 1_795_279_801_122);
        let m = message(uuid.hyphenated().to_string());
        let value = encode(&m).unwrap();
        assert_eq!(value.len(), 1 + 1 + 8 + 16 + 100, "format, side, time, id, text");
        assert_eq!(decode(7, &value).unwrap(), m);
        // Not the hub's own spelling: kept as text, so it reads back unchanged.
        for id in [
            uuid.hyphenated().to_string().to_uppercase(),
            uuid.simple().to_string(),
            format!("{{{uuid}}}"),
            "m1".to_string(),
        ] {
            let m = message(id.clone());
            let value = encode(&m).unwrap();
            assert_eq!(value.len(), HEADER + id.len() + 100, "{id}");
            assert_eq!(decode(7, &value).unwrap(), m, "{id}");
        }
    }

    #[test]
    fn an_unknown_format_or_a_damaged_record_is_refused_with_a_message() {
        let m = ArchivedMessage::plain("m", 1, Side::Agent, "x", 3);
        let mut future = encode(&m).unwrap();
        future[0] = 0x07;
        let error = decode(1, &future).unwrap_err().to_string();
        assert!(error.contains("format 0x07"), "{error}");
        assert!(decode(1, &[LOGGED_V1, 0]).is_err(), "short");
        let mut long_id = encode(&m).unwrap();
        long_id[10] = 200;
        assert!(decode(1, &long_id).is_err(), "id past the end");
    }
}

#[cfg(test)]
mod run_tests {
    use super::*;
    use redb::ReadableDatabase;

    fn message(seq: u64) -> ArchivedMessage {
        ArchivedMessage::plain(
            format!("m{seq}"),
            seq,
            Side::Customer,
            format!("text {seq}"),
            seq as i64,
        )
    }

    proptest::proptest! {
        /// Appending each conversation's share of a batch at once (`append_sorted`, as a
        /// fold does) stores exactly what appending message by message does, over random
        /// batches with retries, duplicates, gaps and interleaved conversations.
        #[test]
        fn appending_a_sorted_group_equals_appending_one_by_one(
            batches in proptest::collection::vec(proptest::collection::vec((0u64..2, 1u64..30), 0..25), 1..6)
        ) {
            // In memory: what is stored is the property, not how durably; on a file each of
            // the cases' commits waited for an fsync (36 s of wall time for 4 CPU-seconds on a
            // busy disk, the library's longest test).
            let in_memory = || redb::Database::builder().create_with_backend(redb::backends::InMemoryBackend::new()).unwrap();
            let (one, group) = (in_memory(), in_memory());
            for batch in &batches {
                for (db, grouped) in [(&one, false), (&group, true)] {
                    let tx = db.begin_write().unwrap();
                    create_tables(&tx).unwrap();
                    {
                        let mut writer = Writer::open(&tx).unwrap();
                        writer.number("a").unwrap();
                        writer.number("b").unwrap();
                        for conversation in 0..2u64 {
                            let mut mine: Vec<ArchivedMessage> = batch
                                .iter()
                                .filter(|(c, _)| *c == conversation)
                                .map(|&(_, seq)| message(seq))
                                .collect();
                            mine.sort_by_key(|m| m.seq);
                            if grouped {
                                let refs: Vec<ArchivedMessageRef<'_>> = mine.iter().map(ArchivedMessage::borrowed).collect();
                                writer.append_sorted(conversation, &refs).unwrap();
                            } else {
                                for m in &mine {
                                    writer.append(conversation, &m.borrowed()).unwrap();
                                }
                            }
                        }
                        writer.finish().unwrap();
                    }
                    tx.commit().unwrap();
                }
            }
            let (a, b) = (one.begin_read().unwrap(), group.begin_read().unwrap());
            for conversation in ["a", "b"] {
                let expected = load(&a, conversation).unwrap();
                let mut seqs: Vec<u64> = expected.iter().map(|m| m.seq).collect();
                seqs.dedup();
                proptest::prop_assert_eq!(seqs.len(), expected.len(), "every seq once");
                proptest::prop_assert_eq!(load(&b, conversation).unwrap(), expected);
            }
        }
    }

    /// A fold's consecutive messages of one conversation take one row (a block) and as
    /// many positions as messages; a gap starts another row; a single message stays a
    /// plain record. They read back in order, and erasing the conversation removes them
    /// all and counts them.
    #[test]
    fn a_folds_consecutive_messages_take_one_row_and_erase_counts_them() {
        let path = std::env::temp_dir().join(format!("switchboard-blocks-{}.redb", uuid::Uuid::new_v4().simple()));
        let db = redb::Database::create(&path).unwrap();
        let all: Vec<ArchivedMessage> = (1..=600).chain([700]).map(message).collect();
        let tx = db.begin_write().unwrap();
        create_tables(&tx).unwrap();
        {
            let mut writer = Writer::open(&tx).unwrap();
            let number = writer.number("a").unwrap();
            let refs: Vec<ArchivedMessageRef<'_>> = all.iter().map(ArchivedMessage::borrowed).collect();
            assert_eq!(writer.append_sorted(number, &refs).unwrap().len(), all.len());
            writer.finish().unwrap();
        }
        {
            let log = tx.open_table(LOG).unwrap();
            let rows: Vec<(u64, u64)> = log
                .iter()
                .unwrap()
                .map(|row| {
                    let (key, value) = row.unwrap();
                    (key.value(), messages_in_row(value.value()))
                })
                .collect();
            // 600 consecutive: blocks of at most BLOCK_BYTES, each taking the positions of
            // its messages; then 700 alone.
            assert_eq!(rows.last(), Some(&(600, 1)));
            let blocks = &rows[..rows.len() - 1];
            assert!(blocks.len() <= 600 / (BLOCK_BYTES / 30), "{blocks:?}");
            let mut position = 0;
            for &(at, count) in blocks {
                assert_eq!(at, position, "{blocks:?}");
                assert!(count > 1 && count as usize * 20 <= BLOCK_BYTES, "{blocks:?}");
                position += count;
            }
            assert_eq!(position, 600);
        }
        tx.commit().unwrap();
        assert_eq!(load(&db.begin_read().unwrap(), "a").unwrap(), all);
        let tx = db.begin_write().unwrap();
        assert_eq!(erase(&tx, "a").unwrap(), all.len() as u64);
        assert!(redb::ReadableTableMetadata::is_empty(&tx.open_table(LOG).unwrap()).unwrap());
        tx.commit().unwrap();
        drop(db);
        let _ = std::fs::remove_file(&path);
    }

    /// A block whose lengths or count disagree with its bytes is refused with a message,
    /// never read as other messages.
    #[test]
    fn a_damaged_block_is_refused() {
        let (a, b) = (message(1), message(2));
        let mut block = Vec::new();
        encode_block_into(&[a.borrowed(), b.borrowed()], &mut block).unwrap();
        let mut out = Vec::new();
        assert_eq!(decode_row(1, &block, &mut out).unwrap(), 2);
        assert_eq!(out, [a.clone(), b.clone()]);
        let mut more = block.clone();
        more[1] = 3; // a count beyond its records
        assert!(decode_row(1, &more, &mut Vec::new()).is_err());
        let mut fewer = block.clone();
        fewer[1] = 1; // bytes left after its last record
        assert!(decode_row(1, &fewer, &mut Vec::new()).is_err());
        let mut long = block.clone();
        long[5] = 0xff; // the first record's length past the end
        assert!(decode_row(1, &long, &mut Vec::new()).is_err());
        assert!(decode_row(1, &block[..3], &mut Vec::new()).is_err());
    }

    /// Seqs out of order, gaps filled later, retries inside and at the edges of runs, two
    /// conversations interleaved: every seq is stored once, read back in seq order.
    #[test]
    fn runs_keep_every_seq_once_in_order() {
        let path = std::env::temp_dir().join(format!("switchboard-runs-{}.redb", uuid::Uuid::new_v4().simple()));
        let db = redb::Database::create(&path).unwrap();
        let batches: [&[(u64, u64)]; 4] = [
            &[(0, 1), (0, 2), (1, 1), (0, 3), (1, 2)],
            &[(0, 5), (0, 3), (0, 6), (1, 2), (1, 4)],
            &[(0, 4), (1, 3), (0, 1), (0, 7), (1, 4), (0, 6)],
            &[(1, 1), (1, 5), (0, 8)],
        ];
        for batch in batches {
            let tx = db.begin_write().unwrap();
            create_tables(&tx).unwrap();
            {
                let mut writer = Writer::open(&tx).unwrap();
                writer.number("a").unwrap();
                writer.number("b").unwrap();
                for &(conversation, seq) in batch {
                    writer.append(conversation, &message(seq).borrowed()).unwrap();
                }
                writer.finish().unwrap();
            }
            tx.commit().unwrap();
        }
        let tx = db.begin_read().unwrap();
        assert_eq!(load(&tx, "a").unwrap(), (1..=8).map(message).collect::<Vec<_>>());
        assert_eq!(load(&tx, "b").unwrap(), (1..=5).map(message).collect::<Vec<_>>());
        assert!(load(&tx, "unknown").unwrap().is_empty());
        drop(tx);
        drop(db);
        let _ = std::fs::remove_file(&path);
    }
}
