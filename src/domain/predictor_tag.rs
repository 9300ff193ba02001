use std::fmt;

use super::owner::is_username;

const MAX_TAG_BYTES: usize = 256;

/// A Function predictor tag, `@owner/name`, as sent in every authorization request; it
/// borrows the request's text (nothing is allocated on the hot path).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PredictorTag<'a> {
    text: &'a str,
    slash: usize,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum PredictorTagError {
    #[error("no predictor tag was sent")]
    Empty,
    #[error("the predictor tag is longer than {MAX_TAG_BYTES} bytes")]
    TooLong,
    #[error("{0:?} is not a predictor tag (expected @owner/name)")]
    Malformed(String),
}

impl<'a> PredictorTag<'a> {
    pub fn parse(input: &'a str) -> Result<Self, PredictorTagError> {
        if input.is_empty() {
            return Err(PredictorTagError::Empty);
        }
        if input.len() > MAX_TAG_BYTES {
            return Err(PredictorTagError::TooLong);
        }
        let malformed = || PredictorTagError::Malformed(input.to_owned());
        let rest = input.strip_prefix('@').ok_or_else(malformed)?;
        let (owner, name) = rest.split_once('/').ok_or_else(malformed)?;
        let name_ok = !name.is_empty()
            && name
                .chars()
                .all(|c| !c.is_whitespace() && !c.is_control() && c != '@');
        if !is_username(owner) || !name_ok {
            return Err(malformed());
        }
        Ok(Self {
            text: input,
            slash: owner.len() + 1,
        })
    }

    /// The username after `@`, as sent (compare it with [`super::Owner::is`]).
    pub fn owner(&self) -> &'a str {
        &self.text[1..self.slash]
    }

    pub fn name(&self) -> &'a str {
        &self.text[self.slash + 1..]
    }
}

impl AsRef<str> for PredictorTag<'_> {
    fn as_ref(&self) -> &str {
        self.text
    }
}

impl fmt::Display for PredictorTag<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text)
    }
}

impl fmt::Debug for PredictorTag<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PredictorTag({})", self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tag_splits_into_owner_and_name() {
        let tag = PredictorTag::parse("@Acme/sdxl-turbo").unwrap();
        assert_eq!(tag.owner(), "Acme");
        assert_eq!(tag.name(), "sdxl-turbo");
        assert_eq!(tag.as_ref(), "@Acme/sdxl-turbo");
    }

    #[test]
    fn invalid_tags_are_rejected() {
        let long = format!("@a/{}", "x".repeat(MAX_TAG_BYTES));
        let cases: &[(&str, &str)] = &[
            ("", "empty"),
            (&long, "too long"),
            ("acme/sdxl", "no @"),
            ("@acme", "no name"),
            ("@acme/", "empty name"),
            ("@/sdxl", "empty owner"),
            ("@ac me/sdxl", "space in owner"),
            ("@acme/sd xl", "space in name"),
            ("@acme/a@b", "@ in name"),
        ];
        for (input, why) in cases {
            assert!(PredictorTag::parse(input).is_err(), "{why}: {input:?}");
        }
    }
}
