//! The one rule for names people give: customers' and buddies' display names, the
//! display names admins give agents, category names.
//!
//! A name is shown to other people and written to logs, so it must not be able to
//! spoof or hide: after trimming surrounding whitespace it may hold no control
//! character (C0, C1, NUL, and the line and paragraph separators: log injection), no
//! bidirectional control (embeddings, overrides, isolates, the directional marks:
//! "Carla\u{202E}exe.txt" would show reversed), and it must have something visible
//! — a letter, digit, punctuation or symbol that is not blank (a name of spaces,
//! zero-width characters or Hangul fillers shows as nobody). Other format characters
//! stay allowed inside a name with visible characters: the zero-width joiner builds
//! emoji sequences and the non-joiner is needed in Persian.
//!
//! The Unicode general categories come from `unicode-properties`.

use unicode_properties::{GeneralCategory, GeneralCategoryGroup, UnicodeGeneralCategory};

/// Why a name is refused; every reason is the wire code `invalid_name`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameError {
    Empty,
    TooLong {
        max_chars: usize,
    },
    /// A control or bidirectional control character.
    Forbidden(char),
    /// Only whitespace, zero-width or otherwise blank characters.
    NothingVisible,
}

impl NameError {
    pub fn code(self) -> &'static str {
        "invalid_name"
    }
}

impl std::fmt::Display for NameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Empty => f.write_str("a name cannot be empty"),
            Self::TooLong { max_chars } => write!(f, "a name has at most {max_chars} characters"),
            Self::Forbidden(c) => write!(
                f,
                "a name cannot contain control or text-direction characters (U+{:04X})",
                u32::from(*c)
            ),
            Self::NothingVisible => f.write_str("a name must have a visible character"),
        }
    }
}

impl std::error::Error for NameError {}

/// Checks a name and returns it trimmed: 1 to `max_chars` characters, none forbidden,
/// at least one visible.
pub fn checked_name(raw: &str, max_chars: usize) -> Result<String, NameError> {
    let name = raw.trim();
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if let Some(c) = name.chars().find(|c| is_forbidden(*c)) {
        return Err(NameError::Forbidden(c));
    }
    if !name.chars().any(is_visible) {
        return Err(NameError::NothingVisible);
    }
    if name.chars().count() > max_chars {
        return Err(NameError::TooLong { max_chars });
    }
    Ok(name.to_owned())
}

/// Whether `text` holds a character no free text of a person may (line breaks and tabs
/// aside): a control character, a line or paragraph separator, or a bidirectional control
/// that could make it read as something else.
pub fn has_forbidden_text_char(text: &str) -> bool {
    text.chars().any(|c| !matches!(c, '\n' | '\t') && is_forbidden(c))
}

/// Bidirectional controls: the Arabic letter mark, the left-to-right and right-to-left
/// marks, embeddings and overrides (U+202A–202E) and isolates (U+2066–2069).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

fn is_forbidden(c: char) -> bool {
    matches!(
        c.general_category(),
        GeneralCategory::Control | GeneralCategory::LineSeparator | GeneralCategory::ParagraphSeparator
    ) || is_bidi_control(c)
}

/// Letters, numbers, punctuation and symbols show, except the few that render blank:
/// the Hangul fillers (letters by category) and the blank Braille pattern (a symbol).
fn is_visible(c: char) -> bool {
    let blank = matches!(c, '\u{115F}' | '\u{1160}' | '\u{3164}' | '\u{FFA0}' | '\u{2800}');
    !blank
        && matches!(
            c.general_category_group(),
            GeneralCategoryGroup::Letter
                | GeneralCategoryGroup::Number
                | GeneralCategoryGroup::Punctuation
                | GeneralCategoryGroup::Symbol
        )
}

