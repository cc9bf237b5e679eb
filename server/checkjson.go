package server

import (
	"encoding/binary"
	"math/bits"
	"unicode/utf16"
	"unicode/utf8"
)

// checkRequest is the body of POST /v1/check. Its slices point into the
// request body (which parseCheckRequest unescapes in place) and are valid
// only while the request is being handled.
type checkRequest struct {
	key, ip, scope, method, path []byte
	seen                         uint8
}

const (
	fKey uint8 = 1 << iota
	fIP
	fScope
	fMethod
	fPath
)

// Messages for a malformed check request. Constants, so that a bad request
// costs no formatting.
const (
	msgNotObject   = "the body must be a JSON object such as {\"key\":\"kg_...\",\"ip\":\"203.0.113.5\"}"
	msgBadSyntax   = "the body is not valid JSON"
	msgBadString   = "the body contains an invalid JSON string (bad escape, control character or invalid UTF-8)"
	msgNotString   = "every field of a check request must be a JSON string (or null for the optional ones)"
	msgUnknown     = "unknown field: the fields of a check request are key, ip, scope, method and path"
	msgDuplicate   = "a field appears twice in the check request"
	msgTrailing    = "unexpected data after the JSON object"
	msgMissingKey  = "the field \"key\" is required"
	msgMissingIP   = "the field \"ip\" is required"
	msgInvalidIP   = "the field \"ip\" must be a plain IPv4 or IPv6 address such as 203.0.113.5 or 2001:db8::1"
	msgFieldTooBig = "a field of the check request is too long"
)

// maxCheckField bounds every field of a check request.
const maxCheckField = 4096

// parseCheckRequest parses the flat JSON object of a check request without
// allocating. String escapes are decoded in place, which is why b is
// modified. It returns "" on success, else a message saying what is wrong.
// Only string values are accepted (null for the optional fields scope,
// method and path); unknown and repeated fields are refused.
func parseCheckRequest(b []byte, r *checkRequest) string {
	*r = checkRequest{}
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return msgNotObject
	}
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		i++
	} else {
		for {
			if i >= len(b) || b[i] != '"' {
				return msgBadSyntax
			}
			// A name as it is usually sent, without escapes, is
			// recognised with its closing quote in place; anything
			// else is decoded first.
			field, next := knownName(b, i+1)
			if field == 0 {
				name, n, ok := unescapeString(b, i+1)
				if !ok {
					return msgBadString
				}
				field, next = fieldOf(string(name)), n
			}
			i = skipWS(b, next)
			if i >= len(b) || b[i] != ':' {
				return msgBadSyntax
			}
			i = skipWS(b, i+1)
			if field == 0 {
				return msgUnknown
			}
			var dst *[]byte
			switch field {
			case fKey:
				dst = &r.key
			case fIP:
				dst = &r.ip
			case fScope:
				dst = &r.scope
			case fMethod:
				dst = &r.method
			default:
				dst = &r.path
			}
			if r.seen&field != 0 {
				return msgDuplicate
			}
			r.seen |= field
			switch {
			case i < len(b) && b[i] == '"':
				v, next, ok := unescapeString(b, i+1)
				if !ok {
					return msgBadString
				}
				if len(v) > maxCheckField {
					return msgFieldTooBig
				}
				*dst = v
				i = next
			case hasLiteral(b, i, "null") && field&(fScope|fMethod|fPath) != 0:
				r.seen &^= field
				i += 4
			default:
				return msgNotString
			}
			i = skipWS(b, i)
			if i >= len(b) {
				return msgBadSyntax
			}
			if b[i] == '}' {
				i++
				break
			}
			if b[i] != ',' {
				return msgBadSyntax
			}
			i = skipWS(b, i+1)
		}
	}
	if skipWS(b, i) != len(b) {
		return msgTrailing
	}
	if r.seen&fKey == 0 {
		return msgMissingKey
	}
	if r.seen&fIP == 0 {
		return msgMissingIP
	}
	return ""
}

// fieldOf returns the field a decoded name stands for, 0 for none.
func fieldOf(name string) uint8 {
	switch name {
	case "key":
		return fKey
	case "ip":
		return fIP
	case "scope":
		return fScope
	case "method":
		return fMethod
	case "path":
		return fPath
	}
	return 0
}

// knownName recognises a field name written without escapes, starting at
// b[i] (just after its opening quote): it returns the field and the index
// just after the closing quote, or 0 when the name is none of them as
// written (an escaped spelling among them, which the caller decodes).
func knownName(b []byte, i int) (uint8, int) {
	if i >= len(b) {
		return 0, 0
	}
	// Each literal a constant, so that each test is a compare or two.
	switch b[i] {
	case 'k':
		if hasLiteral(b, i, `key"`) {
			return fKey, i + 4
		}
	case 'i':
		if hasLiteral(b, i, `ip"`) {
			return fIP, i + 3
		}
	case 's':
		if hasLiteral(b, i, `scope"`) {
			return fScope, i + 6
		}
	case 'm':
		if hasLiteral(b, i, `method"`) {
			return fMethod, i + 7
		}
	case 'p':
		if hasLiteral(b, i, `path"`) {
			return fPath, i + 5
		}
	}
	return 0, 0
}

