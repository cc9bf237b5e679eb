//go:build !race

package usagelog

import (
	"net/netip"
	"testing"
	"time"
)

// TestRingNoAllocs: Append, on the check path, allocates nothing, neither
// when it queues a record nor when the ring is full and it drops one.
func TestRingNoAllocs(t *testing.T) {
	var r Ring
	r.Init(2000, 1000)
	e := &Entry{Time: time.Now(), KeyID: "key_0123456789abcdef", EntryID: "ent_0123456789ab", IP: netip.MustParseAddr("2001:db8::1"),
		Method: []byte("GET"), Path: []byte("/v1/orders/12345?expand=items"), Status: 403, Code: CodeIPNotAllowed, Latency: 12 * time.Microsecond}
	if n := testing.AllocsPerRun(1000, func() { r.Append(e, 1) }); n != 0 {
		t.Errorf("Append (queueing): %v allocs, want 0", n)
	}
	if st := r.Stats(); st.Queued != 1001 || st.Dropped != 0 {
		t.Fatalf("after 1001 appends: %+v", st)
	}
	for r.Stats().Queued < r.Cap() {
		r.Append(e, 1)
	}
	if n := testing.AllocsPerRun(1000, func() { r.Append(e, 1) }); n != 0 {
		t.Errorf("Append (dropping): %v allocs, want 0", n)
	}
	if st := r.Stats(); st.Dropped != 1001 {
		t.Errorf("dropped %d, want 1001", st.Dropped)
	}
}
