//! Names, emails and request bodies: what is accepted, trimmed and refused, every field
//! problem listed at once, and the events a change emits.

use super::*;
use proptest::prelude::*;

fn fields(body: Value) -> UserFields {
    serde_json::from_value(body).unwrap()
}

#[test]
fn a_name_is_trimmed() {
    assert_eq!(UserName::parse("  Alice \t").unwrap().as_str(), "Alice");
}

#[test]
fn a_name_of_100_characters_is_accepted_and_101_is_refused() {
    assert!(UserName::parse(&"a".repeat(100)).is_ok());
    let err = UserName::parse(&"a".repeat(101)).unwrap_err();
    assert!(err.contains("at most 100 characters"), "{err}");
}

#[test]
fn name_length_counts_characters_not_bytes() {
    // 100 four-byte characters are 400 bytes but 100 characters.
    assert!(UserName::parse(&"😀".repeat(100)).is_ok());
    assert!(UserName::parse(&"é".repeat(101)).is_err());
}

#[test]
fn unicode_names_are_welcome() {
    for name in ["Zoë", "山田太郎", "Ἀριστοτέλης", "👩‍💻 dev", "O'Brien-Smith"]
    {
        assert_eq!(UserName::parse(name).unwrap().as_str(), name);
    }
}

#[test]
fn empty_blank_and_control_character_names_are_refused() {
    assert!(UserName::parse("").is_err());
    assert!(UserName::parse("   ").is_err());
    assert!(UserName::parse("a\u{0}b").is_err());
    assert!(UserName::parse("line\nbreak").is_err());
}

#[test]
fn an_email_is_trimmed_and_lowercased() {
    let email = Email::parse("  Alice@Example.COM ").unwrap();
    assert_eq!(email.as_str(), "alice@example.com");
}

#[test]
fn sane_emails_are_accepted() {
    for email in ["a@b.co", "first.last+tag@sub.example.org", "x_y@müller.de"] {
        assert!(Email::parse(email).is_ok(), "{email}");
    }
}

#[test]
fn emails_of_an_odd_shape_are_refused() {
    for email in [
        "",
        "alice",
        "alice@",
        "@example.com",
        "alice@example",
        "alice@@example.com",
        "a@b@example.com",
        "alice@exa mple.com",
        "alice@.example.com",
        "alice@example..com",
        "alice@-example.com",
        "alice@exam\nple.com",
    ] {
        assert!(Email::parse(email).is_err(), "{email:?} was accepted");
    }
}

#[test]
fn overlong_emails_are_refused() {
    let local = "a".repeat(65);
    assert!(Email::parse(&format!("{local}@example.com")).is_err());
    let domain = format!("{}.com", "b".repeat(250));
    assert!(Email::parse(&format!("a@{domain}")).is_err());
}

#[test]
fn every_field_problem_is_listed_at_once() {
    let problems = fields(json!({"name": 5, "extra": true}))
        .into_new_user()
        .unwrap_err()
        .to_json();
    assert_eq!(problems["name"], "must be a string (got a number)");
    assert_eq!(problems["email"], "is required");
    assert!(
        problems["extra"]
            .as_str()
            .unwrap()
            .contains("unknown field")
    );
}

#[test]
fn an_explicit_null_is_a_wrong_type_not_a_missing_field() {
    let problems = fields(json!({"name": null, "email": "a@b.co"}))
        .into_new_user()
        .unwrap_err()
        .to_json();
    assert_eq!(problems["name"], "must be a string (got null)");
}

#[test]
fn a_valid_body_becomes_a_new_user() {
    let user = fields(json!({"name": " Bob ", "email": "BOB@x.io"}))
        .into_new_user()
        .unwrap();
    assert_eq!(user.name.as_str(), "Bob");
    assert_eq!(user.email.as_str(), "bob@x.io");
}

#[test]
fn a_patch_needs_at_least_one_field() {
    let problems = fields(json!({})).into_patch().unwrap_err().to_json();
    assert!(problems["body"].is_string(), "{problems}");
    let patch = fields(json!({"email": "new@x.io"})).into_patch().unwrap();
    assert_eq!(patch.name, None);
    assert_eq!(patch.email.unwrap().as_str(), "new@x.io");
}

#[test]
fn events_carry_the_contract_envelope_and_data() {
    let user = User {
        id: 42,
        name: "Alice".into(),
        email: "alice@example.com".into(),
        version: 1,
        created_at: "2026-01-01T00:00:00.000000Z".into(),
        updated_at: "2026-01-01T00:00:00.000000Z".into(),
    };
    let trace = TraceParent::new_root();
    let event = created_event(&user, Utc::now(), &trace);
    assert_eq!(event.source, "user-service");
    assert_eq!(event.ty, "user_created");
    assert_eq!(event.subject.as_deref(), Some("42"));
    assert_eq!(event.traceparent(), Some(trace));
    let data = event.data.unwrap();
    assert_eq!(data["id"], 42);
    assert_eq!(data["version"], 1);
    assert_eq!(data["email"], "alice@example.com");
    assert!(data.get("created_at").is_none());

    let deleted = deleted_event(42, 3, Utc::now(), &trace);
    assert_eq!(deleted.ty, "user_deleted");
    assert_eq!(deleted.data.unwrap(), json!({"id": 42, "version": 3}));
}

proptest! {
    #[test]
    fn parsing_arbitrary_text_never_panics(text in "\\PC{0,300}") {
        let _ = UserName::parse(&text);
        let _ = Email::parse(&text);
    }

    #[test]
    fn an_accepted_name_is_trimmed_and_within_bounds(text in "\\PC{0,120}") {
        if let Ok(name) = UserName::parse(&text) {
            let chars = name.as_str().chars().count();
            prop_assert!((1..=NAME_MAX_CHARS).contains(&chars));
            prop_assert_eq!(name.as_str(), name.as_str().trim());
        }
    }

    #[test]
    fn an_accepted_email_is_lowercase(text in "[a-zA-Z0-9.]{1,10}@[a-zA-Z]{1,8}\\.[a-zA-Z]{2,4}") {
        let email = Email::parse(&text).unwrap();
        prop_assert_eq!(email.as_str(), text.to_lowercase());
    }
}
