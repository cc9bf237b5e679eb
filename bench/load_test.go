package bench

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/keygate/keygate/engine"
	"github.com/keygate/keygate/internal/daemontest"
	badgerstore "github.com/keygate/keygate/store/badger"
)

// TestLoad is the daemon-level benchmark: it builds keygate, the net/http
// server, the load generator and OPA, and measures them one after the
// other on the same keys and request mix. It runs only with -load (make
// bench-load); plain go test skips it.
//
// Servers run with GOMAXPROCS=1 pinned to core -server-cpu, the load
// generator pinned to core -client-cpu, all on 127.0.0.1.
var (
	loadFlag   = flag.Bool("load", false, "run the daemon load benchmarks (TestLoad)")
	loadKeys   = flag.Int("load.keys", 1000, "keys created through the management API for the load runs")
	loadConns  = flag.Int("load.c", 64, "load generator connections")
	loadDur    = flag.Duration("load.d", 5*time.Second, "measured time per target")
	loadWarm   = flag.Duration("load.warmup", time.Second, "warm-up per target")
	loadScale  = flag.String("load.scale", "10000,100000,1000000", "key counts of the scale runs (empty: none)")
	loadProps  = flag.Int("load.changes", 200, "allowlist changes timed by the propagation run")
	loadRates  = flag.String("load.rates", "20000,40000,60000", "fixed request rates (open loop) for keygate /v1/check latency (empty: none)")
	loadPerf   = flag.Duration("load.perf", 5*time.Second, "perf profile of keygate /v1/check under load (0: none)")
	loadOut    = flag.String("load.out", "", "directory for binaries, data and profiles (default: a temporary one)")
	serverCPU  = flag.String("load.server-cpu", "0", "core for the servers")
	clientCPU  = flag.String("load.client-cpu", "1", "core for the load generator")
	adminToken = "kga_bench_token_0123456789"
)

func TestLoad(t *testing.T) {
	if !*loadFlag {
		t.Skip("daemon load benchmarks run only with -load (make bench-load)")
	}
	dir := *loadOut
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bins := buildAll(t, dir)
	logf(t, "machine: %s, %d CPUs; servers on core %s (GOMAXPROCS=1), load generator on core %s (GOMAXPROCS=1)", cpuModel(), nproc(), *serverCPU, *clientCPU)

	// keygate, with keys created through its management API.
	kgData := filepath.Join(dir, "kg-load")
	must(t, os.RemoveAll(kgData)) // a fresh store: same key count in every run
	kg := startKeygate(t, bins, kgData)
	keys := GenLoadKeys(1, *loadKeys, 5)
	start := time.Now()
	createKeys(t, kg.addr, keys)
	logf(t, "created %d keys (5 entries each, 1 in 4 IPv6) through POST /v1/keys in %v", len(keys), time.Since(start).Round(time.Millisecond))
	probes := filepath.Join(dir, "probes.json")
	data := filepath.Join(dir, "data.json")
	must(t, WriteJSON(probes, GenProbes(2, keys, 1<<16)))
	must(t, WriteJSON(data, NewPolicyData(keys)))
	logf(t, "request mix: %d%% allowed, %d%% blocked by IP, %d%% unknown key; %d connections; %v warm-up, %v measured", MixAllowed, MixBlockedIP, MixInvalid, *loadConns, *loadWarm, *loadDur)

	// The no-op floor: fasthttp answering a fixed 200, on TCP and on a
	// Unix socket, running for the whole test; each keygate measurement
	// is paired with one of the floor on the same transport just before
	// it (see measurePair), so the ratio comes from one moment's load.
	floorSock := filepath.Join(dir, "floor.sock")
	fl := startProc(t, "noop-floor", bins["noop-floor"], nil, "-addr", daemontest.FreeAddr(t), "-unix", floorSock)
	waitReady(t, fl, "/")
	flUnix := fl.via("unix:" + floorSock)

	var rows []row
	rows = append(rows, measurePair(t, bins, fl, kg, "keygate", "check", probes)...)
	rows = append(rows, measurePair(t, bins, fl, kg, "keygate", "authz", probes)...)
	openLoop(t, bins, fl, "no-op floor", probes, "-verify=false")
	openLoop(t, bins, kg, "keygate", probes)
	logf(t, "keygate usage log after the load runs: %s", logCounters(kg.addr))
	if *loadPerf > 0 {
		profile(t, bins, kg, probes, dir, "keygate-check")
	}
	propagation(t, bins, kg, probes)
	kg.stop(t)

	// keygate again on the same data, its check listener on a Unix
	// socket (management on TCP), trusting the socket's peers for
	// forward-auth.
	kgSock := filepath.Join(dir, "kg-check.sock")
	kgu := startKeygateOn(t, bins, kgData, "unix:"+kgSock, "127.0.0.1/32,unix")
	rows = append(rows, measurePair(t, bins, flUnix, kgu, "keygate", "check", probes)...)
	rows = append(rows, measurePair(t, bins, flUnix, kgu, "keygate", "authz", probes)...)
	openLoop(t, bins, flUnix, "no-op floor", probes, "-verify=false")
	openLoop(t, bins, kgu, "keygate", probes)
	kgu.stop(t)

	nh := startProc(t, "nethttp-authz", bins["nethttp-authz"], nil, "-addr", daemontest.FreeAddr(t), "-data", data)
	waitReady(t, nh, "/readyz")
	rows = append(rows, measurePair(t, bins, fl, nh, "net/http", "check", probes)...)
	rows = append(rows, measurePair(t, bins, fl, nh, "net/http", "authz", probes)...)
	openLoop(t, bins, nh, "net/http", probes)
	nh.stop(t)

	opaAddr := daemontest.FreeAddr(t)
	op := startProc(t, "opa", bins["opa"], nil, "run", "--server", "--addr", opaAddr, "--log-level", "error", "--disable-telemetry", data, "opa/keygate.rego")
	op.addr = opaAddr
	waitReady(t, op, "/health")
	rows = append(rows, measurePair(t, bins, fl, op, "OPA server", "opa", probes)...)
	op.stop(t)

	summary(t, rows)

	for _, s := range strings.Split(*loadScale, ",") {
		if s = strings.TrimSpace(s); s != "" {
			n, err := strconv.Atoi(s)
			must(t, err)
			scale(t, bins, fl, dir, n)
		}
	}
}

