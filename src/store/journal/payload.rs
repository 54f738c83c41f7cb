//! The archive journal's record payload: a batch of archive events, chat messages in a
//! compact binary form, the rarer openings and closings as JSON.
//!
//! Why: the payload was the whole batch as JSON; encoding it (escaping every
//! id and text) was a fifth of the journal's CPU per message, profiled at 10k msg/s. A
//! message is now its fields with length prefixes, copied, never escaped.
//!
//! Layout: `[format: 0xB1]` then per event either
//! `[0x01][conversation id length: u16 LE][conversation id][message id length: u16 LE]
//! [message id][seq: u64 LE][side: u8][at: i64 LE][text length: u32 LE][text]` (a chat
//! message) or `[0x02][length: u32 LE][the event as JSON]` (anything else: openings,
//! transfers, agents' notes, closings, and the messages that carry files). A payload
//! written before (a JSON array) starts with `[`, so the first byte tells the two apart
//! and a journal left by an older build still replays.

use super::super::{ArchiveEvent, ArchivedMessage, ArchivedMessageRef, Side};

/// The first byte of a binary payload (a JSON array starts with `[`).
const BINARY_V1: u8 = 0xB1;
const MESSAGE: u8 = 0x01;
const JSON_EVENT: u8 = 0x02;

fn side_byte(side: Side) -> u8 {
    match side {
        Side::Customer => 0,
        Side::Agent => 1,
        Side::System => 2,
    }
}

fn side_of(byte: u8) -> Option<Side> {
    match byte {
        0 => Some(Side::Customer),
        1 => Some(Side::Agent),
        2 => Some(Side::System),
        _ => None,
    }
}

fn put_str16(out: &mut Vec<u8>, s: &str) -> Result<(), String> {
    let len = u16::try_from(s.len()).map_err(|_| format!("an id of {} bytes is too long to journal", s.len()))?;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

/// Appends the payload of `events` to `out`.
pub fn encode_into(events: &[ArchiveEvent], out: &mut Vec<u8>) -> Result<(), String> {
    out.push(BINARY_V1);
    for event in events {
        match event {
            // A message that carries files is written as JSON, as the rarer events are.
            ArchiveEvent::Message {
                conversation_id,
                message,
            } if message.is_plain() => {
                out.push(MESSAGE);
                put_str16(out, conversation_id)?;
                put_str16(out, &message.id)?;
                out.extend_from_slice(&message.seq.to_le_bytes());
                out.push(side_byte(message.from));
                out.extend_from_slice(&message.at.to_le_bytes());
                let len = u32::try_from(message.text.len()).map_err(|_| "a message over 4 GiB".to_string())?;
                out.extend_from_slice(&len.to_le_bytes());
                out.extend_from_slice(message.text.as_bytes());
            }
            other => {
                out.push(JSON_EVENT);
                let at = out.len();
                out.extend_from_slice(&[0; 4]);
                serde_json::to_writer(&mut *out, other).map_err(|e| e.to_string())?;
                let len = u32::try_from(out.len() - at - 4).map_err(|_| "an event over 4 GiB".to_string())?;
                out[at..at + 4].copy_from_slice(&len.to_le_bytes());
            }
        }
    }
    Ok(())
}

/// A reader over a payload's bytes; every short read is an error naming what was cut.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], String> {
        if self.bytes.len() < n {
            return Err(format!("the payload ends inside {what}"));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], String> {
        Ok(self.take(N, what)?.try_into().expect("N bytes"))
    }

    fn str(&mut self, n: usize, what: &str) -> Result<&'a str, String> {
        let bytes = self.take(n, what)?;
        std::str::from_utf8(bytes).map_err(|_| format!("{what} is not UTF-8"))
    }

    fn str16(&mut self, what: &str) -> Result<&'a str, String> {
        let len = u16::from_le_bytes(self.array(what)?) as usize;
        self.str(len, what)
    }
}

