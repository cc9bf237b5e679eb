// Small DOM helpers. Text is always set as text, never as HTML, so values
// from the API (names, labels, paths) cannot inject markup.

const SVG_NS = "http://www.w3.org/2000/svg";
const SVG_TAGS = new Set(["svg", "path", "circle", "rect", "g", "line", "title"]);

// el creates an element with attributes and children (strings, nodes,
// arrays; null and false are skipped).
export function el(tag, attrs = {}, ...children) {
  const node = SVG_TAGS.has(tag) ? document.createElementNS(SVG_NS, tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "value" && "value" in node) node.value = v;
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(node, c);
    else node.append(c instanceof Node ? c : String(c));
  }
}

// drawn keeps, per container redraw fills, the nodes it drew by their
// signature.
const drawn = new WeakMap();

// redraw makes container's children one node per item, in order: the
// node already drawn for an item of the same signature (sig), else a new
// one (draw), moving only what must move. So a reload moves no row that
// did not change under the pointer (a press and a release on a row
// replaced between them are no click), and what the user opened in a
// row (a description, a details list) or focused stays as it was. sig
// must cover everything draw shows. Returns the nodes.
export function redraw(container, items, sig, draw) {
  const old = drawn.get(container) || new Map();
  const next = new Map();
  const nodes = items.map((item) => {
    const s = sig(item);
    const node = old.get(s)?.shift() || draw(item);
    if (!next.has(s)) next.set(s, []);
    next.get(s).push(node);
    return node;
  });
  drawn.set(container, next);
  // The rows that go are removed, then each row not yet in its place is
  // put there: a row that stays in order is never taken out (which would
  // blur it and drop a click on it).
  const keep = new Set(nodes);
  for (const kid of [...container.children]) if (!keep.has(kid)) kid.remove();
  nodes.forEach((n, i) => {
    const at = container.children[i];
    if (at !== n) container.insertBefore(n, at || null);
  });
  return nodes;
}

// sentence turns an API message into a sentence: capital first letter,
// final full stop.
export function sentence(s) {
  if (!s) return "";
  s = s[0].toUpperCase() + s.slice(1);
  return /[.!?]$/.test(s) ? s : s + ".";
}

const dateFmt = new Intl.DateTimeFormat(undefined, { year: "numeric", month: "short", day: "numeric" });
const timeFmt = new Intl.DateTimeFormat(undefined, {
  month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit",
});
// Log times name their zone: local (e.g. "GMT-5") or UTC.
const zoneOpts = { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23", timeZoneName: "short" };
const localZoneFmt = new Intl.DateTimeFormat(undefined, zoneOpts);
const utcZoneFmt = new Intl.DateTimeFormat(undefined, { ...zoneOpts, timeZone: "UTC" });
// The chart's axis: the same zones, to the minute.
const { second: _s, ...minuteOpts } = zoneOpts;
const localMinuteFmt = new Intl.DateTimeFormat(undefined, minuteOpts);
const utcMinuteFmt = new Intl.DateTimeFormat(undefined, { ...minuteOpts, timeZone: "UTC" });
const fullFmt = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "long" });
const rel = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });

export function isSet(t) {
  return !!t && !t.startsWith("0001-01-01");
}

export function fmtDate(t) { return isSet(t) ? dateFmt.format(new Date(t)) : "—"; }
export function fmtTime(t) { return isSet(t) ? timeFmt.format(new Date(t)) : "—"; }
export function fmtZoned(t, utc) { return isSet(t) ? (utc ? utcZoneFmt : localZoneFmt).format(new Date(t)) : "—"; }
export function fmtZonedMinute(t, utc) { return isSet(t) ? (utc ? utcMinuteFmt : localMinuteFmt).format(new Date(t)) : "—"; }
export function fmtFull(t) { return isSet(t) ? fullFmt.format(new Date(t)) : ""; }

export function fmtAgo(t, now = Date.now()) {
  if (!isSet(t)) return "Never";
  const s = Math.round((new Date(t).getTime() - now) / 1000);
  const a = Math.abs(s);
  if (a < 45) return "Just now";
  if (a < 3600) return rel.format(Math.round(s / 60), "minute");
  if (a < 86400) return rel.format(Math.round(s / 3600), "hour");
  if (a < 86400 * 30) return rel.format(Math.round(s / 86400), "day");
  return dateFmt.format(new Date(t));
}

// timeEl renders a <time> with the full date as its tooltip.
export function timeEl(t, text) {
  return el("time", { datetime: isSet(t) ? t : null, title: fmtFull(t) || null }, text);
}
