//! Calling webhook bots: for each bot with a hook (`bot_hooks`) and no socket, one task
//! POSTs it the frames a socket bot would be sent (`conversation`, a customer's `message`,
//! `customer_email`, `conversation_ended`), each signed as a webhook delivery is
//! (`webhooks::deliver::post_signed`: the address checked, private ones refused unless
//! allowed at the time of the call (`webhooks::private_addresses`), redirects not followed, a timeout, a cap on the answer read). The body is the frame's
//! JSON exactly as the socket gets it; `Switchboard-Event-Type` is its `type`. Calls go in
//! order per conversation, a few conversations at once (`core::bot_call_order`), so one
//! conversation whose call hangs holds up no other.
//!
//! A call is tried once: a customer is waiting, so a bot that cannot be reached (refused
//! address, no answer, not 2xx) or cannot keep up (its queue full) gives up that
//! conversation, which the hub hands over (`Command::BotCallFailed`). A bot that takes the
//! call and then never answers over the API hands over after `BOT_REPLY_TIMEOUT_SECS`, as
//! a socket bot does (the hub's reply timer, not this module). The admin replacing the
//! hook keeps the queue: the calls not yet made go to the new URL, and one that fails at
//! the old URL after the change is made again at the new one.
//!
//! On several nodes every node calls the hook for its own customers' conversations (each
//! node knows every hook: an admin's change crosses the admin bus), and records that it
//! holds a conversation before the bot's first call about it (`bot_relay::claim_stage`),
//! so the bot's answer, at whatever node it comes in, is forwarded there.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::task::JoinSet;

use super::Command;
use crate::bot_hooks::BotHook;
use crate::clock::now_ms;
use crate::cluster::node::Cluster;
use crate::core::bot_call_order::{CALLS_AT_ONCE, CallOrder};
use crate::store::SharedStore;
use crate::webhooks::deliver::{Signed, post_signed};
use crate::webhooks::private_addresses::PrivateAddresses;

/// Calls queued for one bot (waiting or under way). A bot holds a conversation per waiting
/// customer and is sent a few frames for each; one this far behind is not answering anyone
/// in time.
const QUEUE: usize = 256;

/// One frame for the bot, about conversation `chat_id`.
struct Call {
    chat_id: String,
    event_type: &'static str,
    body: String,
    /// Its place in the bot's queue, given back once the call is made or dropped.
    _place: OwnedSemaphorePermit,
}

/// The hub's handle on one webhook bot's calling task; dropping it (the hook removed, or
/// the hub stopping) retires the task: the calls still queued are not made.
pub(super) struct BotCaller {
    tx: mpsc::Sender<Call>,
    places: Arc<Semaphore>,
    retired: Arc<AtomicBool>,
    /// What it calls; replaced in place, so the queue goes on in order to the new URL.
    hook: watch::Sender<BotHook>,
}

impl BotCaller {
    /// Starts calling bot `bot` at `hook`; a failed call is told to the hub on `hub`.
    pub(super) fn start(
        bot: String,
        hook: BotHook,
        private: PrivateAddresses,
        timeout: Duration,
        hub: mpsc::WeakSender<Command>,
        cluster: Option<Cluster>,
    ) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        let retired = Arc::new(AtomicBool::new(false));
        let (hook, calls_at) = watch::channel(hook);
        let calling = Calling {
            retired: retired.clone(),
            bot,
            hook: calls_at,
            private,
            timeout,
            cluster,
            hub,
        };
        tokio::spawn(call_each(Arc::new(calling), rx));
        Self {
            tx,
            places: Arc::new(Semaphore::new(QUEUE)),
            retired,
            hook,
        }
    }

    /// Whether it calls `hook` now.
    pub(super) fn calls(&self, hook: &BotHook) -> bool {
        *self.hook.borrow() == *hook
    }

    /// The admin gave the bot a new hook: the calls not yet made go there.
    pub(super) fn replace(&self, hook: BotHook) {
        self.hook.send_replace(hook);
    }

    /// Queues `body` (a frame of type `event_type`, about `chat_id`) for the bot; false
    /// when its queue is full (the caller hands the conversation over).
    pub(super) fn call(&self, chat_id: &str, event_type: &'static str, body: String) -> bool {
        let Ok(place) = self.places.clone().try_acquire_owned() else {
            return false;
        };
        self.tx
            .try_send(Call {
                chat_id: chat_id.to_string(),
                event_type,
                body,
                _place: place,
            })
            .is_ok()
    }
}

impl Drop for BotCaller {
    fn drop(&mut self) {
        self.retired.store(true, Ordering::Release);
    }
}

