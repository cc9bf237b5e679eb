package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// createdKey is the API's answer to POST /v1/keys.
type createdKey struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Secret    string     `json:"secret"`
	Status    string     `json:"status"`
	ExpiresAt *time.Time `json:"expires_at"`
}

func (d *daemon) createKey(t *testing.T, body map[string]any) createdKey {
	t.Helper()
	var k createdKey
	status := d.api(t, "POST", "/v1/keys", body, &k)
	require.Equal(t, 201, status, "create key %v", body)
	return k
}

func (d *daemon) getKey(t *testing.T, id string) createdKey {
	t.Helper()
	var k createdKey
	require.Equal(t, 200, d.api(t, "GET", "/v1/keys/"+id, nil, &k))
	return k
}

// timezone and darkMode emulate the system's zone and colour scheme.
func timezone(id string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, emulation.SetTimezoneOverride, emulation.SetTimezoneOverrideParams{TimezoneID: id})
		return err
	})
}

func darkMode(on bool) chromedp.Action[chromedp.Void] {
	p := emulation.SetEmulatedMediaParams{}
	if on {
		p.Features = []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}}
	}
	return chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, p)
		return err
	})
}

// layout is what the page measures at one viewport size.
type layout struct {
	Scrollbar            int      `json:"scrollbar"`
	DocScroll, DocClient int      `json:"-"`
	DocOverflow          int      `json:"docOverflow"`
	WrapOverflow         int      `json:"wrapOverflow"`
	TabsOverflow         int      `json:"tabsOverflow"`
	Buttons              int      `json:"buttons"`
	Problems             []string `json:"problems"`
}

// measureLayout: nothing scrolls sideways, the tab strip has no scrollbar,
// and every row's ⋯ button (and status badge) is inside the viewport and
// is what a click at its centre hits.
const measureLayout = `(() => {
	const probe = document.createElement("div");
	probe.style.cssText = "position:absolute;top:-200px;width:100px;height:100px;overflow:scroll";
	document.body.append(probe);
	const scrollbar = probe.offsetWidth - probe.clientWidth;
	probe.remove();
	const de = document.documentElement, wrap = document.querySelector("[data-testid=keys-wrap]"), tabs = document.querySelector(".tabs");
	const problems = [];
	const buttons = [...document.querySelectorAll("[data-testid=key-menu-button]")];
	for (const b of buttons) {
		b.scrollIntoView({block: "center", inline: "nearest"});
		const r = b.getBoundingClientRect();
		const id = b.closest("tr").dataset.keyId;
		if (r.left < 0 || r.right > de.clientWidth || r.top < 0 || r.bottom > de.clientHeight) problems.push(id + ": button outside the viewport " + JSON.stringify(r));
		const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
		if (!hit || !b.contains(hit)) problems.push(id + ": a click at the button's centre hits " + (hit ? hit.outerHTML.slice(0, 80) : "nothing"));
		const badge = b.closest("tr").querySelector("[data-testid=key-status]").getBoundingClientRect();
		if (badge.right > wrap.getBoundingClientRect().right + 0.5 || badge.right > de.clientWidth) problems.push(id + ": status badge cut");
	}
	window.scrollTo(0, 0);
	return {scrollbar, docOverflow: de.scrollWidth - de.clientWidth, wrapOverflow: wrap.scrollWidth - wrap.clientWidth,
		// A strip that can scroll shows a scrollbar when its content is a
		// pixel taller (the selected tab's underline overlaps the border).
		tabsOverflow: /auto|scroll/.test(getComputedStyle(tabs).overflowX + getComputedStyle(tabs).overflowY)
			? Math.max(tabs.scrollHeight - tabs.clientHeight, tabs.scrollWidth - tabs.clientWidth) : 0, buttons: buttons.length, problems};
})()`

