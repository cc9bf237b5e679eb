package main

// The web UI, driven in headless Chromium against the real daemon: sign in,
// create a key with an allowlist, use it, edit the allowlist from the
// three-dots menu, read and filter the usage logs, export them as CSV, and
// see invalid entries refused with nothing saved. Screenshots of the main
// steps go to $KEYGATE_ARTIFACTS (default: testdata-artifacts/ui-browser at
// the repository root).
//
// Chromium is required: a missing browser fails the test (CI installs the
// Debian package). KEYGATE_CHROMIUM overrides the path; -short skips.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/keygate/keygate/engine"
	"github.com/keygate/keygate/internal/daemontest"
)

const defaultChromium = "/usr/bin/chromium"

type css = chromedp.CSS

func TestUIBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test skipped in -short mode")
	}
	chromium := os.Getenv("KEYGATE_CHROMIUM")
	if chromium == "" {
		chromium = defaultChromium
	}
	if _, err := os.Stat(chromium); err != nil {
		t.Fatalf("Chromium not found at %s (%v): install it (apt-get install -y chromium) or set KEYGATE_CHROMIUM", chromium, err)
	}

	d := startDaemon(t)
	b := newBrowser(t, chromium, d)
	b.steps(t)
}

// ---------------------------------------------------------------- daemon

type daemon struct {
	*daemontest.Daemon
	url, token string
}

func startDaemon(t *testing.T) *daemon {
	t.Helper()
	token := "kga_ui_browser_test_token"
	d := daemontest.Start(t, binary, daemontest.Options{
		AdminToken:    token,
		Env:           []string{"KEYGATE_ALLOW_PRIVATE_RANGES=false"},
		StartTimeout:  15 * time.Second,
		ReadyPath:     "/readyz",
		ReadyTimeout:  15 * time.Second,
		ReadyInterval: 50 * time.Millisecond,
		StopSignal:    syscall.SIGINT,
		StopTimeout:   10 * time.Second,
		Graceful:      true,
	})
	return &daemon{Daemon: d, url: d.URL(), token: token}
}

// api calls the management API and decodes the JSON answer into out.
func (d *daemon) api(t *testing.T, method, path string, body, out any) int {
	t.Helper()
	r, err := d.Admin(method, path, body)
	if err != nil {
		t.Fatal(err)
	}
	if out != nil {
		if s, ok := out.(*[]byte); ok {
			*s = r.Body
		} else if err := json.Unmarshal(r.Body, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, r.Body)
		}
	}
	return r.Status
}

// check asks the daemon whether secret may be used from ip, as a proxy does.
func (d *daemon) check(t *testing.T, secret, ip string) (int, string) {
	t.Helper()
	b, _ := json.Marshal(map[string]string{"key": secret, "ip": ip, "method": "GET", "path": "/api/orders"})
	res, err := http.Post(d.url+"/v1/check", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var body struct {
		Error struct{ Code string } `json:"error"`
	}
	json.NewDecoder(res.Body).Decode(&body)
	return res.StatusCode, body.Error.Code
}

func (d *daemon) wantCheck(t *testing.T, secret, ip string, wantStatus int, wantCode string) {
	t.Helper()
	status, code := d.check(t, secret, ip)
	if status != wantStatus || code != wantCode {
		t.Fatalf("check from %s: got %d %q, want %d %q", ip, status, code, wantStatus, wantCode)
	}
}

type logPage struct {
	Items []struct {
		Time   string `json:"time"`
		KeyID  string `json:"key_id"`
		IP     string `json:"ip"`
		Status int    `json:"status"`
		Code   string `json:"code"`
		Node   string `json:"node"`
	} `json:"items"`
	NextCursor string `json:"next_cursor"`
}

// waitLogs polls the logs API until want(page) holds.
func (d *daemon) waitLogs(t *testing.T, query string, want func(logPage) bool) logPage {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var p logPage
		d.api(t, "GET", "/v1/logs?"+query, nil, &p)
		if want(p) {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("logs %q never reached the wanted state; last: %+v", query, p)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

type allowlist struct {
	Entries []struct{ ID, CIDR, Label string } `json:"entries"`
}

// ---------------------------------------------------------------- browser

type browserRun struct {
	ctx       context.Context
	d         *daemon
	artifacts string
	downloads string
	n         int
}

func newBrowser(t *testing.T, chromium string, d *daemon) *browserRun {
	t.Helper()
	artifacts := os.Getenv("KEYGATE_ARTIFACTS")
	if artifacts == "" {
		artifacts = filepath.Join("..", "..", "testdata-artifacts", "ui-browser")
	}
	if err := os.MkdirAll(artifacts, 0o755); err != nil {
		t.Fatal(err)
	}
	old, _ := filepath.Glob(filepath.Join(artifacts, "*.png"))
	for _, f := range old {
		os.Remove(f)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium),
		chromedp.Headless,
		// Classic scrollbars that take space, as on Windows and most Linux
		// desktops: no --hide-scrollbars, no overlay scrollbars.
		chromedp.Flag("hide-scrollbars", false),
		chromedp.Flag("disable-features", "OverlayScrollbar,OverlayScrollbars"),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.WindowSize(1280, 800),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 150*time.Second)
	t.Cleanup(func() { cancelTimeout(); cancelCtx(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting Chromium: %v", err)
	}
	// Every page records what a failed step may have met (pageState).
	if _, err := chromedp.Run(ctx, chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: pageTrace})
		return err
	})); err != nil {
		t.Fatalf("adding the page trace: %v", err)
	}
	// Uncaught exceptions in the page fail the test.
	exceptions := chromedp.Events(ctx, runtime.ExceptionThrown)
	go func() {
		for ev, err := range exceptions {
			if err != nil {
				return
			}
			t.Errorf("uncaught exception in the page: %s", (&chromedp.ExceptionError{ExceptionDetails: ev.ExceptionDetails}).Error())
		}
	}()
	return &browserRun{ctx: ctx, d: d, artifacts: artifacts, downloads: t.TempDir()}
}

