// Package fleet tests fleet mode on the real binary: several keygate
// daemons on one real PostgreSQL (internal/pgtest; never a mock): changes
// propagating, fleet-wide logs, a daemon killed during writes, a database
// outage under check load, racing edits with and without If-Match,
// keygate migrate, and bad database URLs.
package fleet

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keygate/keygate/internal/daemontest"
	"github.com/keygate/keygate/internal/pgtest"
)

var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "keygate-fleet")
	if err != nil {
		panic(err)
	}
	if bin, err = daemontest.Build(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := pgtest.Run(m)
	os.RemoveAll(dir)
	os.Exit(code)
}

// token is the admin token every daemon of a test fleet accepts.
const token = "fleet-admin-token-0123456789"

var client = &http.Client{Timeout: 10 * time.Second}

// startDaemon starts one fleet daemon on url named node. Its data
// directory holds the usage-log spool, never a Badger store.
func startDaemon(t *testing.T, url, node string, args ...string) *daemontest.Daemon {
	t.Helper()
	data := filepath.Join(t.TempDir(), "data")
	d := daemontest.Start(t, bin, daemontest.Options{
		Data: data, AdminToken: token, DatabaseURL: url, NodeName: node, Args: args,
		ReadyPath: "/readyz", Graceful: true,
	})
	_, err := os.Stat(filepath.Join(data, "MANIFEST"))
	require.ErrorIs(t, err, os.ErrNotExist, "fleet mode opens no Badger store in --data")
	require.DirExists(t, filepath.Join(data, "spool"))
	return d
}

func startFleet(t *testing.T, url string, n int) []*daemontest.Daemon {
	t.Helper()
	ds := make([]*daemontest.Daemon, n)
	var wg sync.WaitGroup
	for i := range ds {
		wg.Go(func() { ds[i] = startDaemon(t, url, "node-"+string(rune('a'+i))) })
	}
	wg.Wait()
	for _, d := range ds {
		require.NotNil(t, d)
	}
	return ds
}

func admin(t *testing.T, d *daemontest.Daemon, method, path string, body any, hdr ...string) daemontest.Response {
	t.Helper()
	r, err := daemontest.Request(client, method, d.AdminURL()+path, token, body, hdr...)
	require.NoError(t, err)
	return r
}

func createKey(t *testing.T, d *daemontest.Daemon, body map[string]any) (id, secret string) {
	t.Helper()
	r := admin(t, d, "POST", "/v1/keys", body)
	require.Equal(t, http.StatusCreated, r.Status, "%s", r.Body)
	var m struct{ ID, Secret string }
	require.NoError(t, json.Unmarshal(r.Body, &m))
	return m.ID, m.Secret
}

// check asks d whether secret may call from ip; it returns the status, or
// 0 if nothing answered.
func check(c *http.Client, d *daemontest.Daemon, secret, ip string) int {
	r, err := daemontest.Request(c, "POST", d.URL()+"/v1/check", "",
		map[string]string{"key": secret, "ip": ip, "method": "GET", "path": "/orders"})
	if err != nil {
		return 0
	}
	return r.Status
}

// metric reads one unlabelled value from d's /metrics.
func metric(t *testing.T, d *daemontest.Daemon, name string) float64 {
	t.Helper()
	r := admin(t, d, "GET", "/metrics", nil)
	m := regexp.MustCompile(`(?m)^` + name + ` (\S+)$`).FindSubmatch(r.Body)
	require.NotNil(t, m, "%s not in /metrics", name)
	v, err := strconv.ParseFloat(string(m[1]), 64)
	require.NoError(t, err)
	return v
}

func allowlist(ip string) map[string]any {
	return map[string]any{"entries": []map[string]string{{"cidr": ip}}}
}

