use std::fmt;

use super::{Owner, PredictorTag};

/// Which predictors an entitlement unlocks: the `predictors` metadata of a plan or the
/// `--grant` of a manual grant, as comma-separated patterns where `*` matches any run of
/// characters (`@owner/*`, `@owner/sdxl-*`). `*` alone means all of the owner's predictors.
///
/// Matching ignores ASCII case, as Function does for usernames.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Predictors(Vec<String>);

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum TagPatternError {
    #[error("a predictor pattern is empty")]
    Empty,
    #[error(
        "{0:?} is not a predictor pattern: use @owner/name, with * as a wildcard, or * for all"
    )]
    Malformed(String),
    #[error("{pattern:?} names predictors of another owner; this instance sells {owner}'s")]
    OtherOwner { pattern: String, owner: String },
}

impl Predictors {
    /// Every predictor of the owner: what a plan without `predictors` metadata unlocks.
    pub fn all() -> Self {
        Self(vec!["*".to_owned()])
    }

    /// Nothing: what a plan whose `predictors` metadata cannot be read unlocks.
    pub fn none() -> Self {
        Self(Vec::new())
    }

    /// Parses a comma-separated list; with an owner, patterns must name that owner's predictors.
    pub fn parse(input: &str, owner: Option<&Owner>) -> Result<Self, TagPatternError> {
        let patterns = input
            .split(',')
            .map(|p| parse_one(p.trim(), owner))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self(patterns))
    }

    /// The patterns as people read them: "all predictors", "all of acme's predictors",
    /// "acme's sdxl-* predictors", "acme's sdxl", joined with commas and "and".
    pub fn describe(&self) -> String {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|pattern| {
                if pattern == "*" {
                    return "all predictors".to_owned();
                }
                let Some((owner, name)) = pattern
                    .strip_prefix('@')
                    .and_then(|rest| rest.split_once('/'))
                else {
                    return pattern.clone();
                };
                match (owner.contains('*'), name) {
                    (true, _) => format!("predictors matching {pattern}"),
                    (false, "*") => format!("all of {owner}'s predictors"),
                    (false, name) if name.contains('*') => format!("{owner}'s {name} predictors"),
                    (false, name) => format!("{owner}'s {name}"),
                }
            })
            .collect();
        match parts.as_slice() {
            [] => "no predictors".to_owned(),
            [one] => one.clone(),
            [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
        }
    }

    pub fn matches(&self, tag: &PredictorTag) -> bool {
        self.0
            .iter()
            .any(|p| glob_match(p.as_bytes(), tag.as_ref().as_bytes()))
    }
}

fn parse_one(pattern: &str, owner: Option<&Owner>) -> Result<String, TagPatternError> {
    if pattern.is_empty() {
        return Err(TagPatternError::Empty);
    }
    if pattern == "*" {
        return Ok(pattern.to_owned());
    }
    let malformed = || TagPatternError::Malformed(pattern.to_owned());
    let (pattern_owner, name) = pattern
        .strip_prefix('@')
        .and_then(|rest| rest.split_once('/'))
        .ok_or_else(malformed)?;
    if pattern_owner.is_empty() || name.is_empty() || pattern.chars().any(char::is_whitespace) {
        return Err(malformed());
    }
    if let Some(owner) = owner
        && !pattern_owner.contains('*')
        && !owner.is(pattern_owner)
    {
        return Err(TagPatternError::OtherOwner {
            pattern: pattern.to_owned(),
            owner: owner.to_string(),
        });
    }
    Ok(pattern.to_ascii_lowercase())
}

/// `*` matches any run of bytes; everything else matches itself, ignoring ASCII case.
fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p].eq_ignore_ascii_case(&text[t]) {
            p += 1;
            t += 1;
        } else if let Some((star_p, star_t)) = star {
            p = star_p + 1;
            t = star_t + 1;
            star = Some((star_p, star_t + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

impl fmt::Display for Predictors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(","))
    }
}

impl fmt::Debug for Predictors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Predictors({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_are_described_as_people_read_them() {
        let described = |input: &str| Predictors::parse(input, None).unwrap().describe();
        assert_eq!(described("*"), "all predictors");
        assert_eq!(described("@acme/*"), "all of acme's predictors");
        assert_eq!(described("@acme/sdxl-*"), "acme's sdxl-* predictors");
        assert_eq!(described("@acme/sdxl"), "acme's sdxl");
        assert_eq!(
            described("@acme/sdxl, @acme/llama-*, @acme/whisper"),
            "acme's sdxl, acme's llama-* predictors and acme's whisper"
        );
        assert_eq!(Predictors::none().describe(), "no predictors");
    }

    fn tag(s: &str) -> PredictorTag<'_> {
        PredictorTag::parse(s).unwrap()
    }

    #[test]
    fn patterns_match_tags_as_documented() {
        let cases = [
            ("*", "@acme/anything", true, "star alone matches all"),
            ("@acme/*", "@acme/sdxl", true, "owner wildcard"),
            (
                "@acme/*",
                "@other/sdxl",
                false,
                "owner wildcard is per owner",
            ),
            ("@acme/sdxl-*", "@acme/sdxl-turbo", true, "prefix wildcard"),
            (
                "@acme/sdxl-*",
                "@acme/llama",
                false,
                "prefix wildcard misses",
            ),
            ("@acme/sdxl", "@ACME/SDXL", true, "case is ignored"),
            (
                "@acme/sdxl",
                "@acme/sdxl-turbo",
                false,
                "no wildcard, exact only",
            ),
            ("@acme/*-v2", "@acme/llama-v2", true, "suffix wildcard"),
            ("@acme/a*b*c", "@acme/aXXbYYc", true, "several wildcards"),
            (
                "@acme/a*b*c",
                "@acme/aXXbYY",
                false,
                "several wildcards miss",
            ),
            ("@acme/x, @acme/y", "@acme/y", true, "any of a list"),
        ];
        for (pattern, t, expected, why) in cases {
            let predictors = Predictors::parse(pattern, None).unwrap();
            assert_eq!(predictors.matches(&tag(t)), expected, "{why}");
        }
    }

    #[test]
    fn patterns_of_another_owner_are_refused_when_the_owner_is_known() {
        let owner = Owner::parse("acme").unwrap();
        assert!(Predictors::parse("@Acme/*", Some(&owner)).is_ok());
        assert!(matches!(
            Predictors::parse("@other/*", Some(&owner)),
            Err(TagPatternError::OtherOwner { .. })
        ));
    }

    #[test]
    fn malformed_patterns_are_refused() {
        for input in ["", "sdxl", "@acme", "@acme/", "@acme/a b", "*,"] {
            assert!(Predictors::parse(input, None).is_err(), "{input:?}");
        }
    }
}
