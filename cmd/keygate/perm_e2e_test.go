//go:build unix

package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestDataFilesPrivate: a daemon started with umask 0 on a data directory
// of mode 0755 leaves every file in it 0600 and every directory below it
// 0700, after writes and after a restart. Before, Badger's files were 0644
// (0666 under umask 0).
func TestDataFilesPrivate(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}
	start := func() *kgProc {
		old := syscall.Umask(0)
		defer syscall.Umask(old)
		return startKeygate(t, data, nil)
	}
	d := start()
	token := d.token
	for round := range 2 {
		for i := range 3 {
			r := call(t, "POST", d.admin+"/v1/keys", token, map[string]any{"name": "k", "allowlist": []map[string]string{{"cidr": "203.0.113.5"}}})
			if r.status != 201 {
				t.Fatalf("create key %d: %d %s", i, r.status, r.body)
			}
			checkIP(t, d, r.obj(t)["secret"].(string), "203.0.113.5")
		}
		time.Sleep(1500 * time.Millisecond) // the usage log is written within a second
		list(t, data, round, "running")
		if err := d.stop(t, syscall.SIGTERM); err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, d.Output())
		}
		list(t, data, round, "stopped")
		d = start()
	}
}

func list(t *testing.T, data string, round int, when string) {
	t.Helper()
	n := 0
	err := filepath.WalkDir(data, func(path string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := de.Info()
		if err != nil {
			return err
		}
		switch {
		case path == data:
		case de.IsDir():
			if fi.Mode().Perm() != 0o700 {
				t.Errorf("round %d, %s: directory %s is %v, want 0700", round, when, path, fi.Mode().Perm())
			}
		default:
			n++
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("round %d, %s: file %s is %v, want 0600", round, when, path, fi.Mode().Perm())
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 5 {
		t.Errorf("round %d, %s: %d files in the data directory, want the token file, Badger's and the store's", round, when, n)
	}
}
