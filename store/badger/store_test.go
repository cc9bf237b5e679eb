package badgerstore

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"github.com/keygate/keygate/store"
	"github.com/keygate/keygate/usagelog"
	"io"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keygate/keygate/engine"
)

func openTest(t testing.TB, opts Options) *Store {
	t.Helper()
	if opts.Dir == "" && !opts.InMemory {
		opts.Dir = t.TempDir()
	}
	s, err := Open(opts)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

// ts returns a time as the store gives it back: UTC, no monotonic
// reading.
func ts(sec int64, ns int64) time.Time { return time.Unix(sec, ns).UTC() }

func testKey(r *rand.Rand, i int) *engine.Key {
	k := &engine.Key{
		ID:          fmt.Sprintf("key_%016d", i),
		Name:        fmt.Sprintf("key number %d", i),
		Description: "a test key, ümlaut and all",
		Scopes:      []string{"read", "write"},
		Hint:        "kg_AbCdEfGh",
		CreatedAt:   ts(1_700_000_000+int64(i), int64(r.IntN(1e9))),
	}
	for j := range k.Hash {
		k.Hash[j] = byte(r.Uint32())
	}
	if i%3 == 0 {
		k.ExpiresAt = ts(1_800_000_000, 5)
	}
	if i%5 == 0 {
		k.RevokedAt = ts(1_750_000_000, 0)
		k.ReportOnly = true
	}
	if i%7 == 0 {
		k.Scopes = nil
	}
	for j := range i % 6 {
		var p netip.Prefix
		if j%2 == 0 {
			p = netip.PrefixFrom(netip.AddrFrom4([4]byte{203, 0, 113, byte(j)}), 32)
		} else {
			p = netip.MustParsePrefix(fmt.Sprintf("2001:db8:%x::/48", j))
		}
		k.Allowlist = append(k.Allowlist, engine.Entry{ID: fmt.Sprintf("ent_%012d", j), Prefix: p, Label: "office " + fmt.Sprint(j)})
	}
	if len(k.Allowlist) > 0 && i%4 == 0 {
		k.Allowlist[0].ExpiresAt = ts(1_900_000_000, 1)
	}
	return k
}

func TestKeyCodecRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 200 {
		k := testKey(r, i)
		got, err := decodeKey(encodeKey(nil, k))
		require.NoError(t, err)
		require.Equal(t, k, got)
		for cut := range len(encodeKey(nil, k)) {
			_, err := decodeKey(encodeKey(nil, k)[:cut])
			require.Error(t, err, "truncated at %d", cut)
		}
	}
	c := store.Change{Seq: 7, Time: ts(1_700_000_000, 3), Actor: "cli", Action: "key.revoke", KeyID: "key_1", Before: testKey(r, 5), After: testKey(r, 6)}
	got, err := decodeChange(encodeChange(nil, &c))
	require.NoError(t, err)
	require.Equal(t, c, got)
	c.Before = nil
	got, err = decodeChange(encodeChange(nil, &c))
	require.NoError(t, err)
	require.Equal(t, c, got)
}

func TestKeysRoundTripAndReopen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(DefaultOptions(dir))
	require.NoError(t, err)
	r := rand.New(rand.NewPCG(3, 4))
	var want []*engine.Key
	for i := range 50 {
		k := testKey(r, 49-i) // created out of CreatedAt order
		c, err := s.CreateKey(ctx, k, "test")
		require.NoError(t, err)
		assert.Equal(t, uint64(i+1), c.Seq)
		assert.Equal(t, store.ActionCreate, c.Action)
		assert.Nil(t, c.Before)
		assert.Equal(t, k, c.After)
		want = append(want, k)
	}
	_, err = s.CreateKey(ctx, want[3], "test")
	require.ErrorIs(t, err, store.ErrExists)
	_, err = s.GetKey(ctx, "key_nope")
	require.ErrorIs(t, err, store.ErrNotFound)
	got, err := s.GetKey(ctx, want[10].ID)
	require.NoError(t, err)
	require.Equal(t, want[10], got)
	require.NoError(t, s.Close())
	_, err = s.GetKey(ctx, want[10].ID)
	require.ErrorIs(t, err, store.ErrClosed)

	s = openTest(t, DefaultOptions(dir))
	assert.Equal(t, uint64(50), s.Seq())
	list, err := s.ListKeys(ctx)
	require.NoError(t, err)
	require.Len(t, list, 50)
	for i, k := range list {
		require.Equal(t, want[49-i], k, "ListKeys[%d]", i)
	}
	all, seq, err := s.LoadAll(ctx)
	require.NoError(t, err)
	assert.Equal(t, uint64(50), seq)
	assert.ElementsMatch(t, want, all)
}

