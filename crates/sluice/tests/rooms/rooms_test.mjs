// A room of N participants, each one LiveKit's own JS client SDK (livekit-client, its UMD
// bundle) in a page of one headless Chromium with a fake camera and microphone, against a
// server that speaks LiveKit's client signalling (Sluice's rooms, or a real LiveKit server).
// Every participant publishes camera and microphone and subscribes to everyone else; after
// the media window the script reads, per participant and per remote participant, the
// inbound-rtp stats of the video and audio it receives, plus data, active-speaker and error
// reports, and prints them as ONE JSON line, the last line of stdout.
//
// It exits non-zero only when the harness itself failed (bad arguments, Chromium did not
// start, the overall deadline passed); a participant that could not join, decode or receive
// is a finding written into the JSON for the caller to assert on. Every wait is bounded.
//
// Usage: node rooms_test.mjs --url=ws://127.0.0.1:PORT [--key=value ...] [PLAYWRIGHT_CORE_DIR]
//   --url=ws://HOST:PORT   the server (its /rtc endpoint; http(s) for RoomService is derived)
//   --api-key=K            API key (default devkey, a LiveKit dev server's)
//   --api-secret=S         API secret (default secret)
//   --room=NAME            room name (default sluice-room-<random>)
//   --participants=N       participants, 1..8 (default 3); identities p0, p1, ...
//   --seconds=S            the media window after everyone has joined (default 8)
//   --simulcast=0|1        publish the camera with simulcast layers (default 0)
//   --width=W --height=H --fps=F  camera capture (default 640x360 at 15)
//   --codec=vp8|h264|vp9|av1  the camera's codec (default vp8, the SDK's)
//   --single-pc=0|1        the SDK's singlePeerConnection (default 1, as in the SDK): 1 tries
//                          /rtc/v1 first (one peer connection, the publisher offer inside
//                          the join request) and falls back to /rtc (two peer connections)
//                          when /rtc/v1/validate answers 404; 0 goes to /rtc directly
//   --server-ice=0|1       use the ICE servers of the server's JoinResponse (default 0: the
//                          SDK gets rtcConfig.iceServers=[], so no STUN/TURN packet can leave
//                          the machine whatever the server advertises; LiveKit advertises
//                          Google's STUN servers unless configured otherwise)
//   --connect-timeout=S    per participant, connecting (signal + peer connection) (default 20)
//   --settle=S             after connecting, the longest wait for every participant to see
//                          every other one with all its tracks subscribed (default 20)
//   --timeout=S            overall deadline of the script (default: derived from the above)
//   --lower-size=0|1       p1 asks for p0's camera at 160x90 (setVideoDimensions) half-way
//                          through the window; records p1's frameWidth of p0 before and after
//   --roomservice=0|1      after the window, RoomService (Twirp over http): ListRooms,
//                          ListParticipants, MutePublishedTrack (p0's microphone: did the
//                          others see TrackMuted?) and RemoveParticipant (the last
//                          participant: did it see Disconnected?)
//   --trace=0|1            decode every signalling message (the join request in the URL,
//                          each SignalRequest sent and SignalResponse received) and write
//                          them to stderr as JSON lines `trace {...}`; the JSON gets a
//                          per-participant summary (message types in order)
//   --trace-sdp=0|1        with --trace, also write every full SDP to the stderr trace
//   --verbose=0|1          copy every console message of the pages to stderr
//   --pw=DIR               the playwright-core directory; as with the other browser scripts
//                          it may instead come as the last positional argument (that is how
//                          webrtc_support::chromium_script passes it)
//
// The pages: each participant's page is http://localhost/rooms/pN.html, served by
// Playwright's request interception (page.route) and never by a network server. A localhost
// origin is a secure context, so getUserMedia works, and it is plain http, so the SDK may
// open ws:// to the server (an https origin would block that as mixed content). It is a
// different origin from the server, as a real web app is: the SDK's fetch of
// /rtc/v1/validate is cross-origin and needs CORS headers on the server's answer.
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { gunzipSync } from "node:zlib";
import { launchChromium } from "../webrtc/chromium.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(join(here, "package.json"));
const t0 = Date.now();
const result = { ok: false, error: null };
let printed = false;