// measurePair measures the no-op floor fl, then p, on the same transport
// and request bytes, and returns both rows, p's with its ratio to the
// floor.
func measurePair(t *testing.T, bins map[string]string, fl, p *proc, server, kind, probes string, extra ...string) []row {
	t.Helper()
	if transportOf(fl.checkAddr()) != transportOf(p.checkAddr()) {
		t.Fatalf("floor on %s, %s on %s: not the same transport", fl.checkAddr(), server, p.checkAddr())
	}
	f := measure(t, bins, fl, "no-op floor", kind, probes, append([]string{"-verify=false"}, extra...)...)
	r := measure(t, bins, p, server, kind, probes, extra...)
	r.floor, r.floorCPUus = f.res.RPS, f.res.ServerCPUus
	f.floor, f.floorCPUus = f.res.RPS, f.res.ServerCPUus
	logf(t, "  %s %s over %s: %.2f of the no-op floor's req/s (%.0f vs %.0f), %.2f of its work per CPU-µs (%.2f vs %.2f CPU-µs per request), p99 %.0f vs %.0f µs",
		server, r.endpoint, r.transport, r.res.RPS/f.res.RPS, r.res.RPS, f.res.RPS,
		f.res.ServerCPUus/r.res.ServerCPUus, r.res.ServerCPUus, f.res.ServerCPUus, r.res.P99us, f.res.P99us)
	return []row{f, r}
}

func transportOf(addr string) string {
	if strings.HasPrefix(addr, "unix:") {
		return "unix"
	}
	return "tcp"
}

// openLoop measures /v1/check at each of -load.rates, on a fixed schedule
// below saturation: the latency a proxy sees at that load.
func openLoop(t *testing.T, bins map[string]string, p *proc, server, probes string, extra ...string) {
	for _, s := range strings.Split(*loadRates, ",") {
		if s = strings.TrimSpace(s); s != "" {
			measure(t, bins, p, server, "check", probes, append([]string{"-rate", s}, extra...)...)
		}
	}
}

// row is one measured target.
type row struct {
	server, endpoint string
	transport        string // tcp or unix
	res              LoadResult
	serverCPU        float64 // fraction of one core during the window
	floor            float64 // the no-op floor's req/s measured just before, same transport (0: none)
	floorCPUus       float64 // and its server CPU-µs per request
	load             string
}

