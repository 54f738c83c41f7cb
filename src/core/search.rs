//! The one rule for searching the archive's text: how a text is cut into search terms,
//! what a query is, and when a text matches it.
//!
//! Every store keeps its own index of terms (the embedded store's postings, the terms on
//! MongoDB's documents) and every store checks its candidates against the real text;
//! all of them use this module, so a word is the same word everywhere, at writing, at
//! querying and at checking. Pure: no I/O, no serde, no clock.
//!
//! The rules:
//! - Words are Unicode words (UAX #29 word boundaries, `unicode-segmentation`): "can't"
//!   and "3.14" are one word each, "refund/return" two, an e-mail address its parts,
//!   and ideographs (Chinese, Japanese) one word each.
//! - Matching ignores case and accents: a text is decomposed (NFKD, so ligatures and
//!   full-width forms read as their plain letters too), lower-cased, and its non-spacing
//!   marks dropped: "Café", "CAFE" and "café" are the same term.
//! - Whole words only: "refund" finds "Refund!" but not "refunds". No prefixes, no
//!   stemming, no fuzziness: what the index holds is exactly what a query asks.
//! - A term is at most [`MAX_TERM_CHARS`] characters: longer words are cut there, in the
//!   index and in the query alike (so a very long word is still found, by its start).
//! - A query is at most [`MAX_QUERY_CHARS`] characters and [`MAX_QUERY_TERMS`] distinct
//!   words; one with no word at all (only punctuation or spaces) is refused.
//! - A text matches a query when every query term is among the text's terms (in any
//!   order, anywhere).

use std::collections::BTreeSet;

use unicode_normalization::UnicodeNormalization;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};
use unicode_segmentation::UnicodeSegmentation;

/// The longest term, in characters; longer words are cut to it.
pub const MAX_TERM_CHARS: usize = 32;
/// The longest query, in characters (before cutting it into words).
pub const MAX_QUERY_CHARS: usize = 200;
/// The most distinct words in a query.
pub const MAX_QUERY_TERMS: usize = 8;

/// `text` as the index and queries read it: decomposed, lower-cased, without its
/// non-spacing marks (accents).
fn fold(text: &str) -> String {
    let mut out = String::new();
    fold_into(text, &mut out);
    out
}

/// [`fold`] into `out` (cleared first), so a caller folding many texts reuses one buffer
/// rather than allocating one per text.
fn fold_into(text: &str, out: &mut String) {
    out.clear();
    // Most chat text is ASCII, where decomposition changes nothing and no character is a
    // mark: lower-casing is all (the archive folds every message, so this is its hot path).
    if text.is_ascii() {
        out.push_str(text);
        out.make_ascii_lowercase();
    } else {
        fold_unicode_into(text, out);
    }
}

/// [`fold`] of any text, character by character, appended to `out`.
fn fold_unicode_into(text: &str, out: &mut String) {
    out.reserve(text.len());
    for c in text.nfkd() {
        for lower in c.to_lowercase() {
            if lower.general_category() != GeneralCategory::NonspacingMark {
                out.push(lower);
            }
        }
    }
}

/// The terms of `text`, in order of appearance, repeats included.
pub fn terms(text: &str) -> Vec<String> {
    cut_terms(&fold(text)).map(str::to_string).collect()
}

/// The terms of a folded text, as slices of it.
fn cut_terms(folded: &str) -> impl Iterator<Item = &str> {
    folded
        .unicode_words()
        .map(|word| match word.char_indices().nth(MAX_TERM_CHARS) {
            Some((cut, _)) => &word[..cut],
            None => word,
        })
}

/// The distinct terms of all of `texts`, sorted.
pub fn term_set<'a>(texts: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
    let mut set = BTreeSet::new();
    // One buffer for every text: the archive folds each message it stores through here.
    let mut folded = String::new();
    for text in texts {
        fold_into(text, &mut folded);
        for term in cut_terms(&folded) {
            // A repeated term costs a lookup, not an allocation.
            if !set.contains(term) {
                set.insert(term.to_string());
            }
        }
    }
    set
}

/// Why a query is refused; every reason is the API's `bad_query`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryError {
    /// Only spaces or punctuation: nothing to look for.
    NoWords,
    TooLong {
        max_chars: usize,
    },
    TooManyWords {
        max_words: usize,
    },
}

impl std::fmt::Display for QueryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoWords => f.write_str("the search has no words (only spaces or punctuation)"),
            Self::TooLong { max_chars } => write!(f, "the search is longer than {max_chars} characters"),
            Self::TooManyWords { max_words } => write!(f, "the search has more than {max_words} different words"),
        }
    }
}

impl std::error::Error for QueryError {}

/// A checked query: 1 to [`MAX_QUERY_TERMS`] distinct terms, sorted.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SearchQuery {
    terms: Vec<String>,
}

