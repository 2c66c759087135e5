//! Event type patterns, AMQP topic style: words separated by `.`, `*` matches exactly one
//! word, `#` matches zero or more words. A route's patterns are compiled into a word trie
//! ([`super::trie`]); here they are parsed, and matched one at a time by a plain linear
//! scan, which `dispatcher explain` uses and the trie is tested against.

use events::envelope::MAX_TYPE_BYTES;

/// One word of a pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Word {
    /// A literal word.
    Literal(String),
    /// `*`: exactly one word (which may be empty).
    Star,
    /// `#`: zero or more words.
    Hash,
}

/// A parsed `event` entry: an exact type, or a pattern with wildcards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventMatcher {
    /// Matches this type only (a hash lookup).
    Exact(String),
    /// Matches by words.
    Pattern(Vec<Word>),
}

impl EventMatcher {
    /// Whether `event_type` matches, by a plain scan (linear in the type's words times
    /// the pattern's words); `dispatcher explain` uses it, the trie must agree with it.
    pub fn matches(&self, event_type: &str) -> bool {
        match self {
            Self::Exact(ty) => ty == event_type,
            Self::Pattern(words) => matches_linear(words, event_type),
        }
    }
}

/// Parses one `event` entry; the error is a sentence for the routes file author.
pub fn parse(text: &str) -> Result<EventMatcher, String> {
    if text.is_empty() {
        return Err("an event type or pattern must not be empty".to_owned());
    }
    if text.chars().any(char::is_whitespace) {
        return Err(format!("event pattern `{text}` contains whitespace"));
    }
    let mut words = Vec::new();
    for word in text.split('.') {
        match word {
            "" => {
                return Err(format!(
                    "event pattern `{text}` has an empty word: a `.` at the start or end, or two in a row"
                ));
            }
            "*" => words.push(Word::Star),
            // `#.#` means the same as `#`; collapsing keeps the trie small.
            "#" if words.last() == Some(&Word::Hash) => {}
            "#" => words.push(Word::Hash),
            w if w.contains(['*', '#']) => {
                return Err(format!(
                    "event pattern `{text}`: `*` and `#` must be whole words (like `user.*`), found `{w}`"
                ));
            }
            w => words.push(Word::Literal(w.to_owned())),
        }
    }
    let shortest = shortest_match(&words);
    if shortest > MAX_TYPE_BYTES {
        return Err(format!(
            "event pattern `{text}` only matches types of {shortest} bytes or more, \
             but an event type is at most {MAX_TYPE_BYTES} bytes: it could never match"
        ));
    }
    if words.iter().all(|w| matches!(w, Word::Literal(_))) {
        Ok(EventMatcher::Exact(text.to_owned()))
    } else {
        Ok(EventMatcher::Pattern(words))
    }
}

/// The length in bytes of the shortest type `pattern` matches: its literal words, one
/// empty word per `*`, nothing for `#`, and the dots between.
fn shortest_match(pattern: &[Word]) -> usize {
    let mut words: usize = 0;
    let mut bytes = 0;
    for word in pattern {
        match word {
            Word::Literal(w) => {
                words += 1;
                bytes += w.len();
            }
            Word::Star => words += 1,
            Word::Hash => {}
        }
    }
    bytes + words.saturating_sub(1)
}

/// Whether `pattern` matches `event_type`: the set of pattern positions reached is
/// advanced one word at a time, so the cost is (words of the type) x (pattern words).
/// Independent of the trie, it is the reference the trie is tested against on long types.
pub fn matches_linear(pattern: &[Word], event_type: &str) -> bool {
    let mut reached = vec![false; pattern.len() + 1];
    let mut next = reached.clone();
    reached[0] = true;
    close_over_hashes(pattern, &mut reached);
    for word in event_type.split('.') {
        next.fill(false);
        for (at, item) in pattern.iter().enumerate() {
            if !reached[at] {
                continue;
            }
            match item {
                Word::Hash => next[at] = true,
                Word::Star => next[at + 1] = true,
                Word::Literal(lit) if lit == word => next[at + 1] = true,
                Word::Literal(_) => {}
            }
        }
        close_over_hashes(pattern, &mut next);
        std::mem::swap(&mut reached, &mut next);
        if !reached.contains(&true) {
            return false;
        }
    }
    reached[pattern.len()]
}

/// A `#` may match no word: reaching it reaches the position after it too.
fn close_over_hashes(pattern: &[Word], reached: &mut [bool]) {
    for (at, item) in pattern.iter().enumerate() {
        if reached[at] && *item == Word::Hash {
            reached[at + 1] = true;
        }
    }
}

/// The reference matcher: plain recursion over words, as the topic semantics are
/// usually stated. Exponential in the number of `#`: only for tests on short inputs.
#[cfg(test)]
pub fn matches(pattern: &[Word], words: &[&str]) -> bool {
    match pattern.split_first() {
        None => words.is_empty(),
        Some((Word::Hash, rest)) => (0..=words.len()).any(|skip| matches(rest, &words[skip..])),
        Some((Word::Star, rest)) => !words.is_empty() && matches(rest, &words[1..]),
        Some((Word::Literal(lit), rest)) => {
            words.first().is_some_and(|w| w == lit) && matches(rest, &words[1..])
        }
    }
}

#[cfg(test)]
mod tests;
