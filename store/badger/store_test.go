package badgerstore

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/store"
	"github.com/keygate/keygate/usagelog"

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