// do runs actions and fails the test with the step's name on error.
func (b *browserRun) do(t *testing.T, step string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	start := time.Now()
	defer func() { t.Logf("%6.2fs %s", time.Since(start).Seconds(), step) }()
	// A step that hangs fails in bounded time, naming itself.
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.shot(t, "FAILED-"+strings.ReplaceAll(step, " ", "-"))
		t.Fatalf("%s: %v\npage: %s", step, err, b.pageState())
	}
}

// pageTrace keeps the page's last events, with milliseconds since it
// loaded: key list redraws, the menu shown and hidden, loads of the key
// list, pointer presses and clicks (on the nearest data-testid), and
// fetches.
const pageTrace = `(() => {
	const trace = window.__trace = [];
	const log = (s) => { trace.push(Math.round(performance.now()) + " " + s); if (trace.length > 60) trace.shift(); };
	const testid = (n) => n?.closest?.("[data-testid]")?.dataset.testid ?? n?.nodeName;
	for (const ev of ["pointerdown", "click"]) document.addEventListener(ev, (e) => log(ev + " " + testid(e.target) + " " + e.clientX + "," + e.clientY), true);
	document.addEventListener("click", (e) => { window.__clickSeq = (window.__clickSeq || 0) + 1; window.__lastClick = e.target; }, true);
	const fetch = window.fetch;
	window.fetch = (url, ...rest) => { const u = String(url).replace(location.origin, ""); log("fetch " + u);
		return fetch(url, ...rest).then((r) => { log("fetched " + r.status + " " + u); return r; }, (e) => { log("fetch failed " + u + " " + e); throw e; }); };
	document.addEventListener("DOMContentLoaded", () => {
		const watch = (id, what, opts) => { const n = document.getElementById(id); if (n) new MutationObserver(() => log(what(n))).observe(n, opts); };
		watch("keys-body", () => "keys redrawn", {childList: true});
		watch("menu", (n) => "menu " + (n.hidden ? "hidden" : "shown"), {attributes: true, attributeFilter: ["hidden"]});
		watch("panel-keys", (n) => "panel-keys " + (n.hidden ? "hidden" : "shown") + (n.hasAttribute("aria-busy") ? " busy" : ""), {attributes: true, attributeFilter: ["hidden", "aria-busy"]});
	});
})()`

// pageState describes what a failed step may have met: the tab shown,
// loads in flight, the open menu and dialogs, the focus and the toast.
func (b *browserRun) pageState() string {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`JSON.stringify({
		hash: location.hash,
		keys: {hidden: document.querySelector('[data-testid=panel-keys]')?.hidden, busy: document.querySelector('[data-testid=panel-keys]')?.hasAttribute('aria-busy'),
			rows: [...document.querySelectorAll('[data-testid=key-row]')].map(r => r.dataset.keyId + ' ' + r.querySelector('[data-testid=key-menu-button]')?.getAttribute('aria-expanded'))},
		logs: {hidden: document.querySelector('[data-testid=panel-logs]')?.hidden, busy: document.querySelector('[data-testid=panel-logs]')?.hasAttribute('aria-busy')},
		menu: !document.querySelector('[data-testid=key-menu]')?.hidden,
		dialogs: [...document.querySelectorAll('dialog[open]')].map(d => d.dataset.testid),
		focus: document.activeElement?.dataset?.testid || document.activeElement?.tagName,
		toast: document.querySelector('[data-testid=toast]')?.innerText ?? '',
		scroll: [scrollX, scrollY, innerWidth, innerHeight],
		now: Math.round(performance.now()),
		trace: window.__trace,
	}, null, 1)`))
	if err != nil {
		return err.Error()
	}
	return s
}

// wait polls a JavaScript predicate until it is truthy; a timeout names
// the predicate.
func wait(expr string) chromedp.Action[chromedp.Void] {
	poll := chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(10*time.Second), chromedp.WithPollingInterval(50*time.Millisecond))
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		v, err := poll(ctx, t)
		if err != nil {
			err = fmt.Errorf("waiting for %s: %w", expr, err)
		}
		return v, err
	}
}

func js(expr string) chromedp.Action[chromedp.Void] {
	return chromedp.Evaluate[chromedp.Void](expr)
}

func (b *browserRun) eval(t *testing.T, expr string, out any) {
	t.Helper()
	raw, err := chromedp.Run(b.ctx, chromedp.Evaluate[[]byte](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		t.Fatalf("evaluate %s: %v (%s)", expr, err, raw)
	}
}

func (b *browserRun) text(t *testing.T, sel string) string {
	t.Helper()
	var s string
	b.eval(t, fmt.Sprintf(`document.querySelector(%q)?.innerText ?? ""`, sel), &s)
	return s
}

// shot saves a screenshot of the viewport as NN-name.png.
func (b *browserRun) shot(t *testing.T, name string) {
	t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Logf("screenshot %s: %v", name, err)
		return
	}
	b.n++
	path := filepath.Join(b.artifacts, fmt.Sprintf("%02d-%s.png", b.n, name))
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Logf("screenshot %s: %v", name, err)
	}
}

func viewport(w, h int64) chromedp.Action[chromedp.Void] {
	return chromedp.EmulateViewport(w, h, chromedp.EmulateScale(1))
}

// Selectors of the allowlist editor rows inside a dialog.
func row(dialog string, i int, field string) css {
	return css(fmt.Sprintf(`[data-testid=%s] [data-testid=al-row]:nth-child(%d) [data-testid=%s]`, dialog, i, field))
}

// setInput sets an input's value as typing would, firing "input".
func setInput(sel css, value string) chromedp.Action[chromedp.Void] {
	return js(fmt.Sprintf(`(() => { const e = document.querySelector(%q); e.focus(); e.value = %q; e.dispatchEvent(new Event("input", {bubbles: true})); })()`, string(sel), value))
}

// retype replaces an input's text by typing, as a person would after
// selecting all of it. (chromedp.Clear only resets the value attribute.)
func retype(sel css, text string) chromedp.Action[chromedp.Void] {
	return chromedp.Steps(setInput(sel, ""), chromedp.SendKeys(sel, text))
}

// keysLoaded waits until the API Keys tab is shown and its list has been
// fetched and drawn. Showing the tab starts a reload at once (aria-busy
// until it is drawn), so rows that pass are the reload's, not those of a
// hidden tab or of an earlier load that the reload is about to replace.
var keysLoaded = wait(keysLoadedExpr)