func measure(t *testing.T, bins map[string]string, p *proc, server, kind, probes string, extra ...string) row {
	t.Helper()
	load := loadavg()
	cpu0 := p.cpu(t)
	res := loadgen(t, bins, p.checkAddr(), kind, probes, append(extra, "-pid", strconv.Itoa(p.cmd.Process.Pid))...)
	cpu1 := p.cpu(t)
	r := row{server: server, endpoint: endpointOf(kind), transport: transportOf(p.checkAddr()), res: res, load: load}
	r.serverCPU = (cpu1 - cpu0).Seconds() / (res.Seconds + loadWarm.Seconds())
	logf(t, "%-11s %-4s %-28s %8.0f req/s  p50 %6.0f µs  p99 %6.0f µs  p99.9 %6.0f µs  max %6.0f µs  n=%d errors=%d wrong=%d  server CPU %.2f core, %.2f µs per request (user %.2f, system %.2f)  client CPU %.2f core  [load %s]",
		server, r.transport, r.endpoint, res.RPS, res.P50us, res.P99us, res.P999us, res.MaxUs, res.Requests, res.Errors, res.Wrong, r.serverCPU, res.ServerCPUus, res.ServerUserUs, res.ServerSysUs, res.ClientCPU, load)
	return r
}

func endpointOf(kind string) string {
	switch kind {
	case "check":
		return "POST /v1/check"
	case "authz":
		return "GET /v1/authz"
	}
	return "POST /v1/data/keygate/decision"
}

func loadgen(t *testing.T, bins map[string]string, addr, kind, probes string, extra ...string) LoadResult {
	t.Helper()
	args := append([]string{"-c", *clientCPU, bins["loadgen"], "-addr", addr, "-kind", kind, "-probes", probes,
		"-c", strconv.Itoa(*loadConns), "-d", loadDur.String(), "-warmup", loadWarm.String()}, extra...)
	cmd := exec.Command("taskset", args...)
	cmd.Env = append(os.Environ(), "GOMAXPROCS=1")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var res LoadResult
	if jerr := json.Unmarshal(out.Bytes(), &res); jerr != nil {
		t.Fatalf("loadgen %s: %v %v: %s %s", kind, err, jerr, out.String(), errb.String())
	}
	if err != nil {
		t.Errorf("loadgen %s against %s: %v: %s", kind, addr, err, out.String())
	}
	return res
}

// summary prints the table of rows: each with its ratio to the no-op
// floor measured just before it on the same transport, and keygate's
// /v1/check over TCP (the first keygate row) against it.
func summary(t *testing.T, rows []row) {
	var b strings.Builder
	fmt.Fprintf(&b, "\n| server | transport | endpoint | req/s | of the no-op floor (req/s) | p50 µs | p99 µs | p99.9 µs | server CPU (cores) | server CPU-µs per request | of the no-op floor (per CPU-µs) | keygate /v1/check (TCP) is | load avg |\n|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|\n")
	var base row
	for _, r := range rows {
		if r.server == "keygate" {
			base = r
			break
		}
	}
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %s | %s | %.0f | %.2f | %.0f | %.0f | %.0f | %.2f | %.2f | %.2f | %.1fx (req/s), %.1fx (per CPU-µs) | %s |\n",
			r.server, r.transport, r.endpoint, r.res.RPS, r.res.RPS/r.floor, r.res.P50us, r.res.P99us, r.res.P999us, r.serverCPU,
			r.res.ServerCPUus, r.floorCPUus/r.res.ServerCPUus, base.res.RPS/r.res.RPS, r.res.ServerCPUus/base.res.ServerCPUus, r.load)
	}
	logf(t, "%s", b.String())
}

