// A small canvas line chart for the console: time on x (the last few minutes), values on y,
// axes with labels, a legend, gaps where samples are missing, crisp on high-DPI screens and
// redrawn when its box resizes. No dependencies.

import { compact } from "./format.js";

/** Span of time a chart shows, in milliseconds. */
export const WINDOW_MS = 5 * 60 * 1000;
/** Samples further apart than this are not joined by a line. */
const GAP_MS = 5000;
const PAD = { left: 46, right: 12, top: 26, bottom: 22 };
const THEME = {
  grid: "rgba(139, 148, 158, 0.16)",
  axis: "rgba(139, 148, 158, 0.45)",
  text: "#8b949e",
  strong: "#c9d1d9",
  font: "11px system-ui, -apple-system, 'Segoe UI', sans-serif",
};

/** Rounds `v` up to 1, 2 or 5 times a power of ten. */
function niceCeil(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

export class LineChart {
  /**
   * @param {HTMLCanvasElement} canvas
   * @param {{series: {name: string, color: string}[], format?: (v: number) => string,
   *          minMax?: number, integer?: boolean}} options
   */
  constructor(canvas, options) {
    this.canvas = canvas;
    this.series = options.series;
    this.format = options.format || compact;
    this.minMax = options.minMax ?? 1;
    this.integer = !!options.integer;
    this.data = this.series.map(() => []);
    this.now = Date.now();
    this.empty = "No data yet";
    this.canvas.dataset.color = this.series[0]?.color || "";
    this.observer = new ResizeObserver(() => this.draw());
    this.observer.observe(canvas);
  }

  /**
   * Replaces the data: one array of [timeMs, value] per series (value null for "unknown"),
   * `now` the right edge, and the message to show when there is nothing to draw (its first
   * line is the headline).
   */
  setData(now, data, emptyText = "No data yet") {
    this.now = now;
    this.data = data;
    this.empty = emptyText;
    this.draw();
  }

  /** Stops watching the canvas size. */
  destroy() {
    this.observer.disconnect();
  }

  draw() {
    const c = this.canvas;
    const dpr = window.devicePixelRatio || 1;
    const w = c.clientWidth;
    const h = c.clientHeight;
    if (w === 0 || h === 0) return;
    if (c.width !== Math.round(w * dpr) || c.height !== Math.round(h * dpr)) {
      c.width = Math.round(w * dpr);
      c.height = Math.round(h * dpr);
    }
    const ctx = c.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    ctx.font = THEME.font;

    const t0 = this.now - WINDOW_MS;
    const visible = this.data.map((pts) => pts.filter(([t, v]) => t >= t0 && v != null));
    const points = visible.reduce((n, pts) => n + pts.length, 0);
    c.dataset.points = String(points);
    let max = this.minMax;
    for (const pts of visible) for (const [, v] of pts) max = Math.max(max, v);
    const ticks = 4;
    // Integer series (counts) get integer ticks; others a 1-2-5 rounded top.
    max = this.integer ? Math.max(ticks, Math.ceil((max * 1.1) / ticks) * ticks) : niceCeil(max * 1.1);
    const labels = [];
    for (let i = 0; i <= ticks; i++) labels.push(points ? this.format((max * i) / ticks) : "");
    const labelWidth = Math.max(...labels.map((l) => ctx.measureText(l).width));
    const x0 = Math.max(PAD.left, Math.ceil(labelWidth) + 12);
    const x1 = w - PAD.right;
    const y0 = h - PAD.bottom;
    const y1 = PAD.top;
    const xOf = (t) => x0 + ((t - t0) / WINDOW_MS) * (x1 - x0);
    const yOf = (v) => y0 - (v / max) * (y0 - y1);

    // Grid and y labels.
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    for (let i = 0; i <= ticks; i++) {
      const y = Math.round(yOf((max * i) / ticks)) + 0.5;
      ctx.strokeStyle = i === 0 ? THEME.axis : THEME.grid;
      ctx.beginPath();
      ctx.moveTo(x0, y);
      ctx.lineTo(x1, y);
      ctx.stroke();
      ctx.fillStyle = THEME.text;
      ctx.fillText(labels[i], x0 - 6, y);
    }
    // Time axis: one tick a minute, "now" on the right.
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    for (let m = 0; m <= WINDOW_MS / 60000; m++) {
      const x = Math.round(xOf(this.now - m * 60000)) + 0.5;
      ctx.strokeStyle = THEME.grid;
      ctx.beginPath();
      ctx.moveTo(x, y1);
      ctx.lineTo(x, y0);
      ctx.stroke();
      ctx.fillStyle = THEME.text;
      ctx.textAlign = m === 0 ? "right" : "center";
      ctx.fillText(m === 0 ? "now" : `-${m}m`, m === 0 ? x1 : x, y0 + 6);
    }

    // Lines (first series with a soft fill under it).
    ctx.save();
    ctx.beginPath();
    ctx.rect(x0, y1 - 2, x1 - x0, y0 - y1 + 2);
    ctx.clip();
    visible.forEach((pts, si) => {
      const color = this.series[si].color;
      const runs = [];
      let run = [];
      let last = null;
      for (const p of pts) {
        if (last && p[0] - last[0] > GAP_MS) {
          runs.push(run);
          run = [];
        }
        run.push(p);
        last = p;
      }
      if (run.length) runs.push(run);
      for (const r of runs) {
        if (si === 0 && r.length > 1) {
          ctx.beginPath();
          ctx.moveTo(xOf(r[0][0]), y0);
          for (const [t, v] of r) ctx.lineTo(xOf(t), yOf(v));
          ctx.lineTo(xOf(r[r.length - 1][0]), y0);
          ctx.closePath();
          ctx.globalAlpha = 0.14;
          ctx.fillStyle = color;
          ctx.fill();
          ctx.globalAlpha = 1;
        }
        ctx.beginPath();
        r.forEach(([t, v], i) => (i ? ctx.lineTo(xOf(t), yOf(v)) : ctx.moveTo(xOf(t), yOf(v))));
        if (r.length === 1) ctx.arc(xOf(r[0][0]), yOf(r[0][1]), 1.5, 0, 2 * Math.PI);
        ctx.strokeStyle = color;
        ctx.lineWidth = 2;
        ctx.lineJoin = "round";
        ctx.stroke();
      }
    });
    ctx.restore();

    // Legend with the latest value of each series.
    ctx.textAlign = "left";
    ctx.textBaseline = "middle";
    let lx = x0;
    this.series.forEach((s, si) => {
      const pts = visible[si];
      const lastV = pts.length ? this.format(pts[pts.length - 1][1]) : "–";
      ctx.fillStyle = s.color;
      ctx.fillRect(lx, 8, 10, 3);
      ctx.fillStyle = THEME.strong;
      const label = `${s.name} ${lastV}`;
      ctx.fillText(label, lx + 14, 10);
      lx += 14 + ctx.measureText(label).width + 16;
    });

    if (points === 0) {
      // The empty state: the message (first line bold, the rest wrapped) on a plate.
      const maxW = x1 - x0 - 24;
      const lines = [];
      for (const [i, para] of this.empty.split("\n").entries()) {
        ctx.font = `${i === 0 ? "600 " : ""}12px system-ui, -apple-system, 'Segoe UI', sans-serif`;
        let line = "";
        for (const word of para.split(" ")) {
          const next = line ? `${line} ${word}` : word;
          if (line && ctx.measureText(next).width > maxW) {
            lines.push([line, i === 0]);
            line = word;
          } else line = next;
        }
        lines.push([line, i === 0]);
      }
      const lh = 16;
      const cx = (x0 + x1) / 2;
      const cy = (y0 + y1) / 2 - ((lines.length - 1) * lh) / 2;
      const boxW = Math.min(x1 - x0 - 8, Math.max(...lines.map(([l]) => ctx.measureText(l).width)) + 24);
      ctx.fillStyle = "rgba(13, 17, 23, 0.85)";
      ctx.fillRect(cx - boxW / 2, cy - lh, boxW, lines.length * lh + lh);
      ctx.textAlign = "center";
      ctx.textBaseline = "middle";
      lines.forEach(([l, strong], i) => {
        ctx.font = `${strong ? "600 " : ""}12px system-ui, -apple-system, 'Segoe UI', sans-serif`;
        ctx.fillStyle = strong ? THEME.strong : THEME.text;
        ctx.fillText(l, cx, cy + i * lh);
      });
    }
  }
}