func TestUpdateKeyAllOrNothing(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, DefaultOptions("").WithInMemory(true))
	k := testKey(rand.New(rand.NewPCG(5, 6)), 8)
	_, err := s.CreateKey(ctx, k, "admin-api")
	require.NoError(t, err)

	boom := errors.New("boom")
	_, err = s.UpdateKey(ctx, k.ID, "admin-api", "", func(k *engine.Key) error {
		k.Name = "changed"
		k.Allowlist = nil
		return boom
	})
	require.Equal(t, boom, err, "fn's error is returned unchanged")
	_, err = s.UpdateKey(ctx, k.ID, "admin-api", "", func(k *engine.Key) error {
		k.Hash[0]++
		return nil
	})
	require.ErrorIs(t, err, store.ErrImmutable)
	_, err = s.UpdateKey(ctx, "key_missing", "admin-api", "", func(k *engine.Key) error { return nil })
	require.ErrorIs(t, err, store.ErrNotFound)
	got, err := s.GetKey(ctx, k.ID)
	require.NoError(t, err)
	require.Equal(t, k, got, "failed updates wrote nothing")
	require.Equal(t, uint64(1), s.Seq(), "failed updates used no sequence number")

	c, err := s.UpdateKey(ctx, k.ID, "cli", "key.revoke", func(k *engine.Key) error {
		k.RevokedAt = ts(1_760_000_000, 0)
		return nil
	})
	require.NoError(t, err)
	assert.Equal(t, uint64(2), c.Seq)
	assert.Equal(t, "key.revoke", c.Action)
	assert.Equal(t, "cli", c.Actor)
	assert.Equal(t, k, c.Before)
	want := k.Clone()
	want.RevokedAt = ts(1_760_000_000, 0)
	assert.Equal(t, want, c.After)
	got, err = s.GetKey(ctx, k.ID)
	require.NoError(t, err)
	assert.Equal(t, want, got)
}

func TestChangesSequence(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, DefaultOptions("").WithInMemory(true))
	r := rand.New(rand.NewPCG(7, 8))
	var ids []string
	var wantActions []string
	for i := range 20 {
		k := testKey(r, i)
		_, err := s.CreateKey(ctx, k, "a")
		require.NoError(t, err)
		ids = append(ids, k.ID)
		wantActions = append(wantActions, store.ActionCreate)
	}
	// Concurrent updates: every one gets its own number, no gaps.
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Go(func() {
			_, err := s.UpdateKey(ctx, ids[i%len(ids)], fmt.Sprint("w", i), "", func(k *engine.Key) error {
				k.Description = fmt.Sprint("update ", i)
				return nil
			})
			assert.NoError(t, err)
		})
	}
	wg.Wait()
	require.Equal(t, uint64(60), s.Seq())
	all, err := s.Changes(ctx, 0, 1000)
	require.NoError(t, err)
	require.Len(t, all, 60)
	for i, c := range all {
		require.Equal(t, uint64(i+1), c.Seq)
		if i < 20 {
			require.Equal(t, wantActions[i], c.Action)
			require.Nil(t, c.Before)
		} else {
			require.Equal(t, store.ActionUpdate, c.Action)
			require.NotNil(t, c.Before)
			require.Equal(t, c.Before.ID, c.After.ID)
		}
		if i > 0 {
			require.False(t, c.Time.Before(all[i-1].Time), "change times do not go back")
		}
	}
	// Every update's Before is the previous After of the same key.
	last := map[string]*engine.Key{}
	for _, c := range all {
		if c.Before != nil {
			require.Equal(t, last[c.KeyID], c.Before, "seq %d", c.Seq)
		}
		last[c.KeyID] = c.After
	}
	for _, tc := range []struct{ since, limit, want int }{{0, 10, 10}, {55, 10, 5}, {60, 10, 0}, {100, 10, 0}, {30, 0, 30}} {
		got, err := s.Changes(ctx, uint64(tc.since), tc.limit)
		require.NoError(t, err)
		require.Len(t, got, tc.want, "Changes(%d, %d)", tc.since, tc.limit)
		for i, c := range got {
			require.Equal(t, uint64(tc.since+1+i), c.Seq)
		}
	}
}