/// What one bot's calling task calls, and how; shared by its calls under way.
struct Calling {
    /// Set once the hub no longer calls this bot: the task makes no further call.
    retired: Arc<AtomicBool>,
    bot: String,
    hook: watch::Receiver<BotHook>,
    /// Whether its calls may reach private addresses, as the node knows it at each call.
    private: PrivateAddresses,
    timeout: Duration,
    /// Several nodes: where a conversation's stage is recorded before its first call.
    cluster: Option<Cluster>,
    /// Told a call that failed.
    hub: mpsc::WeakSender<Command>,
}

impl Calling {
    fn retired(&self) -> bool {
        self.retired.load(Ordering::Acquire)
    }
}

/// Takes the hub's calls for one bot in order and makes them as `core::bot_call_order`
/// lets: in order per conversation, at most [`CALLS_AT_ONCE`] at once.
async fn call_each(calling: Arc<Calling>, mut rx: mpsc::Receiver<Call>) {
    let mut order = CallOrder::new(CALLS_AT_ONCE);
    let mut under_way = JoinSet::new();
    let mut chat_of = HashMap::new();
    loop {
        while let Some((chat, call)) = order.start_next() {
            // Checked before each call: the hook may have been removed meanwhile.
            if calling.retired() {
                // The calls under way finish (a failure told to the hub, which ignores it
                // for a conversation no longer the bot's); none is started.
                under_way.detach_all();
                return;
            }
            let started = under_way.spawn(make_call(calling.clone(), call));
            chat_of.insert(started.id(), chat);
        }
        tokio::select! {
            queued = rx.recv() => {
                let Some(call) = queued else {
                    under_way.detach_all();
                    return;
                };
                queue(&mut order, call);
                // Everything the hub queued by now, before any of it is made: a frame
                // followed by its conversation's end is then not sent.
                while let Ok(call) = rx.try_recv() {
                    queue(&mut order, call);
                }
            }
            Some(finished) = under_way.join_next_with_id() => {
                let id = match finished {
                    Ok((id, ())) => id,
                    Err(e) => {
                        tracing::error!(bot = %calling.bot, error = %e, "a webhook bot's call task failed");
                        e.id()
                    }
                };
                if let Some(chat) = chat_of.remove(&id) {
                    order.done(&chat);
                }
            }
        }
    }
}

/// Queues `call` in `order`; a conversation's end drops its frames still waiting (handed
/// over, or left: only its end is still told).
fn queue(order: &mut CallOrder<Call>, call: Call) {
    let chat = call.chat_id.clone();
    let ends = call.event_type == "conversation_ended";
    drop(order.push(&chat, call, ends));
}

/// Makes one call (at the hook as it is then); a failure not superseded by a new hook is
/// told to the hub.
async fn make_call(calling: Arc<Calling>, call: Call) {
    if call.event_type == "conversation"
        && let Some(cluster) = &calling.cluster
        && let Err(e) = super::bot_relay::claim_stage(cluster, &call.chat_id).await
    {
        // Its answers are then taken on this node only; one coming in elsewhere is
        // `not_your_chat`, and the reply timer hands the customer over.
        tracing::warn!(bot = %calling.bot, conversation = %call.chat_id, error = %e, "a bot conversation's node could not be recorded in Redis");
    }
    let event_id = uuid::Uuid::now_v7().to_string();
    loop {
        let hook = calling.hook.borrow().clone();
        let signed = Signed {
            url: &hook.url,
            secret: &hook.secret,
            body: &call.body,
            event_id: &event_id,
            event_type: call.event_type,
        };
        let posted = post_signed(&signed, now_ms(), calling.private.allowed(), calling.timeout).await;
        if posted.ok {
            return;
        }
        let why = match posted.status {
            Some(status) => format!("answered {status}: {}", posted.excerpt),
            None => posted.excerpt,
        };
        if !calling.retired() && *calling.hook.borrow() != hook {
            // The admin replaced the URL while this call was under way: the conversation is
            // still the bot's, so the frame goes to the URL it is called at now.
            tracing::info!(bot = %calling.bot, conversation = %call.chat_id, kind = call.event_type, %why, "a webhook bot's call failed at its replaced URL; made again at the new one");
            continue;
        }
        tracing::warn!(bot = %calling.bot, conversation = %call.chat_id, kind = call.event_type, %why, "a webhook bot's call failed");
        // The conversation ended with this frame: nobody waits on it.
        if call.event_type == "conversation_ended" {
            return;
        }
        let Some(hub) = calling.hub.upgrade() else { return };
        let failed = Command::BotCallFailed {
            bot: calling.bot.clone(),
            chat_id: call.chat_id,
        };
        let _ = hub.send(failed).await;
        return;
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
