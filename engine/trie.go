package engine

import (
	"encoding/binary"
	"math/bits"
	"net/netip"
	"unsafe"
)

// trie is an immutable, path-compressed binary radix trie (PATRICIA) over
// the bits of one address family, built once from a key's allowlist and
// laid out flat in depth-first order so a lookup walks a few adjacent
// 24-byte nodes with no pointers to chase.
//
// The top of the trie is level-compressed (as in Nilsson and Karlsson's
// LC-trie): below the prefix every entry shares (the root's), a jump table
// indexed by the next stride bits holds, for each value of those bits, the
// best entry already decided and the node where the binary walk resumes;
// a slot none of whose addresses can match a deeper entry has no node, so
// most misses end at the table. A lookup therefore costs one compare, one
// table load and a node or two, instead of one node per level. The stride
// stays within one 64-bit word, so its bits are two shifts away.
//
// Addresses are held as 128-bit values (hi, lo); an IPv4 address occupies
// the top 32 bits of hi (trie4 then holds them as 32-bit values). A lookup
// compares the whole node prefix (at every IPv6 node, at every IPv4 entry
// node), so the skipped bits of path compression need no separate check.
type trie struct {
	nodes  []node // nodes[0] is the root; empty means no entries
	jump   []jumpSlot
	stride uint8 // bits the jump table resolves after the root's prefix; 0: no table
	// The jump index is word (0: hi, 1: lo) << shl >> shr: the stride's
	// bits, within one word, precomputed from the root's prefix length.
	word, shl, shr uint8
}

// jumpSlot is the state of the binary walk after the stride's bits.
type jumpSlot struct {
	entry int16 // best entry decided within the stride, or -1
	next  int16 // node to resume at, or -1: the lookup ends with entry
}

// node is one trie node (24 bytes). child indexes are -1 when absent;
// every leaf is an entry node (insert makes branch nodes with two
// children). A trie holds at most maxTrieEntries entries, so at most twice
// that many nodes, and int16 fits.
type node struct {
	hi, lo uint64
	bits   uint8    // prefix length of this node
	entry  int16    // index into the key's Allowlist, or -1 for a branch
	child  [2]int16 // next node for a 0 or 1 bit at position bits
}

// maxTrieEntries bounds the entries compiled per key; validation allows
// MaxEntries, far fewer.
const maxTrieEntries = 4096

// mask returns the top b bits set (b in 0..64); Go defines a shift by 64 as
// zero, so mask(0) is 0.
func mask(b uint8) uint64 { return ^uint64(0) << (64 - b) }

// bitAt returns bit i (0 = most significant) of the 128-bit value; the
// build uses it, the lookup reads the bit from prefixMasks.
func bitAt(hi, lo uint64, i uint8) uint8 {
	if i >= 64 {
		return uint8(lo>>(127-i)) & 1
	}
	return uint8(hi>>(63-i)) & 1
}

// prefixMasks[b] holds, for a b-bit prefix (b in 0..128; higher indexes are
// unused and spare the index a bounds check), the 128-bit mask of the
// prefix (hi, lo) and the 128-bit value with only bit b set (hi, lo; zero
// for b = 128): one load instead of the shifts and the range checks Go's
// shift semantics add to computing them, and the bit that picks a node's
// child without first picking the word it lies in.
var prefixMasks = func() (m [256]struct{ hi, lo, bitHi, bitLo uint64 }) {
	for b := range 129 {
		m[b].hi, m[b].lo = mask(uint8(min(b, 64))), mask(uint8(max(b, 64)-64))
		if b < 64 {
			m[b].bitHi = 1 << (63 - b)
		} else if b < 128 {
			m[b].bitLo = 1 << (127 - b)
		}
	}
	return m
}()

// matches reports whether (hi, lo) lies within the node's prefix.
func (n *node) matches(hi, lo uint64) bool {
	m := &prefixMasks[n.bits]
	return (hi^n.hi)&m.hi|(lo^n.lo)&m.lo == 0
}

