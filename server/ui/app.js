// keygate web UI: Settings > Developer (API Keys, API Usage Logs).
// Plain ES modules, no build step; everything it needs is served by the
// daemon beside this file.

import { api, APIError, hooks, session } from "./api.js";
import { AllowlistEditor } from "./allowlist.js";
import { RequestsChart } from "./chart.js";
import { el, fmtAgo, fmtDate, fmtTime, fmtZoned, isSet, redraw, sentence, timeEl } from "./dom.js";
import { contains, parseAddr, parseEntry } from "./validate.js";

const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

const state = {
  keys: [],
  keysById: new Map(),
  keysLoaded: false,
  // The key list's search, status filter, sort and page.
  view: { q: "", status: "", sort: "created", page: 0 },
};

const KEYS_PAGE = 50;

// ---------------------------------------------------------------- toasts

function toast(text, kind = "ok") {
  const t = el("div", { class: `toast toast-${kind}`, "data-testid": "toast" }, text);
  $("#toasts").replaceChildren(t);
  setTimeout(() => t.classList.add("leaving"), 3600);
  setTimeout(() => t.remove(), 4000);
}

function errorText(err) {
  if (err instanceof APIError) {
    if (err.status === 0) return err.message;
    return sentence(err.message) + (err.code ? ` (${err.code})` : "");
  }
  return "Something went wrong: " + (err && err.message ? err.message : String(err));
}

function showBanner(node, text, kind = "") {
  node.textContent = text;
  node.dataset.kind = kind;
  node.hidden = !text;
}

// ---------------------------------------------------------------- routing

const TABS = ["keys", "logs"];

function currentTab() {
  const m = /^#\/settings\/developer\/(keys|logs)/.exec(location.hash);
  return m ? m[1] : "keys";
}

function route() {
  if (!session.token) {
    showSignin();
    return;
  }
  $("#signin-view").hidden = true;
  $("#settings-view").hidden = false;
  $("#signout").hidden = false;
  selectTab(currentTab(), false);
}

function selectTab(name, focus) {
  for (const t of TABS) {
    const tab = $(`#tab-${t}`);
    const on = t === name;
    tab.setAttribute("aria-selected", String(on));
    tab.tabIndex = on ? 0 : -1;
    $(`#panel-${t}`).hidden = !on;
  }
  if (focus) $(`#tab-${name}`).focus();
  const hash = `#/settings/developer/${name}`;
  if (location.hash !== hash) history.replaceState(null, "", hash);
  if (name === "keys") loadKeys();
  else logs.show();
}

function setupTabs() {
  for (const t of TABS) {
    $(`#tab-${t}`).addEventListener("click", () => selectTab(t, false));
  }
  $(".tabs").addEventListener("keydown", (e) => {
    const i = TABS.indexOf(currentTab());
    let j = -1;
    if (e.key === "ArrowRight") j = (i + 1) % TABS.length;
    else if (e.key === "ArrowLeft") j = (i + TABS.length - 1) % TABS.length;
    else if (e.key === "Home") j = 0;
    else if (e.key === "End") j = TABS.length - 1;
    if (j < 0) return;
    e.preventDefault();
    selectTab(TABS[j], true);
  });
}

// ---------------------------------------------------------------- sign in

function showSignin(message = "") {
  closeMenu();
  for (const d of $$("dialog[open]")) d.close();
  $("#settings-view").hidden = true;
  $("#signout").hidden = true;
  $("#signin-view").hidden = false;
  showBanner($("#signin-error"), message);
  $("#token").value = "";
  $("#token").focus();
}

function setupSignin() {
  const form = $("#signin-form");
  const input = $("#token");
  $("#token-toggle").addEventListener("click", (e) => {
    const show = input.type === "password";
    input.type = show ? "text" : "password";
    e.currentTarget.textContent = show ? "Hide" : "Show";
    e.currentTarget.setAttribute("aria-pressed", String(show));
  });
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const token = input.value.trim();
    const errBox = $("#signin-error");
    if (!token) {
      showBanner(errBox, "Enter the admin token.");
      input.setAttribute("aria-invalid", "true");
      input.focus();
      return;
    }
    const btn = $('[data-testid="signin-submit"]');
    btn.disabled = true;
    btn.textContent = "Signing in…";
    try {
      await api.verifyToken(token);
      session.token = token;
      input.value = "";
      input.removeAttribute("aria-invalid");
      showBanner(errBox, "");
      state.keysLoaded = false;
      route();
      $("#main").focus();
    } catch (err) {
      input.setAttribute("aria-invalid", "true");
      showBanner(errBox, err.status === 401
        ? "That admin token is not valid for this daemon. Check for typos, or use the token printed when the daemon first started."
        : errorText(err));
      input.select();
    } finally {
      btn.disabled = false;
      btn.textContent = "Sign in";
    }
  });
  $("#signout").addEventListener("click", () => {
    session.token = "";
    state.keys = [];
    state.keysById.clear();
    state.keysLoaded = false;
    $("#keys-body").replaceChildren();
    $("#logs-body").replaceChildren();
    logs.reset();
    showSignin();
  });
  hooks.onUnauthorized = () => {
    session.token = "";
    showSignin("Your admin token is no longer accepted. Sign in again.");
  };
}

// ---------------------------------------------------------------- keys

let keysSeq = 0;

async function loadKeys() {
  const seq = ++keysSeq;
  const loading = $("#keys-loading");
  loading.hidden = state.keysLoaded;
  $("#panel-keys").setAttribute("aria-busy", "true");
  try {
    const keys = await api.listKeys();
    if (seq !== keysSeq) return;
    setKeys(keys);
    showBanner($("#keys-error"), "");
  } catch (err) {
    if (seq !== keysSeq || err.status === 401) return;
    showBanner($("#keys-error"), "Could not load API keys. " + errorText(err));
  } finally {
    if (seq === keysSeq) {
      loading.hidden = true;
      $("#panel-keys").removeAttribute("aria-busy");
    }
  }
}

function setKeys(keys) {
  keys.sort((a, b) => (b.created_at || "").localeCompare(a.created_at || ""));
  state.keys = keys;
  state.keysById = new Map(keys.map((k) => [k.id, k]));
  state.keysLoaded = true;
  renderKeys();
  logs.renderKeyOptions();
}

function statusBadge(status) {
  const s = status || "active";
  const label = { active: "Active", revoked: "Revoked", expired: "Expired" }[s] || s;
  return el("span", { class: `badge badge-${s}`, "data-testid": "key-status" }, label);
}

// visibleKeys applies the search, the status filter and the sort.
function visibleKeys() {
  const { q, status, sort } = state.view;
  const needle = q.trim().toLowerCase();
  const keys = state.keys.filter((k) => (!status || (k.status || "active") === status) &&
    (!needle || [k.name, k.hint, k.id].some((v) => (v || "").toLowerCase().includes(needle))));
  const by = {
    created: (a, b) => (b.created_at || "").localeCompare(a.created_at || ""),
    name: (a, b) => (a.name || "").localeCompare(b.name || "", undefined, { sensitivity: "base" }) || a.id.localeCompare(b.id),
    last: (a, b) => (isSet(b.last_used_at) ? b.last_used_at : "").localeCompare(isSet(a.last_used_at) ? a.last_used_at : ""),
  }[sort] || (() => 0);
  return keys.sort(by);
}

