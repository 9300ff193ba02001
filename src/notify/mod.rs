//! Messages that leave the service on their own: email to customers (`SMTP_URL`) and signed
//! webhooks to the owner (`OWNER_WEBHOOK_URL`).

pub mod email;
pub mod webhook;
