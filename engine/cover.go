package engine

import (
	"cmp"
	"net/netip"
	"slices"
)

// CoverPrefixes returns the fewest prefixes whose union is exactly the
// union of ps, none shorter than the allowlist floors (MinPrefixV4,
// MinPrefixV6): contained prefixes are dropped and sibling halves merged
// into their parent for as long as the parent respects the floor. IPv4-mapped
// prefixes count as IPv4; invalid ones are ignored. The result is sorted
// (IPv4 first, then by address). ps is not changed.
func CoverPrefixes(ps []netip.Prefix) []netip.Prefix {
	in := make([]netip.Prefix, 0, len(ps))
	for _, p := range ps {
		if !p.IsValid() {
			continue
		}
		if a := p.Addr(); a.Is4In6() {
			if p.Bits() < 96 {
				continue
			}
			p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
		}
		in = append(in, p.Masked())
	}
	slices.SortFunc(in, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return cmp.Compare(a.Bits(), b.Bits())
	})
	var out []netip.Prefix
	for _, p := range in {
		// Sorted by address then length, a prefix contained in an earlier
		// one comes after it, with only merged parents in between, and
		// those are on the stack.
		if n := len(out); n > 0 && out[n-1].Overlaps(p) {
			continue
		}
		out = append(out, p)
		for len(out) >= 2 {
			a, b := out[len(out)-2], out[len(out)-1]
			bits := a.Bits()
			floor := MinPrefixV4
			if a.Addr().Is6() {
				floor = MinPrefixV6
			}
			if b.Bits() != bits || bits <= floor || a.Addr().Is4() != b.Addr().Is4() {
				break
			}
			pa := netip.PrefixFrom(a.Addr(), bits-1).Masked()
			if pa != netip.PrefixFrom(b.Addr(), bits-1).Masked() {
				break
			}
			out = append(out[:len(out)-2], pa)
		}
	}
	return out
}