const keysLoadedExpr = `(() => { const p = document.querySelector('[data-testid=panel-keys]'); return !p.hidden && !p.hasAttribute('aria-busy') && !!p.querySelector('[data-testid=key-row]'); })()`

// logsLoaded waits until the usage logs tab is shown and neither its rows
// nor the key list is loading: a key list that arrives may redraw rows
// (they show the keys' names).
var logsLoaded = wait(`(() => { const p = document.querySelector('[data-testid=panel-logs]'); return !p.hidden && !p.hasAttribute('aria-busy') && !document.querySelector('[data-testid=panel-keys]').hasAttribute('aria-busy'); })()`)

// firstKey selects the first row of the key list.
const firstKey = `[data-testid=key-row]`

// openMenu clicks the ⋯ button of the key row that row selects and waits
// until the menu is open for that key: the key's button says so
// (aria-expanded), which it keeps when a reload redraws the row.
func openMenu(row string) chromedp.Action[chromedp.Void] {
	button := row + ` [data-testid=key-menu-button]`
	return clickFor(button, fmt.Sprintf(`document.querySelector(%q)?.getAttribute('aria-expanded') === 'true' && !document.querySelector('[data-testid=key-menu]').hidden`, button))
}

// showKeys opens the API Keys tab and waits for its own load.
var showKeys = clickFor(`[data-testid=tab-keys]`, keysLoadedExpr)

// clickFor clicks the element sel selects and waits until the predicate
// done holds. chromedp sends the press and the release as two messages,
// and the page runs between them: an element drawn anew in between gets
// no click (neither does one under something else). A click the page
// did not deliver to the element within a second is sent again, at most
// twice, and what the page saw is printed; a click it delivered must
// lead to done within 10 s.
func clickFor(sel, done string) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		var lost []string
		for len(lost) < 3 {
			before, err := chromedp.Evaluate[int](`window.__clickSeq || 0`)(ctx, t)
			if err != nil {
				return chromedp.Void{}, err
			}
			if _, err := chromedp.Click(css(sel))(ctx, t); err != nil {
				return chromedp.Void{}, err
			}
			_, err = chromedp.Poll[bool](fmt.Sprintf(`!!(%s) || (window.__clickSeq || 0) > %d`, done, before),
				chromedp.WithPollingTimeout(time.Second), chromedp.WithPollingInterval(20*time.Millisecond))(ctx, t)
			if err == nil {
				delivered, err := chromedp.Evaluate[bool](fmt.Sprintf(`!!(%s) || !!document.querySelector(%q)?.contains(window.__lastClick)`, done, sel))(ctx, t)
				if err != nil {
					return chromedp.Void{}, err
				}
				if delivered {
					if len(lost) > 0 {
						fmt.Fprintf(os.Stderr, "clickFor %s: %d click(s) not delivered, then one was; the page saw:\n%s\n", sel, len(lost), strings.Join(lost, "\n"))
					}
					return wait(done)(ctx, t)
				}
			} else if !errors.Is(err, chromedp.ErrPollingTimeout) {
				return chromedp.Void{}, err
			}
			trace, _ := chromedp.Evaluate[string](`JSON.stringify((window.__trace || []).slice(-12))`)(ctx, t)
			lost = append(lost, trace)
		}
		return chromedp.Void{}, fmt.Errorf("clicking %s: the page delivered none of 3 clicks to it; it saw:\n%s", sel, strings.Join(lost, "\n"))
	}
}

// menuAction opens the ⋯ menu of the key row that row selects and clicks
// the item with data-testid item.
func menuAction(row, item string) chromedp.Action[chromedp.Void] {
	return chromedp.Steps(openMenu(row), chromedp.Click(css(`[data-testid=key-menu] [data-testid=`+item+`]`)))
}

func setSelect(sel css, value string) chromedp.Action[chromedp.Void] {
	return js(fmt.Sprintf(`(() => { const e = document.querySelector(%q); e.value = %q; e.dispatchEvent(new Event("change", {bubbles: true})); })()`, string(sel), value))
}