function renderKeys() {
  const body = $("#keys-body");
  const all = state.keys;
  const keys = visibleKeys();
  const pages = Math.max(1, Math.ceil(keys.length / KEYS_PAGE));
  state.view.page = Math.min(state.view.page, pages - 1);
  const first = state.view.page * KEYS_PAGE;
  const shown = keys.slice(first, first + KEYS_PAGE);
  $("#keys-empty").hidden = all.length > 0;
  $("#keys-tools").hidden = all.length === 0;
  $("#keys-none").hidden = all.length === 0 || keys.length > 0;
  $(".keys-table").hidden = shown.length === 0;
  $("#keys-pager").hidden = keys.length <= KEYS_PAGE;
  $("#keys-range").textContent = keys.length ? `${first + 1}–${first + shown.length} of ${keys.length} keys` : "";
  $("#keys-prev").disabled = state.view.page === 0;
  $("#keys-next").disabled = state.view.page >= pages - 1;
  // A reload can land while the user is on the list: the rows of keys
  // that did not change stay (redraw), and focus in a row that was drawn
  // anew goes to the same control of the key's new row.
  const active = document.activeElement;
  const focused = body.contains(active) && active.dataset.testid
    ? { id: active.closest("[data-key-id]")?.dataset.keyId, testid: active.dataset.testid } : null;
  const rows = redraw(body, shown, keySignature, keyRow);
  if (focused && focused.id && document.activeElement !== active) {
    $(`[data-key-id="${CSS.escape(focused.id)}"] [data-testid="${CSS.escape(focused.testid)}"]`, body)?.focus({ preventScroll: true });
  }
  reanchorMenu(new Map(rows.map((tr) => [tr.dataset.keyId, $('[data-testid="key-menu-button"]', tr)])));
}

// keySignature is everything a key's row shows: the key, and the parts
// that depend on the time (how long ago it was used, whether it expired).
function keySignature(k) {
  const expired = isSet(k.expires_at) && new Date(k.expires_at) <= new Date();
  return `${JSON.stringify(k)}\u0000${fmtAgo(k.last_used_at)}\u0000${expired}`;
}

// keyRow draws the key list's row of key k.
function keyRow(k) {
  const entries = k.allowlist || [];
  const scopes = k.scopes || [];
  const status = k.status || "active";
  const menuBtn = el("button", {
    type: "button", class: "icon-btn kebab", "aria-haspopup": "menu", "aria-expanded": "false",
    "aria-label": `Actions for ${k.name || k.id}`, "data-testid": "key-menu-button",
  }, el("svg", { viewBox: "0 0 20 20", "aria-hidden": "true", class: "icon icon-fill" },
    el("circle", { cx: "10", cy: "4", r: "1.6" }), el("circle", { cx: "10", cy: "10", r: "1.6" }),
    el("circle", { cx: "10", cy: "16", r: "1.6" })));
  // The key as the list has it now: the row outlives reloads that did
  // not change it.
  menuBtn.addEventListener("click", () => toggleMenu(menuBtn, state.keysById.get(k.id) || k));
  let desc = null;
  if (k.description) {
    const text = el("span", { class: "key-desc muted", "data-testid": "key-desc", id: `desc-${k.id}` }, k.description);
    desc = [text];
    if (k.description.length > 70) {
      const more = el("button", { type: "button", class: "link-btn more-btn", "aria-expanded": "false", "aria-controls": `desc-${k.id}`, "data-testid": "key-desc-more" }, "Show more");
      more.addEventListener("click", () => {
        const open = text.classList.toggle("expanded");
        more.textContent = open ? "Show less" : "Show more";
        more.setAttribute("aria-expanded", String(open));
      });
      desc.push(more);
    }
  }
  const expires = isSet(k.expires_at)
    ? timeEl(k.expires_at, (new Date(k.expires_at) <= new Date() ? "Expired " : "") + fmtDate(k.expires_at))
    : el("span", { class: "muted" }, "Never");
  return el("tr", { "data-testid": "key-row", "data-key-id": k.id, class: status !== "active" ? "inactive" : null },
    el("td", { "data-label": "Name", class: "cell-name" },
      el("span", { class: "key-name", "data-testid": "key-name" }, k.name || "(unnamed)"), desc),
    el("td", { "data-label": "Key" }, el("code", { class: "hint-code", "data-testid": "key-hint", title: "Key prefix; the full secret is never stored" }, `${k.hint || "kg_"}…`)),
    el("td", { "data-label": "Scopes", class: "cell-scopes" }, scopes.length
      ? el("span", { class: "chips" }, scopes.map((s) => el("span", { class: "chip", title: s }, s.split(":").flatMap((p, i) => i ? [":", el("wbr"), p] : [p]))))
      : el("span", { class: "muted" }, "None")),
    el("td", { "data-label": "IP allowlist", "data-testid": "key-allowlist", class: "cell-allow" }, entries.length
      ? el("details", { class: "allow-details" },
        el("summary", { class: "allow-count", "data-testid": "key-allowlist-toggle" },
          el("svg", { viewBox: "0 0 20 20", "aria-hidden": "true", class: "icon icon-sm" }, el("path", { d: "M10 2l6 3v5c0 4-3 7-6 8-3-1-6-4-6-8V5z" })),
          `${entries.length} ${entries.length === 1 ? "entry" : "entries"}`),
        el("ul", { class: "allow-entries", "data-testid": "key-allowlist-entries" }, entries.map((e) =>
          el("li", {}, el("code", {}, e.cidr), e.label ? el("span", { class: "muted" }, ` ${e.label}`) : null,
            e.state && e.state !== "active" ? el("span", { class: "al-state" }, e.state) : null))))
      : el("span", { class: "muted" }, "All IPs"),
      k.report_only ? el("span", { class: "badge badge-report", "data-testid": "key-report-only", title: "The allowlist logs what it would block and blocks nothing" }, "Report only") : null,
      k.report_only && k.would_have_blocked_24h ? el("span", { class: "would-block", "data-testid": "key-would-block" }, wouldBlockText(k.would_have_blocked_24h)) : null),
    el("td", { "data-label": "Created", class: "cell-date" }, timeEl(k.created_at, fmtDate(k.created_at))),
    el("td", { "data-label": "Last request", "data-testid": "key-last-used", class: "nowrap" }, timeEl(k.last_used_at, fmtAgo(k.last_used_at))),
    el("td", { "data-label": "Expires", "data-testid": "key-expires", class: "cell-date" }, expires),
    el("td", { "data-label": "Status" }, statusBadge(status)),
    el("td", { class: "cell-actions" }, menuBtn));
}

function setupKeyTools() {
  const v = state.view;
  const firstPage = () => { v.page = 0; renderKeys(); };
  $("#keys-tools").addEventListener("submit", (e) => e.preventDefault());
  $("#k-search").addEventListener("input", (e) => { v.q = e.target.value; firstPage(); });
  $("#k-status").addEventListener("change", (e) => { v.status = e.target.value; firstPage(); });
  $("#k-sort").addEventListener("change", (e) => { v.sort = e.target.value; firstPage(); });
  $("#keys-clear").addEventListener("click", () => {
    $("#keys-tools").reset();
    Object.assign(v, { q: "", status: "", sort: "created" });
    firstPage();
  });
  $("#keys-prev").addEventListener("click", () => { v.page = Math.max(0, v.page - 1); renderKeys(); });
  $("#keys-next").addEventListener("click", () => { v.page++; renderKeys(); });
}

// wouldBlockText says what a report-only list let through.
function wouldBlockText(w) {
  if (!w.requests) return "Would have blocked nothing in the last 24 h";
  return `Would have blocked ${w.requests} ${w.requests === 1 ? "request" : "requests"} from ${w.addresses} ${w.addresses === 1 ? "address" : "addresses"} in the last 24 h`;
}

// ---------------------------------------------------------------- menu

let menuFor = null;

function toggleMenu(button, key) {
  if (menuFor && menuFor.button === button) { closeMenu(true); return; }
  closeMenu();
  const menu = $("#menu");
  menuFor = { button, key };
  showMenuItems(key);
  menu.hidden = false;
  button.setAttribute("aria-expanded", "true");
  placeMenu();
  menuItems()[0].focus({ preventScroll: true });
}

// showMenuItems shows the actions that apply to the key as it is now.
function showMenuItems(key) {
  const menu = $("#menu");
  const status = key.status || "active";
  $('[data-menu="revoke"]', menu).hidden = status !== "active";
  $('[data-menu="rotate"]', menu).hidden = status !== "active";
  // A revoked key cannot be changed: no allowlist, no edit.
  $('[data-menu="allowlist"]', menu).hidden = status === "revoked";
  $('[data-menu="edit"]', menu).hidden = status === "revoked";
}

