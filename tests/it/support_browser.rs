//! The browser check: renders a page in headless Chromium (`/usr/bin/chromium`), takes
//! screenshots and runs axe-core, through `tests/browser/check-page.mjs` (playwright-core).
//!
//! `cargo xtask test-env` installs chromium and runs `npm ci` in `tests/browser`; without them
//! [`check_page`] fails with a message saying so: it never skips.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

const CHROMIUM: &str = "/usr/bin/chromium";
const SETUP_HINT: &str = "run `cargo xtask test-env` (it installs chromium and runs `npm ci` in tests/browser)";

/// What the page looked like with JavaScript off, and what axe-core found with it on.
#[derive(Debug, Clone, Deserialize)]
pub struct PageCheck {
    /// HTTP status of the page (JavaScript off).
    pub status: u16,
    /// `document.title`.
    pub title: String,
    /// The visible text of `<body>` with JavaScript off (`innerText`: hidden elements left out).
    pub text: String,
    /// axe-core violations of the WCAG 2.0/2.1 A and AA rules and best practices.
    pub violations: Vec<Violation>,
}

/// One axe-core rule the page breaks.
#[derive(Debug, Clone, Deserialize)]
pub struct Violation {
    /// The axe rule, e.g. `image-alt`.
    pub id: String,
    /// `minor`, `moderate`, `serious` or `critical`.
    pub impact: Option<String>,
    /// One line saying what the rule wants.
    pub help: String,
    /// CSS selectors of the first (at most 5) offending elements.
    pub targets: Vec<String>,
}

/// `image-alt (critical): Images must have alternative text [img, …]`, for assertion messages.
impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let impact = self.impact.as_deref().unwrap_or("no impact");
        write!(f, "{} ({impact}): {} [{}]", self.id, self.help, self.targets.join(", "))
    }
}

/// `tests/browser`, next to this crate's manifest.
fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("browser")
}

/// Loads `url` in headless Chromium: a full-page screenshot to `screenshot` (1280 px wide) and
/// one 375 px wide next to it (`NAME-narrow.png`), status, title and text with JavaScript off,
/// then axe-core with JavaScript on. Errors when Chromium, Node.js or the npm packages are
/// missing, or when the page cannot be loaded; violations are not errors (see [`serious`]).
///
/// Blocks for a few seconds (call it through `spawn_blocking` from an async test).
pub fn check_page(url: &str, screenshot: &Path) -> Result<PageCheck> {
    let dir = browser_dir();
    let script = dir.join("check-page.mjs");
    if !Path::new(CHROMIUM).is_file() {
        bail!("the browser check needs Chromium and {CHROMIUM} is missing: {SETUP_HINT}");
    }
    for needed in [dir.join("node_modules/playwright-core/package.json"), dir.join("node_modules/axe-core/axe.min.js")]
    {
        if !needed.is_file() {
            bail!("the browser check needs {} and it is missing: {SETUP_HINT}", needed.display());
        }
    }
    if let Some(parent) = screenshot.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    let out = Command::new("node")
        .arg(&script)
        .args(["--url", url, "--screenshot"])
        .arg(screenshot)
        .current_dir(&dir)
        .output()
        .with_context(|| format!("could not run `node {}`: {SETUP_HINT}", script.display()))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        bail!("the browser check of {url} failed ({}):\n{}", out.status, stderr.trim_end());
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.trim()).with_context(|| {
        format!("the browser check of {url} printed no page report:\n{}\nstderr:\n{}", stdout.trim(), stderr.trim_end())
    })
}

/// The violations of impact `serious` or `critical`.
pub fn serious(v: &[Violation]) -> Vec<&Violation> {
    v.iter().filter(|v| matches!(v.impact.as_deref(), Some("serious" | "critical"))).collect()
}
