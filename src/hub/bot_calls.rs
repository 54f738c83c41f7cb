//! Calling webhook bots: for each bot with a hook (`bot_hooks`) and no socket, one task
//! POSTs it, in order, the frames a socket bot would be sent (`conversation`, a customer's
//! `message`, `customer_email`, `conversation_ended`), each signed as a webhook delivery is
//! (`webhooks::deliver::post_signed`: the address checked against `WEBHOOK_ALLOW_PRIVATE`,
//! redirects not followed, a timeout, a cap on the answer read). The body is the frame's
//! JSON exactly as the socket gets it; `Switchboard-Event-Type` is its `type`.
//!
//! A call is tried once: a customer is waiting, so a bot that cannot be reached (refused
//! address, no answer, not 2xx) or cannot keep up (its queue full) gives up that
//! conversation, which the hub hands over (`Command::BotCallFailed`). A bot that takes the
//! call and then never answers over the API hands over after `BOT_REPLY_TIMEOUT_SECS`, as
//! a socket bot does (the hub's reply timer, not this module).
//!
//! On several nodes every node calls the hook for its own customers' conversations (each
//! node knows every hook: an admin's change crosses the admin bus), and records that it
//! holds a conversation before the bot's first call about it (`bot_relay::claim_stage`),
//! so the bot's answer, at whatever node it comes in, is forwarded there.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

use super::Command;
use crate::bot_hooks::BotHook;
use crate::clock::now_ms;
use crate::cluster::node::Cluster;
use crate::store::SharedStore;
use crate::webhooks::deliver::{Signed, post_signed};

/// Calls queued for one bot. A bot holds a conversation per waiting customer and is sent a
/// few frames for each; one this far behind is not answering anyone in time.
const QUEUE: usize = 256;

/// One frame for the bot, about conversation `chat_id`.
struct Call {
    chat_id: String,
    event_type: &'static str,
    body: String,
}

/// The conversations whose `conversation_ended` is queued and not yet called: their
/// earlier frames still queued are stale (handed over, or left) and are not sent.
type Ended = Arc<Mutex<HashSet<String>>>;

/// The hub's handle on one webhook bot's calling task; dropping it (the hook replaced or
/// removed, or the bot on a socket now) retires the task: the calls still queued are not
/// made, as they would go to a URL the admin no longer wants called.
pub(super) struct BotCaller {
    tx: mpsc::Sender<Call>,
    retired: Arc<AtomicBool>,
    ended: Ended,
    /// What it calls: the same hook given again keeps this caller and its queue in order.
    pub(super) hook: BotHook,
}

impl BotCaller {
    /// Starts calling bot `bot` at `hook`; a failed call is told to the hub on `hub`.
    pub(super) fn start(
        bot: String,
        hook: BotHook,
        allow_private: bool,
        timeout: Duration,
        hub: mpsc::WeakSender<Command>,
        cluster: Option<Cluster>,
    ) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        let retired = Arc::new(AtomicBool::new(false));
        let ended = Ended::default();
        let calling = Calling {
            retired: retired.clone(),
            ended: ended.clone(),
            bot,
            hook: hook.clone(),
            allow_private,
            timeout,
            cluster,
        };
        tokio::spawn(call_each(calling, hub, rx));
        Self {
            tx,
            retired,
            ended,
            hook,
        }
    }

    /// Queues `body` (a frame of type `event_type`, about `chat_id`) for the bot; false
    /// when its queue is full (the caller hands the conversation over).
    pub(super) fn call(&self, chat_id: &str, event_type: &'static str, body: String) -> bool {
        let ends = event_type == "conversation_ended";
        if ends {
            lock(&self.ended).insert(chat_id.to_string());
        }
        let queued = self
            .tx
            .try_send(Call {
                chat_id: chat_id.to_string(),
                event_type,
                body,
            })
            .is_ok();
        if ends && !queued {
            lock(&self.ended).remove(chat_id);
        }
        queued
    }
}

fn lock(ended: &Ended) -> std::sync::MutexGuard<'_, HashSet<String>> {
    // Nothing panics while holding it; a poisoned set is still a valid set.
    ended.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Drop for BotCaller {
    fn drop(&mut self) {
        self.retired.store(true, Ordering::Release);
    }
}

/// What one bot's calling task calls, and how.
struct Calling {
    /// Set once the hub no longer calls this hook: the task makes no further call.
    retired: Arc<AtomicBool>,
    ended: Ended,
    bot: String,
    hook: BotHook,
    allow_private: bool,
    timeout: Duration,
    /// Several nodes: where a conversation's stage is recorded before its first call.
    cluster: Option<Cluster>,
}

