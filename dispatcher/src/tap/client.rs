//! `dispatcher tap`: follows a running dispatcher's `GET /tap` and prints one line per
//! event (coloured on a terminal), or one JSON object per line with `--json`.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use anstyle::{AnsiColor, Style};
use anyhow::{Context as _, bail};
use events::defaults;
use serde_json::Value;

use crate::settings::AdminToken;

/// The options of `dispatcher tap`.
#[derive(Debug, clap::Args)]
pub struct TapArgs {
    /// Only events that this route matched.
    #[arg(long)]
    pub route: Option<String>,
    /// Only events whose type matches this pattern (`user.*`, `order.#`).
    #[arg(long = "type", value_name = "PATTERN")]
    pub event_type: Option<String>,
    /// Only events with this outcome: forwarded, unrouted or dead_lettered.
    #[arg(long)]
    pub outcome: Option<String>,
    /// Show each event's body (cut to 4 kB).
    #[arg(long)]
    pub body: bool,
    /// Stop after this many events.
    #[arg(long, value_name = "N")]
    pub limit: Option<u64>,
    /// The dispatcher's admin address (host:port or a URL).
    #[arg(long, env = "DISPATCHER_ADDR", default_value = defaults::DISPATCHER_ADDR)]
    pub addr: String,
    /// Print each event as one line of JSON.
    #[arg(long)]
    pub json: bool,
    /// The admin token, when the dispatcher has one.
    #[arg(
        long = "admin-token",
        env = "DISPATCHER_ADMIN_TOKEN",
        hide_env_values = true
    )]
    pub admin_token: Option<AdminToken>,
    /// A file holding the admin token; wins over `DISPATCHER_ADMIN_TOKEN`.
    #[arg(long = "admin-token-file", env = "DISPATCHER_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<std::path::PathBuf>,
}

impl TapArgs {
    /// The token to send: the file's, else the given one, else none.
    fn token(&self) -> anyhow::Result<Option<AdminToken>> {
        crate::settings::resolve_admin_token(
            self.admin_token.as_ref(),
            self.admin_token_file.as_deref(),
        )
    }
}

