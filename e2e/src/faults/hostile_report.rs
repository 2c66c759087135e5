//! The `hostile-input` scenario's report: one line per class saying where its messages
//! ended and whether that is the promised ending, and the lines for reconnects,
//! readiness and memory. A broken promise is marked `FAILED`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use super::hostile_messages::{Class, Expected};
use super::hostile_watch::{Ending, Endings, Readiness};

/// The longest `x-dispatch-error` taken as bounded ("around 1 kB" is promised).
const REASON_MAX_BYTES: usize = 2048;

/// One line per class: what was sent, where it ended, and whether that is the promise.
pub fn class_notes(
    sent: &[(String, Class)],
    endings: &Endings,
    took: &BTreeMap<Class, Duration>,
) -> Vec<String> {
    let mut by_class: BTreeMap<Class, Vec<&str>> = BTreeMap::new();
    for (id, class) in sent {
        by_class.entry(*class).or_default().push(id);
    }
    let mut notes = Vec::new();
    for (class, ids) in by_class {
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        let mut failed = Vec::new();
        for id in &ids {
            let (text, problem) = match endings.by_id.get(*id) {
                None => ("not ended".to_owned(), Some("not ended".to_owned())),
                Some((ending, copies)) => {
                    let problem = check(class.expected(), ending).or_else(|| {
                        (*copies > 1).then(|| format!("{copies} copies (a redelivery loop)"))
                    });
                    (describe(ending), problem)
                }
            };
            *seen.entry(text).or_default() += 1;
            failed.extend(problem);
        }
        let mut note = format!("{}: ", class.label(ids.len()));
        let endings: Vec<String> = seen.iter().map(|(e, n)| format!("{n} {e}")).collect();
        note.push_str(&endings.join(", "));
        if let Some(took) = took.get(&class) {
            let _ = write!(
                note,
                ", all within {:.1} s of the first send",
                took.as_secs_f64()
            );
        }
        if failed.is_empty() {
            note.push_str(" (ok)");
        } else {
            failed.dedup();
            let _ = write!(
                note,
                " (FAILED: expected {}; {})",
                expected_text(class.expected()),
                failed.join(", ")
            );
        }
        notes.push(note);
    }
    notes
}

/// What is wrong with `ending` given `expected`, if anything.
fn check(expected: Expected, ending: &Ending) -> Option<String> {
    match (expected, ending) {
        (Expected::Forwarded, Ending::Forwarded) => None,
        (
            Expected::DeadLettered(code),
            Ending::DeadLettered {
                reason,
                header_bytes,
            },
        ) => {
            if code.is_some_and(|code| code != reason) {
                Some(format!("reason {reason}"))
            } else if *header_bytes > REASON_MAX_BYTES {
                Some(format!("a reason of {header_bytes} bytes"))
            } else {
                None
            }
        }
        (_, other) => Some(describe(other)),
    }
}

fn describe(ending: &Ending) -> String {
    match ending {
        Ending::Forwarded => "forwarded".into(),
        Ending::Unrouted => "unrouted".into(),
        Ending::DeadLettered {
            reason,
            header_bytes,
        } => format!("dead-lettered {reason} (x-dispatch-error {header_bytes} B)"),
        Ending::DeadLetteredByBroker => {
            "dead-lettered by the broker without a reason (delivery limit)".into()
        }
    }
}

fn expected_text(expected: Expected) -> String {
    match expected {
        Expected::Forwarded => "forwarded".into(),
        Expected::DeadLettered(Some(code)) => format!("dead-lettered {code}"),
        Expected::DeadLettered(None) => {
            format!("dead-lettered with a reason of at most {REASON_MAX_BYTES} B")
        }
    }
}

/// The reconnect line: the dispatcher's broker sessions must not grow.
pub fn sessions_note(before: Option<u64>, after: Option<u64>) -> String {
    match (before, after) {
        (Some(b), Some(a)) if a == b => {
            format!("dispatcher broker sessions {b} → {a} (no reconnect)")
        }
        (Some(b), Some(a)) => format!(
            "FAILED: dispatcher broker sessions {b} → {a} ({} reconnects)",
            a.saturating_sub(b)
        ),
        _ => format!("FAILED: dispatcher sessions metric unreadable ({before:?} → {after:?})"),
    }
}

