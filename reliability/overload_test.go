package reliability_test

import (
	"bytes"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// TestOverloadBurst sends a bounded burst from more concurrent
// connections than the daemon admits (--max-conns 256) and far more
// requests than 2 cores serve without queueing: connections over the
// limit get a quick 503, admitted checks keep a bounded latency, the
// daemon answers normally right after, and the usage log accounts for
// every check answered (written + dropped + write errors = checks).
func TestOverloadBurst(t *testing.T) {
	const (
		clients  = 400
		maxConns = 256
		budget   = 120000 // requests
		maxTime  = 8 * time.Second
	)
	d := start(t, t.TempDir(), "--max-conns", "256")
	k := createKey(t, d, "burst", "203.0.113.5")
	body := []byte(`{"key":"` + k.secret + `","ip":"203.0.113.5","method":"GET","path":"/burst"}`)
	addr := strings.TrimPrefix(d.url, "http://")

	var sent, ok, shed, other, errs atomic.Int64
	lat := make([][]time.Duration, clients)
	began := time.Now()
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() {
			hc := &fasthttp.HostClient{Addr: addr, MaxConns: 1, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second}
			req, res := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(res)
			for sent.Add(1) <= budget && time.Since(began) < maxTime {
				req.Reset()
				req.SetRequestURI("http://" + addr + "/v1/check")
				req.Header.SetMethod("POST")
				req.SetBody(body)
				t0 := time.Now()
				err := hc.Do(req, res)
				el := time.Since(t0)
				switch {
				case err != nil:
					errs.Add(1)
					time.Sleep(10 * time.Millisecond)
				case res.StatusCode() == 200:
					ok.Add(1)
					lat[i] = append(lat[i], el)
				case res.StatusCode() == 503 && bytes.Contains(res.Body(), []byte(`"UNAVAILABLE"`)):
					shed.Add(1)
					time.Sleep(5 * time.Millisecond) // a client backing off
				default:
					other.Add(1)
				}
			}
			hc.CloseIdleConnections()
		})
	}
	wg.Wait()
	dur := time.Since(began)
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	p99 := percentile(all, .99)
	t.Logf("burst: %d clients (limit %d conns), %d requests in %v: %d allowed (%.0f/s), %d shed with 503, %d other, %d transport errors; admitted latency p50 %v p99 %v max %v",
		clients, maxConns, ok.Load()+shed.Load()+other.Load()+errs.Load(), dur.Round(time.Millisecond), ok.Load(), float64(ok.Load())/dur.Seconds(),
		shed.Load(), other.Load(), errs.Load(), percentile(all, .5), p99, percentile(all, 1))
	if other.Load() > 0 {
		t.Errorf("%d answers neither 200 nor a 503 UNAVAILABLE", other.Load())
	}
	if shed.Load() == 0 {
		t.Errorf("no connection over the limit was shed")
	}
	if errs.Load() > int64(clients) {
		t.Errorf("%d transport errors", errs.Load())
	}
	if p99 > time.Second {
		t.Errorf("admitted p99 latency %v", p99)
	}

	// Recovered: quick answers right after the burst.
	var after []time.Duration
	for range 300 {
		s, l := timedCheck(d, k.secret)
		if s != 200 {
			t.Fatalf("after the burst: %d", s)
		}
		after = append(after, l)
	}
	t.Logf("after the burst: 300 checks p50 %v p99 %v", percentile(after, .5), percentile(after, .99))

	// The usage log accounts for every decision.
	var m map[string]float64
	deadline := time.Now().Add(10 * time.Second)
	for {
		m = metrics(t, d)
		if m["keygate_usage_log_queue_length"] == 0 && m["keygate_decisions_total"] == m["keygate_usage_log_written_total"]+m["keygate_usage_log_dropped_total"]+m["keygate_usage_log_write_errors_total"] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("usage log does not account for the checks: decisions %v, written %v, dropped %v, write errors %v, queued %v",
				m["keygate_decisions_total"], m["keygate_usage_log_written_total"], m["keygate_usage_log_dropped_total"],
				m["keygate_usage_log_write_errors_total"], m["keygate_usage_log_queue_length"])
		}
		time.Sleep(200 * time.Millisecond)
	}
	stored := csvRows(t, d, k.id)
	if float64(stored) != m["keygate_usage_log_written_total"] {
		t.Errorf("%d records stored, %v counted written", stored, m["keygate_usage_log_written_total"])
	}
	if float64(ok.Load()+300) != m["keygate_decisions_total"] {
		t.Errorf("%d checks answered 200, %v decisions counted", ok.Load()+300, m["keygate_decisions_total"])
	}
	t.Logf("usage log: %v decisions = %v written (%d stored) + %v dropped + %v write errors; %v connections rejected",
		m["keygate_decisions_total"], m["keygate_usage_log_written_total"], stored, m["keygate_usage_log_dropped_total"],
		m["keygate_usage_log_write_errors_total"], m["keygate_http_connections_rejected_total"])
}

// csvRows counts the exported usage-log rows of keyID.
func csvRows(t testing.TB, d *daemon, keyID string) int {
	t.Helper()
	r := must(t, "GET", d.url+"/v1/logs/export.csv?key_id="+keyID, adminToken, nil)
	if r.status != 200 {
		t.Fatalf("export: %d %s", r.status, r.body)
	}
	return bytes.Count(r.body, []byte("\n")) - 1
}