// reanchorMenu keeps an open menu with its key when the list is drawn
// anew under it (buttons: key id -> the new rows' ⋯ buttons). The menu
// moves to the key's new button and offers what the reloaded key allows;
// it closes only if the key's row is gone. Otherwise it would stay bound
// to a button no longer in the page: placed from an empty box on the next
// scroll (the top left corner, away from where the user aims), acting on
// the key as it was, returning focus nowhere.
function reanchorMenu(buttons) {
  if (!menuFor) return;
  const button = buttons.get(menuFor.key.id);
  if (!button) { closeMenu(); return; }
  menuFor.button = button;
  menuFor.key = state.keysById.get(menuFor.key.id) || menuFor.key;
  button.setAttribute("aria-expanded", "true");
  const menu = $("#menu");
  const hadFocus = menu.contains(document.activeElement);
  showMenuItems(menuFor.key);
  placeMenu();
  // An action the key lost (revoked meanwhile) may have held the focus.
  if (hadFocus && !menuItems().includes(document.activeElement)) menuItems()[0].focus({ preventScroll: true });
}

// placeMenu puts the open menu under (or above) its button.
function placeMenu() {
  if (!menuFor) return;
  const menu = $("#menu");
  const r = menuFor.button.getBoundingClientRect();
  const w = menu.offsetWidth;
  const h = menu.offsetHeight;
  let top = r.bottom + 4;
  if (top + h > window.innerHeight - 8) top = Math.max(8, r.top - h - 4);
  menu.style.top = `${top}px`;
  menu.style.left = `${Math.max(8, Math.min(window.innerWidth - w - 8, r.right - w))}px`;
}

function menuItems() {
  return $$("#menu [role=menuitem]").filter((b) => !b.hidden);
}

function closeMenu(refocus = false) {
  if (!menuFor) return;
  $("#menu").hidden = true;
  menuFor.button.setAttribute("aria-expanded", "false");
  if (refocus) menuFor.button.focus();
  menuFor = null;
}

function setupMenu() {
  const menu = $("#menu");
  menu.addEventListener("keydown", (e) => {
    const items = menuItems();
    const i = items.indexOf(document.activeElement);
    if (e.key === "ArrowDown") { e.preventDefault(); items[(i + 1) % items.length].focus(); }
    else if (e.key === "ArrowUp") { e.preventDefault(); items[(i - 1 + items.length) % items.length].focus(); }
    else if (e.key === "Home") { e.preventDefault(); items[0].focus(); }
    else if (e.key === "End") { e.preventDefault(); items[items.length - 1].focus(); }
    else if (e.key === "Escape") { e.preventDefault(); closeMenu(true); }
    else if (e.key === "Tab") closeMenu();
  });
  menu.addEventListener("click", (e) => {
    const item = e.target.closest("[data-menu]");
    if (!item || !menuFor) return;
    const { key, button } = menuFor;
    closeMenu();
    if (item.dataset.menu === "allowlist") openAllowlist(key, button);
    else if (item.dataset.menu === "logs") logs.showKey(key.id);
    else if (item.dataset.menu === "edit") openEditKey(key, button);
    else if (item.dataset.menu === "rotate") openRotate(key, button);
    else openRevoke(key, button);
  });
  document.addEventListener("pointerdown", (e) => {
    if (menuFor && !menu.contains(e.target) && !menuFor.button.contains(e.target)) closeMenu();
  });
  window.addEventListener("resize", placeMenu);
  document.addEventListener("scroll", placeMenu, true);
}

// ---------------------------------------------------------------- dialogs

let returnFocus = null;

function openDialog(dialog, opener) {
  returnFocus = opener || document.activeElement;
  showBanner($("[data-form-error]", dialog) || el("div"), "");
  dialog.showModal();
}

// Dialogs with a form the user may have filled in ask before they throw it
// away: Esc, × and Cancel show "Discard changes?" in the footer, and
// leaving the page asks the browser's question.
const guards = new Map(); // dialog -> () => true when it holds unsaved changes

function guard(dialog, isDirty) {
  guards.set(dialog, isDirty);
  const row = el("div", { class: "confirm-row discard-row", hidden: true, "data-testid": "discard-confirm", role: "alert" },
    el("p", {}, "Discard your unsaved changes?"),
    el("div", { class: "discard-buttons" },
      el("button", { type: "button", class: "btn btn-sm", "data-discard": "keep", "data-testid": "discard-keep" }, "Keep editing"),
      el("button", { type: "button", class: "btn btn-sm btn-danger", "data-discard": "yes", "data-testid": "discard-yes" }, "Discard")));
  $(".dialog-foot", dialog).prepend(row);
  row.addEventListener("click", (e) => {
    const b = e.target.closest("[data-discard]");
    if (!b) return;
    row.hidden = true;
    if (b.dataset.discard === "yes") dialog.close();
    else (dialog.querySelector("[autofocus]") || dialog.querySelector("input, textarea, select"))?.focus();
  });
  dialog.addEventListener("cancel", (e) => { e.preventDefault(); requestClose(dialog); });
  dialog.addEventListener("close", () => { row.hidden = true; });
}

function requestClose(dialog) {
  const dirty = guards.get(dialog);
  const row = $(".discard-row", dialog);
  if (dirty && dirty() && row && row.hidden) {
    row.hidden = false;
    $('[data-discard="keep"]', row).focus();
    return;
  }
  dialog.close();
}

function anyUnsaved() {
  for (const [d, dirty] of guards) if (d.open && dirty()) return true;
  return false;
}

function setupDialogs() {
  window.addEventListener("beforeunload", (e) => {
    if (anyUnsaved()) { e.preventDefault(); e.returnValue = ""; }
  });
  for (const d of $$("dialog")) {
    d.addEventListener("click", (e) => {
      if (e.target.closest("[data-close]")) requestClose(d);
    });
    d.addEventListener("close", () => {
      if (returnFocus && document.contains(returnFocus)) returnFocus.focus();
    });
  }
}

const busyContent = new WeakMap();

// setBusy disables a button while its request runs, with a progress label;
// its own content (icons included) comes back afterwards.
function setBusy(button, busy, text) {
  if (busy) {
    if (!busyContent.has(button)) busyContent.set(button, [...button.childNodes]);
    button.textContent = text;
    button.disabled = true;
  } else {
    const saved = busyContent.get(button);
    if (saved) button.replaceChildren(...saved);
    busyContent.delete(button);
    button.disabled = false;
  }
}

// ---------------------------------------------------------------- create

let createEditor;

