// Preview players: HLS (fMP4 through Media Source Extensions) and WebRTC (WHEP). Both have the
// same small interface:
//
//   const p = createPlayer(video, { app, name, mode: "hls" | "webrtc", codecs, onStatus });
//   p.start();   // begins fetching and playing; reports progress through onStatus(text, state)
//   p.stop();    // stops fetching, releases the media element
//
// `state` is one of "loading", "waiting" (nothing to play yet; retrying), "playing", "error".

/** Codecs assumed when neither the playlist nor the init segment names them. */
export const DEFAULT_CODECS = "avc1.42E01E,mp4a.40.2";
/** Seconds of media kept behind the playhead before older buffer is removed. */
const KEEP_BEHIND_S = 20;
/** When the playhead falls this many seconds behind the buffered live edge, it jumps ahead. */
const MAX_LAG_S = 8;
/** Retry delays (ms) while the stream has no HLS playlist yet. */
const RETRY_MS = [1000, 2000, 3000, 5000];
/** Segments fetched per playlist refresh at most (bounds work after a stall). */
const MAX_SEGMENTS_PER_REFRESH = 4;

/** How often the WebRTC preview reads its receiver statistics, in milliseconds. */
const WHEP_STATS_MS = 1000;
/** Longest wait for ICE and DTLS to connect before the WebRTC preview reports an error. */
const WHEP_CONNECT_MS = 15000;

/** Picks a player for a stream: WebRTC (WHEP) when `opts.mode` is "webrtc", else HLS. */
export function createPlayer(video, opts) {
  const base = `/${encodeURIComponent(opts.app)}/${encodeURIComponent(opts.name)}`;
  if (opts.mode === "webrtc") return new WhepPlayer(video, `${base}/whep`, opts);
  return new HlsPlayer(video, `${base}/index.m3u8`, opts);
}

/**
 * Plays a stream over WebRTC (WHEP, draft-ietf-wish-whep) with the browser's own
 * RTCPeerConnection: one POST with the offer, the answer comes back with the resource URL,
 * and stop() DELETEs the resource so the server frees the session at once.
 */
export class WhepPlayer {
  constructor(video, url, opts = {}) {
    this.video = video;
    this.url = new URL(url, location.href).href;
    this.onStatus = opts.onStatus || (() => {});
    this.pc = null;
    this.resource = null;
    this.timer = null;
    this.running = false;
  }

  start() {
    if (this.running) return;
    this.running = true;
    this.run().catch((e) => {
      if (this.running) this.onStatus(`WebRTC preview failed: ${e.message}`, "error");
    });
  }

  /** Stops playing; `gone: true` when the stream ended (the server freed the session). */
  stop({ gone = false } = {}) {
    this.running = false;
    clearInterval(this.timer);
    this.timer = null;
    this.pc?.close();
    this.pc = null;
    if (this.resource && !gone) fetch(this.resource, { method: "DELETE" }).catch(() => {});
    this.resource = null;
    this.video.pause();
    this.video.srcObject = null;
  }

