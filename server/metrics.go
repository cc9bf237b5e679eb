package server

import (
	"runtime"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/keygate/keygate/engine"
	"github.com/keygate/keygate/store"
)

// handlerID names a group of routes for the keygate_http_requests_total
// metric. The set is fixed so that counting never allocates.
type handlerID uint8

const (
	hCheck handlerID = iota
	hAuthz
	hKeys
	hLogs
	hUI
	hHealth
	hMetrics
	hOther
	numHandlers
)

var handlerNames = [numHandlers]string{"check", "authz", "keys", "logs", "ui", "health", "metrics", "other"}

// outcome is a decision outcome for keygate_decisions_total: the engine's
// decisions (outcome(d) for a Decision d) plus a malformed request.
type outcome uint8

const (
	oBadRequest = outcome(engine.AllowReported) + 1
	numOutcomes = oBadRequest + 1
)

var outcomeNames = func() (n [numOutcomes]string) {
	for d := range oBadRequest {
		n[d] = engine.Decision(d).String()
	}
	n[oBadRequest] = "bad_request"
	return n
}()

// latencyBounds are the upper bounds of the decision latency histogram.
var latencyBounds = [...]time.Duration{
	5 * time.Microsecond, 10 * time.Microsecond, 25 * time.Microsecond,
	50 * time.Microsecond, 100 * time.Microsecond, 250 * time.Microsecond,
	500 * time.Microsecond, time.Millisecond, 5 * time.Millisecond,
	25 * time.Millisecond, 100 * time.Millisecond,
}

// metrics holds every counter the server exports. All fields are updated
// with atomics from any goroutine; nothing on the check path allocates.
type metrics struct {
	// decisions[o][i] counts the decisions of outcome o that took at most
	// latencyBounds[i]; the last slot counts the rest (+Inf). One counter
	// per decision serves keygate_decisions_total (the sum over i) and the
	// latency histogram (the sum over o), so a decision costs one atomic
	// add for both, and a scrape sees them agree.
	decisions  [numOutcomes][len(latencyBounds) + 1]atomic.Uint64
	latencySum atomic.Int64 // nanoseconds
	// requests[h][code-100] for codes 100..599.
	requests   [numHandlers][500]atomic.Uint64
	panics     atomic.Uint64
	pollErrors atomic.Uint64
	// connsRejected counts connections refused over Config.MaxConns.
	connsRejected atomic.Uint64
	// lastPollError is when a poll of the change feed last failed (Unix
	// nanoseconds; 0: never).
	lastPollError atomic.Int64
}

func (m *metrics) observeDecision(o outcome, d time.Duration) {
	i := 0
	for i < len(latencyBounds) && d > latencyBounds[i] {
		i++
	}
	m.decisions[o][i].Add(1)
	m.latencySum.Add(int64(d))
}

// decisionCounts returns the decisions counted per outcome and per
// latency slot (not cumulative).
func (m *metrics) decisionCounts() (outcomes [numOutcomes]uint64, latency [len(latencyBounds) + 1]uint64) {
	for o := range m.decisions {
		for i := range m.decisions[o] {
			v := m.decisions[o][i].Load()
			outcomes[o] += v
			latency[i] += v
		}
	}
	return outcomes, latency
}

func (m *metrics) observeRequest(h handlerID, code int) {
	if code < 100 || code > 599 {
		code = 500
	}
	m.requests[h][code-100].Add(1)
}

// collector exposes the server's counters to Prometheus. The check path
// only adds to atomics (no allocation, no lock); a scrape reads them into
// const metrics, so client_golang does the exposition — names, types,
// label escaping, content negotiation — and nothing here formats text.
type collector struct{ s *Server }

