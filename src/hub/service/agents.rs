//! Agents around the routing core: a desk connecting (or taking over), its welcome,
//! profile and queue figures, and an admin's changes to accounts and categories. Split
//! out of `service.rs` by concern.

use super::{AgentInfo, HubState, close};
use crate::clock::now_ms;
use crate::cluster::replica::RoutingOp;
use crate::core::routing::{AgentId, CategoryId, Party};
use crate::hub::delivery::{ConnId, Recipient};
use crate::protocol::{EndedChat, From, ServerFrame};
use crate::store::{Account, Category};

impl HubState {
    pub(super) fn agent_connected(&mut self, conn: ConnId, account: Account) {
        if self.cluster.is_some() {
            return self.cluster_agent_connected(conn, account);
        }
        let id = AgentId(account.id.clone());
        let mut out = vec![];
        let mut back_from_grace = false;
        let mut replaced = false;
        if let Some(info) = self.agents.get_mut(&id) {
            // Back within the grace period, or a second tab: this connection takes over.
            let previous = info.conn.replace(conn);
            info.account = account;
            match previous {
                Some(old) => {
                    replaced = true;
                    self.delivery.detach(&Recipient::Agent(id.clone()), old);
                    if let Some(entry) = self.conns.get_mut(&old) {
                        entry.who = None;
                    }
                    self.close_conn(old, close::REPLACED, "signed in on another connection");
                }
                None => back_from_grace = true,
            }
        } else {
            let categories = account.categories.iter().cloned().map(CategoryId::from);
            // Fresh agents start away, so coming online pairs nobody before the welcome.
            if let Err(e) = self
                .routing
                .agent_online(id.clone(), categories, account.max_chats, false, &mut out)
            {
                tracing::warn!(agent = %id.0, error = %e, "agent could not come online");
                self.error_to_conn(conn, e.code(), e.to_string(), None);
                return self.close_conn(conn, 1008, "invalid agent settings");
            }
            self.agents.insert(
                id.clone(),
                AgentInfo {
                    account,
                    conn: Some(conn),
                    sign_in: None,
                },
            );
        }
        self.set_who(conn, Recipient::Agent(id.clone()));
        // Their chats as they stand; whatever their return causes (new pairings) follows as frames.
        let welcome = self.agent_welcome(&id);
        self.send_to_conn(conn, &welcome);
        self.send_notes_of_chats(&id);
        self.send_queue_stats(&id);
        if replaced {
            self.resend_offers(&id, conn);
        }
        if back_from_grace {
            let _ = self.routing.agent_resumed(&id, &mut out);
        }
        self.apply(out);
        if !replaced {
            // A replaced desk connection is the same presence on the staff roster, not another one.
            self.buddy_agent_online(&id);
        }
    }

    pub(in crate::hub) fn agent_account(&self, id: &AgentId) -> Option<Account> {
        self.agents.get(id).map(|a| a.account.clone())
    }

    pub(super) fn agent_welcome(&self, id: &AgentId) -> ServerFrame {
        let view = self.routing.agent(id).expect("welcomed agents are online");
        let info = &self.agents[id];
        ServerFrame::AgentWelcome {
            agent_id: id.0.clone(),
            name: info.account.display_name.clone(),
            categories: self.category_refs(&view.categories),
            max_chats: view.limit,
            available: view.available,
            status: view.status().word(),
            away_reason: view.away_reason.clone(),
            max_message_len: self.settings.max_message_len,
            draft_preview: self.settings.draft_preview,
            chats: view
                .chats
                .iter()
                .filter_map(|c| self.snapshot(*c, Party::Agent, 0))
                .collect(),
            ended: self.ended_away.of(id),
        }
    }

