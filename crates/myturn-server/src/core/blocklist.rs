//! The operator's list of interests to refuse (`--interest-blocklist`):
//! slurs and spam terms. Shared by the rules and the node, which swaps
//! the terms in when the file is read again (SIGHUP).

use std::sync::RwLock;

use myturn_wire::normalize_interest;

/// Terms to refuse, normalised like interests. A tag is refused when it
/// is a term, or holds one as whole words (`buy cheap pills` holds
/// `cheap pills`).
#[derive(Debug, Default)]
pub struct Blocklist {
    terms: RwLock<Vec<String>>,
}

impl Blocklist {
    /// A list of `terms` (normalised here; empty ones dropped).
    pub fn new<S: AsRef<str>>(terms: impl IntoIterator<Item = S>) -> Self {
        let list = Blocklist::default();
        list.replace(terms);
        list
    }

    /// Reads a list: one term per line; blank lines and `#` comments
    /// are skipped.
    pub fn parse(text: &str) -> Vec<String> {
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_owned)
            .collect()
    }

    /// Swaps in new terms; returns how many there are.
    pub fn replace<S: AsRef<str>>(&self, terms: impl IntoIterator<Item = S>) -> usize {
        let mut new: Vec<String> = terms
            .into_iter()
            .map(|t| normalize_interest(t.as_ref()))
            .filter(|t| !t.is_empty())
            .collect();
        new.sort();
        new.dedup();
        let n = new.len();
        *self.terms.write().unwrap_or_else(|e| e.into_inner()) = new;
        n
    }

    /// Whether a normalised tag is refused.
    pub fn refuses(&self, tag: &str) -> bool {
        let padded = format!(" {tag} ");
        self.terms
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .any(|t| padded.contains(&format!(" {t} ")))
    }

    /// Terms held.
    pub fn len(&self) -> usize {
        self.terms.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// `true` when no term is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_words_are_refused_whatever_their_case() {
        let b = Blocklist::new(Blocklist::parse("# spam\nCheap Pills\n\nslur\n"));
        assert_eq!(b.len(), 2);
        assert!(b.refuses("cheap pills"));
        assert!(b.refuses("buy cheap pills now"));
        assert!(b.refuses("slur"));
        assert!(!b.refuses("slurp"), "whole words only");
        assert!(!b.refuses("music"));
        assert_eq!(b.replace(["music"]), 1);
        assert!(b.refuses("music") && !b.refuses("slur"));
    }
}