// Every metric the server exports, described once.
var (
	descBuildInfo = prometheus.NewDesc("keygate_build_info",
		"Build information; the value is always 1.", []string{"version", "goversion"}, nil)
	descDecisions = prometheus.NewDesc("keygate_decisions_total",
		"Check decisions by outcome.", []string{"outcome"}, nil)
	descLatency = prometheus.NewDesc("keygate_decision_duration_seconds",
		"Time to decide one check, from request parsed to response ready.", nil, nil)
	descRequests = prometheus.NewDesc("keygate_http_requests_total",
		"HTTP requests by handler and status code.", []string{"handler", "code"}, nil)
	descPanics = prometheus.NewDesc("keygate_http_panics_total",
		"Handler panics recovered and answered with 500.", nil, nil)
	descConnsRejected = prometheus.NewDesc("keygate_http_connections_rejected_total",
		"Connections answered with 503 because the listener had MaxConns open.", nil, nil)
	descKeys = prometheus.NewDesc("keygate_keys",
		"Keys loaded in the engine, revoked and expired ones included.", nil, nil)
	descSeq = prometheus.NewDesc("keygate_change_seq",
		"Store change sequence number the engine reflects.", nil, nil)
	descPollErrors = prometheus.NewDesc("keygate_change_poll_errors_total",
		"Failed polls of the store for changes.", nil, nil)
	descChangeLag = prometheus.NewDesc("keygate_change_lag_seconds",
		"Seconds since the engine last reflected every change in the store (its last successful catch-up with the change feed): about the poll interval while the store answers, growing while it does not.", nil, nil)
	descStoreUp = prometheus.NewDesc("keygate_store_up",
		"1 when the store answered the last poll of its change feed and reports no fault of its own (store.Health), else 0.", nil, nil)
	descLogQueue = prometheus.NewDesc("keygate_usage_log_queue_length",
		"Usage-log records waiting to be written.", nil, nil)
	descLogDropped = prometheus.NewDesc("keygate_usage_log_dropped_total",
		"Usage-log records dropped because the buffer was full.", nil, nil)
	descLogWritten = prometheus.NewDesc("keygate_usage_log_written_total",
		"Usage-log records written to disk.", nil, nil)
	descLogWriteErrors = prometheus.NewDesc("keygate_usage_log_write_errors_total",
		"Usage-log records that could not be written.", nil, nil)
)

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descBuildInfo, descDecisions, descLatency, descRequests, descPanics,
		descConnsRejected, descKeys, descSeq, descPollErrors, descChangeLag, descStoreUp,
		descLogQueue, descLogDropped, descLogWritten, descLogWriteErrors} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	m := &s.metrics
	metric := func(d *prometheus.Desc, t prometheus.ValueType, v float64, labels ...string) {
		mt, err := prometheus.NewConstMetric(d, t, v, labels...)
		if err != nil { // a label value that is not UTF-8 (a version from -ldflags)
			mt = prometheus.NewInvalidMetric(d, err)
		}
		ch <- mt
	}
	metric(descBuildInfo, prometheus.GaugeValue, 1, s.cfg.Version, runtime.Version())
	outcomes, latency := m.decisionCounts()
	for o, n := range outcomes {
		metric(descDecisions, prometheus.CounterValue, float64(n), outcomeNames[o])
	}
	buckets := make(map[float64]uint64, len(latencyBounds))
	var cum uint64
	for i, b := range latencyBounds {
		cum += latency[i]
		buckets[b.Seconds()] = cum
	}
	cum += latency[len(latencyBounds)]
	ch <- prometheus.MustNewConstHistogram(descLatency, cum, time.Duration(m.latencySum.Load()).Seconds(), buckets)
	for h := range m.requests {
		for code := range m.requests[h] {
			if n := m.requests[h][code].Load(); n > 0 {
				metric(descRequests, prometheus.CounterValue, float64(n), handlerNames[h], strconv.Itoa(code+100))
			}
		}
	}
	metric(descPanics, prometheus.CounterValue, float64(m.panics.Load()))
	metric(descConnsRejected, prometheus.CounterValue, float64(m.connsRejected.Load()))

	snap := s.keys.Snapshot()
	metric(descKeys, prometheus.GaugeValue, float64(snap.Len()))
	metric(descSeq, prometheus.GaugeValue, float64(snap.Seq()))
	metric(descPollErrors, prometheus.CounterValue, float64(m.pollErrors.Load()))
	synced := s.keys.Synced()
	metric(descChangeLag, prometheus.GaugeValue, max(time.Since(synced).Seconds(), 0))
	// Up: the last poll of the change feed succeeded and, for a store
	// that reports its health (store.Health), it reports none of its
	// faults (a local one or an unreachable database).
	up := m.lastPollError.Load() <= synced.UnixNano()
	if h, ok := s.store.(store.Health); ok && h.Health() != nil {
		up = false
	}
	metric(descStoreUp, prometheus.GaugeValue, boolFloat(up))

	ls := s.store.LogStats()
	metric(descLogQueue, prometheus.GaugeValue, float64(ls.Queued))
	metric(descLogDropped, prometheus.CounterValue, float64(ls.Dropped))
	metric(descLogWritten, prometheus.CounterValue, float64(ls.Written))
	metric(descLogWriteErrors, prometheus.CounterValue, float64(ls.WriteErrors))
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// newRegistry returns the registry /metrics serves: the server's
// collector beside client_golang's Go runtime and process collectors.
func newRegistry(s *Server) *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(collector{s}, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return r
}