func percentile(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

// TestPropagation: three daemons on one database. A change acknowledged by
// A is live on A's next check and on B and C within 2 s (measured over 50
// changes); the usage logs of all three are visible on A, each record with
// the node that decided it, and a key used only on C shows last_used_at on
// A.
func TestPropagation(t *testing.T) {
	url := pgtest.Shared(t).DB(t)
	ds := startFleet(t, url, 3)
	a := ds[0]
	id, secret := createKey(t, a, map[string]any{"name": "fleet", "allowlist": []map[string]string{{"cidr": "203.0.113.1"}}})
	cid, csecret := createKey(t, a, map[string]any{"name": "used on C only"})
	require.Eventually(t, func() bool { return check(client, ds[2], csecret, "203.0.113.1") == http.StatusOK }, 2*time.Second, 5*time.Millisecond)
	var lat []time.Duration
	for i := range 50 {
		ip := fmt.Sprintf("198.51.100.%d", i+1)
		r := admin(t, a, "PUT", "/v1/keys/"+id+"/allowlist", allowlist(ip))
		require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
		acked := time.Now()
		require.Equal(t, http.StatusOK, check(client, a, secret, ip), "the acknowledging daemon has the change on its next check")
		var wg sync.WaitGroup
		for _, d := range ds[1:] {
			wg.Go(func() {
				for check(client, d, secret, ip) != http.StatusOK {
					if time.Since(acked) > 2*time.Second {
						t.Errorf("change %d not live on %s within 2 s", i, d.URL())
						return
					}
					time.Sleep(2 * time.Millisecond)
				}
				took := time.Since(acked)
				assert.Less(t, took, 2*time.Second)
				lat = append(lat, took) // guarded below
			})
			wg.Wait()
		}
	}
	t.Logf("propagation A -> B, C over %d changes: p50 %v, p99 %v, max %v", len(lat),
		percentile(lat, 0.5).Round(time.Microsecond), percentile(lat, 0.99).Round(time.Microsecond), percentile(lat, 1).Round(time.Microsecond))

	// Logs: every daemon decided checks; A's query shows all three nodes.
	nodes := map[string]bool{}
	deadline := time.Now().Add(10 * time.Second)
	for len(nodes) < 3 && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
		r := admin(t, a, "GET", "/v1/logs?key_id="+id+"&limit=1000", nil)
		require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
		var p struct {
			Items []struct{ Node, KeyID string } `json:"items"`
		}
		require.NoError(t, json.Unmarshal(r.Body, &p))
		for _, it := range p.Items {
			nodes[it.Node] = true
		}
	}
	assert.Equal(t, map[string]bool{"node-a": true, "node-b": true, "node-c": true}, nodes, "A's log query covers the fleet")
	require.Eventually(t, func() bool {
		var k struct {
			LastUsedAt *time.Time `json:"last_used_at"`
		}
		json.Unmarshal(admin(t, a, "GET", "/v1/keys/"+cid, nil).Body, &k)
		return k.LastUsedAt != nil
	}, 10*time.Second, 100*time.Millisecond, "last_used_at on A covers C's checks")
	r := admin(t, a, "GET", "/v1/logs/export.csv?key_id="+id, nil)
	require.Equal(t, http.StatusOK, r.Status)
	lines := strings.Split(strings.TrimSpace(string(r.Body)), "\r\n")
	require.True(t, strings.HasSuffix(lines[0], ",node,key_name"), "the CSV's last columns are node, key_name: %s", lines[0])
	for _, n := range []string{"node-a", "node-b", "node-c"} {
		assert.Contains(t, string(r.Body), ","+n+",fleet\r\n", "A's export has %s's records, with the key's name", n)
	}
	// A key renamed on B is named so in A's next export, at once: the
	// names are the fleet's, read from the database, not A's copy.
	r = admin(t, ds[1], "PATCH", "/v1/keys/"+id, map[string]any{"name": "fleet;=renamed"})
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	r = admin(t, a, "GET", "/v1/logs/export.csv?key_id="+id, nil)
	require.Equal(t, http.StatusOK, r.Status)
	rows, err := csv.NewReader(bytes.NewReader(r.Body)).ReadAll()
	require.NoError(t, err)
	require.Greater(t, len(rows), 1)
	for _, row := range rows[1:] {
		require.Equal(t, []string{id, "fleet;'=renamed"}, []string{row[1], row[11]}, "key_name after the rename on B")
	}
}

