//! A demo's processes: the dispatcher binary and the example services, each with the
//! demo's broker settings, their output kept (the last lines, for a failure report) and
//! echoed when asked. Stopped with SIGTERM (they drain and ack), killed after a bound.

use std::collections::VecDeque;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use events::AmqpSettings;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};

/// Lines kept per process for a failure report.
const TAIL: usize = 15;
/// How long a process gets to stop after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// Settings a demo's processes must not inherit from the shell: the demo sets them.
const SCRUBBED: [&str; 5] = [
    "ROUTES_FILE",
    "DISPATCHER_ADDR",
    "ROUTES_POLL_INTERVAL",
    "LOG_FORMAT",
    "RUST_LOG",
];

struct Process {
    label: String,
    child: Child,
    tail: Arc<Mutex<VecDeque<String>>>,
}

/// The running processes of one demo.
#[derive(Default)]
pub struct Fleet {
    processes: Vec<Process>,
    verbose: bool,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let labels: Vec<&str> = self.processes.iter().map(|p| p.label.as_str()).collect();
        f.debug_struct("Fleet").field("processes", &labels).finish()
    }
}

impl Fleet {
    /// An empty fleet; with `verbose`, every line the processes print is echoed.
    pub fn new(verbose: bool) -> Self {
        Self {
            processes: Vec::new(),
            verbose,
        }
    }

    /// Starts `binary` with `args`, shown as `label`.
    pub fn spawn(
        &mut self,
        binary: &Path,
        label: &str,
        args: &[String],
        amqp: &AmqpSettings,
    ) -> anyhow::Result<()> {
        if !binary.is_file() {
            bail!(
                "{} not found: build it first (`cargo build -p dispatcher -p order-service -p patterns --bins`)",
                binary.display()
            );
        }
        let mut command = Command::new(binary);
        for key in SCRUBBED {
            command.env_remove(key);
        }
        let mut child = command
            .args(args)
            .env("AMQP_URL", &amqp.url)
            .env("QUEUE_TYPE", amqp.queue_type.as_str())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        let echo = self.verbose.then(|| format!("[{label}]"));
        if let Some(out) = child.stdout.take() {
            tokio::spawn(keep_lines(out, tail.clone(), echo.clone()));
        }
        if let Some(err) = child.stderr.take() {
            tokio::spawn(keep_lines(err, tail.clone(), echo));
        }
        self.processes.push(Process {
            label: label.to_owned(),
            child,
            tail,
        });
        Ok(())
    }

    /// An error naming the first process that exited, with its last lines.
    pub fn check(&mut self) -> anyhow::Result<()> {
        for process in &mut self.processes {
            if let Ok(Some(status)) = process.child.try_wait() {
                let lines: Vec<String> = process
                    .tail
                    .lock()
                    .map(|t| t.iter().cloned().collect())
                    .unwrap_or_default();
                bail!(
                    "{} exited ({status}); its last lines:\n  {}",
                    process.label,
                    lines.join("\n  ")
                );
            }
        }
        Ok(())
    }

    /// SIGTERM to every process, then waits for each (SIGKILL after [`STOP_TIMEOUT`]).
    pub async fn stop(&mut self) {
        for process in &self.processes {
            if let Some(pid) = process.child.id().and_then(|p| i32::try_from(p).ok()) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
            }
        }
        for process in &mut self.processes {
            if tokio::time::timeout(STOP_TIMEOUT, process.child.wait())
                .await
                .is_err()
            {
                eprintln!(
                    "{} did not stop within {STOP_TIMEOUT:?}: killed",
                    process.label
                );
                let _ = process.child.kill().await;
            }
        }
        self.processes.clear();
    }
}

async fn keep_lines(
    stream: impl AsyncRead + Unpin,
    tail: Arc<Mutex<VecDeque<String>>>,
    echo: Option<String>,
) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(prefix) = &echo {
            println!("    {prefix} {line}");
        }
        if let Ok(mut tail) = tail.lock() {
            if tail.len() == TAIL {
                tail.pop_front();
            }
            tail.push_back(line);
        }
    }
}
