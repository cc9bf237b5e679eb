// Command loadgen sends check requests to one server over a fixed number
// of keep-alive connections, each a closed loop (the next request leaves
// when the previous answer is in), for a bounded time after a warm-up, and
// checks every answer against the decision it must carry. It prints one
// JSON object: requests/s, latency percentiles, errors, and the CPU time
// it used itself (to tell when the generator, not the server, is the
// limit).
//
//	loadgen -addr 127.0.0.1:8080 -kind check -probes probes.json -c 64 -d 5s
//	loadgen -addr unix:/tmp/check.sock ...
//
// -addr is host:port (TCP) or unix:PATH (a Unix-domain socket). -verify=false
// takes any status as the answer, for the no-op floor (which answers 200
// to everything).
//
// Kinds: check (POST /v1/check, JSON), authz (GET /v1/authz, X-API-Key and
// X-Forwarded-For: the server must trust 127.0.0.1), opa (POST
// /v1/data/keygate/decision, {"input":{...}}, answer in the body).
//
// -pid PID also reads the server's CPU time (every thread's schedstat,
// nanoseconds on a CPU) at both ends of the measured window and reports
// it per request answered in the window: a cost per request that does not
// depend on how much of its core a shared machine left the server.
//
// -rate R runs an open loop instead: a fixed schedule of R requests/s over
// the connections, latency counted from each request's scheduled send
// time. On Linux the schedule runs on one thread with its own epoll set
// and a timerfd (openloop_linux.go): Go's timers, woken through an
// epoll_wait whose timeout is in milliseconds, sent requests up to ~1 ms
// late, and that lateness counted as the server's.
//
// The client is a minimal HTTP/1.1 writer and reader over net.Conn with
// every request serialised up front, so that as little as possible of
// the generator's core goes to the generator.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/keygate/keygate/bench"
)

type request struct {
	raw  []byte
	want int
}

func main() {
	var (
		addr   = flag.String("addr", "127.0.0.1:8080", "server address: host:port, or unix:PATH for a Unix-domain socket")
		verify = flag.Bool("verify", true, "check every answer against the decision it must carry (false: for the no-op floor)")
		kind   = flag.String("kind", "check", "check, authz or opa")
		probes = flag.String("probes", "probes.json", "probes file (JSON list of bench.Probe)")
		conns  = flag.Int("c", 64, "connections, each one closed loop")
		dur    = flag.Duration("d", 5*time.Second, "measured duration")
		warm   = flag.Duration("warmup", time.Second, "warm-up before measuring")
		maxReq = flag.Int("n", 5_000_000, "stop measuring after this many requests")
		pid    = flag.Int("pid", 0, "server process whose CPU time per request to report (0: none)")
		rate   = flag.Float64("rate", 0, "total requests/s on a fixed schedule, latency counted from each request's scheduled time (0: closed loop, as fast as answers come)")
	)
	flag.Parse()
	var ps []bench.Probe
	if err := bench.ReadJSON(*probes, &ps); err != nil || len(ps) == 0 {
		fatalf("reading probes: %v (%d)", err, len(ps))
	}
	reqs := make([]request, len(ps))
	for i, p := range ps {
		raw, err := build(*kind, p)
		if err != nil {
			fatalf("%v", err)
		}
		reqs[i] = request{raw, p.Want}
		if !*verify {
			reqs[i].want = -1
		}
	}
	if !*verify {
		verifyAnswer = func(string, int, []byte) int { return -1 }
	}
	res := run(*addr, *kind, reqs, *conns, *warm, *dur, *maxReq, *rate, *pid)
	json.NewEncoder(os.Stdout).Encode(res)
	if res.Errors > 0 || res.Wrong > 0 {
		os.Exit(1)
	}
}

func fatalf(f string, a ...any) {
	fmt.Fprintf(os.Stderr, "loadgen: "+f+"\n", a...)
	os.Exit(2)
}

// build serialises one probe as a request of the given kind.
func build(kind string, p bench.Probe) ([]byte, error) {
	var b bytes.Buffer
	body := func(path string, v any) {
		j, _ := json.Marshal(v)
		fmt.Fprintf(&b, "POST %s HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", path, len(j), j)
	}
	in := map[string]string{"key": p.Key, "ip": p.IP.String(), "method": p.Method, "path": p.Path}
	switch kind {
	case "check":
		body("/v1/check", in)
	case "opa":
		body("/v1/data/keygate/decision", map[string]any{"input": in})
	case "authz":
		fmt.Fprintf(&b, "GET /v1/authz HTTP/1.1\r\nHost: bench\r\nX-API-Key: %s\r\nX-Forwarded-For: %s\r\nX-Forwarded-Method: %s\r\nX-Forwarded-Uri: %s\r\n\r\n", p.Key, p.IP, p.Method, p.Path)
	default:
		return nil, fmt.Errorf("unknown kind %q", kind)
	}
	return b.Bytes(), nil
}