func TestOpenLockedInProcess(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, DefaultOptions(dir))
	_, err := Open(DefaultOptions(dir))
	require.ErrorIs(t, err, store.ErrLocked)
	require.Contains(t, err.Error(), "in use by another process")
	require.NoError(t, s.Close())
	s2, err := Open(DefaultOptions(dir))
	require.NoError(t, err, "the lock goes with Close")
	require.NoError(t, s2.Close())
}

// Child processes: the test binary runs itself with -test.run naming one
// of these tests and the env var set.
const (
	envChild = "KEYGATE_STORE_CHILD"
	envDir   = "KEYGATE_STORE_DIR"
)

func child(t *testing.T, test string, dir string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), envChild+"=1", envDir+"="+dir)
	return cmd
}

func TestOpenLockedChild(t *testing.T) {
	if os.Getenv(envChild) != "" {
		_, err := Open(DefaultOptions(os.Getenv(envDir)))
		if errors.Is(err, store.ErrLocked) {
			fmt.Println("LOCKED:", err)
			return
		}
		fmt.Println("UNEXPECTED:", err)
		return
	}
	dir := t.TempDir()
	openTest(t, DefaultOptions(dir))
	out, err := child(t, "TestOpenLockedChild", dir).CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), "LOCKED: store: data directory is in use by another process")
}

// crashRounds is how many times TestCrashDurability kills a writer.
const crashRounds = 12

// TestCrashDurability runs a child that creates and updates keys and
// prints the id of each acknowledged change, kills it with SIGKILL at a
// random moment, and checks after each round that every acknowledged
// change is there and the store opens cleanly.
func TestCrashDurability(t *testing.T) {
	if os.Getenv(envChild) != "" {
		crashChild(os.Getenv(envDir))
		return
	}
	dir := t.TempDir()
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 9))
	acked := map[uint64][2]string{} // acknowledged change seq -> key id, name
	var maxSeq uint64
	for round := range crashRounds {
		cmd := child(t, "TestCrashDurability", dir)
		cmd.Env = append(cmd.Env, fmt.Sprintf("KEYGATE_STORE_ROUND=%d", round))
		out, err := cmd.StdoutPipe()
		require.NoError(t, err)
		cmd.Stderr = os.Stderr
		require.NoError(t, cmd.Start())
		lines := make(chan string, 1024)
		go func() {
			defer close(lines)
			readLines(out, lines)
		}()
		// Wait for the child to start writing, then kill it soon after.
		var ready bool
		deadline := time.After(20 * time.Second)
		for !ready {
			select {
			case l, ok := <-lines:
				require.True(t, ok, "child exited before writing")
				ready = l == "ready"
				if !ready {
					recordAck(t, l, acked, &maxSeq)
				}
			case <-deadline:
				t.Fatal("child did not start")
			}
		}
		time.Sleep(time.Duration(r.IntN(150)) * time.Millisecond)
		require.NoError(t, cmd.Process.Kill())
		for l := range lines {
			recordAck(t, l, acked, &maxSeq)
		}
		cmd.Wait()

		s, err := Open(DefaultOptions(dir))
		require.NoError(t, err, "round %d: store opens after kill -9", round)
		ctx := context.Background()
		require.GreaterOrEqual(t, s.Seq(), maxSeq, "round %d", round)
		changes, err := s.Changes(ctx, 0, int(s.Seq())+1)
		require.NoError(t, err)
		require.Len(t, changes, int(s.Seq()))
		latest := map[string]*engine.Key{}
		for i, c := range changes {
			require.Equal(t, uint64(i+1), c.Seq)
			if a, ok := acked[c.Seq]; ok {
				require.Equal(t, a, [2]string{c.KeyID, c.After.Name}, "round %d: change %d", round, c.Seq)
			}
			latest[c.KeyID] = c.After
		}
		// The keys are what the last change of each made them.
		all, seq, err := s.LoadAll(ctx)
		require.NoError(t, err)
		require.Equal(t, s.Seq(), seq)
		require.Len(t, all, len(latest))
		for _, k := range all {
			require.Equal(t, latest[k.ID], k, "round %d", round)
		}
		require.NoError(t, s.Close())
	}
	t.Logf("%d rounds, %d acknowledged changes", crashRounds, len(acked))
}

