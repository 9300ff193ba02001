//! Stripe: the API client, the calls behind the pages, webhook signatures, and the sync that
//! keeps the ledger in line.

pub mod billing;
mod client;
pub mod objects;
pub mod signature;
mod sync;

pub use client::{ApiError, StripeApi, stripe_id};
pub use sync::{SyncReport, Syncer};
