package engine

import (
	"fmt"
	"math/rand/v2"
	"runtime"
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
// (bytes/key): the compiled key structs (what a check reads, the tries'
// headers included), their packed text (id, name, hints, scopes, entry
// ids), the tries' arrays, and the table: what a loaded engine holds
// beyond the other parts (the snapshot's levels and bucket slots). The
// engine keeps nothing of the keys it was given, so the parts add up to
// what BenchmarkMemoryPerKey counts.
func BenchmarkMemoryParts(b *testing.B) {
	const n = 1000000
	for b.Loop() {
		r := rand.New(rand.NewPCG(5, 5))
		keys, _ := benchKeys(r, n, 5)
		total := heapOf(n, func() any { e := New(); e.Load(keys, 1); return e })
		compiledStructs := heapOf(n, func() any {
			cs := make([]*compiled, n)
			for i := range cs {
				cs[i] = new(compiled)
			}
			return cs
		}) - 8 // the []*compiled slice itself
		text := heapOf(n, func() any {
			s := make([]KeyInfo, n)
			for i, k := range keys {
				s[i] = newKeyInfo(k)
			}
			return s
		}) - float64(unsafe.Sizeof(KeyInfo{}))
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
		table := total - compiledStructs - text - tries
		b.ReportMetric(total, "engine-B/key")
		b.ReportMetric(compiledStructs, "compiled-B/key")
		b.ReportMetric(text, "text-B/key")
		b.ReportMetric(tries, "tries-B/key")
		b.ReportMetric(table, "table-B/key")
		fmt.Printf("sizeof compiled %d KeyInfo %d Matcher %d; requested per key (no size-class rounding) v4 nodes %.1f v6 nodes %.1f jump %.1f\n",
			unsafe.Sizeof(compiled{}), unsafe.Sizeof(KeyInfo{}), unsafe.Sizeof(Matcher{}), v4nodes/1000, v6nodes/1000, jumps/1000)
	}
}