function setupCreate() {
  const dialog = $("#create-dialog");
  const form = $("#create-form");
  createEditor = new AllowlistEditor($('[data-allowlist="create"]', dialog), {
    onChange: () => clearFixedBanner(dialog, createEditor),
  });
  guard(dialog, () => !!($("#c-name").value.trim() || $("#c-description").value.trim() || $("#c-scopes").value.trim() ||
    $("#c-expires").value || $("#c-report-only").checked || createEditor.rows.length));
  const open = (e) => {
    form.reset();
    createEditor.setEntries([]);
    $("#c-expires-error").hidden = true;
    $("#c-name-error").hidden = true;
    $("#c-name").removeAttribute("aria-invalid");
    openDialog(dialog, e.currentTarget);
    $("#c-name").focus();
  };
  $("#create-key").addEventListener("click", open);
  $('[data-action="create-key"]').addEventListener("click", open);
  $("#c-name").addEventListener("input", () => {
    if ($("#c-name").value.trim()) {
      $("#c-name-error").hidden = true;
      $("#c-name").removeAttribute("aria-invalid");
    }
  });

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const errBox = $("[data-form-error]", dialog);
    showBanner(errBox, "");
    const name = $("#c-name").value.trim();
    const { errors } = createEditor.showErrors();
    if (!name) {
      const ne = $("#c-name-error");
      ne.textContent = "Give the key a name, so that you can tell it apart later.";
      ne.hidden = false;
      $("#c-name").setAttribute("aria-invalid", "true");
    }
    const exp = expiryInput($("#c-expires"), $("#c-expires-error"));
    if (!name || errors || exp.error) {
      if (exp.error && name && !errors) { $("#c-expires").focus(); return; }
      if (errors) showBanner(errBox, `Fix ${errors === 1 ? "the highlighted entry" : `the ${errors} highlighted entries`} in the IP allowlist before creating the key.`, "entries");
      if (!name) $("#c-name").focus();
      else createEditor.focusFirstError();
      return;
    }
    const scopes = [...new Set($("#c-scopes").value.split(/[\s,]+/).filter(Boolean))];
    const body = {
      name,
      description: $("#c-description").value.trim(),
      scopes,
      allowlist: createEditor.entries(),
      report_only: $("#c-report-only").checked,
    };
    if (exp.at) body.expires_at = exp.at;
    const btn = $('[data-testid="create-submit"]');
    setBusy(btn, true, "Creating…");
    try {
      const created = await api.createKey(body);
      dialog.close();
      showSecret(created);
      loadKeys();
    } catch (err) {
      if (err.status === 401) return;
      if (err.details.length) {
        const placed = createEditor.applyServerErrors(err.details);
        showBanner(errBox, placed === err.details.length
          ? `The server rejected ${placed === 1 ? "an allowlist entry" : `${placed} allowlist entries`}: see the highlighted ${placed === 1 ? "row" : "rows"}. Nothing was created.`
          : `${errorText(err)} ${err.details.map((d) => sentence(d.message)).join(" ")}`);
        createEditor.focusFirstError();
      } else {
        showBanner(errBox, errorText(err));
      }
    } finally {
      setBusy(btn, false);
    }
  });
}

// expiryInput reads a datetime-local input (local time) as an RFC 3339
// time; a past time is refused beside the field, as the server would.
function expiryInput(input, errEl) {
  errEl.hidden = true;
  input.removeAttribute("aria-invalid");
  if (!input.value) return { at: null };
  const d = new Date(input.value);
  let msg = "";
  if (isNaN(d)) msg = "Enter a date and time.";
  else if (d <= new Date()) msg = "The expiry is in the past: pick a future time, or clear it for a key that does not expire.";
  if (msg) {
    errEl.textContent = msg;
    errEl.hidden = false;
    input.setAttribute("aria-invalid", "true");
    return { error: msg };
  }
  return { at: d.toISOString() };
}

// clearFixedBanner hides a dialog's "fix the highlighted entry" banner once
// no entry is in error any more.
function clearFixedBanner(dialog, editor) {
  const box = $("[data-form-error]", dialog);
  if (!box.hidden && box.dataset.kind === "entries" && !editor.validate().errors) showBanner(box, "");
}

// ---------------------------------------------------------------- edit key

let editing = null;

function editKeyValues() {
  return {
    name: $("#e-name").value.trim(),
    description: $("#e-description").value.trim(),
    scopes: [...new Set($("#e-scopes").value.split(/[\s,]+/).filter(Boolean))].join(" "),
    expires: $("#e-expires").value,
  };
}

function openEditKey(key, opener) {
  editing = { key };
  $("#editkey-key").replaceChildren(el("code", {}, `${key.hint || ""}…`), " · ", el("code", {}, key.id));
  $("#e-name").value = key.name || "";
  $("#e-description").value = key.description || "";
  $("#e-scopes").value = (key.scopes || []).join(", ");
  $("#e-expires").value = isSet(key.expires_at) ? toLocalInput(new Date(key.expires_at)) : "";
  for (const id of ["#e-name-error", "#e-expires-error"]) $(id).hidden = true;
  editing.initial = editKeyValues();
  openDialog($("#editkey-dialog"), opener);
  $("#e-name").focus();
}

function setupEditKey() {
  const dialog = $("#editkey-dialog");
  guard(dialog, () => !!editing && JSON.stringify(editKeyValues()) !== JSON.stringify(editing.initial));
  $("#e-expires-clear").addEventListener("click", () => { $("#e-expires").value = ""; $("#e-expires-error").hidden = true; });
  $("#editkey-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const errBox = $("[data-form-error]", dialog);
    showBanner(errBox, "");
    const v = editKeyValues(), was = editing.initial, key = editing.key;
    const body = {};
    if (!v.name) {
      $("#e-name-error").textContent = "A key needs a name.";
      $("#e-name-error").hidden = false;
      $("#e-name").focus();
      return;
    }
    $("#e-name-error").hidden = true;
    if (v.name !== was.name) body.name = v.name;
    if (v.description !== was.description) body.description = v.description;
    if (v.scopes !== was.scopes) body.scopes = v.scopes ? v.scopes.split(" ") : [];
    if (v.expires !== was.expires) {
      if (!v.expires) body.expires_at = null;
      else {
        const exp = expiryInput($("#e-expires"), $("#e-expires-error"));
        if (exp.error) { $("#e-expires").focus(); return; }
        body.expires_at = exp.at;
      }
    }
    if (!Object.keys(body).length) { dialog.close(); return; }
    const btn = $('[data-testid="editkey-save"]');
    setBusy(btn, true, "Saving…");
    try {
      await api.patchKey(key.id, body);
      editing.initial = v;
      dialog.close();
      toast(`"${v.name}" saved.`);
      loadKeys();
    } catch (err) {
      if (err.status !== 401) showBanner(errBox, `Nothing was saved. ${errorText(err)}`);
    } finally {
      setBusy(btn, false);
    }
  });
}

// ---------------------------------------------------------------- secret

function showSecret(key, rotated = false) {
  const dialog = $("#secret-dialog");
  $("#secret-title").textContent = rotated ? "New secret created" : "API key created";
  const prev = key.previous_secret;
  $("#secret-name").textContent = key.name;
  $("#secret-value").value = key.secret || "";
  $("#secret-copied").textContent = "";
  const entries = key.allowlist || [];
  $("#secret-summary").replaceChildren(
    el("dl", {},
      el("dt", {}, "Key prefix"), el("dd", {}, el("code", {}, `${key.hint || ""}…`)),
      el("dt", {}, "Scopes"), el("dd", {}, (key.scopes || []).join(", ") || "None"),
      el("dt", {}, "IP allowlist"), el("dd", {}, entries.length
        ? el("ul", { class: "plain" }, entries.map((e) => el("li", {}, el("code", {}, e.cidr), e.label ? ` — ${e.label}` : "")))
        : "All IPs"),
      rotated && prev ? [el("dt", {}, "Old secret"), el("dd", { "data-testid": "secret-old" }, el("code", {}, `${prev.hint}…`),
        prev.active ? ` works until ${fmtTime(prev.expires_at)}` : " no longer works")] : null));
  openDialog(dialog, $("#create-key"));
  $("#secret-value").select();
  $("#secret-copy").focus();
}

function setupSecret() {
  const dialog = $("#secret-dialog");
  // Escape must not throw away a secret that cannot be shown again.
  dialog.addEventListener("cancel", (e) => e.preventDefault());
  $("#secret-copy").addEventListener("click", async () => {
    const input = $("#secret-value");
    let ok = false;
    try {
      await navigator.clipboard.writeText(input.value);
      ok = true;
    } catch {
      input.select();
      ok = document.execCommand && document.execCommand("copy");
    }
    $("#secret-copied").textContent = ok ? "Copied to the clipboard." : "Copy failed: select the secret and copy it by hand.";
    if (ok) $("#secret-copy").textContent = "Copied";
  });
  // Wipe the secret as the dialog closes, synchronously: the dialog's
  // "close" event is dispatched later, as a task, and must not be relied on.
  const wipe = () => {
    $("#secret-value").value = "";
    $("#secret-copy").textContent = "Copy";
  };
  $("#secret-done").addEventListener("click", () => {
    wipe();
    dialog.close();
  });
  dialog.addEventListener("close", wipe);
}

// ---------------------------------------------------------------- allowlist

