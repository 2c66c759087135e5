//! What the `hostile-input` scenario watches while it sends: the dispatcher's `/readyz`,
//! how long good events take, where each hostile message ended, and the dispatcher's
//! broker sessions and memory.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use events::envelope::header_string;
use events::lapin::Channel;
use events::lapin::message::BasicGetMessage;
use events::lapin::options::BasicGetOptions;
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The dead-letter reason header the dispatcher writes.
const ERROR_HEADER: &str = "x-dispatch-error";

/// What the `/readyz` poller saw.
#[derive(Debug, Default, Clone)]
pub struct Readiness {
    /// Polls made.
    pub polls: usize,
    /// Answers that were not 2xx.
    pub not_ready: usize,
    /// Polls that got no answer within 2 s.
    pub no_answer: usize,
    /// The first problem, for the report.
    pub first_problem: Option<String>,
}

/// Polls a `/readyz` URL every 100 ms until stopped.
#[derive(Debug)]
pub struct ReadyPoller {
    stop: CancellationToken,
    task: JoinHandle<Readiness>,
}

impl ReadyPoller {
    /// Starts polling `url`.
    pub fn start(url: String) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()?;
        let stop = CancellationToken::new();
        let token = stop.clone();
        let task = tokio::spawn(async move {
            let mut seen = Readiness::default();
            while !token.is_cancelled() {
                seen.polls += 1;
                let problem = match http.get(&url).send().await {
                    Ok(response) if response.status().is_success() => None,
                    Ok(response) => {
                        seen.not_ready += 1;
                        let status = response.status();
                        let body = response.text().await.unwrap_or_default();
                        Some(format!("{status} {}", cut(&body, 200)))
                    }
                    Err(error) => {
                        seen.no_answer += 1;
                        Some(format!("no answer: {error}"))
                    }
                };
                if seen.first_problem.is_none() {
                    seen.first_problem = problem;
                }
                tokio::select! {
                    () = token.cancelled() => {}
                    () = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            }
            seen
        });
        Ok(Self { stop, task })
    }

    /// Stops polling; returns what was seen.
    pub async fn stop(self) -> Readiness {
        self.stop.cancel();
        self.task.await.unwrap_or_default()
    }
}

/// When one good event was published (its `time`) and when it arrived.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// The user's id (`data.id`).
    pub user: Option<i64>,
    /// The event's `time`: user-service's commit.
    pub sent: SystemTime,
    /// When the watch queue gave it to us.
    pub arrived: SystemTime,
}

impl Sample {
    fn latency(self) -> Duration {
        self.arrived.duration_since(self.sent).unwrap_or_default()
    }
}

/// Takes good events off a queue as they arrive and notes each one's latency.
#[derive(Debug)]
pub struct LatencyWatch {
    stop: CancellationToken,
    task: JoinHandle<Vec<Sample>>,
}

