//! One real service binary under test: spawned with its environment, its output
//! captured line by line (and echoed with `E2E_VERBOSE=1`), its HTTP address read from
//! its "listening on http://…" log line, stopped with SIGTERM or killed with SIGKILL.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};

/// Where the workspace's binaries are: `E2E_BIN_DIR`, else next to the test executable
/// (`target/<profile>/deps/…` → `target/<profile>/`).
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("E2E_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    let mut dir = exe.parent().map(PathBuf::from).unwrap_or_default();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir
}

/// The path of binary `name`, or an error saying how to build it.
pub fn binary(name: &str) -> anyhow::Result<PathBuf> {
    let path = bin_dir().join(name);
    if path.is_file() {
        Ok(path)
    } else {
        bail!(
            "binary {} not found: build the services first with \
             `cargo build --bins` (cargo xtask test does), or set E2E_BIN_DIR",
            path.display()
        )
    }
}

/// How to (re)start a service.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Binary name, also the log prefix.
    pub name: String,
    /// Arguments.
    pub args: Vec<String>,
    /// Environment on top of a cleaned-up inherited one.
    pub env: Vec<(String, String)>,
}

impl Spec {
    /// A spec for binary `name`.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            args: Vec::new(),
            env: Vec::new(),
        }
    }

    /// Adds an environment variable.
    #[must_use]
    pub fn env(mut self, key: &str, value: impl Into<String>) -> Self {
        self.env.push((key.to_owned(), value.into()));
        self
    }

    /// Adds an argument.
    #[must_use]
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }
}

/// A running (or stopped) service process.
#[derive(Debug)]
pub struct Service {
    spec: Spec,
    child: Option<Child>,
    logs: Arc<Mutex<Vec<String>>>,
    addr: Option<SocketAddr>,
}

/// Settings a test must not inherit from the developer's shell.
const SCRUBBED: [&str; 18] = [
    "AMQP_URL",
    "AMQP_URL_FILE",
    "AMQP_CA_FILE",
    "AMQP_CLIENT_CERT",
    "AMQP_CLIENT_KEY",
    "QUEUE_TYPE",
    "USER_SERVICE_ADDR",
    "USER_DB",
    "ORDER_SERVICE_ADDR",
    "ORDER_DB",
    "ORDER_QUEUE",
    "DISPATCH_QUEUE",
    "ROUTES_FILE",
    "DISPATCHER_ADDR",
    "ROUTES_POLL_INTERVAL",
    "DISPATCH_PREFETCH",
    "RUST_LOG",
    "LOG_FORMAT",
];

impl Service {
    /// Spawns the binary and waits until it logs its HTTP address.
    pub async fn start(spec: Spec) -> anyhow::Result<Self> {
        let mut service = Self {
            spec,
            child: None,
            logs: Arc::new(Mutex::new(Vec::new())),
            addr: None,
        };
        service.spawn()?;
        service.wait_for_addr(0, Duration::from_secs(60)).await?;
        Ok(service)
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let path = binary(&self.spec.name)?;
        let mut command = Command::new(&path);
        for key in SCRUBBED {
            command.env_remove(key);
        }
        command
            .args(&self.spec.args)
            .envs(self.spec.env.iter().map(|(k, v)| (k, v)))
            // The harness finds the port in the "listening on" line: keep it whatever
            // the test's filter.
            .env("RUST_LOG", self.rust_log())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command
            .spawn()
            .with_context(|| format!("cannot start {}", path.display()))?;
        let prefix = self.spec.name.clone();
        if let Some(out) = child.stdout.take() {
            tokio::spawn(collect(out, prefix.clone(), self.logs.clone()));
        }
        if let Some(err) = child.stderr.take() {
            tokio::spawn(collect(err, prefix, self.logs.clone()));
        }
        self.child = Some(child);
        self.addr = None;
        Ok(())
    }

    fn rust_log(&self) -> String {
        let filter = self
            .spec
            .env
            .iter()
            .rev()
            .find(|(k, _)| k == "RUST_LOG")
            .map_or("info", |(_, v)| v.as_str());
        format!("{filter},events::http=info")
    }

