//! Admin changes made on another node, applied to this node's hub: the bus
//! (`cluster::bus`) says what changed; this reloads it from the shared store and feeds the
//! hub the same commands the admin handlers use.

use crate::auth::Sessions;
use crate::cluster::bus::{AdminChange, ApplyAdminChanges};
use crate::hub::{Hub, SessionEnd};
use crate::store::SharedStore;

/// What a node applies received changes to: its store (the truth), its hub, its
/// session cache and its API token cache.
#[derive(Clone)]
pub struct Appliers {
    pub store: SharedStore,
    pub hub: Hub,
    pub sessions: Sessions,
    pub api_tokens: crate::api_tokens::ApiTokens,
    /// This node's webhooks, told when endpoints changed elsewhere.
    pub webhooks: Option<crate::webhooks::Webhooks>,
}

impl ApplyAdminChanges for Appliers {
    async fn apply(&self, change: AdminChange) -> Result<(), String> {
        match change {
            AdminChange::Account { id } => match self.store.account(&id).await {
                Ok(account) => self.hub.account_changed(account).await.map_err(|e| e.to_string()),
                Err(crate::store::StoreError::NotFound) => Ok(()),
                Err(e) => Err(e.to_string()),
            },
            AdminChange::Categories { removed } => {
                let categories = self.store.categories().await.map_err(|e| e.to_string())?;
                self.hub
                    .categories_changed(categories, removed)
                    .await
                    .map_err(|e| e.to_string())
            }
            AdminChange::Rated {
                agent,
                conversation,
                rating,
            } => self
                .hub
                .chat_rated(&agent, &conversation, rating)
                .await
                .map_err(|e| e.to_string()),
            AdminChange::Line { agent, frame } => {
                self.hub.frame_to_agent(agent, frame).await.map_err(|e| e.to_string())
            }
            AdminChange::Conversation { record, woken } => self
                .hub
                .conversation_changed(record, woken)
                .await
                .map_err(|e| e.to_string()),
            AdminChange::Bots {} => crate::hub::bot_calls::told(&self.store, &self.hub).await,
            AdminChange::Webhooks {} => {
                if let Some(webhooks) = &self.webhooks {
                    webhooks.endpoints_changed().await;
                }
                Ok(())
            }
            AdminChange::ApiTokenRevoked { id } => {
                self.api_tokens.forget(&id);
                crate::hub::bot_token_revoked(&self.store, &self.hub, &id).await
            }
            AdminChange::SessionsEnded { ids } => {
                self.sessions.forget(&ids);
                self.hub
                    .sessions_ended(ids, SessionEnd::Revoked)
                    .await
                    .map_err(|e| e.to_string())
            }
        }
    }

    /// After a gap in the subscription: every account and the category list, reloaded.
    async fn resync(&self) -> Result<(), String> {
        // A revocation missed in the gap: every token is asked of the store again.
        self.api_tokens.forget_all();
        // And a bot socket opened with a token revoked in the gap closes.
        let revoked = self.store.api_tokens().await.map_err(|e| e.to_string())?;
        let revoked = revoked
            .into_iter()
            .filter(|t| t.revoked_at.is_some())
            .map(|t| t.id)
            .collect();
        self.hub.api_tokens_revoked(revoked).await.map_err(|e| e.to_string())?;
        self.apply(AdminChange::Categories { removed: None }).await?;
        self.apply(AdminChange::Bots {}).await?;
        for account in self.store.accounts().await.map_err(|e| e.to_string())? {
            self.hub.account_changed(account).await.map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}