const edit = {
  key: null,
  editor: null,
  original: [],
  etag: "", // ETag of the stored list the edit started from ("" until read)
  recent: null, // Map ip -> {count, last, addr}, or null when unknown
  dirty: false, // the user has changed the list since it opened
  confirming: false,
};

function setupAllowlist() {
  const dialog = $("#allowlist-dialog");
  edit.editor = new AllowlistEditor($('[data-allowlist="edit"]', dialog), {
    onChange: () => { edit.dirty = true; edit.dry = undefined; resetConfirm(); clearFixedBanner(dialog, edit.editor); renderImpact(); scheduleDryRun(); },
  });
  guard(dialog, () => !!edit.key && edit.dirty && editSnapshot() !== edit.snapshot);
  $("#suggest-open").addEventListener("click", openSuggestions);
  $("#a-report-only").addEventListener("change", () => { edit.dirty = true; resetConfirm(); renderImpact(); });
  $("#allowlist-form").addEventListener("submit", (e) => {
    e.preventDefault();
    saveAllowlist();
  });
}

// editSnapshot is the editor's list and report-only switch, to compare
// with what was loaded.
function editSnapshot() {
  return JSON.stringify([edit.editor.entries(), $("#a-report-only").checked]);
}

async function openAllowlist(key, opener, opts = {}) {
  const dialog = $("#allowlist-dialog");
  edit.key = key;
  edit.dirty = false;
  edit.recent = undefined;
  edit.etag = "";
  edit.original = key.allowlist || [];
  edit.editor.setEntries(edit.original);
  edit.dry = undefined;
  $("#a-report-only").checked = !!key.report_only;
  edit.snapshot = editSnapshot();
  const wb = $("#a-would-block");
  wb.hidden = !(key.report_only && key.would_have_blocked_24h);
  if (!wb.hidden) wb.textContent = wouldBlockText(key.would_have_blocked_24h) + ".";
  $("#suggest").hidden = true;
  resetConfirm();
  $("#allowlist-key").replaceChildren(el("strong", {}, key.name), " · ", el("code", {}, `${key.hint || ""}…`));
  renderImpact();
  openDialog(dialog, opener);
  const first = $('[data-testid="al-cidr"]', dialog) || $('[data-testid="al-add"]', dialog);
  first.focus();
  const [entries, recent] = await Promise.allSettled([api.getAllowlist(key.id), recentIPs(key.id)]);
  if (edit.key !== key) return;
  // The list may have changed since the key list was loaded: show the
  // stored one, unless the user has started editing.
  if (entries.status === "fulfilled") {
    edit.original = entries.value.entries;
    edit.etag = entries.value.etag;
    if (!edit.dirty) { edit.editor.setEntries(entries.value.entries); edit.snapshot = editSnapshot(); clearFixedBanner(dialog, edit.editor); }
    else edit.editor.setHits(Object.fromEntries(entries.value.entries.map((e) => [e.id, { hits: e.hits_24h, last: e.last_seen_at }])));
  }
  edit.recent = recent.status === "fulfilled" ? recent.value : null;
  if (opts.prefill) {
    const row = edit.editor.addEntry(opts.prefill, opts.label || "");
    row.cidrInput.scrollIntoView({ block: "center" });
    row.cidrInput.focus({ preventScroll: true });
  }
  renderImpact();
  scheduleDryRun();
}

// The dry run: the server says what the list as edited would change on the
// key's last 24 hours of traffic. Debounced; only the newest answer counts.
let dryTimer = 0, drySeq = 0;
function scheduleDryRun() {
  clearTimeout(dryTimer);
  dryTimer = setTimeout(runDryRun, 250);
}

async function runDryRun() {
  const key = edit.key;
  if (!key) return;
  const seq = ++drySeq;
  const { errors } = edit.editor.validate();
  if (errors) { edit.dry = undefined; renderImpact(); return; }
  try {
    const res = await api.dryRunAllowlist(key.id, edit.editor.entries());
    if (seq !== drySeq || edit.key !== key) return;
    edit.dry = res;
  } catch (err) {
    if (seq !== drySeq) return;
    edit.dry = err.details && err.details.length ? undefined : null;
  }
  renderImpact();
}

async function openSuggestions() {
  const box = $("#suggest");
  const key = edit.key;
  box.hidden = false;
  box.replaceChildren(el("p", { class: "muted" }, "Reading this key's traffic of the last 24 hours…"));
  let res;
  try {
    res = await api.suggestions(key.id, { since: "24h" });
  } catch (err) {
    box.replaceChildren(el("p", { class: "field-error" }, "Could not read the traffic. " + errorText(err)));
    return;
  }
  if (edit.key !== key) return;
  const items = res.suggestions || [];
  if (!items.length) {
    box.replaceChildren(el("h3", {}, "Suggestions from recent traffic"), el("p", { class: "muted" }, "No requests with this key in the last 24 hours."));
    return;
  }
  const checks = [];
  const list = el("ul", { "data-testid": "suggest-list" }, items.map((sg) => {
    const bad = sg.flags.includes("non_public");
    const cb = el("input", { type: "checkbox", "data-cidr": sg.cidr, "data-testid": "suggest-check",
      checked: !sg.allowed && !sg.flags.length ? true : null, disabled: bad || sg.allowed ? true : null, "aria-label": `Add ${sg.cidr}` });
    checks.push(cb);
    return el("li", { "data-testid": "suggest-item", "data-cidr": sg.cidr }, cb,
      el("code", {}, sg.cidr),
      el("span", { class: "muted" }, `${sg.requests} ${sg.requests === 1 ? "request" : "requests"}${sg.addresses > 1 ? ` from ${sg.addresses} addresses` : ""}, last ${fmtAgo(sg.last_seen).toLowerCase()}`),
      sg.allowed ? el("span", { class: "badge badge-active" }, "already allowed") : null,
      sg.flags.includes("trusted_proxy") ? el("span", { class: "badge badge-warn", title: "A trusted proxy's own address arrived as the client: its X-Forwarded-For is probably missing" }, "your proxy?") : null,
      bad ? el("span", { class: "badge badge-warn", title: "A private or reserved address: the allowlist cannot use it" }, "not public") : null);
  }));
  const add = el("button", { type: "button", class: "btn btn-sm btn-primary", "data-testid": "suggest-add" }, "Add selected");
  add.addEventListener("click", () => {
    for (const cb of checks) if (cb.checked && !cb.disabled) edit.editor.addEntry(cb.dataset.cidr, "From traffic");
    box.hidden = true;
  });
  box.replaceChildren(el("h3", {}, "Suggestions from recent traffic"),
    el("p", { class: "hint" }, "Addresses that used this key in the last 24 hours, grouped into ranges. Pick the ones to add; nothing is saved until you save the list."),
    list, add);
}

// recentIPs collects the distinct client IPs of a key's recent requests.
async function recentIPs(keyID) {
  const res = await api.logs({ key_id: keyID, limit: 500 });
  const ips = new Map();
  for (const it of res.items || []) {
    if (!it.ip) continue;
    let r = ips.get(it.ip);
    if (!r) {
      const addr = parseAddr(it.ip);
      if (!addr) continue;
      r = { ip: it.ip, addr, count: 0, last: it.time, allowed: 0 };
      ips.set(it.ip, r);
    }
    r.count++;
    if (it.status >= 200 && it.status < 300) r.allowed++;
    if ((it.time || "") > (r.last || "")) r.last = it.time;
  }
  return ips;
}

function originalPrefixes() {
  return edit.original.map((e) => parseEntry(e.cidr).prefix).filter(Boolean);
}

