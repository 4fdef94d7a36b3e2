//! A headless Chromium driven over WebDriver (Debian's `chromium` and `chromedriver`), for the
//! dashboard test: launch with the flags that keep Chromium off the network, in-page waits that
//! react to DOM changes, screenshots under the cargo target directory.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder};
use serde_json::{Value, json};

/// Flags that keep a headless Chromium from reaching out to the network on its own.
const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1440,1100",
];

/// Finds an executable on `PATH`.
pub fn which(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// Whether a missing browser fails the test (`VIGIL_E2E=required`, set by `.ci/run`).
pub fn required() -> bool {
    std::env::var("VIGIL_E2E").is_ok_and(|v| v == "required")
}

/// A running chromedriver with one browser session.
pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
    shots: PathBuf,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium; `Err` with a reason when either is missing
    /// or will not start.
    pub async fn launch(test: &str) -> Result<Browser, String> {
        let chromium = which(&["chromium", "chromium-browser", "google-chrome"])
            .ok_or("chromium is not installed (apt-get install chromium)")?;
        let chromedriver = which(&["chromedriver"])
            .ok_or("chromedriver is not installed (apt-get install chromium-driver)")?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free loopback port: {e}"))?
            .port();
        let mut driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("chromedriver would not start: {e}"))?;
        let stdout = driver.stdout.take().ok_or("chromedriver has no stdout")?;
        // chromedriver says when it listens; wait for that line rather than polling the port.
        let ready = tokio::task::spawn_blocking(move || {
            let mut lines = BufReader::new(stdout).lines();
            let ok = lines
                .by_ref()
                .map_while(Result::ok)
                .any(|l| l.contains("started successfully"));
            // Keep draining so chromedriver never blocks on a full pipe.
            std::thread::spawn(move || lines.for_each(drop));
            ok
        });
        match tokio::time::timeout(Duration::from_secs(20), ready).await {
            Ok(Ok(true)) => {}
            _ => {
                let _ = driver.kill();
                return Err("chromedriver did not report that it started".into());
            }
        }
        let profile = tempfile::tempdir().map_err(|e| format!("no temp dir: {e}"))?;
        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|s| (*s).to_owned()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({ "binary": chromium, "args": args }),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await;
        let client = match client {
            Ok(client) => client,
            Err(err) => {
                let _ = driver.kill();
                let _ = driver.wait();
                return Err(format!(
                    "chromium would not start under chromedriver: {err}"
                ));
            }
        };
        let shots = screenshot_dir().join(test);
        std::fs::create_dir_all(&shots).map_err(|e| format!("{}: {e}", shots.display()))?;
        Ok(Browser {
            client,
            driver,
            _profile: profile,
            shots,
        })
    }

    /// Runs `script` (a function body; `arguments` holds `args`) and returns its value.
    pub async fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.client
            .execute(script, args)
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Waits until an element matching `selector` whose text contains `needle` exists, reacting
    /// to DOM changes in the page; returns the milliseconds it took. Panics after `timeout`,
    /// showing what the page had.
    pub async fn wait_text(&self, selector: &str, needle: &str, timeout: Duration) -> f64 {
        let result = self
            .client
            .execute_async(
                WAIT_SCRIPT,
                vec![
                    json!(selector),
                    json!(needle),
                    json!(timeout.as_millis() as u64),
                ],
            )
            .await
            .unwrap_or_else(|e| panic!("wait script failed: {e}"));
        if result["ok"] != true {
            self.screenshot("failure").await;
            panic!(
                "no {selector} containing {needle:?} within {timeout:?}; the page had: {}",
                result["seen"]
            );
        }
        result["ms"].as_f64().unwrap_or_default()
    }

    /// The text of the first element matching `selector` (empty when none).
    pub async fn text(&self, selector: &str) -> String {
        self.js(
            "const n = document.querySelector(arguments[0]); return n ? n.textContent : '';",
            vec![json!(selector)],
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_owned()
    }

    /// How many elements match `selector`.
    pub async fn count(&self, selector: &str) -> u64 {
        self.js(
            "return document.querySelectorAll(arguments[0]).length;",
            vec![json!(selector)],
        )
        .await
        .as_u64()
        .unwrap_or_default()
    }

    /// Saves a PNG of the viewport under the target directory and returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.expect("screenshot");
        let path = self.shots.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write screenshot");
        println!("screenshot: {}", path.display());
        path
    }

    /// Ends the session (which quits Chromium) and stops chromedriver.
    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // A panicking test still stops its chromedriver; the browser goes with it.
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// `<target>/dashboard-screenshots`, found from the test binary's own path
/// (`<target>/debug/deps/dashboard-…`).
pub fn screenshot_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let target = exe
        .ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .unwrap_or_else(std::env::temp_dir);
    target.join("dashboard-screenshots")
}

const WAIT_SCRIPT: &str = r#"
const [selector, needle, timeout, done] = arguments;
const start = performance.now();
const found = () => [...document.querySelectorAll(selector)]
  .some((n) => !needle || n.textContent.includes(needle));
if (found()) { done({ ok: true, ms: 0 }); return; }
let timer;
const observer = new MutationObserver(() => {
  if (found()) {
    observer.disconnect();
    clearTimeout(timer);
    done({ ok: true, ms: performance.now() - start });
  }
});
observer.observe(document.documentElement, { subtree: true, childList: true, characterData: true, attributes: true });
timer = setTimeout(() => {
  observer.disconnect();
  const seen = [...document.querySelectorAll(selector)].map((n) => n.textContent.trim().slice(0, 200));
  done({ ok: false, seen });
}, timeout);
"#;
