//! Internal notes: what an agent writes on a running chat for agents only. A note goes to
//! the archive (its own record, `ArchiveEvent::Note`) and, once durable, to every
//! connection of the agent; it never travels on a customer's socket nor enters the chat's
//! transcript (which resumes and snapshots are made of), so nothing sent to a customer can
//! hold one. An agent given a chat — handed to them, or theirs again on a new connection,
//! on whichever node — gets its notes read back from the archive (`notes`).

use uuid::Uuid;

use super::HubState;
use crate::clock::now_ms;
use crate::core::routing::{AgentId, ChatId};
use crate::hub::delivery::{Outbound, Recipient, SenderCopy};
use crate::hub::{Command, tell};
use crate::protocol::{NoteView, ServerFrame};
use crate::store::{ArchiveEvent, ConversationNote};

impl HubState {
    /// An agent's `note` on their running `chat`: archived, then shown to their connections.
    pub(super) fn note_frame(
        &mut self,
        id: AgentId,
        chat: ChatId,
        text: String,
        client_id: Option<String>,
    ) -> Result<(), (&'static str, String)> {
        // A note meets a message's rules: length, something to say, room in the archive.
        self.check_message(&text)?;
        let chat_id = self.wire(chat);
        let note = ConversationNote {
            conversation_id: chat_id.clone(),
            id: Uuid::now_v7().to_string(),
            at: now_ms(),
            agent_id: id.0.clone(),
            agent_name: self.agent_display_name(&id),
            text,
        };
        let frame = ServerFrame::Note {
            chat_id,
            note: NoteView::of(&note),
            client_id,
        };
        let Some(archived) = self.archive.push_message(ArchiveEvent::Note(note)) else {
            return Err((
                "archive_unavailable",
                "the archive is behind; the note was not kept: try again shortly".to_string(),
            ));
        };
        let copy = SenderCopy::whole_everywhere(Outbound::Frame(frame.encode()));
        self.acknowledge(Recipient::Agent(id), copy, Some(archived));
        Ok(())
    }

    /// Reads `chat`'s notes from the archive for `agent`, who was just given it; they get
    /// them as `notes` (nothing when it has none).
    pub(super) fn send_notes(&self, agent: &AgentId, chat: ChatId) {
        let Some(log) = self.chats.get(&chat) else { return };
        let (store, timers) = (self.archive.store(), self.timers.clone());
        let (agent, chat_id) = (agent.clone(), log.wire_id().to_string());
        tokio::spawn(async move {
            let notes = match store.conversation_notes(&chat_id).await {
                Ok(notes) => notes,
                Err(e) => {
                    return tracing::warn!(chat = %chat_id, error = %e, "a chat's notes could not be read for its new agent");
                }
            };
            if notes.is_empty() {
                return;
            }
            tell(&timers, Command::NotesLoaded { agent, chat_id, notes }).await;
        });
    }

    /// The notes of every chat an agent holds, after their welcome.
    pub(super) fn send_notes_of_chats(&self, agent: &AgentId) {
        let Some(view) = self.routing.agent(agent) else { return };
        for chat in view.chats {
            self.send_notes(agent, chat);
        }
    }

    /// A chat's notes, read back: to the agent, if the chat is still theirs.
    pub(super) fn notes_loaded(&mut self, agent: &AgentId, chat_id: String, notes: Vec<ConversationNote>) {
        let Some(chat) = self.chat_by_wire.get(&chat_id).copied() else {
            return;
        };
        if self.routing.chat_sides(chat).is_none_or(|(_, owner)| owner != agent) {
            return;
        }
        let frame = ServerFrame::Notes {
            chat_id,
            notes: notes.iter().map(NoteView::of).collect(),
        };
        self.send(Recipient::Agent(agent.clone()), &frame);
    }
}