  async run() {
    if (!("RTCPeerConnection" in window)) {
      this.onStatus("This browser has no WebRTC: no preview.", "error");
      return;
    }
    this.onStatus("Connecting over WebRTC…", "loading");
    const pc = (this.pc = new RTCPeerConnection());
    pc.addTransceiver("video", { direction: "recvonly" });
    pc.addTransceiver("audio", { direction: "recvonly" });
    const media = new MediaStream();
    pc.ontrack = (e) => {
      media.addTrack(e.track);
      if (this.video.srcObject !== media) this.video.srcObject = media;
    };
    await pc.setLocalDescription(await pc.createOffer());
    const r = await fetch(this.url, {
      method: "POST",
      headers: { "Content-Type": "application/sdp" },
      body: pc.localDescription.sdp,
    });
    if (!this.running) return;
    if (r.status !== 201) {
      let why = `HTTP ${r.status}`;
      try {
        why = (await r.json()).message || why;
      } catch {}
      this.onStatus(`WebRTC: ${why}`, r.status === 404 ? "waiting" : "error");
      return;
    }
    const location = r.headers.get("Location");
    if (location) this.resource = new URL(location, this.url).href;
    await pc.setRemoteDescription({ type: "answer", sdp: await r.text() });
    const started = Date.now();
    let last = 0;
    this.timer = setInterval(async () => {
      if (!this.running || !this.pc) return;
      const state = pc.connectionState;
      if (state === "failed" || (state !== "connected" && Date.now() - started > WHEP_CONNECT_MS)) {
        this.onStatus(`WebRTC connection ${state}`, "error");
        return;
      }
      let frames = 0;
      let rtt = null;
      (await pc.getStats()).forEach((s) => {
        if (s.type === "inbound-rtp" && s.kind === "video") frames = s.framesDecoded || 0;
        if (s.type === "candidate-pair" && s.nominated && s.currentRoundTripTime != null) rtt = s.currentRoundTripTime;
      });
      if (frames > 0 && this.video.paused) {
        this.video.muted = true;
        this.video.play().catch((e) => this.onStatus(`Autoplay blocked: ${e.message}`, "error"));
      }
      const rate = Math.max(0, frames - last) / (WHEP_STATS_MS / 1000);
      last = frames;
      const rttText = rtt == null ? "" : ` · RTT ${Math.round(rtt * 1000)} ms`;
      if (frames > 0) this.onStatus(`WebRTC · ${rate.toFixed(0)} fps · ${frames} frames${rttText}`, "playing");
      else this.onStatus(`WebRTC ${state}…`, "loading");
    }, WHEP_STATS_MS);
  }
}

/** Parses an RFC 8216 playlist (media or multivariant) relative to `base`. */
export function parsePlaylist(text, base) {
  const lines = text.split(/\r?\n/).map((l) => l.trim());
  if (lines[0] !== "#EXTM3U") throw new Error("not an M3U8 playlist");
  const pl = { variants: [], segments: [], targetDuration: 2, mediaSequence: 0, map: null, ended: false };
  let pendingDuration = null;
  let pendingVariant = null;
  let seq = 0;
  for (const line of lines.slice(1)) {
    if (!line) continue;
    if (line.startsWith("#EXT-X-TARGETDURATION:")) pl.targetDuration = Number(line.split(":")[1]) || 2;
    else if (line.startsWith("#EXT-X-MEDIA-SEQUENCE:")) {
      pl.mediaSequence = Number(line.split(":")[1]) || 0;
      seq = pl.mediaSequence;
    } else if (line.startsWith("#EXT-X-MAP:")) {
      const uri = attr(line, "URI");
      if (uri) pl.map = new URL(uri, base).href;
    } else if (line.startsWith("#EXTINF:")) pendingDuration = parseFloat(line.slice(8)) || 0;
    else if (line.startsWith("#EXT-X-STREAM-INF:")) pendingVariant = { codecs: attr(line, "CODECS") };
    else if (line === "#EXT-X-ENDLIST") pl.ended = true;
    else if (!line.startsWith("#")) {
      const uri = new URL(line, base).href;
      if (pendingVariant) {
        pl.variants.push({ ...pendingVariant, uri });
        pendingVariant = null;
      } else if (pendingDuration != null) {
        pl.segments.push({ uri, duration: pendingDuration, seq });
        seq += 1;
        pendingDuration = null;
      }
    }
  }
  return pl;
}

function attr(line, name) {
  const m = new RegExp(`[:,]${name}=("([^"]*)"|[^,]*)`).exec(line);
  return m ? (m[2] ?? m[1]) : null;
}

