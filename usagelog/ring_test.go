package usagelog

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRing: records come out oldest first across the wrap-around, a full
// or closed ring drops and counts, the counters add up, Append wakes the
// writer at notifyAt, and taken slots keep no strings.
func TestRing(t *testing.T) {
	var r Ring
	r.Init(4, 2)
	appendN := func(from, n int) {
		for i := from; i < from+n; i++ {
			r.Append(&Entry{KeyID: string(rune('a' + i)), Hint: "h", Method: []byte(strings.Repeat("M", MaxMethod+3)), Path: []byte("/p"), Status: -1}, int64(i))
		}
	}
	take := func(max int) (times []int64, left int) {
		_, left = r.Take(max, func(s *Slot) {
			times = append(times, s.Time)
			assert.Equal(t, string(rune('a'+s.Time)), s.KeyID)
			assert.Equal(t, MaxMethod, len(s.Method()), "method truncated")
			assert.Equal(t, "/p", string(s.Path()))
			assert.Equal(t, uint16(0), s.Status, "status clamped")
		})
		return times, left
	}
	appendN(0, 1)
	select {
	case <-r.Notify():
		t.Fatal("woken before notifyAt records")
	default:
	}
	appendN(1, 1)
	select {
	case <-r.Notify():
	default:
		t.Fatal("not woken at notifyAt records")
	}
	got, left := take(1)
	assert.Equal(t, []int64{0}, got)
	assert.Equal(t, 1, left)
	appendN(2, 4) // 1, 2, 3, 4 queued (wrapping); 5 dropped
	st := r.Stats()
	assert.Equal(t, Stats{Queued: 4, InSegment: 1, Dropped: 1}, st)
	got, left = take(10)
	assert.Equal(t, []int64{1, 2, 3, 4}, got, "oldest first across the wrap")
	assert.Zero(t, left)
	for _, s := range r.slots {
		assert.Equal(t, [4]string{}, [4]string{s.KeyID, s.EntryID, s.Code, s.Hint}, "a taken slot keeps no strings")
	}
	r.Settle(2, 1, 1)
	r.AddPending(3)
	assert.Equal(t, Stats{InSegment: 4, Dropped: 2, Written: 2, WriteErrors: 1}, r.Stats())
	r.Close()
	appendN(0, 1)
	assert.Equal(t, Stats{InSegment: 4, Dropped: 3, Written: 2, WriteErrors: 1}, r.Stats(), "a closed ring drops")
	n, _ := r.Take(10, func(*Slot) { t.Fatal("nothing queued") })
	require.Zero(t, n)
}

// TestRingConcurrent: appenders racing a writer that takes and settles;
// every record is counted once (run under -race by make test).
func TestRingConcurrent(t *testing.T) {
	var r Ring
	r.Init(256, 64)
	const writers, per = 4, 5000
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range per {
				r.Append(&Entry{KeyID: "key_a", Path: []byte("/x"), Status: 200}, int64(w*per+i))
			}
		})
	}
	done := make(chan struct{})
	var taken int
	go func() {
		defer close(done)
		for {
			select {
			case <-r.Notify():
			case <-time.After(time.Millisecond):
			}
			n, _ := r.Take(100, func(s *Slot) { assert.Equal(t, "key_a", s.KeyID) })
			taken += n
			r.Settle(n, 0, 0)
			if st := r.Stats(); st.Written+st.Dropped == writers*per {
				return
			}
		}
	}()
	wg.Wait()
	<-done
	st := r.Stats()
	assert.Equal(t, uint64(taken), st.Written)
	assert.Equal(t, uint64(writers*per), st.Written+st.Dropped, "%+v", st)
	assert.Zero(t, st.Queued+st.InSegment)
}
