//! The drain table: the repetitions of each (mode, queue type, contender) folded into a
//! median and a range, with the ratio of medians against the Shovel of the same mode
//! and queue type.

use serde::Serialize;

use crate::drain::DrainResult;
use crate::stats::Spread;

/// One row of the drain table.
#[derive(Debug, Clone, Serialize)]
pub struct DrainRow {
    pub mode: String,
    pub queue_type: String,
    pub contender: String,
    /// Runs folded in.
    pub runs: usize,
    /// Steady messages per second.
    pub msgs_per_sec: Spread,
    /// Median rate over the Shovel's median rate (same mode, same queue type).
    pub vs_shovel: Option<f64>,
    /// Forwarder CPU per message, microseconds (none for the Shovel).
    pub forwarder_cpu_us_per_msg: Option<Spread>,
    /// Broker CPU per message, microseconds.
    pub broker_cpu_us_per_msg: Spread,
    /// The largest forwarder peak RSS of all runs, MiB.
    pub forwarder_peak_rss_mib: Option<f64>,
    /// Messages lost over all runs (must be 0).
    pub lost: u64,
}

/// The rows, in the order the results first name them.
pub fn rows(results: &[DrainResult]) -> Vec<DrainRow> {
    let mut keys: Vec<(&str, &str, &str)> = Vec::new();
    for r in results {
        let key = (r.mode.as_str(), r.queue_type.as_str(), r.contender.as_str());
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    let mut rows: Vec<DrainRow> = keys
        .into_iter()
        .filter_map(|(mode, queue_type, contender)| {
            let runs: Vec<&DrainResult> = results
                .iter()
                .filter(|r| {
                    r.mode == mode && r.queue_type == queue_type && r.contender == contender
                })
                .collect();
            let spread = |f: &dyn Fn(&DrainResult) -> Option<f64>| {
                Spread::of(&runs.iter().filter_map(|r| f(r)).collect::<Vec<_>>())
            };
            Some(DrainRow {
                mode: mode.to_owned(),
                queue_type: queue_type.to_owned(),
                contender: contender.to_owned(),
                runs: runs.len(),
                msgs_per_sec: spread(&|r| Some(r.msgs_per_sec))?,
                vs_shovel: None,
                forwarder_cpu_us_per_msg: spread(&|r| r.forwarder_cpu_us_per_msg),
                broker_cpu_us_per_msg: spread(&|r| Some(r.broker_cpu_us_per_msg))?,
                forwarder_peak_rss_mib: runs
                    .iter()
                    .filter_map(|r| r.forwarder_peak_rss_mib)
                    .reduce(f64::max),
                lost: runs.iter().map(|r| r.lost).sum(),
            })
        })
        .collect();
    let shovels: Vec<(String, String, f64)> = rows
        .iter()
        .filter(|r| r.contender == "shovel")
        .map(|r| (r.mode.clone(), r.queue_type.clone(), r.msgs_per_sec.median))
        .collect();
    for row in &mut rows {
        row.vs_shovel = shovels
            .iter()
            .find(|(m, q, _)| *m == row.mode && *q == row.queue_type)
            .map(|(_, _, shovel)| row.msgs_per_sec.median / shovel);
    }
    rows
}

/// Prints the rows, one table per mode.
pub fn print(rows: &[DrainRow]) {
    let mut modes: Vec<&str> = rows.iter().map(|r| r.mode.as_str()).collect();
    modes.dedup();
    for mode in modes {
        println!(
            "\n{:<22} {:<8} {:>4} {:>8} {:>17} {:>9} {:>10} {:>10} {:>7} {:>4}",
            format!("drain ({mode})"),
            "queues",
            "runs",
            "msg/s",
            "range",
            "vs shovel",
            "fwd cpu µs",
            "broker µs",
            "rss MiB",
            "lost"
        );
        for r in rows.iter().filter(|r| r.mode == mode) {
            println!(
                "{:<22} {:<8} {:>4} {:>8.0} {:>17} {:>9} {:>10} {:>10.1} {:>7} {:>4}",
                r.contender,
                r.queue_type,
                r.runs,
                r.msgs_per_sec.median,
                format!("{:.0}–{:.0}", r.msgs_per_sec.min, r.msgs_per_sec.max),
                r.vs_shovel.map_or("-".into(), |v| format!("{v:.2}")),
                r.forwarder_cpu_us_per_msg
                    .map_or("-".into(), |c| format!("{:.1}", c.median)),
                r.broker_cpu_us_per_msg.median,
                r.forwarder_peak_rss_mib
                    .map_or("-".into(), |m| format!("{m:.1}")),
                r.lost
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(mode: &str, contender: &str, rate: f64) -> DrainResult {
        DrainResult {
            mode: mode.into(),
            repetition: 1,
            contender: contender.into(),
            queue_type: "quorum".into(),
            messages: 1_000,
            seconds: 1.0,
            msgs_per_sec: rate,
            forwarder_cpu_us_per_msg: (contender != "shovel").then_some(10.0),
            broker_cpu_us_per_msg: 50.0,
            forwarder_peak_rss_mib: (contender != "shovel").then_some(12.0),
            lost: 0,
            tap: None,
        }
    }

    #[test]
    fn repetitions_fold_into_a_median_and_the_ratio_is_against_the_same_modes_shovel() {
        let results = [
            run("shared", "shovel", 1_000.0),
            run("shared", "dispatcher", 900.0),
            run("shared", "shovel", 1_200.0),
            run("shared", "dispatcher", 1_100.0),
            run("shared", "shovel", 1_100.0),
            run("shared", "dispatcher", 2_000.0),
            run("separated", "shovel", 500.0),
            run("separated", "dispatcher", 600.0),
        ];
        let rows = rows(&results);
        assert_eq!(rows.len(), 4);
        let shared = &rows[1];
        assert_eq!(
            (shared.mode.as_str(), shared.contender.as_str()),
            ("shared", "dispatcher")
        );
        assert_eq!(shared.runs, 3);
        assert_eq!(
            shared.msgs_per_sec,
            Spread {
                median: 1_100.0,
                min: 900.0,
                max: 2_000.0
            }
        );
        assert_eq!(shared.vs_shovel, Some(1.0));
        assert_eq!(rows[3].vs_shovel, Some(1.2));
        assert_eq!(rows[0].forwarder_cpu_us_per_msg, None);
    }
}
