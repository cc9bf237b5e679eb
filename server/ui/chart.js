// The requests chart of the usage logs: allowed vs 401 vs 403 (and other
// refusals) per time bucket, for all keys or the key the logs filter
// names, as GET /v1/logs/stats counts them. Drawn as inline SVG stacked
// bars whose colours come from the stylesheet (so dark mode follows).

import { api } from "./api.js";
import { el, fmtZoned, fmtZonedMinute } from "./dom.js";

// Each period and its bucket: 60, 48 and 42 bars.
export const PERIODS = {
  "1h": { ms: 3600e3, bucket: "1m", bucketMs: 60e3 },
  "24h": { ms: 86400e3, bucket: "30m", bucketMs: 1800e3 },
  "7d": { ms: 7 * 86400e3, bucket: "4h", bucketMs: 4 * 3600e3 },
};

const SERIES = [
  { key: "allowed", label: "Allowed", cls: "s-allowed" },
  { key: "unauthorized", label: "401 Invalid key", cls: "s-401" },
  { key: "forbidden", label: "403 Forbidden", cls: "s-403" },
  { key: "other", label: "Other", cls: "s-other" },
];

const W = 600;
const H = 120;

export class RequestsChart {
  // utc tells whether times are shown in UTC or in local time (the logs'
  // "Times in" switch); every time the chart shows names its zone.
  constructor(root, utc = () => false) {
    this.utc = utc;
    this.res = null;
    this.root = root;
    this.svg = root.querySelector("[data-chart-svg]");
    this.legend = root.querySelector("[data-chart-legend]");
    this.error = root.querySelector("[data-chart-error]");
    this.period = root.querySelector("[data-chart-period]");
    this.keyID = "";
    this.seq = 0;
    this.last = "";
    this.period.addEventListener("change", () => this.load());
  }

  // load fetches the counts for the current key and period, ending now
  // (rounded up to a whole bucket, so bars keep their place as time moves).
  async load(keyID = this.keyID) {
    this.keyID = keyID;
    const p = PERIODS[this.period.value] || PERIODS["24h"];
    const to = Math.ceil(Date.now() / p.bucketMs) * p.bucketMs;
    const from = to - p.ms;
    const seq = ++this.seq;
    // Busy until the newest load is drawn: until then the chart shows the
    // counts of the key or period chosen before.
    this.root.setAttribute("aria-busy", "true");
    try {
      const res = await api.logStats({
        key_id: keyID, bucket: p.bucket,
        from: new Date(from).toISOString(), to: new Date(to).toISOString(),
      });
      if (seq !== this.seq) return;
      this.error.hidden = true;
      const sig = JSON.stringify([keyID, this.period.value, res.buckets]);
      if (sig !== this.last) {
        this.last = sig;
        this.draw(res);
      }
    } catch (err) {
      if (seq !== this.seq) return;
      this.error.textContent = `Could not load the request counts: ${err.message}`;
      this.error.hidden = false;
    } finally {
      if (seq === this.seq) this.root.removeAttribute("aria-busy");
    }
  }

  // redraw draws the last counts again, e.g. in another time zone.
  redraw() { if (this.res) this.draw(this.res); }

  draw(res) {
    this.res = res;
    const utc = this.utc();
    const buckets = res.buckets || [];
    const total = (b) => SERIES.reduce((n, s) => n + (b[s.key] || 0), 0);
    const max = Math.max(1, ...buckets.map(total));
    const bw = W / Math.max(1, buckets.length);
    const gap = bw > 6 ? 1 : 0;
    const bars = [];
    for (const [i, b] of buckets.entries()) {
      let y = H;
      const tip = [fmtZoned(b.start, utc)].concat(SERIES.map((s) => `${s.label}: ${b[s.key] || 0}`)).join("\n");
      const parts = [el("title", {}, tip)];
      // A full-height transparent target, so that an empty bucket shows
      // its tooltip too.
      parts.push(el("rect", { x: (i * bw).toFixed(2), y: 0, width: bw.toFixed(2), height: H, class: "hit" }));
      for (const s of SERIES) {
        const n = b[s.key] || 0;
        if (!n) continue;
        const h = Math.max(1, (n / max) * (H - 4));
        y -= h;
        parts.push(el("rect", { x: (i * bw + gap / 2).toFixed(2), y: y.toFixed(2), width: Math.max(0.5, bw - gap).toFixed(2), height: h.toFixed(2), class: s.cls }));
      }
      bars.push(el("g", { "data-start": b.start }, parts));
    }
    this.svg.replaceChildren(
      el("line", { x1: 0, x2: W, y1: H - 0.5, y2: H - 0.5, class: "axis" }),
      ...bars,
    );
    this.root.querySelector("[data-chart-from]").textContent = fmtZonedMinute(res.from, utc);
    this.root.querySelector("[data-chart-to]").textContent = fmtZonedMinute(res.to, utc);
    this.svg.setAttribute("aria-label", `Requests per ${res.bucket}: ` +
      SERIES.map((s) => `${(res.totals || {})[s.key] || 0} ${s.label}`).join(", "));
    this.root.querySelector("[data-chart-max]").textContent = `peak ${max === 1 && !buckets.some(total) ? 0 : max} per ${humanBucket(res.bucket_seconds)}`;
    this.legend.replaceChildren(...SERIES.map((s) => el("li", { "data-testid": `chart-total-${s.key}` },
      el("span", { class: `swatch ${s.cls}`, "aria-hidden": "true" }),
      `${s.label} `, el("strong", {}, String((res.totals || {})[s.key] || 0)))));
    const reported = (res.totals || {}).reported || 0;
    if (reported) {
      this.legend.append(el("li", { class: "muted", "data-testid": "chart-total-reported" }, `of them ${reported} report-only (IP not on the list)`));
    }
  }
}

function humanBucket(sec) {
  if (sec % 3600 === 0) return `${sec / 3600} h`;
  if (sec % 60 === 0) return `${sec / 60} min`;
  return `${sec} s`;
}
