#!/usr/bin/env node
// Renders one page in headless Chromium (the Debian package's /usr/bin/chromium, driven by
// playwright-core), takes screenshots and runs axe-core on it.
//
//   node check-page.mjs --url URL --screenshot OUT.png [--width 1280]
//
// 1. JavaScript disabled (the page must work without it): loads URL, takes a full-page
//    screenshot at --width to OUT.png and one at 375 px to OUT-narrow.png, and reads the HTTP
//    status, document.title and the visible text of <body>.
// 2. JavaScript enabled: loads URL again, injects node_modules/axe-core/axe.min.js and runs the
//    WCAG 2.0/2.1 A and AA rules plus best practices.
//
// Prints one JSON object on stdout:
//   {"status", "title", "text", "violations": [{"id", "impact", "help", "help_url", "nodes",
//    "targets"}], "screenshot", "screenshot_narrow"}
// (`targets`: the CSS selectors of at most 5 offending elements; `nodes`: how many there are).
// Exit 0 when the page could be checked, violations or not; 1 with a message on stderr when
// Chromium or the page cannot be loaded; 2 on bad arguments. `cargo xtask test-env` installs
// chromium and runs `npm ci` here.

import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const CHROMIUM = '/usr/bin/chromium';
const AXE = path.join(HERE, 'node_modules', 'axe-core', 'axe.min.js');
const NAV_TIMEOUT_MS = 30_000;
// Whatever hangs, the process ends (its caller waits for it).
const OVERALL_TIMEOUT_MS = 180_000;
const NARROW_WIDTH = 375;
const HEIGHT = 800;
const MAX_TARGETS = 5;
const AXE_TAGS = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'];
// Running as root needs --no-sandbox; the machine has no internet, so nothing may phone home.
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const SETUP_HINT = 'run `cargo xtask test-env` (it installs chromium and runs `npm ci` in tests/browser)';

class UsageError extends Error {}

function parseArgs(argv) {
  const opts = { width: 1280 };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const [flag, inline] = arg.startsWith('--') && arg.includes('=') ? arg.split(/=(.*)/s, 2) : [arg, undefined];
    const value = () => {
      const v = inline ?? argv[++i];
      if (v === undefined || v === '') throw new UsageError(`${flag} needs a value`);
      return v;
    };
    switch (flag) {
      case '--url':
        opts.url = value();
        break;
      case '--screenshot':
        opts.screenshot = path.resolve(value());
        break;
      case '--width': {
        const w = Number(value());
        if (!Number.isInteger(w) || w < 200 || w > 4000) throw new UsageError('--width must be an integer from 200 to 4000');
        opts.width = w;
        break;
      }
      case '-h':
      case '--help':
        process.stdout.write('usage: node check-page.mjs --url URL --screenshot OUT.png [--width 1280]\n');
        process.exit(0);
        break;
      default:
        throw new UsageError(`unknown argument ${arg}`);
    }
  }
  if (!opts.url) throw new UsageError('--url is required');
  if (!opts.screenshot) throw new UsageError('--screenshot is required');
  if (!/^(https?:\/\/|file:\/\/\/)/i.test(opts.url)) throw new UsageError(`--url must be http://, https:// or file:///, got ${opts.url}`);
  const ext = path.extname(opts.screenshot);
  opts.screenshotNarrow = `${ext ? opts.screenshot.slice(0, -ext.length) : opts.screenshot}-narrow${ext || '.png'}`;
  return opts;
}

async function load(page, url, what) {
  let response;
  try {
    response = await page.goto(url, { waitUntil: 'load', timeout: NAV_TIMEOUT_MS });
  } catch (e) {
    throw new Error(`could not load ${url} (${what}): ${firstLine(e)}`);
  }
  if (!response) throw new Error(`loading ${url} (${what}) gave no HTTP response`);
  return response;
}

function firstLine(e) {
  return String(e?.message ?? e).split('\n')[0];
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: ${SETUP_HINT}`);
  if (!existsSync(AXE)) throw new Error(`${AXE} is missing: ${SETUP_HINT}`);
  let chromium;
  try {
    ({ chromium } = await import('playwright-core'));
  } catch (e) {
    throw new Error(`cannot load playwright-core (${firstLine(e)}): ${SETUP_HINT}`);
  }

  let browser;
  try {
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: NAV_TIMEOUT_MS });
  } catch (e) {
    throw new Error(`could not start Chromium (${CHROMIUM}): ${e?.message ?? e}`);
  }
  try {
    // 1. Without JavaScript: what every visitor gets, and the screenshots.
    const noJs = await browser.newContext({ javaScriptEnabled: false, viewport: { width: opts.width, height: HEIGHT } });
    const page = await noJs.newPage();
    const response = await load(page, opts.url, 'JavaScript disabled');
    await page.screenshot({ path: opts.screenshot, fullPage: true, timeout: NAV_TIMEOUT_MS });
    // Playwright reads these through its own utility world, which runs with page scripts off.
    const title = await page.title();
    const text = await page.locator('body').innerText({ timeout: NAV_TIMEOUT_MS });
    await page.setViewportSize({ width: NARROW_WIDTH, height: HEIGHT });
    await page.screenshot({ path: opts.screenshotNarrow, fullPage: true, timeout: NAV_TIMEOUT_MS });
    await noJs.close();

    // 2. With JavaScript: axe-core. bypassCSP so a strict Content-Security-Policy (as a status
    // page should send) does not block the injected script.
    const js = await browser.newContext({ bypassCSP: true, viewport: { width: opts.width, height: HEIGHT } });
    const axePage = await js.newPage();
    await load(axePage, opts.url, 'JavaScript enabled');
    await axePage.addScriptTag({ path: AXE });
    const violations = await axePage.evaluate(
      async ({ tags, max }) => {
        // eslint-disable-next-line no-undef
        const result = await axe.run(document, { runOnly: { type: 'tag', values: tags } });
        return result.violations.map((v) => ({
          id: v.id,
          impact: v.impact ?? null,
          help: v.help,
          help_url: v.helpUrl,
          nodes: v.nodes.length,
          // A target is a selector list: one per frame / shadow root on the way to the element.
          targets: v.nodes.slice(0, max).map((n) => n.target.map((t) => (Array.isArray(t) ? t.join(' ') : t)).join(' >>> ')),
        }));
      },
      { tags: AXE_TAGS, max: MAX_TARGETS },
    );
    await js.close();

    return JSON.stringify({
      status: response.status(),
      title,
      text,
      violations,
      screenshot: opts.screenshot,
      screenshot_narrow: opts.screenshotNarrow,
    });
  } finally {
    await browser.close().catch(() => {});
  }
}

const watchdog = setTimeout(() => {
  process.stderr.write(`check-page: gave up after ${OVERALL_TIMEOUT_MS / 1000} s\n`);
  process.exit(1);
}, OVERALL_TIMEOUT_MS);
watchdog.unref();

main().then(
  (json) => process.stdout.write(`${json}\n`, () => process.exit(0)),
  (e) => {
    process.stderr.write(`check-page: ${e instanceof UsageError ? e.message : (e?.message ?? e)}\n`);
    if (e instanceof UsageError) process.stderr.write('usage: node check-page.mjs --url URL --screenshot OUT.png [--width 1280]\n');
    process.exit(e instanceof UsageError ? 2 : 1);
  },
);
