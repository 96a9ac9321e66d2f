// Opens Sluice's WebRTC player page (GET /{app}/{stream}/) in headless Chromium and prints
// JSON: the page's getStats() figures (framesDecoded, totalSamplesReceived) after 3 s and
// after SECONDS, and its status line.
//
// Usage: node player_test.mjs PAGE_URL SECONDS PLAYWRIGHT_CORE_DIR
// playwright-core is the one the console test installs (crates/sluice/tests/console).
import { launchChromium } from "./chromium.mjs";

const [url, seconds, pwDir] = process.argv.slice(2);
const browser = await launchChromium(pwDir);
const result = {};
try {
  const page = await browser.newPage();
  page.on("console", (m) => console.error("page:", m.text()));
  await page.goto(url);
  const read = () => page.evaluate(() => ({
    stats: window.sluiceStats || { framesDecoded: 0, totalSamplesReceived: 0 },
    status: document.getElementById("status").textContent,
  }));
  await page.waitForTimeout(3000);
  result.early = await read();
  await page.waitForTimeout(Math.max(1000, Number(seconds) * 1000 - 3000));
  result.late = await read();
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
