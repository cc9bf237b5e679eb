package reliability_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// TestSoak runs steady load for KEYGATE_SOAK (a duration, e.g. 3m; unset:
// skipped — `make soak` sets it) with a 60 s usage-log retention and
// maintenance (retention, value-log GC) every 10 s, sampling RSS, open
// files and the data directory's size every 10 s. Memory and the data
// directory must level off and the stored usage log must stay within the
// retention window. KEYGATE_SOAK_RATE sets the checks per second (default
// 4000). The samples are written to soak.csv and plotted in soak.svg
// (both beside this file) as they come.
func TestSoak(t *testing.T) {
	v := os.Getenv("KEYGATE_SOAK")
	if v == "" {
		t.Skip("KEYGATE_SOAK not set (make soak)")
	}
	dur, err := time.ParseDuration(v)
	if err != nil || dur < 30*time.Second {
		t.Fatalf("KEYGATE_SOAK=%q: want a duration of at least 30s", v)
	}
	const (
		retention = 60 * time.Second
		workers   = 8
	)
	rate := 4000 // checks per second
	if v := os.Getenv("KEYGATE_SOAK_RATE"); v != "" {
		if rate, err = strconv.Atoi(v); err != nil || rate < 80 {
			t.Fatalf("KEYGATE_SOAK_RATE=%q: want checks per second, at least 80", v)
		}
	}
	data := t.TempDir()
	d := start(t, data, "--log-retention", retention.String(), "--maintenance-interval", "10s")
	var keys []key
	for i := range 50 {
		keys = append(keys, createKey(t, d, fmt.Sprint("soak", i), fmt.Sprintf("203.0.113.%d", 1+i)))
	}
	addr := strings.TrimPrefix(d.url, "http://")
	stop := make(chan struct{})
	var checks, bad, writes atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			hc := &fasthttp.HostClient{Addr: addr, MaxConns: 1}
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			tick := time.NewTicker(time.Second * workers / time.Duration(rate) * 10) // 10 checks per tick
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				for range 10 {
					i := rng.IntN(len(keys))
					ip := fmt.Sprintf("203.0.113.%d", 1+i+rng.IntN(2)) // allowed or not
					code, err := postJSON(hc, "http://"+addr+"/v1/check", `{"key":"`+keys[i].secret+`","ip":"`+ip+`","method":"GET","path":"/soak"}`)
					checks.Add(1)
					if err != nil || code != 200 && code != 403 {
						bad.Add(1)
					}
				}
			}
		})
	}
	// Management writes: one allowlist replacement a second.
	wg.Go(func() {
		rng := rand.New(rand.NewPCG(9, 9))
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Second):
			}
			i := rng.IntN(len(keys))
			r, err := do("PUT", d.url+"/v1/keys/"+keys[i].id+"/allowlist", adminToken,
				fmt.Sprintf(`{"entries":[{"cidr":"203.0.113.%d"},{"cidr":"198.51.100.%d"}]}`, 1+i, rng.IntN(250)))
			if err != nil || r.status != 200 {
				bad.Add(1)
			}
			writes.Add(1)
		}
	})

	type sample = soakSample
	var samples []sample
	title := fmt.Sprintf("make soak: %d checks/s, 1 allowlist write/s, retention %v, maintenance every 10 s", rate, retention)
	began := time.Now()
	for time.Since(began) < dur {
		time.Sleep(10 * time.Second)
		m := metrics(t, d)
		s := sample{time.Since(began).Round(time.Second).Seconds(), rssBytes(d.Pid()), dirSize(data), openFDs(d.Pid()), checks.Load(),
			m["keygate_usage_log_written_total"], m["keygate_usage_log_dropped_total"], m["keygate_usage_log_write_errors_total"]}
		samples = append(samples, s)
		t.Logf("t=%4v  RSS %6.1f MiB  data %7.1f MiB  fds %3d  checks %8d  written %8.0f  dropped %.0f  write errors %.0f",
			time.Duration(s.at)*time.Second, float64(s.rss)/(1<<20), float64(s.disk)/(1<<20), s.fds, s.checks, s.written, s.dropped, s.writeErrors)
		if err := writeSoakCSV("soak.csv", samples); err != nil {
			t.Error(err)
		}
		if err := writeSoakSVG("soak.svg", title, samples); err != nil {
			t.Error(err)
		}
	}
	close(stop)
	wg.Wait()
	time.Sleep(1500 * time.Millisecond)
	total := checks.Load()
	var stored int
	for _, k := range keys {
		stored += csvRows(t, d, k.id)
	}
	t.Logf("soak: %v, %d checks (%.0f/s), %d allowlist replacements, %d failures; %d usage-log records stored at the end (retention %v holds about %.0f)",
		dur, total, float64(total)/time.Since(began).Seconds(), writes.Load(), bad.Load(), stored, retention, float64(total)/time.Since(began).Seconds()*retention.Seconds())
	d.term(t)

	if bad.Load() > 0 {
		t.Errorf("%d failed checks or writes", bad.Load())
	}
	// Memory levels off: the last third's peak within 25% (+16 MiB) of the
	// middle third's.
	n := len(samples)
	if n >= 6 {
		peak := func(ss []sample) (r int64) {
			for _, s := range ss {
				r = max(r, s.rss)
			}
			return
		}
		mid, last := peak(samples[n/3:2*n/3]), peak(samples[2*n/3:])
		if last > mid*5/4+16<<20 {
			t.Errorf("RSS still growing: middle third peak %d MiB, last third %d MiB", mid>>20, last>>20)
		}
		diskPeak := func(ss []sample) (r int64) {
			for _, s := range ss {
				r = max(r, s.disk)
			}
			return
		}
		mid, last = diskPeak(samples[n/3:2*n/3]), diskPeak(samples[2*n/3:])
		t.Logf("peaks: RSS middle third %.1f MiB, last %.1f MiB; data dir middle third %.1f MiB, last %.1f MiB",
			float64(peak(samples[n/3:2*n/3]))/(1<<20), float64(peak(samples[2*n/3:]))/(1<<20), float64(mid)/(1<<20), float64(last)/(1<<20))
		if last > mid*5/4+8<<20 {
			t.Errorf("data directory still growing: middle third peak %d MiB, last third %d MiB", mid>>20, last>>20)
		}
	}
	// Retention holds: what is stored is about one retention window, not
	// everything ever written (segments expire whole, up to a maintenance
	// interval late).
	if window := float64(total) / time.Since(began).Seconds() * (retention + 30*time.Second).Seconds(); dur > 2*retention && float64(stored) > window {
		t.Errorf("%d records stored, more than %.0f (retention + 30 s of load)", stored, window)
	}
}

// postJSON posts body with hc and returns the status.
func postJSON(hc *fasthttp.HostClient, url, body string) (int, error) {
	req, res := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(res)
	req.SetRequestURI(url)
	req.Header.SetMethod("POST")
	req.Header.SetContentType("application/json")
	req.SetBodyString(body)
	err := hc.DoTimeout(req, res, 10*time.Second)
	return res.StatusCode(), err
}
