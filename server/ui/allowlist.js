// The IP allowlist editor used by both the Create API Key dialog and the
// IP Allowlist dialog: rows of address-or-CIDR plus label, validated as the
// user types with the server's rules (validate.js), and able to show the
// server's own verdict beside the row it concerns.

import { MAX_ENTRIES, MIN_PREFIX_V4, MIN_PREFIX_V6, Rule, validateList } from "./validate.js";
import { el, sentence } from "./dom.js";

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
      el("div", { class: "al-foot" }, this.addBtn, this.countEl));
    this.render();
  }

  // setEntries replaces the rows with stored entries ({id, cidr, label}).
  setEntries(entries) {
    this.rows = entries.map((e) => this.newRow(e.cidr, e.label || "", e.id, true));
    this.showAll = false;
    this.render();
  }

  // entries returns the list to submit.
  entries() {
    return this.rows.map((r) => {
      const e = { cidr: r.cidr, label: r.label };
      if (r.id) e.id = r.id;
      return e;
    });
  }

  // prefixes returns the parsed prefixes of the rows that parse.
  prefixes() {
    return this.results.filter((r) => r.prefix).map((r) => r.prefix);
  }

  newRow(cidr = "", label = "", id = "", touched = false) {
    return { key: ++uid, id, cidr, label, touched, serverError: null };
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
      if (t !== cidr.value) { cidr.value = t; row.cidr = t; row.serverError = null; }
      row.touched = true;
      this.changed();
    });
    label.addEventListener("input", () => {
      row.label = label.value;
      if (row.serverError && row.serverError.rule === Rule.Label) row.serverError = null;
      this.changed();
    });
    removeBtn.addEventListener("click", () => this.remove(row));

    row.cidrInput = cidr;
    row.msgEl = msg;
    row.msgSig = undefined;
    return el("div", { class: "al-row", role: "listitem", "data-testid": "al-row" },
      el("span", { class: "al-index", "aria-hidden": "true" }, `${i + 1}`),
      cidr, label, removeBtn, msg);
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
