package badgerstore

import (
	"context"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/keygate/keygate/store/storetest"

	"github.com/stretchr/testify/require"

	"github.com/keygate/keygate/engine"
)

// keysDigest hashes every key the store loads, in id order.
func keysDigest(s *Store) (string, error) {
	keys, _, err := s.LoadAll(context.Background())
	if err != nil {
		return "", err
	}
	return digestOf(keys), nil
}

// digestOf hashes keys in id order (sorting them).
func digestOf(keys []*engine.Key) string {
	slices.SortFunc(keys, func(a, b *engine.Key) int { return strings.Compare(a.ID, b.ID) })
	h := sha256.New()
	for _, k := range keys {
		h.Write(encodeKey(nil, k))
	}
	return fmt.Sprintf("%d:%x", len(keys), h.Sum(nil))
}

// TestCorruptTable flips runs of bytes across a table file, and random
// bytes or runs at random places (as reliability/TestCorruption does); a
// child process opens each damaged copy and loads the keys. Each must fail
// with store.ErrCorrupt or another error, or load exactly the keys
// written: never different keys, and never a panic (Badger's, in a
// goroutine of its own, killed the process in about 1 trial in 30 before
// verifyTableFiles).
func TestCorruptTable(t *testing.T) {
	if os.Getenv(envChild) != "" {
		s, err := Open(DefaultOptions(os.Getenv(envDir)))
		if err != nil {
			fmt.Println("ERR", err)
			return
		}
		d, err := keysDigest(s)
		if err != nil {
			fmt.Println("ERR", err)
			return
		}
		fmt.Println("KEYS", d)
		return
	}
	golden := t.TempDir()
	s, err := Open(DefaultOptions(golden))
	require.NoError(t, err)
	r := rand.New(rand.NewPCG(5, 6))
	for i := range 40 {
		_, err := s.CreateKey(context.Background(), storetest.Key(r, i), "t")
		require.NoError(t, err)
	}
	want, err := keysDigest(s)
	require.NoError(t, err)
	require.NoError(t, s.Close()) // flushes the memtable into a table
	tables, _ := filepath.Glob(filepath.Join(golden, "*.sst"))
	require.NotEmpty(t, tables)
	size := 0
	if fi, err := os.Stat(tables[0]); err == nil {
		size = int(fi.Size())
	}

	counts := map[string]int{}
	var damages []func(c []byte)
	for at := 0; at < size; at += max(1, size/48) {
		damages = append(damages, func(c []byte) {
			for j := at; j < min(at+16, len(c)); j++ {
				c[j] ^= 0x5a
			}
		})
	}
	for trial := range 100 {
		damages = append(damages, func(c []byte) {
			if trial%2 == 0 {
				for range 1 + r.IntN(8) {
					c[r.IntN(len(c))] ^= byte(1 + r.IntN(255))
				}
				return
			}
			at := r.IntN(len(c))
			for j := at; j < min(at+64, len(c)); j++ {
				c[j] ^= 0xff
			}
		})
	}
	for at, damage := range damages {
		dir := t.TempDir()
		es, _ := os.ReadDir(golden)
		for _, e := range es {
			c, _ := os.ReadFile(filepath.Join(golden, e.Name()))
			if e.Name() == filepath.Base(tables[0]) {
				damage(c)
			}
			require.NoError(t, os.WriteFile(filepath.Join(dir, e.Name()), c, 0o600))
		}
		out, err := child(t, "TestCorruptTable", dir).CombinedOutput()
		switch o := string(out); {
		case strings.HasPrefix(o, "KEYS "+want+"\n"):
			counts["intact"]++
		case strings.HasPrefix(o, "KEYS "):
			t.Errorf("damage %d: read back as different keys: %s", at, o)
		case strings.HasPrefix(o, "ERR store: corrupt data: table "+filepath.Join(dir, filepath.Base(tables[0]))+" is damaged"):
			counts["ErrCorrupt naming the table"]++
		case strings.HasPrefix(o, "ERR "):
			counts["other error"]++
		case err != nil && strings.Contains(o, "panic"):
			t.Errorf("damage %d: panic\n%s", at, o[:min(len(o), 2000)])
		default:
			t.Errorf("table damaged at %d: %v\n%s", at, err, o)
		}
	}
	t.Logf("damaged copies of a %d-byte table: %v", size, counts)
}