func skipWS(b []byte, i int) int {
	// Every JSON space is at most ' ': one compare for the usual byte
	// that is none.
	for i < len(b) && b[i] <= ' ' && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

func hasLiteral(b []byte, i int, lit string) bool {
	return len(b)-i >= len(lit) && string(b[i:i+len(lit)]) == lit
}

// unescapeString decodes the JSON string starting at b[start] (just after
// the opening quote) in place. It returns the decoded bytes (a prefix of
// b[start:]), the index just after the closing quote, and whether the
// string was valid. Decoding never grows the text, so writing behind the
// read position is safe. Invalid UTF-8 is refused; an escaped lone
// surrogate becomes U+FFFD, as encoding/json does.
func unescapeString(b []byte, start int) ([]byte, int, bool) {
	// Printable ASCII without quote or backslash decodes to itself: skip
	// it without writing (for a key, an address, a method or a path, that
	// is usually the whole string).
	r := plainEnd(b, start)
	w := r
	for r < len(b) {
		c := b[r]
		switch {
		case jsonPlain[c]:
			// A run of plain bytes after an escape or a multi-byte
			// character moves down behind the decoded text.
			e := plainEnd(b, r)
			w += copy(b[w:], b[r:e])
			r = e
		case c == '"':
			return b[start:w], r + 1, true
		case c < 0x20:
			return nil, 0, false
		case c == '\\':
			if r+1 >= len(b) {
				return nil, 0, false
			}
			e := b[r+1]
			r += 2
			switch e {
			case '"', '\\', '/':
				b[w] = e
			case 'b':
				b[w] = '\b'
			case 'f':
				b[w] = '\f'
			case 'n':
				b[w] = '\n'
			case 'r':
				b[w] = '\r'
			case 't':
				b[w] = '\t'
			case 'u':
				cp, ok := hex4(b, r)
				if !ok {
					return nil, 0, false
				}
				r += 4
				ru := rune(cp)
				if utf16.IsSurrogate(ru) {
					ru = utf8.RuneError
					if r+6 <= len(b) && b[r] == '\\' && b[r+1] == 'u' {
						if lo, ok := hex4(b, r+2); ok {
							if d := utf16.DecodeRune(rune(cp), rune(lo)); d != utf8.RuneError {
								ru = d
								r += 6
							}
						}
					}
				}
				w += utf8.EncodeRune(b[w:], ru)
				continue
			default:
				return nil, 0, false
			}
			w++
		default: // not ASCII
			ru, size := utf8.DecodeRune(b[r:])
			if ru == utf8.RuneError && size == 1 {
				return nil, 0, false
			}
			copy(b[w:], b[r:r+size])
			w += size
			r += size
		}
	}
	return nil, 0, false
}

// jsonPlain is true for the bytes that stand for themselves in a JSON
// string, inside and out: printable ASCII (and DEL) but the quote and the
// backslash.
var jsonPlain = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// plainEnd returns the index of the first byte of b at or after i that is
// not plain (jsonPlain), or len(b). It tests eight bytes at a time: the
// bytes of a key, an address or a path are nearly all plain.
func plainEnd(b []byte, i int) int {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	s := b[i:]
	for ; len(s) >= 8; s = s[8:] {
		w := binary.LittleEndian.Uint64(s)
		// A byte's high bit is set in ctl when the byte is a control
		// character, in quote when it is '"', in bslash when it is '\\',
		// and in w when it is not ASCII. A borrow from one byte into the
		// next (higher) one starts only at such a byte, so the lowest bit
		// set in m is the first byte that is not plain.
		ctl := w - 0x20*ones
		quote := (w ^ '"'*ones) - ones
		bslash := (w ^ '\\'*ones) - ones
		if m := (ctl | quote | bslash | w) & highs; m != 0 {
			return len(b) - len(s) + bits.TrailingZeros64(m)/8
		}
	}
	for i = len(b) - len(s); i < len(b) && jsonPlain[b[i]]; i++ {
	}
	return i
}

func hex4(b []byte, i int) (uint16, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var v uint16
	for _, c := range b[i : i+4] {
		v <<= 4
		switch {
		case c >= '0' && c <= '9':
			v |= uint16(c - '0')
		case c >= 'a' && c <= 'f':
			v |= uint16(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			v |= uint16(c - 'A' + 10)
		default:
			return 0, false
		}
	}
	return v, true
}
