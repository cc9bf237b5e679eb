package main

import (
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// statsTotals is the totals object of GET /v1/logs/stats.
type statsTotals struct {
	Allowed      int64 `json:"allowed"`
	Reported     int64 `json:"reported"`
	Unauthorized int64 `json:"unauthorized"`
	Forbidden    int64 `json:"forbidden"`
	Other        int64 `json:"other"`
}

// chartTotals reads the chart's legend: the totals it drew.
const chartTotals = `(() => {
	const n = (k) => Number(document.querySelector('[data-testid=chart-total-' + k + '] strong')?.textContent ?? -1);
	return {allowed: n('allowed'), unauthorized: n('unauthorized'), forbidden: n('forbidden'), other: n('other')};
})()`

// chartLoaded waits until the chart has drawn its newest load: while the
// counts of another period or key are still shown, the chart is busy (the
// key's 24 h chart also shows its 2 allowed requests, in 48 bars).
var chartLoaded = wait(`!document.querySelector('[data-testid=requests-chart]').hasAttribute('aria-busy')`)

// requestsChart: after a few known checks, the chart of the usage logs
// shows, for one key and for all, the counts GET /v1/logs/stats gives.
func (b *browserRun) requestsChart(t *testing.T) {
	d := b.d
	k := d.createKey(t, map[string]any{"name": "Chart key", "scopes": []string{"orders:read"},
		"allowlist": []map[string]string{{"cidr": "203.0.113.0/24"}}})
	d.wantCheck(t, k.Secret, "203.0.113.1", 200, "")
	d.wantCheck(t, k.Secret, "203.0.113.2", 200, "")
	d.wantCheck(t, k.Secret, "198.51.100.1", 403, "IP_NOT_ALLOWED")
	d.wantCheck(t, "kg_live_not_a_key", "198.51.100.1", 401, "INVALID_KEY")
	d.waitLogs(t, "key_id="+k.ID, func(p logPage) bool { return len(p.Items) == 3 })
	d.waitLogs(t, "code=INVALID_KEY&from="+url.QueryEscape(time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)), func(p logPage) bool { return len(p.Items) >= 1 })

	row := fmt.Sprintf(`[data-testid=key-row][data-key-id="%s"]`, k.ID)
	b.do(t, "the key's chart",
		viewport(1280, 800),
		showKeys,
		setInput(css(`[data-testid=keys-search]`), "Chart key"),
		chromedp.WaitVisible(css(row)),
		menuAction(row, "menu-logs"),
		setSelect(css(`[data-testid=chart-period]`), "1h"),
		wait(`document.querySelector('[data-testid=chart-scope]').textContent === 'for Chart key'`),
		chartLoaded,
		wait(`document.querySelector('[data-testid=chart-total-allowed] strong')?.textContent === '2'`),
	)
	var got statsTotals
	b.eval(t, chartTotals, &got)
	assert.Equal(t, statsTotals{Allowed: 2, Forbidden: 1}, got, "the key's chart")
	var bars int
	b.eval(t, `document.querySelectorAll('[data-testid=chart-svg] g').length`, &bars)
	assert.Equal(t, 60, bars, "the last hour in 1-minute bars")
	var filled int
	b.eval(t, `document.querySelectorAll('[data-testid=chart-svg] rect.s-allowed, [data-testid=chart-svg] rect.s-403').length`, &filled)
	assert.GreaterOrEqual(t, filled, 2, "the allowed and the 403 requests are drawn")
	b.shot(t, "chart-key")

	// All keys: the chart's totals are the API's for the same hour (the
	// browser test's requests are all younger than an hour).
	var api struct {
		Totals statsTotals `json:"totals"`
	}
	q := "from=" + url.QueryEscape(time.Now().Add(-2*time.Hour).UTC().Format(time.RFC3339)) +
		"&to=" + url.QueryEscape(time.Now().Add(2*time.Minute).UTC().Format(time.RFC3339)) + "&bucket=24h"
	require.Equal(t, 200, d.api(t, "GET", "/v1/logs/stats?"+q, nil, &api))
	require.Positive(t, api.Totals.Unauthorized)
	b.do(t, "all keys' chart",
		setSelect(css(`[data-testid=filter-key]`), ""),
		wait(`document.querySelector('[data-testid=chart-scope]').textContent === 'all keys'`),
		chartLoaded,
		wait(fmt.Sprintf(`document.querySelector('[data-testid=chart-total-allowed] strong')?.textContent === '%d'`, api.Totals.Allowed)),
	)
	b.eval(t, chartTotals, &got)
	api.Totals.Reported = 0
	assert.Equal(t, api.Totals, got, "the all-keys chart shows the API's counts")
	var overflow int
	b.eval(t, `document.documentElement.scrollWidth - document.documentElement.clientWidth`, &overflow)
	assert.LessOrEqual(t, overflow, 0, "the chart makes the page scroll sideways")
	b.shot(t, "chart-all-1280")

	// The axis and the bars' tooltips follow the logs' "Times in" switch
	// and name their zone, as the log times do.
	// In document order: the bars' tooltips, then the axis's two ends.
	const axis = `[...document.querySelectorAll('[data-chart-from], [data-chart-to], [data-testid=chart-svg] g title')].map((e) => e.textContent.split('\n')[0])`
	var times []string
	b.do(t, "chart times in local time", setSelect(css(`[data-testid=filter-tz]`), "local"),
		wait(`!document.querySelector('[data-chart-to]').textContent.includes('UTC')`))
	b.eval(t, axis, &times)
	require.Len(t, times, 2+60, "axis ends and one tooltip per bar")
	for _, s := range times {
		assert.Regexp(t, `GMT-[45]|E[SD]T`, s, "a local chart time names its zone")
	}
	b.do(t, "chart times in UTC", setSelect(css(`[data-testid=filter-tz]`), "utc"),
		wait(`document.querySelector('[data-chart-to]').textContent.includes('UTC')`))
	b.eval(t, axis, &times)
	for _, s := range times {
		assert.Contains(t, s, "UTC", "a chart time in UTC says so")
	}
	// The axis ends at a whole minute after the last request, in UTC (the
	// chart may have been drawn in the minute before this one).
	now := time.Now().UTC().Truncate(time.Minute)
	assert.Regexp(t, now.Format("15:04")+"|"+now.Add(time.Minute).Format("15:04")+"|"+now.Add(-time.Minute).Format("15:04"), times[len(times)-1], "the axis ends now, in UTC")
	b.do(t, "back to local time", setSelect(css(`[data-testid=filter-tz]`), "local"))

	// Search by IP (v4-mapped typed, the v4 address found) and path prefix.
	b.do(t, "search the logs by IP and path",
		setInput(css(`[data-testid=filter-ip]`), "::ffff:203.0.113.2"),
		wait(`(() => { const r = document.querySelectorAll('[data-testid=log-row]'); return r.length === 1 && r[0].dataset.ip === '203.0.113.2'; })()`),
		setInput(css(`[data-testid=filter-ip]`), ""),
		setInput(css(`[data-testid=filter-path]`), "/api/ord"),
		wait(`document.querySelectorAll('[data-testid=log-row]').length > 1`),
		setInput(css(`[data-testid=filter-path]`), "/nothing-here"),
		wait(`document.querySelectorAll('[data-testid=log-row]').length === 0 && !document.querySelector('[data-testid=logs-empty]').hidden`),
		setInput(css(`[data-testid=filter-path]`), ""),
		setInput(css(`[data-testid=filter-ip]`), "203.0.113.0/24"),
		wait(`document.querySelector('[data-testid=logs-error]').textContent.includes('is not an IP address')`),
		setInput(css(`[data-testid=filter-ip]`), ""),
		wait(`document.querySelector('[data-testid=logs-error]').hidden && document.querySelector('[data-testid=log-row]')`),
	)
	b.eval(t, `document.documentElement.scrollWidth - document.documentElement.clientWidth`, &overflow)
	assert.LessOrEqual(t, overflow, 0, "the search boxes make the page scroll sideways")

	b.do(t, "the chart in dark mode at phone width", darkMode(true), viewport(390, 844),
		wait(`getComputedStyle(document.body).backgroundColor === 'rgb(15, 17, 21)'`),
		chromedp.ScrollIntoView(css(`[data-testid=requests-chart]`)))
	b.eval(t, `document.documentElement.scrollWidth - document.documentElement.clientWidth`, &overflow)
	assert.LessOrEqual(t, overflow, 0, "the chart makes the phone page scroll sideways")
	var fill string
	b.eval(t, `getComputedStyle(document.querySelector('[data-testid=chart-svg] rect.s-allowed')).fill`, &fill)
	assert.Equal(t, "rgb(74, 222, 128)", fill, "dark mode's green")
	b.shot(t, "chart-phone-dark")
	b.do(t, "light, desktop again", darkMode(false), viewport(1280, 800))
}
