// The IP allowlist editor used by both the Create API Key dialog and the
// IP Allowlist dialog: rows of address-or-CIDR plus label, validated as the
// user types with the server's rules (validate.js), and able to show the
// server's own verdict beside the row it concerns.

import { MAX_ENTRIES, MIN_PREFIX_V4, MIN_PREFIX_V6, Rule, parseEntry, checkLabel, validateList } from "./validate.js";
import { el, fmtAgo, isSet, sentence } from "./dom.js";

// The expiry choices of a row: "" never; a duration from now; "keep" the
// stored expiry.
const EXPIRY_CHOICES = [["", "Never expires"], ["1h", "Expires in 1 hour"], ["24h", "Expires in 24 hours"], ["168h", "Expires in 7 days"]];
const DURATIONS = { "1h": 3600e3, "24h": 86400e3, "168h": 7 * 86400e3 };

// expiryText says when an entry stops matching, or that it has.
export function expiryText(t, now = Date.now()) {
  if (!isSet(t)) return "";
  const ms = new Date(t).getTime() - now;
  if (ms <= 0) return "expired";
  const min = Math.max(1, Math.round(ms / 60e3));
  if (min < 60) return `expires in ${min} min`;
  const h = Math.round(ms / 3600e3);
  if (h < 48) return `expires in ${h} h`;
  return `expires in ${Math.round(h / 24)} days`;
}

// parseBulk reads pasted text, one entry a line: "address", "address,label"
// or "address label"; blank lines and # comments are skipped. Each line
// comes back with its number and, when it is refused, why.
export function parseBulk(text) {
  const out = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith("#")) return;
    let cut = line.indexOf(",");
    if (cut < 0) cut = line.search(/\s/);
    const cidr = (cut < 0 ? line : line.slice(0, cut)).trim();
    const label = cut < 0 ? "" : line.slice(cut + 1).trim();
    const res = parseEntry(cidr);
    const labelErr = checkLabel(label);
    out.push({ line: i + 1, cidr, label, error: res.error || (labelErr ? { message: labelErr } : null), stored: res.cidr || "" });
  });
  return out;
}

let uid = 0;