type worker struct {
	lat    []int64 // nanoseconds, measured window only
	errors int
	wrong  int
	err    error
}

func run(addr, kind string, reqs []request, conns int, warm, dur time.Duration, maxReq int, rate float64, pid int) bench.LoadResult {
	start := time.Now()
	measureFrom, measureTo := start.Add(warm), start.Add(warm+dur)
	var count atomic.Int64
	more := func() bool { return count.Add(1) <= int64(maxReq) }
	ws := make([]worker, conns)
	var wg sync.WaitGroup
	if rate > 0 && haveOpenLoop {
		wg.Go(func() { ws = openLoop(addr, kind, reqs, conns, measureFrom, measureTo, rate, more) })
	} else {
		for w := range ws {
			wg.Go(func() { ws[w].loop(addr, kind, reqs, w, conns, measureFrom, measureTo, rate, more) })
		}
	}
	time.Sleep(time.Until(measureFrom))
	cpu0, srv0, us0 := cpuTime(), serverCPU(pid), serverUserSys(pid)
	wg.Wait()
	end := time.Now()
	if end.After(measureTo) {
		end = measureTo
	}
	cpu1, srv1, us1 := cpuTime(), serverCPU(pid), serverUserSys(pid)

	var lat []int64
	res := bench.LoadResult{Kind: kind, Conns: conns}
	for _, w := range ws {
		lat = append(lat, w.lat...)
		res.Errors += w.errors
		res.Wrong += w.wrong
		if w.err != nil && res.FirstErr == "" {
			res.FirstErr = w.err.Error()
		}
	}
	slices.Sort(lat)
	window := end.Sub(measureFrom).Seconds()
	res.Seconds = window
	res.Requests = len(lat)
	res.RPS = float64(len(lat)) / window
	res.ClientCPU = (cpu1 - cpu0).Seconds() / window
	if pid > 0 && len(lat) > 0 {
		res.ServerCPU = (srv1 - srv0).Seconds() / window
		res.ServerCPUus = float64(srv1-srv0) / 1e3 / float64(len(lat))
		res.ServerUserUs = float64(us1[0]-us0[0]) / 1e3 / float64(len(lat))
		res.ServerSysUs = float64(us1[1]-us0[1]) / 1e3 / float64(len(lat))
	}
	if len(lat) > 0 {
		q := func(f float64) float64 { return float64(lat[min(len(lat)-1, int(f*float64(len(lat))))]) / 1e3 }
		res.P50us, res.P99us, res.P999us, res.MaxUs = q(0.5), q(0.99), q(0.999), float64(lat[len(lat)-1])/1e3
	}
	return res
}

func (w *worker) loop(addr, kind string, reqs []request, id, conns int, from, to time.Time, rate float64, more func() bool) {
	w.lat = make([]int64, 0, 1<<16)
	network := "tcp"
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		network, addr = "unix", path
	}
	c, err := net.Dial(network, addr)
	if err != nil {
		w.errors++
		w.err = err
		return
	}
	defer c.Close()
	br := bufio.NewReaderSize(c, 16<<10)
	var body []byte
	var interval time.Duration
	next := time.Now()
	if rate > 0 {
		interval = time.Duration(float64(conns) / rate * 1e9)
		next = next.Add(time.Duration(id) * interval / time.Duration(conns))
	}
	// Each connection walks the probes from its own offset, so that all
	// of them are used and the mix holds over any window.
	for i := id * len(reqs) / conns; ; i++ {
		r := &reqs[i%len(reqs)]
		t0 := time.Now()
		if interval > 0 {
			// Open loop: each request has a scheduled send time, and its
			// latency counts from then, so a server that falls behind is
			// charged for the requests it delayed (no coordinated omission).
			time.Sleep(time.Until(next))
			t0 = next
			next = next.Add(interval)
		}
		if !t0.Before(to) {
			return
		}
		if _, err := c.Write(r.raw); err != nil {
			w.errors++
			w.err = err
			return
		}
		var status int
		status, body, err = readResponse(br, body[:0])
		t1 := time.Now()
		if err != nil {
			w.errors++
			w.err = err
			return
		}
		if got := verifyAnswer(kind, status, body); got != r.want {
			w.wrong++
			if w.err == nil {
				w.err = fmt.Errorf("want %d, got status %d body %.200s", r.want, status, body)
			}
		}
		if !t0.Before(from) && t1.Before(to) {
			if !more() {
				return
			}
			w.lat = append(w.lat, int64(t1.Sub(t0)))
		}
	}
}

