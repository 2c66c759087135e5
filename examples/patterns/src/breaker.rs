//! A circuit breaker around a flaky dependency. Closed: calls go through, and
//! `failure_threshold` failures in a row open it. Open: calls fail at once, without
//! touching the dependency, for `recovery_timeout`. Then half-open: one trial call goes
//! through; its success closes the breaker, its failure opens it again.
//!
//! Time is an argument (`now`), so the state machine is tested without waiting.

use std::fmt;
use std::future::Future;
use std::time::{Duration, Instant};

/// The breaker's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerSettings {
    /// Consecutive failures that open the breaker (at least 1).
    pub failure_threshold: u32,
    /// How long it stays open before it lets a trial call through.
    pub recovery_timeout: Duration,
}

/// What a caller sees of the breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Calls go through.
    Closed,
    /// Calls fail fast.
    Open,
    /// One trial call may go through.
    HalfOpen,
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half-open",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Inner {
    Closed { failures: u32 },
    Open { since: Instant },
    HalfOpen { trial_in_flight: bool },
}

/// A call refused without being made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("circuit open: the dependency is failing; next trial in {:.1}s", retry_in.as_secs_f64())]
pub struct Open {
    /// How long until a trial call is allowed (zero while a trial is in flight).
    pub retry_in: Duration,
}

/// Why [`CircuitBreaker::call`] failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError<E> {
    /// The breaker refused the call; the dependency was not touched.
    #[error(transparent)]
    Open(Open),
    /// The call was made and failed (and counted).
    #[error("{0}")]
    Failed(E),
}

/// The state machine.
#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    settings: BreakerSettings,
    inner: Inner,
}

impl CircuitBreaker {
    /// A closed breaker.
    pub fn new(settings: BreakerSettings) -> Self {
        Self {
            settings: BreakerSettings {
                failure_threshold: settings.failure_threshold.max(1),
                ..settings
            },
            inner: Inner::Closed { failures: 0 },
        }
    }

    /// The state as of `now` (an open breaker whose timeout passed is half-open).
    pub fn state(&self, now: Instant) -> State {
        match self.inner {
            Inner::Closed { .. } => State::Closed,
            Inner::Open { since } if self.recovered(since, now) => State::HalfOpen,
            Inner::Open { .. } => State::Open,
            Inner::HalfOpen { .. } => State::HalfOpen,
        }
    }

    /// Asks to make one call at `now`. On `Ok`, report its result with
    /// [`CircuitBreaker::succeeded`] or [`CircuitBreaker::failed`].
    pub fn acquire(&mut self, now: Instant) -> Result<(), Open> {
        match self.inner {
            Inner::Closed { .. } => Ok(()),
            Inner::Open { since } if self.recovered(since, now) => {
                self.inner = Inner::HalfOpen {
                    trial_in_flight: true,
                };
                Ok(())
            }
            Inner::Open { since } => Err(Open {
                retry_in: (since + self.settings.recovery_timeout).saturating_duration_since(now),
            }),
            Inner::HalfOpen {
                trial_in_flight: true,
            } => Err(Open {
                retry_in: Duration::ZERO,
            }),
            Inner::HalfOpen {
                trial_in_flight: false,
            } => {
                self.inner = Inner::HalfOpen {
                    trial_in_flight: true,
                };
                Ok(())
            }
        }
    }

    /// The call succeeded: the breaker closes and the failure count restarts.
    pub fn succeeded(&mut self) {
        self.inner = Inner::Closed { failures: 0 };
    }

    /// The call failed at `now`: counted when closed; a failed trial opens it again.
    pub fn failed(&mut self, now: Instant) {
        self.inner = match self.inner {
            Inner::Closed { failures } if failures + 1 < self.settings.failure_threshold => {
                Inner::Closed {
                    failures: failures + 1,
                }
            }
            Inner::Closed { .. } | Inner::HalfOpen { .. } => Inner::Open { since: now },
            open @ Inner::Open { .. } => open,
        };
    }

    /// Makes `call` through the breaker, now.
    pub async fn call<T, E, F>(&mut self, call: impl FnOnce() -> F) -> Result<T, CallError<E>>
    where
        F: Future<Output = Result<T, E>>,
    {
        self.acquire(Instant::now()).map_err(CallError::Open)?;
        match call().await {
            Ok(value) => {
                self.succeeded();
                Ok(value)
            }
            Err(error) => {
                self.failed(Instant::now());
                Err(CallError::Failed(error))
            }
        }
    }

