package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// keyDetail is what the lifecycle walk reads back from the API.
type keyDetail struct {
	ID             string `json:"id"`
	ReportOnly     bool   `json:"report_only"`
	PreviousSecret *struct {
		Hint   string `json:"hint"`
		Active bool   `json:"active"`
	} `json:"previous_secret"`
}

type lifecycleEntries struct {
	Entries []struct {
		ID, CIDR, Label, State string
		ExpiresAt              *time.Time `json:"expires_at"`
		Disabled               bool
		Hits                   int `json:"hits_24h"`
	} `json:"entries"`
}

// lifecycle walks the allowlist lifecycle in the browser: a report-only
// key and what it would have blocked, suggestions from its traffic, then
// enforcing; a temporary entry; a bulk paste with a refused line; "Allow
// this IP…" from a blocked log row; and rotation with an overlap.
func (b *browserRun) lifecycle(t *testing.T) {
	d := b.d
	keyRow := `[data-testid=key-row][data-key-id="%s"]`

	b.do(t, "create a report-only key",
		chromedp.Click(css(`[data-testid=create-key]`)),
		chromedp.WaitVisible(css(`[data-testid=create-dialog]`)),
		chromedp.SendKeys(css(`[data-testid=create-name]`), "Partner sync"),
		chromedp.Click(css(`[data-testid=create-report-only]`)),
		chromedp.Click(css(`[data-testid=create-dialog] [data-testid=al-add]`)),
		chromedp.SendKeys(row("create-dialog", 1, "al-cidr"), "203.0.113.0/24"),
		chromedp.SendKeys(row("create-dialog", 1, "al-label"), "Office"),
	)
	b.shot(t, "lifecycle-create-report-only")
	b.do(t, "submit the report-only key",
		chromedp.Click(css(`[data-testid=create-submit]`)),
		chromedp.WaitVisible(css(`[data-testid=secret-dialog]`)),
		wait(`document.querySelector('[data-testid=secret-value]').value.startsWith('kg_')`),
	)
	secret, err := chromedp.Run(b.ctx, chromedp.Value(css(`[data-testid=secret-value]`)))
	require.NoError(t, err)
	b.do(t, "close the secret", chromedp.Click(css(`[data-testid=secret-done]`)), chromedp.WaitNotVisible(css(`[data-testid=secret-dialog]`)))
	var keys struct{ Items []keyDetail }
	d.api(t, "GET", "/v1/keys", nil, &keys)
	var keyID string
	for _, k := range keys.Items {
		if k.ReportOnly {
			keyID = k.ID
		}
	}
	require.NotEmpty(t, keyID, "the created key is report-only")

	// Traffic: two unlisted addresses are reported, not blocked.
	for _, ip := range []string{"198.51.100.7", "198.51.100.7", "198.51.100.7", "198.51.100.8"} {
		d.wantCheck(t, secret, ip, 200, "")
	}
	d.wantCheck(t, secret, "203.0.113.10", 200, "")
	d.waitLogs(t, "key_id="+keyID+"&code=IP_NOT_ALLOWED", func(p logPage) bool { return len(p.Items) >= 4 })
	d.waitLogs(t, "key_id="+keyID, func(p logPage) bool { return len(p.Items) >= 5 })

	b.do(t, "the key list says what report-only would have blocked",
		chromedp.Reload(),
		keysLoaded,
		wait(fmt.Sprintf(`document.querySelector('%s [data-testid=key-would-block]')?.innerText.includes('4 requests from 2 addresses')`, fmt.Sprintf(keyRow, keyID))),
	)
	b.shot(t, "lifecycle-report-only-list")

	menu := func(item string) chromedp.Action[chromedp.Void] { return menuAction(fmt.Sprintf(keyRow, keyID), item) }
	rows := `document.querySelectorAll('[data-testid=allowlist-dialog] [data-testid=al-row]').length`
	b.do(t, "open the editor: hits per entry",
		menu("menu-allowlist"),
		chromedp.WaitVisible(css(`[data-testid=allowlist-dialog]`)),
		wait(`document.querySelector('[data-testid=allowlist-dialog] [data-testid=al-hits]')?.innerText.includes('1 hit')`),
		wait(`document.querySelector('[data-testid=allowlist-report-only]').checked`),
	)
	b.do(t, "suggest from recent traffic",
		chromedp.Click(css(`[data-testid=suggest-open]`)),
		wait(`document.querySelectorAll('[data-testid=suggest-item]').length >= 3`),
	)
	var sugg []string
	b.eval(t, `[...document.querySelectorAll('[data-testid=suggest-item]')].map(e => e.dataset.cidr + (e.querySelector('input').checked ? ' checked' : ''))`, &sugg)
	assert.Contains(t, sugg, "198.51.100.7/32 checked", "the busiest unlisted address is offered, ticked")
	assert.Contains(t, sugg, "198.51.100.8/32 checked")
	assert.Contains(t, sugg, "203.0.113.10/32", "an allowed address is listed as already allowed")
	b.shot(t, "lifecycle-suggestions")
	b.do(t, "add the suggestions and enforce",
		chromedp.Click(css(`[data-testid=suggest-add]`)),
		wait(rows+` === 3`),
		chromedp.Click(css(`[data-testid=allowlist-report-only]`)),
		wait(`document.querySelector('[data-testid=impact-ok]')?.innerText.includes('Nothing that used this key')`),
	)
	b.shot(t, "lifecycle-enforce")
	b.do(t, "save: enforced",
		chromedp.Click(css(`[data-testid=allowlist-save]`)),
		chromedp.WaitNotVisible(css(`[data-testid=allowlist-dialog]`)),
	)
	var k keyDetail
	d.api(t, "GET", "/v1/keys/"+keyID, nil, &k)
	assert.False(t, k.ReportOnly, "report-only switched off")
	d.wantCheck(t, secret, "198.51.100.7", 200, "")
	d.wantCheck(t, secret, "192.0.2.1", 403, "IP_NOT_ALLOWED")

	// A temporary entry.
	b.do(t, "add a temporary entry",
		keysLoaded,
		menu("menu-allowlist"),
		chromedp.WaitVisible(css(`[data-testid=allowlist-dialog]`)),
		wait(rows+` === 3`),
		chromedp.Click(css(`[data-testid=allowlist-dialog] [data-testid=al-add]`)),
		chromedp.SendKeys(row("allowlist-dialog", 4, "al-cidr"), "192.0.2.1"),
		chromedp.SendKeys(row("allowlist-dialog", 4, "al-label"), "Contractor"),
		setSelect(row("allowlist-dialog", 4, "al-expiry"), "1h"),
		wait(`document.querySelector('[data-testid=allowlist-dialog] [data-testid=al-row]:nth-child(4) [data-testid=al-state]')?.innerText === 'expires in 1 h'`),
	)
	b.shot(t, "lifecycle-temporary-entry")
	b.do(t, "save the temporary entry",
		chromedp.Click(css(`[data-testid=allowlist-save]`)),
		chromedp.WaitNotVisible(css(`[data-testid=allowlist-dialog]`)),
	)
	var le lifecycleEntries
	d.api(t, "GET", "/v1/keys/"+keyID+"/allowlist", nil, &le)
	require.Len(t, le.Entries, 4)
	require.NotNil(t, le.Entries[3].ExpiresAt, "the entry has an expiry")
	assert.WithinDuration(t, time.Now().Add(time.Hour), *le.Entries[3].ExpiresAt, 2*time.Minute)
	d.wantCheck(t, secret, "192.0.2.1", 200, "")

	// Bulk paste with a bad line: nothing added, the line named; then fixed.
	paste := "192.0.2.50,Partner A\n203.0.113.5/24 typo\n2001:db8:1::/48 VPN"
	b.do(t, "bulk paste with a bad line",
		keysLoaded,
		menu("menu-allowlist"),
		chromedp.WaitVisible(css(`[data-testid=allowlist-dialog]`)),
		wait(rows+` === 4`),
		wait(`['expires in 1 h', 'expires in 59 min'].includes(document.querySelector('[data-testid=allowlist-dialog] [data-testid=al-row]:nth-child(4) [data-testid=al-state]')?.innerText)`),
		chromedp.Click(css(`[data-testid=allowlist-dialog] [data-testid=al-paste]`)),
		setInput(css(`[data-testid=allowlist-dialog] [data-testid=al-paste-text]`), paste),
		chromedp.Click(css(`[data-testid=allowlist-dialog] [data-testid=al-paste-add]`)),
		wait(`document.querySelector('[data-testid=allowlist-dialog] [data-testid=al-paste-refused] [data-line="2"]')`),
	)
	msg := b.text(t, `[data-testid=allowlist-dialog] [data-testid=al-paste-msg]`)
	assert.Contains(t, msg, "Nothing was added")
	assert.Contains(t, msg, "203.0.113.0/24", "the refused line's message suggests the fix")
	var n int
	b.eval(t, rows, &n)
	assert.Equal(t, 4, n, "no row added while a line is refused")
	b.shot(t, "lifecycle-bulk-paste-refused")
	b.do(t, "bulk paste fixed",
		setInput(css(`[data-testid=allowlist-dialog] [data-testid=al-paste-text]`), strings.Replace(paste, "203.0.113.5/24", "203.0.113.5", 1)),
		chromedp.Click(css(`[data-testid=allowlist-dialog] [data-testid=al-paste-add]`)),
		wait(rows+` === 7`),
		chromedp.Click(css(`[data-testid=allowlist-save]`)),
		chromedp.WaitNotVisible(css(`[data-testid=allowlist-dialog]`)),
	)
	d.api(t, "GET", "/v1/keys/"+keyID+"/allowlist", nil, &le)
	require.Len(t, le.Entries, 7)
	assert.Equal(t, "Partner A", le.Entries[4].Label)
	assert.Equal(t, "2001:db8:1::/48", le.Entries[6].CIDR)

	// "Allow this IP…" on a blocked log row opens the editor filled in.
	d.wantCheck(t, secret, "198.51.100.99", 403, "IP_NOT_ALLOWED")
	d.waitLogs(t, "key_id="+keyID+"&status=403", func(p logPage) bool { return len(p.Items) >= 2 })
	b.do(t, "allow a blocked IP from the logs",
		chromedp.Click(css(`[data-testid=tab-logs]`)),
		chromedp.WaitVisible(css(`[data-testid=panel-logs]`)),
		setSelect(css(`[data-testid=filter-status]`), ""),
		chromedp.Click(css(`[data-testid=logs-refresh]`)),
		logsLoaded,
		wait(`document.querySelector('[data-testid=log-row][data-ip="198.51.100.99"] [data-testid=log-allow-ip]')`),
		chromedp.Click(css(`[data-testid=log-row][data-ip="198.51.100.99"] [data-testid=log-allow-ip]`)),
		chromedp.WaitVisible(css(`[data-testid=allowlist-dialog]`)),
		wait(`[...document.querySelectorAll('[data-testid=allowlist-dialog] [data-testid=al-cidr]')].some(e => e.value === '198.51.100.99/32')`),
	)
	b.shot(t, "lifecycle-allow-from-logs")
	b.do(t, "close the editor: the prefilled row is an unsaved change", discardClose("allowlist-dialog"))

	// Rotation with an overlap.
	b.do(t, "rotate the key",
		showKeys,
		menu("menu-rotate"),
		chromedp.WaitVisible(css(`[data-testid=rotate-dialog]`)),
		setSelect(css(`[data-testid=rotate-overlap]`), "1h"),
	)
	b.shot(t, "lifecycle-rotate")
	b.do(t, "confirm the rotation",
		chromedp.Click(css(`[data-testid=rotate-confirm]`)),
		chromedp.WaitVisible(css(`[data-testid=secret-dialog]`)),
		wait(`document.querySelector('[data-testid=secret-value]').value.startsWith('kg_')`),
	)
	fresh, err := chromedp.Run(b.ctx, chromedp.Value(css(`[data-testid=secret-value]`)))
	require.NoError(t, err)
	require.NotEqual(t, secret, fresh)
	assert.Contains(t, b.text(t, `[data-testid=secret-old]`), "works until", "the dialog says how long the old secret works")
	b.shot(t, "lifecycle-rotated-secret")
	b.do(t, "close the new secret", chromedp.Click(css(`[data-testid=secret-done]`)), chromedp.WaitNotVisible(css(`[data-testid=secret-dialog]`)))
	d.wantCheck(t, secret, "198.51.100.7", 200, "")
	d.wantCheck(t, fresh, "198.51.100.7", 200, "")
	d.api(t, "GET", "/v1/keys/"+keyID, nil, &k)
	require.NotNil(t, k.PreviousSecret)
	assert.True(t, k.PreviousSecret.Active)
	assert.True(t, strings.HasPrefix(secret, k.PreviousSecret.Hint))
}
