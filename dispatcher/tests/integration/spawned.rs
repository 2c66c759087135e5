//! The real `dispatcher` binary as a child process: its stdout collected, its admin
//! address read from the log, stopped with `SIGKILL` (`kill`) or on drop.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use events::testing::eventually;

/// Generous bound on waiting for a condition.
pub const WAIT: Duration = Duration::from_secs(30);

/// A running dispatcher binary.
pub struct Dispatcher {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    /// Its admin address (`127.0.0.1:port`).
    pub addr: String,
}

impl Dispatcher {
    /// Starts the binary on `routes` with `args` and `env` on top of the test broker's
    /// settings, and waits until its admin API answers `/healthz`.
    pub async fn start(routes: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_dispatcher"));
        command
            .args([
                "--routes",
                routes.to_str().unwrap(),
                "--addr",
                "127.0.0.1:0",
            ])
            .args(args)
            .env("AMQP_URL", events::testing::amqp_url())
            .env("QUEUE_TYPE", events::testing::queue_type().as_str())
            .env("RUST_LOG", "info")
            .env("LOG_FORMAT", "json")
            .env_remove("DISPATCHER_ADMIN_TOKEN")
            .env_remove("DISPATCHER_ADMIN_TOKEN_FILE")
            .env_remove("DISPATCH_ORDERED")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let sink = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    sink.lock().unwrap().push(line);
                }
            });
        }
        let addr = eventually(WAIT, "the admin address in the log", || {
            let found = lines.lock().unwrap().iter().find_map(|l| {
                l.split("listening on http://")
                    .nth(1)
                    .map(|rest| rest.split('"').next().unwrap_or(rest).to_owned())
            });
            async move { found }
        })
        .await;
        let process = Self { child, lines, addr };
        eventually(WAIT, "/healthz", || async {
            let status = reqwest::get(process.url("/healthz")).await.ok()?.status();
            (status == 200).then_some(())
        })
        .await;
        process
    }

    /// `http://<addr><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `GET /readyz` as JSON, when it answers 200.
    pub async fn ready(&self) -> Option<serde_json::Value> {
        let response = reqwest::get(self.url("/readyz")).await.ok()?;
        if response.status() != 200 {
            return None;
        }
        response.json().await.ok()
    }

    /// Every line it wrote so far, stdout and stderr.
    pub fn output(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// `kill -9`.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Dispatcher {
    fn drop(&mut self) {
        self.kill();
    }
}
