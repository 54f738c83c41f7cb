//! The value of a `messages` row: a compact binary record, read beside the
//! JSON that files written before it hold.
//!
//! A row's key is `(conversation id, seq, message id)`, so the value need not repeat
//! the id or the seq. The record is `[format: 0x01][from: u8][at: i64 LE][text: UTF-8,
//! to the end]`: 10 bytes beside the text, where the JSON record (`{"id":…,"seq":…,
//! "from":…,"text":…,"at":…}`) took ~90. A JSON value always starts with `{`, so the
//! first byte tells the two apart: older files are read as they are, never migrated,
//! and a first byte that is neither is refused as a record this build cannot read.
//! Since schema 3 rows of this table are only read, to move them into [`super::message_log`].

use super::super::{ArchivedMessage, Side, StoreError, StoreResult};

/// The first byte of a binary message record (a JSON one starts with `{`).
const BINARY_V1: u8 = 0x01;
/// Bytes before the text: format, side, time.
const HEADER: usize = 1 + 1 + 8;

pub(super) fn side_byte(side: Side) -> u8 {
    match side {
        Side::Customer => 0,
        Side::Agent => 1,
        Side::System => 2,
    }
}

pub(super) fn side_of(byte: u8) -> Option<Side> {
    match byte {
        0 => Some(Side::Customer),
        1 => Some(Side::Agent),
        2 => Some(Side::System),
        _ => None,
    }
}

/// The stored value of `message` (its id and seq live in the row's key): written by
/// schema 2 only, so only tests (making such files) write it now.
#[cfg(test)]
pub fn encode(message: &ArchivedMessage) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + message.text.len());
    out.push(BINARY_V1);
    out.push(side_byte(message.from));
    out.extend_from_slice(&message.at.to_le_bytes());
    out.extend_from_slice(message.text.as_bytes());
    out
}

/// The message of the row keyed `(_, seq, id)` holding `value`, in either format.
pub fn decode(seq: u64, id: &str, value: &[u8]) -> StoreResult<ArchivedMessage> {
    let corrupt = |why: &str| StoreError::Unavailable(format!("embedded store: corrupt message {id}: {why}"));
    match value.first() {
        Some(b'{') => serde_json::from_slice(value).map_err(|e| corrupt(&format!("unreadable JSON record: {e}"))),
        Some(&BINARY_V1) if value.len() >= HEADER => {
            let from = side_of(value[1]).ok_or_else(|| corrupt(&format!("unknown side byte {}", value[1])))?;
            let at = i64::from_le_bytes(value[2..HEADER].try_into().expect("8 bytes"));
            let text = std::str::from_utf8(&value[HEADER..]).map_err(|_| corrupt("text is not UTF-8"))?;
            Ok(ArchivedMessage::plain(id, seq, from, text, at))
        }
        Some(other) => Err(corrupt(&format!(
            "record format {other:#04x} is not one this build reads (JSON or binary {BINARY_V1:#04x})"
        ))),
        None => Err(corrupt("empty record")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(from: Side, text: &str) -> ArchivedMessage {
        ArchivedMessage::plain("0193a-id", 42, from, text, 1_795_279_801_122)
    }

    #[test]
    fn a_binary_record_reads_back_and_is_ten_bytes_beside_its_text() {
        for from in [Side::Customer, Side::Agent, Side::System] {
            for text in ["", "hello", "quote \" é 🎉 {"] {
                let m = message(from, text);
                let value = encode(&m);
                assert_eq!(value.len(), 10 + text.len());
                assert_eq!(decode(42, "0193a-id", &value).unwrap(), m);
            }
        }
    }

    #[test]
    fn a_json_record_of_an_older_file_still_reads() {
        let m = message(Side::Agent, "from before");
        let json = serde_json::to_vec(&m).unwrap();
        assert_eq!(decode(42, "0193a-id", &json).unwrap(), m);
    }

    #[test]
    fn an_unknown_format_or_a_damaged_record_is_refused_with_a_message() {
        let mut future = encode(&message(Side::Agent, "x"));
        future[0] = 0x07;
        let error = decode(42, "m", &future).unwrap_err().to_string();
        assert!(error.contains("format 0x07"), "{error}");
        assert!(decode(42, "m", &[]).is_err());
        assert!(decode(42, "m", &[BINARY_V1, 0]).is_err(), "short");
        let mut bad_side = encode(&message(Side::Agent, "x"));
        bad_side[1] = 9;
        assert!(decode(42, "m", &bad_side).is_err());
    }
}