// match returns the index of the longest entry containing addr, or -1 (see
// Matcher.Match). It does not allocate.
//
// Both families' walks are written out here, so that a lookup is one call
// of a function that calls nothing, which Go enters without a stack check
// or a frame to reserve. The
// address is read as netip holds it (addrWords): one compare of its handle
// tells IPv4, IPv6 without a zone and the rest apart, and an IPv4 address,
// like an IPv4-mapped IPv6 one, is the low 32 bits of lo.
//
// The IPv6 walk compares every node it reaches, branch nodes too (a branch
// node that does not match has no matching descendants), so that the best
// entry is kept without a branch, and it ends at a leaf without computing
// a child; prefixMasks has each node's mask and the bit that picks its
// child in one 32-byte row.
func (m *tries) match(addr netip.Addr) int {
	a := addrWords(&addr)
	hi, lo := a.hi, a.lo
	if a.z != zIPv6 || hi == 0 && lo>>32 == 0xffff {
		if a.z != zIPv4 && a.z != zIPv6 { // the zero Addr, or a zone
			return -1
		}
		t, v := &m.v4, uint32(lo)
		best, i := -1, 0
		if len(t.jump) > 0 {
			if (v^t.root)&t.rootMask != 0 {
				return -1
			}
			s := t.jump[int(v>>t.shift)&(len(t.jump)-1)]
			best, i = int(s.entry), int(s.next)
			if i < 0 {
				return best
			}
		} else if len(t.nodes) == 0 {
			return -1
		}
		for {
			n := &t.nodes[i]
			if n.entry >= 0 { // only entry nodes are compared
				if (v^n.addr)&n.mask != 0 {
					return best
				}
				best = int(n.entry)
			}
			c := n.child[v>>n.shift&1]
			if c < 0 {
				return best
			}
			i = int(c)
		}
	}
	t := &m.v6
	best, i := -1, 0
	if t.stride > 0 {
		w := hi
		if t.word != 0 {
			w = lo
		}
		s := t.jump[w<<(t.shl&63)>>(t.shr&63)]
		best, i = int(s.entry), int(s.next)
		// An entry decided within the stride holds only if the root's
		// prefix does (nodes below the table are compared whole).
		if best >= 0 && !t.nodes[0].matches(hi, lo) {
			return -1
		}
		if i < 0 {
			return best
		}
	} else if len(t.nodes) == 0 {
		return -1
	}
	for {
		n := &t.nodes[i]
		pm := &prefixMasks[n.bits]
		if (hi^n.hi)&pm.hi|(lo^n.lo)&pm.lo != 0 {
			return best
		}
		if n.entry >= 0 {
			best = int(n.entry)
		}
		if n.child == [2]int16{-1, -1} { // a leaf, as most nodes reached are
			return best
		}
		b := 0
		if hi&pm.bitHi|lo&pm.bitLo != 0 {
			b = 1
		}
		c := n.child[b]
		if c < 0 {
			return best
		}
		i = int(c)
	}
}

// trie4 is the IPv4 form of a trie, made from it once: the same nodes and
// jump table on 32-bit values, with each node's mask and branch shift
// precomputed into 16 bytes, so an IPv4 lookup is a handful of 32-bit
// operations.
type trie4 struct {
	nodes          []node4
	jump           []jumpSlot
	root, rootMask uint32 // the prefix every entry shares, checked before the jump
	shift          uint8  // the jump index is a >> shift, masked to the table
}

type node4 struct {
	addr, mask uint32
	child      [2]int16
	entry      int16
	shift      uint8 // 31 - prefix length: a >> shift & 1 picks the child
}

func newTrie4(t trie) trie4 {
	t4 := trie4{jump: t.jump, nodes: make([]node4, len(t.nodes))}
	for i, n := range t.nodes {
		t4.nodes[i] = node4{
			addr: uint32(n.hi >> 32), mask: uint32(mask(n.bits) >> 32),
			child: n.child, entry: n.entry,
			// A /32 has no children; any in-range shift will do.
			shift: (31 - n.bits) & 31,
		}
	}
	if len(t.jump) > 0 {
		t4.root, t4.rootMask = t4.nodes[0].addr, t4.nodes[0].mask
		t4.shift = 32 - t.nodes[0].bits - t.stride
	}
	return t4
}

