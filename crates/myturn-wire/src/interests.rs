//! Interests: the topics a user gives with `ready`, so they are paired
//! among the people who share one before anyone else. The rule a tag must
//! follow and how it is normalised live here, the same for the server and
//! the clients.
//!
//! A tag is normalised (Unicode NFKC, lower-cased, trimmed, inner runs of
//! spaces folded to one), then checked: 2 to 24 characters, each a
//! letter, a digit, a space or `-`. A list holds at most ten tags;
//! duplicates (after normalisation) count once.

use unicode_normalization::UnicodeNormalization as _;

/// Most tags in one list.
pub const MAX_INTERESTS: usize = 10;
/// Shortest tag, in characters (after normalisation).
pub const INTEREST_MIN_LEN: usize = 2;
/// Longest tag, in characters (after normalisation).
pub const INTEREST_MAX_LEN: usize = 24;
/// The tag rule, as shown to users.
pub const INTEREST_RULE: &str =
    "an interest is 2 to 24 letters, digits, spaces or '-', and a list holds at most 10";

/// Why an interest list was refused. Each names the tag at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InterestError {
    /// More than [`MAX_INTERESTS`] distinct tags.
    #[error("{0} interests given; at most {MAX_INTERESTS} are allowed")]
    TooMany(usize),
    /// Shorter than [`INTEREST_MIN_LEN`] once normalised.
    #[error("the interest {0:?} is too short: {INTEREST_RULE}")]
    TooShort(String),
    /// Longer than [`INTEREST_MAX_LEN`] once normalised.
    #[error("the interest {0:?} is too long: {INTEREST_RULE}")]
    TooLong(String),
    /// A character that is not a letter, a digit, a space or `-`.
    #[error("the interest {0:?} holds a character that is not allowed: {INTEREST_RULE}")]
    BadChar(String),
}

/// One tag, normalised: NFKC, lower-cased, trimmed, spaces folded.
/// Does not check the rule.
pub fn normalize_interest(tag: &str) -> String {
    let folded: String = tag.nfkc().collect::<String>().to_lowercase();
    folded.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Checks one normalised tag against the rule.
fn check(tag: &str, raw: &str) -> Result<(), InterestError> {
    let shown = || {
        if tag.is_empty() {
            raw.to_owned()
        } else {
            tag.to_owned()
        }
    };
    if tag
        .chars()
        .any(|c| !(c.is_alphanumeric() || c == ' ' || c == '-'))
    {
        return Err(InterestError::BadChar(shown()));
    }
    let n = tag.chars().count();
    if n < INTEREST_MIN_LEN {
        return Err(InterestError::TooShort(shown()));
    }
    if n > INTEREST_MAX_LEN {
        return Err(InterestError::TooLong(shown()));
    }
    Ok(())
}

/// Normalises and checks a list of tags: each one as
/// [`normalize_interest`] says, duplicates dropped (the first one's place
/// kept), at most [`MAX_INTERESTS`]. The first tag at fault is named.
///
/// ```
/// use myturn_wire::{normalize_interests, InterestError};
/// let tags = vec!["Music".to_owned(), "  rust ".to_owned(), "MUSIC".to_owned()];
/// assert_eq!(normalize_interests(&tags).unwrap(), ["music", "rust"]);
/// assert!(matches!(
///     normalize_interests(&["<script>".to_owned()]),
///     Err(InterestError::BadChar(t)) if t == "<script>"
/// ));
/// ```
pub fn normalize_interests(tags: &[String]) -> Result<Vec<String>, InterestError> {
    let mut out: Vec<String> = Vec::with_capacity(tags.len().min(MAX_INTERESTS));
    for raw in tags {
        let tag = normalize_interest(raw);
        check(&tag, raw)?;
        if !out.contains(&tag) {
            out.push(tag);
        }
    }
    if out.len() > MAX_INTERESTS {
        return Err(InterestError::TooMany(out.len()));
    }
    Ok(out)
}

/// Splits what a user typed (`music, rust`) into tags, as the clients take
/// them: separated by commas, empty pieces dropped. Check the result with
/// [`normalize_interests`].
pub fn split_interests(typed: &str) -> Vec<String> {
    typed
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn tags_are_normalised_and_deduplicated() {
        let got = normalize_interests(&tags(&["  Hip   Hop ", "hip hop", "ＲＵＳＴ", "sci-fi"]));
        assert_eq!(got.unwrap(), ["hip hop", "rust", "sci-fi"]);
        // NFKC folds the ligature and the full-width letters.
        assert_eq!(normalize_interest("ﬁlm"), "film");
        assert_eq!(normalize_interest("Çà"), "çà");
    }

    #[test]
    fn bad_tags_are_named() {
        let e = |v: &[&str]| normalize_interests(&tags(v)).unwrap_err();
        assert_eq!(e(&["ok", "x"]), InterestError::TooShort("x".into()));
        assert_eq!(
            e(&[&"a".repeat(25)]),
            InterestError::TooLong("a".repeat(25))
        );
        assert_eq!(
            e(&["bell\u{7}"]),
            InterestError::BadChar("bell\u{7}".into())
        );
        assert_eq!(e(&["<script>"]), InterestError::BadChar("<script>".into()));
        assert_eq!(e(&["   "]), InterestError::TooShort("   ".into()));
        let eleven: Vec<String> = (0..11).map(|i| format!("tag{i}")).collect();
        assert_eq!(
            normalize_interests(&eleven).unwrap_err(),
            InterestError::TooMany(11)
        );
        // Ten distinct, plus a duplicate: fine.
        let mut ten: Vec<String> = (0..10).map(|i| format!("tag{i}")).collect();
        ten.push("TAG0".into());
        assert_eq!(normalize_interests(&ten).unwrap().len(), 10);
        assert!(normalize_interests(&[]).unwrap().is_empty());
        assert!(e(&["x"]).to_string().contains("\"x\""));
    }

    #[test]
    fn typed_lists_split_on_commas() {
        assert_eq!(split_interests(" music, rust ,, "), ["music", "rust"]);
        assert!(split_interests("").is_empty());
    }
}
