//! The one reconnect schedule of the workspace, and its one rule for starting over.
//!
//! Every loop that reconnects to the broker (the dispatcher's sessions, user-service's
//! outbox relay, order-service's consumer, [`crate::amqp::connect`]) waits between
//! attempts with a [`Backoff`]: [`FIRST_DELAY`], doubling up to [`MAX_DELAY`], each delay
//! plus a random jitter of up to as much again, so that many clients that lost the same
//! broker do not come back in step.
//!
//! The rule: a loop calls [`Backoff::session_started`] when a session begins (from the
//! moment it starts connecting). When it asks for the next delay, a session that lasted at
//! least [`HEALTHY_SESSION`] starts the schedule over; a shorter one does not. So a broker
//! lost after a long healthy session is retried at once, and one that accepts connections
//! only to drop them is retried ever more slowly, never in a tight loop.

use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The first delay of the schedule (before jitter).
pub const FIRST_DELAY: Duration = Duration::from_millis(100);
/// The delay stops doubling here (before jitter).
pub const MAX_DELAY: Duration = Duration::from_secs(5);
/// A session that lasted this long resets the schedule.
pub const HEALTHY_SESSION: Duration = Duration::from_secs(10);

/// Delays between reconnect attempts (see the module documentation for the rule).
#[derive(Debug, Clone, Default)]
pub struct Backoff {
    /// Delays handed out since the schedule last started over.
    failures: u32,
    /// When the current session began, if the loop said so.
    session_start: Option<Instant>,
}

impl Backoff {
    /// A schedule at its start.
    pub fn new() -> Self {
        Self::default()
    }

    /// Marks the start of a session; see the module documentation for what it decides.
    pub fn session_started(&mut self) {
        self.session_start = Some(Instant::now());
    }

    /// Starts the schedule over: the next delay is the first one again.
    pub fn reset(&mut self) {
        self.failures = 0;
        self.session_start = None;
    }

    /// The next delay: the schedule starts over first if the session that just ended
    /// lasted at least [`HEALTHY_SESSION`].
    pub fn next_delay(&mut self) -> Duration {
        if let Some(start) = self.session_start.take()
            && start.elapsed() >= HEALTHY_SESSION
        {
            self.reset();
        }
        let base = FIRST_DELAY
            .saturating_mul(2u32.saturating_pow(self.failures))
            .min(MAX_DELAY);
        self.failures = self.failures.saturating_add(1);
        base + base.mul_f64(rand::random::<f64>())
    }

    /// Sleeps the [`next_delay`](Self::next_delay). `false` when `shutdown` fired first
    /// (or already had): the caller stops instead of retrying.
    #[must_use = "false means shutdown: stop instead of retrying"]
    pub async fn sleep(&mut self, shutdown: &CancellationToken) -> bool {
        let delay = self.next_delay();
        tracing::debug!(
            retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            "waiting before the next attempt"
        );
        tokio::select! {
            biased;
            () = shutdown.cancelled() => false,
            () = tokio::time::sleep(delay) => true,
        }
    }
}

