// Plays Sluice's WebRTC player page in headless Chromium over ICE-TCP only: the WHEP answer
// is rewritten on its way to the page so that it keeps only the server's TCP candidates
// (`tcptype passive`), so the browser has no UDP address of the server to try. The server
// is ICE-lite (it never sends checks), so any media must come over the TCP connection.
// Prints JSON like player_test.mjs, plus the candidate lines removed and kept.
//
// Usage: node player_tcp_test.mjs PAGE_URL SECONDS PLAYWRIGHT_CORE_DIR
import { launchChromium } from "./chromium.mjs";

const [url, seconds, pwDir] = process.argv.slice(2);
const browser = await launchChromium(pwDir);
const result = { removed: [], kept: [] };
try {
  const page = await browser.newPage();
  page.on("console", (m) => console.error("page:", m.text()));
  await page.route("**/whep", async (route) => {
    if (route.request().method() !== "POST") return route.continue();
    const resp = await route.fetch();
    const sdp = await resp.text();
    const lines = sdp.split("\r\n").filter((l) => {
      if (!l.startsWith("a=candidate:")) return true;
      const transport = l.split(" ")[2].toLowerCase();
      (transport === "tcp" ? result.kept : result.removed).push(l);
      return transport === "tcp";
    });
    await route.fulfill({ response: resp, body: lines.join("\r\n") });
  });
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
