//! A chat message as the hub stamps it, and the transcript that keeps a chat's
//! latest messages for welcomes and resumes.
//!
//! [`Transcript::record`] gives a chat's next message its seq, id and time and
//! returns the frame the peer gets, the compact acknowledgement its sender gets and
//! the event the archive stores. The
//! transcript keeps those encoded frames, shared with the deliveries, rather than
//! the messages: at a busy hub every new message evicts an old one, and an old frame
//! is one buffer to free where a message was three or four strings, all gone cold.
//! Snapshots, which are rare, read the frames back.

use std::collections::VecDeque;
use std::sync::Arc;

use axum::extract::ws::Utf8Bytes;
use uuid::Uuid;

use crate::clock::now_ms;
use crate::cluster::chat_log::{ChatLine, LogRead};
use crate::protocol::{self, AttachmentMeta, ChatMessage, From, MessageRef};
use crate::store::{ArchiveEvent, ArchivedMessage, Side, Via};

/// Who wrote a message, as the wire and the archive each name it.
#[derive(Debug, Clone, Copy)]
pub struct Author {
    from: From,
    side: Side,
    /// The sender's buddy id, in buddy chats.
    sender: Option<u64>,
    /// How the line came other than over the chat (a customer's mail).
    via: Option<Via>,
}

impl Author {
    pub const CUSTOMER: Self = Self {
        from: From::Customer,
        side: Side::Customer,
        sender: None,
        via: None,
    };
    pub const AGENT: Self = Self {
        from: From::Agent,
        side: Side::Agent,
        sender: None,
        via: None,
    };
    /// The customer, answering by mail: the line says so (`via: "email"`).
    pub const CUSTOMER_BY_MAIL: Self = Self {
        via: Some(Via::Email),
        ..Self::CUSTOMER
    };

    /// A category's bot: an agent line, marked `via: "bot"`.
    pub const BOT: Self = Self {
        via: Some(Via::Bot),
        ..Self::AGENT
    };

    /// A chat line's author from its side and how it came (`via`), as a chat's log in
    /// Redis carries them.
    pub fn of(from: crate::core::routing::Party, via: Option<Via>) -> Self {
        match (from, via) {
            (crate::core::routing::Party::Customer, Some(Via::Email)) => Self::CUSTOMER_BY_MAIL,
            (crate::core::routing::Party::Customer, _) => Self::CUSTOMER,
            (_, Some(Via::Bot)) => Self::BOT,
            _ => Self::AGENT,
        }
    }

    /// Buddy `id`; the archive records the chat's inviter as "customer" and the other as "agent".
    pub fn buddy(id: u64, is_inviter: bool) -> Self {
        Self {
            from: From::Buddy,
            side: if is_inviter { Side::Customer } else { Side::Agent },
            sender: Some(id),
            via: None,
        }
    }
}

/// A stamped message: what the peer gets, the sender's acknowledgement and what the
/// archive stores.
pub struct Stamped {
    pub frame: Utf8Bytes,
    /// The compact `ack` frame the sender gets once the message is durable.
    pub ack: Utf8Bytes,
    pub event: ArchiveEvent,
}

/// Gives message `seq` of chat `chat_id` its id and time.
fn stamp(chat_id: impl Into<Arc<str>>, seq: u64, author: Author, text: String, client_id: Option<&str>) -> Stamped {
    stamp_with(chat_id, seq, author, text, Vec::new(), client_id)
}

/// [`stamp`] for a message that carries files.
fn stamp_with(
    chat_id: impl Into<Arc<str>>,
    seq: u64,
    author: Author,
    text: String,
    attachments: Vec<AttachmentMeta>,
    client_id: Option<&str>,
) -> Stamped {
    let mut id_buffer = Uuid::encode_buffer();
    let id = Uuid::now_v7().hyphenated().encode_lower(&mut id_buffer);
    stamped(chat_id, seq, (id, now_ms()), author, (text, attachments), client_id)
}

