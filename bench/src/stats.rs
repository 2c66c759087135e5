//! The pure arithmetic of the drain figures: the steady rate between two fractions of
//! a drain, and the median and range of repeated runs.

use serde::Serialize;

/// Where the steady part of a drain starts and ends, as fractions of its events.
pub const STEADY: (f64, f64) = (0.1, 0.9);

/// The rate between the moments the target first held `from` and `to` of `n` events:
/// from depth samples `(seconds since start, depth)` in time order. `None` when the
/// samples do not cover both moments. Returns (messages per second, seconds).
pub fn steady_rate(samples: &[(f64, u64)], n: u64, (from, to): (f64, f64)) -> Option<(f64, f64)> {
    let first = |fraction: f64| {
        let goal = (n as f64 * fraction).ceil() as u64;
        samples.iter().copied().find(|&(_, count)| count >= goal)
    };
    let (t0, c0) = first(from)?;
    let (t1, c1) = first(to)?;
    let seconds = t1 - t0;
    (c1 > c0 && seconds > 0.0).then(|| ((c1 - c0) as f64 / seconds, seconds))
}

/// The median and the range of repeated measurements.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    /// `None` for no values; the mean of the middle two for an even count.
    pub fn of(values: &[f64]) -> Option<Self> {
        let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        sorted.sort_by(f64::total_cmp);
        let (&min, &max) = (sorted.first()?, sorted.last()?);
        let mid = sorted.len() / 2;
        let median = if sorted.len() % 2 == 1 {
            sorted[mid]
        } else {
            (sorted[mid - 1] + sorted[mid]) / 2.0
        };
        Some(Self { median, min, max })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_steady_rate_spans_the_first_samples_past_each_fraction() {
        // 1,000 events: 10% (100) first seen at 2 s with 150, 90% (900) at 6 s with 950.
        let samples = [(1.0, 0), (2.0, 150), (4.0, 500), (6.0, 950), (7.0, 1_000)];
        let (rate, seconds) = steady_rate(&samples, 1_000, STEADY).unwrap();
        assert_eq!(seconds, 4.0);
        assert_eq!(rate, 200.0);
    }

    #[test]
    fn the_start_up_before_the_first_fraction_does_not_count() {
        // A slow start (10 s to the first events) changes nothing once past 10%.
        let fast = [(0.5, 100), (1.5, 900)];
        let slow = [(10.0, 0), (10.5, 100), (11.5, 900)];
        assert_eq!(
            steady_rate(&fast, 1_000, STEADY),
            steady_rate(&slow, 1_000, STEADY)
        );
    }

    #[test]
    fn a_drain_seen_only_once_has_no_steady_rate() {
        assert_eq!(steady_rate(&[(3.0, 1_000)], 1_000, STEADY), None);
        assert_eq!(steady_rate(&[(1.0, 50)], 1_000, STEADY), None);
        assert_eq!(steady_rate(&[], 1_000, STEADY), None);
    }

    #[test]
    fn the_median_of_an_odd_count_is_the_middle_value_and_the_range_its_ends() {
        let spread = Spread::of(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!(
            spread,
            Spread {
                median: 2.0,
                min: 1.0,
                max: 3.0
            }
        );
    }

    #[test]
    fn the_median_of_an_even_count_is_the_mean_of_the_middle_two() {
        assert_eq!(Spread::of(&[4.0, 1.0, 2.0, 10.0]).unwrap().median, 3.0);
    }

    #[test]
    fn no_values_have_no_spread() {
        assert_eq!(Spread::of(&[]), None);
        assert_eq!(Spread::of(&[f64::NAN]), None);
    }
}