export class AllowlistEditor {
  // container: element to render into; onChange: called after every edit.
  constructor(container, { onChange = () => {} } = {}) {
    this.onChange = onChange;
    this.rows = [];
    this.showAll = false;
    this.results = [];

    this.rowsEl = el("div", { class: "al-rows", role: "list", "data-testid": "al-rows" });
    this.headEl = el("div", { class: "al-head", "aria-hidden": "true" },
      el("span", {}, "IP address or CIDR range"), el("span", {}, "Label"), el("span"));
    this.emptyEl = el("p", { class: "al-empty", "data-testid": "al-empty" },
      "No entries: this key can be used from any IP address.");
    this.countEl = el("span", { class: "al-count muted", "data-testid": "al-count" });
    this.addBtn = el("button", { type: "button", class: "btn btn-sm", "data-testid": "al-add" },
      el("span", { "aria-hidden": "true" }, "+ "), "Add IP");
    this.addBtn.addEventListener("click", () => this.add());
    this.pasteBtn = el("button", { type: "button", class: "btn btn-sm", "data-testid": "al-paste" }, "Paste many…");
    this.pasteArea = el("textarea", { rows: "5", class: "mono", spellcheck: "false", "data-testid": "al-paste-text",
      "aria-label": "Entries to add, one per line", placeholder: "203.0.113.5,Office\n198.51.100.0/24 Data centre\n2001:db8::/48" });
    this.pasteMsg = el("div", { class: "al-paste-msg", "data-testid": "al-paste-msg", role: "status" });
    const pasteAdd = el("button", { type: "button", class: "btn btn-sm btn-primary", "data-testid": "al-paste-add" }, "Check and add");
    const pasteCancel = el("button", { type: "button", class: "btn btn-sm btn-ghost" }, "Cancel");
    this.pasteBox = el("div", { class: "al-paste", hidden: true, "data-testid": "al-paste-box" },
      el("p", { class: "hint" }, "One entry per line: an address or CIDR range, optionally followed by a comma or a space and a label. Every line is checked first; nothing is added while a line is refused."),
      this.pasteArea, this.pasteMsg, el("div", { class: "al-paste-actions" }, pasteAdd, pasteCancel));
    this.pasteBtn.addEventListener("click", () => { this.pasteBox.hidden = false; this.pasteArea.focus(); });
    pasteCancel.addEventListener("click", () => { this.pasteBox.hidden = true; this.pasteArea.value = ""; this.pasteMsg.replaceChildren(); });
    pasteAdd.addEventListener("click", () => this.addPasted());
    this.extraEl = el("div", { class: "al-extra" });

    container.replaceChildren(
      el("p", { class: "hint al-intro" },
        "Requests using this key from any other IP address are rejected with ",
        el("code", {}, "403 IP_NOT_ALLOWED"),
        ". Enter single addresses (203.0.113.5, 2001:db8::1) or CIDR ranges (203.0.113.0/24, 2001:db8::/48)."),
      el("ul", { class: "al-limits", "aria-label": "Allowlist limits" },
        el("li", {}, el("strong", {}, `${MAX_ENTRIES}`), " entries per key at most"),
        el("li", {}, "IPv4 ranges ", el("strong", {}, `/${MIN_PREFIX_V4}`), " or narrower"),
        el("li", {}, "IPv6 ranges ", el("strong", {}, `/${MIN_PREFIX_V6}`), " or narrower")),
      el("p", { class: "hint al-private" },
        "Private addresses (10.x.x.x, 172.16–31.x.x, 192.168.x.x, 100.64.x.x, fc00::/7, loopback, link-local) never match: ",
        "the API sees your public egress IP. Use the public IP of your NAT gateway or load balancer."),
      this.headEl, this.rowsEl, this.emptyEl,
      el("div", { class: "al-foot" }, this.addBtn, this.pasteBtn, this.countEl), this.pasteBox, this.extraEl);
    // Enter in an entry's field moves to the next field, never submits the
    // dialog around the editor (Create would create the key, the editor
    // would save).
    const isEnter = (e) => e.key === "Enter" && e.target.tagName === "INPUT" && e.target.type !== "checkbox";
    // The form is submitted implicitly on the keypress after Enter's
    // keydown: refuse that too, wherever the focus moved to.
    this.rowsEl.addEventListener("keypress", (e) => { if (isEnter(e)) e.preventDefault(); });
    this.rowsEl.addEventListener("keydown", (e) => {
      if (!isEnter(e)) return;
      e.preventDefault();
      const fields = [...this.rowsEl.querySelectorAll('input[data-testid="al-cidr"], input[data-testid="al-label"]')];
      const next = fields[fields.indexOf(e.target) + 1];
      if (next) next.focus(); else this.addBtn.focus();
    });
    this.render();
  }

  // addPasted checks every pasted line and adds them all, or none when a
  // line is refused (the refused lines are listed with the reason).
  addPasted() {
    const lines = parseBulk(this.pasteArea.value);
    const have = new Set(this.rows.map((r) => parseEntry(r.cidr).cidr).filter(Boolean));
    const seen = new Map();
    for (const l of lines) {
      if (l.error) continue;
      if (have.has(l.stored)) l.error = { message: `${l.stored} is already in the list` };
      else if (seen.has(l.stored)) l.error = { message: `${l.stored} is also on line ${seen.get(l.stored)}` };
      else seen.set(l.stored, l.line);
    }
    const bad = lines.filter((l) => l.error);
    const room = MAX_ENTRIES - this.rows.length;
    if (!lines.length) {
      this.pasteMsg.replaceChildren(el("p", { class: "field-error" }, "Paste at least one address or CIDR range."));
      return;
    }
    if (bad.length) {
      this.pasteMsg.replaceChildren(el("p", { class: "field-error" }, `Nothing was added: ${bad.length} of ${lines.length} ${lines.length === 1 ? "line is" : "lines are"} refused.`),
        el("ul", { class: "al-paste-bad", "data-testid": "al-paste-refused" }, bad.map((l) => el("li", { "data-line": l.line },
          el("strong", {}, `Line ${l.line}`), " ", el("code", {}, l.cidr || "(empty)"), ": ", sentence(l.error.message)))));
      return;
    }
    if (lines.length > room) {
      this.pasteMsg.replaceChildren(el("p", { class: "field-error" }, `Nothing was added: ${lines.length} lines, but only ${room} more ${room === 1 ? "entry fits" : "entries fit"} (at most ${MAX_ENTRIES}).`));
      return;
    }
    for (const l of lines) this.rows.push(this.newRow(l.stored, l.label, "", true));
    this.pasteArea.value = "";
    this.pasteMsg.replaceChildren();
    this.pasteBox.hidden = true;
    this.render();
    this.changed();
  }

