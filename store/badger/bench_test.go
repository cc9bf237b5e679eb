package badgerstore

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/keygate/keygate/usagelog"

	"github.com/dgraph-io/badger/v4"

	"github.com/keygate/keygate/engine"
)

var (
	benchRecords = flag.Int("store.records", 10_000_000, "records in the store BenchmarkQueryOneKey searches")
	benchKeys    = flag.Int("store.keys", 1_000_000, "largest key count of BenchmarkLoadAll")
)

// realistic makes usage-log entries shaped like a real API's traffic: 1000
// keys of Zipf-distributed popularity, each calling from a few addresses;
// mostly GET, mostly 200; REST paths with numeric ids; 100k checks/s.
type realistic struct {
	r      *rand.Rand
	zipf   *rand.Zipf
	keys   []string
	ents   []string
	ips    [][3]netip.Addr
	t      time.Time
	path   []byte
	method []byte
}

var benchRoutes = []string{"/v1/orders/", "/v1/customers/", "/v1/products/", "/v1/invoices/", "/v2/search?q=", "/v1/users/", "/v1/carts/", "/v1/payments/"}

const realisticKeys = 1000

func newRealistic(seed uint64) *realistic {
	r := rand.New(rand.NewPCG(seed, 99))
	g := &realistic{r: r, zipf: rand.NewZipf(r, 1.1, 1, realisticKeys-1), t: time.Now().Add(-24 * time.Hour)}
	for i := range realisticKeys {
		g.keys = append(g.keys, fmt.Sprintf("key_%016d", i))
		g.ents = append(g.ents, fmt.Sprintf("ent_%012d", i))
		var a [3]netip.Addr
		for j := range a {
			if r.IntN(4) == 0 {
				a[j] = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, byte(r.Uint32()), byte(r.Uint32()), 0, 0, 0, 0, 0, 0, 0, 0, 0, byte(j + 1)})
			} else {
				a[j] = netip.AddrFrom4([4]byte{byte(1 + r.IntN(223)), byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32())})
			}
		}
		g.ips = append(g.ips, a)
	}
	return g
}

func (g *realistic) next(e *usagelog.Entry) {
	k := int(g.zipf.Uint64())
	g.t = g.t.Add(time.Duration(g.r.IntN(20_000)))
	*e = usagelog.Entry{Time: g.t, KeyID: g.keys[k], IP: g.ips[k][g.r.IntN(3)], Status: 200, Latency: time.Duration(20+g.r.IntN(400)) * time.Microsecond}
	switch x := g.r.IntN(100); {
	case x < 80:
		g.method = append(g.method[:0], "GET"...)
	case x < 95:
		g.method = append(g.method[:0], "POST"...)
	default:
		g.method = append(g.method[:0], "DELETE"...)
	}
	g.path = append(g.path[:0], benchRoutes[g.r.IntN(len(benchRoutes))]...)
	g.path = strconv.AppendInt(g.path, int64(g.r.IntN(100_000)), 10)
	e.Method, e.Path = g.method, g.path
	switch x := g.r.IntN(100); {
	case x < 3:
		e.Status, e.Code = 403, "IP_NOT_ALLOWED"
	case x < 5:
		e.Status, e.Code, e.KeyID = 401, "INVALID_KEY", ""
	default:
		e.EntryID = g.ents[k]
	}
}

// BenchmarkLogIngest measures records/s through AppendLog, the buffer and
// the writer to disk. The producer waits when the buffer is nearly full,
// so what is measured is the writer's pace.
func BenchmarkLogIngest(b *testing.B) {
	s := openTest(b, DefaultOptions(b.TempDir()))
	g := newRealistic(1)
	entries := make([]usagelog.Entry, 1<<14)
	for i := range entries {
		g.next(&entries[i])
		entries[i].Method = bytes.Clone(entries[i].Method)
		entries[i].Path = bytes.Clone(entries[i].Path)
	}
	limit := DefaultLogBuffer - 1024
	b.ReportAllocs()
	start := time.Now()
	i := 0
	for b.Loop() {
		if i&1023 == 0 {
			for s.LogStats().Queued > limit {
				time.Sleep(100 * time.Microsecond)
			}
		}
		s.AppendLog(&entries[i&(len(entries)-1)])
		i++
	}
	if err := s.FlushLogs(); err != nil {
		b.Fatal(err)
	}
	el := time.Since(start)
	st := s.LogStats()
	if st.Dropped != 0 {
		b.Fatalf("%d records dropped", st.Dropped)
	}
	b.ReportMetric(float64(st.Written)/el.Seconds(), "records/s")
}

// BenchmarkCompression encodes and compresses 4096-record segments of
// realistic records and reports the size against the same records as CSV
// (the form a user would otherwise keep) and bytes per record.
func BenchmarkCompression(b *testing.B) {
	g := newRealistic(2)
	const n = DefaultSegmentRecords
	var seg segment
	var sl usagelog.Slot
	var e usagelog.Entry
	for range n {
		g.next(&e)
		sl.Fill(&e, e.Time.UnixNano())
		seg.add(&sl)
	}
	csvLen := 0
	var (
		row []byte
		r   usagelog.CSVRow
	)
	for i := range n {
		seg.csvRow(&r, i)
		row = usagelog.AppendCSVRow(row[:0], &r, nil)
		csvLen += len(row)
	}
	var body, out []byte
	b.ReportAllocs()
	for b.Loop() {
		body = seg.encodeBody(body[:0], nil)
		out = compress(out[:0], body, nil)
	}
	b.ReportMetric(float64(csvLen)/float64(len(out)), "x_vs_csv")
	b.ReportMetric(float64(len(body))/float64(len(out)), "x_vs_columns")
	b.ReportMetric(float64(len(out))/n, "B/record")
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "records/s")
}