// verifyAnswer is answer, or with -verify=false a function that takes any
// response for the expected one.
var verifyAnswer = answer

// answer returns the decision a response carries: its status, or for OPA
// (always 200) the "status" field of the result.
func answer(kind string, status int, body []byte) int {
	if kind != "opa" || status != 200 {
		return status
	}
	i := bytes.Index(body, []byte(`"status":`))
	if i < 0 {
		return 0
	}
	n, _ := strconv.Atoi(string(body[i+9 : min(len(body), i+12)]))
	return n
}

var errChunked = errors.New("chunked responses are not supported")

// readResponse reads one HTTP/1.1 response with a Content-Length body and
// returns its status and body (appended to buf).
func readResponse(br *bufio.Reader, buf []byte) (int, []byte, error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return 0, buf, err
	}
	status, err := parseStatus(line)
	if err != nil {
		return 0, buf, err
	}
	length := -1
	for {
		line, err = br.ReadSlice('\n')
		if err != nil {
			return 0, buf, err
		}
		if len(line) <= 2 {
			break
		}
		if err := parseHeader(line, &length); err != nil {
			return 0, buf, err
		}
	}
	if length < 0 {
		return 0, buf, errNoLength
	}
	n := len(buf)
	buf = slices.Grow(buf, length)[:n+length]
	_, err = io.ReadFull(br, buf[n:])
	return status, buf, err
}

var errNoLength = errors.New("response without Content-Length")

// parseStatus returns the status of an HTTP/1.x status line.
func parseStatus(line []byte) (int, error) {
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return 0, fmt.Errorf("bad status line %q", line)
	}
	status, err := strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, fmt.Errorf("bad status line %q", line)
	}
	return status, nil
}

// parseHeader reads one header line of a response: Content-Length into
// length; a chunked body or a closing connection is an error.
func parseHeader(line []byte, length *int) error {
	name, val, ok := bytes.Cut(line, []byte(":"))
	if !ok {
		return nil
	}
	val = bytes.TrimSpace(val)
	switch {
	case bytes.EqualFold(name, []byte("Content-Length")):
		n, err := strconv.Atoi(string(val))
		if err != nil {
			return fmt.Errorf("bad Content-Length %q", val)
		}
		*length = n
	case bytes.EqualFold(name, []byte("Transfer-Encoding")):
		return errChunked
	case bytes.EqualFold(name, []byte("Connection")) && bytes.EqualFold(val, []byte("close")):
		return errors.New("server closed the connection")
	}
	return nil
}

// cpuTime is the process's user plus system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// serverUserSys is the user and the system CPU time of process pid so
// far (zero for pid 0): utime and stime of /proc/<pid>/stat, fields 14
// and 15 after the command's closing parenthesis, in clock ticks of
// 10 ms (USER_HZ is 100 on Linux).
func serverUserSys(pid int) [2]time.Duration {
	if pid <= 0 {
		return [2]time.Duration{}
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		fatalf("server CPU: %v", err)
	}
	// The command (field 2) may hold ") ": the fields start after its
	// last ')'.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:])) // f[0] is field 3 (state)
	if len(f) < 13 {
		fatalf("server CPU: short /proc/%d/stat", pid)
	}
	var t [2]time.Duration
	for i := range t {
		ticks, err := strconv.ParseInt(f[11+i], 10, 64)
		if err != nil {
			fatalf("server CPU: /proc/%d/stat field %d: %v", pid, 14+i, err)
		}
		t[i] = time.Duration(ticks) * 10 * time.Millisecond
	}
	return t
}

// serverCPU is the CPU time of every thread of process pid so far (0 for
// pid 0): the first field of /proc/<pid>/task/<tid>/schedstat, in
// nanoseconds, summed.
func serverCPU(pid int) time.Duration {
	if pid <= 0 {
		return 0
	}
	dir := "/proc/" + strconv.Itoa(pid) + "/task"
	tasks, err := os.ReadDir(dir)
	if err != nil {
		fatalf("server CPU: %v", err)
	}
	var sum time.Duration
	for _, t := range tasks {
		b, err := os.ReadFile(dir + "/" + t.Name() + "/schedstat")
		if err != nil {
			continue // the thread has exited
		}
		f, _, _ := strings.Cut(string(b), " ")
		ns, _ := strconv.ParseInt(f, 10, 64)
		sum += time.Duration(ns)
	}
	return sum
}
