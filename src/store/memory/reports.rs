//! The facts the reports read, in the in-memory store.

use async_trait::async_trait;

use super::*;

#[async_trait]
impl ReportStore for MemoryStore {
    async fn report_facts(&self, from: Millis, to: Millis) -> StoreResult<ReportFacts> {
        self.with(|s| {
            let within = |at: Millis| from <= at && at < to;
            let conversations = s
                .conversations
                .iter()
                .filter(|c| c.opened.kind == ConversationKind::Service && within(c.opened.paired_at))
                .map(|c| ConversationFacts {
                    id: c.opened.id.clone(),
                    category: c.opened.category.clone(),
                    agent_id: c.opened.agent_id.clone(),
                    agent_name: c.opened.agent_name.clone(),
                    queued_at: c.opened.queued_at,
                    paired_at: c.opened.paired_at,
                    first_agent_at: crate::store::reports::first_agent_at(
                        c.messages.iter().map(crate::store::ArchivedMessage::borrowed),
                    ),
                    ended_at: c.closed.as_ref().map(|closed| closed.ended_at),
                    rating: s.ratings.get(&c.opened.id).map(|r| (r.scale, r.score)),
                    bot: crate::store::reports::bot_outcome(
                        &c.opened.agent_id,
                        c.opened.paired_at,
                        c.transfers
                            .iter()
                            .map(|t| (t.at, t.from_agent_id.as_str(), t.to_agent_id.as_deref())),
                    ),
                })
                .collect();
            let abandoned = s.abandoned.iter().filter(|a| within(a.left_at)).cloned().collect();
            let offline = s
                .offline
                .values()
                .filter(|m| within(m.created_at))
                .map(crate::store::reports::offline_facts)
                .collect();
            Ok(ReportFacts {
                conversations,
                abandoned,
                offline,
            })
        })
    }
}