func (b *browserRun) steps(t *testing.T) {
	d := b.d
	const (
		allowedIP = "203.0.113.10"
		blockedIP = "198.51.100.20"
	)

	// Sign in: a wrong token first.
	b.do(t, "open the UI",
		viewport(1280, 800),
		chromedp.Navigate(d.url+"/"),
		chromedp.WaitVisible(css(`[data-testid=token-input]`)),
	)
	b.shot(t, "signin")
	b.do(t, "sign in with a wrong token",
		chromedp.SendKeys(css(`[data-testid=token-input]`), "kga_wrong"),
		chromedp.Click(css(`[data-testid=signin-submit]`)),
		chromedp.WaitVisible(css(`[data-testid=signin-error]`)),
	)
	if msg := b.text(t, `[data-testid=signin-error]`); !strings.Contains(msg, "not valid") {
		t.Errorf("wrong token message = %q, want it to say the token is not valid", msg)
	}
	b.shot(t, "signin-wrong-token")
	b.do(t, "sign in",
		retype(css(`[data-testid=token-input]`), d.token+"\r"),
		chromedp.WaitVisible(css(`[data-testid=keys-empty]`)),
	)
	var stored string
	b.eval(t, `sessionStorage.getItem("keygate.adminToken")`, &stored)
	if stored != d.token {
		t.Errorf("session storage token = %q, want the admin token", stored)
	}
	var cookies string
	b.eval(t, `document.cookie`, &cookies)
	if cookies != "" {
		t.Errorf("document.cookie = %q, want no cookies", cookies)
	}
	b.shot(t, "keys-empty")

	// The validator in the page agrees with the engine's.
	b.compareValidators(t)

	// Create a key with two labelled entries.
	b.do(t, "fill in Create API Key",
		chromedp.Click(css(`[data-testid=create-key]`)),
		chromedp.WaitVisible(css(`[data-testid=create-dialog]`)),
		chromedp.SendKeys(css(`[data-testid=create-name]`), "Billing service"),
		chromedp.SendKeys(css(`[data-testid=create-description]`), "Charges cards nightly"),
		chromedp.SendKeys(css(`[data-testid=create-scopes]`), "orders:read, orders:write"),
		chromedp.Click(css(`[data-testid=create-dialog] [data-testid=al-add]`)),
		chromedp.SendKeys(row("create-dialog", 1, "al-cidr"), "203.0.113.0/24"),
		chromedp.SendKeys(row("create-dialog", 1, "al-label"), "Office network"),
		chromedp.Click(css(`[data-testid=create-dialog] [data-testid=al-add]`)),
		chromedp.SendKeys(row("create-dialog", 2, "al-cidr"), "2001:db8::/48"),
		chromedp.SendKeys(row("create-dialog", 2, "al-label"), "CI/CD runners"),
		wait(`document.querySelectorAll('[data-testid=create-dialog] .al-msg.is-ok').length === 2`),
	)
	b.shot(t, "create-key")
	b.do(t, "create the key",
		chromedp.Click(css(`[data-testid=create-submit]`)),
		chromedp.WaitVisible(css(`[data-testid=secret-dialog]`)),
		wait(`document.querySelector('[data-testid=secret-value]').value.startsWith('kg_')`),
	)
	secret, err := chromedp.Run(b.ctx, chromedp.Value(css(`[data-testid=secret-value]`)))
	if err != nil {
		t.Fatal(err)
	}
	if w := b.text(t, `[data-testid=secret-dialog]`); !strings.Contains(w, "will not be shown again") {
		t.Errorf("secret dialog lacks the warning that the secret is shown once: %q", w)
	}
	b.do(t, "copy the secret", chromedp.Click(css(`[data-testid=secret-copy]`)), wait(`document.querySelector('#secret-copied').textContent !== ''`))
	b.shot(t, "secret-shown-once")
	b.do(t, "close the secret",
		chromedp.Click(css(`[data-testid=secret-done]`)),
		chromedp.WaitNotVisible(css(`[data-testid=secret-dialog]`)),
		wait(`document.querySelector('[data-testid=key-row] [data-testid=key-allowlist]')?.innerText.includes('2 entries')`),
	)
	var secretGone bool
	b.eval(t, fmt.Sprintf(`!document.body.innerHTML.includes(%q) && document.querySelector('[data-testid=secret-value]').value === ''`, secret), &secretGone)
	if !secretGone {
		t.Error("the secret is still in the page after the dialog closed")
	}
	var keys struct {
		Items []struct {
			ID, Name, Hint string
			Scopes         []string
		} `json:"items"`
	}
	d.api(t, "GET", "/v1/keys", nil, &keys)
	if len(keys.Items) != 1 || keys.Items[0].Name != "Billing service" || !strings.HasPrefix(secret, keys.Items[0].Hint) {
		t.Fatalf("keys after create = %+v (secret %q...)", keys.Items, secret[:min(len(secret), 11)])
	}
	keyID := keys.Items[0].ID
	if hint := b.text(t, `[data-testid=key-hint]`); !strings.HasPrefix(hint, keys.Items[0].Hint) {
		t.Errorf("key list shows prefix %q, want %q", hint, keys.Items[0].Hint)
	}
	var al allowlist
	d.api(t, "GET", "/v1/keys/"+keyID+"/allowlist", nil, &al)
	if len(al.Entries) != 2 || al.Entries[0].CIDR != "203.0.113.0/24" || al.Entries[0].Label != "Office network" ||
		al.Entries[1].CIDR != "2001:db8::/48" || al.Entries[1].Label != "CI/CD runners" {
		t.Fatalf("stored allowlist = %+v", al.Entries)
	}
	v6EntryID := al.Entries[1].ID

	// Use the key, as a proxy would, from an allowed and a blocked IP.
	d.wantCheck(t, secret, allowedIP, 200, "")
	d.wantCheck(t, secret, blockedIP, 403, "IP_NOT_ALLOWED")
	d.waitLogs(t, "key_id="+keyID, func(p logPage) bool { return len(p.Items) >= 2 })

	// Three-dots menu -> IP Allowlist: replace the office range with the
	// blocked client's network. The editor warns that the allowed client
	// would now be blocked, and asks for confirmation.
	b.do(t, "open the key menu",
		chromedp.Reload(),
		keysLoaded,
		openMenu(firstKey),
	)
	b.shot(t, "key-menu")
	b.do(t, "edit the allowlist",
		chromedp.Click(css(`[data-testid=menu-allowlist]`)),
		chromedp.WaitVisible(css(`[data-testid=allowlist-dialog]`)),
		wait(`document.querySelectorAll('[data-testid=allowlist-dialog] [data-testid=al-row]').length === 2`),
		wait(`!document.querySelector('[data-testid=allowlist-impact]').innerText.includes('Checking')`),
		retype(row("allowlist-dialog", 1, "al-cidr"), "198.51.100.0/24"),
		retype(row("allowlist-dialog", 1, "al-label"), "New office"),
		// The server's dry run, not the browser's first estimate.
		wait(fmt.Sprintf(`document.querySelector('[data-testid=impact-newly-blocked]') && document.querySelector('[data-testid=impact-blocked] [data-ip="%s"]')`, allowedIP)),
	)
	if w := b.text(t, `[data-testid=allowlist-impact]`); !strings.Contains(w, "would newly block 1 request from 1 address") {
		var vals []string
		b.eval(t, `[...document.querySelectorAll('[data-testid=allowlist-dialog] input')].map(e => e.value)`, &vals)
		t.Errorf("impact warning = %q, want it to name the one recent IP the list would block (inputs %q)", w, vals)
	}
	b.shot(t, "allowlist-edit-warning")
	b.do(t, "save: the first click asks for confirmation",
		chromedp.Click(css(`[data-testid=allowlist-save]`)),
		chromedp.WaitVisible(css(`[data-testid=allowlist-confirm]`)),
	)
	if c := b.text(t, `[data-testid=allowlist-confirm]`); !strings.Contains(c, allowedIP) {
		t.Errorf("confirmation = %q, want it to name %s", c, allowedIP)
	}
	b.shot(t, "allowlist-confirm")
	b.do(t, "save anyway",
		chromedp.Click(css(`[data-testid=allowlist-save]`)),
		chromedp.WaitNotVisible(css(`[data-testid=allowlist-dialog]`)),
		wait(`document.querySelector('[data-testid=toast]')?.innerText.includes('saved')`),
	)
	d.api(t, "GET", "/v1/keys/"+keyID+"/allowlist", nil, &al)
	if len(al.Entries) != 2 || al.Entries[0].CIDR != "198.51.100.0/24" || al.Entries[0].Label != "New office" || al.Entries[1].ID != v6EntryID {
		t.Fatalf("allowlist after save = %+v (the IPv6 entry should keep id %s)", al.Entries, v6EntryID)
	}
	d.wantCheck(t, secret, blockedIP, 200, "")
	d.wantCheck(t, secret, allowedIP, 403, "IP_NOT_ALLOWED")

	// The blocked request shows in the usage logs.
	d.waitLogs(t, "status=403&key_id="+keyID, func(p logPage) bool { return len(p.Items) >= 2 })
	b.do(t, "open the usage logs",
		chromedp.Click(css(`[data-testid=tab-logs]`)),
		chromedp.WaitVisible(css(`[data-testid=panel-logs]`)),
		wait(fmt.Sprintf(`document.querySelector('[data-testid=log-row][data-status="403"][data-ip="%s"]')`, allowedIP)),
	)
	if rows := b.text(t, `[data-testid=logs-table]`); !strings.Contains(rows, "IP_NOT_ALLOWED") || !strings.Contains(rows, "Billing service") {
		t.Errorf("logs table lacks the blocked request: %q", rows)
	}
	var nodePage logPage
	d.api(t, "GET", "/v1/logs?limit=1", nil, &nodePage)
	var nodes []string
	b.eval(t, `[...document.querySelectorAll('[data-testid=log-row] [data-testid=log-node]')].map(e => e.innerText)`, &nodes)
	if len(nodePage.Items) == 0 || nodePage.Items[0].Node == "" || len(nodes) == 0 || nodes[0] != nodePage.Items[0].Node {
		t.Errorf("logs table node column = %q, the API's newest record's node %+v", nodes, nodePage.Items)
	}
	b.shot(t, "logs")

	// Filter by status 403: the table shows exactly the API's rows.
	var want logPage
	d.api(t, "GET", "/v1/logs?status=403", nil, &want)
	b.do(t, "filter by status 403",
		setSelect(css(`[data-testid=filter-status]`), "403"),
		wait(fmt.Sprintf(`!document.querySelector('[data-testid=panel-logs]').hasAttribute('aria-busy') && (() => { const r = [...document.querySelectorAll('[data-testid=log-row]')]; return r.length === %d && r.every(e => e.dataset.status === "403"); })()`, len(want.Items))),
	)
	var shownIPs []string
	b.eval(t, `[...document.querySelectorAll('[data-testid=log-row]')].map(e => e.dataset.ip)`, &shownIPs)
	for i, it := range want.Items {
		if shownIPs[i] != it.IP {
			t.Errorf("403 row %d shows IP %s, API has %s", i, shownIPs[i], it.IP)
		}
	}
	b.shot(t, "logs-filtered-403")
	// Refresh reloads the key list and the rows; rows it would draw the
	// same are the same nodes.
	// (Live polls the logs, never the key list: the key list's fetch is
	// Refresh's.)
	b.do(t, "refresh keeps the unchanged rows",
		js(`window.__rows = [...document.querySelectorAll('[data-testid=log-row]')]`),
		js(`window.__loads = performance.getEntriesByType('resource').filter(e => e.name.endsWith('/v1/keys')).length`),
		chromedp.Click(css(`[data-testid=logs-refresh]`)),
		wait(`performance.getEntriesByType('resource').filter(e => e.name.endsWith('/v1/keys')).length > window.__loads`),
		logsLoaded,
	)
	var sameRows bool
	b.eval(t, `(() => { const r = [...document.querySelectorAll('[data-testid=log-row]')]; return r.length === window.__rows.length && r.every((e, i) => e === window.__rows[i]); })()`, &sameRows)
	if !sameRows {
		t.Error("Refresh redrew log rows that did not change")
	}

	// Export CSV: the real download, compared with the API's export and rows.
	csv := b.download(t, css(`[data-testid=logs-export]`))
	var apiCSV []byte
	d.api(t, "GET", "/v1/logs/export.csv?status=403", nil, &apiCSV)
	if !bytes.Equal(csv, apiCSV) {
		t.Errorf("downloaded CSV differs from the API's export:\n%s\n---\n%s", csv, apiCSV)
	}
	lines := strings.Split(strings.TrimSpace(string(csv)), "\n")
	if len(lines) != len(want.Items)+1 {
		t.Errorf("CSV has %d data rows, the filtered table %d:\n%s", len(lines)-1, len(want.Items), csv)
	} else {
		for i, it := range want.Items {
			if !strings.Contains(lines[i+1], it.IP) || !strings.Contains(lines[i+1], "403") {
				t.Errorf("CSV row %d = %q, want the API's row (%s, 403)", i+1, lines[i+1], it.IP)
			}
			// The key's name, as the table shows it, is the last column.
			if it.KeyID == keyID && !strings.HasSuffix(strings.TrimSuffix(lines[i+1], "\r"), ",Billing service") {
				t.Errorf("CSV row %d = %q, want key_name Billing service last", i+1, lines[i+1])
			}
		}
	}

	// Invalid entries are explained beside their row and nothing is saved.
	b.invalidEntries(t, keyID)
	var after allowlist
	d.api(t, "GET", "/v1/keys/"+keyID+"/allowlist", nil, &after)
	if fmt.Sprint(after.Entries) != fmt.Sprint(al.Entries) {
		t.Fatalf("allowlist changed by rejected edits: %+v, want %+v", after.Entries, al.Entries)
	}

	// A colleague saves the list while it is open here: Save is refused
	// (If-Match, 412), the user is told, and Reload shows their list.
	b.colleagueChanged(t, d, keyID)

	// Phone width: the same pages still work.
	b.do(t, "phone width",
		viewport(390, 844),
		showKeys,
		chromedp.WaitVisible(css(`[data-testid=key-row]`)),
	)
	b.shot(t, "phone-keys")
	b.do(t, "phone allowlist",
		menuAction(firstKey, "menu-allowlist"),
		chromedp.WaitVisible(css(`[data-testid=allowlist-dialog]`)),
		wait(`!document.querySelector('[data-testid=allowlist-impact]').innerText.includes('Checking')`),
	)
	b.shot(t, "phone-allowlist")
	b.do(t, "phone: menu -> View usage logs",
		chromedp.Click(css(`[data-testid=allowlist-dialog] [data-close]`)),
		chromedp.WaitNotVisible(css(`[data-testid=allowlist-dialog]`)),
		menuAction(firstKey, "menu-logs"),
		wait(fmt.Sprintf(`document.querySelector('[data-testid=filter-key]').value === %q`, keyID)),
		wait(`!document.querySelector('[data-testid=panel-logs]').hasAttribute('aria-busy') && document.querySelector('[data-testid=log-row]')`),
	)
	var keyIDs []string
	b.eval(t, `[...document.querySelectorAll('[data-testid=log-row]')].map(e => e.dataset.keyId)`, &keyIDs)
	for _, id := range keyIDs {
		if id != keyID {
			t.Errorf("logs opened from the key menu show a row of key %q, want only %q", id, keyID)
		}
	}
	b.shot(t, "phone-logs")

	// Revoke with the keyboard: menu button, arrows to Revoke, confirm.
	b.do(t, "revoke from the keyboard",
		viewport(1280, 800),
		showKeys,
		chromedp.Focus(css(`[data-testid=key-menu-button]`)),
		chromedp.KeyEvent("\r"),
		wait(`document.activeElement?.dataset.testid === 'menu-allowlist'`),
		chromedp.KeyEvent(kb.ArrowDown),
		wait(`document.activeElement?.dataset.testid === 'menu-logs'`),
		chromedp.KeyEvent(kb.End),
		wait(`document.activeElement?.dataset.testid === 'menu-revoke'`),
		chromedp.KeyEvent("\r"),
		chromedp.WaitVisible(css(`[data-testid=revoke-dialog]`)),
	)
	b.shot(t, "revoke-confirm")
	b.do(t, "confirm revoke",
		chromedp.Click(css(`[data-testid=revoke-confirm]`)),
		wait(`document.querySelector('[data-testid=key-status]')?.innerText === 'Revoked'`),
	)
	b.shot(t, "revoked")
	d.wantCheck(t, secret, blockedIP, 401, "INVALID_KEY")

	// Signing out forgets the token.
	b.do(t, "sign out",
		chromedp.Click(css(`[data-testid=signout]`)),
		chromedp.WaitVisible(css(`[data-testid=token-input]`)),
	)
	b.eval(t, `sessionStorage.getItem("keygate.adminToken") ?? ""`, &stored)
	if stored != "" {
		t.Errorf("token still stored after sign-out: %q", stored)
	}

	b.do(t, "sign in again",
		retype(css(`[data-testid=token-input]`), d.token+"\r"),
		keysLoaded,
	)
	b.lifecycle(t)
	b.secondPass(t)
	b.requestsChart(t)
}

