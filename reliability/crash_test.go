package reliability_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// keyState is what the test knows about one key: the state the daemon
// acknowledged and, when a write was cut off by the kill, the state that
// write would have made (either may be what the store holds).
type keyState struct {
	secret  string
	cidr    string
	revoked bool
	// pending is set while a write's answer is outstanding or was lost.
	pending        bool
	pendingCIDR    string
	pendingRevoked bool
}

// crashModel is the test's record of every acknowledged change.
type crashModel struct {
	mu         sync.Mutex
	keys       map[string]*keyState
	lostCreate int // creates whose answer never came: may or may not exist
	acked      atomic.Int64
	lost       atomic.Int64
}

// TestCrashRestart kills the daemon with SIGKILL at random moments while
// management writes and checks run, restarts it on the same data, and
// verifies that every acknowledged change is there, the store opens, and
// checks answer as the acknowledged state says. KEYGATE_CRASH_ROUNDS sets
// the number of rounds (default 100).
func TestCrashRestart(t *testing.T) {
	rounds := 100
	if v := os.Getenv("KEYGATE_CRASH_ROUNDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("KEYGATE_CRASH_ROUNDS=%q", v)
		}
		rounds = n
	}
	data := t.TempDir()
	m := &crashModel{keys: map[string]*keyState{}}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 8))
	var startTimes []time.Duration
	var checks, checkErrs atomic.Int64
	began := time.Now()
	for round := range rounds {
		t0 := time.Now()
		d := start(t, data)
		startTimes = append(startTimes, time.Since(t0))
		verifyCrashModel(t, d, m, rng, round)

		stop := make(chan struct{})
		var wg sync.WaitGroup
		for w := range 2 {
			wg.Go(func() { crashWriter(d, m, rand.New(rand.NewPCG(uint64(round), uint64(w))), stop) })
		}
		for range 2 {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					m.mu.Lock()
					var secret string
					for _, k := range m.keys {
						secret = k.secret
						break
					}
					m.mu.Unlock()
					s, err := check(d, secret, "203.0.113.1")
					if err != nil {
						return // killed
					}
					checks.Add(1)
					if s != 200 && s != 401 && s != 403 {
						checkErrs.Add(1)
					}
				}
			})
		}
		time.Sleep(time.Duration(5+rng.IntN(55)) * time.Millisecond)
		d.Kill()
		close(stop)
		wg.Wait()
	}
	d := start(t, data)
	verifyCrashModel(t, d, m, rng, rounds)
	d.term(t)
	if n := checkErrs.Load(); n > 0 {
		t.Errorf("%d checks answered with a status other than 200/401/403", n)
	}
	slices.Sort(startTimes)
	t.Logf("crash/restart: %d SIGKILL rounds in %v; %d keys, %d acknowledged writes all present, %d writes cut off by the kill (either outcome accepted), %d checks during the rounds; restart p50 %v, max %v",
		rounds, time.Since(began).Round(time.Millisecond), len(m.keys), m.acked.Load(), m.lost.Load(), checks.Load(),
		startTimes[len(startTimes)/2].Round(time.Millisecond), startTimes[len(startTimes)-1].Round(time.Millisecond))
}

// crashWriter makes random management writes until the daemon dies or
// stop is closed, recording what was acknowledged. It only touches the
// keys it created, so that no two writes to one key race.
func crashWriter(d *daemon, m *crashModel, rng *rand.Rand, stop chan struct{}) {
	var own []string
	for {
		select {
		case <-stop:
			return
		default:
		}
		cidr := fmt.Sprintf("203.0.113.%d/32", 2+rng.IntN(250))
		if len(own) < 3 || rng.IntN(10) < 3 {
			r, err := do("POST", d.url+"/v1/keys", adminToken, map[string]any{"name": "crash", "allowlist": []map[string]string{{"cidr": cidr}}})
			if err != nil || r.status != 201 {
				m.mu.Lock()
				m.lostCreate++
				m.mu.Unlock()
				m.lost.Add(1)
				return
			}
			var v struct{ ID, Secret string }
			if jsonUnmarshal(r.body, &v) != nil {
				return
			}
			m.mu.Lock()
			m.keys[v.ID] = &keyState{secret: v.Secret, cidr: cidr}
			m.mu.Unlock()
			m.acked.Add(1)
			own = append(own, v.ID)
			continue
		}
		id := own[rng.IntN(len(own))]
		m.mu.Lock()
		k := m.keys[id]
		revoked := k.revoked
		m.mu.Unlock()
		if revoked {
			continue
		}
		var r response
		var err error
		revoke := rng.IntN(10) < 2
		m.mu.Lock()
		k.pending, k.pendingCIDR, k.pendingRevoked = true, k.cidr, revoke
		if !revoke {
			k.pendingCIDR = cidr
		}
		m.mu.Unlock()
		if revoke {
			r, err = do("DELETE", d.url+"/v1/keys/"+id, adminToken, nil)
		} else {
			r, err = do("PUT", d.url+"/v1/keys/"+id+"/allowlist", adminToken, map[string]any{"entries": []map[string]string{{"cidr": cidr}}})
		}
		if err != nil || r.status != 200 {
			m.lost.Add(1)
			return // the daemon was killed: the write stays pending
		}
		m.mu.Lock()
		k.pending, k.cidr, k.revoked = false, k.pendingCIDR, k.pendingRevoked
		m.mu.Unlock()
		m.acked.Add(1)
	}
}

