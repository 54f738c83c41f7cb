//! Reply tokens, in the in-memory store.

use async_trait::async_trait;

use super::*;

#[async_trait]
impl ReplyTokenStore for MemoryStore {
    async fn remember(&self, token: &str, conversation_id: &str) -> StoreResult<()> {
        self.with(|s| {
            s.reply_tokens
                .entry(token.to_string())
                .or_insert_with(|| conversation_id.to_string());
        });
        Ok(())
    }

    async fn conversation_of(&self, token: &str) -> StoreResult<Option<String>> {
        Ok(self.with(|s| s.reply_tokens.get(token).cloned()))
    }

    async fn token_of(&self, conversation_id: &str) -> StoreResult<Option<String>> {
        Ok(self.with(|s| {
            s.reply_tokens
                .iter()
                .filter(|(_, c)| *c == conversation_id)
                .map(|(t, _)| t.clone())
                .min()
        }))
    }
}
