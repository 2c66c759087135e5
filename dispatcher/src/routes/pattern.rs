//! Event type patterns, AMQP topic style: words separated by `.`, `*` matches exactly one
//! word, `#` matches zero or more words. Patterns are compiled into a word trie (as
//! RabbitMQ's topic exchange does) so that matching costs the length of the type, not
//! the number of routes.

use std::collections::{HashMap, HashSet};

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
            // `#.#` means the same as `#`; collapsing keeps matching linear.
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
    if words.iter().all(|w| matches!(w, Word::Literal(_))) {
        Ok(EventMatcher::Exact(text.to_owned()))
    } else {
        Ok(EventMatcher::Pattern(words))
    }
}

/// The reference matcher: plain recursion over words. The trie must agree with it.
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

/// Route patterns compiled into a trie of words; each terminal node lists the routes
/// (by index) whose pattern ends there.
#[derive(Debug, Default, Clone)]
pub struct TopicTrie {
    nodes: Vec<Node>,
    /// Whether any pattern has a `#`; without one, no matching state is reached twice
    /// and the walk needs no memo (nor its allocation).
    has_hash: bool,
}

#[derive(Debug, Default, Clone)]
struct Node {
    literal: HashMap<String, usize>,
    star: Option<usize>,
    hash: Option<usize>,
    routes: Vec<usize>,
}

impl TopicTrie {
    /// Whether no pattern was inserted.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Adds `pattern` for route `route`.
    pub fn insert(&mut self, pattern: &[Word], route: usize) {
        if self.nodes.is_empty() {
            self.nodes.push(Node::default());
        }
        self.has_hash |= pattern.contains(&Word::Hash);
        let mut at = 0;
        for word in pattern {
            let next = self.nodes.len();
            let node = &mut self.nodes[at];
            let slot = match word {
                Word::Literal(w) => node.literal.entry(w.clone()).or_insert(next),
                Word::Star => node.star.get_or_insert(next),
                Word::Hash => node.hash.get_or_insert(next),
            };
            at = *slot;
            if at == next {
                self.nodes.push(Node::default());
            }
        }
        self.nodes[at].routes.push(route);
    }

    /// Appends to `out` the routes whose pattern matches `event_type` (unsorted, each
    /// once at most per terminal node; the caller sorts and dedupes).
    pub fn collect(&self, event_type: &str, out: &mut Vec<usize>) {
        if self.nodes.is_empty() {
            return;
        }
        let words: Vec<&str> = event_type.split('.').collect();
        let mut visited = self.has_hash.then(HashSet::new);
        self.walk(0, &words, out, &mut visited);
    }

