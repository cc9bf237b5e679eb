package server

import (
	"bufio"
	"fmt"
	"runtime"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/keygate/keygate/engine"
	"github.com/keygate/keygate/usagelog"
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
	decisions [numOutcomes]atomic.Uint64
	// latency[i] counts decisions at most latencyBounds[i]; the last slot
	// counts the rest (+Inf).
	latency    [len(latencyBounds) + 1]atomic.Uint64
	latencySum atomic.Int64 // nanoseconds
	// requests[h][code-100] for codes 100..599.
	requests   [numHandlers][500]atomic.Uint64
	panics     atomic.Uint64
	pollErrors atomic.Uint64
	// connsRejected counts connections refused over Config.MaxConns.
	connsRejected atomic.Uint64
}

func (m *metrics) observeDecision(o outcome, d time.Duration) {
	m.decisions[o].Add(1)
	m.latencySum.Add(int64(d))
	i := 0
	for i < len(latencyBounds) && d > latencyBounds[i] {
		i++
	}
	m.latency[i].Add(1)
}

func (m *metrics) observeRequest(h handlerID, code int) {
	if code < 100 || code > 599 {
		code = 500
	}
	m.requests[h][code-100].Add(1)
}

// gauges are the values /metrics reads from elsewhere when it is scraped.
type gauges struct {
	keys     int
	seq      uint64
	logStats usagelog.Stats
}

// write writes every metric in the Prometheus text exposition format.
func (m *metrics) write(w *bufio.Writer, g gauges, version string) {
	fmt.Fprintf(w, "# HELP keygate_build_info Build information; the value is always 1.\n# TYPE keygate_build_info gauge\n")
	fmt.Fprintf(w, "keygate_build_info{version=%q,goversion=%q} 1\n", version, runtime.Version())

	fmt.Fprintf(w, "# HELP keygate_decisions_total Check decisions by outcome.\n# TYPE keygate_decisions_total counter\n")
	for i := range m.decisions {
		fmt.Fprintf(w, "keygate_decisions_total{outcome=%q} %d\n", outcomeNames[i], m.decisions[i].Load())
	}

	fmt.Fprintf(w, "# HELP keygate_decision_duration_seconds Time to decide one check, from request parsed to response ready.\n# TYPE keygate_decision_duration_seconds histogram\n")
	var cum uint64
	for i, b := range latencyBounds {
		cum += m.latency[i].Load()
		fmt.Fprintf(w, "keygate_decision_duration_seconds_bucket{le=%q} %d\n", strconv.FormatFloat(b.Seconds(), 'g', -1, 64), cum)
	}
	cum += m.latency[len(latencyBounds)].Load()
	fmt.Fprintf(w, "keygate_decision_duration_seconds_bucket{le=\"+Inf\"} %d\n", cum)
	fmt.Fprintf(w, "keygate_decision_duration_seconds_sum %s\n", strconv.FormatFloat(time.Duration(m.latencySum.Load()).Seconds(), 'g', -1, 64))
	fmt.Fprintf(w, "keygate_decision_duration_seconds_count %d\n", cum)

	fmt.Fprintf(w, "# HELP keygate_http_requests_total HTTP requests by handler and status code.\n# TYPE keygate_http_requests_total counter\n")
	for h := range m.requests {
		for c := range m.requests[h] {
			if n := m.requests[h][c].Load(); n > 0 {
				fmt.Fprintf(w, "keygate_http_requests_total{handler=%q,code=\"%d\"} %d\n", handlerNames[h], c+100, n)
			}
		}
	}

	fmt.Fprintf(w, "# HELP keygate_http_panics_total Handler panics recovered and answered with 500.\n# TYPE keygate_http_panics_total counter\n")
	fmt.Fprintf(w, "keygate_http_panics_total %d\n", m.panics.Load())

	fmt.Fprintf(w, "# HELP keygate_http_connections_rejected_total Connections answered with 503 because the listener had MaxConns open.\n# TYPE keygate_http_connections_rejected_total counter\n")
	fmt.Fprintf(w, "keygate_http_connections_rejected_total %d\n", m.connsRejected.Load())

	fmt.Fprintf(w, "# HELP keygate_keys Keys loaded in the engine, revoked and expired ones included.\n# TYPE keygate_keys gauge\n")
	fmt.Fprintf(w, "keygate_keys %d\n", g.keys)
	fmt.Fprintf(w, "# HELP keygate_change_seq Store change sequence number the engine reflects.\n# TYPE keygate_change_seq gauge\n")
	fmt.Fprintf(w, "keygate_change_seq %d\n", g.seq)
	fmt.Fprintf(w, "# HELP keygate_change_poll_errors_total Failed polls of the store for changes.\n# TYPE keygate_change_poll_errors_total counter\n")
	fmt.Fprintf(w, "keygate_change_poll_errors_total %d\n", m.pollErrors.Load())

	fmt.Fprintf(w, "# HELP keygate_usage_log_queue_length Usage-log records waiting to be written.\n# TYPE keygate_usage_log_queue_length gauge\n")
	fmt.Fprintf(w, "keygate_usage_log_queue_length %d\n", g.logStats.Queued)
	fmt.Fprintf(w, "# HELP keygate_usage_log_dropped_total Usage-log records dropped because the buffer was full.\n# TYPE keygate_usage_log_dropped_total counter\n")
	fmt.Fprintf(w, "keygate_usage_log_dropped_total %d\n", g.logStats.Dropped)
	fmt.Fprintf(w, "# HELP keygate_usage_log_written_total Usage-log records written to disk.\n# TYPE keygate_usage_log_written_total counter\n")
	fmt.Fprintf(w, "keygate_usage_log_written_total %d\n", g.logStats.Written)
	fmt.Fprintf(w, "# HELP keygate_usage_log_write_errors_total Usage-log records that could not be written.\n# TYPE keygate_usage_log_write_errors_total counter\n")
	fmt.Fprintf(w, "keygate_usage_log_write_errors_total %d\n", g.logStats.WriteErrors)
}