// propagation times acknowledged allowlist changes until the first check
// that reflects them, under a light background load.
func propagation(t *testing.T, bins map[string]string, kg *proc, probes string) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	bg := exec.CommandContext(ctx, "taskset", "-c", *clientCPU, bins["loadgen"], "-addr", kg.addr, "-kind", "check",
		"-probes", probes, "-c", "4", "-rate", "2000", "-warmup", "0s", "-d", "10m")
	bg.Env = append(os.Environ(), "GOMAXPROCS=1")
	must(t, bg.Start())
	defer bg.Wait()
	defer cancel()

	secret, id := createKey(t, kg.addr, `{"name":"propagation","allowlist":[{"cidr":"203.0.113.0/24"}]}`)
	ip := "203.0.113.7"
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	check := []byte(`{"key":"` + secret + `","ip":"` + ip + `"}`)
	lists := []string{`{"entries":[{"cidr":"198.51.100.0/24"}]}`, `{"entries":[{"cidr":"203.0.113.0/24"}]}`}
	time.Sleep(300 * time.Millisecond)
	load := loadavg()
	var ack, prop []time.Duration
	extraChecks := 0
	for i := range *loadProps {
		want := 403
		if i%2 == 1 {
			want = 200
		}
		t0 := time.Now()
		req, _ := http.NewRequest("PUT", "http://"+kg.addr+"/v1/keys/"+id+"/allowlist", strings.NewReader(lists[i%2]))
		req.Header.Set("Authorization", "Bearer "+adminToken)
		resp, err := client.Do(req)
		must(t, err)
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("PUT allowlist: %d", resp.StatusCode)
		}
		t1 := time.Now()
		for n := 0; ; n++ {
			resp, err := client.Post("http://"+kg.addr+"/v1/check", "application/json", bytes.NewReader(check))
			must(t, err)
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == want {
				prop = append(prop, time.Since(t1))
				extraChecks += n
				break
			}
			if time.Since(t1) > 20*time.Second {
				t.Fatalf("change %d not visible after 20 s", i)
			}
		}
		ack = append(ack, t1.Sub(t0))
		time.Sleep(10 * time.Millisecond)
	}
	logf(t, "propagation over %d allowlist replacements (PUT /v1/keys/{id}/allowlist), background load 2000 checks/s [load %s]:", *loadProps, load)
	logf(t, "  PUT acknowledged after (fsync included): %s", dist(ack))
	logf(t, "  acknowledgement -> first check reflecting it (one check round trip included): %s; checks that still saw the old list: %d", dist(prop), extraChecks)
}

func dist(d []time.Duration) string {
	slices.Sort(d)
	q := func(f float64) time.Duration { return d[min(len(d)-1, int(f*float64(len(d))))] }
	r := func(d time.Duration) string { return fmt.Sprintf("%.0f µs", float64(d)/1e3) }
	return fmt.Sprintf("p50 %s, p99 %s, max %s", r(q(0.5)), r(q(0.99)), r(d[len(d)-1]))
}

// profile records keygate's CPU under /v1/check load with perf.
func profile(t *testing.T, bins map[string]string, kg *proc, probes, dir, name string) {
	if _, err := exec.LookPath("perf"); err != nil {
		logf(t, "no perf: profile skipped")
		return
	}
	data := filepath.Join(dir, name+".perf.data")
	rec := exec.Command("perf", "record", "-F", "2999", "-g", "-o", data, "-p", strconv.Itoa(kg.cmd.Process.Pid), "--", "sleep", strconv.Itoa(int(loadPerf.Seconds())))
	var recErr bytes.Buffer
	rec.Stderr = &recErr
	must(t, rec.Start())
	res := loadgen(t, bins, kg.addr, "check", probes, "-warmup", "0s", "-d", loadPerf.String())
	if err := rec.Wait(); err != nil {
		logf(t, "perf record: %v: %s", err, recErr.String())
		return
	}
	out, err := exec.Command("perf", "report", "-i", data, "--no-children", "--stdio", "--sort", "symbol", "-g", "none").Output()
	if err != nil {
		logf(t, "perf report: %v", err)
		return
	}
	report := filepath.Join(dir, "perf-"+name+".txt")
	must(t, os.WriteFile(report, out, 0o644))
	if dso, err := exec.Command("perf", "report", "-i", data, "--no-children", "--stdio", "--sort", "dso", "-g", "none").Output(); err == nil {
		var lines []string
		for _, l := range strings.Split(string(dso), "\n") {
			if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
				lines = append(lines, l)
			}
		}
		logf(t, "perf %s: keygate's CPU under /v1/check load by binary (kernel = TCP, epoll, syscalls):\n  %s", name, strings.Join(lines, "\n  "))
	}
	var top []string
	groups := map[string]float64{}
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		if len(f) < 3 || strings.HasPrefix(f[0], "#") || !strings.HasSuffix(f[0], "%") {
			continue
		}
		pct, err := strconv.ParseFloat(strings.TrimSuffix(f[0], "%"), 64)
		if err != nil {
			continue
		}
		groups[groupOf(f[1], f[2])] += pct
		if pct >= 0.7 {
			top = append(top, fmt.Sprintf("%6.2f%%  %s %s", pct, f[1], f[2]))
		}
	}
	var gs []string
	for g, pct := range groups {
		gs = append(gs, fmt.Sprintf("%6.2f%%  %s", pct, g))
	}
	slices.Sort(gs)
	slices.Reverse(gs)
	logf(t, "perf profile %s of keygate under /v1/check load (%v, %.0f req/s; self time; full report %s)\nby component:\n  %s\ntop symbols (>= 0.7%%):\n  %s",
		name, loadPerf, res.RPS, report, strings.Join(gs, "\n  "), strings.Join(top, "\n  "))
}

