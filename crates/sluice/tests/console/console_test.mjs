// Drives the Sluice web console in headless Chromium (the Debian `chromium` package) through
// playwright-core. Run by crates/sluice/tests/e2e/console.rs:
//
//   node console_test.mjs <base-url> <screenshot.png> [--stream live/test] [--expect-preview]
//                         [--kick] [--stop]
//
// Prints one JSON summary line (prefixed "SUMMARY ") and exits 0 when every check passed,
// 1 otherwise. Every wait is bounded.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const args = process.argv.slice(2);
const flag = (name) => args.includes(name);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 && args[i + 1] ? args[i + 1] : dflt;
};
const positional = args.filter((a, i) => !a.startsWith("--") && !(i > 0 && args[i - 1] === "--stream"));
const [base, screenshot] = positional;
if (!base || !screenshot) {
  console.error("usage: node console_test.mjs <base-url> <screenshot.png> [--stream key] [--expect-preview] [--expect-webrtc] [--kick] [--stop]");
  process.exit(2);
}
const streamKey = opt("--stream", "live/test");
const summary = {
  stream_found: false,
  selected: false,
  charts: {},
  preview: { checked: flag("--expect-preview"), advanced: false, start: null, end: null, status: null },
  kicked: null,
  stopped: false,
  console_errors: [],
  screenshot,
  failures: [],
};
const fail = (what) => summary.failures.push(what);

