package server

import (
	"unicode/utf16"
	"unicode/utf8"
)

// This file keeps the check request parser as it was before the check
// path was slimmed (main at 4c841b7), as the reference FuzzParseCheckMessages
// holds the current one to: the same message for every input, and the
// same fields when it is valid.

// refParseCheckRequest parses the flat JSON object of a check request without
// allocating. String escapes are decoded in place, which is why b is
// modified. It returns "" on success, else a message saying what is wrong.
// Only string values are accepted (null for the optional fields scope,
// method and path); unknown and repeated fields are refused.
func refParseCheckRequest(b []byte, r *checkRequest) string {
	*r = checkRequest{}
	i := refSkipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return msgNotObject
	}
	i = refSkipWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		i++
	} else {
		for {
			if i >= len(b) || b[i] != '"' {
				return msgBadSyntax
			}
			name, next, ok := refUnescapeString(b, i+1)
			if !ok {
				return msgBadString
			}
			i = refSkipWS(b, next)
			if i >= len(b) || b[i] != ':' {
				return msgBadSyntax
			}
			i = refSkipWS(b, i+1)
			var field uint8
			var dst *[]byte
			switch string(name) {
			case "key":
				field, dst = fKey, &r.key
			case "ip":
				field, dst = fIP, &r.ip
			case "scope":
				field, dst = fScope, &r.scope
			case "method":
				field, dst = fMethod, &r.method
			case "path":
				field, dst = fPath, &r.path
			default:
				return msgUnknown
			}
			if r.seen&field != 0 {
				return msgDuplicate
			}
			r.seen |= field
			switch {
			case i < len(b) && b[i] == '"':
				v, next, ok := refUnescapeString(b, i+1)
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
			i = refSkipWS(b, i)
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
			i = refSkipWS(b, i+1)
		}
	}
	if refSkipWS(b, i) != len(b) {
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

func refSkipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// unescapeString decodes the JSON string starting at b[start] (just after
// the opening quote) in place. It returns the decoded bytes (a prefix of
// b[start:]), the index just after the closing quote, and whether the
// string was valid. Decoding never grows the text, so writing behind the
// read position is safe. Invalid UTF-8 is refused; an escaped lone
// surrogate becomes U+FFFD, as encoding/json does.
func refUnescapeString(b []byte, start int) ([]byte, int, bool) {
	// Printable ASCII without quote or backslash decodes to itself: skip
	// it without writing (for a key, an address, a method or a path, that
	// is usually the whole string).
	r := start
	for r < len(b) && jsonPlain[b[r]] {
		r++
	}
	w := r
	for r < len(b) {
		c := b[r]
		switch {
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
		case c < utf8.RuneSelf:
			b[w] = c
			w++
			r++
		default:
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
