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
    assert!(UserName::parse("\u{3000}\t\u{a0}").is_err());
    assert!(UserName::parse("a\u{0}b").is_err());
    assert!(UserName::parse("line\nbreak").is_err());
}

#[test]
fn a_control_character_is_named_with_its_position() {
    let err = UserName::parse("  line\nbreak").unwrap_err();
    assert_eq!(
        err,
        "must not contain control characters: U+000A LINE FEED at position 5"
    );
}

#[test]
fn a_name_made_only_of_invisible_characters_is_refused_naming_one() {
    let err = UserName::parse("\u{200B}").unwrap_err();
    assert!(
        err.contains("U+200B ZERO WIDTH SPACE at position 1"),
        "{err}"
    );
    for invisible in [
        "\u{200B}\u{200B}\u{200B}",
        " \u{200B} \u{200C} ",
        "\u{2060}",
        "\u{FEFF}",
        "\u{3164}\u{3164}",
        "\u{115F}",
        "\u{AD}",
        "\u{FE0F}",
        "\u{E0041}\u{E0042}",
        "\u{200D}\u{3000}\u{200D}",
    ] {
        let err = UserName::parse(invisible).unwrap_err();
        assert!(err.contains("visible character"), "{invisible:?}: {err}");
        assert!(err.contains("at position"), "{invisible:?}: {err}");
    }
}

#[test]
fn a_character_without_a_name_in_the_table_is_named_by_its_code() {
    let err = UserName::parse("\u{E0041}").unwrap_err();
    assert!(err.ends_with("such as U+E0041 at position 1"), "{err}");
}

#[test]
fn invisible_characters_inside_a_visible_name_are_kept() {
    // Joiners are part of emoji sequences and of Persian and Indic spelling.
    for name in ["👩\u{200D}💻", "می\u{200C}خواهم", "a\u{200B}b", "❤\u{FE0F}"] {
        assert_eq!(UserName::parse(name).unwrap().as_str(), name);
    }
}

#[test]
fn every_bidirectional_control_character_is_refused_and_named() {
    let controls = [
        '\u{061C}', '\u{200E}', '\u{200F}', '\u{202A}', '\u{202B}', '\u{202C}', '\u{202D}',
        '\u{202E}', '\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}',
    ];
    for control in controls {
        let err = UserName::parse(&format!("ab{control}cd")).unwrap_err();
        let code = format!("U+{:04X} ", u32::from(control));
        assert!(
            err.starts_with("must not contain bidirectional control"),
            "{err}"
        );
        assert!(err.contains(&code), "{err}");
        assert!(err.ends_with("at position 3"), "{err}");
    }
    let err = UserName::parse("evil\u{202E}gnp.exe").unwrap_err();
    assert_eq!(
        err,
        "must not contain bidirectional control characters: U+202E RIGHT-TO-LEFT OVERRIDE at position 5"
    );
}

#[test]
fn a_name_is_stored_in_normalization_form_c() {
    let decomposed = "Zoe\u{308}";
    assert_eq!(UserName::parse(decomposed).unwrap().as_str(), "Zoë");
}

#[test]
fn name_length_is_counted_after_normalisation() {
    // 100 decomposed `é` are 200 code points as sent, 100 characters once composed.
    assert!(UserName::parse(&"e\u{301}".repeat(100)).is_ok());
    assert!(UserName::parse(&"e\u{301}".repeat(101)).is_err());
    // U+0958 is one code point as sent and two in NFC (a composition exclusion).
    assert_eq!(
        UserName::parse("\u{958}").unwrap().as_str().chars().count(),
        2
    );
    let err = UserName::parse(&"\u{958}".repeat(51)).unwrap_err();
    assert!(err.contains("got 102"), "{err}");
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
fn email_length_is_counted_after_lowercasing() {
    // `İ` lowercases to two code points (`i` and a combining dot above).
    let local = "İ".repeat(40);
    assert_eq!(local.chars().count(), 40);
    let err = Email::parse(&format!("{local}@example.com")).unwrap_err();
    assert!(
        err.contains("at most 64 characters once lowercased (got 80)"),
        "{err}"
    );
    let domain = format!("{}.com", "İ".repeat(126));
    let raw = format!("a@{domain}");
    assert!(raw.chars().count() <= EMAIL_MAX_CHARS);
    let err = Email::parse(&raw).unwrap_err();
    assert!(
        err.contains("at most 254 characters once lowercased (got 258)"),
        "{err}"
    );
}

#[test]
fn an_email_is_stored_lowercased_and_in_normalization_form_c() {
    let email = Email::parse("ZOE\u{308}@Example.com").unwrap();
    assert_eq!(email.as_str(), "zoë@example.com");
    let email = Email::parse("a@İstanbul.example").unwrap();
    assert_eq!(email.as_str(), "a@i\u{307}stanbul.example");
}

#[test]
fn invisible_and_bidirectional_characters_in_an_email_are_refused_and_named() {
    let err = Email::parse("ali\u{200B}ce@example.com").unwrap_err();
    assert_eq!(
        err,
        "must not contain invisible characters: U+200B ZERO WIDTH SPACE at position 4"
    );
    let err = Email::parse("alice\u{202E}@example.com").unwrap_err();
    assert!(
        err.contains("U+202E RIGHT-TO-LEFT OVERRIDE at position 6"),
        "{err}"
    );
    let err = Email::parse("alice@exa mple.com").unwrap_err();
    assert!(err.contains("U+0020 SPACE at position 10"), "{err}");
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
    fn an_accepted_name_is_in_normalization_form_c_and_has_no_bidi_control(
        text in "[a-zA-Z\u{300}-\u{36F}\u{958}-\u{95F}\u{200B}-\u{200F}\u{202A}-\u{202E} ]{0,120}",
    ) {
        if let Ok(name) = UserName::parse(&text) {
            prop_assert_eq!(text::nfc(name.as_str()), name.as_str());
            prop_assert!(name.as_str().chars().count() <= NAME_MAX_CHARS);
            prop_assert!(!name.as_str().chars().any(text::is_bidi_control));
            prop_assert!(!name.as_str().chars().all(text::is_invisible));
        }
    }

    #[test]
    fn an_accepted_email_is_within_bounds_once_lowercased(
        local in "[a-zİẞΣ\u{130}]{1,70}",
        domain in "[a-zİ]{1,200}",
    ) {
        if let Ok(email) = Email::parse(&format!("{local}@{domain}.com")) {
            prop_assert!(email.as_str().chars().count() <= EMAIL_MAX_CHARS);
            let (stored_local, _) = email.as_str().split_once('@').unwrap();
            prop_assert!(stored_local.chars().count() <= 64);
            prop_assert_eq!(email.as_str(), text::nfc(&email.as_str().to_lowercase()));
        }
    }

    #[test]
    fn an_accepted_email_is_lowercase(text in "[a-zA-Z0-9.]{1,10}@[a-zA-Z]{1,8}\\.[a-zA-Z]{2,4}") {
        let email = Email::parse(&text).unwrap();
        prop_assert_eq!(email.as_str(), text.to_lowercase());
    }
}