const userDataDir = mkdtempSync(join(tmpdir(), "sluice-console-chromium-"));
let context;
try {
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    viewport: { width: 1440, height: 1000 },
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--autoplay-policy=no-user-gesture-required",
    ],
    timeout: 60000,
  });
  const page = context.pages()[0] || (await context.newPage());
  page.setDefaultTimeout(15000);
  page.on("console", (m) => {
    if (m.type() === "error" || m.type() === "warning") {
      summary.console_errors.push({ type: m.type(), text: m.text(), url: m.location()?.url || "" });
    }
  });
  page.on("pageerror", (e) => summary.console_errors.push({ type: "pageerror", text: String(e), url: "" }));
  page.on("dialog", (d) => d.dismiss()); // the console uses its own <dialog>, never alert()

  await page.goto(base, { waitUntil: "load" });
  const item = page.locator(`.stream-item[data-stream-key="${streamKey}"]`);
  try {
    await item.waitFor({ state: "visible", timeout: 15000 });
    summary.stream_found = true;
    await item.click();
    await page.waitForFunction((k) => document.querySelector("#d-key")?.textContent === k, streamKey, { timeout: 5000 });
    summary.selected = (await page.locator("#d-key").textContent()) === streamKey;
  } catch (e) {
    fail(`stream ${streamKey} not listed/selectable: ${e.message.split("\n")[0]}`);
  }

  // A few polls later the charts have data: count pixels of each chart's series colour.
  await page.waitForTimeout(4500);
  summary.charts = await page.evaluate(() => {
    const out = {};
    for (const c of document.querySelectorAll("canvas[id^=chart-]")) {
      const hex = c.dataset.color || "#000000";
      const [r, g, b] = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
      const data = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
      let ink = 0;
      let series = 0;
      for (let i = 0; i < data.length; i += 4) {
        if (data[i + 3] === 0) continue;
        ink += 1;
        if (data[i + 3] > 200 && Math.abs(data[i] - r) < 24 && Math.abs(data[i + 1] - g) < 24 && Math.abs(data[i + 2] - b) < 24) series += 1;
      }
      out[c.id.replace("chart-", "")] = { width: c.width, height: c.height, ink, series_pixels: series, points: Number(c.dataset.points || 0) };
    }
    return out;
  });
  for (const name of ["bitrate", "viewers"]) {
    const c = summary.charts[name];
    if (!c || c.points < 2 || c.series_pixels < 20) fail(`chart ${name} not drawn: ${JSON.stringify(c)}`);
  }
  if (!summary.charts.latency || summary.charts.latency.ink < 100) fail("latency chart (axes and state) not drawn");

  // The preview: video time advances.
  const videoTime = () => page.evaluate(() => document.querySelector("#video").currentTime);
  summary.preview.start = await videoTime();
  if (summary.preview.checked) {
    try {
      await page.waitForFunction(() => document.querySelector("#video").currentTime > 1.0, null, { timeout: 25000 });
      const t1 = await videoTime();
      await page.waitForTimeout(2000);
      summary.preview.end = await videoTime();
      summary.preview.advanced = summary.preview.end > t1 + 1;
    } catch {
      summary.preview.end = await videoTime();
    }
    if (!summary.preview.advanced) fail(`preview did not play (currentTime ${summary.preview.start} -> ${summary.preview.end})`);
  }
  summary.preview.status = await page.locator("#video-status").textContent();

  if (flag("--expect-webrtc")) {
    // Switch the preview to WebRTC (WHEP): Chromium must decode frames from the stream.
    summary.webrtc = { frames: 0, status: null };
    try {
      await page.locator(".preview-modes .mode[data-mode=webrtc]").click();
      await page.waitForFunction(
        () => {
          const v = document.querySelector("#video");
          return v.srcObject && v.getVideoPlaybackQuality().totalVideoFrames > 25 && !v.paused;
        },
        null,
        { timeout: 25000 },
      );
      summary.webrtc.frames = await page.evaluate(() => document.querySelector("#video").getVideoPlaybackQuality().totalVideoFrames);
    } catch (e) {
      fail(`webrtc preview did not play: ${e.message.split("\n")[0]}`);
    }
    summary.webrtc.status = await page.locator("#video-status").textContent();
    if (!/^WebRTC ·/.test(summary.webrtc.status || "")) fail(`webrtc preview status: ${summary.webrtc.status}`);
  }
  await page.screenshot({ path: screenshot, fullPage: true });

  if (flag("--kick")) {
    // Kick the first viewer session of the stream through its button and the confirm dialog.
    const row = page.locator("#sessions tr[data-kind=viewer]").first();
    try {
      await row.waitFor({ timeout: 10000 });
      const id = await row.getAttribute("data-session-id");
      await row.locator("button[data-kick]").click();
      await page.locator("#confirm-ok").click();
      await page.locator(`#sessions tr[data-session-id="${id}"]`).waitFor({ state: "detached", timeout: 10000 });
      summary.kicked = id;
    } catch (e) {
      fail(`kick: ${e.message.split("\n")[0]}`);
    }
  }
  if (flag("--stop")) {
    try {
      await page.locator("#stop").click();
      await page.locator("#confirm-ok").click();
      await item.waitFor({ state: "detached", timeout: 15000 });
      await page.locator("#no-selection").waitFor({ state: "visible", timeout: 5000 });
      summary.stopped = true;
    } catch (e) {
      fail(`stop: ${e.message.split("\n")[0]}`);
    }
  }
  await page.waitForTimeout(1500); // let a last poll run, so its errors are seen
} catch (e) {
  fail(`browser: ${e.message.split("\n")[0]}`);
} finally {
  await context?.close().catch(() => {});
  rmSync(userDataDir, { recursive: true, force: true });
}
if (!summary.preview.checked) {
  // Without HLS on the server the preview's playlist requests 404 (and Chromium logs each):
  // expected then, and reported separately; with --expect-preview they count as errors.
  const missing = (e) => e.type === "error" && /\b404\b/.test(e.text) && /\.m3u8(\?|$)/.test(e.url);
  summary.hls_missing = summary.console_errors.filter(missing).length;
  summary.console_errors = summary.console_errors.filter((e) => !missing(e));
}
if (summary.console_errors.length) fail(`${summary.console_errors.length} console errors/warnings`);
console.log(`SUMMARY ${JSON.stringify(summary)}`);
process.exit(summary.failures.length ? 1 : 0);
