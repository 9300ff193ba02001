//! tollbooth: the `authorizationUrl` of a Function account, selling access to the owner's
//! predictors through Stripe. ARCHITECTURE.md follows a request and a webhook through here.
//!
//! Edges (`http`, `cli`, `app::jobs`) turn the outside world into calls on the hot path
//! (`gate`) and the ledger's use cases; the core (`gate`, `store`, `stripe`, `domain`) imports
//! no edge. `app` is the composition root, imported by nobody but the binary.

pub mod app;
pub mod cli;
pub mod clock;
pub mod config;
pub mod domain;
pub mod gate;
pub mod health;
pub mod http;
pub mod ledger;
pub mod metrics;
pub mod notify;
pub mod per_thread;
pub mod store;
pub mod stripe;
pub mod telemetry;