func (b *browserRun) checkLayout(t *testing.T, w, h int64, name string) {
	t.Helper()
	b.do(t, fmt.Sprintf("keys at %dx%d", w, h),
		viewport(w, h),
		chromedp.Click(css(`[data-testid=tab-keys]`)),
		chromedp.Reload(),
		keysLoaded,
	)
	var l layout
	b.eval(t, measureLayout, &l)
	t.Logf("%dx%d: scrollbar %d px, overflow doc %d wrap %d tabs %d, %d rows", w, h, l.Scrollbar, l.DocOverflow, l.WrapOverflow, l.TabsOverflow, l.Buttons)
	if w > 500 {
		assert.Greater(t, l.Scrollbar, 0, "classic scrollbars take space (the test must not hide them)")
	}
	assert.LessOrEqual(t, l.DocOverflow, 0, "%dx%d: the page scrolls sideways", w, h)
	assert.LessOrEqual(t, l.WrapOverflow, 0, "%dx%d: the keys table scrolls sideways", w, h)
	assert.LessOrEqual(t, l.TabsOverflow, 0, "%dx%d: the tab strip scrolls", w, h)
	assert.Greater(t, l.Buttons, 1)
	assert.Empty(t, l.Problems, "%dx%d", w, h)
	b.shot(t, name)
}