// split128 returns the address as a 128-bit value in the trie's layout.
func split128(a netip.Addr) (hi, lo uint64) {
	if a.Is4() {
		b := a.As4()
		return uint64(binary.BigEndian.Uint32(b[:])) << 32, 0
	}
	w := addrWords(&a)
	return w.hi, w.lo
}

// netipAddr is the layout of a netip.Addr: the address as a uint128 (an
// IPv4 address in the low 32 bits of lo) and the handle z that says which
// kind of address it is: zero for the zero Addr, z4 for IPv4, z6noz for
// IPv6 without a zone, another handle for IPv6 with one (netip's own
// names). netip has no accessor for the two words, so addrWords reads them
// through unsafe; TestWords6Layout fails if netip's layout ever changes.
// Measured (BENCHMARKS.md, "IPv6 lookups"): through As16 the compiler
// copies the array once more, and the 16-byte load of that copy from two
// 8-byte stores cannot be store-forwarded, a stall that was a third of an
// IPv6 lookup; through AsSlice (no stall, the safe alternative) a lookup
// costs 3-12 % more CPU time than this read, which the compiler keeps in
// registers.
type netipAddr struct {
	hi, lo uint64
	z      unsafe.Pointer
}

func addrWords(a *netip.Addr) *netipAddr { return (*netipAddr)(unsafe.Pointer(a)) }

// zIPv4 and zIPv6 are netip's handles z4 and z6noz. A handle is
// canonical (unique.Make returns the same one for equal values), so an
// IPv6 address has an empty zone exactly when its handle is zIPv6: one
// compare instead of Is6 and Zone, which reads the zone through the
// handle.
var (
	zIPv4 = handle(netip.AddrFrom4([4]byte{}))
	zIPv6 = handle(netip.IPv6Unspecified())
)

func handle(a netip.Addr) unsafe.Pointer { return addrWords(&a).z }

// buildNode is the pointer form of a node, used only while building.
type buildNode struct {
	hi, lo uint64
	bits   uint8
	entry  int
	child  [2]*buildNode
}

// commonBits returns how many leading bits two 128-bit values share.
func commonBits(ahi, alo, bhi, blo uint64) uint8 {
	if x := ahi ^ bhi; x != 0 {
		return uint8(bits.LeadingZeros64(x))
	}
	return 64 + uint8(bits.LeadingZeros64(alo^blo))
}

// maskTo clears every bit after the first b.
func maskTo(hi, lo uint64, b uint8) (uint64, uint64) {
	if b <= 64 {
		return hi & mask(b), 0
	}
	return hi, lo & mask(b-64)
}

// arena hands out build nodes from one allocation: a trie of n entries
// needs at most 2n-1 nodes.
type arena []buildNode

func (a *arena) new(n buildNode) *buildNode {
	if len(*a) == cap(*a) {
		p := new(buildNode)
		*p = n
		return p
	}
	*a = append(*a, n)
	return &(*a)[len(*a)-1]
}

// insert adds the prefix (hi, lo)/b with the given entry index.
func insert(ar *arena, root **buildNode, hi, lo uint64, b uint8, entry int) {
	hi, lo = maskTo(hi, lo, b)
	p := root
	for {
		cur := *p
		if cur == nil {
			*p = ar.new(buildNode{hi: hi, lo: lo, bits: b, entry: entry})
			return
		}
		c := min(commonBits(hi, lo, cur.hi, cur.lo), b, cur.bits)
		switch {
		case c == cur.bits && c == b: // same prefix: keep the first entry
			if cur.entry < 0 {
				cur.entry = entry
			}
			return
		case c == cur.bits: // cur is an ancestor: descend
			p = &cur.child[bitAt(hi, lo, c)]
		case c == b: // the new prefix is an ancestor of cur
			n := ar.new(buildNode{hi: hi, lo: lo, bits: b, entry: entry})
			n.child[bitAt(cur.hi, cur.lo, c)] = cur
			*p = n
			return
		default: // they diverge at bit c: add a branch node
			bhi, blo := maskTo(hi, lo, c)
			br := ar.new(buildNode{hi: bhi, lo: blo, bits: c, entry: -1})
			br.child[bitAt(hi, lo, c)] = ar.new(buildNode{hi: hi, lo: lo, bits: b, entry: entry})
			br.child[bitAt(cur.hi, cur.lo, c)] = cur
			*p = br
			return
		}
	}
}

