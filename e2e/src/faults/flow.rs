//! Watching a dispatcher from outside during a fault: its forwarded count (from
//! `/metrics`), its ordered-mode role (from `/readyz`), and how long after the fault its
//! count rose again. Reported figures, never asserted.

use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use crate::process::Service;

/// How often the watchers poll.
const POLL: Duration = Duration::from_millis(50);

/// The dispatcher's `dispatcher_events_published_total`, summed over targets (0 when
/// `/metrics` does not answer).
pub async fn published(http: &reqwest::Client, dispatcher: &Service) -> f64 {
    let Ok(response) = http.get(dispatcher.url("/metrics")).send().await else {
        return 0.0;
    };
    let text = response.text().await.unwrap_or_default();
    published_total(&text)
}

/// The sum of the `dispatcher_events_published_total` samples in a metrics text.
pub fn published_total(metrics: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("dispatcher_events_published_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The `role` in the dispatcher's `/readyz` (`active`, `standby`, `shared`), if it answers.
pub async fn role(http: &reqwest::Client, dispatcher: &Service) -> Option<String> {
    let response = http.get(dispatcher.url("/readyz")).send().await.ok()?;
    let body: Value = response.json().await.ok()?;
    body["role"].as_str().map(str::to_owned)
}

/// Polls until `dispatcher` reports `wanted` as its role, for `within` at most; how long
/// after `since` it first did.
pub async fn role_reached(
    http: &reqwest::Client,
    dispatcher: &Service,
    wanted: &str,
    since: Instant,
    within: Duration,
) -> Option<Duration> {
    while since.elapsed() < within {
        if role(http, dispatcher).await.as_deref() == Some(wanted) {
            return Some(since.elapsed());
        }
        tokio::time::sleep(POLL).await;
    }
    None
}

/// How long after `since` the dispatcher's published count first exceeded `baseline`,
/// watched for `within` at most (`None` when it never did).
pub async fn rose_above(
    http: &reqwest::Client,
    dispatcher: &Service,
    baseline: f64,
    since: Instant,
    within: Duration,
) -> Option<Duration> {
    while since.elapsed() < within {
        if published(http, dispatcher).await > baseline {
            return Some(since.elapsed());
        }
        tokio::time::sleep(POLL).await;
    }
    None
}

/// A duration for a report: `after 1.2s`, or `not within 60s`.
pub fn shown(took: Option<Duration>, within: Duration) -> String {
    took.map_or_else(
        || format!("not within {}s", within.as_secs()),
        |d| format!("after {:.2}s", d.as_secs_f64()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_sums_every_target_and_ignores_other_metrics() {
        let text = "# HELP dispatcher_events_published Events published.\n\
                    dispatcher_events_published_total{target=\"a\"} 10\n\
                    dispatcher_events_published_total{target=\"b\"} 2.5\n\
                    dispatcher_events_routed_total 99\n";
        assert!((published_total(text) - 12.5).abs() < f64::EPSILON);
        assert!(published_total("").abs() < f64::EPSILON);
    }

    #[test]
    fn a_duration_is_shown_with_two_decimals_or_as_not_within() {
        let within = Duration::from_secs(60);
        assert_eq!(
            shown(Some(Duration::from_millis(1_234)), within),
            "after 1.23s"
        );
        assert_eq!(shown(None, within), "not within 60s");
    }
}
