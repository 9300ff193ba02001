//! Stripe's objects as the sync reads them: any JSON, of any shape, read leniently into the
//! ledger's records or skipped, never a panic; plan metadata likewise.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollbooth::domain::PlanRules;
use tollbooth::stripe::objects;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let _ = objects::customer(&value);
    let _ = objects::product(&value, 1_700_000_000_000);
    let _ = objects::price(&value, 1_700_000_000_000);
    let _ = objects::subscription(&value, 1_700_000_000_000);
    let _ = objects::checkout_purchase(&value);
    let _ = objects::is_deleted(&value);
    let metadata = value["metadata"].to_string();
    let _ = PlanRules::from_metadata(Some(&metadata), Some(&metadata));
});