    fn recovered(&self, since: Instant, now: Instant) -> bool {
        now.saturating_duration_since(since) >= self.settings.recovery_timeout
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RECOVERY: Duration = Duration::from_secs(5);

    fn breaker(failure_threshold: u32) -> CircuitBreaker {
        CircuitBreaker::new(BreakerSettings {
            failure_threshold,
            recovery_timeout: RECOVERY,
        })
    }

    fn fail(breaker: &mut CircuitBreaker, now: Instant) {
        breaker.acquire(now).expect("the call is allowed");
        breaker.failed(now);
    }

    #[test]
    fn a_new_breaker_is_closed_and_lets_calls_through() {
        let now = Instant::now();
        let mut breaker = breaker(3);
        assert_eq!(breaker.state(now), State::Closed);
        assert_eq!(breaker.acquire(now), Ok(()));
    }

    #[test]
    fn it_opens_after_the_threshold_of_consecutive_failures() {
        let now = Instant::now();
        let mut breaker = breaker(3);
        fail(&mut breaker, now);
        fail(&mut breaker, now);
        assert_eq!(breaker.state(now), State::Closed);
        fail(&mut breaker, now);
        assert_eq!(breaker.state(now), State::Open);
        assert_eq!(breaker.acquire(now), Err(Open { retry_in: RECOVERY }));
    }

    #[test]
    fn a_success_resets_the_failure_count() {
        let now = Instant::now();
        let mut breaker = breaker(3);
        fail(&mut breaker, now);
        fail(&mut breaker, now);
        breaker.acquire(now).unwrap();
        breaker.succeeded();
        fail(&mut breaker, now);
        fail(&mut breaker, now);
        assert_eq!(breaker.state(now), State::Closed);
    }

    #[test]
    fn an_open_breaker_says_how_long_until_the_trial() {
        let opened = Instant::now();
        let mut breaker = breaker(1);
        fail(&mut breaker, opened);
        let later = opened + Duration::from_secs(2);
        assert_eq!(
            breaker.acquire(later),
            Err(Open {
                retry_in: Duration::from_secs(3)
            })
        );
    }

    #[test]
    fn after_the_recovery_timeout_one_trial_goes_through_and_others_wait() {
        let opened = Instant::now();
        let mut breaker = breaker(1);
        fail(&mut breaker, opened);
        let later = opened + RECOVERY;
        assert_eq!(breaker.state(later), State::HalfOpen);
        assert_eq!(breaker.acquire(later), Ok(()));
        assert_eq!(
            breaker.acquire(later),
            Err(Open {
                retry_in: Duration::ZERO
            })
        );
    }

    #[test]
    fn a_successful_trial_closes_it() {
        let opened = Instant::now();
        let mut breaker = breaker(2);
        fail(&mut breaker, opened);
        fail(&mut breaker, opened);
        let later = opened + RECOVERY;
        breaker.acquire(later).unwrap();
        breaker.succeeded();
        assert_eq!(breaker.state(later), State::Closed);
        // And the count restarted: one failure does not reopen it.
        fail(&mut breaker, later);
        assert_eq!(breaker.state(later), State::Closed);
    }

    #[test]
    fn a_failed_trial_opens_it_again_for_a_full_timeout() {
        let opened = Instant::now();
        let mut breaker = breaker(2);
        fail(&mut breaker, opened);
        fail(&mut breaker, opened);
        let trial = opened + RECOVERY + Duration::from_secs(1);
        fail(&mut breaker, trial);
        assert_eq!(breaker.state(trial), State::Open);
        assert_eq!(
            breaker.state(trial + RECOVERY - Duration::from_millis(1)),
            State::Open
        );
        assert_eq!(breaker.state(trial + RECOVERY), State::HalfOpen);
    }

    #[test]
    fn a_threshold_of_zero_counts_as_one() {
        let now = Instant::now();
        let mut breaker = breaker(0);
        fail(&mut breaker, now);
        assert_eq!(breaker.state(now), State::Open);
    }

    #[tokio::test]
    async fn call_counts_failures_and_refuses_without_calling_when_open() {
        let mut breaker = breaker(1);
        let failed: Result<(), CallError<&str>> = breaker.call(|| async { Err("down") }).await;
        assert_eq!(failed, Err(CallError::Failed("down")));
        let mut called = false;
        let refused: Result<(), CallError<&str>> = breaker
            .call(|| {
                called = true;
                async { Ok(()) }
            })
            .await;
        assert!(matches!(refused, Err(CallError::Open(_))), "{refused:?}");
        assert!(!called, "an open breaker does not touch the dependency");
    }
}
