//! The pattern trie: every matching route once, `#` at any place, long types, and the
//! trie against the recursive reference and the linear scan.

use super::*;
use crate::routes::pattern::{EventMatcher, matches, matches_linear, parse};
use proptest::prelude::*;

fn pattern(text: &str) -> Vec<Word> {
    match parse(text).unwrap() {
        EventMatcher::Pattern(words) => words,
        EventMatcher::Exact(_) => text
            .split('.')
            .map(|w| Word::Literal(w.to_owned()))
            .collect(),
    }
}

fn trie_of(patterns: &[Vec<Word>]) -> TopicTrie {
    let mut trie = TopicTrie::default();
    for (route, p) in patterns.iter().enumerate() {
        trie.insert(p, route);
    }
    trie
}

/// The routes the trie reports, sorted; each must be reported once.
fn collected(trie: &TopicTrie, event_type: &str) -> Vec<usize> {
    let mut out = Vec::new();
    trie.collect(event_type, &mut out);
    let reported = out.len();
    out.sort_unstable();
    out.dedup();
    assert_eq!(
        out.len(),
        reported,
        "a route was reported twice for {event_type:?}"
    );
    out
}

/// The routes whose pattern matches, by the linear scan of each pattern.
fn linear(patterns: &[Vec<Word>], event_type: &str) -> Vec<usize> {
    (0..patterns.len())
        .filter(|&r| matches_linear(&patterns[r], event_type))
        .collect()
}

fn single(p: &str, t: &str) -> bool {
    !collected(&trie_of(&[pattern(p)]), t).is_empty()
}

#[test]
fn the_trie_reports_every_matching_route() {
    let patterns: Vec<Vec<Word>> = ["user.*", "#", "user.created", "*.deleted", "user.#"]
        .iter()
        .map(|p| pattern(p))
        .collect();
    assert_eq!(
        collected(&trie_of(&patterns), "user.created"),
        vec![0, 1, 2, 4]
    );
}

#[test]
fn an_empty_trie_matches_nothing() {
    assert!(collected(&TopicTrie::default(), "a").is_empty());
}

#[test]
fn a_hash_may_take_no_word_at_the_start_the_middle_or_the_end() {
    assert!(single("#.a", "a"));
    assert!(single("a.#.b", "a.b"));
    assert!(single("a.#", "a"));
    assert!(single("#", ""));
    assert!(!single("a.#.b", "a"));
}

#[test]
fn a_hash_may_take_many_words_then_hand_over_to_a_star() {
    assert!(single("#.*", "a"));
    assert!(single("#.*.z", "a.b.c.z"));
    assert!(!single("#.*.*", "a"));
    assert!(single("a.#.*.b", "a.x.y.b"));
}

#[test]
fn a_type_matched_along_many_hash_paths_reports_its_route_once() {
    // `a.a.a.a` matches `#.a.#` in four ways; the route is reported once.
    let trie = trie_of(&[pattern("#.a.#"), pattern("#.#.a.#.#"), pattern("#")]);
    assert_eq!(collected(&trie, "a.a.a.a"), vec![0, 1, 2]);
}

#[test]
fn literal_and_star_children_are_both_followed() {
    let trie = trie_of(&[pattern("a.b.#"), pattern("a.*.c"), pattern("*.b.c")]);
    assert_eq!(collected(&trie, "a.b.c"), vec![0, 1, 2]);
    assert_eq!(collected(&trie, "a.x.c"), vec![1]);
}

#[test]
fn a_long_type_against_many_hashes_finishes_with_the_right_answer() {
    // Tens of thousands of words, under 200 kB: a quadratic or recursive walk would
    // take minutes or overflow the stack here.
    let x = vec!["x"; 20_000].join(".");
    let patterns: Vec<Vec<Word>> = [
        "#.x.#",
        "#.a.#.b.#.c.#.d.#",
        "x.#.x.*",
        "*.#.y",
        "#.x.#.x.#.x.#",
        "#.*.#.*.#",
        "#",
    ]
    .iter()
    .map(|p| pattern(p))
    .collect();
    let trie = trie_of(&patterns);
    let ends_in_y = format!("{x}.y");
    assert!(ends_in_y.len() < 200_000);
    for (ty, known) in [
        (&x, vec![0, 2, 4, 5, 6]),
        (&ends_in_y, vec![0, 2, 3, 4, 5, 6]),
    ] {
        assert_eq!(linear(&patterns, ty), known);
        assert_eq!(collected(&trie, ty), known);
    }
}

#[test]
fn a_long_type_of_empty_words_finishes() {
    let dots = ".".repeat(40_000);
    let trie = trie_of(&[pattern("#.*.#"), pattern("#.a.#")]);
    assert_eq!(collected(&trie, &dots), vec![0]);
}

fn pattern_words() -> impl Strategy<Value = Vec<Word>> {
    proptest::collection::vec(
        prop_oneof![
            Just(Word::Literal("a".into())),
            Just(Word::Literal("b".into())),
            Just(Word::Star),
            Just(Word::Hash),
            Just(Word::Hash),
        ],
        0..7,
    )
}

fn event_type(max_words: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(prop_oneof![Just("a"), Just("b"), Just("")], 1..max_words)
        .prop_map(|words| words.join("."))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn the_trie_agrees_with_the_recursive_reference(
        patterns in proptest::collection::vec(pattern_words(), 1..6),
        t in event_type(9),
    ) {
        let words: Vec<&str> = t.split('.').collect();
        let want: Vec<usize> = (0..patterns.len())
            .filter(|&r| matches(&patterns[r], &words))
            .collect();
        prop_assert_eq!(collected(&trie_of(&patterns), &t), want);
    }
}

proptest! {
    // Each case walks a type of up to 2,000 words: fewer cases keep the suite quick.
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn the_trie_agrees_with_the_linear_scan_on_long_types(
        patterns in proptest::collection::vec(pattern_words(), 1..6),
        t in event_type(2_000),
        tail in prop_oneof![Just(""), Just(".a"), Just(".b.a")],
    ) {
        let t = format!("{t}{tail}");
        prop_assert_eq!(collected(&trie_of(&patterns), &t), linear(&patterns, &t));
    }
}