    /// Tells `agent` their chat `chat_id` ended (`chat_ended`), and keeps how for their next
    /// welcome: sent while they have no connection (away within their grace period, or
    /// past it), it reaches nobody (`ended_away`: here, and on several nodes in Redis too,
    /// for a welcome on another node).
    pub(super) fn chat_ended_to_agent(&mut self, agent: &AgentId, chat_id: &str, ended_by: From, reason: &'static str) {
        let frame = ServerFrame::ChatEnded {
            chat_id: chat_id.to_string(),
            ended_by,
            reason,
            rating: None,
        };
        self.send(Recipient::Agent(agent.clone()), &frame);
        let at = self.cluster.as_ref().map_or_else(now_ms, |c| c.stream_time());
        let ended = EndedChat {
            chat_id: chat_id.to_string(),
            ended_by,
            reason,
            at,
        };
        self.ended_away.note(agent, ended);
    }

    pub(super) fn send_profile(&mut self, id: &AgentId) {
        let Some(view) = self.routing.agent(id) else { return };
        let frame = ServerFrame::Profile {
            categories: self.category_refs(&view.categories),
            max_chats: view.limit,
            available: view.available,
            status: view.status().word(),
            away_reason: view.away_reason.clone(),
        };
        self.send(Recipient::Agent(id.clone()), &frame);
    }

    pub(super) fn send_queue_stats(&mut self, id: &AgentId) {
        let Some(view) = self.routing.agent(id) else { return };
        let waiting = view
            .categories
            .iter()
            .map(|c| (c.0.to_string(), self.routing.waiting(c)))
            .collect();
        let mut longest_wait_secs = self.longest_waits();
        longest_wait_secs.retain(|c, _| view.categories.iter().any(|held| held.as_str() == c));
        self.send(
            Recipient::Agent(id.clone()),
            &ServerFrame::QueueStats {
                waiting,
                longest_wait_secs,
            },
        );
    }

    pub(super) fn account_changed(&mut self, account: Account) {
        let id = AgentId(account.id.clone());
        self.buddy_account_changed(&account);
        let Some(info) = self.agents.get_mut(&id) else { return };
        info.account = account.clone();
        let conn = info.conn;
        let mut out = vec![];
        if !account.enabled {
            if self.cluster.is_some() {
                self.route(RoutingOp::AgentOffline(id.clone(), None), None);
            } else {
                self.routing.agent_offline(&id, &mut out);
            }
            self.agents.remove(&id);
            self.delivery
                .close(&Recipient::Agent(id.clone()), close::DISABLED, "account disabled");
            self.buddy_account_disabled(&account);
            if let Some(conn) = conn
                && let Some(entry) = self.conns.get_mut(&conn)
            {
                entry.who = None;
                self.buddy_agent_offline(&id);
            }
        } else if self.cluster.is_some() {
            // Profile and queue figures go out when the replica replays the changes.
            let categories = account.categories.iter().cloned().map(CategoryId::from).collect();
            self.route(RoutingOp::SetCategories(id.clone(), categories), None);
            self.route(RoutingOp::SetLimit(id.clone(), account.max_chats), None);
        } else {
            let categories = account.categories.iter().cloned().map(CategoryId::from);
            let _ = self.routing.set_categories(&id, categories, &mut out);
            let _ = self.routing.set_limit(&id, account.max_chats, &mut out);
            self.send_profile(&id);
            self.send_queue_stats(&id);
        }
        self.apply(out);
    }

    pub(super) fn categories_changed(&mut self, categories: Vec<Category>, removed: Option<String>) {
        if self.cluster.is_some() {
            return self.cluster_categories_changed(categories, removed);
        }
        let mut out = vec![];
        if let Some(removed) = removed {
            let _ = self.routing.remove_category(&CategoryId::from(removed), &mut out);
        }
        self.category_names.clear();
        for c in categories {
            let _ = self.routing.add_category(CategoryId::from(c.id.as_str()));
            self.category_names.insert(c.id, c.name);
        }
        self.apply(out);
        // Categories that now exist again (or anew) may be held by online agents' accounts.
        let online: Vec<AgentId> = self.agents.keys().cloned().collect();
        for id in online {
            let held = self.agents[&id]
                .account
                .categories
                .iter()
                .cloned()
                .map(CategoryId::from);
            let mut out = vec![];
            let _ = self.routing.set_categories(&id, held, &mut out);
            self.send_profile(&id);
            self.send_queue_stats(&id);
            self.apply(out);
        }
    }
}
