//! A route's `retry` table: how a publish that the broker nacked or returned is retried
//! before the event goes to the dead-letter queue. What a route leaves out comes from
//! the command line (`--publish-retries`, `--retry-backoff`, `--retry-max-backoff`,
//! `--retry-max-age`).

use std::time::Duration;

use serde::Deserialize;
use serde_spanned::Spanned;

use super::error::Problem;

/// Most attempts a route may ask for: each one may wait up to `max_backoff`, while the
/// event stays in flight.
pub const MAX_ATTEMPTS: i64 = 100;

/// `retry = { attempts = 5, backoff = "200ms", max_backoff = "10s", max_age = "10m" }`
/// as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryFile {
    /// Publishes in all, the first included (at least 1).
    pub attempts: Option<Spanned<i64>>,
    /// The delay before the first retry; it doubles on each retry.
    pub backoff: Option<Spanned<String>>,
    /// The delay stops doubling here.
    pub max_backoff: Option<Spanned<String>>,
    /// No retry starts later than this after the first refusal.
    pub max_age: Option<Spanned<String>>,
}

/// A route's retry settings: each one given, or `None` for the command line's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retry {
    pub attempts: Option<u32>,
    pub backoff: Option<Duration>,
    pub max_backoff: Option<Duration>,
    pub max_age: Option<Duration>,
}

/// The policy in force for one publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Publishes in all, the first included (at least 1).
    pub attempts: u32,
    pub backoff: Duration,
    pub max_backoff: Duration,
    pub max_age: Duration,
}

impl Retry {
    /// This route's policy, with `defaults` for what it leaves out.
    pub fn with_defaults(&self, defaults: &RetryPolicy) -> RetryPolicy {
        RetryPolicy {
            attempts: self.attempts.unwrap_or(defaults.attempts),
            backoff: self.backoff.unwrap_or(defaults.backoff),
            max_backoff: self.max_backoff.unwrap_or(defaults.max_backoff),
            max_age: self.max_age.unwrap_or(defaults.max_age),
        }
    }

    /// Validates a `retry` table; every problem has the position of its value.
    pub fn compile(file: &RetryFile) -> Result<Self, Vec<Problem>> {
        let mut problems = Vec::new();
        let attempts = file.attempts.as_ref().and_then(|a| {
            let n = *a.get_ref();
            if (1..=MAX_ATTEMPTS).contains(&n) {
                u32::try_from(n).ok()
            } else {
                problems.push(Problem::at(
                    a.span(),
                    format!(
                        "`retry.attempts` is {n}: it counts every publish, the first included, so write 1 (no retry) to {MAX_ATTEMPTS}"
                    ),
                ));
                None
            }
        });
        let mut duration = |key: &str, value: &Option<Spanned<String>>| {
            let value = value.as_ref()?;
            events::duration::parse_duration(value.get_ref())
                .map_err(|e| {
                    problems.push(Problem::at(value.span(), format!("`retry.{key}`: {e}")))
                })
                .ok()
        };
        let backoff = duration("backoff", &file.backoff);
        let max_backoff = duration("max_backoff", &file.max_backoff);
        let max_age = duration("max_age", &file.max_age);
        if let (Some(first), Some(max), Some(span)) = (backoff, max_backoff, &file.max_backoff)
            && max < first
        {
            problems.push(Problem::at(
                span.span(),
                format!(
                    "`retry.max_backoff` ({max:?}) is shorter than `retry.backoff` ({first:?})"
                ),
            ));
        }
        if problems.is_empty() {
            Ok(Self {
                attempts,
                backoff,
                max_backoff,
                max_age,
            })
        } else {
            Err(problems)
        }
    }
}

impl RetryPolicy {
    /// The delay before retry number `retry` (0 for the first retry).
    pub fn delay(&self, retry: u32) -> Duration {
        events::backoff::exponential(self.backoff, self.max_backoff, retry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(text: &str) -> Result<Retry, Vec<Problem>> {
        #[derive(Deserialize)]
        struct Wrap {
            retry: RetryFile,
        }
        let wrap: Wrap = toml::from_str(text).unwrap();
        Retry::compile(&wrap.retry)
    }

    fn defaults() -> RetryPolicy {
        RetryPolicy {
            attempts: 4,
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
            max_age: Duration::from_secs(60),
        }
    }

    #[test]
    fn a_full_table_is_read_and_wins_over_the_defaults() {
        let retry = compile(
            r#"retry = { attempts = 5, backoff = "200ms", max_backoff = "10s", max_age = "10m" }"#,
        )
        .unwrap();
        let policy = retry.with_defaults(&defaults());
        assert_eq!(policy.attempts, 5);
        assert_eq!(policy.backoff, Duration::from_millis(200));
        assert_eq!(policy.max_age, Duration::from_secs(600));
    }

    #[test]
    fn what_a_route_leaves_out_comes_from_the_defaults() {
        let policy = compile("retry = { attempts = 2 }")
            .unwrap()
            .with_defaults(&defaults());
        assert_eq!(
            policy,
            RetryPolicy {
                attempts: 2,
                ..defaults()
            }
        );
    }

    #[test]
    fn zero_or_negative_attempts_are_refused_at_the_value() {
        let text = "retry = { attempts = 0 }";
        let problems = compile(text).unwrap_err();
        assert_eq!(problems.len(), 1);
        assert_eq!(
            problems[0].span.as_ref().map(|s| &text[s.clone()]),
            Some("0")
        );
        assert!(problems[0].message.contains("write 1"), "{problems:?}");
        assert!(compile("retry = { attempts = -3 }").is_err());
        assert!(compile("retry = { attempts = 101 }").is_err());
    }

    #[test]
    fn a_bad_duration_is_refused_with_what_to_write() {
        let text = r#"retry = { backoff = "soon", max_age = "1x" }"#;
        let problems = compile(text).unwrap_err();
        assert_eq!(problems.len(), 2);
        assert!(
            problems[0].message.contains("`retry.backoff`"),
            "{problems:?}"
        );
        assert!(
            problems[0].message.contains("not a duration"),
            "{problems:?}"
        );
        assert_eq!(
            problems[0].span.as_ref().map(|s| &text[s.clone()]),
            Some("\"soon\"")
        );
    }

    #[test]
    fn a_cap_below_the_first_delay_is_refused() {
        let problems = compile(r#"retry = { backoff = "2s", max_backoff = "1s" }"#).unwrap_err();
        assert!(problems[0].message.contains("shorter"), "{problems:?}");
    }

    #[test]
    fn delays_double_up_to_the_cap() {
        let policy = RetryPolicy {
            max_backoff: Duration::from_millis(300),
            ..defaults()
        };
        assert_eq!(policy.delay(0), Duration::from_millis(100));
        assert_eq!(policy.delay(1), Duration::from_millis(200));
        assert_eq!(policy.delay(2), Duration::from_millis(300));
    }
}
