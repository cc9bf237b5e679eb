package badgerstore

import (
	"bytes"
	"flag"
	"fmt"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/keygate/keygate/usagelog"
)

var logRate = flag.Int("store.lograte", 100_000, "records/s BenchmarkLogCPU appends (0: as fast as the buffer takes them)")

// BenchmarkLogCPU measures the usage log's whole cost per record: the
// process's CPU time (getrusage: every goroutine, Badger's and the
// garbage collector's included) from the first AppendLog until every
// record is in Badger (FlushLogs: "cpu-ns/record"), and until Close has
// also flushed Badger's memtable into a table ("closed-cpu-ns/record"),
// divided by the records appended; and the bytes of segment values and
// indexes stored per record. Records are the load test's mix (realistic:
// 1000 keys of Zipf popularity, IPv4 and IPv6 clients, mostly allowed;
// known keys carry their secret's hint, as the server logs them), made
// beforehand, appended by one goroutine at -store.lograte records/s with
// the time of the append, as the check path does. One b.Loop iteration
// is one record. Sub-benchmark "none" is the same loop with the store
// open but nothing appended: the harness's own cost (the clock read and
// the pacing) and an idle store's, to subtract. Run it with a fixed count:
//
//	go test -run '^$' -bench 'LogCPU' -benchtime 500000x -cpu 1 ./store/badger/
func BenchmarkLogCPU(b *testing.B) {
	b.Run("append", func(b *testing.B) { benchLogCPU(b, true) })
	b.Run("none", func(b *testing.B) { benchLogCPU(b, false) })
}

func benchLogCPU(b *testing.B, appendLog bool) {
	s := openTest(b, DefaultOptions(b.TempDir()))
	g := newRealistic(7)
	entries := make([]usagelog.Entry, 1<<16)
	hints := make([]string, realisticKeys)
	for i := range hints {
		hints[i] = fmt.Sprintf("kg_%08x", i*2654435761)
	}
	keyIndex := make(map[string]int, realisticKeys)
	for i, k := range g.keys {
		keyIndex[k] = i
	}
	for i := range entries {
		e := &entries[i]
		g.next(e)
		e.Method = bytes.Clone(e.Method)
		e.Path = bytes.Clone(e.Path)
		if e.KeyID != "" {
			e.Hint = hints[keyIndex[e.KeyID]]
		}
	}
	// A segment's worth first, so that the writer's maps and buffers
	// and Badger have their working size.
	for i := range DefaultSegmentRecords {
		e := entries[i]
		e.Time = time.Now()
		s.AppendLog(&e)
	}
	if err := s.FlushLogs(); err != nil {
		b.Fatal(err)
	}
	before := s.LogStats().Written

	// Paced in bursts of a millisecond's worth.
	burst := max(1, *logRate/1000)
	limit := DefaultLogBuffer - 1024
	c0 := cpuTime()
	next := time.Now()
	i := 0
	for b.Loop() {
		if i%burst == 0 && i > 0 {
			if *logRate > 0 {
				next = next.Add(time.Millisecond)
				if d := time.Until(next); d > 0 {
					time.Sleep(d)
				}
			}
			for s.LogStats().Queued > limit {
				time.Sleep(100 * time.Microsecond)
			}
		}
		e := &entries[i&(len(entries)-1)]
		e.Time = time.Now()
		if appendLog {
			s.AppendLog(e)
		}
		i++
	}
	if err := s.FlushLogs(); err != nil {
		b.Fatal(err)
	}
	flushed := cpuTime() - c0
	st := s.LogStats()
	if st.Dropped != 0 || st.WriteErrors != 0 {
		b.Fatalf("%d dropped, %d write errors", st.Dropped, st.WriteErrors)
	}
	if got, want := st.Written-before, uint64(i); appendLog && got != want {
		b.Fatalf("%d records written, want %d", got, i)
	}
	var segBytes, idxBytes int64
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.DefaultIteratorOptions)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().Key()
			switch {
			case bytes.HasPrefix(k, prefixSegment):
				segBytes += it.Item().ValueSize()
			case bytes.HasPrefix(k, prefixIndex):
				idxBytes += it.Item().ValueSize()
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	c1 := cpuTime()
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	closed := flushed + cpuTime() - c1
	all := float64(max(st.Written, 1))
	b.ReportMetric(float64(flushed.Nanoseconds())/float64(i), "cpu-ns/record")
	b.ReportMetric(float64(closed.Nanoseconds())/float64(i), "closed-cpu-ns/record")
	if appendLog {
		b.ReportMetric(float64(segBytes)/all, "seg-B/record")
		b.ReportMetric(float64(idxBytes)/all, "idx-B/record")
	}
}
