//! A real headless browser for end-to-end tests: Debian's `chromium`, driven through
//! `chromedriver` (package `chromium-driver`) over WebDriver with `fantoccini`. Each
//! [`Browser`] starts its own chromedriver on a free port and a fresh profile, and both
//! go when it is dropped. A missing browser is an error that says what to install,
//! never a skipped test.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let browser = e2e::Browser::start().await?;
//! browser.goto("http://127.0.0.1:8002/").await?;
//! let generation = browser.text("#generation").await?;
//! browser.screenshot("dashboard").await?;
//! # Ok(()) }
//! ```

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::process::{Child, Command};

/// What to install when the browser or its driver is missing.
pub const INSTALL_HINT: &str = "install Debian's chromium and chromium-driver \
     (`apt-get install -y chromium chromium-driver`; `cargo xtask test` does it when run \
     as root on Debian), or set CHROMEDRIVER and CHROMIUM to their paths";

/// How long a `wait_*` call waits for the page, at most.
pub const WAIT: Duration = Duration::from_secs(30);

/// A headless Chromium session.
#[derive(Debug)]
pub struct Browser {
    client: Client,
    driver: Child,
    _profile: TempDir,
}

impl Browser {
    /// Starts chromedriver on a free port and opens a headless Chromium session with a
    /// fresh profile.
    pub async fn start() -> anyhow::Result<Self> {
        let driver_path = find("CHROMEDRIVER", &["chromedriver"])?;
        let chromium = find(
            "CHROMIUM",
            &["/usr/lib/chromium/chromium", "chromium", "chromium-browser"],
        )?;
        let port = crate::broker::free_port()?;
        let driver = Command::new(&driver_path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group, so that the browsers it starts go with it on drop.
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}: {INSTALL_HINT}", driver_path.display()))?;
        let url = format!("http://127.0.0.1:{port}");
        wait_for_driver(&url).await?;
        let profile = tempfile::tempdir().context("a profile folder for chromium")?;
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities(&chromium, profile.path()))
            .connect(&url)
            .await
            .with_context(|| {
                format!(
                    "opening a chromium session ({}): {INSTALL_HINT}",
                    chromium.display()
                )
            })?;
        Ok(Self {
            client,
            driver,
            _profile: profile,
        })
    }

    /// The WebDriver client, for what this API does not cover.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Opens `url`.
    pub async fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.client
            .goto(url)
            .await
            .with_context(|| format!("opening {url}"))
    }

    /// The first element matching `css`, waiting for it to appear.
    pub async fn find(&self, css: &str) -> anyhow::Result<Element> {
        self.client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(css))
            .await
            .with_context(|| format!("no element `{css}` within {WAIT:?}"))
    }

    /// Every element matching `css` now.
    pub async fn find_all(&self, css: &str) -> anyhow::Result<Vec<Element>> {
        self.client
            .find_all(Locator::Css(css))
            .await
            .with_context(|| format!("finding `{css}`"))
    }

    /// The visible text of the first element matching `css`.
    pub async fn text(&self, css: &str) -> anyhow::Result<String> {
        let element = self.find(css).await?;
        element
            .text()
            .await
            .with_context(|| format!("reading `{css}`"))
    }

    /// Waits until the text of `css` satisfies `check`, and returns it; the error
    /// shows the last text seen.
    pub async fn wait_for_text(
        &self,
        css: &str,
        what: &str,
        check: impl Fn(&str) -> bool,
    ) -> anyhow::Result<String> {
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut last = String::new();
        loop {
            if let Ok(elements) = self.client.find_all(Locator::Css(css)).await
                && let Some(element) = elements.first()
                && let Ok(text) = element.text().await
            {
                if check(&text) {
                    return Ok(text);
                }
                last = text;
            }
            if tokio::time::Instant::now() > deadline {
                bail!("`{css}` did not show {what} within {WAIT:?}; last text: {last:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Clicks the first element matching `css`.
    pub async fn click(&self, css: &str) -> anyhow::Result<()> {
        let element = self.find(css).await?;
        element
            .click()
            .await
            .with_context(|| format!("clicking `{css}`"))
    }

    /// Replaces the content of the input or textarea `css` with `text`, as typing it
    /// would (an `input` event is sent).
    pub async fn fill(&self, css: &str, text: &str) -> anyhow::Result<()> {
        let element = self.find(css).await?;
        element
            .clear()
            .await
            .with_context(|| format!("clearing `{css}`"))?;
        element
            .send_keys(text)
            .await
            .with_context(|| format!("typing into `{css}`"))
    }

    /// Runs `script` in the page with `args` (`arguments[i]`), returning its result.
    pub async fn execute(&self, script: &str, args: Vec<Value>) -> anyhow::Result<Value> {
        self.client
            .execute(script, args)
            .await
            .context("running a script in the page")
    }

    /// Saves a PNG of the page as `target/screenshots/<name>.png` and returns its path.
    pub async fn screenshot(&self, name: &str) -> anyhow::Result<PathBuf> {
        let png = self
            .client
            .screenshot()
            .await
            .context("taking a screenshot")?;
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }

    /// Ends the session and stops chromedriver.
    pub async fn close(self) -> anyhow::Result<()> {
        self.client
            .clone()
            .close()
            .await
            .context("closing the browser session")
    }
}

impl Drop for Browser {
    /// Stops chromedriver and every browser process it started (its process group),
    /// also when a test fails before [`Browser::close`].
    fn drop(&mut self) {
        if let Some(pid) = self.driver.id().and_then(|id| i32::try_from(id).ok()) {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = self.driver.start_kill();
    }
}

/// Where screenshots go: `target/screenshots` of this workspace (or `CARGO_TARGET_DIR`).
pub fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"),
        PathBuf::from,
    );
    target.join("screenshots")
}

/// The path given in `variable`, else the first of `candidates` that exists (an
/// absolute path) or is on `PATH`.
fn find(variable: &str, candidates: &[&str]) -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os(variable) {
        return Ok(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for candidate in candidates {
        let candidate = Path::new(candidate);
        if candidate.is_absolute() {
            if candidate.is_file() {
                return Ok(candidate.to_path_buf());
            }
            continue;
        }
        if let Some(found) = std::env::split_paths(&path)
            .map(|dir| dir.join(candidate))
            .find(|p| p.is_file())
        {
            return Ok(found);
        }
    }
    bail!("{} not found: {INSTALL_HINT}", candidates.join(" or "))
}

fn capabilities(chromium: &Path, profile: &Path) -> fantoccini::wd::Capabilities {
    let options = json!({
        "binary": chromium.display().to_string(),
        "args": [
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage",
            "--window-size=1400,1100", format!("--user-data-dir={}", profile.display()),
        ],
    });
    let mut capabilities = fantoccini::wd::Capabilities::new();
    capabilities.insert("browserName".to_owned(), json!("chrome"));
    capabilities.insert("goog:chromeOptions".to_owned(), options);
    capabilities
}

/// Waits until chromedriver answers `GET /status` (30 s at most).
async fn wait_for_driver(url: &str) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Ok(response) = http.get(format!("{url}/status")).send().await
            && response.status().is_success()
        {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!("chromedriver did not answer at {url} within {WAIT:?}: {INSTALL_HINT}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