// TestKillDuringWrites: a daemon killed (SIGKILL) while it creates keys
// loses none it acknowledged: every 201 is on the other daemon.
func TestKillDuringWrites(t *testing.T) {
	url := pgtest.Shared(t).DB(t)
	ds := startFleet(t, url, 2)
	a, b := ds[0], ds[1]
	var mu sync.Mutex
	var acked []string
	var wg sync.WaitGroup
	c := &http.Client{Timeout: 2 * time.Second}
	for w := range 4 {
		wg.Go(func() {
			for n := 0; ; n++ {
				r, err := daemontest.Request(c, "POST", b.AdminURL()+"/v1/keys", token, map[string]any{"name": fmt.Sprintf("k%d-%d", w, n)})
				if err != nil {
					return // killed
				}
				if r.Status == http.StatusCreated {
					var m struct{ ID string }
					json.Unmarshal(r.Body, &m)
					mu.Lock()
					acked = append(acked, m.ID)
					mu.Unlock()
				}
			}
		})
	}
	time.Sleep(700 * time.Millisecond)
	b.Kill()
	wg.Wait()
	require.NotEmpty(t, acked)
	r := admin(t, a, "GET", "/v1/keys", nil)
	require.Equal(t, http.StatusOK, r.Status)
	var list struct {
		Items []struct{ ID string } `json:"items"`
	}
	require.NoError(t, json.Unmarshal(r.Body, &list))
	have := map[string]bool{}
	for _, k := range list.Items {
		have[k.ID] = true
	}
	lost := 0
	for _, id := range acked {
		if !have[id] {
			lost++
		}
	}
	t.Logf("SIGKILL during writes: %d keys acknowledged, %d in the database, %d acknowledged and lost", len(acked), len(list.Items), lost)
	assert.Zero(t, lost)
}

