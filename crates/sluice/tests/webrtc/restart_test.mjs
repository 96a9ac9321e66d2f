// ICE restart of a WHEP viewer in headless Chromium: opens Sluice's player page, waits for
// decoded video, calls the page's window.sluiceRestartIce() (restartIce(), a new offer, a
// PATCH with the new ufrag/pwd), waits for the new path, and prints JSON: the page's stats
// (framesDecoded, totalSamplesReceived, remoteUfrag, selected candidate pair) before and
// after, and what the restart returned.
//
// Usage: node restart_test.mjs PAGE_URL PLAYWRIGHT_CORE_DIR
import { launchChromium } from "./chromium.mjs";

const [url, pwDir] = process.argv.slice(2);
const browser = await launchChromium(pwDir);
const result = {};
try {
  const page = await browser.newPage();
  page.on("console", (m) => console.error("page:", m.text()));
  await page.goto(url);
  const read = () => page.evaluate(() => ({
    stats: window.sluiceStats || { framesDecoded: 0 },
    status: document.getElementById("status").textContent,
    restarts: window.sluiceRestarts || 0,
  }));
  // Bounded waits: 30 s to play, 15 s for the new path.
  for (let i = 0; i < 60; i++) {
    result.before = await read();
    if (result.before.stats.framesDecoded >= 25 && result.before.stats.pair) break;
    await page.waitForTimeout(500);
  }
  result.restarted = await page.evaluate(() => window.sluiceRestartIce());
  for (let i = 0; i < 30; i++) {
    await page.waitForTimeout(500);
    result.after = await read();
    const p = result.after.stats.pair;
    if (p && p.id !== result.before.stats.pair.id && p.responsesReceived > 0) break;
  }
  await page.waitForTimeout(3000);
  result.after = await read();
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
