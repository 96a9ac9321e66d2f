// Launches Debian's headless Chromium with playwright-core for the WebRTC browser tests:
// the flags every test needs (loopback peer connections, autoplay, no background traffic),
// plus a fake camera and microphone when a test publishes.
import { pathToFileURL } from "node:url";
import { join } from "node:path";

// Launches Chromium through the playwright-core in PW_DIR (the one the console test
// installs, crates/sluice/tests/console/node_modules/playwright-core). With
// `fakeMedia`, getUserMedia gets Chromium's fake camera and microphone without a prompt.
// With `showLocalIps`, peer connections offer the real host addresses (127.0.0.1 here)
// instead of mDNS `.local` names, which a server without mDNS cannot reach. A page that
// was granted camera or microphone gets host addresses anyway; one without (a LiveKit
// subscriber-only participant) would offer only mDNS names.
export async function launchChromium(pwDir, { fakeMedia = false, showLocalIps = false } = {}) {
  const { chromium } = await import(pathToFileURL(join(pwDir, "index.mjs")).href);
  const args = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--allow-loopback-in-peer-connection",
    "--autoplay-policy=no-user-gesture-required",
  ];
  if (fakeMedia) {
    args.push("--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream");
  }
  if (showLocalIps) {
    args.push("--disable-features=WebRtcHideLocalIpsWithMdns");
  }
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args,
    timeout: 60000,
  });
}