/// The `/readyz` line: ready at every poll, or how often not.
pub fn readiness_note(seen: &Readiness) -> String {
    if seen.not_ready == 0 && seen.no_answer == 0 {
        format!("dispatcher /readyz ready at all {} polls", seen.polls)
    } else {
        format!(
            "FAILED: dispatcher /readyz not ready at {} and silent at {} of {} polls (first: {})",
            seen.not_ready,
            seen.no_answer,
            seen.polls,
            seen.first_problem.as_deref().unwrap_or("?")
        )
    }
}

/// `0.012 s`, or `n/a`.
pub fn seconds(duration: Option<Duration>) -> String {
    duration.map_or_else(|| "n/a".into(), |d| format!("{:.3} s", d.as_secs_f64()))
}

/// `25 MiB`, or `n/a`.
pub fn mib(value: Option<f64>) -> String {
    value.map_or_else(|| "n/a".into(), |v| format!("{v:.0} MiB"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endings(pairs: &[(&str, Ending, usize)]) -> Endings {
        let mut endings = Endings::default();
        for (id, ending, copies) in pairs {
            endings
                .by_id
                .insert((*id).to_owned(), (ending.clone(), *copies));
        }
        endings
    }

    fn dead(reason: &str, header_bytes: usize) -> Ending {
        Ending::DeadLettered {
            reason: reason.to_owned(),
            header_bytes,
        }
    }

    #[test]
    fn the_promised_ending_is_ok_and_another_one_is_failed_with_both_named() {
        let sent = vec![
            ("a0".to_owned(), Class::LongType),
            ("a1".to_owned(), Class::LongType),
            ("g0".to_owned(), Class::CePrefix),
        ];
        let seen = endings(&[
            ("a0", dead("type_too_long", 80), 1),
            ("a1", Ending::Forwarded, 1),
            ("g0", dead("missing_type", 120), 1),
        ]);
        let notes = class_notes(&sent, &seen, &BTreeMap::new());
        assert_eq!(notes.len(), 2);
        assert!(notes[0].contains("1 forwarded"), "{}", notes[0]);
        assert!(
            notes[0].contains("FAILED: expected dead-lettered type_too_long; forwarded"),
            "{}",
            notes[0]
        );
        assert!(
            notes[1].contains("FAILED: expected forwarded; dead-lettered missing_type"),
            "{}",
            notes[1]
        );
    }

    #[test]
    fn a_reason_header_over_the_bound_fails_even_with_the_right_code() {
        assert_eq!(
            check(Expected::DeadLettered(None), &dead("bad_specversion", 900)),
            None
        );
        let problem = check(
            Expected::DeadLettered(None),
            &dead("bad_specversion", 3 << 20),
        );
        assert!(problem.unwrap().contains("3145728 bytes"));
    }

    #[test]
    fn a_message_that_never_ended_or_came_twice_fails() {
        let sent = vec![
            ("b0".to_owned(), Class::NearFrameMax),
            ("d0".to_owned(), Class::Large),
        ];
        let seen = endings(&[("d0", Ending::Forwarded, 3)]);
        let notes = class_notes(&sent, &seen, &BTreeMap::new());
        assert!(notes[0].contains("1 not ended (FAILED"), "{}", notes[0]);
        assert!(notes[1].contains("3 copies"), "{}", notes[1]);
        assert!(notes[1].contains("FAILED"), "{}", notes[1]);
    }

    #[test]
    fn reconnects_and_not_ready_answers_fail() {
        assert!(!sessions_note(Some(1), Some(1)).contains("FAILED"));
        assert!(sessions_note(Some(1), Some(4)).contains("FAILED"));
        assert!(sessions_note(None, Some(1)).contains("FAILED"));
        let ready = Readiness {
            polls: 10,
            ..Readiness::default()
        };
        assert!(!readiness_note(&ready).contains("FAILED"));
        let silent = Readiness {
            polls: 10,
            no_answer: 1,
            first_problem: Some("no answer: timed out".into()),
            ..Readiness::default()
        };
        assert!(readiness_note(&silent).contains("FAILED"));
    }
}