/** Reads the codecs string (RFC 6381) out of an fMP4 init segment, or null. */
export function codecsFromInit(buf) {
  const u8 = new Uint8Array(buf);
  const dv = new DataView(u8.buffer, u8.byteOffset, u8.byteLength);
  const found = [];
  const hex = (b) => b.toString(16).padStart(2, "0").toUpperCase();
  const walk = (start, end, depth) => {
    let p = start;
    while (p + 8 <= end && depth < 12) {
      const size = dv.getUint32(p);
      const type = String.fromCharCode(u8[p + 4], u8[p + 5], u8[p + 6], u8[p + 7]);
      if (size < 8 || p + size > end) return;
      const body = p + 8;
      if (["moov", "trak", "mdia", "minf", "stbl"].includes(type)) walk(body, p + size, depth + 1);
      else if (type === "stsd") walk(body + 8, p + size, depth + 1);
      else if (type === "avc1" || type === "avc3") {
        // Visual sample entry: 78 bytes of fields, then child boxes (avcC).
        walk(body + 78, p + size, depth + 1);
        const avcC = found.find((f) => f.avcC && !f.used);
        if (avcC) {
          avcC.used = true;
          found.push({ codec: `${type}.${avcC.avcC}` });
        } else found.push({ codec: `${type}.42E01E` });
      } else if (type === "avcC" && body + 4 <= p + size) {
        found.push({ avcC: hex(u8[body + 1]) + hex(u8[body + 2]) + hex(u8[body + 3]) });
      } else if (type === "hvc1" || type === "hev1") found.push({ codec: `${type}.1.6.L93.B0` });
      else if (type === "mp4a") found.push({ codec: "mp4a.40.2" });
      else if (type === "Opus") found.push({ codec: "opus" });
      p += size;
    }
  };
  try {
    walk(0, u8.byteLength, 0);
  } catch {
    return null;
  }
  const codecs = found.filter((f) => f.codec).map((f) => f.codec);
  return codecs.length ? codecs.join(",") : null;
}

/** Plays a live HLS (fMP4) stream from its live edge through Media Source Extensions. */
export class HlsPlayer {
  constructor(video, url, opts = {}) {
    this.video = video;
    this.url = new URL(url, location.href).href;
    this.codecs = opts.codecs || null;
    this.onStatus = opts.onStatus || (() => {});
    this.abort = null;
    this.running = false;
    this.objectUrl = null;
  }

  start() {
    if (this.running) return;
    this.running = true;
    this.abort = new AbortController();
    this.run(this.abort.signal).catch((e) => {
      if (e.name !== "AbortError" && this.running) this.onStatus(`Preview failed: ${e.message}`, "error");
    });
  }

  stop() {
    this.running = false;
    this.abort?.abort();
    this.video.pause();
    this.video.removeAttribute("src");
    this.video.load();
    if (this.objectUrl) URL.revokeObjectURL(this.objectUrl);
    this.objectUrl = null;
  }

  async fetchOk(url, signal, as) {
    const r = await fetch(url, { cache: "no-store", signal });
    if (!r.ok) return { status: r.status };
    return { status: r.status, body: as === "text" ? await r.text() : await r.arrayBuffer() };
  }

  sleep(ms, signal) {
    return new Promise((resolve, reject) => {
      const t = setTimeout(resolve, ms);
      signal.addEventListener("abort", () => {
        clearTimeout(t);
        reject(new DOMException("stopped", "AbortError"));
      }, { once: true });
    });
  }

  /** Fetches the media playlist (following a multivariant playlist's first variant). */
  async playlist(signal) {
    let url = this.mediaUrl || this.url;
    let r = await this.fetchOk(url, signal, "text");
    if (!r.body) return { status: r.status };
    let pl = parsePlaylist(r.body, url);
    if (pl.variants.length) {
      const v = pl.variants[0];
      if (v.codecs && !this.codecs) this.codecs = v.codecs;
      url = this.mediaUrl = v.uri;
      r = await this.fetchOk(url, signal, "text");
      if (!r.body) return { status: r.status };
      pl = parsePlaylist(r.body, url);
    }
    return { status: 200, pl };
  }