    fn walk(
        &self,
        at: usize,
        words: &[&str],
        out: &mut Vec<usize>,
        visited: &mut Option<HashSet<(usize, usize)>>,
    ) {
        // The same (node, remaining words) state can be reached along several `#`
        // paths; visiting it once bounds the work by nodes x words.
        if let Some(visited) = visited
            && !visited.insert((at, words.len()))
        {
            return;
        }
        let node = &self.nodes[at];
        if let Some(hash) = node.hash {
            for skip in 0..=words.len() {
                self.walk(hash, &words[skip..], out, visited);
            }
        }
        match words.split_first() {
            None => out.extend_from_slice(&node.routes),
            Some((first, rest)) => {
                if let Some(&next) = node.literal.get(*first) {
                    self.walk(next, rest, out, visited);
                }
                if let Some(star) = node.star {
                    self.walk(star, rest, out, visited);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(text: &str) -> Vec<Word> {
        match parse(text).unwrap() {
            EventMatcher::Pattern(words) => words,
            EventMatcher::Exact(_) => text
                .split('.')
                .map(|w| Word::Literal(w.to_owned()))
                .collect(),
        }
    }

    fn naive(p: &str, t: &str) -> bool {
        matches(&pattern(p), &t.split('.').collect::<Vec<_>>())
    }

    fn trie(p: &str, t: &str) -> bool {
        let mut trie = TopicTrie::default();
        trie.insert(&pattern(p), 0);
        let mut out = Vec::new();
        trie.collect(t, &mut out);
        !out.is_empty()
    }

    fn both(p: &str, t: &str) -> bool {
        let (a, b) = (naive(p, t), trie(p, t));
        assert_eq!(a, b, "naive and trie disagree on {p:?} vs {t:?}");
        a
    }

    #[test]
    fn types_without_wildcards_are_exact() {
        assert_eq!(
            parse("user_created").unwrap(),
            EventMatcher::Exact("user_created".into())
        );
        assert_eq!(
            parse("user.created").unwrap(),
            EventMatcher::Exact("user.created".into())
        );
    }

    #[test]
    fn star_matches_exactly_one_word() {
        assert!(both("user.*", "user.created"));
        assert!(!both("user.*", "user"));
        assert!(!both("user.*", "user.created.v2"));
        assert!(both("*.created", "order.created"));
        assert!(both("*", "user_created"));
        assert!(!both("*", "a.b"));
    }

    #[test]
    fn hash_matches_zero_or_more_words() {
        assert!(both("user.#", "user"));
        assert!(both("user.#", "user.created"));
        assert!(both("user.#", "user.created.v2"));
        assert!(!both("user.#", "users.created"));
        assert!(both("#", "anything.at.all"));
        assert!(both("#.created", "created"));
        assert!(both("#.created", "a.b.created"));
        assert!(both("a.#.z", "a.z"));
        assert!(both("a.#.z", "a.b.c.z"));
        assert!(!both("a.#.z", "a.b.c"));
    }

    #[test]
    fn empty_words_in_event_types_are_words_too() {
        assert!(both("a.*.b", "a..b"));
        assert!(both("#", "a..b"));
        assert!(both("*", ""));
        assert!(both("#", ""));
        assert!(both("a.*", "a."));
        assert!(!both("a.*", "a"));
    }

    #[test]
    fn combined_wildcards_match_like_rabbitmq() {
        assert!(both("*.#", "a"));
        assert!(!both("*.*.#", "a"));
        assert!(both("#.*", "a.b.c"));
        assert!(both("#.#", "a"));
        assert!(both("a.#.#.b", "a.b"));
        assert!(both("#.b.#", "a.b.c"));
        assert!(!both("#.b.#", "a.c"));
    }

    #[test]
    fn bad_patterns_are_refused_with_a_reason() {
        for (bad, why) in [
            ("", "empty"),
            ("user.", "empty word"),
            (".user", "empty word"),
            ("a..b", "empty word"),
            ("user*", "whole words"),
            ("us#er.x", "whole words"),
            ("user created", "whitespace"),
        ] {
            let err = parse(bad).unwrap_err();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
    }

    #[test]
    fn repeated_hashes_collapse() {
        assert_eq!(pattern("#.#.a"), pattern("#.a"));
    }

    #[test]
    fn the_trie_reports_every_matching_route() {
        let mut trie = TopicTrie::default();
        for (i, p) in ["user.*", "#", "user.created", "*.deleted", "user.#"]
            .iter()
            .enumerate()
        {
            trie.insert(&pattern(p), i);
        }
        let mut out = Vec::new();
        trie.collect("user.created", &mut out);
        out.sort_unstable();
        out.dedup();
        assert_eq!(out, vec![0, 1, 2, 4]);
    }

    #[test]
    fn many_hashes_against_a_long_type_stay_cheap() {
        let p = pattern("#.a.#.b.#.c.#.d.#");
        let t = vec!["x"; 200].join(".");
        assert!(!both_quick(&p, &t));
    }

    fn both_quick(p: &[Word], t: &str) -> bool {
        let mut trie = TopicTrie::default();
        trie.insert(p, 0);
        let mut out = Vec::new();
        trie.collect(t, &mut out);
        !out.is_empty()
    }
}
