//! Parsing `routes.toml`: a complete file with positions, and each kind of mistake
//! reported at its line and column.

use super::*;

fn problems(text: &str) -> Vec<Problem> {
    let all = match parse(text) {
        Ok((_, problems)) => problems,
        Err(problems) => problems,
    };
    assert!(!all.is_empty(), "the file should be refused");
    all
}

fn ok(text: &str) -> RoutesFile {
    let (file, problems) = parse(text).unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    file
}

fn message_at(text: &str, needle: &str) -> (String, usize) {
    let all = problems(text);
    let found = all
        .iter()
        .find(|p| p.message.contains(needle))
        .unwrap_or_else(|| panic!("no problem mentions {needle:?}: {all:?}"));
    (
        found.message.clone(),
        found.span.clone().map_or(0, |s| s.start),
    )
}

#[test]
fn a_complete_file_parses_with_positions() {
    let text = r#"
source = "in"
unrouted = "nowhere"
dead_letter = "bad"

[[route]]
name = "r1"
event = ["a", "b.*"]
where = { "data.country" = "FR", "data.age" = { gte = 18 } }
to = ["q1", { exchange = "x", routing_key = "k" }]
final = true

[[test]]
event = { type = "a", data = { id = 1 } }
expect = ["q1"]
"#;
    let file = ok(text);
    assert_eq!(file.source.unwrap().into_inner(), "in");
    let route = &file.routes[0];
    assert_eq!(route.name.get_ref(), "r1");
    assert_eq!(&text[route.name.span()], "\"r1\"");
    assert!(route.is_final);
    assert_eq!(route.filter.as_ref().unwrap().get_ref().len(), 2);
    assert_eq!(
        route.to.get_ref()[1].get_ref(),
        &TargetSpec::Exchange {
            exchange: "x".into(),
            routing_key: "k".into()
        }
    );
    let items = route.event.get_ref().items(route.event.span());
    assert_eq!(&text[items[1].1.clone()], "\"b.*\"");
    assert_eq!(file.tests.len(), 1);
}

#[test]
fn a_single_event_string_is_accepted() {
    let file = ok("[[route]]\nname = \"r\"\nevent = \"a\"\nto = [\"q\"]\n");
    assert_eq!(file.routes[0].event.get_ref(), &EventSpec::One("a".into()));
}

#[test]
fn unknown_top_level_key_is_rejected_with_its_position() {
    let (message, at) = message_at("routes = 1\n", "unknown key `routes`");
    assert!(message.contains("`route`"), "{message}");
    assert_eq!(at, 0);
}

#[test]
fn unknown_route_key_is_rejected_with_its_position() {
    let text = "[[route]]\nname = \"r\"\nevent = \"a\"\nto = [\"q\"]\ndestination = 1\n";
    let (message, at) = message_at(text, "destination");
    assert!(message.contains("unknown field"), "{message}");
    assert_eq!(&text[at..at + 11], "destination");
}

#[test]
fn wrong_types_are_rejected_with_their_positions() {
    let text = "[[route]]\nname = 7\nevent = \"a\"\nto = [\"q\"]\n";
    let (message, at) = message_at(text, "integer");
    assert!(message.contains("expected a string"), "{message}");
    assert_eq!(&text[at..at + 1], "7");
}

#[test]
fn a_bad_target_says_what_a_target_is() {
    let text = "[[route]]\nname = \"r\"\nevent = \"a\"\nto = [3]\n";
    let (message, at) = message_at(text, "queue name");
    assert!(message.contains("exchange"), "{message}");
    assert_eq!(&text[at..at + 1], "3");
}

#[test]
fn a_target_table_without_exchange_is_refused() {
    let text = "[[route]]\nname = \"r\"\nevent = \"a\"\nto = [{ routing_key = \"k\" }]\n";
    message_at(text, "needs `exchange`");
}

#[test]
fn missing_fields_are_named() {
    let (message, _) = message_at("[[route]]\nname = \"r\"\nevent = \"a\"\n", "missing");
    assert!(message.contains("`to`"), "{message}");
}

#[test]
fn every_bad_route_is_reported_not_just_the_first() {
    let text = "[[route]]\nname = 1\nevent = \"a\"\nto = [\"q\"]\n\n[[route]]\nname = \"b\"\nevent = \"a\"\nto = [\"q\"]\nextra = true\n";
    assert_eq!(problems(text).len(), 2);
}

#[test]
fn a_syntax_error_has_a_position() {
    let text = "[[route]]\nname = \"r\nevent = \"a\"\n";
    let all = problems(text);
    assert_eq!(all.len(), 1);
    assert!(all[0].span.is_some(), "{all:?}");
}

#[test]
fn route_written_as_a_single_table_is_explained() {
    message_at("[route]\nname = \"r\"\n", "[[route]]");
}

#[test]
fn an_empty_file_is_an_empty_table() {
    let file = ok("");
    assert!(file.routes.is_empty() && file.source.is_none());
}