    /// Starts it again with the same spec (after a stop or a kill); the address may change.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.stop().await?;
        // Counted before the spawn: on a busy machine the new process may print its
        // address before this task runs again.
        let earlier = self.logs().len();
        self.spawn()?;
        self.wait_for_addr(earlier, Duration::from_secs(60))
            .await
            .map(|_| ())
    }

    /// How it is started.
    pub fn spec(&self) -> &Spec {
        &self.spec
    }

    /// The HTTP address it bound.
    pub fn addr(&self) -> SocketAddr {
        self.addr
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// `http://<addr><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr(), path)
    }

    /// The process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// Every line it printed so far (all runs).
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Whether any line contains `needle`.
    pub fn logged(&self, needle: &str) -> bool {
        self.logs
            .lock()
            .is_ok_and(|l| l.iter().any(|line| line.contains(needle)))
    }

    /// Sends `signal` (SIGHUP for a reload, say).
    pub fn signal(&self, signal: Signal) -> anyhow::Result<()> {
        let pid = self.pid().context("not running")?;
        kill(Pid::from_raw(i32::try_from(pid)?), signal)?;
        Ok(())
    }

    /// SIGTERM, then waits up to 20 s for the exit; SIGKILL after that.
    pub async fn stop(&mut self) -> anyhow::Result<Option<ExitStatus>> {
        let Some(mut child) = self.child.take() else {
            return Ok(None);
        };
        if let Some(pid) = child.id() {
            let _ = kill(Pid::from_raw(i32::try_from(pid)?), Signal::SIGTERM);
        }
        match tokio::time::timeout(Duration::from_secs(20), child.wait()).await {
            Ok(status) => Ok(Some(status?)),
            Err(_) => {
                child.kill().await?;
                bail!(
                    "{} did not exit within 20s of SIGTERM (killed)",
                    self.spec.name
                )
            }
        }
    }

    /// SIGKILL: no chance to clean up, as in a crash.
    pub async fn kill9(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill().await?;
        }
        Ok(())
    }

    /// Whether it exited on its own; returns the status if so.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Waits for a "listening on" line among the lines after the first `already`.
    async fn wait_for_addr(
        &mut self,
        already: usize,
        timeout: Duration,
    ) -> anyhow::Result<SocketAddr> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let found = self
                .logs()
                .iter()
                .skip(already)
                .find_map(|line| listening_addr(line));
            if let Some(addr) = found {
                self.addr = Some(addr);
                return Ok(addr);
            }
            if let Some(status) = self.exited() {
                bail!(
                    "{} exited ({status}) before listening; its output:\n{}",
                    self.spec.name,
                    self.logs().join("\n")
                );
            }
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "{} did not log a listening address within {timeout:?}; its output:\n{}",
                    self.spec.name,
                    self.logs().join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The address in a "… listening on http://ADDR" line (pretty or JSON format).
pub fn listening_addr(line: &str) -> Option<SocketAddr> {
    let start = line.find("listening on http://")? + "listening on http://".len();
    let rest = &line[start..];
    let end = rest
        .find(|c: char| c.is_whitespace() || c == '"' || c == '\\' || c == ',')
        .unwrap_or(rest.len());
    rest[..end].trim_end_matches('/').parse().ok()
}

async fn collect(stream: impl AsyncRead + Unpin, prefix: String, logs: Arc<Mutex<Vec<String>>>) {
    let verbose = std::env::var_os("E2E_VERBOSE").is_some();
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if verbose {
            eprintln!("[{prefix}] {line}");
        }
        if let Ok(mut logs) = logs.lock() {
            logs.push(line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listening_address_is_found_in_pretty_and_json_lines() {
        let pretty = "2026-11-22T10:00:00Z  INFO user_service: api listening on http://127.0.0.1:41234 addr=127.0.0.1:41234";
        let json = r#"{"level":"INFO","message":"admin listening on http://127.0.0.1:8002","addr":"127.0.0.1:8002"}"#;
        assert_eq!(
            listening_addr(pretty),
            Some("127.0.0.1:41234".parse().unwrap())
        );
        assert_eq!(
            listening_addr(json),
            Some("127.0.0.1:8002".parse().unwrap())
        );
        assert_eq!(listening_addr("connected to broker"), None);
    }
}