/// Message `seq` of chat `chat_id` with the id and time it was given, and the files it carries.
/// The chat's id is taken shared: a running chat passes its own `Arc` (a clone, not a copy),
/// which the archive's event keeps.
pub(crate) fn stamped(
    chat_id: impl Into<Arc<str>>,
    seq: u64,
    (id, at): (&str, i64),
    author: Author,
    (text, attachments): (String, Vec<AttachmentMeta>),
    client_id: Option<&str>,
) -> Stamped {
    let chat_id: Arc<str> = chat_id.into();
    let message = MessageRef {
        chat_id: &chat_id,
        id,
        seq,
        from: author.from,
        sender: author.sender,
        text: &text,
        attachments: &attachments,
        at,
        client_id,
        via: author.via,
    };
    let frame = protocol::encode_message(&message);
    let ack = protocol::encode_ack(&message);
    let event = ArchiveEvent::Message {
        conversation_id: chat_id,
        message: ArchivedMessage {
            via: author.via,
            id: id.into(),
            seq,
            from: author.side,
            text,
            at,
            attachments,
        },
    };
    Stamped { frame, ack, event }
}

/// The side of the live chat an archived line's author was on (the hub's own lines are
/// told on the agent's side, as the chat's log keeps them).
pub fn party_of(side: Side) -> crate::core::routing::Party {
    match side {
        Side::Customer => crate::core::routing::Party::Customer,
        _ => crate::core::routing::Party::Agent,
    }
}

/// One chat's message count and its latest messages, as the frames that carried them.
#[derive(Debug)]
pub struct Transcript {
    /// The seq of the last message: 1-based, one per message, never reused.
    seq: u64,
    /// `(seq, frame)`, oldest first.
    frames: VecDeque<(u64, Utf8Bytes)>,
    /// Messages kept at most; the oldest goes when a new one comes.
    limit: usize,
    /// The seq this transcript went on from ([`Transcript::from_parts`]): the lines up to it
    /// are a continued conversation's earlier ones (its frames, when kept, are for show),
    /// never lines this chat lacks.
    since: u64,
}

impl Transcript {
    pub fn new(limit: usize) -> Self {
        Self {
            seq: 0,
            frames: VecDeque::new(),
            limit: limit.max(1),
            since: 0,
        }
    }

    /// Stamps the next message of chat `chat_id` and keeps its frame.
    pub fn record(
        &mut self,
        chat_id: impl Into<Arc<str>>,
        author: Author,
        text: String,
        client_id: Option<&str>,
    ) -> Stamped {
        let seq = self.seq + 1;
        self.record_stamped(seq, stamp(chat_id, seq, author, text, client_id))
    }

    /// [`Transcript::record`] for a message that carries files (checked by the caller).
    pub fn record_with(
        &mut self,
        chat_id: impl Into<Arc<str>>,
        author: Author,
        (text, attachments): (String, Vec<AttachmentMeta>),
        client_id: Option<&str>,
    ) -> Stamped {
        let seq = self.seq + 1;
        self.record_stamped(seq, stamp_with(chat_id, seq, author, text, attachments, client_id))
    }

    /// The last seq and the kept frames (seq, frame), oldest first: a buddy chat as a
    /// restore of the cluster's lost data carries it (`hub::buddy::snapshot`).
    pub fn parts(&self) -> (u64, Vec<(u64, String)>) {
        let frames = self
            .frames
            .iter()
            .map(|(seq, frame)| (*seq, frame.as_str().to_owned()))
            .collect();
        (self.seq, frames)
    }

    /// A transcript from [`Transcript::parts`]: the newest `limit` frames are kept.
    pub fn from_parts(seq: u64, frames: Vec<(u64, String)>, limit: usize) -> Self {
        let mut transcript = Self::new(limit);
        let skip = frames.len().saturating_sub(transcript.limit);
        transcript.frames = frames
            .into_iter()
            .skip(skip)
            .map(|(seq, frame)| (seq, Utf8Bytes::from(frame)))
            .collect();
        transcript.seq = seq;
        transcript.since = seq;
        transcript
    }

    /// The seq of the last message recorded (0: none yet).
    pub fn last_seq(&self) -> u64 {
        self.seq
    }

    /// Goes on after `seq`: the messages up to it are in no chat log any more,
    /// so this node can never record them; the kept ones stay.
    pub fn skip_to(&mut self, seq: u64) {
        self.seq = self.seq.max(seq);
    }

    /// The seqs after `seq`, up to the last recorded and among the newest `limit` (what a
    /// snapshot holds at most), whose frames it lacks: lines it went on after (`skip_to`),
    /// in no chat log any more (lost with Redis's data), which only the archive holds. None
    /// up to the seq it went on from: a continued conversation's earlier lines are not this
    /// chat's to catch up on.
    pub fn lacking_after(&self, seq: u64) -> Vec<u64> {
        let from = seq.max(self.since).max(self.seq.saturating_sub(self.limit as u64)) + 1;
        let mut kept = self.frames.iter().map(|(s, _)| *s).skip_while(|s| *s < from).peekable();
        (from..=self.seq)
            .filter(|s| {
                let held = kept.next_if_eq(s).is_some();
                !held
            })
            .collect()
    }

