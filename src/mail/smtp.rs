//! Mail through a real SMTP relay (`SMTP_URL`), with `lettre`'s async, pooled transport.

use std::time::Duration;

use async_trait::async_trait;
use lettre::message::header::ContentType;
use lettre::message::{Attachment as LettreAttachment, Mailbox, MultiPart, SinglePart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

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
            .map_err(|e| SendError(format!("SMTP_URL: {e}")))?
            .timeout(Some(SEND_TIMEOUT))
            .build();
        let from = from.parse().map_err(|e| SendError(format!("MAIL_FROM: {e}")))?;
        Ok(Self { transport, from })
    }
}

#[async_trait]
impl Sender for Smtp {
    fn channel(&self) -> &'static str {
        "mail"
    }

    async fn send(&self, message: &Outgoing) -> Result<(), SendError> {
        let to: Mailbox = message
            .to
            .parse()
            .map_err(|_| SendError(format!("{:?} is not a mail address", message.to)))?;
        let builder = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(message.subject.clone())
            .message_id(message.message_id.as_ref().map(|id| format!("<{id}>")));
        let built = if let Some(html) = &message.html {
            // Attachments are not sent with an HTML part (no mail has both).
            builder.multipart(MultiPart::alternative_plain_html(message.text.clone(), html.clone()))
        } else if message.attachments.is_empty() {
            builder.body(message.text.clone())
        } else {
            let mut parts = MultiPart::mixed().singlepart(SinglePart::plain(message.text.clone()));
            for a in &message.attachments {
                let kind = ContentType::parse(&a.content_type)
                    .map_err(|e| SendError(format!("attachment {:?}: bad content type: {e}", a.filename)))?;
                parts = parts.singlepart(LettreAttachment::new(a.filename.clone()).body(a.content.clone(), kind));
            }
            builder.multipart(parts)
        };
        let mail = built.map_err(|e| SendError(format!("the mail could not be built: {e}")))?;
        match tokio::time::timeout(SEND_TIMEOUT, self.transport.send(mail)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "SMTP delivery failed");
                Err(SendError(format!("the mail server refused or failed: {e}")))
            }
            Err(_) => Err(SendError("the mail server did not answer in time".into())),
        }
    }
}