// invalidEntries enters 10.0.0.0, 203.0.113.5/24 and a 21st row into the
// allowlist editor and checks that each is refused with a clear message.
func (b *browserRun) invalidEntries(t *testing.T, keyID string) {
	t.Helper()
	b.do(t, "open the allowlist editor again",
		showKeys,
		menuAction(firstKey, "menu-allowlist"),
		chromedp.WaitVisible(css(`[data-testid=allowlist-dialog]`)),
		wait(`document.querySelectorAll('[data-testid=allowlist-dialog] [data-testid=al-row]').length === 2`),
		wait(`!document.querySelector('[data-testid=allowlist-impact]').innerText.includes('Checking')`),
		// Host bits set: an error with the masked network as suggestion.
		retype(row("allowlist-dialog", 1, "al-cidr"), "203.0.113.5/24"),
		// A private address: a warning here, the server decides.
		chromedp.Click(css(`[data-testid=allowlist-dialog] [data-testid=al-add]`)),
		chromedp.SendKeys(row("allowlist-dialog", 3, "al-cidr"), "10.0.0.0"),
		wait(`document.querySelector('[data-testid=allowlist-dialog] [data-testid=al-suggestion]')`),
	)
	msgs := func() []string {
		var m []string
		b.eval(t, `[...document.querySelectorAll('[data-testid=allowlist-dialog] [data-testid=al-msg]')].map(e => (e.dataset.rule || '') + ': ' + e.innerText)`, &m)
		return m
	}
	m := msgs()
	if len(m) != 3 || !strings.HasPrefix(m[0], "host_bits_set:") || !strings.Contains(m[0], "203.0.113.0/24") {
		t.Errorf("message for 203.0.113.5/24 = %q, want host bits set with the suggestion 203.0.113.0/24", m)
	}
	if len(m) == 3 && (!strings.HasPrefix(m[2], "non_public_range:") || !strings.Contains(m[2], "public egress IP")) {
		t.Errorf("message for 10.0.0.0 = %q, want the private-range explanation", m[2])
	}
	b.do(t, "save with a host-bits error",
		chromedp.Click(css(`[data-testid=allowlist-save]`)),
		chromedp.WaitVisible(css(`[data-testid=allowlist-error]`)),
	)
	if e := b.text(t, `[data-testid=allowlist-error]`); !strings.Contains(e, "Nothing was saved") {
		t.Errorf("error banner = %q", e)
	}
	b.shot(t, "invalid-host-bits-and-private")

	// Take the suggestion; the server then refuses the private entry, and
	// its error appears beside row 3.
	b.do(t, "server rejects the private range",
		chromedp.Click(css(`[data-testid=allowlist-dialog] [data-testid=al-suggestion]`)),
		wait(`!document.querySelector('[data-testid=allowlist-dialog] .al-msg.is-error')`),
		// The edit would block 198.51.100.20, which used the key: confirm.
		chromedp.Click(css(`[data-testid=allowlist-save]`)),
		chromedp.WaitVisible(css(`[data-testid=allowlist-confirm]`)),
		chromedp.Click(css(`[data-testid=allowlist-save]`)),
		wait(`document.querySelector('[data-testid=allowlist-dialog] [data-testid=al-row]:nth-child(3) .al-msg.is-error')?.innerText.includes('Rejected by the server')`),
	)
	if e := b.text(t, `[data-testid=allowlist-error]`); !strings.Contains(e, "Nothing was saved") {
		t.Errorf("error banner after the server's refusal = %q", e)
	}
	b.shot(t, "invalid-private-rejected-by-server")

	// 21 entries: the 21st row is refused.
	b.do(t, "remove the private row",
		chromedp.Click(row("allowlist-dialog", 3, "al-remove")),
	)
	var add []chromedp.Action[chromedp.Void]
	for i := 3; i <= 21; i++ {
		add = append(add,
			chromedp.Click(css(`[data-testid=allowlist-dialog] [data-testid=al-add]`)),
			setInput(row("allowlist-dialog", i, "al-cidr"), fmt.Sprintf("192.0.2.%d", i)))
	}
	b.do(t, "add rows 3 to 21", add...)
	b.do(t, "save 21 entries",
		js(`document.querySelector('[data-testid=allowlist-save]').scrollIntoView()`),
		chromedp.Click(css(`[data-testid=allowlist-save]`)),
		wait(`document.querySelector('[data-testid=allowlist-dialog] [data-testid=al-row]:nth-child(21) [data-testid=al-msg]')?.dataset.rule === 'too_many_entries'`),
	)
	if c := b.text(t, `[data-testid=allowlist-dialog] [data-testid=al-count]`); c != "21 of 20 entries" {
		t.Errorf("entry count = %q, want 21 of 20 entries", c)
	}
	if e := b.text(t, `[data-testid=allowlist-error]`); !strings.Contains(e, "Nothing was saved") {
		t.Errorf("error banner for 21 entries = %q", e)
	}
	b.do(t, "scroll to the 21st row", js(`document.querySelector('[data-testid=allowlist-dialog] [data-testid=al-row]:nth-child(21)').scrollIntoView({block: "center"})`))
	b.shot(t, "invalid-21-entries")
	b.do(t, "cancel asks before the edits go", discardClose("allowlist-dialog"))
}