// crashChild writes until killed: "c <seq> <id> <name>" after each
// acknowledged change.
func crashChild(dir string) {
	s, err := Open(DefaultOptions(dir).WithFlushInterval(10 * time.Millisecond))
	if err != nil {
		fmt.Fprintln(os.Stderr, "child open:", err)
		os.Exit(2)
	}
	ctx := context.Background()
	round := os.Getenv("KEYGATE_STORE_ROUND")
	fmt.Println("ready")
	var ids []string
	for i := 0; ; i++ {
		s.AppendLog(&usagelog.Entry{Time: time.Now(), KeyID: "key_x", Method: []byte("GET"), Path: []byte("/a"), Status: 200})
		if i%3 == 2 && len(ids) > 0 {
			id := ids[i%len(ids)]
			name := fmt.Sprintf("r%s-u%d", round, i)
			c, err := s.UpdateKey(ctx, id, "crash", "", func(k *engine.Key) error { k.Name = name; return nil })
			if err != nil {
				fmt.Fprintln(os.Stderr, "child update:", err)
				os.Exit(2)
			}
			fmt.Printf("c %d %s %s\n", c.Seq, id, name)
			continue
		}
		secret, hint := engine.NewSecret()
		k := &engine.Key{ID: engine.NewKeyID(), Name: fmt.Sprintf("r%s-c%d", round, i), Hash: engine.HashSecret([]byte(secret)), Hint: hint, CreatedAt: time.Now()}
		c, err := s.CreateKey(ctx, k, "crash")
		if err != nil {
			fmt.Fprintln(os.Stderr, "child create:", err)
			os.Exit(2)
		}
		ids = append(ids, k.ID)
		fmt.Printf("c %d %s %s\n", c.Seq, k.ID, k.Name)
	}
}

func recordAck(t *testing.T, line string, acked map[uint64][2]string, maxSeq *uint64) {
	t.Helper()
	var seq uint64
	var id, name string
	if _, err := fmt.Sscanf(line, "c %d %s %s", &seq, &id, &name); err != nil {
		t.Fatalf("bad child line %q: %v", line, err)
	}
	acked[seq] = [2]string{id, name}
	*maxSeq = max(*maxSeq, seq)
}

func TestOptions(t *testing.T) {
	o := DefaultOptions("/x").WithLogBuffer(8).WithSegmentRecords(16).WithFlushInterval(time.Second).
		WithRetention(time.Hour).WithInMemory(true).WithSyncWrites(false).WithDir("/y")
	assert.Equal(t, Options{Dir: "/y", InMemory: true, LogBuffer: 8, SegmentRecords: 16, FlushInterval: time.Second, Retention: time.Hour}, o)
	assert.True(t, DefaultOptions("/x").SyncWrites)
	assert.Error(t, Options{}.Validate())
	assert.Error(t, DefaultOptions("/x").WithSegmentRecords(maxSegmentRecords+1).Validate())
	assert.NoError(t, Options{InMemory: true}.Validate())
	_, err := Open(Options{})
	assert.Error(t, err)
	d := filepath.Join(t.TempDir(), "a", "b")
	s, err := Open(DefaultOptions(d))
	require.NoError(t, err, "Open creates the directory")
	require.NoError(t, s.Close())
	require.NoError(t, s.Close(), "Close twice")
}

// readLines sends every complete line of r to ch; a last line cut short
// by a kill is not an acknowledgement and is dropped.
func readLines(r io.Reader, ch chan<- string) {
	br := bufio.NewReader(r)
	for {
		l, err := br.ReadString('\n')
		if err != nil {
			return
		}
		ch <- strings.TrimSuffix(l, "\n")
	}
}