// fillStore writes n realistic records to s as full segments, bypassing
// the buffer (fast set-up for query benchmarks). It returns the key ids
// by popularity rank.
func fillStore(tb testing.TB, s *Store, n int) []string {
	g := newRealistic(3)
	var seg segment
	var sl usagelog.Slot
	var e usagelog.Entry
	id := uint64(0)
	for done := 0; done < n; {
		seg.reset()
		for j := 0; j < DefaultSegmentRecords && done < n; j++ {
			g.next(&e)
			sl.Fill(&e, e.Time.UnixNano())
			seg.add(&sl)
			done++
		}
		s.logs.write(&seg, id)
		id++
	}
	if st := s.LogStats(); st.WriteErrors != 0 {
		tb.Fatalf("%d write errors", st.WriteErrors)
	}
	return g.keys
}

// BenchmarkQueryOneKey: one key's newest page, over -store.records
// realistic records (10M by default; 2442 segments).
func BenchmarkQueryOneKey(b *testing.B) {
	s := openTest(b, DefaultOptions(b.TempDir()).WithSyncWrites(false))
	start := time.Now()
	keys := fillStore(b, s, *benchRecords)
	b.Logf("%d records in %d segments written in %v", *benchRecords, s.LogStats().Segments, time.Since(start))
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		f    usagelog.Filter
	}{
		{"popular_key_limit100", usagelog.Filter{KeyID: keys[0]}},
		{"mid_key_limit100", usagelog.Filter{KeyID: keys[50]}},
		{"rarest_key_limit1000", usagelog.Filter{KeyID: keys[realisticKeys-1], Limit: 1000}},
		{"absent_key", usagelog.Filter{KeyID: "key_absent"}},
		{"rarest_key_403_limit100", usagelog.Filter{KeyID: keys[realisticKeys-1], Status: "403"}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var got int
			for b.Loop() {
				p, err := s.QueryLogs(ctx, tc.f)
				if err != nil {
					b.Fatal(err)
				}
				got = len(p.Items)
			}
			b.ReportMetric(float64(got), "items")
		})
	}
}

// BenchmarkExportCSV streams 1M realistic records as CSV, every key
// named (as the server names them: a map of every stored key).
func BenchmarkExportCSV(b *testing.B) {
	const n = 1_000_000
	s := openTest(b, DefaultOptions(b.TempDir()).WithSyncWrites(false))
	keys := fillStore(b, s, n)
	names := make(map[string]string, len(keys))
	for i, id := range keys {
		names[id] = fmt.Sprintf("service %d (production)", i)
	}
	b.ReportAllocs()
	for b.Loop() {
		rows, err := s.ExportCSV(context.Background(), io.Discard, usagelog.Filter{}, func(id string) string { return names[id] })
		if err != nil || rows != n {
			b.Fatal(rows, err)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkLoadAll loads 10k..-store.keys keys of 5 allowlist entries each.
func BenchmarkLoadAll(b *testing.B) {
	for n := 10_000; n <= *benchKeys; n *= 10 {
		b.Run(fmt.Sprintf("keys=%d", n), func(b *testing.B) {
			dir := b.TempDir()
			s := openTest(b, DefaultOptions(dir).WithSyncWrites(false))
			writeKeys(b, s, n)
			b.ReportAllocs()
			for b.Loop() {
				keys, _, err := s.LoadAll(context.Background())
				if err != nil || len(keys) != n {
					b.Fatal(len(keys), err)
				}
			}
			b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/load")
		})
	}
}

// writeKeys stores n keys directly (no change records: set-up only).
func writeKeys(tb testing.TB, s *Store, n int) {
	r := rand.New(rand.NewPCG(5, 5))
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	for i := range n {
		k := &engine.Key{
			ID:        fmt.Sprintf("key_%016d", i),
			Name:      fmt.Sprintf("service %d", i),
			Scopes:    []string{"read", "write"},
			Hint:      "kg_AbCdEfGh",
			CreatedAt: time.Now(),
		}
		for j := range k.Hash {
			k.Hash[j] = byte(r.Uint32())
		}
		for j := range 5 {
			k.Allowlist = append(k.Allowlist, engine.Entry{
				ID:     fmt.Sprintf("ent_%012d", j),
				Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(1 + r.IntN(200)), byte(r.Uint32()), byte(r.Uint32()), 0}), 24),
				Label:  "office",
			})
		}
		if err := wb.SetEntry(badger.NewEntry(keyOf(prefixKey, k.ID), encodeKey(nil, k))); err != nil {
			tb.Fatal(err)
		}
	}
	if err := wb.Flush(); err != nil {
		tb.Fatal(err)
	}
}