impl SearchQuery {
    /// Reads what someone typed into the search box.
    pub fn parse(typed: &str) -> Result<Self, QueryError> {
        if typed.chars().count() > MAX_QUERY_CHARS {
            return Err(QueryError::TooLong {
                max_chars: MAX_QUERY_CHARS,
            });
        }
        let terms: Vec<String> = term_set([typed]).into_iter().collect();
        match terms.len() {
            0 => Err(QueryError::NoWords),
            n if n > MAX_QUERY_TERMS => Err(QueryError::TooManyWords {
                max_words: MAX_QUERY_TERMS,
            }),
            _ => Ok(Self { terms }),
        }
    }

    /// Its distinct terms, sorted.
    pub fn terms(&self) -> &[String] {
        &self.terms
    }

    /// Does `text` hold every term of the query?
    pub fn matches(&self, text: &str) -> bool {
        self.matches_terms(&term_set([text]))
    }

    /// Is every term of the query among `terms` (a text's [`term_set`])?
    pub fn matches_terms(&self, terms: &BTreeSet<String>) -> bool {
        self.terms.iter().all(|t| terms.contains(t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(typed: &str) -> SearchQuery {
        SearchQuery::parse(typed).unwrap()
    }

    #[test]
    fn words_are_lower_cased_without_accents() {
        assert_eq!(
            terms("Crème BRÛLÉE, s'il vous plaît!"),
            ["creme", "brulee", "s'il", "vous", "plait"]
        );
        assert_eq!(terms("Ｆｕｌｌ ﬁne"), ["full", "fine"]);
        assert_eq!(terms("İstanbul"), ["istanbul"]);
        assert_eq!(
            terms("refund/return 3.14 a@b.io"),
            ["refund", "return", "3.14", "a", "b.io"]
        );
        assert_eq!(terms("你好世界"), ["你", "好", "世", "界"]);
        assert!(terms("  -- !!! ... ").is_empty());
    }

    #[test]
    fn long_words_are_cut_the_same_way_in_index_and_query() {
        let long = "x".repeat(100);
        assert_eq!(terms(&long), ["x".repeat(MAX_TERM_CHARS)]);
        assert!(q(&long).matches(&format!("a {long} b")));
        assert!(q(&"x".repeat(40)).matches(&long), "both cut at 32");
    }

    #[test]
    fn a_text_matches_when_it_holds_every_word_in_any_order() {
        let text = "Hello, I would like a REFUND for order 1234.";
        assert!(q("refund").matches(text));
        assert!(q("order refund").matches(text));
        assert!(q("Réfund ORDER 1234").matches(text));
        assert!(!q("refunds").matches(text), "whole words only");
        assert!(!q("refund parcel").matches(text), "every word");
        assert!(!q("ref").matches(text), "no prefixes");
    }

    #[test]
    fn queries_are_bounded_and_need_a_word() {
        assert_eq!(SearchQuery::parse(" ?!.. -- "), Err(QueryError::NoWords));
        assert_eq!(SearchQuery::parse(""), Err(QueryError::NoWords));
        assert_eq!(
            SearchQuery::parse(&"a ".repeat(101)),
            Err(QueryError::TooLong {
                max_chars: MAX_QUERY_CHARS
            })
        );
        assert_eq!(
            SearchQuery::parse("a b c d e f g h i"),
            Err(QueryError::TooManyWords {
                max_words: MAX_QUERY_TERMS
            })
        );
        // Repeats count once.
        assert_eq!(q("a A á b a").terms(), ["a", "b"]);
    }

    proptest::proptest! {
        #[test]
        fn the_ascii_shortcut_folds_as_the_whole_rule_does(text in "[\\x00-\\x7f]{0,64}") {
            let mut whole_rule = String::new();
            fold_unicode_into(&text, &mut whole_rule);
            proptest::prop_assert_eq!(fold(&text), whole_rule);
        }

        /// The terms of several texts folded through one buffer are the union of each
        /// text's own: nothing of a longer text before is left behind in the buffer.
        #[test]
        fn texts_folded_in_turn_keep_nothing_of_each_other(texts in proptest::collection::vec("\\PC{0,40}", 0..6)) {
            let each: BTreeSet<String> = texts.iter().flat_map(|t| term_set([t.as_str()])).collect();
            proptest::prop_assert_eq!(term_set(texts.iter().map(String::as_str)), each);
        }

        /// Any word of a text, typed in any case, finds the text.
        #[test]
        fn every_word_of_a_text_finds_it(text in "\\PC{0,80}", pick in 0usize..100) {
            let words = terms(&text);
            if !words.is_empty() {
                let word = &words[pick % words.len()];
                let query = SearchQuery::parse(&word.to_uppercase());
                // An upper-cased word may read differently (ß → SS); the word itself always finds it.
                if let Ok(query) = query && query.terms().len() == 1 && query.terms()[0] == *word {
                    proptest::prop_assert!(query.matches(&text));
                }
                let query = SearchQuery::parse(word).unwrap();
                proptest::prop_assert!(query.matches(&text), "{word:?} in {text:?}");
            }
        }

        /// Terms are stable: the terms of a term are itself.
        #[test]
        fn terms_are_their_own_terms(text in "\\PC{0,80}") {
            for term in terms(&text) {
                proptest::prop_assert_eq!(terms(&term), vec![term.clone()]);
            }
        }
    }
}
