//! The zero-config sender: writes what would be sent to the log, so a hub without
//! SMTP or an SMS gateway still shows the invitation (its link and code) to the operator.

use async_trait::async_trait;

use super::{Outgoing, SendError, Sender};

pub struct LogOnly {
    channel: &'static str,
}

impl LogOnly {
    pub fn new(channel: &'static str) -> Self {
        Self { channel }
    }
}

#[async_trait]
impl Sender for LogOnly {
    fn channel(&self) -> &'static str {
        self.channel
    }

    fn delivers(&self) -> bool {
        false
    }

    async fn send(&self, message: &Outgoing) -> Result<(), SendError> {
        tracing::info!(
            channel = self.channel,
            to = %message.to,
            subject = %message.subject,
            text = %message.text,
            message_key = message.message_key.as_deref().unwrap_or(""),
            attachments = message.attachments.len(),
            "not configured to send {}; this is what would be sent",
            self.channel
        );
        Ok(())
    }
}
