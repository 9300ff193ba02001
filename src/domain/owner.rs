use std::fmt;

/// The Function username whose predictors this instance sells (`FXN_OWNER`), without the `@`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner(String);

#[derive(Debug, thiserror::Error)]
#[error("FXN_OWNER must be a Function username (letters, digits, '-' or '_'), not {0:?}")]
pub struct OwnerError(String);

impl Owner {
    pub fn parse(input: &str) -> Result<Self, OwnerError> {
        let name = input.trim().trim_start_matches('@');
        if is_username(name) {
            Ok(Self(name.to_ascii_lowercase()))
        } else {
            Err(OwnerError(input.to_owned()))
        }
    }

    /// Function compares usernames without regard to case, and so do we.
    pub fn is(&self, username: &str) -> bool {
        self.0.eq_ignore_ascii_case(username)
    }
}

pub(super) fn is_username(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl AsRef<str> for Owner {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "@{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_is_normalised_and_compared_without_case() {
        let owner = Owner::parse("@Acme").unwrap();
        assert_eq!(owner.as_ref(), "acme");
        assert!(owner.is("ACME"));
        assert!(!owner.is("acme2"));
        assert!(Owner::parse("a b").is_err());
        assert!(Owner::parse("").is_err());
    }
}