function finish(code) {
  if (printed) return;
  printed = true;
  result.elapsedMs = Date.now() - t0;
  console.log(JSON.stringify(result));
  process.exit(code);
}

// Arguments: --key=value, and one optional positional (the playwright-core directory).
const opts = {};
const positional = [];
for (const a of process.argv.slice(2)) {
  const m = /^--([a-z0-9-]+)=(.*)$/s.exec(a);
  if (m) opts[m[1]] = m[2];
  else positional.push(a);
}
const num = (k, d) => (opts[k] === undefined ? d : Number(opts[k]));
const flag = (k, d) => (opts[k] === undefined ? d : opts[k] === "1" || opts[k] === "true");
const cfg = {
  url: opts.url,
  apiKey: opts["api-key"] ?? "devkey",
  apiSecret: opts["api-secret"] ?? "secret",
  room: opts.room ?? `sluice-room-${Math.random().toString(36).slice(2, 8)}`,
  participants: num("participants", 3),
  seconds: num("seconds", 8),
  simulcast: flag("simulcast", false),
  width: num("width", 640),
  height: num("height", 360),
  fps: num("fps", 15),
  codec: opts.codec ?? "vp8",
  singlePc: flag("single-pc", true),
  serverIce: flag("server-ice", false),
  connectTimeout: num("connect-timeout", 20),
  settle: num("settle", 20),
  lowerSize: flag("lower-size", false),
  roomService: flag("roomservice", false),
  trace: flag("trace", false),
  traceSdp: flag("trace-sdp", false),
  verbose: flag("verbose", false),
  pw: opts.pw ?? positional[positional.length - 1] ??
    join(here, "../console/node_modules/playwright-core"),
};
cfg.timeout = num("timeout", 45 + cfg.connectTimeout + cfg.settle + cfg.seconds + (cfg.roomService ? 30 : 0));
result.config = { ...cfg, apiSecret: undefined };
if (!cfg.url || !/^wss?:\/\//.test(cfg.url) || !(cfg.participants >= 1 && cfg.participants <= 8)) {
  result.error = "usage: --url=ws://HOST:PORT [--participants=1..8] ... (see the top of the script)";
  finish(2);
}

// The overall deadline: whatever hangs, the script prints what it has and exits.
const deadline = setTimeout(() => {
  result.error = `overall timeout of ${cfg.timeout} s`;
  finish(3);
}, cfg.timeout * 1000);

// The npm packages of this directory (scripts/test.sh installs them with `npm ci`).
let AccessToken, RoomServiceClient, proto;
const umdPath = join(here, "node_modules/livekit-client/dist/livekit-client.umd.js");
try {
  ({ AccessToken, RoomServiceClient } = await import(require.resolve("livekit-server-sdk")));
  proto = cfg.trace ? await import(require.resolve("@livekit/protocol")) : null;
} catch (e) {
  result.error = `npm packages missing (npm ci --prefix ${here}): ${e.message}`;
  finish(2);
}

