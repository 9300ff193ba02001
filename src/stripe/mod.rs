//! Stripe: the API client, webhook signatures, and the sync that keeps the ledger in line.

mod client;
pub mod meters;
pub mod objects;
pub mod signature;
mod sync;
pub mod worker;

pub use client::{ApiError, StripeApi, stripe_id};
pub use sync::{SyncReport, Syncer};
