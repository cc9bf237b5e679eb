package server

import (
	"bytes"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/keygate/keygate/engine"
)

// scrape fetches /metrics and parses it as Prometheus does.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	r := do(t, "GET", url+"/metrics", nil)
	wantStatus(t, r, 200, "metrics")
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(r.body))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v\n%s", err, r.body)
	}
	return fams
}

func labelsOf(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

// metricTable is every metric keygate exports: its type and help, as
// the README's metrics list and deploy/ (dashboard, alerts) rely on.
var metricTable = []struct {
	name, typ, help string
}{
	{"keygate_build_info", "GAUGE", "Build information; the value is always 1."},
	{"keygate_decisions_total", "COUNTER", "Check decisions by outcome."},
	{"keygate_decision_duration_seconds", "HISTOGRAM", "Time to decide one check, from request parsed to response ready."},
	{"keygate_http_requests_total", "COUNTER", "HTTP requests by handler and status code."},
	{"keygate_http_panics_total", "COUNTER", "Handler panics recovered and answered with 500."},
	{"keygate_http_connections_rejected_total", "COUNTER", "Connections answered with 503 because the listener had MaxConns open."},
	{"keygate_keys", "GAUGE", "Keys loaded in the engine, revoked and expired ones included."},
	{"keygate_change_seq", "GAUGE", "Store change sequence number the engine reflects."},
	{"keygate_change_poll_errors_total", "COUNTER", "Failed polls of the store for changes."},
	{"keygate_change_lag_seconds", "GAUGE", "Seconds since the engine last reflected every change in the store (its last successful catch-up with the change feed): about the poll interval while the store answers, growing while it does not."},
	{"keygate_store_up", "GAUGE", "1 when the store answered the last poll of its change feed and reports no fault of its own (store.Health), else 0."},
	{"keygate_usage_log_queue_length", "GAUGE", "Usage-log records waiting to be written."},
	{"keygate_usage_log_dropped_total", "COUNTER", "Usage-log records dropped because the buffer was full."},
	{"keygate_usage_log_written_total", "COUNTER", "Usage-log records written to disk."},
	{"keygate_usage_log_write_errors_total", "COUNTER", "Usage-log records that could not be written."},
}

// TestMetricsExposition parses /metrics with Prometheus's own parser and
// checks every keygate metric's type, help and labels, the Go and process
// collectors beside them, and a version label that Go's %q quoting (the
// hand-written exposition's) turned into escapes Prometheus refuses.
func TestMetricsExposition(t *testing.T) {
	version := "v1.2.3-ünïcode\t\"quoted\" \\ back"
	ts := startServer(t, func(c *Config) { c.Version = version })
	_, secret := ts.createKey(t, map[string]any{"name": "k", "allowlist": []map[string]string{{"cidr": "203.0.113.0/24"}}})
	ts.check(t, secret, "203.0.113.1", "")
	ts.check(t, secret, "198.51.100.1", "")
	ts.check(t, "kg_nope", "198.51.100.1", "")
	fams := scrape(t, ts.checkURL)

	for _, m := range metricTable {
		f := fams[m.name]
		if f == nil {
			t.Errorf("%s: missing", m.name)
			continue
		}
		if got := f.GetType().String(); got != m.typ {
			t.Errorf("%s: type %s, want %s", m.name, got, m.typ)
		}
		if f.GetHelp() != m.help {
			t.Errorf("%s: help %q, want %q", m.name, f.GetHelp(), m.help)
		}
	}
	for name := range fams {
		if !strings.HasPrefix(name, "keygate_") {
			continue
		}
		found := false
		for _, m := range metricTable {
			found = found || m.name == name
		}
		if !found {
			t.Errorf("%s: exported but not in the table (and the README)", name)
		}
	}
	for _, name := range []string{"go_goroutines", "go_memstats_heap_alloc_bytes", "process_resident_memory_bytes", "process_open_fds"} {
		if fams[name] == nil {
			t.Errorf("%s: missing (Go and process collectors)", name)
		}
	}

	// Label values, exactly.
	bi := fams["keygate_build_info"].GetMetric()
	if len(bi) != 1 || labelsOf(bi[0])["version"] != version || !strings.HasPrefix(labelsOf(bi[0])["goversion"], "go") {
		t.Errorf("build info labels %v, want version %q", labelsOf(bi[0]), version)
	}
	decisions := map[string]float64{}
	for _, m := range fams["keygate_decisions_total"].GetMetric() {
		decisions[labelsOf(m)["outcome"]] = m.GetCounter().GetValue()
	}
	for outcome, want := range map[string]float64{"allow": 1, "ip_not_allowed": 1, "invalid_key": 1, "insufficient_scope": 0, "ip_not_allowed_reported": 0, "bad_request": 0} {
		if got, ok := decisions[outcome]; !ok || got != want {
			t.Errorf("keygate_decisions_total{outcome=%q} = %v (present %v), want %v; all: %v", outcome, got, ok, want, decisions)
		}
	}
	requests := map[string]float64{}
	for _, m := range fams["keygate_http_requests_total"].GetMetric() {
		l := labelsOf(m)
		requests[l["handler"]+" "+l["code"]] = m.GetCounter().GetValue()
	}
	for k, want := range map[string]float64{"check 200": 1, "check 403": 1, "check 401": 1, "keys 201": 1} {
		if requests[k] != want {
			t.Errorf("keygate_http_requests_total %s = %v, want %v; all: %v", k, requests[k], want, requests)
		}
	}
	h := fams["keygate_decision_duration_seconds"].GetMetric()[0].GetHistogram()
	b := h.GetBucket() // the parser keeps the +Inf bucket
	if h.GetSampleCount() != 3 || len(b) != len(latencyBounds)+1 || b[0].GetUpperBound() != 5e-6 ||
		b[len(latencyBounds)-1].GetUpperBound() != 0.1 || b[len(latencyBounds)].GetCumulativeCount() != 3 {
		t.Errorf("latency histogram %v", h)
	}
	if v := fams["keygate_keys"].GetMetric()[0].GetGauge().GetValue(); v != 1 {
		t.Errorf("keygate_keys %v, want 1", v)
	}
	if v := fams["keygate_store_up"].GetMetric()[0].GetGauge().GetValue(); v != 1 {
		t.Errorf("keygate_store_up %v, want 1", v)
	}
	if v := fams["keygate_change_lag_seconds"].GetMetric()[0].GetGauge().GetValue(); v < 0 || v > 30 {
		t.Errorf("keygate_change_lag_seconds %v", v)
	}
}

// TestMetricsStoreDown: while polls of the change feed fail, the store is
// down and the lag grows; once one succeeds, it is up again.
func TestMetricsStoreDown(t *testing.T) {
	ts := startServer(t, nil)
	gauge := func(name string) float64 {
		return scrape(t, ts.checkURL)[name].GetMetric()[0].GetGauge().GetValue()
	}
	ts.st.mu.Lock()
	ts.st.failChanges = 1 << 30
	ts.st.mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for gauge("keygate_store_up") != 0 {
		if time.Now().After(deadline) {
			t.Fatal("keygate_store_up still 1 while every poll fails")
		}
		time.Sleep(20 * time.Millisecond)
	}
	lag := gauge("keygate_change_lag_seconds")
	time.Sleep(200 * time.Millisecond) // four poll intervals
	if later := gauge("keygate_change_lag_seconds"); later <= lag {
		t.Errorf("keygate_change_lag_seconds %v then %v: not growing while the store is down", lag, later)
	}
	ts.st.mu.Lock()
	ts.st.failChanges = 0
	ts.st.mu.Unlock()
	for gauge("keygate_store_up") != 1 {
		if time.Now().After(deadline) {
			t.Fatal("keygate_store_up still 0 after polls succeed again")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if lag := gauge("keygate_change_lag_seconds"); lag > 5 {
		t.Errorf("keygate_change_lag_seconds %v after recovery", lag)
	}
}

// TestDecisionCounts: one counter per outcome and latency slot adds up to
// both the per-outcome totals and the histogram's slots.
func TestDecisionCounts(t *testing.T) {
	var m metrics
	allow, ip := outcome(engine.Allow), outcome(engine.DenyIP)
	for _, o := range []struct {
		o outcome
		d time.Duration
	}{{allow, 3 * time.Microsecond}, {allow, 5 * time.Microsecond}, {ip, 6 * time.Microsecond}, {allow, time.Second}, {oBadRequest, 30 * time.Microsecond}} {
		m.observeDecision(o.o, o.d)
	}
	outcomes, latency := m.decisionCounts()
	if outcomes[allow] != 3 || outcomes[ip] != 1 || outcomes[oBadRequest] != 1 {
		t.Errorf("per outcome %v", outcomes)
	}
	// Slots: <=5µs, <=10µs, <=25µs, <=50µs, ..., +Inf.
	want := [len(latencyBounds) + 1]uint64{0: 2, 1: 1, 3: 1, len(latencyBounds): 1}
	if latency != want {
		t.Errorf("per latency slot %v, want %v", latency, want)
	}
	if got, want := time.Duration(m.latencySum.Load()), time.Second+44*time.Microsecond; got != want {
		t.Errorf("latency sum %v, want %v", got, want)
	}
}