// discardClose closes a dialog holding unsaved changes with its Cancel
// button, which first asks, then Discard.
func discardClose(dialog string) chromedp.Action[chromedp.Void] {
	return chromedp.Steps(
		chromedp.Click(css(`[data-testid=`+dialog+`] .dialog-foot [data-close]`)),
		chromedp.WaitVisible(css(`[data-testid=`+dialog+`] [data-testid=discard-confirm]`)),
		chromedp.Click(css(`[data-testid=`+dialog+`] [data-testid=discard-yes]`)),
		chromedp.WaitNotVisible(css(`[data-testid=`+dialog+`]`)),
	)
}

// colleagueChanged opens the allowlist editor, changes the list through
// the API behind its back (a colleague, perhaps on another daemon), and
// saves: the save is refused with nothing written, the dialog says a
// colleague changed the list and offers a reload, which shows their list;
// a save after it works.
func (b *browserRun) colleagueChanged(t *testing.T, d *daemon, keyID string) {
	t.Helper()
	b.do(t, "open the allowlist editor for the colleague test",
		showKeys,
		menuAction(firstKey, "menu-allowlist"),
		chromedp.WaitVisible(css(`[data-testid=allowlist-dialog]`)),
		wait(`!document.querySelector('[data-testid=allowlist-impact]').innerText.includes('Checking')`),
	)
	var theirs allowlist
	if st := d.api(t, "PUT", "/v1/keys/"+keyID+"/allowlist", map[string]any{"entries": []map[string]string{
		{"cidr": "198.51.100.0/24", "label": "New office"}, {"cidr": "192.0.2.99", "label": "Colleague's server"}}}, &theirs); st != 200 {
		t.Fatalf("the colleague's PUT: status %d", st)
	}
	b.do(t, "save over the colleague's change",
		retype(row("allowlist-dialog", 1, "al-label"), "My label"),
		chromedp.Click(css(`[data-testid=allowlist-save]`)),
		wait(`(() => { const c = document.querySelector('[data-testid=allowlist-confirm]'); if (c && !c.hidden) document.querySelector('[data-testid=allowlist-save]').click(); return !!document.querySelector('[data-testid=al-stale]'); })()`),
	)
	if e := b.text(t, `[data-testid=allowlist-error]`); !strings.Contains(e, "A colleague changed this IP allowlist") || !strings.Contains(e, "Nothing was saved") {
		t.Errorf("stale-save banner = %q", e)
	}
	b.shot(t, "allowlist-colleague-changed")
	var now allowlist
	d.api(t, "GET", "/v1/keys/"+keyID+"/allowlist", nil, &now)
	if fmt.Sprint(now.Entries) != fmt.Sprint(theirs.Entries) {
		t.Fatalf("the refused save changed the list: %+v, the colleague's %+v", now.Entries, theirs.Entries)
	}
	b.do(t, "reload the colleague's list",
		chromedp.Click(css(`[data-testid=al-reload]`)),
		wait(`document.querySelectorAll('[data-testid=allowlist-dialog] [data-testid=al-row]').length === 2 && [...document.querySelectorAll('[data-testid=allowlist-dialog] [data-testid=al-label]')].some(e => e.value === "Colleague's server")`),
		wait(`document.querySelector('[data-testid=allowlist-error]').hidden`),
	)
	b.do(t, "save after the reload",
		retype(row("allowlist-dialog", 2, "al-label"), "Build server"),
		chromedp.Click(css(`[data-testid=allowlist-save]`)),
		wait(`(() => { const c = document.querySelector('[data-testid=allowlist-confirm]'); if (c && !c.hidden) document.querySelector('[data-testid=allowlist-save]').click(); return !document.querySelector('[data-testid=allowlist-dialog]').open; })()`),
	)
	d.api(t, "GET", "/v1/keys/"+keyID+"/allowlist", nil, &now)
	if len(now.Entries) != 2 || now.Entries[1].Label != "Build server" || now.Entries[1].ID != theirs.Entries[1].ID {
		t.Fatalf("after the reload and save: %+v", now.Entries)
	}
}

