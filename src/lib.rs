//! tollbooth: the `authorizationUrl` of a Function account, selling access to the owner's
//! predictors through Stripe. See ARCHITECTURE.md for the way a request takes through here.

pub mod cli;
pub mod config;
pub mod domain;
pub mod error;
pub mod gate;
pub mod issue;
pub mod routes;
pub mod session;
pub mod startup;
pub mod store;
pub mod stripe;
pub mod telemetry;
