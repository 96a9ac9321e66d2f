// Publishing from Chromium's publish page (fake camera and microphone) over WHIP, and
// optionally watching the same stream on the player page over WHEP in the same browser.
// Prints JSON: the publish page's figures (state, httpStatus, framesEncoded, videoCodec)
// and the player's (framesDecoded, totalSamplesReceived) early and late. With RESTART=1 the
// publish page restarts ICE (window.sluiceRestartIce()) between the two player readings.
//
// Usage: node publish_test.mjs PUBLISH_URL PLAYER_URL|- SECONDS RESTART(0|1) PLAYWRIGHT_CORE_DIR
import { launchChromium } from "./chromium.mjs";

const [publishUrl, playerUrl, seconds, restart, pwDir] = process.argv.slice(2);
const browser = await launchChromium(pwDir, { fakeMedia: true });
const result = {};
const t0 = Date.now();
try {
  const context = await browser.newContext();
  await context.grantPermissions(["camera", "microphone"]);
  const pub = await context.newPage();
  pub.on("console", (m) => console.error("publish page:", m.text()));
  await pub.goto(publishUrl);
  const readPub = () => pub.evaluate(() => Object.assign({}, window.sluicePublish || {}, {
    status: document.getElementById("status").textContent,
  }));
  // Up to 30 s to connect (or to be refused).
  for (let i = 0; i < 60; i++) {
    result.publish = await readPub();
    if (result.publish.state === "connected" || result.publish.httpStatus >= 400) break;
    await pub.waitForTimeout(500);
  }
  if (result.publish.state === "connected" && playerUrl !== "-") {
    const player = await context.newPage();
    player.on("console", (m) => console.error("player page:", m.text()));
    await player.goto(playerUrl);
    const read = () => player.evaluate(() => ({
      stats: window.sluiceStats || { framesDecoded: 0, totalSamplesReceived: 0 },
      status: document.getElementById("status").textContent,
    }));
    await player.waitForTimeout(4000);
    result.early = await read();
    if (restart === "1") {
      result.beforeRestart = await readPub();
      result.restarted = await pub.evaluate(() => window.sluiceRestartIce());
      await pub.waitForTimeout(2000);
    }
    await player.waitForTimeout(4000);
    result.late = await read();
    result.afterRestart = await readPub();
  }
  // Keep publishing for SECONDS in all (the test decodes over RTMP and HTTP-FLV meanwhile).
  const left = Number(seconds) * 1000 - (Date.now() - t0);
  if (left > 0) await pub.waitForTimeout(left);
  result.publishEnd = await readPub();
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
