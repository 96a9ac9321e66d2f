// Headless Chromium publishes its fake camera and microphone over WHIP with one video codec
// forced by setCodecPreferences, then plays the stream back over WHEP in a second page, and
// prints JSON: both HTTP statuses, the negotiated video codecs, the player's framesDecoded
// after 3 s and after SECONDS, and its decoded frame size.
//
// Usage: node codec_test.mjs BASE_URL STREAM CODEC SECONDS PLAYWRIGHT_CORE_DIR
// (BASE_URL http://127.0.0.1:port, STREAM app/name, CODEC a mime subtype: VP9, AV1, ...)
import { launchChromium } from "./chromium.mjs";

const [base, stream, codec, seconds, pwDir] = process.argv.slice(2);
const browser = await launchChromium(pwDir, { fakeMedia: true });

// Runs in the publisher page: WHIP with only `codec` offered for video.
async function publish([url, codec]) {
  const media = await navigator.mediaDevices.getUserMedia({
    video: { width: 640, height: 360, frameRate: 25 }, audio: true,
  });
  const pc = new RTCPeerConnection();
  window.pc = pc;
  const v = pc.addTransceiver(media.getVideoTracks()[0], { direction: "sendonly" });
  const wanted = RTCRtpSender.getCapabilities("video").codecs
    .filter((c) => c.mimeType.toLowerCase() === "video/" + codec.toLowerCase());
  if (!wanted.length) return { status: 0, error: "chromium cannot send " + codec };
  v.setCodecPreferences(wanted);
  pc.addTransceiver(media.getAudioTracks()[0], { direction: "sendonly" });
  await pc.setLocalDescription(await pc.createOffer());
  const r = await fetch(url, {
    method: "POST", headers: { "Content-Type": "application/sdp" }, body: pc.localDescription.sdp,
  });
  const answer = await r.text();
  if (r.status !== 201) return { status: r.status, error: answer };
  await pc.setRemoteDescription({ type: "answer", sdp: answer });
  const rtpmaps = answer.split("\r\n").filter((l) => l.startsWith("a=rtpmap:") && l.includes("/90000"));
  return { status: r.status, answer_video: rtpmaps };
}

// Runs in the player page: WHEP, recording inbound video stats.
async function play(url) {
  const pc = new RTCPeerConnection();
  window.pc = pc;
  pc.addTransceiver("video", { direction: "recvonly" });
  pc.addTransceiver("audio", { direction: "recvonly" });
  pc.ontrack = (e) => {
    if (e.track.kind !== "video") return;
    const el = document.createElement("video");
    el.muted = true;
    el.autoplay = true;
    el.srcObject = new MediaStream([e.track]);
    document.body.appendChild(el);
  };
  await pc.setLocalDescription(await pc.createOffer());
  const r = await fetch(url, {
    method: "POST", headers: { "Content-Type": "application/sdp" }, body: pc.localDescription.sdp,
  });
  const answer = await r.text();
  if (r.status !== 201) return { status: r.status, error: answer };
  await pc.setRemoteDescription({ type: "answer", sdp: answer });
  return { status: r.status };
}

async function stats() {
  const out = { framesDecoded: 0, width: 0, height: 0, codec: "", state: window.pc.connectionState };
  const report = await window.pc.getStats();
  report.forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "video") {
      out.framesDecoded = s.framesDecoded || 0;
      out.width = s.frameWidth || 0;
      out.height = s.frameHeight || 0;
      const c = s.codecId && report.get(s.codecId);
      out.codec = c ? c.mimeType : "";
    }
  });
  return out;
}

const result = {};
try {
  // A page on the server's origin (loopback: a secure context, so getUserMedia works);
  // the JSON page's CSP is not ours to keep.
  const context = await browser.newContext({ bypassCSP: true });
  const pub = await context.newPage();
  pub.on("console", (m) => console.error("publisher:", m.text()));
  await pub.goto(base + "/api/v1/server").catch(() => {});
  result.publish = await pub.evaluate(publish, [`${base}/${stream}/whip`, codec]);
  if (result.publish.status === 201) {
    // Let the publisher connect and the stream go live before the viewer asks for it.
    await pub.waitForTimeout(3000);
    const player = await context.newPage();
    player.on("console", (m) => console.error("player:", m.text()));
    await player.goto(base + "/api/v1/server").catch(() => {});
    result.play = await player.evaluate(play, `${base}/${stream}/whep`);
    if (result.play.status === 201) {
      await player.waitForTimeout(3000);
      result.early = await player.evaluate(stats);
      await player.waitForTimeout(Math.max(1000, Number(seconds) * 1000 - 3000));
      result.late = await player.evaluate(stats);
    }
    result.publisher_state = await pub.evaluate(() => window.pc.connectionState);
  }
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