    /// Keeps the archived messages of chat `wire_id` it lacks frames of, each in its place
    /// ([`Transcript::lacking_after`]: read from the archive): none past the last recorded
    /// (those come through the chat's log, in order), none it keeps already; the newest
    /// `limit` stay.
    pub fn fill_in(&mut self, wire_id: &str, archived: &[ArchivedMessage]) {
        let chat_id: Arc<str> = wire_id.into();
        let filled = archived.iter().filter(|m| m.seq <= self.seq).map(|m| {
            let from = party_of(m.from);
            let text = (m.text.clone(), m.attachments.clone());
            let stamp = stamped(
                chat_id.clone(),
                m.seq,
                (m.id.as_str(), m.at),
                Author::of(from, m.via),
                text,
                None,
            );
            (m.seq, stamp.frame)
        });
        let mut frames: Vec<(u64, Utf8Bytes)> = self.frames.drain(..).chain(filled).collect();
        // Stable: of two frames of a seq, the one kept (first) stays.
        frames.sort_by_key(|(seq, _)| *seq);
        frames.dedup_by_key(|(seq, _)| *seq);
        let skip = frames.len().saturating_sub(self.limit);
        self.frames = frames.into_iter().skip(skip).collect();
    }

    /// Records the lines of a read of a chat's log (`wire_id` on the wire) that come next,
    /// in seq order, stepping over what no log holds any more (`LogRead::in_order`): each
    /// with what recording it made.
    pub fn take_read(&mut self, wire_id: &str, read: LogRead) -> Vec<(Stamped, ChatLine)> {
        let mut taken = vec![];
        for (floor, line) in read.in_order() {
            if let Some(floor) = floor {
                self.skip_to(floor);
            }
            if line.seq != self.seq + 1 {
                continue; // recorded already (or, while its claims are coming, past a hole)
            }
            let stamp = stamped(
                wire_id,
                line.seq,
                (&line.id, line.at),
                Author::of(line.from, line.via),
                (line.text.clone(), line.attachments()),
                line.client_id.as_deref(),
            );
            taken.push((self.record_stamped(line.seq, stamp), line));
        }
        taken
    }

    /// Records message `seq` as it was stamped ([`stamped`]: in a cluster the chat's log in
    /// Redis gives seq, id and time; `seq` must be `last_seq() + 1`) and keeps its frame.
    pub fn record_stamped(&mut self, seq: u64, stamped: Stamped) -> Stamped {
        debug_assert_eq!(seq, self.seq + 1, "messages are recorded in seq order");
        self.seq = seq;
        if self.frames.len() == self.limit {
            self.frames.pop_front();
        }
        self.frames.push_back((seq, stamped.frame.clone()));
        stamped
    }

    /// The kept messages as archive events (in a cluster, a node that starts archiving a
    /// running chat it already logged writes them again; the store applies them
    /// idempotently by (chat, seq)).
    pub fn archive_events(&self) -> Vec<ArchiveEvent> {
        self.after(0)
            .into_iter()
            .map(|m| ArchiveEvent::Message {
                conversation_id: m.chat_id.into(),
                message: ArchivedMessage {
                    via: m.via,
                    attachments: m.attachments,
                    id: m.id.into(),
                    seq: m.seq,
                    from: match m.from {
                        From::Customer => Side::Customer,
                        _ => Side::Agent,
                    },
                    text: m.text,
                    at: m.at,
                },
            })
            .collect()
    }