// groupOf names the component a perf symbol belongs to.
func groupOf(kind, sym string) string {
	switch {
	case kind == "[k]":
		return "kernel (TCP over loopback, epoll, syscalls)"
	case strings.HasPrefix(sym, "github.com/keygate/keygate/engine"):
		return "keygate engine (hash, lookup, trie)"
	case strings.HasPrefix(sym, "github.com/keygate/keygate/server"):
		return "keygate server (parse, respond, record)"
	case strings.HasPrefix(sym, "github.com/keygate/keygate/store"), strings.Contains(sym, "klauspost/compress"),
		strings.Contains(sym, "dgraph-io"), strings.Contains(sym, "ristretto"):
		return "usage log (store: encode, zstd, Badger)"
	case strings.HasPrefix(sym, "github.com/valyala/fasthttp"):
		return "fasthttp (HTTP parsing, connection handling)"
	case strings.HasPrefix(sym, "crypto/"), strings.HasPrefix(sym, "sha256"):
		return "crypto/sha256"
	case strings.HasPrefix(sym, "runtime."), strings.HasPrefix(sym, "internal/runtime"), strings.HasPrefix(sym, "syscall."),
		strings.HasPrefix(sym, "internal/poll"), strings.HasPrefix(sym, "gcWriteBarrier"), sym == "cmpbody", sym == "memeqbody":
		return "Go runtime (scheduler, netpoll, memmove, GC)"
	case strings.HasPrefix(sym, "__vdso"):
		return "vDSO clock_gettime (time.Now)"
	}
	return "other"
}

// scale stores n keys directly in a Badger data directory with the store
// package, then times keygate's start-up on it and measures its memory
// and its /v1/check throughput.
func scale(t *testing.T, bins map[string]string, fl *proc, dir string, n int) {
	dataDir := filepath.Join(dir, fmt.Sprintf("kg-%d", n))
	must(t, os.RemoveAll(dataDir))
	st, err := badgerstore.Open(badgerstore.DefaultOptions(dataDir).WithSyncWrites(false))
	must(t, err)
	start := time.Now()
	// Keep about 100k keys (spread over the whole set) for the probes.
	every := max(1, n/100_000)
	var kept []LoadKey
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for i := range n {
		al := GenKeyAllowlist(uint64(1_000_000+i), 5, i%4 == 3)
		secret, hint := engine.NewSecret()
		in := make([]engine.EntryInput, len(al.Prefixes))
		for j, p := range al.Prefixes {
			in[j] = engine.EntryInput{CIDR: p.String(), Label: "office"}
		}
		entries, err := engine.Policy{}.BuildAllowlist(in)
		must(t, err)
		k := &engine.Key{ID: engine.NewKeyID(), Name: "scale " + strconv.Itoa(i), Scopes: []string{"read"},
			Hash: engine.HashSecret([]byte(secret)), Hint: hint, CreatedAt: time.Now(), Allowlist: entries}
		if i%every == 0 {
			kept = append(kept, LoadKey{ID: k.ID, Secret: secret, Hits: al.Hits[:4], Misses: al.Misses[:4]})
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if _, err := st.CreateKey(context.Background(), k, "bench"); err != nil {
				mu.Lock()
				defer mu.Unlock()
				t.Error(err)
			}
		})
	}
	wg.Wait()
	must(t, st.Close())
	setup := time.Since(start)
	du, _ := exec.Command("du", "-sh", dataDir).Output()

	load := loadavg()
	t0 := time.Now()
	kg := startKeygate(t, bins, dataDir)
	ready := kg.ready.Sub(t0)
	rss, hwm := kg.mem(t)
	logf(t, "scale %d keys (5 entries each): store written in %v (store.CreateKey, no fsync), %s on disk; keygate start -> /readyz 200 in %v; RSS %d MiB (peak %d MiB) [load %s]",
		n, setup.Round(time.Millisecond), strings.Fields(string(du))[0], ready.Round(time.Millisecond), rss>>20, hwm>>20, load)
	if n >= 1_000_000 || n == lastScale() {
		probes := filepath.Join(dir, fmt.Sprintf("probes-%d.json", n))
		must(t, WriteJSON(probes, GenProbes(3, kept, 1<<18)))
		measurePair(t, bins, fl, kg, fmt.Sprintf("keygate %dk keys", n/1000), "check", probes)
		rss, hwm = kg.mem(t)
		logf(t, "  RSS after the run %d MiB (peak %d MiB); usage log: %s", rss>>20, hwm>>20, logCounters(kg.addr))
		if *loadPerf > 0 {
			profile(t, bins, kg, probes, dir, fmt.Sprintf("keygate-check-%dkeys", n))
		}
	}
	kg.stop(t)
	must(t, os.RemoveAll(dataDir))
}

