// The Sluice console: polls the REST API once a second, keeps five minutes of history per
// stream for the charts, and renders the stream list and the selected stream's detail.

import * as api from "./api.js";
import * as fmt from "./format.js";
import { LineChart, WINDOW_MS } from "./chart.js";
import { createPlayer } from "./player.js";

/** Poll period of the API, in milliseconds. */
const POLL_MS = 1000;
/** History samples kept per stream (five minutes at one a second, plus slack). */
const MAX_SAMPLES = 360;
/** Streams whose history is kept at most (the oldest-seen are dropped first). */
const MAX_TRACKED_STREAMS = 200;
const PROTOCOLS = [
  ["rtmp", "RTMP", "#58a6ff"],
  ["http-flv", "HTTP-FLV", "#3fb950"],
  ["ws-flv", "WS-FLV", "#d29922"],
  ["hls", "HLS", "#bc8cff"],
  ["webrtc", "WebRTC", "#f778ba"],
];

const $ = (sel) => document.querySelector(sel);
const el = (tag, props = {}, ...children) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "class") e.className = v;
    else if (k === "dataset") Object.assign(e.dataset, v);
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
};

/**
 * Updates `container`'s children to one per item, reusing the element of an item whose key
 * is unchanged (so a button under the pointer survives the once-a-second refresh).
 */
function keyed(container, items, keyOf, create, update) {
  const old = new Map([...container.children].filter((c) => c.dataset.key != null).map((c) => [c.dataset.key, c]));
  const next = items.map((it) => {
    const k = String(keyOf(it));
    let e = old.get(k);
    if (!e) {
      e = create(it);
      e.dataset.key = k;
    }
    update(e, it);
    return e;
  });
  const same = next.length === container.children.length && next.every((e, i) => container.children[i] === e);
  if (!same) container.replaceChildren(...next);
}