// TestOutage: PostgreSQL stopped for 10 s under check load on two daemons.
// Every check is answered, from the last snapshot (the revoked key stays
// revoked, the allowlist holds); /readyz stays 200; keygate_store_up is 0
// and the log says since when; management writes are 503 UNAVAILABLE and
// change nothing. After the database returns, writes work again without a
// restart, a change propagates, and every usage-log record is in the
// database or counted as dropped (zero: the spool holds them).
func TestOutage(t *testing.T) {
	srv := pgtest.New(t)
	url := srv.DB(t)
	ds := startFleet(t, url, 2)
	a, b := ds[0], ds[1]
	id, secret := createKey(t, a, map[string]any{"name": "live", "allowlist": []map[string]string{{"cidr": "203.0.113.5"}}})
	rid, rsecret := createKey(t, a, map[string]any{"name": "revoked"})
	require.Equal(t, http.StatusOK, admin(t, a, "DELETE", "/v1/keys/"+rid, nil).Status)
	var sent, wrong, unanswered atomic.Int64 // every check of these keys makes a record
	counted := func(c *http.Client, d *daemontest.Daemon, secret, ip string) int {
		sent.Add(1)
		return check(c, d, secret, ip)
	}
	revokedStatus := counted(client, a, rsecret, "203.0.113.5")
	require.Contains(t, []int{http.StatusUnauthorized, http.StatusForbidden}, revokedStatus)
	// Until a daemon has applied every change so far, a check there may be
	// of a key it does not know yet, and that record names no key: wait
	// for each daemon's /readyz seq to reach A's, then count every check
	// (each makes a record of one of these two keys).
	seqOf := func(d *daemontest.Daemon) uint64 {
		rr, err := daemontest.Request(client, "GET", d.URL()+"/readyz", "", nil)
		require.NoError(t, err)
		var body struct{ Seq uint64 }
		require.NoError(t, json.Unmarshal(rr.Body, &body))
		return body.Seq
	}
	want := seqOf(a)
	for _, d := range ds {
		require.Eventually(t, func() bool { return seqOf(d) >= want }, 2*time.Second, 10*time.Millisecond, "every daemon has the keys")
		require.Equal(t, revokedStatus, counted(client, d, rsecret, "203.0.113.5"))
		require.Equal(t, http.StatusOK, counted(client, d, secret, "203.0.113.5"))
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			c := &http.Client{Timeout: 5 * time.Second}
			d := ds[w%2]
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				sec, ip, want := secret, "203.0.113.5", http.StatusOK
				switch n % 3 {
				case 1:
					ip, want = "198.51.100.1", http.StatusForbidden
				case 2:
					sec, want = rsecret, revokedStatus
				}
				st := counted(c, d, sec, ip)
				switch {
				case st == 0:
					unanswered.Add(1)
				case st != want:
					wrong.Add(1)
				}
			}
		})
	}
	time.Sleep(500 * time.Millisecond)
	require.NoError(t, srv.Stop())
	down := time.Now()
	require.Eventually(t, func() bool { return metric(t, a, "keygate_store_up") == 0 }, 5*time.Second, 50*time.Millisecond, "keygate_store_up reports the outage")
	r := admin(t, a, "PATCH", "/v1/keys/"+id, map[string]any{"name": "during"})
	assert.Equal(t, http.StatusServiceUnavailable, r.Status, "%s", r.Body)
	assert.Contains(t, string(r.Body), "UNAVAILABLE")
	r = admin(t, b, "PUT", "/v1/keys/"+id+"/allowlist", allowlist("192.0.2.1"))
	assert.Equal(t, http.StatusServiceUnavailable, r.Status, "%s", r.Body)
	for _, d := range ds {
		rr, err := daemontest.Request(client, "GET", d.URL()+"/readyz", "", nil)
		require.NoError(t, err)
		assert.Equal(t, http.StatusOK, rr.Status, "/readyz stays ready during a database outage")
	}
	time.Sleep(10*time.Second - time.Since(down))
	require.NoError(t, srv.Start())
	back := time.Now()
	var writeAgain time.Duration
	require.Eventually(t, func() bool {
		r := admin(t, a, "PATCH", "/v1/keys/"+id, map[string]any{"name": "after"})
		writeAgain = time.Since(back)
		return r.Status == http.StatusOK
	}, 15*time.Second, 100*time.Millisecond, "writes work again without a restart")
	close(stop)
	wg.Wait()
	require.Equal(t, http.StatusOK, admin(t, a, "PUT", "/v1/keys/"+id+"/allowlist", allowlist("192.0.2.77")).Status)
	propagated := time.Now()
	require.Eventually(t, func() bool { return counted(client, b, secret, "192.0.2.77") == http.StatusOK }, 2*time.Second, 5*time.Millisecond, "a change after the outage reaches B")
	t.Logf("outage 10 s: %d checks, %d wrong, %d unanswered; writes again %v after the restart; change on B after %v",
		sent.Load(), wrong.Load(), unanswered.Load(), writeAgain.Round(time.Millisecond), time.Since(propagated).Round(time.Millisecond))
	assert.Zero(t, wrong.Load(), "checks decided from the snapshot")
	assert.Zero(t, unanswered.Load(), "every check answered")
	assert.Contains(t, a.Output(), "database unreachable", "the log says the store is unreachable")
	assert.Regexp(t, `since=\S+`, a.Output())
	require.Eventually(t, func() bool { return metric(t, a, "keygate_store_up") == 1 }, 5*time.Second, 50*time.Millisecond)

	// Usage-log records: in the database or counted as dropped, exactly.
	conn, err := pgx.Connect(context.Background(), url)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	var stored int64
	var dropped float64
	deadline := time.Now().Add(60 * time.Second) // COPY at 25k+ records/s under load
	for {
		require.NoError(t, conn.QueryRow(context.Background(), "SELECT count(*) FROM usage_log WHERE key_id IN ($1, $2)", id, rid).Scan(&stored))
		dropped = metric(t, a, "keygate_usage_log_dropped_total") + metric(t, b, "keygate_usage_log_dropped_total")
		if stored+int64(dropped) >= sent.Load() || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	werr := metric(t, a, "keygate_usage_log_write_errors_total") + metric(t, b, "keygate_usage_log_write_errors_total")
	assert.Zero(t, werr, "usage-log write errors")
	t.Logf("usage log: %d checks, %d records stored, %v dropped, %v write errors", sent.Load(), stored, dropped, werr)
	assert.Equal(t, sent.Load(), stored+int64(dropped), "lost = counted as dropped")
	assert.Zero(t, dropped, "the spool held the outage's records")
}

