use std::fmt;

use rand::Rng;
use sha2::{Digest, Sha256};

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// 30 base62 characters carry 178 random bits.
const BODY_LEN: usize = 30;
const CHECKSUM_LEN: usize = 6;
/// Characters of the body shown next to the prefix so a person can tell keys apart.
const DISPLAY_LEN: usize = 8;
/// Function's access key is free text; anything longer than this is not ours.
pub const MAX_KEY_BYTES: usize = 512;

/// An access key in our format: `{prefix}_{30 random base62}{6 base62 CRC32 of the body}`.
///
/// The checksum lets a typo be told apart from an unknown key without any lookup.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessKey(String);

/// What is wrong with a string presented as an access key, in words for the person who sent it.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum AccessKeyError {
    #[error("no access key was sent")]
    Empty,
    #[error("the access key is longer than {MAX_KEY_BYTES} bytes")]
    TooLong,
    #[error("the access key is not a key from this predictor's owner")]
    Malformed,
    #[error("the access key has a typo (its checksum does not match)")]
    BadChecksum,
}

impl AccessKey {
    /// A new random key, for a customer to see once.
    pub fn generate(prefix: &KeyPrefix) -> Self {
        let body = random_base62(BODY_LEN);
        let checksum = base62_fixed(crc32(body.as_bytes()));
        let checksum = std::str::from_utf8(&checksum).expect("alphabet is ASCII");
        Self(format!("{}_{body}{checksum}", prefix.as_ref()))
    }

    /// Accepts any well-formed prefix, so keys stay valid if the owner changes `KEY_PREFIX`.
    pub fn parse(input: &str) -> Result<Self, AccessKeyError> {
        check(input)?;
        Ok(Self(input.to_owned()))
    }

    /// The hash of a well-formed key, without keeping the key: all the hot path needs, with
    /// nothing allocated.
    pub fn hash_of(input: &str) -> Result<KeyHash, AccessKeyError> {
        check(input)?;
        Ok(KeyHash::of(input))
    }

    /// The only form in which a key is stored.
    pub fn hash(&self) -> KeyHash {
        KeyHash::of(&self.0)
    }

    /// `tb_AbCd1234`: enough to recognise a key, far too little to use it.
    pub fn display_prefix(&self) -> String {
        let (prefix, rest) = self.0.rsplit_once('_').expect("parsed keys contain '_'");
        format!("{prefix}_{}", &rest[..DISPLAY_LEN])
    }
}

/// What a client sends when its key is unset: Python's `None`, JSON's `null`, JavaScript's
/// `undefined`, blanks. Such a request sent no key, which the refusal should say.
fn missing_or_malformed(input: &str) -> AccessKeyError {
    let trimmed = input.trim();
    let unset = trimmed.is_empty()
        || ["none", "null", "undefined", "nil"]
            .iter()
            .any(|word| trimmed.eq_ignore_ascii_case(word));
    if unset {
        AccessKeyError::Empty
    } else {
        AccessKeyError::Malformed
    }
}

/// The form of a key: `{prefix}_{body}{checksum}`, the checksum the body's CRC32.
fn check(input: &str) -> Result<(), AccessKeyError> {
    if input.is_empty() {
        return Err(AccessKeyError::Empty);
    }
    if input.len() > MAX_KEY_BYTES {
        return Err(AccessKeyError::TooLong);
    }
    let Some((prefix, rest)) = input.rsplit_once('_') else {
        return Err(missing_or_malformed(input));
    };
    if !KeyPrefix::is_valid(prefix)
        || rest.len() != BODY_LEN + CHECKSUM_LEN
        || !rest.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return Err(AccessKeyError::Malformed);
    }
    let (body, checksum) = rest.split_at(BODY_LEN);
    if base62_fixed(crc32(body.as_bytes())) != checksum.as_bytes() {
        return Err(AccessKeyError::BadChecksum);
    }
    Ok(())
}

impl AsRef<str> for AccessKey {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Never prints the key itself, so a stray `{:?}` cannot leak it into a log.
impl fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AccessKey({}…)", self.display_prefix())
    }
}

/// SHA-256 of a key. Keys are long and random, so a plain hash is enough (no salt, no KDF),
/// and lookups by hash are exact.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct KeyHash([u8; 32]);

impl KeyHash {
    fn of(key: &str) -> Self {
        Self(Sha256::digest(key.as_bytes()).into())
    }

    pub fn to_hex(&self) -> String {
        super::hex(&self.0)
    }

    /// The digest's first 128 bits: what an in-memory table needs to tell keys apart (a match
    /// by chance is a 2^-128 event; guessing a key that matches is a 128-bit preimage).
    pub fn head(&self) -> [u64; 2] {
        let mut low = [0u8; 8];
        let mut high = [0u8; 8];
        low.copy_from_slice(&self.0[..8]);
        high.copy_from_slice(&self.0[8..16]);
        [u64::from_le_bytes(low), u64::from_le_bytes(high)]
    }

    /// The digest from its 64 hex digits, as stored (read for every key when the ledger loads).
    pub fn from_hex(hex: &str) -> Option<Self> {
        let mut out = [0u8; 32];
        super::unhex_into(hex, &mut out)?;
        Some(Self(out))
    }
}

impl fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyHash({}…)", &self.to_hex()[..12])
    }
}

/// The text before `_` in every key this instance issues (`KEY_PREFIX`, default `tb`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPrefix(String);

