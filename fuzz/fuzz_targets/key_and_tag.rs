//! The key and tag parsers and the decision before any lookup: Function's two strings, of any
//! content, through the gate of an empty ledger. Every answer is a refusal with a message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollbooth::domain::{AccessKey, Owner, PredictorTag};
use tollbooth::gate::{Gate, GateRules, Links};

fuzz_target!(|input: (&str, &str)| {
    let (tag, key) = input;
    let _ = PredictorTag::parse(tag);
    if let Ok(parsed) = AccessKey::parse(key) {
        assert_eq!(AccessKey::parse(parsed.as_ref()).ok(), Some(parsed.clone()));
        let _ = parsed.display_prefix();
    }
    let gate = Gate::new(GateRules {
        owner: Some(Owner::parse("acme").unwrap()),
        past_due_grace: 0,
    });
    let reason = gate
        .authorize(tag, key, 1_800_000_000)
        .expect_err("an empty ledger allows nothing");
    assert!(!reason.message(tag, &Links::default()).is_empty());
});