  // addEntry appends a row (suggestions, "Allow this IP…"), unless the
  // list holds the prefix already; it returns the row.
  addEntry(cidr, label = "") {
    const stored = parseEntry(cidr).cidr || cidr;
    const have = this.rows.find((r) => (parseEntry(r.cidr).cidr || r.cidr) === stored);
    if (have) return have;
    const row = this.newRow(stored, label, "", true);
    this.rows.push(row);
    this.render();
    this.changed();
    return row;
  }

  // setHits shows each stored entry's use ({id: {hits, last}}).
  setHits(hits) {
    for (const r of this.rows) if (r.id && hits[r.id]) Object.assign(r, hits[r.id]);
    this.render();
  }

  // setEntries replaces the rows with stored entries ({id, cidr, label}).
  setEntries(entries) {
    this.rows = entries.map((e) => {
      const r = this.newRow(e.cidr, e.label || "", e.id, true);
      r.expiresAt = isSet(e.expires_at) ? e.expires_at : "";
      r.expiry = r.expiresAt ? "keep" : "";
      r.disabled = !!e.disabled;
      if (e.hits_24h !== undefined) { r.hits = e.hits_24h; r.last = e.last_seen_at; }
      return r;
    });
    this.showAll = false;
    this.render();
  }

  // entries returns the list to submit.
  entries() {
    return this.rows.map((r) => {
      const e = { cidr: r.cidr, label: r.label };
      if (r.id) e.id = r.id;
      if (r.expiry === "keep" && r.expiresAt) e.expires_at = r.expiresAt;
      else if (DURATIONS[r.expiry]) e.expires_at = new Date(Date.now() + DURATIONS[r.expiry]).toISOString().replace(/\.\d+Z$/, "Z");
      if (r.disabled) e.disabled = true;
      return e;
    });
  }

  // prefixes returns the parsed prefixes of the rows that parse.
  prefixes() {
    return this.results.filter((r) => r.prefix).map((r) => r.prefix);
  }

  newRow(cidr = "", label = "", id = "", touched = false) {
    return { key: ++uid, id, cidr, label, touched, serverError: null, expiry: "", expiresAt: "", disabled: false };
  }

  add() {
    const row = this.newRow();
    this.rows.push(row);
    this.render();
    this.changed();
    row.cidrInput.focus();
  }

  remove(row) {
    const i = this.rows.indexOf(row);
    this.rows.splice(i, 1);
    this.render();
    this.changed();
    const next = this.rows[i] || this.rows[i - 1];
    (next ? next.cidrInput : this.addBtn).focus();
  }

  changed() {
    this.validate();
    this.onChange();
  }

  // validate re-checks every row and updates the messages. It returns the
  // number of errors (which block saving) and warnings (which do not).
  validate() {
    this.results = validateList(this.rows);
    let errors = 0, warnings = 0;
    this.rows.forEach((row, i) => {
      const res = this.results[i];
      const visible = row.touched || this.showAll;
      const err = row.serverError || (visible || row.cidr !== "" ? res.error : null);
      if (res.error || row.serverError) errors++;
      else if (res.warning) warnings++;
      this.renderMessage(row, i, res, err, visible);
    });
    const n = this.rows.length;
    this.countEl.textContent = `${n} of ${MAX_ENTRIES} entries`;
    this.countEl.classList.toggle("over", n > MAX_ENTRIES);
    return { errors, warnings };
  }

