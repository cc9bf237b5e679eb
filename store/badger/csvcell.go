package badgerstore

import "bytes"

// appendCSVField appends v as one CSV cell, quoted if it holds a comma,
// quote, CR or LF or starts with a space (RFC 4180), and safe to open in a
// spreadsheet whichever of comma, semicolon or tab it splits lines on
// (locales whose list separator is ";" split on it, and so do import
// dialogs with "tab" ticked): every place where a field could begin, the
// cell's start and the byte after each ',', ';', tab, CR or LF inside it,
// gets a ' before a byte a spreadsheet reads as the start of a formula
// (=, +, -, @, tab, CR; OWASP), or before quotes followed by one (a
// spreadsheet strips a quote that opens a field). So
// "/x;=2+3;@SUM(1)" is written "/x;'=2+3;'@SUM(1)".
//
// A ' is inserted rather than the separator replaced: the path stays
// readable and the change is visible where it is made, and ordinary
// paths (";jsessionid=", "a,b", "-" inside a segment) are untouched,
// because a separator is followed by a dangerous byte only in a crafted
// value.
func appendCSVField(b, v []byte) []byte {
	quote := len(v) > 0 && v[0] == ' ' || bytes.ContainsAny(v, ",\"\r\n")
	if !quote && !needsGuard(v) {
		return append(b, v...)
	}
	if quote {
		b = append(b, '"')
	}
	for j, c := range v {
		if guardAt(v, j) {
			b = append(b, '\'')
		}
		if c == '"' {
			b = append(b, '"')
		}
		b = append(b, c)
	}
	if quote {
		b = append(b, '"')
	}
	return b
}

func needsGuard(v []byte) bool {
	for j := range v {
		if guardAt(v, j) {
			return true
		}
	}
	return false
}

// guardAt reports whether v[j] begins a field, when the line is split on
// any of the separators, that a spreadsheet reads as a formula: a
// dangerous byte, or quotes (which it strips) followed by one.
func guardAt(v []byte, j int) bool {
	if j > 0 {
		switch v[j-1] {
		case ',', ';', '\t', '\r', '\n':
		default:
			return false
		}
	}
	k := j
	for k < len(v) && v[k] == '"' {
		k++
	}
	return k < len(v) && formulaStart(v[k])
}

func formulaStart(c byte) bool {
	return c == '=' || c == '+' || c == '-' || c == '@' || c == '\t' || c == '\r'
}
