package engine

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
	"unsafe"
)

// heapOf returns the live heap that what the build function returns holds,
// per key: HeapAlloc after a GC, with it kept alive, less HeapAlloc before.
func heapOf(n int, build func() any) float64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	x := build()
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(x)
	return float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(n)
}

// BenchmarkMemoryParts breaks BenchmarkMemoryPerKey down by part, each
// part built on its own from the same keys and its live heap measured
// (bytes/key). "table" is what a loaded engine holds beyond the other
// parts: the snapshot's levels and bucket slots; "sum" adds the parts the
// engine shares with the keys it was given (strings, scopes, entries), which
// BenchmarkMemoryPerKey counts too.
func BenchmarkMemoryParts(b *testing.B) {
	const n = 1000000
	for b.Loop() {
		r := rand.New(rand.NewPCG(5, 5))
		keys, _ := benchKeys(r, n, 5)
		total := heapOf(n, func() any { e := New(); e.Load(keys, 1); return e })
		// Each part is a copy of what the keys hold, so the keys' own
		// memory is outside every measurement.
		compiledStructs := heapOf(n, func() any {
			cs := make([]*compiled, n)
			for i := range cs {
				cs[i] = new(compiled)
			}
			return cs
		}) - 8 // the []*compiled slice itself
		idHint := heapOf(n, func() any {
			s := make([][2]string, n)
			for i, k := range keys {
				s[i] = [2]string{strings.Clone(k.ID), strings.Clone(k.Hint)}
			}
			return s
		}) - 32
		scopes := heapOf(n, func() any {
			s := make([][]string, n)
			for i, k := range keys {
				s[i] = append([]string(nil), k.Scopes...)
			}
			return s
		}) - 24
		entries := heapOf(n, func() any {
			s := make([][]Entry, n)
			for i, k := range keys {
				s[i] = make([]Entry, len(k.Allowlist))
				copy(s[i], k.Allowlist)
			}
			return s
		}) - 24
		entryIDs := heapOf(n, func() any {
			s := make([][]string, n)
			for i, k := range keys {
				s[i] = make([]string, len(k.Allowlist))
				for j, e := range k.Allowlist {
					s[i][j] = strings.Clone(e.ID)
				}
			}
			return s
		}) - 24 - 5*16 // the holder: a header and an 80 B backing array
		tries := heapOf(n, func() any {
			s := make([]Matcher, n)
			for i, k := range keys {
				s[i] = newMatcher(k.Allowlist)
			}
			return s
		}) - float64(unsafe.Sizeof(Matcher{}))
		var v4nodes, v6nodes, jumps float64
		for _, k := range keys[:1000] {
			m := newMatcher(k.Allowlist)
			v4nodes += float64(cap(m.v4.nodes)) * float64(unsafe.Sizeof(node4{}))
			v6nodes += float64(cap(m.v6.nodes)) * float64(unsafe.Sizeof(node{}))
			jumps += float64(cap(m.v4.jump)+cap(m.v6.jump)) * 4
		}
		// The engine shares the keys' strings, scopes and entries, so a
		// loaded engine holds the compiled keys, their tries and the table.
		table := total - compiledStructs - tries
		sum := compiledStructs + tries + table + idHint + scopes + entries + entryIDs
		b.ReportMetric(total, "engine-B/key")
		b.ReportMetric(sum, "sum-B/key")
		b.ReportMetric(compiledStructs, "compiled-B/key")
		b.ReportMetric(idHint, "id+hint-B/key")
		b.ReportMetric(scopes, "scopes-B/key")
		b.ReportMetric(entries, "entries-B/key")
		b.ReportMetric(entryIDs, "entryIDs-B/key")
		b.ReportMetric(tries, "tries-B/key")
		b.ReportMetric(table, "table-B/key")
		fmt.Printf("sizeof Key %d compiled %d Matcher %d Entry %d; requested per key (no size-class rounding) v4 nodes %.1f v6 nodes %.1f jump %.1f\n",
			unsafe.Sizeof(Key{}), unsafe.Sizeof(compiled{}), unsafe.Sizeof(Matcher{}), unsafe.Sizeof(Entry{}), v4nodes/1000, v6nodes/1000, jumps/1000)
	}
}
