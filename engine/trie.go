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
// compares the whole node prefix at every entry node, so the skipped bits of
// path compression need no separate check.
type trie struct {
	nodes  []node // nodes[0] is the root; empty means no entries
	jump   []jumpSlot
	skip   uint8 // bits before the jump table's stride: the root's prefix length
	stride uint8 // 0: no jump table
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

// half returns hi for bit positions 0..63 and lo for 64..127 (and for
// 128: callers ask that only of nodes without children), without a
// branch: which half holds a bit is as random as the addresses are, and the
// compiler makes a jump of the plain if.
func half(hi, lo uint64, i uint8) uint64 {
	return hi ^ (hi^lo)&-uint64(i>>6&1)
}

// bitAt returns bit i (0 = most significant) of the 128-bit value.
func bitAt(hi, lo uint64, i uint8) uint8 {
	return uint8(half(hi, lo, i)>>(63-i&63)) & 1
}

// jumpBits returns the n bits (1..63) after the first p of the 128-bit
// value; buildJump keeps them within one word. The shift counts are below
// 64 by construction: the &63 tells the compiler so, sparing the zeroing
// Go does for larger counts.
func jumpBits(hi, lo uint64, p, n uint8) int {
	return int(half(hi, lo, p) << (p & 63) >> ((64 - n) & 63))
}

// prefixMasks[b] is the 128-bit mask (hi, lo) of a b-bit prefix, b in
// 0..128 (higher indexes are unused): one load instead of the two shifts
// and the range checks Go's shift semantics add to computing it.
var prefixMasks = func() (m [256][2]uint64) {
	for b := range 129 {
		m[b] = [2]uint64{mask(uint8(min(b, 64))), mask(uint8(max(b, 64) - 64))}
	}
	return m
}()

// matches reports whether (hi, lo) lies within the node's prefix.
func (n *node) matches(hi, lo uint64) bool {
	m := &prefixMasks[n.bits]
	return (hi^n.hi)&m[0]|(lo^n.lo)&m[1] == 0
}

// walk returns the index of the longest entry containing (hi, lo) at or
// below node i, or best if none does; -1 for an empty trie. tries.match
// starts it: at the root (i 0, best -1) without a jump table, else after
// the root's compare and the jump table, where most misses end without a
// call. It does not allocate.
func (t *trie) walk(hi, lo uint64, best, i int) int {
	nodes := t.nodes
	if len(nodes) == 0 {
		return -1
	}
	for {
		n := &nodes[i]
		// Only entry nodes are compared: a branch node that does not
		// match has no matching descendants, and the next entry node
		// below it (every leaf is one) fails its compare.
		if n.entry >= 0 {
			if !n.matches(hi, lo) {
				return best
			}
			best = int(n.entry)
		}
		c := n.child[bitAt(hi, lo, n.bits)]
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
		t4.shift = 32 - t.skip - t.stride
	}
	return t4
}

// lookup returns the index of the longest entry containing a, or -1. It
// does not allocate.
func (t *trie4) lookup(a uint32) int {
	nodes := t.nodes
	if len(nodes) == 0 {
		return -1
	}
	best, i := -1, 0
	if len(t.jump) > 0 {
		if (a^t.root)&t.rootMask != 0 {
			return -1
		}
		s := t.jump[int(a>>t.shift)&(len(t.jump)-1)]
		best, i = int(s.entry), int(s.next)
		if i < 0 {
			return best
		}
	}
	for {
		n := &nodes[i]
		if n.entry >= 0 { // as in trie.walk, only entry nodes are compared
			if (a^n.addr)&n.mask != 0 {
				return best
			}
			best = int(n.entry)
		}
		c := n.child[a>>n.shift&1]
		if c < 0 {
			return best
		}
		i = int(c)
	}
}

// split128 returns the address as a 128-bit value in the trie's layout.
func split128(a netip.Addr) (hi, lo uint64) {
	if a.Is4() {
		b := a.As4()
		return uint64(binary.BigEndian.Uint32(b[:])) << 32, 0
	}
	return words6(a)
}

// words6 returns an IPv6 address as two words, the first 8 bytes
// big-endian in hi. netip.Addr holds exactly that (its first field is a
// uint128 of hi and lo) but has no accessor, so words6 reads it through
// unsafe; TestWords6Layout fails if netip's layout ever changes. Measured
// (BENCHMARKS.md, "IPv6 lookups"): through As16 the compiler copies the
// array once more, and the 16-byte load of that copy from two 8-byte stores
// cannot be store-forwarded, a stall that was a third of an IPv6 lookup;
// through AsSlice (no stall, the safe alternative) a lookup costs 3-12 %
// more CPU time than this read, which the compiler keeps in registers.
func words6(a netip.Addr) (hi, lo uint64) {
	w := (*[2]uint64)(unsafe.Pointer(&a))
	return w[0], w[1]
}

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
	t.skip, t.stride = root.bits, stride
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