// download clicks a button that downloads a file and returns its content.
func (b *browserRun) download(t *testing.T, sel css) []byte {
	t.Helper()
	progress := chromedp.Events(b.ctx, browser.DownloadProgress)
	enabled := true
	b.do(t, "allow downloads", chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
			Behavior:      browser.SetDownloadBehaviorBehaviorAllowAndName,
			DownloadPath:  b.downloads,
			EventsEnabled: &enabled,
		})
		return err
	}))
	b.do(t, "click export", chromedp.Click(sel))
	for ev, err := range progress {
		if err != nil {
			t.Fatalf("waiting for the download: %v", err)
		}
		switch ev.State {
		case browser.DownloadProgressStateCompleted:
			data, err := os.ReadFile(filepath.Join(b.downloads, ev.GUID))
			if err != nil {
				t.Fatal(err)
			}
			os.WriteFile(filepath.Join(b.artifacts, "export.csv"), data, 0o644)
			return data
		case browser.DownloadProgressStateCanceled:
			t.Fatal("the download was cancelled")
		}
	}
	t.Fatal("no download")
	return nil
}

// compareValidators runs the page's validate.js and the engine's parser on
// the same inputs and wants the same verdicts, so that the errors shown as
// the user types are the server's.
func (b *browserRun) compareValidators(t *testing.T) {
	t.Helper()
	inputs := []string{
		"203.0.113.5", "203.0.113.0/24", "2001:db8::1", "2001:db8::/48", "198.51.100.0/24", "192.0.2.1",
		"35.192.0.0/12", "2606:4700::/32", "2001:DB8::1", "2001:0db8:0:0:0:0:0:1", "::ffff:203.0.113.5",
		"::ffff:203.0.113.0/120", "2001:db8::203.0.113.5", "8.8.8.8/31", "8.0.0.0/9",
		// Private and other non-public ranges.
		"10.0.0.0", "10.0.0.0/8", "172.16.0.1", "192.168.1.1", "100.64.0.1", "127.0.0.1", "169.254.1.1",
		"0.1.2.3", "224.0.0.1", "240.0.0.1", "198.18.0.1", "::", "::1", "fe80::1", "fc00::/7", "fd12::/48", "ff02::1",
		"::ffff:10.0.0.1",
		// Host bits, breadth.
		"203.0.113.5/24", "2001:db8::1/48", "8.8.8.9/31", "8.0.0.0/8", "1.2.3.4/8", "2001::/32", "::ffff:1.2.3.4/80",
		// Malformed.
		"", " 203.0.113.5", "203.0.113.5 ", "203.0. 113.5", "203.0.113.5\t", "010.1.1.1", "1.2.3", "1.2.3.4.5",
		"0x7f000001", "0xcb.0.113.5", "3405803781", "fe80::1%eth0", "[2001:db8::1]", "203.0.113.5:8080",
		"1.2.3.256", "2001:db8::12345", "1::2::3", ":1::", "1:", "1:2:3:4::5:6:7:8", "1:2:3:4:5:6:7:1.2.3.4",
		"2001:db8::/129", "203.0.113.0/33", "203.0.113.0/024", "203.0.113.0/", "203.0.113.0/+24", "abc", "/24", "é",
		strings.Repeat("1", 70),
		// Not an address at all; integer forms with a prefix length.
		"garbage", "garbage/24", "3405803781/32", "1.2.3.4/0", "203.0.113.0/8", "10.1.2.3/16", "2001:db8::1/16",
		"::ffff:1.2.3.4/100", "2001:2::1/64",
		// The IPv6 special-purpose registry, its reachable exceptions and
		// the forms that carry an IPv4 address.
		"100::1", "100:0:0:1::1", "2001::1", "2001:0:4136:e378::1", "2001:2::1", "2001:10::1", "2001:1::4",
		"2001:1::/64", "2001:4:113::1", "2001:1ff::1", "5f00::1", "fec0::1", "2001:1::1", "2001:1::3", "2001:3::/33",
		"2001:4:112::/48", "2001:20::1", "2001:2f::/33", "2001:30::1", "2001:200::1", "2620:4f:8000::/48", "3fff::1",
		"3fff:fff::/48", "::203.0.113.5", "::cb00:7105", "::203.0.113.0/120", "::10.0.0.1", "::/96",
		"64:ff9b::203.0.113.5", "64:ff9b::cb00:7100/120", "64:ff9b::/96", "64:ff9b::127.0.0.1", "64:ff9b:1::1",
		"64:ff9b:1:abcd::/64", "2002:cb00:7105::/48", "2002:cb00:7105:1::1", "2002:cb00:7100::/40", "2002::/33",
		"2002:a00:1::/48",
	}
	type verdict struct {
		OK         bool   `json:"ok"`
		CIDR       string `json:"cidr"`
		Rule       string `json:"rule"`
		Message    string `json:"message"`
		Suggestion string `json:"suggestion"`
	}
	in, _ := json.Marshal(inputs)
	var got []verdict
	b.eval(t, fmt.Sprintf(`import("./validate.js").then(m => %s.map(s => {
		const r = m.parseEntry(s);
		if (r.error) return {ok: false, cidr: "", rule: r.error.rule, message: r.error.message, suggestion: r.error.suggestion || ""};
		return {ok: true, cidr: r.cidr, rule: "", message: "", suggestion: ""};
	}))`, in), &got)
	if len(got) != len(inputs) {
		t.Fatalf("validate.js returned %d verdicts for %d inputs", len(got), len(inputs))
	}
	for i, s := range inputs {
		var want verdict
		pfx, err := engine.Policy{}.ParseEntry(s)
		var ee *engine.EntryError
		switch {
		case err == nil:
			want = verdict{OK: true, CIDR: pfx.String()}
		case errors.As(err, &ee):
			want = verdict{Rule: string(ee.Rule), Message: ee.Message, Suggestion: ee.Suggestion}
		default:
			t.Fatalf("engine: %q: unexpected error %v", s, err)
		}
		if got[i] != want {
			t.Errorf("validate.js and the engine disagree on %q:\n got  %+v\n want %+v", s, got[i], want)
		}
	}
}
