package badgerstore

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"

	"github.com/keygate/keygate/store"

	"github.com/keygate/keygate/engine"
)

// Keys and changes are stored in a compact binary form that starts with a
// version byte, so that the format can change and old data still be read.
//
// key (version 1):
//
//	version byte
//	id, name, description: string
//	scopes: uvarint count, then strings
//	hash: 32 bytes
//	hint: string
//	created, expires, revoked: time
//	flags: byte (bit 0: ReportOnly)
//	allowlist: uvarint count, then entries
//	(version 2) previous secret: 32 bytes hash, hint string, expires time
//
// entry: id string, prefix (byte 4 or 16, address bytes, byte bits),
// label string, expires time, (version 2) flags byte (bit 0: Disabled).
//
// Version 1 is version 2 without the entry flags and the previous secret;
// it is still read.
//
// string: uvarint length, bytes. time: byte 0 for the zero time, else
// byte 1, varint Unix seconds, uvarint nanoseconds.
//
// change (version 1): version byte, uvarint seq, time, actor, action,
// key id strings, before and after each as byte 0 (none) or 1 followed by
// uvarint length and an encoded key.
const (
	keyVersion    = 2
	keyVersionV1  = 1
	changeVersion = 1
)

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(b, 0)
	}
	b = append(b, 1)
	b = binary.AppendVarint(b, t.Unix())
	return binary.AppendUvarint(b, uint64(t.Nanosecond()))
}

func encodeKey(b []byte, k *engine.Key) []byte {
	b = append(b, keyVersion)
	b = appendString(b, k.ID)
	b = appendString(b, k.Name)
	b = appendString(b, k.Description)
	b = binary.AppendUvarint(b, uint64(len(k.Scopes)))
	for _, s := range k.Scopes {
		b = appendString(b, s)
	}
	b = append(b, k.Hash[:]...)
	b = appendString(b, k.Hint)
	b = appendTime(b, k.CreatedAt)
	b = appendTime(b, k.ExpiresAt)
	b = appendTime(b, k.RevokedAt)
	var flags byte
	if k.ReportOnly {
		flags |= 1
	}
	b = append(b, flags)
	b = binary.AppendUvarint(b, uint64(len(k.Allowlist)))
	for i := range k.Allowlist {
		e := &k.Allowlist[i]
		b = appendString(b, e.ID)
		a := e.Prefix.Addr()
		if a.Is4() {
			b = append(b, 4)
			a4 := a.As4()
			b = append(b, a4[:]...)
		} else {
			b = append(b, 16)
			a16 := a.As16()
			b = append(b, a16[:]...)
		}
		b = append(b, byte(e.Prefix.Bits()))
		b = appendString(b, e.Label)
		b = appendTime(b, e.ExpiresAt)
		var ef byte
		if e.Disabled {
			ef |= 1
		}
		b = append(b, ef)
	}
	b = append(b, k.PrevHash[:]...)
	b = appendString(b, k.PrevHint)
	return appendTime(b, k.PrevExpiresAt)
}

// decoder reads the binary forms; the first error sticks and later reads
// return zero values.
type decoder struct {
	b   []byte
	err error
	// str, when set, holds the whole input as one string; strings are
	// then cut from it instead of allocated one by one, which makes
	// loading a million keys several times faster. They keep the whole
	// input alive, which for a key is about the size of its strings.
	str string
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: truncated or invalid %s", store.ErrCorrupt, what)
	}
	d.b = nil
}

