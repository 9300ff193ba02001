//! Signing in without a key: a customer who lost every key asks for a one-time link sent to the
//! email their account has. The link's token is stored only as its SHA-256, works once and
//! for 15 minutes, and the request is answered the same whether or not the email is known
//! (the email goes out beside the request, so its timing tells nothing either).

use std::sync::Arc;

use sha2::{Digest as _, Sha256};

use super::{Ledger, SESSION_LIFETIME, Session};
use crate::clock::unix_now;
use crate::domain::{hex, random_base62};
use crate::notify::email::Mailer;
use crate::store::{Keys, Sessions, SignInLink};

/// How long a link works.
pub const LINK_LIFETIME: i64 = 15 * 60;

fn token_hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

impl Ledger {
    /// Sends a sign-in link to each account with this email, if any; returns at once, the
    /// sending going on beside the caller. Without email configured, does nothing.
    pub async fn send_sign_in_link(&self, email: &str) -> anyhow::Result<()> {
        let Some(mailer) = &self.mailer else {
            return Ok(());
        };
        let now = unix_now();
        for customer in self.db.customers_by_email(email.trim()).await? {
            let Some(to) = customer.email else { continue };
            // 190 random bits, as a session id.
            let token = random_base62(32);
            self.db
                .add_sign_in_link(&SignInLink {
                    token_hash: token_hash(&token),
                    customer_id: customer.id,
                    created_at: now,
                    expires_at: now + LINK_LIFETIME,
                })
                .await?;
            let link = format!("{}/account/email-sign-in?token={token}", self.public_url);
            let body = format!(
                "Someone, we hope you, asked to sign in to your account at\n{}/account\n\
                 with this email address. Sign in here:\n\n{link}\n\nThe link works once, \
                 within 15 minutes. Once signed in you can\ncreate a new key.\n\nIf you did \
                 not ask for it, ignore this email: nothing changes.\n",
                self.public_url
            );
            let mailer = Arc::clone(mailer);
            tokio::spawn(async move {
                if let Err(e) = send_with_retries(&mailer, &to, body).await {
                    tracing::warn!(error = %e, "Failed to send a sign-in link");
                }
            });
        }
        Ok(())
    }

    /// Uses a link's token: a session for its customer, or `None` when the link is unknown,
    /// used already or expired.
    pub async fn sign_in_with_link(&self, token: &str) -> anyhow::Result<Option<Session>> {
        let now = unix_now();
        let token = token.trim();
        if token.is_empty() || token.len() > 64 {
            return Ok(None);
        }
        let Some(customer_id) = self.db.use_sign_in_link(&token_hash(token), now).await? else {
            return Ok(None);
        };
        let session = Session {
            id: format!("ses_{}", random_base62(32)),
            customer_id,
            key_id: None,
            created_at: now,
            expires_at: now + SESSION_LIFETIME,
        };
        self.db.start_session(&session).await?;
        Ok(Some(session))
    }
}

/// A few tries a few seconds apart: a link is worth sending only while it works.
async fn send_with_retries(mailer: &Mailer, to: &str, body: String) -> anyhow::Result<()> {
    let mut wait = std::time::Duration::from_secs(2);
    let mut tries = 0;
    loop {
        match mailer.send(to, "Your sign-in link", body.clone()).await {
            Ok(()) => return Ok(()),
            Err(e) if tries >= 3 => return Err(e),
            Err(e) => {
                tracing::info!(error = %e, "Sending a sign-in link failed; trying again");
                tokio::time::sleep(wait).await;
                wait *= 2;
                tries += 1;
            }
        }
    }
}
