//! The Unicode rules behind names and emails: the normal form a value is stored (and
//! measured) in, which characters are invisible or reorder text, and how a refused
//! character is named in an error.
//!
//! The Unicode data comes from ICU4X (`icu_normalizer`, `icu_properties`), already in the
//! build through the URL parser, so the properties follow the Unicode standard rather than
//! a hand-kept list. Only the names of the characters quoted in errors are a table here:
//! ICU4X carries no character names.

use icu_normalizer::ComposingNormalizerBorrowed;
use icu_properties::props::{
    BidiControl, DefaultIgnorableCodePoint, GeneralCategory, GeneralCategoryGroup,
};
use icu_properties::{CodePointMapData, CodePointSetData};

/// `text` in Unicode Normalization Form C, as it is stored and measured.
pub(super) fn nfc(text: &str) -> String {
    ComposingNormalizerBorrowed::new_nfc()
        .normalize(text)
        .into_owned()
}

/// A character that changes the display order of the text around it (the Unicode
/// `Bidi_Control` property: U+061C, U+200E, U+200F, U+202A..U+202E, U+2066..U+2069).
pub(super) fn is_bidi_control(c: char) -> bool {
    CodePointSetData::new::<BidiControl>().contains(c)
}

/// A character that shows nothing: white space, a default-ignorable code point (zero
/// width space, joiners, variation selectors, fillers…) or a format character.
pub(super) fn is_invisible(c: char) -> bool {
    c.is_whitespace()
        || CodePointSetData::new::<DefaultIgnorableCodePoint>().contains(c)
        || CodePointMapData::<GeneralCategory>::new().get(c) == GeneralCategory::Format
}

/// A combining mark (accents written as their own code point).
pub(super) fn is_mark(c: char) -> bool {
    GeneralCategoryGroup::Mark.contains(CodePointMapData::<GeneralCategory>::new().get(c))
}

/// The first character of `text` for which `refused` holds, as `U+200B ZERO WIDTH SPACE
/// at position 3` (positions count characters from 1).
pub(super) fn first_refused(text: &str, refused: impl Fn(char) -> bool) -> Option<String> {
    let (index, c) = text.chars().enumerate().find(|(_, c)| refused(*c))?;
    Some(format!("{} at position {}", describe(c), index + 1))
}

/// `U+200B ZERO WIDTH SPACE`, or just `U+E0001` for a character without a name here.
pub(super) fn describe(c: char) -> String {
    let code = u32::from(c);
    match NAMES.binary_search_by_key(&code, |(code, _)| *code) {
        Ok(found) => format!("U+{code:04X} {}", NAMES[found].1),
        Err(_) => format!("U+{code:04X}"),
    }
}

/// The names of the invisible and bidirectional characters people meet, sorted by code.
const NAMES: &[(u32, &str)] = &[
    (0x0009, "CHARACTER TABULATION"),
    (0x000A, "LINE FEED"),
    (0x000D, "CARRIAGE RETURN"),
    (0x0020, "SPACE"),
    (0x00A0, "NO-BREAK SPACE"),
    (0x00AD, "SOFT HYPHEN"),
    (0x034F, "COMBINING GRAPHEME JOINER"),
    (0x061C, "ARABIC LETTER MARK"),
    (0x115F, "HANGUL CHOSEONG FILLER"),
    (0x1160, "HANGUL JUNGSEONG FILLER"),
    (0x180E, "MONGOLIAN VOWEL SEPARATOR"),
    (0x200B, "ZERO WIDTH SPACE"),
    (0x200C, "ZERO WIDTH NON-JOINER"),
    (0x200D, "ZERO WIDTH JOINER"),
    (0x200E, "LEFT-TO-RIGHT MARK"),
    (0x200F, "RIGHT-TO-LEFT MARK"),
    (0x2028, "LINE SEPARATOR"),
    (0x2029, "PARAGRAPH SEPARATOR"),
    (0x202A, "LEFT-TO-RIGHT EMBEDDING"),
    (0x202B, "RIGHT-TO-LEFT EMBEDDING"),
    (0x202C, "POP DIRECTIONAL FORMATTING"),
    (0x202D, "LEFT-TO-RIGHT OVERRIDE"),
    (0x202E, "RIGHT-TO-LEFT OVERRIDE"),
    (0x2060, "WORD JOINER"),
    (0x2061, "FUNCTION APPLICATION"),
    (0x2062, "INVISIBLE TIMES"),
    (0x2063, "INVISIBLE SEPARATOR"),
    (0x2064, "INVISIBLE PLUS"),
    (0x2066, "LEFT-TO-RIGHT ISOLATE"),
    (0x2067, "RIGHT-TO-LEFT ISOLATE"),
    (0x2068, "FIRST STRONG ISOLATE"),
    (0x2069, "POP DIRECTIONAL ISOLATE"),
    (0x3000, "IDEOGRAPHIC SPACE"),
    (0x3164, "HANGUL FILLER"),
    (0xFE0E, "VARIATION SELECTOR-15"),
    (0xFE0F, "VARIATION SELECTOR-16"),
    (0xFEFF, "ZERO WIDTH NO-BREAK SPACE"),
    (0xFFA0, "HALFWIDTH HANGUL FILLER"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_of_names_is_sorted_so_that_every_entry_is_found() {
        assert!(NAMES.windows(2).all(|pair| pair[0].0 < pair[1].0));
        for (code, name) in NAMES {
            let c = char::from_u32(*code).unwrap();
            assert_eq!(describe(c), format!("U+{code:04X} {name}"));
        }
    }

    #[test]
    fn every_character_in_the_table_is_invisible_or_a_control() {
        for (code, _) in NAMES {
            let c = char::from_u32(*code).unwrap();
            assert!(
                is_invisible(c) || is_bidi_control(c) || c.is_control(),
                "U+{code:04X}"
            );
        }
    }
}
