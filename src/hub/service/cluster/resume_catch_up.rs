//! What a customer resuming on another node missed, when the chat's log no longer holds
//! it (`docs/cluster.md` §7): their `resumed` carries the lines after their `last_seq` from
//! this node's transcript, which took them from the chat's log in Redis. After Redis lost
//! its data the log holds only what the nodes wrote back with their claims (the latest
//! lines each recorded, none from a node that did not claim), and the transcript went on
//! after the lines below (`skip_what_no_log_holds`). Those lines are in the archive: the
//! node that archived the chat then wrote them there before their ack. So the lines the
//! transcript lacks after `last_seq` are read from the store, and kept in their place,
//! before the resume goes on: the customer gets every line after their `last_seq`, in
//! order, once. A log that holds no line at all (no claim wrote one back) says nothing of
//! what is lacking: then whatever the archive holds after `last_seq` is taken, as if the
//! log held it. A chat whose transcript lacks nothing and whose log holds a line (any chat
//! whose log Redis kept, once anything was said) goes on at once, with no read.

use super::super::HubState;
use super::super::continuing::{LATE_LINES_WAIT, read_until};
use super::resume::PendingResume;
use crate::cluster::chat_log::ChatLine;
use crate::core::routing::ChatId;
use crate::hub::transcript::party_of;
use crate::hub::{Command, tell};
use crate::store::{ArchivedMessage, Conversation, StoreResult};

impl HubState {
    /// `pending` resumes into `chat`, whose log this node has read: the lines after their
    /// `last_seq` its transcript lacks, or, its log holding none, every line after it, are
    /// read from the archive first ([`HubState::archive_read_for_resume`]); else the resume
    /// goes on.
    pub(in crate::hub::service) fn catch_up_for_resume(&mut self, chat: ChatId, pending: PendingResume) {
        let last_seq = pending.last_seq;
        let lacking = self.chats.get(&chat).map(|log| {
            let transcript = &log.live.line().transcript;
            let lacking = transcript.lacking_after(last_seq);
            let no_line = transcript.last_seq() == 0;
            (log.wire_id().to_string(), lacking, no_line)
        });
        let Some((wire_id, lacking, no_line)) = lacking.filter(|(_, lacking, no_line)| !lacking.is_empty() || *no_line)
        else {
            return self.finish_resume(pending.conn, &pending.token, last_seq, pending.taken_on);
        };
        self.cluster_mut().reading_archive.insert(chat, pending);
        let (store, hub) = (self.archive.store(), self.timers.clone());
        // A store that stopped answering: the resume goes on without the lines.
        let deadline = self.settings.archive.write_timeout + LATE_LINES_WAIT;
        tokio::spawn(async move {
            let lacked = |m: &ArchivedMessage| lacking.binary_search(&m.seq).is_ok();
            // The archiving node may not have written the latest of those lacking yet: read
            // again until every one is there, or the wait is over (a line never archived
            // was never acknowledged either). With nothing known to lack, the first answer.
            let all_there = |read: &StoreResult<Conversation>| {
                lacking.is_empty()
                    || read
                        .as_ref()
                        .is_ok_and(|c| c.messages.iter().filter(|m| lacked(m)).count() == lacking.len())
            };
            let read = tokio::time::timeout(deadline, read_until(&store, &wire_id, all_there)).await;
            let lines = match read {
                Ok(Ok(conversation)) => {
                    let after = |m: &ArchivedMessage| m.seq > last_seq && (no_line || lacked(m));
                    conversation.messages.into_iter().filter(after).collect()
                }
                // Nothing known to lack, and nothing archived (a chat with no line yet).
                Ok(Err(_)) if lacking.is_empty() => vec![],
                _ => {
                    tracing::warn!(conversation = %wire_id, "the lines a resume lacks were not read from the archive; resumed without them");
                    vec![]
                }
            };
            tell(&hub, Command::ArchiveReadForResume { chat, lines }).await;
        });
    }

    /// The lines a resume into `chat` lacked, read from the archive: those below what the
    /// transcript recorded kept in it in their place (so its `resumed`, and any later
    /// snapshot, has them), those past it taken as a read of the log would take them; then
    /// the resume goes on.
    pub(in crate::hub::service) fn archive_read_for_resume(&mut self, chat: ChatId, mut lines: Vec<ArchivedMessage>) {
        let Some(pending) = self.cluster_mut().reading_archive.remove(&chat) else {
            // Settled meanwhile (Redis lost its data, or this node was fenced).
            return;
        };
        if let Some(log) = self.chats.get(&chat) {
            lines.sort_by_key(|m| m.seq);
            let recorded = log.live.last_seq();
            let past = lines.partition_point(|m| m.seq <= recorded);
            log.live.line().transcript.fill_in(log.wire_id(), &lines[..past]);
            for m in lines.drain(past..) {
                let line = ChatLine {
                    chat,
                    seq: m.seq,
                    from: party_of(m.from),
                    files: crate::attachments::files_json(&m.attachments),
                    id: m.id.to_string(),
                    at: m.at,
                    text: m.text,
                    client_id: None,
                    via: m.via,
                };
                self.chat_lines(vec![line]);
            }
        }
        self.finish_resume(pending.conn, &pending.token, pending.last_seq, pending.taken_on);
    }
}