async function token(identity) {
  const at = new AccessToken(cfg.apiKey, cfg.apiSecret, { identity, name: identity, ttl: "10m" });
  at.addGrant({ roomJoin: true, room: cfg.room, canPublish: true, canSubscribe: true, canPublishData: true });
  return at.toJwt();
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
// Console lines carry signalling URLs: keep tokens and the long join request out of the JSON.
const redact = (s) => s.replace(/(access_token|join_request)=[^&\s'"]+/g, "$1=<redacted>");
const trunc = (s, n = 300) => (s.length > n ? s.slice(0, n) + "…" : s);
const withTimeout = (p, ms, what) =>
  Promise.race([p, new Promise((_, rej) => setTimeout(() => rej(new Error(`${what}: no answer in ${ms} ms`)), ms))]);

// --- signalling trace (--trace=1): frames are captured in the page, decoded here ---------
const traces = [];
function b64ToBytes(s) {
  return Buffer.from(s.replace(/-/g, "+").replace(/_/g, "/"), "base64");
}
function summarizeMsg(obj) {
  // A compact, readable shape: the oneof case and a few fields worth seeing on the wire.
  const c = obj.message?.case;
  const v = obj.message?.value;
  const out = { case: c };
  if (!v) return out;
  if (c === "offer" || c === "answer") {
    out.sdpType = v.type; out.id = v.id;
    if (cfg.traceSdp) out.sdp = v.sdp;
    // Each m-section as mid:kind:direction (+simulcast when it has a=simulcast).
    out.media = v.sdp.split(/\r?\nm=/).slice(1).map((sec) => {
      const kind = sec.split(" ")[0];
      const mid = (/a=mid:(\S+)/.exec(sec) || [])[1];
      const dir = (/a=(sendrecv|sendonly|recvonly|inactive)/.exec(sec) || [])[1] || "-";
      return `${mid}:${kind}:${dir}${/a=simulcast:/.test(sec) ? ":simulcast" : ""}${/^\S+ 0 /.test(sec) ? ":rejected" : ""}`;
    }).join(" ");
  } else if (c === "trickle") {
    out.target = v.target; out.final = v.final;
    try { out.candidate = JSON.parse(v.candidateInit).candidate; } catch { out.candidate = v.candidateInit; }
  } else if (c === "join") {
    out.subscriberPrimary = v.subscriberPrimary; out.fastPublish = v.fastPublish;
    out.pingInterval = v.pingInterval; out.pingTimeout = v.pingTimeout;
    out.serverVersion = v.serverInfo?.version ?? v.serverVersion; out.protocol = v.serverInfo?.protocol;
    out.otherParticipants = (v.otherParticipants || []).map((p) => p.identity);
    out.iceServers = (v.iceServers || []).map((s) => s.urls).flat();
    out.sifTrailer = v.sifTrailer?.length;
    out.enabledPublishCodecs = (v.enabledPublishCodecs || []).map((x) => x.mime);
  } else if (c === "addTrack") {
    out.cid = v.cid; out.type = v.type; out.source = v.source; out.width = v.width; out.height = v.height;
    out.layers = (v.layers || []).map((l) => `${l.quality}:${l.width}x${l.height}`);
    out.simulcastCodecs = (v.simulcastCodecs || []).map((x) => `${x.codec}/${x.cid}`);
  } else if (c === "trackPublished") {
    out.cid = v.cid; out.sid = v.track?.sid; out.mimeType = v.track?.mimeType;
  } else if (c === "update") {
    out.participants = (v.participants || []).map((p) => `${p.identity}:${p.state}:${(p.tracks || []).length}t`);
  } else if (c === "speakersChanged") {
    out.speakers = (v.speakers || []).map((s) => s.sid);
  } else if (c === "ping" || c === "pong") {
    out.value = String(v);
  } else if (c === "pingReq" || c === "pongResp") {
    out.ts = String(v.timestamp ?? v.lastPingTimestamp ?? "");
  } else {
    out.value = trunc(JSON.stringify(v.toJson ? v.toJson() : v), 200);
  }
  return out;
}
function decodeFrame(p, f) {
  let obj;
  try {
    if (f.kind === "url") {
      const u = new URL(f.data);
      const e = { dir: "url", path: u.pathname, params: [...u.searchParams.keys()] };
      const jr = u.searchParams.get("join_request");
      if (jr) {
        const w = proto.WrappedJoinRequest.fromBinary(b64ToBytes(jr));
        const bytes = w.compression === 1 ? gunzipSync(Buffer.from(w.joinRequest)) : w.joinRequest;
        const j = proto.JoinRequest.fromBinary(new Uint8Array(bytes));
        e.joinRequest = {
          compression: w.compression, clientInfo: j.clientInfo?.toJson(),
          connectionSettings: j.connectionSettings?.toJson(), reconnect: j.reconnect,
          publisherOffer: j.publisherOffer ? summarizeMsg({ message: { case: "offer", value: j.publisherOffer } }) : null,
        };
      } else {
        e.query = Object.fromEntries([...u.searchParams].filter(([k]) => k !== "access_token"));
      }
      return e;
    }
    const bytes = Buffer.from(f.data, "base64");
    obj = f.dir === "send" ? proto.SignalRequest.fromBinary(bytes) : proto.SignalResponse.fromBinary(bytes);
    return { dir: f.dir, ...summarizeMsg(obj) };
  } catch (err) {
    return { dir: f.dir, undecodable: String(err), bytes: f.data.length };
  }
}

// --- the page side: runs inside each participant's page ----------------------------------
// Installed before the SDK; wraps WebSocket to capture signalling frames when tracing.
function initScript(trace) {
  window.__frames = [];
  if (!trace) return;
  const Native = window.WebSocket;
  const b64 = (buf) => { let s = ""; const a = new Uint8Array(buf); for (let i = 0; i < a.length; i++) s += String.fromCharCode(a[i]); return btoa(s); };
  window.WebSocket = class extends Native {
    constructor(url, protocols) {
      super(url, protocols);
      window.__frames.push({ t: performance.now(), kind: "url", data: String(url) });
      this.addEventListener("message", (ev) => {
        if (ev.data instanceof ArrayBuffer) window.__frames.push({ t: performance.now(), dir: "recv", data: b64(ev.data) });
        else window.__frames.push({ t: performance.now(), dir: "recv-text", data: btoa(String(ev.data)) });
      });
      this.addEventListener("close", (ev) => window.__frames.push({ t: performance.now(), kind: "close", code: ev.code, reason: ev.reason }));
    }
    send(data) {
      if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) {
        const buf = data instanceof ArrayBuffer ? data : data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength);
        window.__frames.push({ t: performance.now(), dir: "send", data: b64(buf) });
      }
      return super.send(data);
    }
  };
}

// Creates the Room, connects, publishes; resolves with what happened (never throws).
async function pageJoin(a) {
  const LK = window.LivekitClient;
  const H = (window.H = {
    identity: a.identity, errors: [], data: [], speakers: [], muted: [], disconnected: null,
    subscribed: 0, subscribeFailed: [], states: [], t0: performance.now(),
  });
  const err = (what, e) => H.errors.push(`${what}: ${e && e.message ? e.message : String(e)}`.slice(0, 300));
  const room = new LK.Room({
    adaptiveStream: false,
    dynacast: false,
    singlePeerConnection: a.singlePc,
    videoCaptureDefaults: { resolution: { width: a.width, height: a.height, frameRate: a.fps } },
    publishDefaults: { simulcast: a.simulcast, videoCodec: a.codec, backupCodec: false },
  });
  window.room = room;
  const E = LK.RoomEvent;
  room.on(E.ConnectionStateChanged, (s) => H.states.push(s));
  room.on(E.TrackSubscribed, (track) => {
    H.subscribed++;
    // Audio is only played out (and counted in totalSamplesReceived) from a media element.
    if (track.kind === "audio") document.body.appendChild(track.attach());
  });
  room.on(E.TrackSubscriptionFailed, (sid, p, reason) => H.subscribeFailed.push(`${p?.identity}/${sid}: ${reason}`));
  room.on(E.DataReceived, (payload, participant, kind, topic) => {
    H.data.push({ from: participant?.identity ?? null, text: new TextDecoder().decode(payload), kind, topic: topic ?? null });
  });
  room.on(E.ActiveSpeakersChanged, (speakers) => {
    for (const s of speakers) if (!H.speakers.includes(s.identity)) H.speakers.push(s.identity);
  });
  room.on(E.TrackMuted, (pub, participant) => {
    if (participant !== room.localParticipant) H.muted.push(`${participant.identity}/${pub.kind}`);
  });
  room.on(E.Disconnected, (reason) => { H.disconnected = reason === undefined ? "unknown" : reason; });
  room.on(E.MediaDevicesError, (e) => err("media devices", e));
  const out = { connected: false, published: false };
  try {
    const tc = performance.now();
    await room.connect(a.url, a.token, {
      autoSubscribe: true, websocketTimeout: a.connectTimeoutMs, peerConnectionTimeout: a.connectTimeoutMs,
      ...(a.serverIce ? {} : { rtcConfig: { iceServers: [] } }),
    });
    out.connected = true;
    out.connectMs = Math.round(performance.now() - tc);
  } catch (e) {
    err("connect", e);
    return out;
  }
  try {
    const tp = performance.now();
    await room.localParticipant.enableCameraAndMicrophone();
    out.published = true;
    out.publishMs = Math.round(performance.now() - tp);
  } catch (e) {
    err("publish", e);
  }
  return out;
}

// How far this participant has got: remote identities and subscribed tracks.
function pageProgress() {
  const room = window.room;
  if (!room) return { remotes: [], tracks: 0 };
  const remotes = [...room.remoteParticipants.values()];
  return {
    state: room.state,
    remotes: remotes.map((p) => p.identity),
    tracks: remotes.reduce((n, p) => n + [...p.trackPublications.values()].filter((t) => t.isSubscribed && t.track).length, 0),
  };
}

// Per remote participant: inbound-rtp of its video and audio as this participant receives them.
async function pageStats() {
  const room = window.room;
  const H = window.H;
  const inbound = {};
  for (const p of room ? room.remoteParticipants.values() : []) {
    const r = { tracks: [] };
    for (const pub of p.trackPublications.values()) {
      r.tracks.push({ kind: pub.kind, source: pub.source, sid: pub.trackSid, subscribed: pub.isSubscribed, muted: pub.isMuted, simulcasted: pub.simulcasted ?? null });
      const rx = pub.track?.receiver;
      if (!rx) continue;
      try {
        const report = await rx.getStats();
        const codecs = {};
        report.forEach((s) => { if (s.type === "codec") codecs[s.id] = s.mimeType; });
        report.forEach((s) => {
          if (s.type !== "inbound-rtp") return;
          if (s.kind === "video") {
            r.video = {
              framesDecoded: s.framesDecoded ?? 0, frameWidth: s.frameWidth ?? 0, frameHeight: s.frameHeight ?? 0,
              framesPerSecond: s.framesPerSecond ?? 0, packetsLost: s.packetsLost ?? 0, keyFramesDecoded: s.keyFramesDecoded ?? 0,
              nackCount: s.nackCount ?? 0, pliCount: s.pliCount ?? 0, codec: codecs[s.codecId] ?? null, bytesReceived: s.bytesReceived ?? 0,
            };
          } else if (s.kind === "audio") {
            r.audio = {
              totalSamplesReceived: s.totalSamplesReceived ?? 0, concealedSamples: s.concealedSamples ?? 0,
              concealmentEvents: s.concealmentEvents ?? 0, packetsReceived: s.packetsReceived ?? 0, packetsLost: s.packetsLost ?? 0,
              audioLevel: s.audioLevel ?? 0, codec: codecs[s.codecId] ?? null,
            };
          }
        });
      } catch (e) {
        H.errors.push(`getStats ${p.identity}/${pub.kind}: ${e.message}`);
      }
    }
    inbound[p.identity] = r;
  }
  const engine = room?.engine;
  const lp = room?.localParticipant;
  return {
    identity: H?.identity,
    state: room?.state ?? "none",
    states: H?.states ?? [],
    remotes: room ? [...room.remoteParticipants.keys()] : [],
    subscribedTracks: H?.subscribed ?? 0,
    subscribeFailed: H?.subscribeFailed ?? [],
    published: lp ? [...lp.trackPublications.values()].map((t) => ({ kind: t.kind, source: t.source, sid: t.trackSid, simulcasted: t.simulcasted ?? null })) : [],
    inbound,
    dataReceived: H?.data ?? [],
    activeSpeakers: H?.speakers ?? [],
    mutedSeen: H?.muted ?? [],
    disconnected: H?.disconnected ?? null,
    errors: H?.errors ?? [],
    server: room?.serverInfo ? { version: room.serverInfo.version, protocol: room.serverInfo.protocol, edition: room.serverInfo.edition } : null,
    subscriberPrimary: engine?.latestJoinResponse?.subscriberPrimary ?? null,
    usedV0Path: engine?.client?.useV0SignalPath ?? null,
    pingIntervalS: engine?.latestJoinResponse?.pingInterval ?? null,
  };
}

// --- the run ------------------------------------------------------------------------------
let browser;
const pages = [];
const clients = [];
try {
  const tl = Date.now();
  browser = await launchChromium(cfg.pw, { fakeMedia: true, showLocalIps: true });
  result.launchMs = Date.now() - tl;
  const html = "<!doctype html><html><head><meta charset=utf-8><title>sluice rooms</title></head><body></body></html>";
  for (let i = 0; i < cfg.participants; i++) {
    const identity = `p${i}`;
    const context = await browser.newContext();
    const origin = "http://localhost";
    // Chromium's Local Network Access checks treat the intercepted page as public and block
    // its requests to 127.0.0.1 (ERR_BLOCKED_BY_LOCAL_NETWORK_ACCESS_CHECKS) unless granted.
    await context.grantPermissions(["camera", "microphone", "local-network-access"], { origin });
    const page = await context.newPage();
    const c = { identity, console: [], pageErrors: [] };
    clients.push(c);
    page.on("console", (m) => {
      if (cfg.verbose) console.error(`${identity} ${m.type()}: ${m.text()}`);
      if ((m.type() === "warning" || m.type() === "error") && c.console.length < 40) c.console.push(`${m.type()}: ${trunc(redact(m.text()))}`);
    });
    page.on("pageerror", (e) => { if (c.pageErrors.length < 20) c.pageErrors.push(trunc(String(e))); });
    await page.route(`${origin}/rooms/${identity}.html`, (route) => route.fulfill({ status: 200, contentType: "text/html", body: html }));
    await page.addInitScript(initScript, cfg.trace);
    await page.goto(`${origin}/rooms/${identity}.html`, { timeout: 15000 });
    await page.addScriptTag({ path: umdPath });
    pages.push(page);
  }
  result.sdkVersion = await pages[0].evaluate(() => window.LivekitClient.version);

  // Everybody joins at once (as a real room does), each bounded.
  const joinArgs = async (i) => ({
    url: cfg.url, token: await token(`p${i}`), identity: `p${i}`, singlePc: cfg.singlePc, serverIce: cfg.serverIce,
    width: cfg.width, height: cfg.height, fps: cfg.fps, simulcast: cfg.simulcast, codec: cfg.codec,
    connectTimeoutMs: cfg.connectTimeout * 1000,
  });
  const tj = Date.now();
  const joins = await Promise.all(pages.map(async (page, i) => {
    const args = await joinArgs(i);
    return withTimeout(page.evaluate(pageJoin, args), cfg.connectTimeout * 1000 + 15000, `p${i} join`)
      .catch((e) => ({ connected: false, published: false, harness: String(e.message) }));
  }));
  joins.forEach((j, i) => Object.assign(clients[i], { join: j }));
  result.joinMs = Date.now() - tj;

  // Settle: every connected participant sees every other one with both its tracks.
  const want = cfg.participants - 1;
  const ts = Date.now();
  let progress = [];
  while (Date.now() - ts < cfg.settle * 1000) {
    progress = await Promise.all(pages.map((p) => withTimeout(p.evaluate(pageProgress), 5000, "progress").catch(() => ({ remotes: [], tracks: 0 }))));
    if (progress.every((p, i) => !joins[i].connected || (p.remotes.length >= want && p.tracks >= 2 * want))) break;
    await sleep(250);
  }
  result.settleMs = Date.now() - ts;
  result.settled = progress.every((p, i) => joins[i].connected && p.remotes.length >= want && p.tracks >= 2 * want);

  // The media window. p0 sends one reliable data message at its start; with --lower-size
  // p1 asks for a smaller p0 camera half-way.
  const tw = Date.now();
  const dataText = `hello from p0 at ${Date.now()}`;
  result.data = { sentBy: "p0", text: dataText, sent: false, error: null };
  if (joins[0].connected) {
    try {
      await withTimeout(pages[0].evaluate((t) => window.room.localParticipant.publishData(new TextEncoder().encode(t), { reliable: true, topic: "sluice" }), dataText), 10000, "publishData");
      result.data.sent = true;
    } catch (e) {
      result.data.error = trunc(String(e.message));
    }
  }
  const frameWidthOf = (page, from) => page.evaluate(async (from) => {
    const p = window.room?.remoteParticipants.get(from);
    const pub = p && [...p.trackPublications.values()].find((t) => t.kind === "video");
    if (!pub?.track?.receiver) return null;
    let w = null;
    (await pub.track.receiver.getStats()).forEach((s) => { if (s.type === "inbound-rtp") w = { frameWidth: s.frameWidth ?? 0, frameHeight: s.frameHeight ?? 0, framesDecoded: s.framesDecoded ?? 0 }; });
    return w;
  }, from);
  if (cfg.lowerSize && pages.length >= 2) {
    await sleep((cfg.seconds * 1000) / 2);
    const ls = (result.lowerSize = { subscriber: "p1", publisher: "p0", asked: { width: 160, height: 90 } });
    try {
      ls.before = await withTimeout(frameWidthOf(pages[1], "p0"), 5000, "stats");
      ls.called = await withTimeout(pages[1].evaluate(() => {
        const p = window.room?.remoteParticipants.get("p0");
        const pub = p && [...p.trackPublications.values()].find((t) => t.kind === "video");
        if (!pub) return false;
        pub.setVideoDimensions({ width: 160, height: 90 });
        return true;
      }), 5000, "setVideoDimensions");
    } catch (e) {
      ls.error = trunc(String(e.message));
    }
  }
  const left = cfg.seconds * 1000 - (Date.now() - tw);
  if (left > 0) await sleep(left);
  result.windowMs = Date.now() - tw;
  if (result.lowerSize) {
    result.lowerSize.after = await withTimeout(frameWidthOf(pages[1], "p0"), 5000, "stats").catch((e) => ({ error: String(e.message) }));
  }

  // Read everything.
  const stats = await Promise.all(pages.map((p, i) => withTimeout(p.evaluate(pageStats), 10000, `p${i} stats`).catch((e) => ({ harness: String(e.message) }))));
  stats.forEach((s, i) => Object.assign(clients[i], s));

  // RoomService: list, mute p0's microphone, remove the last participant.
  if (cfg.roomService) {
    const rs = (result.roomService = {});
    const http = cfg.url.replace(/^ws/, "http");
    const svc = new RoomServiceClient(http, cfg.apiKey, cfg.apiSecret);
    const step = async (name, fn) => {
      try { rs[name] = await withTimeout(fn(), 10000, name); } catch (e) { rs[name] = { error: trunc(String(e.message)) }; }
    };
    await step("listRooms", async () => (await svc.listRooms()).map((r) => ({ name: r.name, numParticipants: r.numParticipants, numPublishers: r.numPublishers })));
    await step("listParticipants", async () => (await svc.listParticipants(cfg.room)).map((p) => ({ identity: p.identity, state: p.state, tracks: (p.tracks || []).map((t) => `${t.type}:${t.sid}`) })));
    const mic = clients[0].published?.find((t) => t.kind === "audio");
    if (mic && pages.length >= 2) {
      await step("mutePublishedTrack", async () => {
        const t = await svc.mutePublishedTrack(cfg.room, "p0", mic.sid, true);
        return { sid: t.sid, muted: t.muted };
      });
      const tm = Date.now();
      let seen = [];
      while (Date.now() - tm < 5000) {
        seen = await Promise.all(pages.slice(1).map((p) => p.evaluate(() => window.H?.muted ?? []).catch(() => [])));
        if (seen.every((s) => s.includes("p0/audio"))) break;
        await sleep(200);
      }
      rs.mutedSeenBy = seen.map((s, i) => (s.includes("p0/audio") ? `p${i + 1}` : null)).filter(Boolean);
      rs.mutedSeenMs = Date.now() - tm;
    }
    const last = `p${pages.length - 1}`;
    await step("removeParticipant", async () => { await svc.removeParticipant(cfg.room, last); return { identity: last }; });
    const tr = Date.now();
    let gone = null;
    while (Date.now() - tr < 5000) {
      gone = await pages[pages.length - 1].evaluate(() => window.H?.disconnected ?? null).catch(() => null);
      if (gone !== null) break;
      await sleep(200);
    }
    rs.removedDisconnected = gone;
    rs.removedDisconnectedMs = Date.now() - tr;
  }

  if (cfg.trace) {
    result.trace = [];
    for (let i = 0; i < pages.length; i++) {
      const frames = await pages[i].evaluate(() => window.__frames).catch(() => []);
      const seq = [];
      for (const f of frames) {
        const d = f.kind === "close" ? { dir: "close", code: f.code, reason: f.reason } : decodeFrame(i, f);
        d.t = Math.round(f.t);
        process.stderr.write(`trace ${JSON.stringify({ p: `p${i}`, ...d })}\n`);
        seq.push(d.dir === "url" ? `url ${d.path}` : `${d.dir} ${d.case ?? ""}`);
      }
      result.trace.push({ identity: `p${i}`, messages: seq.slice(0, 60), total: seq.length });
    }
  }

  // Summary: the figures a test asserts on first.
  const ids = clients.map((c) => c.identity);
  result.summary = {
    allConnected: clients.every((c) => c.join?.connected && c.state === "connected"),
    allPublished: clients.every((c) => c.join?.published),
    allSeeEveryone: clients.every((c) => ids.filter((x) => x !== c.identity).every((x) => (c.remotes || []).includes(x))),
    minVideoFramesDecoded: Math.min(...clients.flatMap((c) => ids.filter((x) => x !== c.identity).map((x) => c.inbound?.[x]?.video?.framesDecoded ?? 0))),
    minAudioSamplesReceived: Math.min(...clients.flatMap((c) => ids.filter((x) => x !== c.identity).map((x) => c.inbound?.[x]?.audio?.totalSamplesReceived ?? 0))),
    dataReceivedByAll: clients.slice(1).every((c) => (c.dataReceived || []).some((d) => d.text === dataText && d.from === "p0")),
    activeSpeakersSeenByAll: clients.every((c) => (c.activeSpeakers || []).length > 0),
    errors: clients.reduce((n, c) => n + (c.errors?.length ?? 0) + c.pageErrors.length, 0),
  };
  if (ids.length === 1) { result.summary.minVideoFramesDecoded = null; result.summary.minAudioSamplesReceived = null; }
  result.clients = clients;
  result.ok = true;
} catch (e) {
  result.error = trunc(String(e && e.stack ? e.stack : e), 2000);
  result.clients = clients;
}

// Leave politely (bounded), then close the browser (bounded).
await Promise.all(pages.map((p) => withTimeout(p.evaluate(() => window.room?.disconnect()), 3000, "disconnect").catch(() => {})));
if (browser) await withTimeout(browser.close(), 10000, "browser close").catch(() => {});
clearTimeout(deadline);
finish(result.ok ? 0 : 1);