/// An event of a payload as read: a chat message in the compact form borrowed from the
/// payload's bytes, anything else decoded.
#[derive(Debug)]
pub enum Decoded<'a> {
    Message {
        conversation_id: &'a str,
        message: ArchivedMessageRef<'a>,
    },
    Event(ArchiveEvent),
}

impl Decoded<'_> {
    /// The event, owning its fields.
    pub fn into_owned(self) -> ArchiveEvent {
        match self {
            Decoded::Message {
                conversation_id,
                message,
            } => ArchiveEvent::Message {
                conversation_id: conversation_id.into(),
                message: ArchivedMessage::plain(message.id, message.seq, message.from, message.text, message.at),
            },
            Decoded::Event(event) => event,
        }
    }
}

/// The events of a payload, binary or (written by an older build) a JSON array.
pub fn decode(payload: &[u8]) -> Result<Vec<ArchiveEvent>, String> {
    let mut events = Vec::new();
    decode_into(payload, &mut events)?;
    Ok(events.into_iter().map(Decoded::into_owned).collect())
}

/// Appends the events of `payload` to `out`, its chat messages borrowed from it.
pub fn decode_into<'a>(payload: &'a [u8], out: &mut Vec<Decoded<'a>>) -> Result<(), String> {
    match payload.first() {
        Some(b'[') => {
            let events: Vec<ArchiveEvent> = serde_json::from_slice(payload).map_err(|e| e.to_string())?;
            out.extend(events.into_iter().map(Decoded::Event));
            return Ok(());
        }
        Some(&BINARY_V1) => {}
        Some(other) => return Err(format!("payload format {other:#04x} is not one this build reads")),
        None => return Err("an empty payload".into()),
    }
    let mut reader = Reader { bytes: &payload[1..] };
    while let Some(&kind) = reader.bytes.first() {
        reader.bytes = &reader.bytes[1..];
        match kind {
            MESSAGE => {
                let conversation_id = reader.str16("a conversation id")?;
                let id = reader.str16("a message id")?;
                let seq = u64::from_le_bytes(reader.array("a seq")?);
                let [side] = reader.array::<1>("a side")?;
                let from = side_of(side).ok_or_else(|| format!("unknown side byte {side}"))?;
                let at = i64::from_le_bytes(reader.array("a time")?);
                let len = u32::from_le_bytes(reader.array("a text length")?) as usize;
                let text = reader.str(len, "a text")?;
                out.push(Decoded::Message {
                    conversation_id,
                    message: ArchivedMessageRef {
                        id,
                        seq,
                        from,
                        text,
                        at,
                        attachments: &[],
                        via: None,
                    },
                });
            }
            JSON_EVENT => {
                let len = u32::from_le_bytes(reader.array("an event length")?) as usize;
                let json = reader.take(len, "an event")?;
                out.push(Decoded::Event(serde_json::from_slice(json).map_err(|e| e.to_string())?));
            }
            other => return Err(format!("unknown event kind {other:#04x}")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::store::{ConversationClosed, ConversationNote, ConversationTransferred, EndReason};

    fn side() -> impl Strategy<Value = Side> {
        prop_oneof![Just(Side::Customer), Just(Side::Agent), Just(Side::System)]
    }

    fn event() -> impl Strategy<Value = ArchiveEvent> {
        prop_oneof![
            (
                (".{0,12}", ".{0,12}", any::<u64>(), side(), ".{0,40}", any::<i64>()),
                proptest::collection::vec((".{0,8}", ".{0,20}", any::<u64>(), any::<bool>()), 0..3),
                any::<bool>()
            )
                .prop_map(|((conversation_id, id, seq, from, text, at), files, by_mail)| {
                    ArchiveEvent::Message {
                        conversation_id: conversation_id.into(),
                        message: ArchivedMessage {
                            via: by_mail.then_some(crate::store::Via::Email),
                            attachments: files
                                .into_iter()
                                .map(|(id, name, size, thumbnail)| crate::attachments::AttachmentMeta {
                                    id,
                                    name,
                                    mime: "image/png".into(),
                                    size,
                                    thumbnail,
                                })
                                .collect(),
                            id: id.into(),
                            seq,
                            from,
                            text,
                            at,
                        },
                    }
                }),
            (".{0,12}", any::<i64>()).prop_map(|(id, ended_at)| ArchiveEvent::Closed(ConversationClosed {
                id,
                ended_at,
                ended_by: Side::Agent,
                reason: EndReason::Ended,
                inferred: None,
            })),
            (
                (".{0,12}", any::<i64>(), any::<u64>()),
                (".{0,12}", ".{0,12}"),
                (
                    proptest::option::of(".{0,12}"),
                    proptest::option::of(".{0,12}"),
                    proptest::option::of(".{0,12}"),
                ),
                ".{0,40}",
            )
                .prop_map(
                    |(
                        (id, at, after_seq),
                        (from_agent_id, from_agent_name),
                        (to_agent_id, to_agent_name, to_category),
                        note,
                    )| {
                        ArchiveEvent::Transferred(ConversationTransferred {
                            id,
                            at,
                            after_seq,
                            from_agent_id,
                            from_agent_name,
                            to_agent_id,
                            to_agent_name,
                            to_category,
                            note,
                        })
                    }
                ),
            ((".{0,12}", ".{0,12}", any::<i64>()), (".{0,12}", ".{0,12}", ".{0,40}")).prop_map(
                |((conversation_id, id, at), (agent_id, agent_name, text))| {
                    ArchiveEvent::Note(ConversationNote {
                        conversation_id,
                        id,
                        at,
                        agent_id,
                        agent_name,
                        text,
                    })
                }
            ),
        ]
    }

    proptest! {
        /// Any batch reads back as written, and so does one an older build wrote as JSON.
        #[test]
        fn a_batch_reads_back_binary_or_json(events in proptest::collection::vec(event(), 0..20)) {
            let mut binary = Vec::new();
            encode_into(&events, &mut binary).unwrap();
            prop_assert_eq!(&decode(&binary).unwrap(), &events);
            let json = serde_json::to_vec(&events).unwrap();
            prop_assert_eq!(&decode(&json).unwrap(), &events);
            // A payload cut short is an error, never a shorter batch.
            if let Some(last) = binary.len().checked_sub(1).filter(|_| !events.is_empty()) {
                prop_assert!(decode(&binary[..last]).is_err());
            }
        }
    }

    /// A chat message's bytes in the journal and its JSON (the spool's, a file-carrying
    /// message's in the journal) are pinned: a change of how the event holds its fields
    /// (the conversation id shared, say) must not change what is stored.
    #[test]
    fn a_chat_messages_stored_forms_are_byte_for_byte_fixed() {
        let event = ArchiveEvent::Message {
            conversation_id: "c1".into(),
            message: ArchivedMessage::plain("m1", 3, Side::Agent, "hi", 5),
        };
        let mut binary = Vec::new();
        encode_into(std::slice::from_ref(&event), &mut binary).unwrap();
        #[rustfmt::skip]
        let expected: &[u8] = &[
            0xB1, 0x01, 2, 0, b'c', b'1', 2, 0, b'm', b'1', 3, 0, 0, 0, 0, 0, 0, 0, 1,
            5, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, b'h', b'i',
        ];
        assert_eq!(binary, expected);
        assert_eq!(
            serde_json::to_string(&event).unwrap(),
            r#"{"Message":{"conversation_id":"c1","message":{"id":"m1","seq":3,"from":"agent","text":"hi","at":5}}}"#
        );
    }

    #[test]
    fn an_unknown_format_is_refused_with_a_message() {
        let error = decode(&[0x07, 1, 2]).unwrap_err();
        assert!(error.contains("format 0x07"), "{error}");
    }
}
