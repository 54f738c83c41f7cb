//! Mail through a real SMTP relay (`SMTP_URL`), with `lettre`'s async, pooled transport.

use std::time::Duration;

use async_trait::async_trait;
use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::compose::compose;
use super::{Outgoing, SendError, Sender};

/// How long one delivery to the relay may take before it counts as failed: an agent
/// waits for it, so it is short, and a relay slower than this is broken for them anyway.
const SEND_TIMEOUT: Duration = Duration::from_secs(15);

pub struct Smtp {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl Smtp {
    pub fn new(url: &str, from: &str) -> Result<Self, SendError> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| SendError::new(format!("SMTP_URL: {e}")))?
            .timeout(Some(SEND_TIMEOUT))
            .build();
        let from = from.parse().map_err(|e| SendError::new(format!("MAIL_FROM: {e}")))?;
        Ok(Self { transport, from })
    }
}

#[async_trait]
impl Sender for Smtp {
    fn channel(&self) -> &'static str {
        "mail"
    }

    async fn send(&self, message: &Outgoing) -> Result<(), SendError> {
        let mail = compose(&self.from, message)?;
        match tokio::time::timeout(SEND_TIMEOUT, self.transport.send(mail)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, permanent = e.is_permanent(), "SMTP delivery failed");
                Err(SendError {
                    permanent: e.is_permanent(),
                    ..SendError::new(format!("the mail server refused or failed: {e}"))
                })
            }
            Err(_) => Err(SendError::new("the mail server did not answer in time")),
        }
    }
}
