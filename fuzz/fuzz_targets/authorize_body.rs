//! Function's authorization call body, as the authorize route reads it: any bytes must give
//! either the two strings or a message for the caller, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollbooth::gate::Links;
use tollbooth::http::authorize::AuthorizeBody;

fuzz_target!(|body: &[u8]| {
    let links = Links {
        plans: Some("https://tb.example/".into()),
        account: Some("https://tb.example/account".into()),
    };
    match AuthorizeBody::parse(body, &links) {
        Ok(parsed) => {
            let _ = (parsed.tag.len(), parsed.access_key.len());
        }
        Err(message) => assert!(!message.is_empty()),
    }
});