// TestIfMatchRace: two daemons editing one key's allowlist at once. With
// If-Match from the same GET, exactly one of each pair wins and the other
// is 412 with nothing changed; without it both apply, the last wins, and
// both are in the audit trail.
func TestIfMatchRace(t *testing.T) {
	url := pgtest.Shared(t).DB(t)
	ds := startFleet(t, url, 2)
	a, b := ds[0], ds[1]
	id, _ := createKey(t, a, map[string]any{"name": "race"})
	const rounds = 20
	won, refused := 0, 0
	for i := range rounds {
		tag := admin(t, a, "GET", "/v1/keys/"+id+"/allowlist", nil).Header.Get("ETag")
		require.NotEmpty(t, tag)
		st := make([]int, 2)
		var wg sync.WaitGroup
		for j, d := range []*daemontest.Daemon{a, b} {
			wg.Go(func() {
				st[j] = admin(t, d, "PUT", "/v1/keys/"+id+"/allowlist", allowlist(fmt.Sprintf("198.51.%d.%d", j, i+1)), "If-Match", tag).Status
			})
		}
		wg.Wait()
		slices.Sort(st)
		require.Equal(t, []int{http.StatusOK, http.StatusPreconditionFailed}, st, "round %d: one wins, one is refused", i)
		won++
		refused++
	}
	t.Logf("with If-Match: %d rounds, %d writes won, %d refused with 412, none lost silently", rounds, won, refused)

	conn, err := pgx.Connect(context.Background(), url)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	countChanges := func() int {
		var n int
		require.NoError(t, conn.QueryRow(context.Background(), "SELECT count(*) FROM changes WHERE key_id = $1 AND action = 'allowlist.replace'", id).Scan(&n))
		return n
	}
	require.Equal(t, rounds, countChanges(), "a refused write left nothing in the audit trail")
	for i := range rounds {
		var wg sync.WaitGroup
		for j, d := range []*daemontest.Daemon{a, b} {
			wg.Go(func() {
				assert.Equal(t, http.StatusOK, admin(t, d, "PUT", "/v1/keys/"+id+"/allowlist", allowlist(fmt.Sprintf("%s.%d", []string{"203.0.113", "198.51.100"}[j], i+1))).Status)
			})
		}
		wg.Wait()
	}
	require.Equal(t, 3*rounds, countChanges(), "without If-Match both writes of each pair are in the audit trail")
	var last string
	require.NoError(t, conn.QueryRow(context.Background(), "SELECT after->'allowlist'->0->>'prefix' FROM changes WHERE key_id = $1 ORDER BY seq DESC LIMIT 1", id).Scan(&last))
	r := admin(t, b, "GET", "/v1/keys/"+id+"/allowlist", nil)
	assert.Contains(t, string(r.Body), strings.TrimSuffix(last, "/32"), "the last write won")
}