function impact() {
  const rows = edit.editor.entries();
  const prefixes = edit.editor.prefixes();
  const result = { empty: rows.length === 0, wasEmpty: edit.original.length === 0, blocked: [], allowed: [] };
  if (edit.dry) {
    // The server's answer: addresses newly blocked on the last 24 h.
    result.dry = edit.dry;
    result.blocked = edit.dry.newly_blocked.ips.map((b) => ({ ip: b.ip, count: b.requests, wasOK: true }));
    return result;
  }
  if (!edit.recent) return result;
  const before = originalPrefixes();
  for (const r of edit.recent.values()) {
    const ok = rows.length === 0 || prefixes.some((p) => contains(p, r.addr));
    const wasOK = before.length === 0 || before.some((p) => contains(p, r.addr));
    (ok ? result.allowed : result.blocked).push({ ...r, wasOK });
  }
  result.blocked.sort((a, b) => (b.last || "").localeCompare(a.last || ""));
  return result;
}

function renderImpact() {
  const box = $("#impact");
  const im = impact();
  const parts = [];
  let kind = "info";
  if (im.empty) {
    kind = im.wasEmpty ? "info" : "warning";
    parts.push(el("p", { "data-testid": "impact-empty" }, el("strong", {}, "An empty list allows all IPs."),
      im.wasEmpty ? " Add entries to restrict this key." : " Saving removes every restriction: the key will work from any IP address."));
  } else if (im.dry) {
    const d = im.dry;
    const nb = d.newly_blocked, na = d.newly_allowed;
    const reportOnly = $("#a-report-only").checked;
    if (nb.requests > 0) {
      kind = "warning";
      parts.push(el("p", { "data-testid": "impact-newly-blocked" }, el("strong", {},
        `This change would ${reportOnly ? "report (not block, while report-only is on)" : "newly block"} ${nb.requests} ${nb.requests === 1 ? "request" : "requests"} from ${nb.addresses} ${nb.addresses === 1 ? "address" : "addresses"} of the last 24 h:`)));
      parts.push(el("ul", { class: "ip-list", "data-testid": "impact-blocked" }, nb.ips.slice(0, 8).map((b) =>
        el("li", { "data-ip": b.ip }, el("code", {}, b.ip),
          el("span", { class: "muted" }, ` ${b.requests} ${b.requests === 1 ? "request" : "requests"}`),
          el("span", { class: "badge badge-warn" }, "currently allowed")))));
      if (nb.ips.length > 8) parts.push(el("p", { class: "muted" }, `…and ${nb.addresses - 8} more.`));
    } else {
      kind = "ok";
      const total = nb.requests + na.requests + d.unchanged.requests;
      parts.push(el("p", { "data-testid": "impact-ok" }, total
        ? `Nothing that used this key in the last 24 h would be newly blocked${na.requests ? `; ${na.requests} ${na.requests === 1 ? "request" : "requests"} from ${na.addresses} ${na.addresses === 1 ? "address" : "addresses"} would now be allowed` : ""}.`
        : "This key has no requests in the last 24 h to check the list against. Make sure your server IPs are correct before saving."));
    }
  } else if (edit.recent === undefined) {
    parts.push(el("p", { class: "muted" }, "Checking this key's recent client IPs…"));
  } else if (edit.recent === null) {
    parts.push(el("p", {}, "Could not read the usage logs to check this list against the key's recent client IPs. Make sure your server IPs are correct before saving."));
  } else if (edit.recent.size === 0) {
    parts.push(el("p", {}, "This key has no recent requests, so nothing can be checked against its client IPs yet. Make sure your server IPs are correct before saving: wrong entries will block your own requests."));
  } else if (im.blocked.some((b) => b.wasOK)) {
    // Only addresses the current list allows count: one it blocks already
    // is not news (an unchanged list blocks nothing new).
    const fresh = im.blocked.filter((b) => b.wasOK);
    kind = "warning";
    parts.push(el("p", {}, el("strong", {},
      `This change would newly block ${fresh.length} of the key's ${edit.recent.size} recent client ${edit.recent.size === 1 ? "IP" : "IPs"}:`)));
    parts.push(el("ul", { class: "ip-list", "data-testid": "impact-blocked" }, fresh.slice(0, 8).map((b) =>
      el("li", { "data-ip": b.ip },
        el("code", {}, b.ip),
        el("span", { class: "muted" }, ` ${b.count} ${b.count === 1 ? "request" : "requests"}, last ${fmtAgo(b.last).toLowerCase()}`),
        b.wasOK ? el("span", { class: "badge badge-warn" }, "currently allowed") : null))));
    if (fresh.length > 8) parts.push(el("p", { class: "muted" }, `…and ${fresh.length - 8} more.`));
  } else {
    kind = "ok";
    const still = im.blocked.length;
    parts.push(el("p", { "data-testid": "impact-ok" }, still
      ? `No recent client IP of this key would be newly blocked; ${still} already blocked ${still === 1 ? "stays" : "stay"} blocked.`
      : `All ${edit.recent.size} recent client ${edit.recent.size === 1 ? "IP" : "IPs"} of this key stay allowed.`));
  }
  box.className = `impact impact-${kind}`;
  box.replaceChildren(el("h3", {}, "What this change means"), ...parts,
    el("p", { class: "fine-print" }, "Changes apply to the next request checked by this daemon, and within 2 seconds on every daemon of a fleet."));
}

function resetConfirm() {
  edit.confirming = false;
  $("#allowlist-confirm").hidden = true;
  $("#allowlist-save").textContent = "Save";
  $("#allowlist-save").classList.remove("btn-danger");
}

async function saveAllowlist() {
  const dialog = $("#allowlist-dialog");
  const errBox = $("[data-form-error]", dialog);
  showBanner(errBox, "");
  const { errors } = edit.editor.showErrors();
  if (errors) {
    showBanner(errBox, `Nothing was saved. Fix ${errors === 1 ? "the highlighted entry" : `the ${errors} highlighted entries`} first.`, "entries");
    edit.editor.focusFirstError();
    return;
  }
  const im = impact();
  const risky = (im.blocked.some((b) => b.wasOK) && !$("#a-report-only").checked) || (im.empty && !im.wasEmpty);
  if (risky && !edit.confirming) {
    edit.confirming = true;
    const text = im.empty
      ? "Saving an empty list lets this key be used from any IP address."
      : `Saving blocks ${im.blocked.filter((b) => b.wasOK).map((b) => b.ip).join(", ")}, which used this key successfully. Save anyway?`;
    $("#allowlist-confirm-text").textContent = text;
    $("#allowlist-confirm").hidden = false;
    const save = $("#allowlist-save");
    save.textContent = "Save anyway";
    save.classList.add("btn-danger");
    save.focus();
    return;
  }
  const btn = $("#allowlist-save");
  setBusy(btn, true, "Saving…");
  try {
    await api.putAllowlist(edit.key.id, edit.editor.entries(), edit.etag);
    const ro = $("#a-report-only").checked;
    if (ro !== !!edit.key.report_only) await api.patchKey(edit.key.id, { report_only: ro });
    const name = edit.key.name;
    dialog.close();
    toast(`IP allowlist of "${name}" saved. It applies to the next request.`);
    loadKeys();
  } catch (err) {
    if (err.status === 401) return;
    if (err.status === 412) {
      showStale(errBox);
    } else if (err.details.length) {
      const placed = edit.editor.applyServerErrors(err.details);
      showBanner(errBox, placed === err.details.length
        ? `Nothing was saved: the server rejected ${placed === 1 ? "an entry" : `${placed} entries`}; see the highlighted ${placed === 1 ? "row" : "rows"}.`
        : `Nothing was saved. ${errorText(err)} ${err.details.map((d) => sentence(d.message)).join(" ")}`);
      edit.editor.focusFirstError();
    } else {
      showBanner(errBox, `Nothing was saved. ${errorText(err)}`);
    }
  } finally {
    setBusy(btn, false);
    resetConfirm();
  }
}

// ---------------------------------------------------------------- rotate

let rotating = null;

function openRotate(key, opener) {
  rotating = key;
  $("#rotate-name").textContent = key.name;
  $("#rotate-hint").textContent = `${key.hint || ""}…`;
  $("#rotate-overlap").value = "24h";
  openDialog($("#rotate-dialog"), opener);
  $("#rotate-overlap").focus();
}

