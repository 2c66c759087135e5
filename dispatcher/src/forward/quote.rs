//! Input quoted in a header or a log line, cut to a bounded length: a producer's bad
//! message must cost a few kilobytes of log and header, never its own size.

use std::borrow::Cow;

/// The most bytes of input a reason or a log line quotes.
pub const QUOTE_LIMIT: usize = 1024;

/// `text` when it is at most `limit` bytes; else its first `limit` bytes or fewer (cut
/// on a char boundary), an ellipsis and the original length.
pub fn bounded(text: &str, limit: usize) -> Cow<'_, str> {
    if text.len() <= limit {
        return Cow::Borrowed(text);
    }
    // Index 0 is always a boundary, so this finds one.
    let cut = (0..=limit)
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0);
    Cow::Owned(format!("{}… ({} bytes in all)", &text[..cut], text.len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn short_text_is_kept_as_it_is() {
        assert_eq!(bounded("type_x", 10), "type_x");
        assert_eq!(bounded("", 0), "");
    }

    #[test]
    fn long_text_is_cut_with_an_ellipsis_and_its_length() {
        let text = "a".repeat(5000);
        let cut = bounded(&text, QUOTE_LIMIT);
        assert!(cut.starts_with(&"a".repeat(QUOTE_LIMIT)), "{cut}");
        assert!(cut.ends_with("… (5000 bytes in all)"), "{cut}");
    }

    #[test]
    fn text_is_cut_on_a_char_boundary() {
        // "é" is two bytes: a cut at 3 would split the second one.
        assert_eq!(bounded("éééé", 3), "é… (8 bytes in all)");
    }

    proptest! {
        #[test]
        fn a_bounded_text_never_exceeds_the_limit_plus_its_suffix(text in "\\PC{0,300}", limit in 0usize..200) {
            let cut = bounded(&text, limit);
            prop_assert!(cut.len() <= limit + "… ( bytes in all)".len() + 20);
            prop_assert!(text.starts_with(cut.split('…').next().unwrap_or_default()));
        }
    }
}
