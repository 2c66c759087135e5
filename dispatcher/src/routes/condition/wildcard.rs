//! `wildcard`: `*` matches any run of characters (`"*@example.*"`), in time linear in
//! the length of the value, with no backtracking.
//!
//! The pattern is cut at each `*` into literal segments once, at load. The first segment
//! must start the value and the last must end it; each segment in between is taken at
//! its leftmost place after the previous one. Taking it leftmost never loses a match (a
//! later place leaves less room for the rest), so no choice is ever revisited: each
//! search starts where the last one ended, and each is a linear substring search
//! (`memchr::memmem`, set up once per segment at load).

use std::fmt;

use memchr::memmem::Finder;

/// A compiled wildcard pattern.
#[derive(Debug, Clone)]
pub struct Wildcard {
    /// The pattern as written.
    source: String,
    /// The literal text between the stars (one segment when there is no star).
    segments: Vec<String>,
    /// A searcher for each segment between the first and the last.
    middle: Vec<Finder<'static>>,
}

impl PartialEq for Wildcard {
    fn eq(&self, other: &Self) -> bool {
        self.segments == other.segments
    }
}

impl Wildcard {
    /// Compiles `pattern`: `*` is any run of characters, `\*` a literal `*` and `\\` a
    /// literal `\`.
    pub fn parse(pattern: &str) -> Result<Self, String> {
        let mut segments = vec![String::new()];
        let mut chars = pattern.chars();
        while let Some(c) = chars.next() {
            match c {
                '*' => segments.push(String::new()),
                '\\' => match chars.next() {
                    Some(escaped @ ('*' | '\\')) => push(&mut segments, escaped),
                    other => {
                        return Err(format!(
                            "`wildcard` \"{pattern}\": `\\` escapes only `*` or `\\`, found {}",
                            other.map_or_else(|| "the end".to_owned(), |c| format!("`{c}`"))
                        ));
                    }
                },
                c => push(&mut segments, c),
            }
        }
        let middle = match segments.as_slice() {
            [_, middle @ .., _] => middle
                .iter()
                .map(|s| Finder::new(s.as_bytes()).into_owned())
                .collect(),
            _ => Vec::new(),
        };
        Ok(Self {
            source: pattern.to_owned(),
            segments,
            middle,
        })
    }

    /// Whether `text` matches the whole pattern.
    pub fn matches(&self, text: &str) -> bool {
        let (first, rest) = match self.segments.split_first() {
            Some(split) => split,
            None => return text.is_empty(),
        };
        let Some(last) = rest.last() else {
            return text == first;
        };
        let Some(text) = text.strip_prefix(first.as_str()) else {
            return false;
        };
        let Some(text) = text.strip_suffix(last.as_str()) else {
            return false;
        };
        let mut text = text.as_bytes();
        for finder in &self.middle {
            match finder.find(text) {
                Some(at) => text = &text[at + finder.needle().len()..],
                None => return false,
            }
        }
        true
    }
}

fn push(segments: &mut [String], c: char) {
    if let Some(last) = segments.last_mut() {
        last.push(c);
    }
}

impl fmt::Display for Wildcard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.source)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn matches(pattern: &str, text: &str) -> bool {
        Wildcard::parse(pattern).unwrap().matches(text)
    }

    /// The textbook dynamic program, quadratic but obviously right.
    fn reference(pattern: &str, text: &str) -> bool {
        #[derive(PartialEq)]
        enum Token {
            Star,
            Char(char),
        }
        let mut tokens = Vec::new();
        let mut chars = pattern.chars();
        while let Some(c) = chars.next() {
            tokens.push(match c {
                '*' => Token::Star,
                '\\' => Token::Char(chars.next().unwrap()),
                c => Token::Char(c),
            });
        }
        let text: Vec<char> = text.chars().collect();
        // can[j]: the tokens so far match text[..j].
        let mut can = vec![false; text.len() + 1];
        can[0] = true;
        for token in &tokens {
            let mut next = vec![false; text.len() + 1];
            for j in 0..=text.len() {
                next[j] = match token {
                    Token::Star => can[j] || (j > 0 && next[j - 1]),
                    Token::Char(c) => j > 0 && can[j - 1] && text[j - 1] == *c,
                };
            }
            can = next;
        }
        can[text.len()]
    }

    #[test]
    fn a_pattern_without_a_star_is_equality() {
        assert!(matches("abc", "abc"));
        assert!(!matches("abc", "abcd"));
        assert!(!matches("abc", "ab"));
        assert!(matches("", ""));
        assert!(!matches("", "a"));
    }

    #[test]
    fn a_star_matches_any_run_including_an_empty_one() {
        assert!(matches("*", ""));
        assert!(matches("*", "anything"));
        assert!(matches("a*", "a"));
        assert!(matches("*@example.*", "alice@example.com"));
        assert!(!matches("*@example.*", "alice@example"));
        assert!(matches("a*b*c", "abc"));
        assert!(matches("a*b*c", "a-b-b-c"));
        assert!(!matches("a*b*c", "acb"));
        assert!(matches("**", "x"), "consecutive stars are one");
    }

    #[test]
    fn prefix_and_suffix_segments_do_not_overlap() {
        assert!(!matches("ab*ba", "aba"));
        assert!(matches("ab*ba", "abba"));
        assert!(!matches("a*a", "a"));
    }

    #[test]
    fn middle_segments_are_found_in_order() {
        assert!(matches("*x*y*", "--x--y--"));
        assert!(!matches("*y*x*", "--x--y--"));
        assert!(matches("*aa*aa*", "aaaa"));
        assert!(!matches("*aa*aa*", "aaa"));
    }

    #[test]
    fn escapes_make_a_star_or_backslash_literal() {
        assert!(matches(r"a\*b", "a*b"));
        assert!(!matches(r"a\*b", "axb"));
        assert!(matches(r"a\\*", r"a\anything"));
        let err = Wildcard::parse(r"a\b").unwrap_err();
        assert!(err.contains("escapes only"), "{err}");
        assert!(Wildcard::parse("a\\").unwrap_err().contains("the end"));
    }

    #[test]
    fn characters_beyond_ascii_are_single_characters() {
        assert!(matches("é*", "été"));
        assert!(matches("*ü", "München ü"));
        assert!(!matches("é*", "e"));
    }

    #[test]
    fn a_pathological_input_is_decided_in_one_pass() {
        // `*a*a*…*b` against `aaaa…`: a backtracking matcher takes exponential time.
        let text = "a".repeat(10_000);
        for pattern in [
            format!("{}b", "*a".repeat(50)),
            format!("{}*b*", "*a".repeat(50)),
        ] {
            assert!(!matches(&pattern, &text), "{pattern}");
            assert!(matches(&pattern, &format!("{text}b")), "{pattern}");
        }
    }

    proptest! {
        #[test]
        fn the_matcher_agrees_with_the_reference(
            pattern in "([ab*]|\\\\\\*){0,8}",
            text in "[ab*]{0,12}",
        ) {
            prop_assert_eq!(matches(&pattern, &text), reference(&pattern, &text), "{} {}", pattern, text);
        }
    }
}
