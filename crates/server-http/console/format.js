// Number and text formatting for the Sluice console.

/** Bits per second as "1.23 Mb/s". */
export function bitrate(bps) {
  if (bps == null || !Number.isFinite(bps)) return "—";
  if (bps >= 1e9) return `${(bps / 1e9).toFixed(2)} Gb/s`;
  if (bps >= 1e6) return `${(bps / 1e6).toFixed(2)} Mb/s`;
  if (bps >= 1e3) return `${(bps / 1e3).toFixed(0)} kb/s`;
  return `${Math.round(bps)} b/s`;
}

/** Bytes as "12.3 MiB". */
export function bytes(n) {
  if (n == null || !Number.isFinite(n)) return "—";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i += 1;
  }
  return `${i === 0 ? n : n.toFixed(1)} ${units[i]}`;
}

/** Seconds as "3d 4h", "2h 05m", "4m 09s" or "12s". */
export function duration(s) {
  if (s == null || !Number.isFinite(s)) return "—";
  s = Math.max(0, Math.floor(s));
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  const p = (x) => String(x).padStart(2, "0");
  if (d > 0) return `${d}d ${h}h`;
  if (h > 0) return `${h}h ${p(m)}m`;
  if (m > 0) return `${m}m ${p(sec)}s`;
  return `${sec}s`;
}

/** A short axis label for a value, e.g. 1.5M, 250k, 12. */
export function compact(v) {
  const a = Math.abs(v);
  if (a >= 1e9) return `${+(v / 1e9).toFixed(1)}G`;
  if (a >= 1e6) return `${+(v / 1e6).toFixed(1)}M`;
  if (a >= 1e3) return `${+(v / 1e3).toFixed(1)}k`;
  if (a > 0 && a < 1) return `${+v.toFixed(2)}`;
  return `${+v.toFixed(1)}`;
}

/** "h264 640×360" style video summary. */
export function video(v) {
  if (!v) return "no video";
  const size = v.width && v.height ? ` ${v.width}×${v.height}` : "";
  return `${v.codec.toUpperCase()}${size}`;
}

/** "AAC 48 kHz stereo" style audio summary. */
export function audio(a) {
  if (!a) return "no audio";
  const rate = a.sample_rate ? ` ${+(a.sample_rate / 1000).toFixed(1)} kHz` : "";
  const ch = a.channels === 1 ? " mono" : a.channels === 2 ? " stereo" : a.channels ? ` ${a.channels} ch` : "";
  return `${a.codec.toUpperCase()}${rate}${ch}`;
}

/** Sum of a per-protocol object's values ({rtmp, "http-flv", ...}). */
export function total(perProtocol) {
  return Object.values(perProtocol || {}).reduce((s, v) => s + (Number(v) || 0), 0);
}
