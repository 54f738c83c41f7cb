//! A node's listener on one Redis pub/sub channel, written once for the admin-change bus,
//! this node's chat channel and its rooms channel: a connection of its own (a subscribed
//! connection can do nothing else), subscribing again with a growing pause whenever
//! subscribing fails or the subscription is cut, until shutdown.
//!
//! Pub/sub delivers at most once, to whoever is subscribed at that moment: a listener
//! that can miss nothing is told when it subscribed again after a gap
//! ([`Listener::resubscribed`]) and reloads what it may have missed.

use std::future::Future;
use std::time::Duration;

use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use super::node::Cluster;

/// How a listener subscribes again.
#[derive(Debug, Clone, Copy)]
pub struct Resubscribing {
    /// How long subscribing may take: a Redis that accepts but does not answer must not
    /// hold the listener forever.
    pub timeout: Duration,
    /// The pause before subscribing again after a failure or a cut; doubled after each
    /// failure up to `longest_pause`, and back to this once subscribed.
    pub first_pause: Duration,
    pub longest_pause: Duration,
}

/// What a listener does with its channel.
pub trait Listener: Sync {
    /// Subscribed again after a gap (never after the first subscription).
    fn resubscribed(&self) -> impl Future<Output = ()> + Send;
    /// A message's payload, as published.
    fn received(&self, payload: String) -> impl Future<Output = ()> + Send;
}

/// Listens on `channel` (`name` in logs: "the admin-change bus") until `shutdown`.
pub async fn listen(
    cluster: &Cluster,
    channel: &str,
    name: &str,
    resubscribing: Resubscribing,
    listener: &impl Listener,
    shutdown: &CancellationToken,
) {
    let mut pause = resubscribing.first_pause;
    let mut subscribed_before = false;
    loop {
        let subscription = tokio::time::timeout(resubscribing.timeout, async {
            let mut pubsub = cluster.client().get_async_pubsub().await?;
            pubsub.subscribe(channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        });
        let pubsub = tokio::select! {
            _ = shutdown.cancelled() => return,
            s = subscription => s.unwrap_or_else(|_| Err(redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut)))),
        };
        match pubsub {
            Err(e) => tracing::warn!(error = %e, "cannot subscribe to {name}; retrying in {pause:?}"),
            Ok(mut pubsub) => {
                pause = resubscribing.first_pause;
                if subscribed_before {
                    tracing::info!("subscribed to {name} again");
                    listener.resubscribed().await;
                }
                subscribed_before = true;
                let mut messages = pubsub.on_message();
                loop {
                    let message = tokio::select! {
                        _ = shutdown.cancelled() => return,
                        m = messages.next() => m,
                    };
                    let Some(message) = message else {
                        tracing::warn!("the subscription to {name} was cut; subscribing again");
                        break;
                    };
                    match message.get_payload::<String>() {
                        Ok(payload) => listener.received(payload).await,
                        Err(_) => tracing::warn!("ignored a message that is no text on {name}"),
                    }
                }
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(resubscribing.longest_pause);
    }
}
