//! SMS through an HTTP webhook (`SMS_WEBHOOK_URL`): one POST with a JSON body
//! `{"to": "+4915…", "text": "…"}` per message; any 2xx answer is success. A small
//! adapter in front of any SMS gateway speaks this. `https://` works (rustls, with the
//! system's CA certificates, or the bundle `SSL_CERT_FILE` names).

use std::time::Duration;

use async_trait::async_trait;

use super::{Outgoing, SendError, Sender};

/// How long the gateway may take to answer; the agent waits for it.
const SEND_TIMEOUT: Duration = Duration::from_secs(15);

pub struct SmsWebhook {
    url: String,
    /// The client, or why none could be built (no usable CA certificates): then every
    /// sending says so to the agent instead of failing start-up or dropping messages.
    client: Result<reqwest::Client, String>,
}

impl SmsWebhook {
    pub fn new(url: String) -> Self {
        let client = reqwest::Client::builder().timeout(SEND_TIMEOUT).build().map_err(|e| {
            tracing::error!(error = %e, "the SMS webhook's HTTP client cannot be built; SMS will fail");
            format!("the SMS webhook cannot be used: {e}")
        });
        Self { url, client }
    }
}

#[async_trait]
impl Sender for SmsWebhook {
    fn channel(&self) -> &'static str {
        "sms"
    }

    async fn send(&self, message: &Outgoing) -> Result<(), SendError> {
        let body = serde_json::json!({"to": message.to, "text": message.text});
        let client = self.client.as_ref().map_err(|e| SendError::new(e.clone()))?;
        let answer = client.post(&self.url).json(&body).send().await.map_err(|e| {
            tracing::warn!(error = %e, "SMS webhook unreachable");
            SendError::new("the SMS gateway could not be reached")
        })?;
        if answer.status().is_success() {
            Ok(())
        } else {
            Err(SendError::new(format!(
                "the SMS gateway refused the message ({})",
                answer.status()
            )))
        }
    }
}
