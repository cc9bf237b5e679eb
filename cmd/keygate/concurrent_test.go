package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/keygate/keygate/server"
	badgerstore "github.com/keygate/keygate/store/badger"
)

// TestConcurrentSwapsRealStore runs a bounded check load against the real
// store while the allowlist is replaced back and forth: addresses in both
// lists are always allowed, in neither always denied, each acknowledged
// swap holds for the next check, and every check reaches the usage log.
func TestConcurrentSwapsRealStore(t *testing.T) {
	st, err := badgerstore.Open(badgerstore.DefaultOptions(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	const tok = "test-admin-token-0123456789"
	srv, err := server.New(context.Background(), server.Config{AdminToken: tok}, st)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, server.Listeners{Check: ln}) }()
	defer func() { cancel(); <-done }()
	base := "http://" + ln.Addr().String()

	post := func(method, path string, body any) (int, map[string]any) {
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest(method, base+path, bytes.NewReader(b))
		req.Header.Set("Authorization", "Bearer "+tok)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var m map[string]any
		json.NewDecoder(res.Body).Decode(&m)
		return res.StatusCode, m
	}
	listA := []map[string]string{{"cidr": "192.0.2.0/24"}, {"cidr": "203.0.113.0/24"}}
	listB := []map[string]string{{"cidr": "192.0.2.0/24"}, {"cidr": "2001:db8::/48"}}
	status, k := post("POST", "/v1/keys", map[string]any{"name": "k", "allowlist": listA})
	if status != 201 {
		t.Fatalf("create: %d %v", status, k)
	}
	id, secret := k["id"].(string), k["secret"].(string)
	check := func(c *http.Client, ip string) int {
		res, err := c.Post(base+"/v1/check", "application/json", strings.NewReader(fmt.Sprintf(`{"key":%q,"ip":%q}`, secret, ip)))
		if err != nil {
			t.Error(err)
			return 0
		}
		res.Body.Close()
		return res.StatusCode
	}
	before := st.LogStats()

	var checks atomic.Int64
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []string
	fail := func(s string) {
		mu.Lock()
		if len(failures) < 20 {
			failures = append(failures, s)
		}
		mu.Unlock()
	}
	for range 4 {
		wg.Go(func() {
			c := &http.Client{}
			for i := range 200 {
				ip, want := "192.0.2.1", 200
				switch i % 3 {
				case 1:
					ip, want = "45.0.0.1", 403
				case 2:
					ip, want = "203.0.113.1", 0
				}
				got := check(c, ip)
				checks.Add(1)
				if want != 0 && got != want || want == 0 && got != 200 && got != 403 {
					fail(fmt.Sprintf("%s: %d, want %d", ip, got, want))
				}
			}
		})
	}
	for i := range 30 {
		list, in, out := listB, "2001:db8::1", "203.0.113.1"
		if i%2 == 1 {
			list, in, out = listA, "203.0.113.1", "2001:db8::1"
		}
		if s, m := post("PUT", "/v1/keys/"+id+"/allowlist", map[string]any{"entries": list}); s != 200 {
			t.Fatalf("swap: %d %v", s, m)
		}
		c := http.DefaultClient
		if got := check(c, in); got != 200 {
			fail(fmt.Sprintf("swap %d: %s got %d right after the swap, want 200", i, in, got))
		}
		if got := check(c, out); got != 403 {
			fail(fmt.Sprintf("swap %d: %s got %d right after the swap, want 403", i, out, got))
		}
		checks.Add(2)
	}
	wg.Wait()
	for _, f := range failures {
		t.Error(f)
	}
	if err := st.FlushLogs(); err != nil {
		t.Fatal(err)
	}
	after := st.LogStats()
	if got, want := after.Written-before.Written, uint64(checks.Load()); got != want || after.Dropped != 0 {
		t.Errorf("%d records written (%d dropped) for %d checks", got, after.Dropped, want)
	}
}