// TestMigrate: keygate migrate copies a Badger directory (keys, allowlists
// with their ids, the audit trail, --logs the usage log) into PostgreSQL;
// a second run changes nothing and says so; a fleet daemon then serves the
// keys.
func TestMigrate(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	old := daemontest.Start(t, bin, daemontest.Options{Data: data, AdminToken: token, ReadyPath: "/readyz", Graceful: true})
	id, secret := createKey(t, old, map[string]any{"name": "migrated", "allowlist": []map[string]string{{"cidr": "203.0.113.9"}, {"cidr": "198.51.100.0/24"}}})
	rid, rsecret := createKey(t, old, map[string]any{"name": "gone"})
	require.Equal(t, http.StatusOK, admin(t, old, "DELETE", "/v1/keys/"+rid, nil).Status)
	before := admin(t, old, "GET", "/v1/keys/"+id+"/allowlist", nil).Body
	for range 10 {
		check(client, old, secret, "203.0.113.9")
	}
	revokedStatus := check(client, old, rsecret, "203.0.113.9")
	require.NoError(t, old.Stop())

	url := pgtest.Shared(t).DB(t)
	run := func() string {
		t.Helper()
		out, err := exec.Command(bin, "migrate", "--data", data, "--database-url", url, "--logs", "--node-name", "old-node").CombinedOutput()
		require.NoError(t, err, "%s", out)
		return string(out)
	}
	first := run()
	t.Logf("first run:\n%s", first)
	assert.Contains(t, first, "copied 2 keys (2 allowlist entries) and 3 audit-trail changes")
	assert.Contains(t, first, "usage log: copied 11 records as node old-node")
	second := run()
	t.Logf("second run:\n%s", second)
	assert.Contains(t, second, "keys: nothing to copy")
	assert.Contains(t, second, "usage log: nothing to copy")

	d := startDaemon(t, url, "new-node")
	assert.Equal(t, http.StatusOK, check(client, d, secret, "203.0.113.9"), "the migrated hash still checks")
	assert.Equal(t, http.StatusForbidden, check(client, d, secret, "192.0.2.1"), "the allowlist came along")
	assert.Equal(t, revokedStatus, check(client, d, rsecret, "203.0.113.9"), "revoked stays revoked")
	type entries struct {
		Entries []struct{ ID, CIDR, Label string } `json:"entries"`
	}
	var was, now entries
	require.NoError(t, json.Unmarshal(before, &was))
	require.NoError(t, json.Unmarshal(admin(t, d, "GET", "/v1/keys/"+id+"/allowlist", nil).Body, &now))
	assert.Equal(t, was, now, "entry ids kept")
	r := admin(t, d, "GET", "/v1/logs?key_id="+id, nil)
	assert.Contains(t, string(r.Body), `"node":"old-node"`)
	// And a write on the migrated key continues its sequence.
	require.Equal(t, http.StatusOK, admin(t, d, "PATCH", "/v1/keys/"+id, map[string]any{"name": "renamed"}).Status)
	out, err := exec.Command(bin, "migrate", "--data", data, "--database-url", url).CombinedOutput()
	assert.Error(t, err, "a database that moved on is not overwritten")
	t.Logf("third run after a fleet change: %s", out)
}

// TestBadDatabaseURL: each bad --database-url is a one-line error that says
// what to fix and never shows the password; an unreachable server is
// waited for (--database-wait), then the same.
func TestBadDatabaseURL(t *testing.T) {
	srv := pgtest.Shared(t)
	url := srv.DB(t)
	db := url[strings.LastIndex(url, "/")+1 : strings.Index(url, "?")]
	for _, tc := range []struct {
		name, url, want string
		args            []string
	}{
		{"unparsable", "postgres://bob:" + pgtest.Password + "@127.0.0.1:%zz/db", "database URL is not valid", nil},
		{"wrong password", srv.PasswordURL(db, "Wrong-"+pgtest.Password), "check the user and password", nil},
		{"no such database", srv.URL("no_such_db"), `database "no_such_db" does not exist`, nil},
		{"unreachable", "postgres://bob:" + pgtest.Password + "@127.0.0.1:1/db", "gave up after 2s", []string{"--database-wait", "2s"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"serve", "--addr", "127.0.0.1:0", "--data", t.TempDir(), "--admin-token", token, "--database-url", tc.url}, tc.args...)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, args...)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			err := cmd.Run()
			require.Error(t, err)
			lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
			last := lines[len(lines)-1]
			t.Logf("%s", last)
			assert.True(t, strings.HasPrefix(last, "keygate: "), "%q", last)
			assert.Contains(t, last, tc.want)
			assert.NotContains(t, stderr.String(), pgtest.Password, "the password is never shown")
			if tc.name != "unreachable" {
				assert.Len(t, lines, 1, "one line: %q", stderr.String())
			}
		})
	}
	out, err := exec.Command(bin, "serve", "--addr", "127.0.0.1:0", "--data", t.TempDir(), "--database-url", url).CombinedOutput()
	require.Error(t, err)
	assert.Contains(t, string(out), "fleet mode (--database-url) needs --admin-token", "a fleet needs one token on every daemon")
}
