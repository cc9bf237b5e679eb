package fleet

import (
	"flag"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keygate/keygate/internal/daemontest"
	"github.com/keygate/keygate/internal/pgtest"
)

var (
	benchFlag    = flag.Bool("fleet.bench", false, "run the fleet benchmark (TestBenchFleet; make bench-fleet)")
	benchChanges = flag.Int("fleet.changes", 200, "allowlist changes timed across the fleet")
	benchDur     = flag.Duration("fleet.d", 5*time.Second, "measured time per check-throughput run")
	benchConns   = flag.Int("fleet.c", 32, "concurrent check clients per run")
)

// TestBenchFleet (make bench-fleet, not make test) prints: propagation
// p50/p99 from A to B and C over -fleet.changes allowlist changes; the
// check throughput of a PostgreSQL-backed daemon and a Badger-backed one,
// alternated twice in one run (the check path never touches the database,
// so they should be within noise).
func TestBenchFleet(t *testing.T) {
	if !*benchFlag {
		t.Skip("the fleet benchmark runs with -fleet.bench (make bench-fleet)")
	}
	load, _ := os.ReadFile("/proc/loadavg")
	t.Logf("load average at start: %s", strings.TrimSpace(string(load)))
	url := pgtest.Shared(t).DB(t)
	ds := startFleet(t, url, 3)
	a := ds[0]
	id, secret := createKey(t, a, map[string]any{"name": "bench", "allowlist": []map[string]string{{"cidr": "203.0.113.1"}}})
	var lat []time.Duration
	for i := range *benchChanges {
		ip := fmt.Sprintf("198.51.%d.%d", i/250, i%250+1)
		require.Equal(t, http.StatusOK, admin(t, a, "PUT", "/v1/keys/"+id+"/allowlist", allowlist(ip)).Status)
		acked := time.Now()
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, d := range ds[1:] {
			wg.Go(func() {
				c := &http.Client{Timeout: 5 * time.Second}
				for check(c, d, secret, ip) != http.StatusOK {
					if time.Since(acked) > 5*time.Second {
						t.Errorf("change %d not on %s after 5 s", i, d.URL())
						return
					}
					time.Sleep(500 * time.Microsecond)
				}
				mu.Lock()
				lat = append(lat, time.Since(acked))
				mu.Unlock()
			})
		}
		wg.Wait()
	}
	t.Logf("propagation A -> B, C: %d changes x 2 daemons: p50 %v, p99 %v, max %v (target p99 < 500ms)", *benchChanges,
		percentile(lat, 0.5).Round(time.Microsecond), percentile(lat, 0.99).Round(time.Microsecond), percentile(lat, 1).Round(time.Microsecond))

	// Check throughput: a PostgreSQL daemon (A) and a Badger one, the same
	// key, alternated.
	bd := daemontest.Start(t, bin, daemontest.Options{AdminToken: token, ReadyPath: "/readyz", Graceful: true})
	_, bsecret := createKey(t, bd, map[string]any{"name": "bench", "allowlist": []map[string]string{{"cidr": "198.51.0.1"}}})
	require.Equal(t, http.StatusOK, admin(t, a, "PUT", "/v1/keys/"+id+"/allowlist", allowlist("198.51.0.1")).Status)
	for round := range 2 {
		for _, tc := range []struct {
			name   string
			d      *daemontest.Daemon
			secret string
		}{{"postgres", a, secret}, {"badger", bd, bsecret}} {
			n, bad := throughput(tc.d, tc.secret, "198.51.0.1")
			t.Logf("round %d: %-8s daemon: %.0f checks/s (%d clients, %v; %d not 200)", round+1, tc.name, float64(n)/benchDur.Seconds(), *benchConns, *benchDur, bad)
		}
	}
	load, _ = os.ReadFile("/proc/loadavg")
	t.Logf("load average at the end: %s", strings.TrimSpace(string(load)))
}

// throughput runs -fleet.c clients checking secret from ip against d for
// -fleet.d and returns the checks answered and those not 200.
func throughput(d *daemontest.Daemon, secret, ip string) (n, bad int64) {
	var ok, wrong atomic.Int64
	stop := time.Now().Add(*benchDur)
	var wg sync.WaitGroup
	tr := &http.Transport{MaxIdleConnsPerHost: *benchConns}
	c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	for range *benchConns {
		wg.Go(func() {
			for time.Now().Before(stop) {
				if check(c, d, secret, ip) == http.StatusOK {
					ok.Add(1)
				} else {
					wrong.Add(1)
				}
			}
		})
	}
	wg.Wait()
	tr.CloseIdleConnections()
	return ok.Load() + wrong.Load(), wrong.Load()
}