/// Runs `dispatcher tap` until the stream ends or `--limit` events were printed.
pub fn run(args: &TapArgs, out: &mut impl Write, err: &mut impl Write) -> ExitCode {
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| runtime.block_on(follow(args, out, err)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let _ = writeln!(err, "dispatcher tap: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// The URL of `GET /tap` on `addr` with the filters of `args`.
pub fn tap_url(args: &TapArgs) -> String {
    let base = if args.addr.contains("://") {
        args.addr.trim_end_matches('/').to_owned()
    } else {
        // A listen address of all interfaces is reached on the loopback.
        let addr = args.addr.replacen("0.0.0.0:", "127.0.0.1:", 1);
        format!("http://{addr}")
    };
    let mut query = form_urlencoded::Serializer::new(String::new());
    let filters = [
        ("route", &args.route),
        ("type", &args.event_type),
        ("outcome", &args.outcome),
    ];
    for (key, value) in filters {
        if let Some(value) = value {
            query.append_pair(key, value);
        }
    }
    if args.body {
        query.append_pair("body", "true");
    }
    let query = query.finish();
    if query.is_empty() {
        format!("{base}/tap")
    } else {
        format!("{base}/tap?{query}")
    }
}

async fn follow(args: &TapArgs, out: &mut impl Write, err: &mut impl Write) -> anyhow::Result<()> {
    let url = tap_url(args);
    let mut request = reqwest::Client::new().get(&url);
    if let Some(token) = args.token()? {
        request = request.bearer_auth(token.expose());
    }
    let mut response = request
        .send()
        .await
        .with_context(|| format!("cannot reach the dispatcher at {}", args.addr))?;
    if !response.status().is_success() {
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        bail!("{url} answered {status}: {body}");
    }
    let colour = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let mut parser = SseParser::default();
    let mut printed = 0_u64;
    if args.limit == Some(0) {
        return Ok(());
    }
    while let Some(chunk) = response.chunk().await.context("reading the tap")? {
        for (name, data) in parser.feed(&chunk) {
            let line = match name.as_str() {
                "ready" => {
                    let _ = writeln!(err, "tapping {url}");
                    continue;
                }
                "dropped" => {
                    let _ = writeln!(err, "{}", dropped_notice(&data));
                    if !args.json {
                        continue;
                    }
                    data
                }
                "tap" if args.json => data,
                "tap" => match serde_json::from_str::<Value>(&data) {
                    Ok(event) => render(&event, colour),
                    Err(_) => data,
                },
                _ => continue,
            };
            writeln!(out, "{line}").context("writing to standard output")?;
            out.flush().context("writing to standard output")?;
            if name == "tap" {
                printed += 1;
                if args.limit.is_some_and(|limit| printed >= limit) {
                    return Ok(());
                }
            }
        }
    }
    bail!("the dispatcher closed the tap (it is stopping)")
}

fn dropped_notice(data: &str) -> String {
    let n = serde_json::from_str::<Value>(data)
        .ok()
        .and_then(|v| v["dropped"].as_u64())
        .unwrap_or(0);
    format!("dropped {n} events: this tap fell behind")
}

/// One event as a line: time, outcome, type, id, routes → targets, latency.
pub fn render(event: &Value, colour: bool) -> String {
    let text = |key: &str| event[key].as_str().unwrap_or_default().to_owned();
    let list = |key: &str| {
        event[key]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default()
    };
    let time = text("time");
    let time = time.get(11..23).unwrap_or(&time).to_owned();
    let outcome = text("outcome");
    let paint = match outcome.as_str() {
        "forwarded" => AnsiColor::Green,
        "unrouted" => AnsiColor::Yellow,
        _ => AnsiColor::Red,
    };
    let style = if colour {
        Style::new().fg_color(Some(paint.into())).bold()
    } else {
        Style::new()
    };
    let mut line = format!(
        "{time} {style}{outcome:<13}{style:#} {} id={}",
        text("type"),
        event["id"].as_str().unwrap_or("-"),
    );
    if let Some(reason) = event["reason"].as_str() {
        line.push_str(&format!(" reason={reason}"));
    }
    let routes = list("routes");
    let routes = if routes.is_empty() {
        "-".to_owned()
    } else {
        routes
    };
    line.push_str(&format!(
        " {routes} -> {} {:.1}ms",
        list("targets"),
        event["latency_ms"].as_f64().unwrap_or(0.0)
    ));
    if let Some(trace) = event["trace_id"].as_str() {
        line.push_str(&format!(" trace={trace}"));
    }
    if let Some(body) = event["body"].as_str() {
        line.push_str(&format!("\n    {body}"));
    }
    line
}

/// A Server-Sent Events reader: bytes in, `(event name, data)` out.
#[derive(Debug, Default)]
pub struct SseParser {
    pending: Vec<u8>,
    name: String,
    data: Vec<String>,
}

impl SseParser {
    /// Feeds bytes; returns the events they complete.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<(String, String)> {
        self.pending.extend_from_slice(bytes);
        let mut events = Vec::new();
        while let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                if !self.data.is_empty() {
                    let name = std::mem::take(&mut self.name);
                    let name = if name.is_empty() {
                        "message".to_owned()
                    } else {
                        name
                    };
                    events.push((name, self.data.join("\n")));
                }
                self.name.clear();
                self.data.clear();
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "event" => value.clone_into(&mut self.name),
                "data" => self.data.push(value.to_owned()),
                _ => {}
            }
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_chunks_are_put_together() {
        let mut parser = SseParser::default();
        assert!(parser.feed(b"event: tap\nda").is_empty());
        let events =
            parser.feed(b"ta: {\"a\":1}\n\n: keep-alive\n\nevent: dropped\r\ndata: {}\r\n\r\n");
        assert_eq!(
            events,
            vec![
                ("tap".to_owned(), "{\"a\":1}".to_owned()),
                ("dropped".to_owned(), "{}".to_owned()),
            ]
        );
    }

    #[test]
    fn the_url_carries_the_filters_encoded() {
        let args = TapArgs {
            route: Some("users".to_owned()),
            event_type: Some("user.#".to_owned()),
            outcome: None,
            body: true,
            limit: None,
            addr: "0.0.0.0:8002".to_owned(),
            json: false,
            admin_token: None,
            admin_token_file: None,
        };
        assert_eq!(
            tap_url(&args),
            "http://127.0.0.1:8002/tap?route=users&type=user.%23&body=true"
        );
    }

    #[test]
    fn a_line_names_outcome_type_routes_and_targets() {
        let event = serde_json::json!({
            "time": "2026-01-02T03:04:05.678901Z", "type": "user.created", "id": "e1",
            "routes": ["users", "audit"], "targets": ["q.users", "q.audit"],
            "outcome": "forwarded", "latency_ms": 1.31, "trace_id": null,
        });
        assert_eq!(
            render(&event, false),
            "03:04:05.678 forwarded     user.created id=e1 users,audit -> q.users,q.audit 1.3ms"
        );
        let coloured = render(&event, true);
        assert!(coloured.contains("\u{1b}["), "{coloured}");
    }
}