  // showErrors marks every row touched (on submit) and reports the count.
  showErrors() {
    this.showAll = true;
    return this.validate();
  }

  // applyServerErrors shows the server's per-entry problems beside the rows
  // they name; it returns how many it could place.
  applyServerErrors(details) {
    let placed = 0;
    for (const d of details) {
      const row = this.rows[d.index];
      if (!row) continue;
      row.serverError = { rule: d.rule, message: d.message, suggestion: d.suggestion, server: true };
      placed++;
    }
    this.showAll = true;
    this.validate();
    return placed;
  }

  focusFirstError() {
    const row = this.rows.find((r) => r.msgEl.classList.contains("is-error"));
    if (row) row.cidrInput.focus();
    return !!row;
  }

  render() {
    const n = this.rows.length;
    this.rowsEl.replaceChildren(...this.rows.map((row, i) => this.renderRow(row, i)));
    this.emptyEl.hidden = n > 0;
    this.headEl.hidden = n === 0;
    this.validate();
  }

  renderRow(row, i) {
    const msgId = `al-msg-${row.key}`;
    const cidr = el("input", {
      class: "mono", value: row.cidr, autocomplete: "off", spellcheck: "false", autocapitalize: "off",
      placeholder: "203.0.113.5 or 203.0.113.0/24", "aria-label": `IP address or CIDR range, entry ${i + 1}`,
      "aria-describedby": msgId, "data-testid": "al-cidr",
    });
    const label = el("input", {
      value: row.label, autocomplete: "off", maxlength: "64",
      placeholder: "e.g. Office network", "aria-label": `Label, entry ${i + 1}`, "data-testid": "al-label",
    });
    const removeBtn = el("button", {
      type: "button", class: "icon-btn al-remove", "aria-label": `Remove entry ${i + 1}`,
      title: "Remove entry", "data-testid": "al-remove",
    }, el("svg", { viewBox: "0 0 20 20", "aria-hidden": "true", class: "icon" }, el("path", { d: "M5 5l10 10M15 5L5 15" })));
    const msg = el("div", { class: "al-msg", id: msgId, "data-testid": "al-msg" });

    cidr.addEventListener("input", () => {
      row.cidr = cidr.value;
      row.serverError = null;
      this.changed();
    });
    cidr.addEventListener("blur", () => {
      const t = cidr.value.trim();
      row.touched = true;
      // Leaving a field is no edit: only a trimmed value is a change.
      if (t !== cidr.value) { cidr.value = t; row.cidr = t; row.serverError = null; this.changed(); } else this.validate();
    });
    label.addEventListener("input", () => {
      row.label = label.value;
      if (row.serverError && row.serverError.rule === Rule.Label) row.serverError = null;
      this.changed();
    });
    removeBtn.addEventListener("click", () => this.remove(row));

    // Lifecycle: when the entry stops matching, whether it is off, and
    // how much it is used.
    const choices = EXPIRY_CHOICES.slice();
    if (row.expiresAt) choices.splice(1, 0, ["keep", row.expiresAt && new Date(row.expiresAt) <= new Date() ? "Expired (keep)" : `Keep: ${expiryText(row.expiresAt)}`]);
    const expiry = el("select", { class: "al-expiry", "aria-label": `Expiry, entry ${i + 1}`, "data-testid": "al-expiry" },
      choices.map(([v, t]) => el("option", { value: v, selected: v === row.expiry ? true : null }, t)));
    expiry.addEventListener("change", () => { row.expiry = expiry.value; this.render(); this.changed(); });
    const off = el("input", { type: "checkbox", checked: row.disabled ? true : null, "data-testid": "al-disabled" });
    off.addEventListener("change", () => { row.disabled = off.checked; this.render(); this.changed(); });
    const state = row.disabled ? "off"
      : row.expiry === "keep" ? expiryText(row.expiresAt)
        : DURATIONS[row.expiry] ? expiryText(new Date(Date.now() + DURATIONS[row.expiry]).toISOString()) : "";
    const stateKind = row.disabled ? "off" : state === "expired" ? "expired" : state ? "temporary" : "";
    const hits = row.id && row.hits !== undefined
      ? el("span", { class: `al-hits${row.hits ? "" : " unused"}`, "data-testid": "al-hits" },
        row.hits ? `${row.hits.toLocaleString("en-US")} ${row.hits === 1 ? "hit" : "hits"} in 24 h · last ${fmtAgo(row.last).toLowerCase()}` : "No hits in 24 h")
      : null;
    const meta = el("div", { class: "al-meta" }, expiry,
      el("label", { class: "al-off" }, off, " Off"),
      state ? el("span", { class: `al-state al-state-${stateKind}`, "data-testid": "al-state" }, state) : null,
      hits);

    row.cidrInput = cidr;
    row.msgEl = msg;
    row.msgSig = undefined;
    return el("div", { class: `al-row${row.disabled || stateKind === "expired" ? " is-inactive" : ""}`, role: "listitem", "data-testid": "al-row" },
      el("span", { class: "al-index", "aria-hidden": "true" }, `${i + 1}`),
      cidr, label, removeBtn, meta, msg);
  }

