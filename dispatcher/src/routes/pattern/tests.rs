//! Topic patterns: `*` and `#` as RabbitMQ matches them, refused patterns, and the
//! linear scan against the recursive reference.

use super::*;
use proptest::prelude::*;

pub(super) fn pattern(text: &str) -> Vec<Word> {
    match parse(text).unwrap() {
        EventMatcher::Pattern(words) => words,
        EventMatcher::Exact(_) => text
            .split('.')
            .map(|w| Word::Literal(w.to_owned()))
            .collect(),
    }
}

/// The recursive reference and the linear scan, which must agree.
fn both(p: &str, t: &str) -> bool {
    let words = pattern(p);
    let reference = matches(&words, &t.split('.').collect::<Vec<_>>());
    assert_eq!(
        reference,
        matches_linear(&words, t),
        "reference and linear scan disagree on {p:?} vs {t:?}"
    );
    reference
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
fn an_exact_matcher_compares_the_whole_type() {
    let exact = parse("a.b").unwrap();
    assert!(exact.matches("a.b"));
    assert!(!exact.matches("a.b.c"));
    assert!(parse("a.#").unwrap().matches("a.b.c"));
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
fn a_pattern_that_only_matches_over_long_types_is_refused() {
    let long = "x".repeat(MAX_TYPE_BYTES + 1);
    let err = parse(&long).unwrap_err();
    assert!(err.contains("could never match"), "{err}");
    let stars = vec!["*"; MAX_TYPE_BYTES + 2].join(".");
    assert!(parse(&stars).unwrap_err().contains("could never match"));
    // `#` may match nothing, so it does not count towards the shortest type.
    let hashes = format!("{}.#", "y".repeat(MAX_TYPE_BYTES));
    assert!(parse(&hashes).is_ok());
    assert!(parse(&"z".repeat(MAX_TYPE_BYTES)).is_ok());
}

#[test]
fn repeated_hashes_collapse() {
    assert_eq!(pattern("#.#.a"), pattern("#.a"));
}

#[test]
fn the_linear_scan_handles_a_long_type_against_many_hashes() {
    let t = vec!["x"; 40_000].join(".");
    assert!(!matches_linear(&pattern("#.a.#.b.#.c.#.d.#"), &t));
    assert!(matches_linear(&pattern("#.x.#"), &t));
    assert!(matches_linear(&pattern("x.#.x.*"), &t));
    assert!(!matches_linear(&pattern("*.#.y"), &t));
}

fn pattern_words() -> impl Strategy<Value = Vec<Word>> {
    proptest::collection::vec(
        prop_oneof![
            Just(Word::Literal("a".into())),
            Just(Word::Literal("b".into())),
            Just(Word::Star),
            Just(Word::Hash),
        ],
        0..7,
    )
}

fn event_type() -> impl Strategy<Value = String> {
    proptest::collection::vec(prop_oneof![Just("a"), Just("b"), Just("")], 1..9)
        .prop_map(|words| words.join("."))
}

proptest! {
    #[test]
    fn the_linear_scan_agrees_with_the_recursive_reference(
        p in pattern_words(),
        t in event_type(),
    ) {
        let words: Vec<&str> = t.split('.').collect();
        prop_assert_eq!(matches_linear(&p, &t), matches(&p, &words));
    }
}