// verifyCrashModel compares the restarted daemon with the model: every
// acknowledged key and change present (a cut-off write may have landed or
// not), then checks answer accordingly.
func verifyCrashModel(t *testing.T, d *daemon, m *crashModel, rng *rand.Rand, round int) {
	t.Helper()
	r := must(t, "GET", d.url+"/v1/keys", adminToken, nil)
	if r.status != 200 {
		t.Fatalf("round %d: list keys: %d %s", round, r.status, r.body)
	}
	var list struct {
		Items []struct {
			ID        string
			Status    string
			Allowlist []struct{ CIDR string }
		}
	}
	if err := jsonUnmarshal(r.body, &list); err != nil {
		t.Fatal(err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	seen := 0
	for _, it := range list.Items {
		k, ok := m.keys[it.ID]
		if !ok {
			continue
		}
		seen++
		cidr := ""
		if len(it.Allowlist) == 1 {
			cidr = it.Allowlist[0].CIDR
		}
		revoked := it.Status == "revoked"
		switch {
		case cidr == k.cidr && revoked == k.revoked:
		case k.pending && cidr == k.pendingCIDR && revoked == k.pendingRevoked:
		default:
			t.Fatalf("round %d: key %s is (%q, revoked %v), acknowledged (%q, revoked %v), pending %v (%q, %v)",
				round, it.ID, cidr, revoked, k.cidr, k.revoked, k.pending, k.pendingCIDR, k.pendingRevoked)
		}
		k.cidr, k.revoked, k.pending = cidr, revoked, false
	}
	if seen != len(m.keys) {
		t.Fatalf("round %d: %d acknowledged keys, %d of them after restart", round, len(m.keys), seen)
	}
	if extra := len(list.Items) - seen; extra > m.lostCreate {
		t.Fatalf("round %d: %d keys nobody created (%d creates were cut off)", round, extra, m.lostCreate)
	}
	// Checks agree with the state, for a sample of keys.
	n := 0
	for _, k := range m.keys {
		if n++; n > 12 && rng.IntN(len(m.keys)) > 12 {
			continue
		}
		ip := k.cidr[:len(k.cidr)-3]
		want := 200
		if k.revoked {
			want = 401
		}
		if s, err := check(d, k.secret, ip); err != nil || s != want {
			t.Fatalf("round %d: check from the allowed %s: %d %v, want %d", round, ip, s, err, want)
		}
		if want == 200 {
			want = 403
		}
		if s, err := check(d, k.secret, "192.0.2.1"); err != nil || s != want {
			t.Fatalf("round %d: check from 192.0.2.1: %d %v, want %d", round, s, err, want)
		}
	}
}

// TestUsageLogKillWindow: a SIGKILL loses at most the usage-log records
// of the last flush interval (about 1 s); everything older survives. A
// SIGTERM loses nothing.
func TestUsageLogKillWindow(t *testing.T) {
	data := t.TempDir()
	d := start(t, data)
	k := createKey(t, d, "logs", "203.0.113.5")
	burst := func(n int) {
		for range n {
			if s, err := check(d, k.secret, "203.0.113.5"); err != nil || s != 200 {
				t.Fatalf("check: %d %v", s, err)
			}
		}
	}
	burst(500)
	time.Sleep(2500 * time.Millisecond) // > FlushInterval (1 s) + one tick
	burst(500)
	d.Kill()
	d = start(t, data)
	got := logCount(t, d, k.id)
	if got < 500 {
		t.Fatalf("after SIGKILL: %d records, want the 500 older than the flush window", got)
	}
	t.Logf("SIGKILL: all 500 records older than 2.5 s kept; of the 500 written in the last moments before the kill, %d kept, %d lost", got-500, 1000-got)

	before := got
	burst(700) // includes checks on the new daemon
	d.term(t)
	d = start(t, data)
	if got := logCount(t, d, k.id); got != before+700 {
		t.Fatalf("after SIGTERM: %d records, want %d: a graceful stop must lose nothing", got, before+700)
	}
	t.Logf("SIGTERM: all 700 records written in the last moments before the stop kept")
}
