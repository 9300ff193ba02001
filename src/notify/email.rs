//! Email to customers over SMTP (`SMTP_URL`, `EMAIL_FROM`): plain-text messages, each sent with
//! a timeout so a slow server never holds what waits on it.

use std::time::Duration;

use anyhow::Context as _;
use lettre::message::{Mailbox, header::ContentType};
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Message, Tokio1Executor};
use secrecy::{ExposeSecret as _, SecretString};

/// How long one message may take to hand to the SMTP server.
const SEND_TIMEOUT: Duration = Duration::from_secs(20);

pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl Mailer {
    /// `smtp_url` (`SMTP_URL`) and `from` (`EMAIL_FROM`).
    pub fn new(smtp_url: &SecretString, from: &str) -> anyhow::Result<Self> {
        // The URL holds the password: errors name the variable, never its value.
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(smtp_url.expose_secret())
            .map_err(|_| anyhow::anyhow!("SMTP_URL is not an SMTP URL lettre can use"))?
            .timeout(Some(SEND_TIMEOUT))
            .build();
        let from = from.parse().context("EMAIL_FROM is not an email address")?;
        Ok(Self { transport, from })
    }

    /// Sends a plain-text message to `to`.
    pub async fn send(&self, to: &str, subject: &str, body: String) -> anyhow::Result<()> {
        let to: Mailbox = to
            .parse()
            .context("The recipient is not an email address")?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .body(body)
            .context("Failed to build an email")?;
        tokio::time::timeout(SEND_TIMEOUT, self.transport.send(message))
            .await
            .context("The SMTP server did not answer in time")?
            .context("The SMTP server refused the email")?;
        Ok(())
    }
}