    /// The kept messages after `seq`, oldest first.
    pub fn after(&self, seq: u64) -> Vec<ChatMessage> {
        let start = self.frames.partition_point(|(s, _)| *s <= seq);
        self.frames
            .range(start..)
            .filter_map(|(seq, frame)| match protocol::decode_message_frame(frame) {
                Ok(message) => Some(message),
                Err(error) => {
                    // Cannot happen: every frame here came from `protocol::encode_message`.
                    // Should it, the snapshot goes out without that message rather than not at all.
                    debug_assert!(false, "transcript frame {seq} does not read back: {error}");
                    tracing::error!(seq, %error, "a transcript frame does not read back; left out of the snapshot");
                    None
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamped_message_is_the_same_in_its_frame_and_in_the_archive() {
        let Stamped { frame, ack, event } = stamp("c1", 3, Author::CUSTOMER, "héllo \"you\"".into(), Some("mine-1"));
        let message = protocol::decode_message_frame(&frame).expect("a message frame");
        let ArchiveEvent::Message {
            conversation_id,
            message: archived,
        } = event
        else {
            panic!("a message event");
        };
        assert_eq!(&*conversation_id, "c1");
        assert_eq!(
            (message.chat_id.as_str(), message.seq, message.from),
            ("c1", 3, From::Customer)
        );
        assert_eq!(message.client_id.as_deref(), Some("mine-1"));
        assert_eq!(
            (archived.id.as_str(), archived.seq, archived.text.as_str()),
            (message.id.as_str(), 3, message.text.as_str())
        );
        assert_eq!((archived.at, archived.from), (message.at, Side::Customer));
        let ack: serde_json::Value = serde_json::from_str(&ack).expect("an ack frame");
        assert_eq!(
            ack,
            serde_json::json!({"type": "ack", "chat_id": "c1", "id": archived.id, "seq": 3, "at": archived.at, "client_id": "mine-1"}),
            "the acknowledgement names the message without its text"
        );
    }

    /// A running chat's id goes into each message's archive event shared, not copied: one
    /// allocation fewer a relayed message.
    #[test]
    fn the_archive_event_shares_the_chats_id() {
        let chat: Arc<str> = "c1".into();
        let Stamped { event, .. } = Transcript::new(3).record(chat.clone(), Author::AGENT, "hi".into(), None);
        let ArchiveEvent::Message { conversation_id, .. } = event else {
            panic!("a message event");
        };
        assert!(Arc::ptr_eq(&conversation_id, &chat));
    }

    #[test]
    fn a_transcript_keeps_the_latest_messages_and_gives_those_after_a_seq() {
        let mut transcript = Transcript::new(3);
        for n in 1..=5 {
            transcript.record("c1", Author::CUSTOMER, format!("m{n}"), None);
        }
        assert_eq!(transcript.after(4)[0].seq, 5, "seqs count every message, kept or not");
        let texts = |after| transcript.after(after).into_iter().map(|m| m.text).collect::<Vec<_>>();
        assert_eq!(texts(0), ["m3", "m4", "m5"]);
        assert_eq!(texts(3), ["m4", "m5"]);
        assert!(texts(5).is_empty());
    }

    /// A transcript that went on after lines no log holds any more (4..=6 of 1..=9) says
    /// which it lacks after a seq, and takes them from the archive in their place: none it
    /// has, none past its last, the newest `limit` kept.
    #[test]
    fn a_transcript_fills_in_the_lines_it_went_on_after_from_the_archive() {
        let mut transcript = Transcript::new(8);
        for n in 1..=3 {
            transcript.record("c1", Author::CUSTOMER, format!("m{n}"), None);
        }
        transcript.skip_to(6);
        for n in 7..=9 {
            transcript.record("c1", Author::AGENT, format!("m{n}"), None);
        }
        assert_eq!(transcript.lacking_after(0), [4, 5, 6]);
        assert_eq!(transcript.lacking_after(5), [6]);
        assert!(transcript.lacking_after(9).is_empty());
        let archived: Vec<ArchivedMessage> = (1..=10)
            .map(|n| ArchivedMessage::plain(format!("id{n}"), n, Side::Agent, format!("a{n}"), 0))
            .collect();
        transcript.fill_in("c1", &archived);
        let texts = |after| transcript.after(after).into_iter().map(|m| m.text).collect::<Vec<_>>();
        assert_eq!(texts(0), ["m2", "m3", "a4", "a5", "a6", "m7", "m8", "m9"]);
        assert_eq!(transcript.last_seq(), 9, "what comes after is the log's");
        assert!(transcript.lacking_after(1).is_empty());
    }

    /// A continued conversation's transcript goes on after its earlier lines (seq 10, the
    /// last few of them kept for show): a resume from seq 0 lacks none of the lines before,
    /// only those of this chat it went on after.
    #[test]
    fn a_continued_transcript_lacks_none_of_the_conversations_earlier_lines() {
        let earlier = (8..=10)
            .map(|n| (n, format!("{{\"type\":\"message\",\"seq\":{n}}}")))
            .collect();
        let mut transcript = Transcript::from_parts(10, earlier, 50);
        assert!(transcript.lacking_after(0).is_empty());
        transcript.record("c1", Author::CUSTOMER, "m11".into(), None);
        transcript.skip_to(13);
        assert_eq!(transcript.lacking_after(0), [12, 13]);
    }
}