func lastScale() int {
	n := 0
	for _, s := range strings.Split(*loadScale, ",") {
		if v, err := strconv.Atoi(strings.TrimSpace(s)); err == nil {
			n = max(n, v)
		}
	}
	return n
}

// ---- processes ----

type proc struct {
	name  string
	cmd   *exec.Cmd
	addr  string // TCP: health and, for keygate, management
	check string // where the load goes if not addr: unix:PATH
	ready time.Time
	out   *bytes.Buffer
	done  chan error
}

func startProc(t *testing.T, name, bin string, env []string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command("taskset", append([]string{"-c", *serverCPU, bin}, args...)...)
	cmd.Env = append(append(os.Environ(), "GOMAXPROCS=1"), env...)
	p := &proc{name: name, cmd: cmd, out: new(bytes.Buffer), done: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	for i, a := range args {
		if a == "-addr" || a == "--addr" {
			p.addr = args[i+1]
		}
	}
	must(t, cmd.Start())
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() { p.stop(t) })
	return p
}

// checkAddr is where the load generator sends requests.
func (p *proc) checkAddr() string { return cmp.Or(p.check, p.addr) }

// via returns p with its load sent to addr instead (another listener of
// the same process).
func (p *proc) via(addr string) *proc {
	q := *p
	q.check = addr
	return &q
}

func (p *proc) stop(t *testing.T) {
	if p.cmd.ProcessState != nil || p.cmd.Process == nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
		t.Errorf("%s did not stop on SIGTERM", p.name)
	}
}

// cpu is the process's user plus system time so far (all threads).
func (p *proc) cpu(t *testing.T) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	must(t, err)
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	ut, _ := strconv.Atoi(f[11])
	st, _ := strconv.Atoi(f[12])
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ
}

// mem returns the process's resident and peak resident set size in bytes.
func (p *proc) mem(t *testing.T) (rss, hwm int64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	must(t, err)
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 3 && (f[0] == "VmRSS:" || f[0] == "VmHWM:") {
			v, _ := strconv.ParseInt(f[1], 10, 64)
			if f[0] == "VmRSS:" {
				rss = v << 10
			} else {
				hwm = v << 10
			}
		}
	}
	return rss, hwm
}

func startKeygate(t *testing.T, bins map[string]string, data string) *proc {
	t.Helper()
	p := startProc(t, "keygate", bins["keygate"], nil, "serve", "--addr", daemontest.FreeAddr(t), "--data", data,
		"--admin-token", adminToken, "--trusted-proxies", "127.0.0.1/32")
	waitReady(t, p, "/readyz")
	return p
}

// startKeygateOn starts keygate with its check listener at check (e.g.
// unix:PATH) and management on a free loopback port.
func startKeygateOn(t *testing.T, bins map[string]string, data, check, trusted string) *proc {
	t.Helper()
	admin := daemontest.FreeAddr(t)
	p := startProc(t, "keygate", bins["keygate"], nil, "serve", "--addr", check, "--admin-addr", admin, "--data", data,
		"--admin-token", adminToken, "--trusted-proxies", trusted)
	p.addr, p.check = admin, check
	waitReady(t, p, "/readyz")
	return p
}

