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
	slices.SortFunc(keys, func(a, b *engine.Key) int { return strings.Compare(a.ID, b.ID) })
	h := sha256.New()
	for _, k := range keys {
		h.Write(encodeKey(nil, k))
	}
	return fmt.Sprintf("%d:%x", len(keys), h.Sum(nil)), nil
}

// TestCorruptTable flips runs of bytes across a table file; a child
// process opens each damaged copy and loads the keys. Each must fail with
// an error (or, where Badger itself panics on a damaged block trailer,
// crash before serving) or load exactly the keys written: never different
// keys.
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
	for at := 0; at < size; at += max(1, size/48) {
		dir := t.TempDir()
		es, _ := os.ReadDir(golden)
		for _, e := range es {
			c, _ := os.ReadFile(filepath.Join(golden, e.Name()))
			if e.Name() == filepath.Base(tables[0]) {
				for j := at; j < min(at+16, len(c)); j++ {
					c[j] ^= 0x5a
				}
			}
			require.NoError(t, os.WriteFile(filepath.Join(dir, e.Name()), c, 0o600))
		}
		out, err := child(t, "TestCorruptTable", dir).CombinedOutput()
		switch o := string(out); {
		case strings.HasPrefix(o, "KEYS "+want+"\n"):
			counts["intact"]++
		case strings.HasPrefix(o, "KEYS "):
			t.Errorf("table damaged at %d read back as different keys: %s", at, o)
		case strings.HasPrefix(o, "ERR "):
			counts["error"]++
		case err != nil && strings.Contains(o, "panic"):
			counts["badger panic"]++
		default:
			t.Errorf("table damaged at %d: %v\n%s", at, err, o)
		}
	}
	t.Logf("damaged copies of a %d-byte table: %v", size, counts)
}