// flatten lays the build trie of entries prefixes, over an address family
// of width bits, out in depth-first order and adds its jump table.
func flatten(root *buildNode, entries int, width uint8) trie {
	if root == nil {
		return trie{}
	}
	// n prefixes make at most 2n-1 nodes (each insert adds a leaf and at
	// most one branch); sized exactly, 5 IPv6 entries fit the 224 B size
	// class rather than 240 B.
	nodes := make([]node, 0, 2*entries-1)
	var walk func(n *buildNode) int16
	walk = func(n *buildNode) int16 {
		i := len(nodes)
		nodes = append(nodes, node{hi: n.hi, lo: n.lo, bits: n.bits, entry: int16(n.entry), child: [2]int16{-1, -1}})
		for b, c := range n.child {
			if c != nil {
				ci := walk(c)
				nodes[i].child[b] = ci
			}
		}
		return int16(i)
	}
	walk(root)
	t := trie{nodes: nodes}
	t.buildJump(entries, width)
	return t
}

// buildJump adds the jump table when the trie has enough entries to profit:
// a stride of about log2(entries)+1 bits after the root's prefix.
func (t *trie) buildJump(entries int, width uint8) {
	if entries < 3 {
		return
	}
	root := &t.nodes[0]
	stride := min(uint8(bits.Len(uint(entries)))+1, 6, width-root.bits)
	if root.bits < 64 {
		stride = min(stride, 64-root.bits) // within one word: see jumpBits
	}
	if stride == 0 {
		return
	}
	t.stride = stride
	t.word, t.shl, t.shr = root.bits>>6, root.bits&63, 64-stride
	t.jump = make([]jumpSlot, 1<<stride)
	end := root.bits + stride
	for v := range t.jump {
		// The address whose bits after the root's prefix are v, then
		// zeros; the stride lies within one word.
		hi, lo := root.hi, root.lo
		if root.bits < 64 {
			hi |= uint64(v) << (64 - end)
		} else {
			lo |= uint64(v) << (128 - end)
		}
		slot := jumpSlot{entry: -1, next: -1}
		for i := int16(0); i >= 0; {
			n := &t.nodes[i]
			if n.bits >= end {
				// Path compression skips bits: a node below the
				// stride whose first bits differ from the slot's
				// holds nothing an address of the slot can match,
				// so the slot ends the lookup (most misses end so).
				if commonBits(hi, lo, n.hi, n.lo) >= end {
					slot.next = i
				}
				break
			}
			if !n.matches(hi, lo) {
				break
			}
			if n.entry >= 0 {
				slot.entry = n.entry
			}
			i = n.child[bitAt(hi, lo, n.bits)]
		}
		t.jump[v] = slot
	}
}

// buildTries compiles the entries of an allowlist live at Unix nanosecond
// time at into one trie per address family: disabled entries and those
// expiring at or before at are left out. The entries need not be
// canonical: each prefix is masked, and an IPv4-mapped prefix is treated as
// the IPv4 prefix it carries. Invalid prefixes are ignored (they never
// match).
func buildTries(entries []Entry, at int64) (v4 trie4, v6 trie) {
	var r4, r6 *buildNode
	var n4, n6 int
	ar := make(arena, 0, 2*len(entries))
	for i, e := range entries {
		p := e.Prefix
		if !p.IsValid() || i >= maxTrieEntries || e.Disabled || !e.ExpiresAt.IsZero() && e.ExpiresAt.UnixNano() <= at {
			continue
		}
		a, b := p.Addr(), p.Bits()
		if a.Is4In6() {
			if b < 96 {
				continue
			}
			a, b = a.Unmap(), b-96
		}
		hi, lo := split128(a)
		if a.Is4() {
			insert(&ar, &r4, hi, lo, uint8(b), i)
			n4++
		} else {
			insert(&ar, &r6, hi, lo, uint8(b), i)
			n6++
		}
	}
	return newTrie4(flatten(r4, n4, 32)), flatten(r6, n6, 128)
}