impl LatencyWatch {
    /// Starts watching `queue` on `channel`.
    pub fn start(channel: Channel, queue: String) -> Self {
        let stop = CancellationToken::new();
        let token = stop.clone();
        let task = tokio::spawn(async move {
            let mut samples = Vec::new();
            while !token.is_cancelled() {
                while let Ok(Some(message)) = get(&channel, &queue).await {
                    let arrived = SystemTime::now();
                    let Ok(event) = events::CloudEvent::from_json(&message.delivery.data) else {
                        continue;
                    };
                    let user = event.data.as_ref().and_then(|d| d["id"].as_i64());
                    if let Some(sent) = event.time.map(SystemTime::from) {
                        samples.push(Sample {
                            user,
                            sent,
                            arrived,
                        });
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            samples
        });
        Self { stop, task }
    }

    /// Stops watching; returns the samples.
    pub async fn stop(self) -> Vec<Sample> {
        self.stop.cancel();
        self.task.await.unwrap_or_default()
    }
}

/// The longest latency of the good events that arrived before `from`, of those in
/// flight at some moment in `[from, to]`, and of those sent after `to`.
pub fn held_up(samples: &[Sample], from: SystemTime, to: SystemTime) -> [Option<Duration>; 3] {
    let max = |keep: &dyn Fn(&Sample) -> bool| {
        samples
            .iter()
            .filter(|s| keep(s))
            .map(|s| s.latency())
            .max()
    };
    [
        max(&|s| s.arrived < from),
        max(&|s| s.arrived >= from && s.sent <= to),
        max(&|s| s.sent > to),
    ]
}

/// Where a hostile message ended.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Ending {
    /// In its route's target.
    Forwarded,
    /// In the `unrouted` queue.
    Unrouted,
    /// In the dead-letter queue, dead-lettered by the dispatcher: its reason code and the
    /// length of its `x-dispatch-error` header in bytes.
    DeadLettered {
        /// The code before the first `:` of `x-dispatch-error`.
        reason: String,
        /// The header's length.
        header_bytes: usize,
    },
    /// In the dead-letter queue with no reason: the broker moved it there (delivery
    /// limit reached after redeliveries).
    DeadLetteredByBroker,
}

/// The queues a hostile message can end in, and what ending each one means.
#[derive(Debug, Clone)]
pub struct Exits {
    /// Where forwarded hostile events go.
    pub forwarded: String,
    /// The table's `unrouted` queue.
    pub unrouted: String,
    /// The table's `dead_letter` queue (also the broker's dead-letter target).
    pub dead: String,
}

/// Every hostile message seen so far, by id: its first ending and how many copies
/// arrived; and how many messages that were not hostile showed up.
#[derive(Debug, Default)]
pub struct Endings {
    /// By message id.
    pub by_id: BTreeMap<String, (Ending, usize)>,
    /// Messages without a hostile id (good events in the wrong place), by queue.
    pub strangers: BTreeMap<String, usize>,
}

impl Endings {
    /// Takes everything waiting in the exits.
    pub async fn drain(&mut self, channel: &Channel, exits: &Exits) -> anyhow::Result<()> {
        for queue in [&exits.forwarded, &exits.unrouted, &exits.dead] {
            while let Some(message) = get(channel, queue).await? {
                let ending = if queue == &exits.forwarded {
                    Ending::Forwarded
                } else if queue == &exits.unrouted {
                    Ending::Unrouted
                } else {
                    dead_ending(&message)
                };
                match message_id(&message).filter(|id| id.starts_with("hostile-")) {
                    Some(id) => self.by_id.entry(id).or_insert((ending, 0)).1 += 1,
                    None => *self.strangers.entry(queue.clone()).or_default() += 1,
                }
            }
        }
        Ok(())
    }
}

fn dead_ending(message: &BasicGetMessage) -> Ending {
    let headers = message.delivery.properties.headers().as_ref();
    match headers.and_then(|h| header_string(h, ERROR_HEADER)) {
        Some(error) => Ending::DeadLettered {
            reason: error
                .split(':')
                .next()
                .unwrap_or_default()
                .trim()
                .to_owned(),
            header_bytes: error.len(),
        },
        None => Ending::DeadLetteredByBroker,
    }
}

/// The AMQP `message_id`, or the body's `id` when it has none.
fn message_id(message: &BasicGetMessage) -> Option<String> {
    if let Some(id) = message.delivery.properties.message_id() {
        return Some(id.as_str().to_owned());
    }
    let body: Value = serde_json::from_slice(&message.delivery.data).ok()?;
    body["id"].as_str().map(str::to_owned)
}

async fn get(channel: &Channel, queue: &str) -> anyhow::Result<Option<BasicGetMessage>> {
    let options = BasicGetOptions { no_ack: true };
    Ok(channel.basic_get(queue.into(), options).await?)
}

/// `dispatcher_broker_sessions_total` from the dispatcher's `/metrics`.
pub async fn sessions(http: &reqwest::Client, metrics_url: &str) -> Option<u64> {
    let text = http.get(metrics_url).send().await.ok()?.text().await.ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("dispatcher_broker_sessions_total "))
        .and_then(|v| v.trim().parse().ok())
}

/// A `/proc/<pid>/status` memory figure (`VmRSS`, or `VmHWM`: the peak) in MiB.
pub fn memory_mib(pid: Option<u32>, field: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid?)).ok()?;
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse::<f64>()
        .ok()?;
    Some(kib / 1024.0)
}

/// `text` cut to `max` characters.
pub fn cut(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_millis(ms)
    }

    fn sample(sent: u64, arrived: u64) -> Sample {
        Sample {
            user: None,
            sent: at(sent),
            arrived: at(arrived),
        }
    }

    #[test]
    fn an_event_in_flight_during_the_hostile_sends_counts_as_held_up_by_them() {
        let samples = [
            sample(0, 10),
            sample(90, 95),
            sample(95, 400),
            sample(150, 160),
            sample(600, 605),
        ];
        let [before, during, after] = held_up(&samples, at(100), at(500));
        assert_eq!(before, Some(Duration::from_millis(10)));
        assert_eq!(during, Some(Duration::from_millis(305)));
        assert_eq!(after, Some(Duration::from_millis(5)));
    }

    #[test]
    fn a_phase_without_events_has_no_figure() {
        assert_eq!(
            held_up(&[sample(0, 1)], at(100), at(200)),
            [Some(Duration::from_millis(1)), None, None]
        );
    }
}