impl KeyPrefix {
    pub fn parse(input: &str) -> Result<Self, String> {
        if Self::is_valid(input) {
            Ok(Self(input.to_owned()))
        } else {
            Err(format!(
                "KEY_PREFIX must be 1 to 16 lowercase letters or digits, not {input:?}"
            ))
        }
    }

    fn is_valid(input: &str) -> bool {
        (1..=16).contains(&input.len())
            && input
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    }
}

impl AsRef<str> for KeyPrefix {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// `len` characters drawn uniformly from the OS-seeded generator: for keys, tokens and ids.
pub fn random_base62(len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// CRC-32 (IEEE), checked on every authorization: crc32fast's table-driven and SIMD forms.
fn crc32(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

/// Six base62 digits, zero-padded: 62^6 > 2^32, so every CRC32 fits.
fn base62_fixed(mut n: u32) -> [u8; CHECKSUM_LEN] {
    let mut out = [b'0'; CHECKSUM_LEN];
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(n % 62) as usize];
        n /= 62;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefix() -> KeyPrefix {
        KeyPrefix::parse("tb").unwrap()
    }

    #[test]
    fn an_unset_key_as_clients_send_it_is_no_key() {
        for unset in ["", " ", "None", "null", "undefined", "NULL", " nil "] {
            assert_eq!(
                AccessKey::hash_of(unset),
                Err(AccessKeyError::Empty),
                "{unset:?}"
            );
        }
        for malformed in ["nonesuch", "tb-123", "Nonee"] {
            assert_eq!(
                AccessKey::hash_of(malformed),
                Err(AccessKeyError::Malformed),
                "{malformed:?}"
            );
        }
    }

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn a_generated_key_parses_back_to_itself() {
        let key = AccessKey::generate(&prefix());
        assert!(key.as_ref().starts_with("tb_"));
        assert_eq!(key.as_ref().len(), 3 + BODY_LEN + CHECKSUM_LEN);
        assert_eq!(AccessKey::parse(key.as_ref()), Ok(key));
    }

    #[test]
    fn generated_keys_differ() {
        assert_ne!(
            AccessKey::generate(&prefix()),
            AccessKey::generate(&prefix())
        );
    }

    #[test]
    fn a_single_changed_character_fails_the_checksum() {
        let key = AccessKey::generate(&prefix());
        let mut text = key.as_ref().to_owned();
        let i = 10;
        let replacement = if &text[i..=i] == "a" { "b" } else { "a" };
        text.replace_range(i..=i, replacement);
        assert_eq!(AccessKey::parse(&text), Err(AccessKeyError::BadChecksum));
    }

    #[test]
    fn invalid_inputs_are_rejected_with_the_right_reason() {
        let long = "x".repeat(MAX_KEY_BYTES + 1);
        let cases: &[(&str, AccessKeyError, &str)] = &[
            ("", AccessKeyError::Empty, "empty"),
            (&long, AccessKeyError::TooLong, "over 512 bytes"),
            ("🔑🔑🔑", AccessKeyError::Malformed, "emoji"),
            ("fxn_abc", AccessKeyError::Malformed, "too short"),
            ("no-underscore", AccessKeyError::Malformed, "no separator"),
            (
                "TB_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa000000",
                AccessKeyError::Malformed,
                "uppercase prefix",
            ),
            (
                "tb_aaaaaaaaaaaaaaaaaaaaaaaaaaaaa!000000",
                AccessKeyError::Malformed,
                "non-alphanumeric body",
            ),
            (
                "tb_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa000000",
                AccessKeyError::BadChecksum,
                "wrong checksum",
            ),
        ];
        for (input, expected, why) in cases {
            assert_eq!(AccessKey::parse(input).as_ref(), Err(expected), "{why}");
        }
    }

    #[test]
    fn debug_output_hides_the_key() {
        let key = AccessKey::generate(&prefix());
        let shown = format!("{key:?}");
        assert!(!shown.contains(key.as_ref()));
        assert!(shown.contains(&key.display_prefix()));
    }

    #[test]
    fn key_hash_round_trips_through_hex() {
        let hash = AccessKey::generate(&prefix()).hash();
        assert_eq!(KeyHash::from_hex(&hash.to_hex()), Some(hash));
        assert_eq!(KeyHash::from_hex("zz"), None);
    }

    #[test]
    fn a_stored_hash_is_64_hex_digits_and_nothing_else() {
        let hex = AccessKey::generate(&prefix()).hash().to_hex();
        let hash = KeyHash::from_hex(&hex).unwrap();
        assert_eq!(KeyHash::from_hex(&hex.to_uppercase()), Some(hash));
        assert_eq!(hash.to_hex(), hex);
        let digits = |n| "0123456789abcdef".repeat(4)[..n].to_owned();
        assert_eq!(
            KeyHash::from_hex(&digits(64)).unwrap().head()[0],
            0xefcd_ab89_6745_2301
        );
        for bad in [
            digits(63),
            digits(64) + "0",
            format!("+f{}", &digits(64)[2..]),
            format!("{}g", &digits(63)),
            format!("é{}", &digits(62)),
            String::new(),
        ] {
            assert_eq!(KeyHash::from_hex(&bad), None, "{bad:?}");
        }
    }

    #[test]
    fn key_prefix_accepts_lowercase_alphanumerics_only() {
        assert!(KeyPrefix::parse("tb").is_ok());
        assert!(KeyPrefix::parse("acme2").is_ok());
        assert!(KeyPrefix::parse("").is_err());
        assert!(KeyPrefix::parse("Tb").is_err());
        assert!(KeyPrefix::parse("t_b").is_err());
    }
}