async fn call_each(calling: Calling, hub: mpsc::WeakSender<Command>, mut rx: mpsc::Receiver<Call>) {
    let Calling {
        retired,
        ended,
        bot,
        hook,
        allow_private,
        timeout,
        cluster,
    } = calling;
    while let Some(call) = rx.recv().await {
        // Checked before each call: one may have taken until its timeout, and the admin
        // replaced the URL meanwhile.
        if retired.load(Ordering::Acquire) {
            return;
        }
        // A conversation handed over or left meanwhile: only its end is still told.
        {
            let mut ended = lock(&ended);
            if call.event_type == "conversation_ended" {
                ended.remove(&call.chat_id);
            } else if ended.contains(&call.chat_id) {
                continue;
            }
        }
        if call.event_type == "conversation"
            && let Some(cluster) = &cluster
            && let Err(e) = super::bot_relay::claim_stage(cluster, &call.chat_id).await
        {
            // Its answers are then taken on this node only; one coming in elsewhere is
            // `not_your_chat`, and the reply timer hands the customer over.
            tracing::warn!(bot = %bot, conversation = %call.chat_id, error = %e, "a bot conversation's node could not be recorded in Redis");
        }
        let event_id = uuid::Uuid::now_v7().to_string();
        let signed = Signed {
            url: &hook.url,
            secret: &hook.secret,
            body: &call.body,
            event_id: &event_id,
            event_type: call.event_type,
        };
        let posted = post_signed(&signed, now_ms(), allow_private, timeout).await;
        if posted.ok {
            continue;
        }
        let why = match posted.status {
            Some(status) => format!("answered {status}: {}", posted.excerpt),
            None => posted.excerpt,
        };
        tracing::warn!(bot = %bot, conversation = %call.chat_id, kind = call.event_type, %why, "a webhook bot's call failed");
        // The conversation ended with this frame: nobody waits on it.
        if call.event_type == "conversation_ended" {
            continue;
        }
        let Some(hub) = hub.upgrade() else { return };
        let failed = Command::BotCallFailed {
            bot: bot.clone(),
            chat_id: call.chat_id,
        };
        if hub.send(failed).await.is_err() {
            return;
        }
    }
}

/// Tells a starting hub every bot's hook and every category's bot; a store that does not
/// answer is tried again (every 5 s) until it does.
pub async fn load_bot_hooks(store: SharedStore, hub: super::Hub) {
    loop {
        match told(&store, &hub).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(error = %e, "webhook bots wait for the store");
                tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            }
        }
    }
}

/// Tells `hub` every category's bot and every live bot's hook (or none) as the store has
/// them: at start, and on several nodes whenever another node changed one (the admin bus's
/// `bots`) or the bus had a gap.
pub async fn told(store: &SharedStore, hub: &super::Hub) -> Result<(), String> {
    let hooks = crate::bot_hooks::all(store).await.map_err(|e| e.to_string())?;
    let named = crate::category_bots::all(store).await.map_err(|e| e.to_string())?;
    for (category, bot) in named {
        // A hub gone is a hub stopping: nothing to tell.
        let _ = hub.set_category_bot(category, bot).await;
    }
    for (bot, hook) in hooks {
        let _ = hub.set_bot_hook(bot, hook).await;
    }
    Ok(())
}

/// API token `id` was revoked: a bot socket opened with it closes (`Hub::api_tokens_revoked`),
/// and a webhook bot left without a live token is called no more (its conversations handed
/// over), as it could not answer. The store is asked which bot the token acted as.
pub async fn bot_token_revoked(store: &SharedStore, hub: &super::Hub, id: &str) -> Result<(), String> {
    hub.api_tokens_revoked(vec![id.to_string()])
        .await
        .map_err(|e| e.to_string())?;
    let tokens = store.api_tokens().await.map_err(|e| e.to_string())?;
    let Some(bot) = tokens.iter().find(|t| t.id == id).and_then(|t| t.bot.clone()) else {
        return Ok(());
    };
    let live = tokens.iter().any(|t| {
        t.bot.as_deref() == Some(bot.as_str())
            && crate::core::api_tokens::spent(t.revoked_at, t.expires_at, now_ms()).is_none()
    });
    if !live {
        hub.set_bot_hook(bot, None).await.map_err(|e| e.to_string())?;
    }
    Ok(())
}
