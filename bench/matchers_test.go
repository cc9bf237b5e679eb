package bench

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"testing"

	"github.com/gaissmai/bart"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/yl2chen/cidranger"
	"go4.org/netipx"

	"github.com/keygate/keygate/engine"
	"github.com/keygate/keygate/internal/golden"
)

// matcher is what every approach offers: does the allowlist contain addr?
type matcher interface{ Contains(netip.Addr) bool }

type maskedScan struct {
	v4 []struct{ addr, mask uint32 }
	v6 []struct{ hi, lo, mhi, mlo uint64 }
}

func u128(a netip.Addr) (hi, lo uint64) {
	b := a.As16()
	for i := 0; i < 8; i++ {
		hi, lo = hi<<8|uint64(b[i]), lo<<8|uint64(b[8+i])
	}
	return hi, lo
}

func mask64(b int) uint64 {
	if b <= 0 {
		return 0
	}
	return ^uint64(0) << (64 - min(b, 64))
}

func newMaskedScan(ps []netip.Prefix) *maskedScan {
	m := &maskedScan{}
	for _, p := range ps {
		if p.Addr().Is4() {
			a := p.Addr().As4()
			v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
			mk := uint32(mask64(p.Bits()) >> 32)
			m.v4 = append(m.v4, struct{ addr, mask uint32 }{v & mk, mk})
			continue
		}
		hi, lo := u128(p.Addr())
		mhi, mlo := mask64(p.Bits()), mask64(p.Bits()-64)
		m.v6 = append(m.v6, struct{ hi, lo, mhi, mlo uint64 }{hi & mhi, lo & mlo, mhi, mlo})
	}
	return m
}

// Contains scans the prefixes held as masked integers.
func (m *maskedScan) Contains(a netip.Addr) bool {
	if a.Is4() {
		b := a.As4()
		v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
		for _, p := range m.v4 {
			if v&p.mask == p.addr {
				return true
			}
		}
		return false
	}
	hi, lo := u128(a)
	for _, p := range m.v6 {
		if hi&p.mhi == p.hi && lo&p.mlo == p.lo {
			return true
		}
	}
	return false
}

type netipScan []netip.Prefix

func (s netipScan) Contains(a netip.Addr) bool { return golden.Contains(s, a) }

type rangerMatcher struct{ r cidranger.Ranger }

func (m rangerMatcher) Contains(a netip.Addr) bool {
	ok, _ := m.r.Contains(net.IP(a.AsSlice()))
	return ok
}

// opaMatcher evaluates the Rego a team would write for this job, with the
// query prepared once and the allowlist in the policy's data.
type opaMatcher struct{ q rego.PreparedEvalQuery }

const policy = `package keygate

default allow := false

allow if {
	some cidr in data.entries
	net.cidr_contains(cidr, input.ip)
}
`

func newOPA(ps []netip.Prefix) (opaMatcher, error) {
	entries := make([]any, len(ps))
	for i, p := range ps {
		entries[i] = p.String()
	}
	q, err := rego.New(
		rego.Query("data.keygate.allow"),
		rego.Module("keygate.rego", policy),
		rego.Store(inmemStore(map[string]any{"entries": entries})),
	).PrepareForEval(context.Background())
	return opaMatcher{q}, err
}

func (m opaMatcher) Contains(a netip.Addr) bool {
	rs, err := m.q.Eval(context.Background(), rego.EvalInput(map[string]any{"ip": a.String()}))
	if err != nil || len(rs) != 1 {
		return false
	}
	ok, _ := rs[0].Expressions[0].Value.(bool)
	return ok
}

// matchers builds every approach over the same prefixes.
func matchers(tb testing.TB, ps []netip.Prefix) []struct {
	name string
	m    matcher
} {
	tb.Helper()
	entries := make([]engine.Entry, len(ps))
	lite, table, fast := new(bart.Lite), new(bart.Table[int]), new(bart.Fast[int])
	var sb netipx.IPSetBuilder
	ranger := cidranger.NewPCTrieRanger()
	for i, p := range ps {
		entries[i] = engine.Entry{Prefix: p}
		lite.Insert(p)
		table.Insert(p, i)
		fast.Insert(p, i)
		sb.AddPrefix(p)
		n := net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
		if err := ranger.Insert(cidranger.NewBasicRangerEntry(n)); err != nil {
			tb.Fatal(err)
		}
	}
	set, err := sb.IPSet()
	if err != nil {
		tb.Fatal(err)
	}
	opa, err := newOPA(ps)
	if err != nil {
		tb.Fatal(err)
	}
	return []struct {
		name string
		m    matcher
	}{
		{"keygate", engine.NewMatcher(entries)},
		{"masked-scan", newMaskedScan(ps)},
		{"netip-scan", netipScan(ps)},
		{"bart-lite", lite},
		{"bart-table", table},
		{"bart-fast", fast},
		{"netipx-ipset", set},
		{"cidranger", rangerMatcher{ranger}},
		{"opa-rego", opa},
	}
}

// TestMatchersAgree checks that every approach gives the reference answer on
// the benchmark data, so the benchmark compares equals.
func TestMatchersAgree(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		for _, n := range []int{1, 5, 20} {
			al := golden.GenAllowlist(1, n, v6)
			for _, m := range matchers(t, al.Prefixes) {
				for _, a := range al.Hits {
					if !m.m.Contains(a) {
						t.Errorf("%s n=%d: Contains(%s) = false, want true", m.name, n, a)
					}
				}
				for _, a := range al.Misses {
					if m.m.Contains(a) {
						t.Errorf("%s n=%d: Contains(%s) = true, want false", m.name, n, a)
					}
				}
			}
		}
	}
}

// BenchmarkMatch runs every approach on the same data in one run:
// family x size x hit/miss.
func BenchmarkMatch(b *testing.B) {
	for _, fam := range []string{"v4", "v6"} {
		for _, n := range []int{1, 5, 20} {
			al := golden.GenAllowlist(1, n, fam == "v6")
			ms := matchers(b, al.Prefixes)
			for _, probe := range []struct {
				name  string
				addrs []netip.Addr
			}{{"hit", al.Hits}, {"miss", al.Misses}} {
				for _, m := range ms {
					b.Run(fmt.Sprintf("%s/n=%d/%s/%s", fam, n, probe.name, m.name), func(b *testing.B) {
						b.ReportAllocs()
						i := 0
						for b.Loop() {
							m.m.Contains(probe.addrs[i&63])
							i++
						}
					})
				}
			}
		}
	}
}
