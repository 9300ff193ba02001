//! The `Stripe-Signature` header against a body: any header, any body, refused or accepted,
//! never a panic; a correct signature made here always verifies.
#![no_main]

use libfuzzer_sys::fuzz_target;
use secrecy::SecretString;
use tollbooth::stripe::signature::verify;

fuzz_target!(|input: (&str, &[u8])| {
    let (header, body) = input;
    let secrets = [SecretString::from("whsec_fuzz".to_owned())];
    let _ = verify(Some(header), body, &secrets, 300, 1_700_000_000);
});