// waitReady polls path every millisecond until it answers 200.
func waitReady(t *testing.T, p *proc, path string) {
	t.Helper()
	c := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(5 * time.Minute)
	for time.Now().Before(deadline) {
		select {
		case err := <-p.done:
			t.Fatalf("%s exited: %v\n%s", p.name, err, p.out)
		default:
		}
		resp, err := c.Get("http://" + p.addr + path)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				p.ready = time.Now()
				return
			}
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("%s not ready after 5 minutes:\n%s", p.name, p.out)
}

// ---- keygate's management API ----

func createKey(t *testing.T, addr, body string) (secret, id string) {
	secret, id, err := postKey(addr, body)
	must(t, err)
	return secret, id
}

func postKey(addr, body string) (secret, id string, err error) {
	r, err := daemontest.Request(nil, "POST", "http://"+addr+"/v1/keys", adminToken, body)
	if err != nil {
		return "", "", err
	}
	var k struct{ ID, Secret string }
	if r.Status != 201 || json.Unmarshal(r.Body, &k) != nil {
		return "", "", fmt.Errorf("POST /v1/keys: %d %s", r.Status, r.Body)
	}
	return k.Secret, k.ID, nil
}

func createKeys(t *testing.T, addr string, keys []LoadKey) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i := range keys {
		k := &keys[i]
		k.Name = "bench-" + strconv.Itoa(i)
		type entry struct {
			CIDR  string `json:"cidr"`
			Label string `json:"label"`
		}
		var al []entry
		for _, p := range k.Allowlist {
			al = append(al, entry{p.String(), "office"})
		}
		body, _ := json.Marshal(map[string]any{"name": k.Name, "scopes": []string{"read"}, "allowlist": al})
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			var err error
			if k.Secret, k.ID, err = postKey(addr, string(body)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
}

// logCounters returns keygate's usage-log counters from /metrics.
func logCounters(addr string) string {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	var out []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, "keygate_usage_log_") {
			out = append(out, strings.TrimPrefix(l, "keygate_usage_log_"))
		}
	}
	return strings.Join(out, ", ")
}

// ---- builds and the machine ----

func buildAll(t *testing.T, dir string) map[string]string {
	bins := map[string]string{}
	run := func(wd string, env []string, args ...string) {
		cmd := exec.Command("go", args...)
		cmd.Dir = wd
		cmd.Env = append(os.Environ(), env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	for _, name := range []string{"keygate", "loadgen", "nethttp-authz", "noop-floor", "opa"} {
		bins[name] = filepath.Join(dir, name)
	}
	start := time.Now()
	// keygate from its own module (its go.mod, not this one's).
	kg, err := daemontest.Build(dir)
	must(t, err)
	bins["keygate"] = kg
	run(".", nil, "build", "-o", bins["loadgen"], "./cmd/loadgen")
	run(".", nil, "build", "-o", bins["nethttp-authz"], "./cmd/nethttp-authz")
	run(".", nil, "build", "-o", bins["noop-floor"], "./cmd/noop-floor")
	ver, err := exec.Command("go", "list", "-m", "-f", "{{.Version}}", "github.com/open-policy-agent/opa").Output()
	must(t, err)
	v := strings.TrimSpace(string(ver))
	// OPA's own main package, built with its own go.mod at the version
	// this module requires (its server's dependencies stay out of ours).
	run(os.TempDir(), []string{"GOBIN=" + dir, "GOFLAGS=-buildvcs=false"}, "install", "github.com/open-policy-agent/opa@"+v)
	logf(t, "built keygate, loadgen, nethttp-authz and opa %s in %v", v, time.Since(start).Round(time.Millisecond))
	return bins
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "model name") {
			return strings.TrimSpace(l[strings.IndexByte(l, ':')+1:])
		}
	}
	return "unknown CPU"
}

func nproc() int {
	out, _ := exec.Command("nproc").Output()
	n, _ := strconv.Atoi(strings.TrimSpace(string(out)))
	return n
}

func logf(t *testing.T, f string, a ...any) {
	t.Helper()
	fmt.Printf(f+"\n", a...)
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
