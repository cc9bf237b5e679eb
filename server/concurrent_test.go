package server

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// TestConcurrentChecksDuringSwaps runs a bounded check load while the
// allowlist is swapped back and forth. Addresses in both lists are always
// allowed, addresses in neither always denied, and every acknowledged swap
// is seen by the very next check. Every check is logged. Half the load
// goes through /v1/check, half through /v1/authz behind a trusted proxy.
func TestConcurrentChecksDuringSwaps(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.TrustedProxies = []string{"127.0.0.1"} })
	listA := []map[string]string{{"cidr": "192.0.2.0/24"}, {"cidr": "203.0.113.0/24"}}
	listB := []map[string]string{{"cidr": "192.0.2.0/24"}, {"cidr": "198.51.100.0/24"}}
	id, secret := ts.createKey(t, map[string]any{"name": "k", "allowlist": listA})
	logsBefore := ts.st.logCount()

	const workers, perWorker, swaps = 4, 150, 40
	var checks atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan string, 100)
	report := func(format string, args ...any) {
		select {
		case errs <- fmt.Sprintf(format, args...):
		default:
		}
	}
	for w := range workers {
		wg.Go(func() {
			c := &http.Client{}
			for i := range perWorker {
				ip, want := "192.0.2.7", 200 // in both lists
				switch i % 3 {
				case 1:
					ip, want = "45.0.0.9", 403 // in neither
				case 2:
					ip, want = "203.0.113.9", 0 // depends on the swap
				}
				var res *http.Response
				var err error
				if w%2 == 0 {
					body := fmt.Sprintf(`{"key":%q,"ip":%q}`, secret, ip)
					res, err = c.Post(ts.checkURL+"/v1/check", "application/json", strings.NewReader(body))
				} else {
					req, _ := http.NewRequest("GET", ts.checkURL+"/v1/authz", nil)
					req.Header.Set("X-API-Key", secret)
					req.Header.Set("X-Forwarded-For", ip+", 127.0.0.1")
					res, err = c.Do(req)
				}
				if err != nil {
					report("check: %v", err)
					return
				}
				res.Body.Close()
				checks.Add(1)
				if want != 0 && res.StatusCode != want || want == 0 && res.StatusCode != 200 && res.StatusCode != 403 {
					report("ip %s: status %d, want %d", ip, res.StatusCode, want)
				}
			}
		})
	}
	for i := range swaps {
		list, in, out := listA, "203.0.113.9", "198.51.100.9"
		if i%2 == 0 {
			list, in, out = listB, "198.51.100.9", "203.0.113.9"
		}
		wantStatus(t, ts.admin(t, "PUT", "/v1/keys/"+id+"/allowlist", map[string]any{"entries": list}), 200, "swap")
		if r := ts.check(t, secret, in, ""); r.status != 200 {
			report("swap %d: %s not allowed right after the swap", i, in)
		}
		if r := ts.check(t, secret, out, ""); r.status != 403 {
			report("swap %d: %s still allowed right after the swap", i, out)
		}
		checks.Add(2)
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if got, want := ts.st.logCount()-logsBefore, int(checks.Load()); got != want {
		t.Errorf("%d checks logged, want %d", got, want)
	}
}