  async run(signal) {
    if (!("MediaSource" in window)) {
      this.onStatus("This browser has no Media Source Extensions: no preview.", "error");
      return;
    }
    this.onStatus("Loading HLS playlist…", "loading");
    let attempt = 0;
    let pl;
    for (;;) {
      const r = await this.playlist(signal);
      if (r.pl && r.pl.map && r.pl.segments.length) {
        pl = r.pl;
        break;
      }
      const wait = RETRY_MS[Math.min(attempt, RETRY_MS.length - 1)];
      attempt += 1;
      const why = r.status === 404 ? "No HLS output for this stream yet" : r.pl ? "HLS playlist has no segments yet" : `HLS playlist: HTTP ${r.status}`;
      this.onStatus(`${why} — retrying in ${Math.round(wait / 1000)} s`, "waiting");
      await this.sleep(wait, signal);
    }

    const init = await this.fetchOk(pl.map, signal, "buffer");
    if (!init.body) throw new Error(`init segment: HTTP ${init.status}`);
    const codecs = this.codecs || codecsFromInit(init.body) || DEFAULT_CODECS;
    const mime = `video/mp4; codecs="${codecs}"`;
    if (!MediaSource.isTypeSupported(mime)) {
      this.onStatus(`This browser cannot play ${codecs}.`, "error");
      return;
    }
    const ms = new MediaSource();
    this.objectUrl = URL.createObjectURL(ms);
    this.video.src = this.objectUrl;
    await new Promise((resolve) => ms.addEventListener("sourceopen", resolve, { once: true }));
    const sb = ms.addSourceBuffer(mime);
    const append = (data) =>
      new Promise((resolve, reject) => {
        sb.addEventListener("updateend", resolve, { once: true });
        sb.addEventListener("error", () => reject(new Error("SourceBuffer error")), { once: true });
        sb.appendBuffer(data);
      });
    const remove = (a, b) =>
      new Promise((resolve) => {
        sb.addEventListener("updateend", resolve, { once: true });
        sb.remove(a, b);
      });
    await append(init.body);

    // Start from the live edge: the last two segments.
    let next = pl.segments[Math.max(0, pl.segments.length - 2)].seq;
    let started = false;
    for (;;) {
      if (!this.running) return;
      const segs = pl.segments.filter((s) => s.seq >= next);
      const first = pl.segments[0];
      if (first && next < first.seq) next = pl.segments[Math.max(0, pl.segments.length - 2)].seq; // fell behind
      for (const s of segs.slice(-MAX_SEGMENTS_PER_REFRESH)) {
        const r = await this.fetchOk(s.uri, signal, "buffer");
        next = s.seq + 1;
        if (!r.body) continue; // gone already: skip it
        await append(r.body);
      }
      const b = this.video.buffered;
      if (b.length) {
        const end = b.end(b.length - 1);
        if (!started || end - this.video.currentTime > MAX_LAG_S) {
          this.video.currentTime = Math.max(b.start(b.length - 1), end - pl.targetDuration * 1.5);
        }
        if (!started) {
          started = true;
          this.video.muted = true;
          this.video.play().catch((e) => this.onStatus(`Autoplay blocked: ${e.message}`, "error"));
        }
        this.onStatus(`HLS · ${codecs} · ${Math.max(0, end - this.video.currentTime).toFixed(1)} s buffered`, "playing");
        const behind = this.video.currentTime - KEEP_BEHIND_S;
        if (b.start(0) < behind && !sb.updating) await remove(0, behind);
      }
      if (pl.ended) {
        ms.endOfStream();
        return;
      }
      await this.sleep(Math.max(500, (pl.targetDuration * 1000) / 2), signal);
      const r = await this.playlist(signal);
      if (r.pl) pl = r.pl;
      else if (r.status === 404) {
        this.onStatus("HLS playlist gone (stream ended?) — retrying", "waiting");
      }
    }
  }
}
