package postgres

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/keygate/keygate/engine"
	"github.com/keygate/keygate/internal/pgtest"
)

// The feed workload: writers on several daemons commit changes, each
// pausing a random 0-2 ms between taking its number and COMMIT (as a
// busy server or network would), while a reader polls seq > last and
// moves last to the greatest number it saw. It then checks what the
// reader saw against what was committed.
const (
	feedDaemons = 3
	feedWriters = 4 // per daemon
	feedChanges = 40
)

func pause() { time.Sleep(time.Duration(rand.IntN(2000)) * time.Microsecond) }

// TestConcurrentChangeFeedNeverSkips: with the counter row, the reader
// sees every change exactly once, in order, whatever the interleaving.
func TestConcurrentChangeFeedNeverSkips(t *testing.T) {
	url := pgtest.Shared(t).DB(t)
	var daemons []*Store
	for range feedDaemons {
		s := openURL(t, url, nil)
		s.beforeCommit = pause
		daemons = append(daemons, s)
	}
	ctx := context.Background()
	for i := range feedWriters {
		_, err := daemons[0].CreateKey(ctx, newKey(fmt.Sprintf("key_f%d", i)), "admin")
		require.NoError(t, err)
	}
	var writing atomic.Int32
	var wg sync.WaitGroup
	for d, s := range daemons {
		for w := range feedWriters {
			wg.Add(1)
			writing.Add(1)
			go func() {
				defer wg.Done()
				defer writing.Add(-1)
				id := fmt.Sprintf("key_f%d", w)
				for n := range feedChanges {
					_, err := s.UpdateKey(ctx, id, fmt.Sprintf("d%d", d), "", func(k *engine.Key) error {
						k.Name = fmt.Sprint(n)
						return nil
					})
					if err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
	}
	reader := openURL(t, url, nil)
	var seen []uint64
	last := uint64(0)
	for {
		done := writing.Load() == 0
		ch, err := reader.Changes(ctx, last, 0)
		require.NoError(t, err)
		for _, c := range ch {
			seen = append(seen, c.Seq)
			last = c.Seq
		}
		if done && len(ch) == 0 {
			break
		}
	}
	wg.Wait()
	total := uint64(feedWriters + feedDaemons*feedWriters*feedChanges)
	require.Len(t, seen, int(total))
	for i, s := range seen {
		require.Equal(t, uint64(i+1), s, "change %d", i)
	}
}

// TestPlainSequenceSkips is the same workload on a table numbered by a
// plain SEQUENCE (bigserial), which is what the counter row replaces:
// numbers are taken before commit, so a reader that polls seq > last
// misses numbers that commit after a greater one was read. It asserts
// that the reader missed at least one change, which shows that the test
// above would catch a feed that can skip.
func TestPlainSequenceSkips(t *testing.T) {
	url := pgtest.Shared(t).DB(t)
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, url)
	require.NoError(t, err)
	defer pool.Close()
	_, err = pool.Exec(ctx, "CREATE TABLE plain_changes (seq bigserial PRIMARY KEY, actor text NOT NULL)")
	require.NoError(t, err)

	var writing atomic.Int32
	var wg sync.WaitGroup
	for d := range feedDaemons {
		for range feedWriters {
			wg.Add(1)
			writing.Add(1)
			go func() {
				defer wg.Done()
				defer writing.Add(-1)
				for range feedChanges {
					err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
						_, err := tx.Exec(ctx, "INSERT INTO plain_changes (actor) VALUES ($1)", fmt.Sprintf("d%d", d))
						pause()
						return err
					})
					if err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
	}
	seen := map[int64]bool{}
	var last int64
	for {
		done := writing.Load() == 0
		rows, err := pool.Query(ctx, "SELECT seq FROM plain_changes WHERE seq > $1 ORDER BY seq", last)
		require.NoError(t, err)
		seqs, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		require.NoError(t, err)
		for _, s := range seqs {
			seen[s] = true
			last = s
		}
		if done && len(seqs) == 0 {
			break
		}
	}
	wg.Wait()
	var all []int64
	rows, err := pool.Query(ctx, "SELECT seq FROM plain_changes ORDER BY seq")
	require.NoError(t, err)
	all, err = pgx.CollectRows(rows, pgx.RowTo[int64])
	require.NoError(t, err)
	missed := 0
	for _, s := range all {
		if !seen[s] {
			missed++
		}
	}
	t.Logf("plain sequence: the reader missed %d of %d committed changes", missed, len(all))
	require.Positive(t, missed, "a SEQUENCE-numbered feed read by seq > last should have skipped some changes")
}

// TestChangesPollCost measures one poll of Changes with nothing new, the
// fallback every daemon runs each second.
func TestChangesPollCost(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	for i := range 100 {
		_, err := s.CreateKey(ctx, newKey(fmt.Sprintf("key_p%d", i)), "admin")
		require.NoError(t, err)
	}
	const n = 500
	start := time.Now()
	for range n {
		ch, err := s.Changes(ctx, 100, 0)
		require.NoError(t, err)
		require.Empty(t, ch)
	}
	t.Logf("Changes poll (nothing new, 100 changes stored): %v per poll", time.Since(start)/n)
}
