//! Staff accounts and sessions, in the in-memory store.

use async_trait::async_trait;

use super::*;

#[async_trait]
impl AccountStore for MemoryStore {
    async fn create_account(&self, account: Account) -> StoreResult<()> {
        self.with(|s| {
            add_new(&mut s.accounts, account, |a, new| {
                a.id == new.id || a.username == new.username
            })
        })
    }

    async fn update_account(&self, account: Account) -> StoreResult<()> {
        self.with(|s| {
            if s.accounts
                .iter()
                .any(|a| a.id != account.id && a.username == account.username)
            {
                return Err(StoreError::Conflict);
            }
            let slot = s
                .accounts
                .iter_mut()
                .find(|a| a.id == account.id)
                .ok_or(StoreError::NotFound)?;
            *slot = account;
            Ok(())
        })
    }

    async fn account(&self, id: &str) -> StoreResult<Account> {
        self.with(|s| found(s.accounts.iter().find(|a| a.id == id)))
    }

    async fn account_by_username(&self, username: &str) -> StoreResult<Account> {
        self.with(|s| found(s.accounts.iter().find(|a| a.username == username)))
    }

    async fn accounts(&self) -> StoreResult<Vec<Account>> {
        self.with(|s| Ok(s.accounts.clone()))
    }

    async fn create_session(&self, session: StoredSession) -> StoreResult<()> {
        self.with(|s| {
            if s.sessions.contains_key(&session.id) {
                return Err(StoreError::Conflict);
            }
            s.sessions.insert(session.id.clone(), session);
            Ok(())
        })
    }

    async fn session(&self, id: &str) -> StoreResult<StoredSession> {
        self.with(|s| found(s.sessions.get(id)))
    }

    async fn delete_session(&self, id: &str) -> StoreResult<bool> {
        self.with(|s| Ok(s.sessions.remove(id).is_some()))
    }

    async fn delete_sessions_of(&self, account_id: &str) -> StoreResult<Vec<String>> {
        self.with(|s| {
            let ids: Vec<String> = s
                .sessions
                .values()
                .filter(|x| x.account_id == account_id)
                .map(|x| x.id.clone())
                .collect();
            for id in &ids {
                s.sessions.remove(id);
            }
            Ok(ids)
        })
    }

    async fn sweep_sessions(&self, now: Millis) -> StoreResult<u64> {
        self.with(|s| {
            let before = s.sessions.len();
            s.sessions.retain(|_, x| x.expires_at > now);
            Ok((before - s.sessions.len()) as u64)
        })
    }
}