func (d *decoder) byte() byte {
	if len(d.b) < 1 {
		d.fail("byte")
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("uvarint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes(n uint64) []byte {
	if uint64(len(d.b)) < n {
		d.fail("bytes")
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) string() string {
	n := d.uvarint()
	if d.str == "" {
		return string(d.bytes(n))
	}
	off := len(d.str) - len(d.b)
	if d.bytes(n) == nil {
		return ""
	}
	return d.str[off : off+int(n)]
}

// count reads a length that must not exceed the bytes left, each element
// taking at least min bytes, so that garbage cannot make us allocate much.
func (d *decoder) count(min int) int {
	n := d.uvarint()
	if n > uint64(len(d.b)/min) {
		d.fail("count")
		return 0
	}
	return int(n)
}

func (d *decoder) time() time.Time {
	switch d.byte() {
	case 0:
		return time.Time{}
	case 1:
		sec := d.varint()
		ns := d.uvarint()
		if ns >= 1e9 {
			d.fail("time")
			return time.Time{}
		}
		return time.Unix(sec, int64(ns)).UTC()
	default:
		d.fail("time")
		return time.Time{}
	}
}

func decodeKey(b []byte) (*engine.Key, error) {
	d := decoder{b: b, str: string(b)}
	k, err := d.key()
	if err == nil && len(d.b) != 0 {
		err = fmt.Errorf("%w: trailing bytes after key", store.ErrCorrupt)
	}
	return k, err
}

func (d *decoder) key() (*engine.Key, error) {
	v := d.byte()
	if v != keyVersion && v != keyVersionV1 && d.err == nil {
		return nil, fmt.Errorf("%w: unknown key format version %d", store.ErrCorrupt, v)
	}
	k := &engine.Key{}
	k.ID = d.string()
	k.Name = d.string()
	k.Description = d.string()
	if n := d.count(1); n > 0 {
		k.Scopes = make([]string, n)
		for i := range k.Scopes {
			k.Scopes[i] = d.string()
		}
	}
	copy(k.Hash[:], d.bytes(uint64(len(k.Hash))))
	k.Hint = d.string()
	k.CreatedAt = d.time()
	k.ExpiresAt = d.time()
	k.RevokedAt = d.time()
	k.ReportOnly = d.byte()&1 != 0
	if n := d.count(7); n > 0 {
		k.Allowlist = make([]engine.Entry, n)
		for i := range k.Allowlist {
			e := &k.Allowlist[i]
			e.ID = d.string()
			var a netip.Addr
			switch alen := d.byte(); alen {
			case 4:
				if b := d.bytes(4); b != nil {
					a = netip.AddrFrom4([4]byte(b))
				}
			case 16:
				if b := d.bytes(16); b != nil {
					a = netip.AddrFrom16([16]byte(b))
				}
			default:
				d.fail("entry address")
			}
			if d.err != nil {
				break
			}
			p, err := a.Prefix(int(d.byte()))
			if err != nil {
				d.fail("entry prefix")
			}
			e.Prefix = p
			e.Label = d.string()
			e.ExpiresAt = d.time()
			if v >= keyVersion {
				e.Disabled = d.byte()&1 != 0
			}
		}
	}
	if v >= keyVersion {
		copy(k.PrevHash[:], d.bytes(uint64(len(k.PrevHash))))
		k.PrevHint = d.string()
		k.PrevExpiresAt = d.time()
	}
	if d.err != nil {
		return nil, d.err
	}
	return k, nil
}

func encodeChange(b []byte, c *store.Change) []byte {
	b = append(b, changeVersion)
	b = binary.AppendUvarint(b, c.Seq)
	b = appendTime(b, c.Time)
	b = appendString(b, c.Actor)
	b = appendString(b, c.Action)
	b = appendString(b, c.KeyID)
	for _, k := range [2]*engine.Key{c.Before, c.After} {
		if k == nil {
			b = append(b, 0)
			continue
		}
		b = append(b, 1)
		// Length-prefixed so a reader can skip a key it cannot decode.
		kb := encodeKey(nil, k)
		b = binary.AppendUvarint(b, uint64(len(kb)))
		b = append(b, kb...)
	}
	return b
}

func decodeChange(b []byte) (store.Change, error) {
	d := decoder{b: b}
	var c store.Change
	if v := d.byte(); v != changeVersion && d.err == nil {
		return c, fmt.Errorf("%w: unknown change format version %d", store.ErrCorrupt, v)
	}
	c.Seq = d.uvarint()
	c.Time = d.time()
	c.Actor = d.string()
	c.Action = d.string()
	c.KeyID = d.string()
	for _, kp := range [2]**engine.Key{&c.Before, &c.After} {
		switch d.byte() {
		case 0:
		case 1:
			kb := d.bytes(d.uvarint())
			if d.err != nil {
				break
			}
			k, err := decodeKey(kb)
			if err != nil {
				return c, err
			}
			*kp = k
		default:
			d.fail("change key flag")
		}
	}
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%w: trailing bytes after change", store.ErrCorrupt)
	}
	return c, d.err
}