function setupRotate() {
  const dialog = $("#rotate-dialog");
  $("#rotate-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const btn = $('[data-testid="rotate-confirm"]');
    setBusy(btn, true, "Rotating…");
    try {
      const key = await api.rotateKey(rotating.id, $("#rotate-overlap").value);
      dialog.close();
      showSecret(key, true);
      loadKeys();
    } catch (err) {
      if (err.status !== 401) showBanner($("[data-form-error]", dialog), errorText(err));
    } finally {
      setBusy(btn, false);
    }
  });
}

// showStale explains a 412: someone changed the list since the dialog read
// it. Nothing was saved; Reload shows their list (the user's edits are
// dropped, and the next Save starts from the new version).
function showStale(errBox) {
  const reload = el("button", { type: "button", class: "btn btn-sm", "data-testid": "al-reload" }, "Reload the current list");
  reload.addEventListener("click", async () => {
    setBusy(reload, true, "Reloading…");
    try {
      const cur = await api.getAllowlist(edit.key.id);
      edit.original = cur.entries;
      edit.etag = cur.etag;
      edit.editor.setEntries(cur.entries);
      edit.dirty = false;
      edit.snapshot = editSnapshot();
      showBanner(errBox, "");
      resetConfirm();
      renderImpact();
      toast("Reloaded the current IP allowlist. Make your change again and save.");
    } catch (err) {
      if (err.status !== 401) showBanner(errBox, `Could not reload the list. ${errorText(err)}`);
    }
  });
  showBanner(errBox, "");
  errBox.replaceChildren(
    el("p", { "data-testid": "al-stale" }, el("strong", {}, "A colleague changed this IP allowlist since you opened it."),
      " Nothing was saved, so their change is kept. Reload the list to see it, then make your change again."),
    reload);
  errBox.hidden = false;
}

// ---------------------------------------------------------------- revoke

let revoking = null;

function openRevoke(key, opener) {
  revoking = key;
  $("#revoke-name").textContent = key.name;
  $("#revoke-hint").textContent = `${key.hint || ""}…`;
  openDialog($("#revoke-dialog"), opener);
  $('#revoke-dialog [data-close]').focus();
}

function setupRevoke() {
  const dialog = $("#revoke-dialog");
  $("#revoke-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const btn = $('[data-testid="revoke-confirm"]');
    setBusy(btn, true, "Revoking…");
    try {
      await api.revokeKey(revoking.id);
      dialog.close();
      toast(`"${revoking.name}" was revoked.`);
      loadKeys();
    } catch (err) {
      if (err.status !== 401) showBanner($("[data-form-error]", dialog), errorText(err));
    } finally {
      setBusy(btn, false);
    }
  });
}

// ---------------------------------------------------------------- logs

const PAGE_SIZE = 50;
const RANGES = { "1h": 3600e3, "24h": 86400e3, "7d": 7 * 86400e3, "30d": 30 * 86400e3 };

const logs = {
  cursors: [""], // cursor of each visited page; the last is the current one
  next: "",
  params: null, // filters of the table as shown; Export uses exactly these
  seq: 0,
  shown: false,

  reset() {
    this.cursors = [""];
    this.next = "";
    this.params = null;
    this.shown = false;
  },

  show() {
    if (!state.keysLoaded) loadKeys();
    if (!this.shown) {
      this.shown = true;
      this.apply();
    }
  },

  // showKey opens the logs filtered to one key.
  // The other filters are cleared: filters set earlier (a status, a time
  // range) would otherwise hide the key's requests.
  showKey(id) {
    this.shown = true;
    selectTab("logs", true);
    resetLogFilters();
    $("#f-key").value = id;
    this.apply();
  },

  // poll reloads the first page quietly (Live): relative ranges move with
  // the clock, and the rows are redrawn only when they changed.
  async poll() {
    if (this.polling || !this.params || this.cursors.length !== 1 || !$("#logs-live").checked) return;
    const { params, error } = this.filters();
    if (error) return;
    this.polling = true;
    this.loadChart();
    const seq = this.seq;
    try {
      const res = await api.logs({ ...params, limit: PAGE_SIZE });
      if (seq !== this.seq || this.cursors.length !== 1) return;
      const items = res.items || [];
      this.params = params;
      this.next = res.next_cursor || "";
      if (JSON.stringify(items) !== JSON.stringify(this.items)) {
        this.items = items;
        this.renderRows(items);
      }
      $("#logs-live-at").textContent = `Updated ${fmtZoned(new Date().toISOString(), this.utc())}`;
    } catch { /* the next tick tries again; Refresh shows the error */ } finally {
      this.polling = false;
    }
  },

  utc() { return $("#f-tz").value === "utc"; },

  renderKeyOptions() {
    const sel = $("#f-key");
    const cur = sel.value;
    sel.replaceChildren(el("option", { value: "" }, "All keys"),
      ...state.keys.map((k) => el("option", { value: k.id },
        `${k.name} (${k.hint || k.id}…)${(k.status || "active") !== "active" ? ` · ${k.status}` : ""}`)));
    sel.value = state.keysById.has(cur) ? cur : "";
    if (this.params) this.renderRows(this.items || []);
  },

  // filters reads the filter form into API query parameters, or returns
  // an error message.
  filters() {
    const p = {
      key_id: $("#f-key").value,
      method: $("#f-method").value,
      status: $("#f-status").value,
      ip: $("#f-ip").value.trim(),
      path_prefix: $("#f-path").value,
    };
    if (p.ip && !parseAddr(p.ip)) return { error: `"${p.ip}" is not an IP address: enter one address, such as 203.0.113.5 or 2001:db8::1.` };
    const range = $("#f-range").value;
    if (RANGES[range]) {
      p.from = new Date(Date.now() - RANGES[range]).toISOString();
    } else if (range === "custom") {
      const from = $("#f-from").value, to = $("#f-to").value;
      if (from) p.from = new Date(from).toISOString();
      if (to) p.to = new Date(to).toISOString();
      if (from && to && new Date(from) > new Date(to)) return { error: "The start of the time range is after its end." };
    }
    return { params: p };
  },

  // apply re-reads the filters and loads the first page.
  apply() {
    const { params, error } = this.filters();
    if (error) { showBanner($("#logs-error"), error); return; }
    this.params = params;
    this.cursors = [""];
    this.load();
    this.loadChart();
  },

  // loadChart redraws the requests chart for the key filter's key (or all
  // keys): its period is its own, the other filters do not apply to it.
  loadChart() {
    if (!this.chart) return;
    const id = $("#f-key").value;
    const k = state.keysById.get(id);
    $("#chart-scope").textContent = id ? `for ${k ? k.name : id}` : "all keys";
    this.chart.load(id);
  },

  async load() {
    const seq = ++this.seq;
    const cursor = this.cursors[this.cursors.length - 1];
    $("#logs-loading").hidden = false;
    $("#panel-logs").setAttribute("aria-busy", "true");
    try {
      const res = await api.logs({ ...this.params, limit: PAGE_SIZE, cursor });
      if (seq !== this.seq) return;
      this.items = res.items || [];
      this.next = res.next_cursor || "";
      showBanner($("#logs-error"), "");
      this.renderRows(this.items);
    } catch (err) {
      if (seq !== this.seq || err.status === 401) return;
      showBanner($("#logs-error"), "Could not load the usage logs. " + errorText(err));
    } finally {
      if (seq === this.seq) {
        $("#logs-loading").hidden = true;
        $("#panel-logs").removeAttribute("aria-busy");
      }
    }
  },

  renderRows(items) {
    const filtered = Object.entries(this.params || {}).some(([k, v]) => v && k !== "from") || $("#f-range").value !== "";
    $("#logs-empty").hidden = items.length > 0;
    $(".logs-table").hidden = items.length === 0;
    $("#logs-empty-title").textContent = filtered ? "No requests match these filters" : "No requests logged yet";
    $("#logs-empty-text").textContent = filtered
      ? "Try a wider time range, or clear the filters."
      : "Every request checked with an API key, allowed or blocked, appears here within a couple of seconds.";
    // A reload (Live, or the key list's: rows show the keys' names)
    // keeps the rows it would draw the same.
    const utc = this.utc();
    redraw($("#logs-body"), items, (it) => logSignature(it, utc), (it) => {
      const key = state.keysById.get(it.key_id);
      const s = Number(it.status);
      const cls = s >= 200 && s < 300 ? "ok" : s === 401 ? "unauth" : s === 403 ? "forbidden" : "other";
      return el("tr", { "data-testid": "log-row", "data-status": it.status, "data-ip": it.ip, "data-key-id": it.key_id || "" },
        el("td", { "data-label": "Time", class: "nowrap", "data-testid": "log-time" }, timeEl(it.time, fmtZoned(it.time, utc))),
        el("td", { "data-label": "API key", class: "cell-key" }, key
          ? el("span", { class: "log-key", title: `${key.name} · ${key.hint || ""}… · ${it.key_id}` }, key.name)
          : it.key_id ? el("code", {}, it.key_id) : el("span", { class: "muted", title: "The request carried no valid key" }, "Unknown key"),
          it.key_id ? copyButton(it.key_id, "key id", "log-copy-key") : null),
        el("td", { "data-label": "IP address", class: "nowrap" }, el("code", {}, it.ip || "—"), it.ip ? copyButton(it.ip, "IP address", "log-copy-ip") : null),
        el("td", { "data-label": "Method" }, el("span", { class: "method" }, it.method || "—")),
        el("td", { "data-label": "Path", class: "cell-path" }, el("code", { title: it.path || "" }, it.path || "—")),
        el("td", { "data-label": "Status" }, el("span", { class: `status status-${cls}`, "data-testid": "log-status" }, String(it.status))),
        el("td", { "data-label": "Error code" }, it.code ? el("code", { class: "err-code" }, it.code) : el("span", { class: "muted" }, "—"),
          it.report_only ? el("span", { class: "badge badge-report", title: "Report-only: allowed, but the allowlist would have blocked it" }, "reported") : null,
          it.code === "IP_NOT_ALLOWED" && key && it.ip ? allowButton(key, it.ip) : null),
        el("td", { "data-label": "Node", "data-testid": "log-node" }, it.node ? el("code", { title: "The keygate daemon that decided the request" }, it.node) : el("span", { class: "muted" }, "—")));
    });
    const page = this.cursors.length - 1;
    const first = page * PAGE_SIZE + 1;
    $("#logs-pager").hidden = items.length === 0 && page === 0;
    $("#logs-range").textContent = items.length
      ? `Showing ${first}–${first + items.length - 1}${this.next ? "" : " (end of results)"}`
      : "No more results";
    $("#logs-prev").disabled = page === 0;
    $("#logs-next").disabled = !this.next;
  },

  async exportCSV(button) {
    if (!this.params) this.apply();
    setBusy(button, true, "Exporting…");
    try {
      const res = await api.exportCSV(this.params);
      const blob = await res.blob();
      const cd = res.headers.get("Content-Disposition") || "";
      const m = /filename="?([^";]+)"?/.exec(cd);
      const stamp = new Date().toISOString().replace(/[:]/g, "").replace(/\..*$/, "Z");
      const name = m ? m[1] : `keygate-usage-logs-${stamp}.csv`;
      const url = URL.createObjectURL(new Blob([blob], { type: "text/csv" }));
      const a = el("a", { href: url, download: name, hidden: true });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 30000);
      toast(`Exported ${name}.`);
    } catch (err) {
      if (err.status !== 401) showBanner($("#logs-error"), "Export failed. " + errorText(err));
    } finally {
      setBusy(button, false);
    }
  },
};