  renderMessage(row, i, res, err, visible) {
    // Re-render only on change: replacing a suggestion button between
    // mousedown (which blurs the input and re-validates) and click would
    // swallow the click.
    const kind = err ? "error" : res.warning ? "warning" : res.cidr && (visible || row.cidr !== "") ? "ok" : "";
    const sig = JSON.stringify([kind, err, kind === "warning" ? res.warning : null, kind === "ok" ? res.cidr : null]);
    if (row.msgSig === sig) return;
    row.msgSig = sig;
    const msg = row.msgEl;
    msg.className = "al-msg";
    row.cidrInput.removeAttribute("aria-invalid");
    if (err) {
      msg.classList.add("is-error");
      row.cidrInput.setAttribute("aria-invalid", "true");
      const text = el("span", {}, err.server ? "Rejected by the server: " : "", sentence(err.message));
      const parts = [el("span", { class: "al-msg-icon", "aria-hidden": "true" }, "!"), text];
      if (err.suggestion) {
        const fix = el("button", { type: "button", class: "link-btn", "data-testid": "al-suggestion" }, `Use ${err.suggestion}`);
        fix.addEventListener("click", () => {
          row.cidr = err.suggestion;
          row.cidrInput.value = err.suggestion;
          row.serverError = null;
          this.changed();
          row.cidrInput.focus();
        });
        text.append(" ", fix);
      }
      msg.replaceChildren(...parts);
      msg.dataset.rule = err.rule;
    } else if (res.warning) {
      msg.classList.add("is-warning");
      msg.replaceChildren(
        el("span", { class: "al-msg-icon", "aria-hidden": "true" }, "!"),
        el("span", {}, sentence(res.warning.message),
          " The server rejects it unless it runs with ", el("code", {}, "--allow-private-ranges"), "."));
      msg.dataset.rule = res.warning.rule;
    } else if (res.cidr && (visible || row.cidr !== "")) {
      msg.classList.add("is-ok");
      msg.replaceChildren(el("span", {}, describe(res.prefix, res.cidr)));
      delete msg.dataset.rule;
    } else {
      msg.replaceChildren();
      delete msg.dataset.rule;
    }
    msg.hidden = msg.childNodes.length === 0;
  }
}

// describe says what a valid prefix matches, in the seed's words.
function describe(p, cidr) {
  const v4 = p.bytes.length === 4;
  const full = v4 ? 32 : 128;
  if (p.bits === full) return `Exactly one address · stored as ${cidr}`;
  if (v4) {
    const size = 2 ** (32 - p.bits);
    const last = p.bytes.slice();
    let n = size - 1;
    for (let i = 3; i >= 0 && n > 0; i--) { last[i] |= n & 0xff; n = Math.floor(n / 256); }
    return `${size.toLocaleString("en-US")} addresses (${Array.from(p.bytes).join(".")} – ${Array.from(last).join(".")})`;
  }
  return `An IPv6 /${p.bits} subnet · stored as ${cidr}`;
}