const state = {
  server: null,
  streams: [],
  sessions: [],
  selected: decodeURIComponent(location.hash.replace(/^#\/?/, "")) || null,
  history: new Map(), // key -> { samples: [{t, bytes, viewers, latency}], seen }
  cpu: null, // {t, seconds}
  player: null,
  playerKey: null,
  /** Preview protocol, "hls" or "webrtc"; remembered in localStorage. */
  previewMode: readPreviewMode(),
  charts: null,
};

// ---- history ---------------------------------------------------------------------------

function record(now, streams) {
  for (const s of streams) {
    let h = state.history.get(s.key);
    if (!h) {
      h = { samples: [] };
      state.history.set(s.key, h);
    }
    h.seen = now;
    const latency = typeof s.latency_ms === "number" ? s.latency_ms : null;
    h.samples.push({ t: now, bytes: s.ingest.bytes, viewers: { ...s.viewers }, latency });
    while (h.samples.length > MAX_SAMPLES || (h.samples.length && h.samples[0].t < now - WINDOW_MS - 5000)) h.samples.shift();
  }
  for (const [key, h] of state.history) if (h.seen < now - WINDOW_MS) state.history.delete(key);
  while (state.history.size > MAX_TRACKED_STREAMS) {
    const oldest = [...state.history].sort((a, b) => a[1].seen - b[1].seen)[0][0];
    state.history.delete(oldest);
  }
}

/** [t, bits per second] between consecutive samples (none across a counter reset). */
function bitrateSeries(samples) {
  const out = [];
  for (let i = 1; i < samples.length; i++) {
    const a = samples[i - 1];
    const b = samples[i];
    const dt = (b.t - a.t) / 1000;
    if (dt > 0 && b.bytes >= a.bytes) out.push([b.t, ((b.bytes - a.bytes) * 8) / dt]);
  }
  return out;
}

function currentBitrate(key) {
  const s = bitrateSeries(state.history.get(key)?.samples || []).slice(-3);
  return s.length ? s.reduce((sum, [, v]) => sum + v, 0) / s.length : null;
}

// ---- notices and confirmation -----------------------------------------------------------

function notify(text, kind = "error") {
  const n = $("#notice");
  n.dataset.kind = kind;
  n.querySelector(".text").textContent = text;
  n.hidden = false;
  clearTimeout(notify.timer);
  notify.timer = setTimeout(() => (n.hidden = true), kind === "error" ? 10000 : 3000);
}

function confirmAction(text, label) {
  const d = $("#confirm");
  $("#confirm-text").textContent = text;
  $("#confirm-ok").textContent = label;
  d.returnValue = "";
  d.showModal();
  return new Promise((resolve) => d.addEventListener("close", () => resolve(d.returnValue === "ok"), { once: true }));
}

async function copy(text, button) {
  try {
    if (navigator.clipboard && window.isSecureContext) await navigator.clipboard.writeText(text);
    else {
      const ta = el("textarea", { readonly: "", class: "offscreen" });
      ta.value = text;
      document.body.append(ta);
      ta.select();
      const ok = document.execCommand("copy");
      ta.remove();
      if (!ok) throw new Error("the browser refused");
    }
    button.textContent = "Copied";
    button.classList.add("done");
    setTimeout(() => {
      button.textContent = "Copy";
      button.classList.remove("done");
    }, 1200);
  } catch (e) {
    notify(`Copy failed: ${e.message}`);
  }
}

// ---- rendering ---------------------------------------------------------------------------

function port(addr) {
  const m = /:(\d+)$/.exec(addr || "");
  return m ? m[1] : "";
}

function host() {
  const h = location.hostname || "localhost";
  return h.includes(":") ? `[${h}]` : h;
}

function renderServer(metrics, now) {
  const s = state.server;
  const set = (f, v) => ($(`#server [data-field="${f}"]`).textContent = v);
  if (s) {
    set("version", s.version);
    set("uptime", fmt.duration(s.uptime_seconds));
    set("rtmp", s.listeners.rtmp);
    set("http", s.listeners.http);
  }
  set("viewers", String(state.streams.reduce((n, x) => n + fmt.total(x.viewers), 0)));
  const cpuSec = metrics?.get("sluice_process_cpu_seconds");
  if (cpuSec != null) {
    if (state.cpu && now > state.cpu.t) set("cpu", `${(((cpuSec - state.cpu.seconds) / ((now - state.cpu.t) / 1000)) * 100).toFixed(1)} %`);
    state.cpu = { t: now, seconds: cpuSec };
  }
  const rss = metrics?.get("sluice_process_resident_memory_bytes");
  if (rss != null) set("rss", fmt.bytes(rss));
  const rtmp = s ? port(s.listeners.rtmp) : "1935";
  $("#publish-hint").textContent = `ffmpeg -re -i input.mp4 -c copy -f flv rtmp://${host()}:${rtmp}/live/stream`;
}

function renderList() {
  const list = $("#stream-list");
  $("#stream-count").textContent = String(state.streams.length);
  $("#streams-empty").hidden = state.streams.length > 0;
  keyed(
    list,
    state.streams,
    (s) => s.key,
    (s) => el("li", {}, el("button", { type: "button", class: "stream-item", dataset: { streamKey: s.key }, onclick: () => select(s.key) })),
    (li, s) => {
      const n = fmt.total(s.viewers);
      const b = li.firstChild;
      b.classList.toggle("selected", s.key === state.selected);
      b.replaceChildren(
        el("span", { class: "row1" }, el("span", { class: `dot ${s.live ? "live" : "idle"}` }), el("span", { class: "key" }, s.key)),
        el("span", { class: "row2 muted" }, `${fmt.video(s.video)} · ${fmt.audio(s.audio)}`),
        el("span", { class: "row3" }, el("span", {}, fmt.bitrate(currentBitrate(s.key))), el("span", { class: "viewers" }, `${n} viewer${n === 1 ? "" : "s"}`)),
      );
    },
  );
}

function ensureCharts() {
  if (state.charts) return state.charts;
  state.charts = {
    bitrate: new LineChart($("#chart-bitrate"), { series: [{ name: "ingest", color: "#58a6ff" }], format: (v) => `${fmt.compact(v)}b/s` }),
    viewers: new LineChart($("#chart-viewers"), {
      series: PROTOCOLS.map(([, name, color]) => ({ name, color })),
      integer: true,
      minMax: 2,
    }),
    latency: new LineChart($("#chart-latency"), { series: [{ name: "latency", color: "#bc8cff" }], format: (v) => `${fmt.compact(v)}ms` }),
  };
  return state.charts;
}

function renderCharts(key, now) {
  const charts = ensureCharts();
  const samples = state.history.get(key)?.samples || [];
  charts.bitrate.setData(now, [bitrateSeries(samples)], "Collecting samples…");
  charts.viewers.setData(now, PROTOCOLS.map(([p]) => samples.map((x) => [x.t, x.viewers[p] ?? 0])), "Collecting samples…");
  const lat = samples.filter((x) => x.latency != null).map((x) => [x.t, x.latency]);
  charts.latency.setData(now, [lat], "No data yet\nThe server does not report latency for this stream.");
}

function fact(name, value) {
  return [el("dt", {}, name), el("dd", {}, value)];
}

function renderFacts(s) {
  const v = s.video;
  const fps = v && (v.fps ?? v.frame_rate);
  const rows = [
    fact("Video", fmt.video(v)),
    fact("Frame rate", fps ? `${+Number(fps).toFixed(2)} fps` : "—"),
    fact("Audio", fmt.audio(s.audio)),
    fact("Bitrate", fmt.bitrate(currentBitrate(s.key))),
    fact("Keyframes", s.keyframe_interval_ms ? `every ${(s.keyframe_interval_ms / 1000).toFixed(2)} s` : "—"),
    fact("Ingested", `${fmt.bytes(s.ingest.bytes)} · ${s.ingest.frames} frames`),
    fact("GOP cache", `${s.gop.frames} frame${s.gop.frames === 1 ? "" : "s"} · ${fmt.bytes(s.gop.bytes)}`),
    fact("Viewers", PROTOCOLS.map(([p, n]) => `${n} ${s.viewers[p] ?? 0}`).join(" · ")),
    fact("Sent", fmt.bytes(fmt.total(s.egress_bytes))),
    fact("Dropped", String(s.dropped_frames)),
  ];
  $("#facts").replaceChildren(...rows.flat());
}

function renderUrls(s) {
  const [app, ...rest] = s.key.split("/");
  const name = rest.join("/");
  const h = host();
  const rtmp = port(state.server?.listeners.rtmp) || "1935";
  const http = port(state.server?.listeners.http) || location.port || "80";
  const rows = [
    ["RTMP publish", `rtmp://${h}:${rtmp}/${app}/${name}`],
    ["RTMP play", `rtmp://${h}:${rtmp}/${app}/${name}`],
    ["HTTP-FLV", `http://${h}:${http}/${app}/${name}.flv`],
    ["WS-FLV", `ws://${h}:${http}/${app}/${name}.flv`],
    ["HLS", `http://${h}:${http}/${app}/${name}/index.m3u8`],
    ["ffmpeg", `ffmpeg -re -i input.mp4 -c copy -f flv rtmp://${h}:${rtmp}/${app}/${name}`],
  ];
  const tbody = $("#urls tbody");
  // Rebuild only when a URL changes, so a click on Copy is never lost to a re-render.
  const sig = rows.map((r) => r[1]).join("\n");
  if (tbody.dataset.sig === sig) return;
  tbody.dataset.sig = sig;
  tbody.replaceChildren(
    ...rows.map(([label, url]) => {
      const btn = el("button", { type: "button", class: "ghost small" }, "Copy");
      btn.addEventListener("click", () => copy(url, btn));
      return el("tr", {}, el("th", {}, label), el("td", {}, el("code", {}, url)), el("td", { class: "right" }, btn));
    }),
  );
}

function renderSessions(key) {
  const mine = state.sessions.filter((x) => x.stream === key);
  $("#session-count").textContent = String(mine.length);
  const tbody = $("#sessions tbody");
  if (!mine.length) {
    tbody.replaceChildren(el("tr", {}, el("td", { colspan: "8", class: "muted center" }, "No sessions")));
    return;
  }
  keyed(
    tbody,
    mine,
    (x) => x.id,
    (x) => {
      const kick = el("button", { type: "button", class: "danger small", dataset: { kick: x.id } }, "Kick");
      kick.addEventListener("click", () => kickSession(x, kick));
      const cells = Array.from({ length: 7 }, () => el("td"));
      return el("tr", { dataset: { sessionId: x.id, kind: x.kind } }, ...cells, el("td", { class: "right" }, kick));
    },
    (tr, x) => {
      const c = tr.children;
      c[0].className = "mono";
      c[0].textContent = x.id;
      c[1].replaceChildren(el("span", { class: `tag ${x.kind}` }, x.kind));
      c[2].textContent = x.protocol;
      c[3].className = "mono";
      c[3].textContent = x.remote || "—";
      c[4].textContent = fmt.duration(x.duration_seconds);
      c[5].textContent = fmt.bytes(x.bytes);
      c[6].textContent = String(x.dropped_frames);
    },
  );
}

function renderDetail(now) {
  const s = state.streams.find((x) => x.key === state.selected);
  $("#detail").hidden = !s;
  $("#no-selection").hidden = !!s;
  if (!s) {
    $("#no-selection-text").textContent = state.selected
      ? `Stream ${state.selected} is not on the server (it ended or has not started). Pick another one.`
      : "Select a stream to see its preview, charts, URLs and sessions.";
    // A stream that ended took its sessions with it: nothing to DELETE on the server.
    stopPlayer({ gone: !!state.selected });
    return;
  }
  $("#d-key").textContent = s.key;
  $("#d-publisher").textContent = s.publisher ? `published over ${s.publisher.protocol.toUpperCase()} from ${s.publisher.remote}` : "no publisher connected";
  const live = $("#d-live");
  live.textContent = s.live ? "live" : "idle";
  live.dataset.live = String(s.live);
  renderFacts(s);
  renderCharts(s.key, now);
  renderUrls(s);
  renderSessions(s.key);
  if (state.playerKey !== s.key) startPlayer(s);
}

// ---- player ------------------------------------------------------------------------------

function stopPlayer(opts = {}) {
  state.player?.stop(opts);
  state.player = null;
  state.playerKey = null;
}

function readPreviewMode() {
  try {
    return localStorage.getItem("sluice.previewMode") === "webrtc" ? "webrtc" : "hls";
  } catch {
    return "hls";
  }
}

function setPreviewMode(mode) {
  state.previewMode = mode;
  try {
    localStorage.setItem("sluice.previewMode", mode);
  } catch {}
  for (const b of document.querySelectorAll(".preview-modes .mode")) {
    b.setAttribute("aria-pressed", String(b.dataset.mode === mode));
  }
  const s = state.streams.find((x) => x.key === state.playerKey);
  if (s) startPlayer(s);
}

for (const b of document.querySelectorAll(".preview-modes .mode")) {
  b.setAttribute("aria-pressed", String(b.dataset.mode === state.previewMode));
  b.addEventListener("click", () => setPreviewMode(b.dataset.mode));
}

function startPlayer(s) {
  stopPlayer();
  const [app, ...rest] = s.key.split("/");
  const status = $("#video-status");
  state.playerKey = s.key;
  state.player = createPlayer($("#video"), {
    app,
    name: rest.join("/"),
    mode: state.previewMode,
    onStatus: (text, st) => {
      status.textContent = text;
      status.dataset.state = st;
    },
  });
  state.player.start();
}

// ---- actions -----------------------------------------------------------------------------

function select(key) {
  state.selected = key;
  history.replaceState(null, "", `#/${key}`);
  render(Date.now());
}

async function kickSession(x, button) {
  const what = `${x.kind} ${x.id} (${x.protocol}${x.remote ? ` from ${x.remote}` : ""})`;
  if (!(await confirmAction(`Kick ${what}? It is disconnected now.`, "Kick"))) return;
  button.disabled = true;
  try {
    await api.kickSession(x.id);
    notify(`Kicked ${what}.`, "info");
    await poll();
  } catch (e) {
    notify(`Could not kick ${what}: ${e.message}`);
    button.disabled = false;
  }
}

async function stopStream() {
  const key = state.selected;
  if (!key) return;
  if (!(await confirmAction(`Stop publishing ${key}? The publisher is disconnected and every viewer is told the stream ended.`, "Stop publishing"))) return;
  const b = $("#stop");
  b.disabled = true;
  try {
    await api.stopStream(key);
    notify(`Stopped ${key}.`, "info");
    await poll();
  } catch (e) {
    notify(`Could not stop ${key}: ${e.message}`);
  } finally {
    b.disabled = false;
  }
}

// ---- polling -----------------------------------------------------------------------------

function setConn(ok, text) {
  const c = $("#conn");
  c.dataset.state = ok ? "ok" : "down";
  c.querySelector(".label").textContent = text;
}

function render(now) {
  renderList();
  renderDetail(now);
}

let polling = false;
async function poll() {
  if (polling) return;
  polling = true;
  try {
    const [server, streams, sessions, metrics] = await Promise.allSettled([api.server(), api.streams(), api.sessions(), api.metrics()]);
    const now = Date.now();
    if (streams.status === "rejected") {
      const status = streams.reason.status;
      if (status === 401) showLogin(api.token() ? "The API token was refused." : "");
      else if (status === 403 && streams.reason.code === "api_token_required") {
        notify(streams.reason.message);
      }
      setConn(false, status === 0 ? "offline" : status === 401 ? "login needed" : "API error");
      return;
    }
    setConn(true, "live");
    if (server.status === "fulfilled") state.server = server.value;
    state.streams = streams.value.items;
    if (sessions.status === "fulfilled") state.sessions = sessions.value.items;
    record(now, state.streams);
    if (!state.selected && state.streams.length) {
      state.selected = state.streams[0].key;
    }
    renderServer(metrics.status === "fulfilled" ? metrics.value : null, now);
    render(now);
  } finally {
    polling = false;
  }
}

/** Shows the login form (the API answered 401: auth.api_token is set). */
function showLogin(message) {
  const d = $("#login");
  if (d.open) return;
  $("#login-error").textContent = message;
  $("#login-token").value = "";
  d.showModal();
}

$("#login").addEventListener("close", () => {
  if ($("#login").returnValue === "ok") {
    api.setToken($("#login-token").value.trim());
    poll();
  }
});

$("#stop").addEventListener("click", stopStream);
$("#notice .close").addEventListener("click", () => ($("#notice").hidden = true));
window.addEventListener("hashchange", () => select(decodeURIComponent(location.hash.replace(/^#\/?/, ""))));
poll();
setInterval(poll, POLL_MS);