// copyButton copies text to the clipboard, saying so on the button.
function copyButton(text, what, testid) {
  const b = el("button", { type: "button", class: "icon-btn copy-btn", "aria-label": `Copy ${what} ${text}`, title: `Copy ${what}`, "data-testid": testid },
    el("svg", { viewBox: "0 0 20 20", "aria-hidden": "true", class: "icon icon-sm" }, el("rect", { x: "7", y: "7", width: "10", height: "10", rx: "2" }), el("path", { d: "M4 13V5a1 1 0 0 1 1-1h8" })));
  b.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(text);
      b.dataset.copied = "true";
      toast(`Copied ${what} ${text}.`);
    } catch {
      toast(`Could not copy the ${what}: select it and copy it by hand.`, "error");
    }
  });
  return b;
}

// logSignature is everything a log row shows: the record, its key's name
// and hint (or that it has none), and the zone of its time.
function logSignature(it, utc) {
  const key = state.keysById.get(it.key_id);
  return `${JSON.stringify(it)}\u0000${key ? `${key.name}\u0000${key.hint}` : ""}\u0000${utc}`;
}

function resetLogFilters() {
  const tz = $("#f-tz").value;
  $("#logs-filters").reset();
  $("#f-tz").value = tz;
  for (const f of $$(".custom-range")) f.hidden = true;
}

// allowButton opens the key's allowlist editor with ip filled in.
function allowButton(key, ip) {
  const b = el("button", { type: "button", class: "link-btn", "data-testid": "log-allow-ip" }, "Allow this IP…");
  b.addEventListener("click", () => openAllowlist(state.keysById.get(key.id) || key, b, { prefill: ip, label: "Allowed from the usage logs" }));
  return b;
}

function setupLogs() {
  logs.chart = new RequestsChart($("#requests-chart"), () => logs.utc());
  const form = $("#logs-filters");
  form.addEventListener("submit", (e) => { e.preventDefault(); logs.apply(); });
  // The search boxes apply as one types, once typing pauses; their
  // "change" (on leaving the box) is the form's.
  let typing = 0;
  for (const box of [$("#f-ip"), $("#f-path")]) {
    box.addEventListener("input", () => { clearTimeout(typing); typing = setTimeout(() => logs.apply(), 400); });
    box.addEventListener("keydown", (e) => { if (e.key === "Enter") { e.preventDefault(); clearTimeout(typing); logs.apply(); } });
  }
  form.addEventListener("change", (e) => {
    if (e.target.id === "f-tz") { logs.renderRows(logs.items || []); logs.chart.redraw(); return; }
    if (e.target.id === "f-range") {
      const custom = e.target.value === "custom";
      for (const f of $$(".custom-range")) f.hidden = !custom;
      if (custom && !$("#f-from").value) {
        const d = new Date(Date.now() - 86400e3);
        $("#f-from").value = toLocalInput(d);
      }
    }
    logs.apply();
  });
  $("#filters-reset").addEventListener("click", () => {
    resetLogFilters();
    logs.apply();
  });
  // Live: poll every 2 s while the logs tab is shown and the browser tab is
  // visible; a hidden tab polls nothing and catches up when shown again.
  const tick = () => {
    if (document.visibilityState === "visible" && !$("#panel-logs").hidden && session.token) logs.poll();
  };
  setInterval(tick, 2000);
  document.addEventListener("visibilitychange", tick);
  $("#logs-live").addEventListener("change", tick);
  $("#logs-refresh").addEventListener("click", () => { loadKeys(); logs.apply(); });
  $("#logs-next").addEventListener("click", () => {
    if (!logs.next) return;
    logs.cursors.push(logs.next);
    logs.load();
  });
  $("#logs-prev").addEventListener("click", () => {
    if (logs.cursors.length <= 1) return;
    logs.cursors.pop();
    logs.load();
  });
  $("#logs-export").addEventListener("click", (e) => logs.exportCSV(e.currentTarget));
}

function toLocalInput(d) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

// ---------------------------------------------------------------- start

function start() {
  setupSignin();
  setupTabs();
  setupMenu();
  setupDialogs();
  setupCreate();
  setupSecret();
  setupAllowlist();
  setupRevoke();
  setupRotate();
  setupEditKey();
  setupKeyTools();
  setupLogs();
  window.addEventListener("hashchange", () => { if (session.token) selectTab(currentTab(), false); });
  route();
  document.documentElement.dataset.ready = "true";
}

start();