// secondPass walks the fixes and additions of the UI's second pass.
func (b *browserRun) secondPass(t *testing.T) {
	d := b.d
	long := "Nightly reconciliation of every partner ledger against the payment processor's settlement files; " +
		"owned by the finance platform team, ask #fin-platform before rotating. It also backfills missed webhooks " +
		"and re-sends the month-end statements that bounced."
	label := "Frankfurt data centre, rack 12, egress NAT behind partner VPN"
	big := d.createKey(t, map[string]any{
		"name": "Ledger reconciliation (production, EU region)", "description": long,
		"scopes": []string{"ledger:read", "ledger:write", "settlements:read", "webhooks:replay", "statements:send"},
		"allowlist": []map[string]string{
			{"cidr": "203.0.113.0/24", "label": label},
			{"cidr": "2001:db8:1234::/48", "label": "IPv6 " + label[:50]},
			{"cidr": "8.8.4.0/24", "label": "Backup office with a long name for the label column too"},
		},
	})
	plain := d.createKey(t, map[string]any{"name": "Zeta reports"})
	d.wantCheck(t, big.Secret, "203.0.113.7", 200, "")
	d.wantCheck(t, big.Secret, "198.51.100.9", 403, "IP_NOT_ALLOWED")
	d.wantCheck(t, plain.Secret+"x", "198.51.100.9", 401, "INVALID_KEY")
	d.waitLogs(t, "key_id="+big.ID, func(p logPage) bool { return len(p.Items) >= 2 })

	// B7 needs a zone that is not UTC; B1/B2 every desktop width.
	b.do(t, "local zone America/New_York", timezone("America/New_York"))
	b.checkLayout(t, 1280, 800, "w1280-keys")
	b.checkLayout(t, 1440, 900, "w1440-keys")
	b.checkLayout(t, 1920, 1080, "w1920-keys")

	bigRow := fmt.Sprintf(`[data-testid=key-row][data-key-id="%s"]`, big.ID)
	// B9: the description and the allowlist entries open in the page.
	b.do(t, "read the long description and the entries",
		viewport(1280, 800),
		chromedp.Click(css(bigRow+` [data-testid=key-desc-more]`)),
		wait(fmt.Sprintf(`document.querySelector('%s [data-testid=key-desc]').classList.contains('expanded')`, bigRow)),
		chromedp.Click(css(bigRow+` [data-testid=key-allowlist-toggle]`)),
		chromedp.WaitVisible(css(bigRow+` [data-testid=key-allowlist-entries]`)),
	)
	var descFits bool
	b.eval(t, fmt.Sprintf(`(() => { const e = document.querySelector('%s [data-testid=key-desc]'); return e.scrollHeight <= e.clientHeight + 1; })()`, bigRow), &descFits)
	assert.True(t, descFits, "the expanded description shows all of its text")
	assert.Contains(t, b.text(t, bigRow+` [data-testid=key-allowlist-entries]`), "2001:db8:1234::/48")
	assert.Contains(t, b.text(t, bigRow+` [data-testid=key-allowlist-entries]`), "Frankfurt data centre")
	// B10 and B11: the columns say what they hold.
	assert.Contains(t, b.text(t, `[data-testid=keys-table] thead`), "LAST REQUEST")
	assert.Contains(t, b.text(t, `[data-testid=keys-table] thead`), "EXPIRES")
	assert.Equal(t, "Never", b.text(t, bigRow+` [data-testid=key-expires]`))
	b.shot(t, "keys-expanded")
	var l layout
	b.eval(t, measureLayout, &l)
	assert.LessOrEqual(t, l.DocOverflow, 0, "expanded rows scroll sideways")
	assert.Empty(t, l.Problems, "expanded rows")

	// A reload that changes nothing of a key keeps its row: what was
	// opened in it stays open, and a click on it is never lost to a row
	// replaced between press and release. A key that changed is drawn
	// anew.
	quiet := d.createKey(t, map[string]any{
		"name":        "Quiet archive",
		"description": "Read-only access for the yearly audit export; nobody has used it since it was made, which is the point.",
		"allowlist":   []map[string]string{{"cidr": "192.0.2.0/24", "label": "Auditors"}},
	})
	quietRow := fmt.Sprintf(`[data-testid=key-row][data-key-id="%s"]`, quiet.ID)
	reloaded := func(what string) chromedp.Action[chromedp.Void] {
		loads := `performance.getEntriesByType('resource').filter(e => e.name.endsWith('/v1/keys')).length`
		return chromedp.Steps(
			js(`window.__loads = `+loads),
			clickFor(`[data-testid=tab-keys]`, loads+` > window.__loads && !document.querySelector('[data-testid=panel-keys]').hasAttribute('aria-busy') && `+what),
		)
	}
	b.do(t, "open the quiet key's description and entries",
		reloaded(fmt.Sprintf(`document.querySelector('%s')`, quietRow)),
		chromedp.Click(css(quietRow+` [data-testid=key-desc-more]`)),
		chromedp.Click(css(quietRow+` [data-testid=key-allowlist-toggle]`)),
		chromedp.WaitVisible(css(quietRow+` [data-testid=key-allowlist-entries]`)),
		js(fmt.Sprintf(`window.__quiet = document.querySelector('%s')`, quietRow)),
	)
	b.do(t, "a reload keeps the unchanged row as it was", reloaded("true"))
	var kept struct{ Same, Desc, Entries bool }
	b.eval(t, fmt.Sprintf(`(() => { const r = document.querySelector('%s'); return {same: r === window.__quiet,
		desc: r.querySelector('[data-testid=key-desc]').classList.contains('expanded'), entries: r.querySelector('details').open}; })()`, quietRow), &kept)
	assert.Equal(t, struct{ Same, Desc, Entries bool }{true, true, true}, kept, "the row, its description and its entries after a reload that changed nothing")
	d.api(t, "PATCH", "/v1/keys/"+quiet.ID, map[string]any{"name": "Quiet archive (renamed)"}, nil)
	b.do(t, "a reload redraws the changed row",
		reloaded(fmt.Sprintf(`document.querySelector('%s [data-testid=key-name]')?.innerText === 'Quiet archive (renamed)'`, quietRow)))
	var redrawn bool
	b.eval(t, fmt.Sprintf(`document.querySelector('%s') !== window.__quiet`, quietRow), &redrawn)
	assert.True(t, redrawn, "a renamed key's row is drawn anew")

	// Key list: search, status filter, sort, paging, and no allowlist for
	// a revoked key.
	b.do(t, "search the keys",
		chromedp.SendKeys(css(`[data-testid=keys-search]`), "ledger"),
		wait(`document.querySelectorAll('[data-testid=key-row]').length === 1`),
		retype(css(`[data-testid=keys-search]`), big.ID[len(big.ID)-6:]),
		wait(fmt.Sprintf(`document.querySelectorAll('[data-testid=key-row]').length === 1 && document.querySelector('%s')`, bigRow)),
		setInput(css(`[data-testid=keys-search]`), ""),
		setSelect(css(`[data-testid=keys-filter-status]`), "revoked"),
		wait(`(() => { const r = [...document.querySelectorAll('[data-testid=key-status]')]; return r.length >= 1 && r.every(e => e.innerText === 'Revoked'); })()`),
		openMenu(firstKey),
	)
	var menuItems []string
	b.eval(t, `[...document.querySelectorAll('#menu [role=menuitem]')].filter(e => !e.hidden).map(e => e.dataset.testid)`, &menuItems)
	assert.Equal(t, []string{"menu-logs"}, menuItems, "a revoked key's menu")
	b.do(t, "sort by name",
		chromedp.KeyEvent(kb.Escape),
		setSelect(css(`[data-testid=keys-filter-status]`), ""),
		setSelect(css(`[data-testid=keys-sort]`), "name"),
		wait(`(() => { const n = [...document.querySelectorAll('[data-testid=key-name]')].map(e => e.innerText); return n.length > 2 && n[0] === 'Billing service' && n.at(-1) === 'Zeta reports'; })()`),
	)
	var names []string
	b.eval(t, `[...document.querySelectorAll('[data-testid=key-name]')].map(e => e.innerText)`, &names)
	assert.True(t, slices.IsSorted(lower(names)), "sorted by name: %q", names)
	for i := range 50 {
		d.createKey(t, map[string]any{"name": fmt.Sprintf("Batch key %02d", i)})
	}
	b.do(t, "reload with 50 more keys", chromedp.Reload(), keysLoaded)
	b.do(t, "page past 50 keys",
		wait(`document.querySelectorAll('[data-testid=key-row]').length === 50`),
		chromedp.WaitVisible(css(`#keys-pager`)),
		chromedp.Click(css(`[data-testid=keys-next]`)),
		wait(`document.querySelectorAll('[data-testid=key-row]').length > 0 && document.querySelectorAll('[data-testid=key-row]').length < 50`),
	)
	assert.Contains(t, b.text(t, `[data-testid=keys-range]`), "51–")
	b.do(t, "back to the first page", chromedp.Click(css(`[data-testid=keys-prev]`)), setInput(css(`[data-testid=keys-search]`), "ledger"),
		wait(`document.querySelectorAll('[data-testid=key-row]').length === 1`))

	// Edit a key: name, description, scopes, expiry set, refused in the
	// past, cleared.
	b.do(t, "edit the key",
		menuAction(bigRow, "menu-edit"),
		chromedp.WaitVisible(css(`[data-testid=editkey-dialog]`)),
		retype(css(`[data-testid=editkey-name]`), "Ledger reconciliation"),
		retype(css(`[data-testid=editkey-scopes]`), "ledger:read ledger:write"),
		setInput(css(`[data-testid=editkey-expires]`), "2001-01-01T00:00"),
		chromedp.Click(css(`[data-testid=editkey-save]`)),
		chromedp.WaitVisible(css(`[data-testid=editkey-expires-error]`)),
	)
	assert.Contains(t, b.text(t, `[data-testid=editkey-expires-error]`), "past")
	assert.Equal(t, "Ledger reconciliation (production, EU region)", d.getKey(t, big.ID).Name, "nothing saved with a past expiry")
	future := time.Now().Add(30 * 24 * time.Hour).Truncate(time.Minute)
	b.do(t, "a future expiry saves",
		setInput(css(`[data-testid=editkey-expires]`), future.In(mustZone(t, "America/New_York")).Format("2006-01-02T15:04")),
		chromedp.Click(css(`[data-testid=editkey-save]`)),
		chromedp.WaitNotVisible(css(`[data-testid=editkey-dialog]`)),
		wait(fmt.Sprintf(`document.querySelector('%s [data-testid=key-name]')?.innerText === 'Ledger reconciliation'`, bigRow)),
	)
	k := d.getKey(t, big.ID)
	require.NotNil(t, k.ExpiresAt)
	assert.True(t, k.ExpiresAt.Equal(future), "expires_at = %v, want %v", k.ExpiresAt, future)
	var ks struct {
		Scopes []string `json:"scopes"`
	}
	d.api(t, "GET", "/v1/keys/"+big.ID, nil, &ks)
	assert.Equal(t, []string{"ledger:read", "ledger:write"}, ks.Scopes)
	assert.NotEqual(t, "Never", b.text(t, bigRow+` [data-testid=key-expires]`))
	b.do(t, "clear the expiry",
		menuAction(bigRow, "menu-edit"),
		chromedp.WaitVisible(css(`[data-testid=editkey-dialog]`)),
		chromedp.Click(css(`[data-testid=editkey-expires-clear]`)),
		chromedp.Click(css(`[data-testid=editkey-save]`)),
		chromedp.WaitNotVisible(css(`[data-testid=editkey-dialog]`)),
		wait(fmt.Sprintf(`document.querySelector('%s [data-testid=key-expires]')?.innerText === 'Never'`, bigRow)),
	)
	assert.Nil(t, d.getKey(t, big.ID).ExpiresAt, "expiry cleared")
	// An expired key is renewed by a future expiry.
	short := d.createKey(t, map[string]any{"name": "Short-lived", "expires_at": time.Now().Add(1500 * time.Millisecond).UTC().Format(time.RFC3339Nano)})
	for deadline := time.Now().Add(10 * time.Second); d.getKey(t, short.ID).Status != "expired"; time.Sleep(100 * time.Millisecond) {
		require.True(t, time.Now().Before(deadline), "the short-lived key never expired")
	}
	shortRow := fmt.Sprintf(`[data-testid=key-row][data-key-id="%s"]`, short.ID)
	b.do(t, "renew an expired key",
		setInput(css(`[data-testid=keys-search]`), "Short-lived"),
		chromedp.Reload(),
		keysLoaded,
		setInput(css(`[data-testid=keys-search]`), "Short-lived"),
		wait(fmt.Sprintf(`document.querySelector('%s [data-testid=key-status]')?.innerText === 'Expired'`, shortRow)),
		menuAction(shortRow, "menu-edit"),
		chromedp.WaitVisible(css(`[data-testid=editkey-dialog]`)),
		setInput(css(`[data-testid=editkey-expires]`), future.In(mustZone(t, "America/New_York")).Format("2006-01-02T15:04")),
		chromedp.Click(css(`[data-testid=editkey-save]`)),
		wait(fmt.Sprintf(`document.querySelector('%s [data-testid=key-status]')?.innerText === 'Active'`, shortRow)),
	)
	assert.Equal(t, "active", d.getKey(t, short.ID).Status)

	// B5 and B8 on Create: Enter in an IP field moves on; Esc, × and
	// Cancel ask before a filled form is thrown away.
	var before struct{ Items []struct{} }
	d.api(t, "GET", "/v1/keys", nil, &before)
	b.do(t, "Enter in Create's IP field",
		chromedp.Click(css(`[data-testid=create-key]`)),
		chromedp.WaitVisible(css(`[data-testid=create-dialog]`)),
		chromedp.SendKeys(css(`[data-testid=create-name]`), "Enter test"),
		chromedp.Click(css(`[data-testid=create-dialog] [data-testid=al-add]`)),
		chromedp.SendKeys(row("create-dialog", 1, "al-cidr"), "203.0.113.9\r"),
		wait(`document.activeElement?.dataset.testid === 'al-label'`),
	)
	var open bool
	b.eval(t, `document.querySelector('[data-testid=create-dialog]').open`, &open)
	assert.True(t, open, "Enter in an IP field closed Create")
	var after struct{ Items []struct{} }
	d.api(t, "GET", "/v1/keys", nil, &after)
	assert.Equal(t, len(before.Items), len(after.Items), "Enter in an IP field created a key")
	var unload bool
	b.eval(t, `(() => { const e = new Event('beforeunload', {cancelable: true}); window.dispatchEvent(e); return e.defaultPrevented; })()`, &unload)
	assert.True(t, unload, "leaving the page with a filled Create form does not ask")
	b.do(t, "Esc asks",
		chromedp.KeyEvent(kb.Escape),
		chromedp.WaitVisible(css(`[data-testid=create-dialog] [data-testid=discard-confirm]`)),
	)
	b.shot(t, "create-discard")
	b.do(t, "keep editing, then × asks, then Discard",
		chromedp.Click(css(`[data-testid=create-dialog] [data-testid=discard-keep]`)),
		chromedp.WaitNotVisible(css(`[data-testid=create-dialog] [data-testid=discard-confirm]`)),
		chromedp.Click(css(`[data-testid=create-dialog] .dialog-head [data-close]`)),
		chromedp.WaitVisible(css(`[data-testid=create-dialog] [data-testid=discard-confirm]`)),
		chromedp.Click(css(`[data-testid=create-dialog] [data-testid=discard-yes]`)),
		chromedp.WaitNotVisible(css(`[data-testid=create-dialog]`)),
	)
	b.do(t, "an empty Create closes at once",
		chromedp.Click(css(`[data-testid=create-key]`)),
		chromedp.WaitVisible(css(`[data-testid=create-dialog]`)),
		chromedp.Click(css(`[data-testid=create-dialog] .dialog-foot [data-close]`)),
		chromedp.WaitNotVisible(css(`[data-testid=create-dialog]`)),
	)

	// The editor: an unchanged list warns of nothing (B11), Enter does not
	// save (B5), the error banner is visible and goes with the bad row
	// (B6), Cancel asks (B8).
	b.do(t, "open the editor, record its preview",
		setInput(css(`[data-testid=keys-search]`), "ledger"),
		js(`window.__impacts = []; new MutationObserver(() => window.__impacts.push(document.querySelector('[data-testid=allowlist-impact]').innerText)).observe(document.querySelector('[data-testid=allowlist-impact]'), {childList: true, subtree: true, characterData: true})`),
		menuAction(bigRow, "menu-allowlist"),
		chromedp.WaitVisible(css(`[data-testid=allowlist-dialog]`)),
		wait(`document.querySelector('[data-testid=impact-ok]')?.innerText.includes('Nothing that used this key')`),
	)
	var impacts []string
	b.eval(t, `window.__impacts`, &impacts)
	for _, s := range impacts {
		assert.NotRegexp(t, `(?i)would (newly )?block \d`, s, "an unchanged list's preview")
	}
	b.do(t, "Enter in the editor's IP field",
		chromedp.SendKeys(row("allowlist-dialog", 1, "al-cidr"), "\r"),
		wait(`document.activeElement?.dataset.testid === 'al-label'`),
	)
	b.eval(t, `document.querySelector('[data-testid=allowlist-dialog]').open`, &open)
	assert.True(t, open, "Enter in the editor saved and closed it")
	b.do(t, "save with a bad row",
		chromedp.Click(css(`[data-testid=allowlist-dialog] [data-testid=al-add]`)),
		chromedp.SendKeys(row("allowlist-dialog", 4, "al-cidr"), "203.0.113.5/24"),
		chromedp.Click(css(`[data-testid=allowlist-save]`)),
		chromedp.WaitVisible(css(`[data-testid=allowlist-error]`)),
	)
	var inView bool
	b.eval(t, `(() => { const r = document.querySelector('[data-testid=allowlist-error]').getBoundingClientRect(); return r.top >= 0 && r.bottom <= innerHeight && r.height > 0; })()`, &inView)
	assert.True(t, inView, "the 'Nothing was saved' banner is off-screen")
	b.shot(t, "editor-error-visible")
	b.do(t, "removing the bad row clears the banner",
		chromedp.Click(row("allowlist-dialog", 4, "al-remove")),
		chromedp.WaitNotVisible(css(`[data-testid=allowlist-error]`)),
	)
	b.do(t, "an edited list asks before Cancel",
		retype(row("allowlist-dialog", 3, "al-label"), "Backup office"),
		chromedp.Click(css(`[data-testid=allowlist-dialog] .dialog-foot [data-close]`)),
		chromedp.WaitVisible(css(`[data-testid=allowlist-dialog] [data-testid=discard-confirm]`)),
		chromedp.Click(css(`[data-testid=allowlist-dialog] [data-testid=discard-yes]`)),
		chromedp.WaitNotVisible(css(`[data-testid=allowlist-dialog]`)),
	)

	// B4: View usage logs clears the filters set before; B3: new requests
	// appear without Refresh; B7: the zone is shown and can be UTC.
	b.do(t, "filter the logs by 401",
		chromedp.Click(css(`[data-testid=tab-logs]`)),
		chromedp.WaitVisible(css(`[data-testid=panel-logs]`)),
		setSelect(css(`[data-testid=filter-status]`), "401"),
		wait(`!document.querySelector('[data-testid=panel-logs]').hasAttribute('aria-busy')`),
		showKeys,
		menuAction(bigRow, "menu-logs"),
		wait(fmt.Sprintf(`document.querySelector('[data-testid=filter-key]').value === %q`, big.ID)),
		wait(`document.querySelector('[data-testid=filter-status]').value === '' && document.querySelector('[data-testid=log-row]')`),
	)
	d.wantCheck(t, big.Secret, "203.0.113.77", 200, "")
	b.do(t, "live: the new request appears without Refresh",
		wait(`document.querySelector('[data-testid=log-row][data-ip="203.0.113.77"]')`),
	)
	first := b.text(t, `[data-testid=log-row] [data-testid=log-time]`)
	assert.Regexp(t, `GMT-[45]|E[SD]T`, first, "local log times name their zone")
	var rec logPage
	d.api(t, "GET", "/v1/logs?limit=1&key_id="+big.ID, nil, &rec)
	recTime, err := time.Parse(time.RFC3339Nano, rec.Items[0].Time)
	require.NoError(t, err)
	b.do(t, "times in UTC", setSelect(css(`[data-testid=filter-tz]`), "utc"),
		wait(`document.querySelector('[data-testid=log-row] [data-testid=log-time]').innerText.includes('UTC')`))
	assert.Contains(t, b.text(t, `[data-testid=log-row] [data-testid=log-time]`), recTime.UTC().Format("15:04:05"))
	// Copy buttons copy the IP and the key id.
	b.do(t, "copy the IP and the key id",
		js(`window.__copied = []; navigator.clipboard.writeText = async (s) => { window.__copied.push(s); }`),
		chromedp.Click(css(`[data-testid=log-row] [data-testid=log-copy-ip]`)),
		chromedp.Click(css(`[data-testid=log-row] [data-testid=log-copy-key]`)),
		wait(`window.__copied.length === 2`),
	)
	var copied []string
	b.eval(t, `window.__copied`, &copied)
	assert.Equal(t, []string{"203.0.113.77", big.ID}, copied)
	// A log row shows its key's name: a rename draws it anew on the next
	// load (the row's signature holds the name).
	d.api(t, "PATCH", "/v1/keys/"+big.ID, map[string]any{"name": "Ledger reconciliation (EU)"}, nil)
	b.do(t, "a renamed key's log rows are drawn anew",
		chromedp.Click(css(`[data-testid=logs-refresh]`)),
		wait(`document.querySelector('[data-testid=log-row] .log-key')?.innerText === 'Ledger reconciliation (EU)'`),
	)
	var docOverflow int
	b.eval(t, `document.documentElement.scrollWidth - document.documentElement.clientWidth`, &docOverflow)
	assert.LessOrEqual(t, docOverflow, 0, "the logs page scrolls sideways")
	var logsOverflow int
	b.eval(t, `(() => { const w = document.querySelector('[data-testid=logs-table]').parentElement; return w.scrollWidth - w.clientWidth; })()`, &logsOverflow)
	assert.LessOrEqual(t, logsOverflow, 0, "the logs table scrolls sideways at 1280 px")
	b.shot(t, "logs-live-utc")
	// Live pauses when the tab is hidden.
	var polls int
	b.eval(t, `(async () => {
		Object.defineProperty(document, 'visibilityState', {value: 'hidden', configurable: true});
		let n = 0; const orig = window.fetch; window.fetch = (...a) => { n++; return orig(...a); };
		await new Promise(r => setTimeout(r, 4500));
		window.fetch = orig; delete document.visibilityState;
		return n;
	})()`, &polls)
	assert.Equal(t, 0, polls, "Live polled while the tab was hidden")

	// Dark mode follows the system.
	b.do(t, "dark mode",
		darkMode(true),
		wait(`getComputedStyle(document.body).backgroundColor === 'rgb(15, 17, 21)'`),
	)
	b.shot(t, "dark-logs")
	b.do(t, "dark keys", showKeys)
	b.shot(t, "dark-keys")
	b.do(t, "light again", darkMode(false),
		wait(`getComputedStyle(document.body).backgroundColor !== 'rgb(15, 17, 21)'`))

	// Phone width stays usable.
	b.do(t, "phone keys",
		viewport(390, 844),
		chromedp.Reload(),
		keysLoaded,
	)
	b.eval(t, `document.documentElement.scrollWidth - document.documentElement.clientWidth`, &docOverflow)
	assert.LessOrEqual(t, docOverflow, 0, "the phone page scrolls sideways")
	b.shot(t, "phone-keys-second-pass")
	b.do(t, "desktop again", viewport(1280, 800))
}

func lower(s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = strings.ToLower(v)
	}
	return out
}

func mustZone(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	require.NoError(t, err)
	return loc
}