/// The `retry`-th delay (0-based) of a configured exponential schedule, without jitter:
/// `first`, doubling on each retry, capped at `max`. For schedules set per use (the
/// dispatcher's per-route publish retry policy); reconnect loops use [`Backoff`].
pub fn exponential(first: Duration, max: Duration, retry: u32) -> Duration {
    first
        .saturating_mul(2u32.saturating_pow(retry))
        .min(max.max(first))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Asserts `delay` is `base` plus a jitter of less than `base`.
    fn within(delay: Duration, base: Duration) {
        assert!(
            delay >= base && delay < base * 2,
            "{delay:?} is not in [{base:?}, {:?})",
            base * 2
        );
    }

    #[test]
    fn the_backoff_grows_and_is_capped() {
        let mut backoff = Backoff::new();
        let delays: Vec<Duration> = (0..12).map(|_| backoff.next_delay()).collect();
        assert_eq!(delays.len(), 12, "the schedule never ends");
        assert!(delays[0] < Duration::from_millis(250), "{delays:?}");
        // Jitter adds up to the capped delay again on top of it.
        assert!(
            delays.iter().all(|d| *d <= Duration::from_secs(10)),
            "{delays:?}"
        );
        assert!(delays[11] >= Duration::from_secs(5), "{delays:?}");
    }

    #[test]
    fn a_configured_schedule_doubles_up_to_its_cap_and_never_overflows() {
        let ms = Duration::from_millis;
        let delays: Vec<Duration> = (0..6).map(|r| exponential(ms(200), ms(1_000), r)).collect();
        assert_eq!(
            delays,
            [ms(200), ms(400), ms(800), ms(1_000), ms(1_000), ms(1_000)]
        );
        assert_eq!(exponential(ms(200), ms(1_000), u32::MAX), ms(1_000));
        // A cap below the first delay is the first delay.
        assert_eq!(exponential(ms(500), ms(100), 3), ms(500));
    }

    #[test]
    fn each_delay_doubles_from_the_first_up_to_the_cap() {
        let mut backoff = Backoff::new();
        for millis in [100, 200, 400, 800, 1_600, 3_200, 5_000, 5_000, 5_000] {
            within(backoff.next_delay(), Duration::from_millis(millis));
        }
    }

    #[test]
    fn the_schedule_never_ends_and_never_overflows() {
        let mut backoff = Backoff::new();
        for _ in 0..10_000 {
            backoff.next_delay();
        }
        within(backoff.next_delay(), MAX_DELAY);
    }

    #[test]
    fn reset_starts_the_schedule_over() {
        let mut backoff = Backoff::new();
        for _ in 0..6 {
            backoff.next_delay();
        }
        backoff.reset();
        within(backoff.next_delay(), FIRST_DELAY);
        within(backoff.next_delay(), FIRST_DELAY * 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_session_that_stayed_up_long_enough_starts_the_schedule_over() {
        let mut backoff = Backoff::new();
        for _ in 0..6 {
            backoff.next_delay();
        }
        backoff.session_started();
        tokio::time::advance(HEALTHY_SESSION).await;
        within(backoff.next_delay(), FIRST_DELAY);
    }

    #[tokio::test(start_paused = true)]
    async fn a_short_session_does_not_start_the_schedule_over() {
        let mut backoff = Backoff::new();
        for _ in 0..3 {
            backoff.next_delay();
        }
        backoff.session_started();
        tokio::time::advance(HEALTHY_SESSION - Duration::from_millis(1)).await;
        within(backoff.next_delay(), Duration::from_millis(800));
    }

    #[tokio::test(start_paused = true)]
    async fn a_session_counts_once() {
        let mut backoff = Backoff::new();
        backoff.session_started();
        tokio::time::advance(HEALTHY_SESSION).await;
        within(backoff.next_delay(), FIRST_DELAY);
        // No new session started: the schedule goes on growing.
        tokio::time::advance(HEALTHY_SESSION).await;
        within(backoff.next_delay(), FIRST_DELAY * 2);
    }

    #[tokio::test(start_paused = true)]
    async fn sleep_waits_the_next_delay_and_says_go_on() {
        // The clock is paused and jumps to each timer; tokio's timers round up to the
        // millisecond, hence the one of slack.
        let slept = |elapsed: Duration, base: Duration| {
            assert!(
                elapsed >= base && elapsed <= base * 2 + Duration::from_millis(1),
                "slept {elapsed:?} for a base of {base:?}"
            );
        };
        let mut backoff = Backoff::new();
        let start = Instant::now();
        assert!(backoff.sleep(&CancellationToken::new()).await);
        slept(start.elapsed(), FIRST_DELAY);
        let start = Instant::now();
        assert!(backoff.sleep(&CancellationToken::new()).await);
        slept(start.elapsed(), FIRST_DELAY * 2);
    }

    #[tokio::test(start_paused = true)]
    async fn sleep_stops_at_once_on_shutdown() {
        let mut backoff = Backoff::new();
        let shutdown = CancellationToken::new();
        shutdown.cancel();
        let start = Instant::now();
        assert!(!backoff.sleep(&shutdown).await);
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_during_the_sleep_ends_it() {
        let mut backoff = Backoff::new();
        for _ in 0..10 {
            backoff.next_delay();
        }
        let shutdown = CancellationToken::new();
        let cancel = shutdown.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            cancel.cancel();
        });
        let start = Instant::now();
        assert!(!backoff.sleep(&shutdown).await);
        assert_eq!(start.elapsed(), Duration::from_secs(1));
    }
}
