//! The service over HTTP, on SQLite, and on PostgreSQL when `TEST_DATABASE_URL` is set.

mod admin;
mod alerts;
mod audit;
mod authorize;
mod browser;
mod cold_start;
mod conformance;
mod dashboard;
mod email;
mod exactness;
mod fake_checkout;
mod faults;
mod freshness;
mod health;
mod helpers;
mod instances;
mod keys;
mod localstripe;
mod malformed;
mod metrics;
mod pages;
mod process;
mod stripe_fake;
mod subscriptions;
mod transfer;
mod webhooks;
