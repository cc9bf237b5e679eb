package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	badgerstore "github.com/keygate/keygate/store/badger"
)

// TestBackupRestore backs up a daemon under write load with keygate
// backup, restores the file into a fresh directory with keygate restore,
// starts a daemon on it, and finds every key made before the backup (old
// secrets still valid, allowlists as they were), the audit trail and the
// usage log. A second backup to the same file needs --force; restoring
// into a non-empty directory, or a damaged file, is refused.
func TestBackupRestore(t *testing.T) {
	data := t.TempDir()
	d := startKeygate(t, data, nil)
	type made struct{ id, secret, ip string }
	create := func(i int) (made, error) {
		ip := fmt.Sprintf("203.0.113.%d", 1+i%250)
		r := call(t, "POST", d.admin+"/v1/keys", d.token, map[string]any{"name": fmt.Sprint("k", i), "allowlist": []map[string]string{{"cidr": ip, "label": "office"}}})
		if r.status != 201 {
			return made{}, fmt.Errorf("create: %d %s", r.status, r.body)
		}
		m := r.obj(t)
		return made{m["id"].(string), m["secret"].(string), ip}, nil
	}
	var before []made
	for i := range 30 {
		k, err := create(i)
		if err != nil {
			t.Fatal(err)
		}
		before = append(before, k)
		if s := checkIP(t, d, k.secret, k.ip); s != 200 {
			t.Fatalf("check: %d", s)
		}
	}
	if r := call(t, "DELETE", d.admin+"/v1/keys/"+before[0].id, d.token, nil); r.status/100 != 2 {
		t.Fatalf("revoke: %d %s", r.status, r.body)
	}
	// Writes and checks go on while the backup streams.
	var stop atomic.Bool
	var wg sync.WaitGroup
	var during atomic.Int64
	wg.Go(func() {
		for i := 1000; !stop.Load(); i++ {
			if _, err := create(i); err != nil {
				t.Error(err)
				return
			}
			during.Add(1)
		}
	})
	wg.Go(func() {
		for !stop.Load() {
			checkIP(t, d, before[1].secret, before[1].ip)
		}
	})
	file := filepath.Join(t.TempDir(), "keygate.kgb")
	kg := func(args ...string) (string, error) {
		out, err := exec.Command(binary, args...).CombinedOutput()
		return string(out), err
	}
	out, err := kg("backup", "-o", file, "--server", d.admin, "--admin-token", d.token)
	stop.Store(true)
	wg.Wait()
	if err != nil {
		t.Fatalf("backup: %v\n%s", err, out)
	}
	t.Logf("%s(%d keys created while it ran)", out, during.Load())
	if out, err := kg("backup", "-o", file, "--server", d.admin, "--admin-token", d.token); err == nil || !strings.Contains(out, "--force") {
		t.Errorf("a second backup over the file: %v\n%s", err, out)
	}
	if out, err := kg("backup", "-o", file, "--force", "--server", d.admin, "--admin-token", d.token); err != nil {
		t.Errorf("backup --force: %v\n%s", err, out)
	}
	if err := d.stop(t, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}

	if out, err := kg("restore", "--data", data, file); err == nil || !strings.Contains(out, "not empty") {
		t.Errorf("restore into the live directory: %v\n%s", err, out)
	}
	b, _ := os.ReadFile(file)
	damaged := filepath.Join(t.TempDir(), "damaged.kgb")
	for name, c := range map[string][]byte{"truncated": b[:len(b)-100], "flipped": flip(b, len(b)/2)} {
		os.WriteFile(damaged, c, 0o600)
		if out, err := kg("restore", "--data", filepath.Join(t.TempDir(), "r"), damaged); err == nil || !strings.Contains(out, "not a complete keygate backup") {
			t.Errorf("restore of a %s backup: %v\n%s", name, err, out)
		}
	}
	restored := filepath.Join(t.TempDir(), "restored")
	if out, err := kg("restore", "--data", restored, file); err != nil {
		t.Fatalf("restore: %v\n%s", err, out)
	}

	r2 := startKeygate(t, restored, nil)
	if s := checkIP(t, r2, before[0].secret, before[0].ip); s != 401 {
		t.Errorf("the revoked key after restore: %d", s)
	}
	for _, k := range before[1:] {
		if s := checkIP(t, r2, k.secret, k.ip); s != 200 {
			t.Errorf("key %s after restore: %d", k.id, s)
		}
		if s := checkIP(t, r2, k.secret, "198.51.100.1"); s != 403 {
			t.Errorf("key %s from another address after restore: %d", k.id, s)
		}
		r := call(t, "GET", r2.admin+"/v1/keys/"+k.id+"/allowlist", r2.token, nil)
		if r.status != 200 || !strings.Contains(string(r.body), `"`+k.ip+`/32"`) || !strings.Contains(string(r.body), `"office"`) {
			t.Errorf("allowlist of %s after restore: %d %s", k.id, r.status, r.body)
		}
	}
	var logs struct{ Items []json.RawMessage }
	if r := call(t, "GET", r2.admin+"/v1/logs?limit=1000&key_id="+before[1].id, r2.token, nil); r.status != 200 || json.Unmarshal(r.body, &logs) != nil || len(logs.Items) == 0 {
		t.Errorf("usage log after restore: %d %s", r.status, r.body)
	}
	if err := r2.stop(t, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// The audit trail: the restored changes are the original's, up to the
	// moment of the backup.
	orig, got := changes(t, data), changes(t, restored)
	if len(got) < 31 || len(got) > len(orig) {
		t.Fatalf("%d changes restored, %d in the original", len(got), len(orig))
	}
	for i := range got {
		if got[i] != orig[i] {
			t.Errorf("change %d: restored %s, original %s", i+1, got[i], orig[i])
		}
	}
}

func flip(b []byte, at int) []byte {
	c := append([]byte{}, b...)
	c[at] ^= 1
	return c
}

// changes returns the audit trail of the store in dir, one line a change.
func changes(t *testing.T, dir string) []string {
	t.Helper()
	s, err := badgerstore.Open(badgerstore.DefaultOptions(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cs, err := s.Changes(context.Background(), 0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, c := range cs {
		b, _ := json.Marshal(c)
		out = append(out, string(b))
	}
	return out
}