/// An id made from a name people read: lowercase ASCII letters and digits, each other run
/// of characters one '-', at most 40 ("Returns & refunds" → "returns-refunds"). Empty
/// for a name without such letters.
pub fn slug(name: &str) -> String {
    let mut s = String::new();
    for c in name.trim().to_lowercase().chars() {
        if c.is_ascii_alphanumeric() {
            s.push(c);
        } else if !s.ends_with('-') && !s.is_empty() {
            s.push('-');
        }
    }
    s.trim_end_matches('-').chars().take(40).collect()
}

/// Is `id` an id of the shape [`slug`] makes: 1 to 40 lowercase letters, digits or '-'?
pub fn is_slug(id: &str) -> bool {
    (1..=40).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn ordinary_names_in_any_script_pass_trimmed() {
        for name in [
            "Ann",
            "Zoë",
            "محمد",
            "王小明",
            "O'Brien-Smith",
            "👩\u{200D}💻 Dee",
            "می\u{200C}خواهم",
        ] {
            assert_eq!(checked_name(&format!("  {name}\t"), 100).as_deref(), Ok(name));
        }
    }

    #[test]
    fn spoofing_hiding_and_injection_are_refused() {
        let refused = |raw: &str| checked_name(raw, 100).unwrap_err();
        assert_eq!(refused("Carla\u{202E}gnp.exe"), NameError::Forbidden('\u{202E}'));
        assert_eq!(refused("\u{2066}Carla"), NameError::Forbidden('\u{2066}'));
        assert_eq!(refused("Carla\u{200F}"), NameError::Forbidden('\u{200F}'));
        assert_eq!(refused("Car\0la"), NameError::Forbidden('\0'));
        assert_eq!(refused("Carla\nadmin logged in"), NameError::Forbidden('\n'));
        assert_eq!(refused("a\u{2028}b"), NameError::Forbidden('\u{2028}'));
        assert_eq!(refused("a\u{85}b"), NameError::Forbidden('\u{85}'));
        assert_eq!(refused("\u{200B}\u{200D}\u{FEFF}"), NameError::NothingVisible);
        assert_eq!(refused("\u{3164}\u{3164}"), NameError::NothingVisible);
        assert_eq!(refused("\u{2800}"), NameError::NothingVisible);
        assert_eq!(refused("\u{301}\u{301}"), NameError::NothingVisible, "marks alone");
        assert_eq!(refused(" \u{3000}\t"), NameError::Empty);
        assert_eq!(refused(&"x".repeat(101)), NameError::TooLong { max_chars: 100 });
        assert_eq!(refused("x\u{202E}").code(), "invalid_name");
    }

    proptest! {
        /// Whatever comes in, an accepted name is trimmed, within the limit, free of
        /// forbidden characters and has something visible; and the check is idempotent.
        #[test]
        fn accepted_names_are_clean(raw in "\\PC{0,20}|[\\x00-\\x20\u{200B}-\u{200F}\u{202A}-\u{202E}\u{2066}-\u{2069}a]{0,8}", max in 1usize..30) {
            match checked_name(&raw, max) {
                Ok(name) => {
                    prop_assert_eq!(name.trim(), name.as_str());
                    prop_assert!((1..=max).contains(&name.chars().count()));
                    prop_assert!(!name.chars().any(is_forbidden));
                    prop_assert!(name.chars().any(is_visible));
                    prop_assert_eq!(checked_name(&name, max), Ok(name.clone()));
                }
                Err(NameError::Forbidden(c)) => prop_assert!(raw.contains(c) && is_forbidden(c)),
                Err(_) => {}
            }
        }

        /// Any forbidden character anywhere inside a name gets it refused.
        #[test]
        fn a_forbidden_character_anywhere_refuses_the_name(
            before in "[a-zé]{1,5}", after in "[a-zé]{1,5}",
            bad in prop::sample::select(vec!['\0', '\u{7}', '\u{1B}', '\u{7F}', '\u{9B}', '\u{2028}', '\u{061C}', '\u{200E}', '\u{202B}', '\u{202E}', '\u{2068}']),
        ) {
            let raw = format!("{before}{bad}{after}");
            prop_assert_eq!(checked_name(&raw, 100), Err(NameError::Forbidden(bad)));
        }
    }
}
