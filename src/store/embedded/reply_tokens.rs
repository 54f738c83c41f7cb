//! Reply tokens in the embedded store: token → conversation, and beside it (conversation,
//! token) so a conversation's least token is the first row of its range.

use async_trait::async_trait;

use super::*;

/// Token → conversation id.
const REPLY_TOKENS: TableDefinition<&str, &str> = TableDefinition::new("reply_tokens");
/// (conversation id, token) → (): a conversation's tokens, in order.
const TOKENS_BY_CONVERSATION: TableDefinition<(&str, &str), ()> = TableDefinition::new("reply_tokens_by_conversation");

pub(super) fn create_tables(tx: &redb::WriteTransaction) -> StoreResult<()> {
    create(tx, &[&REPLY_TOKENS, &TOKENS_BY_CONVERSATION])
}

#[async_trait]
impl ReplyTokenStore for EmbeddedStore {
    async fn remember(&self, token: &str, conversation_id: &str) -> StoreResult<()> {
        let (token, conversation) = (token.to_string(), conversation_id.to_string());
        self.write(move |tx| {
            let mut tokens = tx.open_table(REPLY_TOKENS).map_err(unavailable)?;
            if tokens.get(token.as_str()).map_err(unavailable)?.is_some() {
                return Ok(());
            }
            tokens
                .insert(token.as_str(), conversation.as_str())
                .map_err(unavailable)?;
            tx.open_table(TOKENS_BY_CONVERSATION)
                .map_err(unavailable)?
                .insert((conversation.as_str(), token.as_str()), ())
                .map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn conversation_of(&self, token: &str) -> StoreResult<Option<String>> {
        let token = token.to_string();
        self.read(move |tx| {
            let tokens = tx.open_table(REPLY_TOKENS).map_err(unavailable)?;
            let found = tokens.get(token.as_str()).map_err(unavailable)?;
            Ok(found.map(|c| c.value().to_string()))
        })
        .await
    }

    async fn token_of(&self, conversation_id: &str) -> StoreResult<Option<String>> {
        let conversation = conversation_id.to_string();
        self.read(move |tx| {
            let table = tx.open_table(TOKENS_BY_CONVERSATION).map_err(unavailable)?;
            let mut range = table.range((conversation.as_str(), "")..).map_err(unavailable)?;
            match range.next() {
                Some(row) => {
                    let (key, _) = row.map_err(unavailable)?;
                    let (c, t) = key.value();
                    Ok((c == conversation).then(|| t.to_string()))
                }
                None => Ok(None),
            }
        })
        .await
    }
}
