package server

import (
	"bytes"
	"encoding/json"
	"io"
	"net/netip"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/valyala/fasthttp"
)

// slowWalkXFF is the obviously-correct reference for walkXFF.
func slowWalkXFF(lines []string, trusted proxySet) netip.Addr {
	hops := strings.Split(strings.Join(lines, ","), ",")
	var last netip.Addr
	for i := len(hops) - 1; i >= 0; i-- {
		h := strings.Trim(hops[i], " \t")
		if h == "" || strings.Contains(h, "%") || len(h) > maxAddrText {
			return netip.Addr{}
		}
		a, err := netip.ParseAddr(h)
		if err != nil {
			return netip.Addr{}
		}
		a = a.Unmap()
		if !trusted.contains(a) {
			return a
		}
		last = a
	}
	return last
}

var fuzzTrusted = proxySet{prefixes: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8::/32"), netip.MustParsePrefix("192.0.2.1/32")}}

func TestWalkXFF(t *testing.T) {
	tests := []struct {
		lines []string
		want  string // "" is the invalid address
	}{
		{[]string{"203.0.113.5"}, "203.0.113.5"},
		{[]string{"203.0.113.5, 10.0.0.1"}, "203.0.113.5"},
		{[]string{"1.1.1.1, 203.0.113.5, 10.0.0.1, 192.0.2.1"}, "203.0.113.5"},
		{[]string{"1.1.1.1", "203.0.113.5,10.9.9.9"}, "203.0.113.5"},
		{[]string{"10.0.0.2", "10.0.0.3"}, "10.0.0.2"},
		{[]string{"203.0.113.5, junk, 10.0.0.1"}, ""},
		{[]string{"junk, 203.0.113.5"}, "203.0.113.5"},
		{[]string{""}, ""},
		{[]string{"203.0.113.5,"}, ""},
		{[]string{"::ffff:203.0.113.5"}, "203.0.113.5"},
		{[]string{"::ffff:10.0.0.1, 2001:db8::9"}, "10.0.0.1"},
		{[]string{"[2001:db9::1]"}, ""},
		{[]string{"\t203.0.113.5 \t"}, "203.0.113.5"},
	}
	for _, tt := range tests {
		lines := make([][]byte, len(tt.lines))
		for i, l := range tt.lines {
			lines[i] = []byte(l)
		}
		got := walkXFF(lines, fuzzTrusted)
		gs := ""
		if got.IsValid() {
			gs = got.String()
		}
		if gs != tt.want {
			t.Errorf("walkXFF(%q) = %q, want %q", tt.lines, gs, tt.want)
		}
		if ref := slowWalkXFF(tt.lines, fuzzTrusted); ref != got {
			t.Errorf("walkXFF(%q) = %v, reference %v", tt.lines, got, ref)
		}
	}
}

// FuzzWalkXFF checks the X-Forwarded-For walk against the reference.
func FuzzWalkXFF(f *testing.F) {
	for _, s := range []string{"203.0.113.5", "1.1.1.1, 10.0.0.1", "a,,b", "2001:db8::1%eth0, 10.0.0.1", "::ffff:10.1.1.1", "1.2.3.4:80"} {
		f.Add(s, "10.0.0.7")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		lines := []string{a, b}
		bl := [][]byte{[]byte(a), []byte(b)}
		got := walkXFF(bl, fuzzTrusted)
		if want := slowWalkXFF(lines, fuzzTrusted); got != want {
			t.Fatalf("walkXFF(%q) = %v, want %v", lines, got, want)
		}
		if got.IsValid() && (got.Is4In6() || got.Zone() != "") {
			t.Fatalf("walkXFF(%q) = %v: not canonical", lines, got)
		}
	})
}

// slowClientIP is the plain reference for clientIP with real-IP header
// lines reals and X-Forwarded-For lines xff.
func slowClientIP(xff, reals []string, peer netip.Addr, trusted proxySet) netip.Addr {
	if !trusted.contains(peer) {
		return peer
	}
	var real netip.Addr
	hasReal := false
	if len(reals) > 0 {
		for _, r := range reals[1:] {
			if strings.Trim(r, " \t") != strings.Trim(reals[0], " \t") {
				return netip.Addr{}
			}
		}
		real = slowWalkXFF(reals[:1], proxySet{}) // one address, nothing trusted
		if strings.Contains(reals[0], ",") {
			real = netip.Addr{}
		}
		hasReal = !real.IsValid() || !trusted.contains(real)
	}
	switch {
	case len(xff) == 0 && hasReal:
		return real
	case len(xff) == 0:
		return peer
	}
	a := slowWalkXFF(xff, trusted)
	if hasReal && a != real {
		return netip.Addr{}
	}
	return a
}

// clientIPOf is clientIP of the headers h, read as the check path reads
// them.
func clientIPOf(h *fasthttp.RequestHeader, from peer, trusted proxySet, realIP []string) netip.Addr {
	var f fwdHeaders
	f.read(h, compileLive(Config{RealIPHeaders: realIP}))
	return clientIP(&f, from, trusted)
}

// FuzzClientIP checks clientIP against the reference, and that a real-IP
// header never chooses an address the X-Forwarded-For walk did not: with
// X-Forwarded-For present the answer is the walk's or none, and a real-IP
// header naming a trusted proxy changes nothing.
func FuzzClientIP(f *testing.F) {
	f.Add("203.0.113.5, 10.0.0.1", "10.0.0.1", "")
	f.Add("203.0.113.5, 198.51.100.9, 10.0.0.1", "10.0.0.1", "")
	f.Add("203.0.113.5", "203.0.113.5", "203.0.113.6")
	f.Add("", "192.0.2.1", "")
	f.Add("2001:db8::1", "::ffff:10.0.0.3", "")
	f.Add("junk", "10.0.0.1", "10.0.0.1")
	peer := netip.MustParseAddr("10.0.0.9")
	f.Fuzz(func(t *testing.T, xff, real, real2 string) {
		if strings.ContainsAny(xff+real+real2, "\r\n\x00") {
			return // not a header line
		}
		var xffLines, reals []string
		if xff != "" {
			xffLines = []string{xff}
		}
		if real != "" {
			reals = append(reals, real)
			if real2 != "" {
				reals = append(reals, real2)
			}
		}
		var h fasthttp.RequestHeader
		for _, v := range xffLines {
			h.Add("X-Forwarded-For", v)
		}
		for _, v := range reals {
			h.Add("X-Real-IP", v)
		}
		got := clientIPOf(&h, peerAt(peer), fuzzTrusted, []string{"X-Real-IP"})
		if want := slowClientIP(xffLines, reals, peer, fuzzTrusted); got != want {
			t.Fatalf("clientIP(xff %q, real %q) = %v, want %v", xffLines, reals, got, want)
		}
		if len(xffLines) > 0 && got.IsValid() && got != slowWalkXFF(xffLines, fuzzTrusted) {
			t.Fatalf("clientIP(xff %q, real %q) = %v: not the walk's answer", xffLines, reals, got)
		}
		if len(reals) == 1 {
			if a, err := netip.ParseAddr(strings.Trim(real, " \t")); err == nil && fuzzTrusted.contains(a.Unmap()) && !strings.Contains(real, "%") {
				var h2 fasthttp.RequestHeader
				for _, v := range xffLines {
					h2.Add("X-Forwarded-For", v)
				}
				if without := clientIPOf(&h2, peerAt(peer), fuzzTrusted, []string{"X-Real-IP"}); without != got {
					t.Fatalf("X-Real-IP %q (a trusted proxy) changed the answer from %v to %v", real, without, got)
				}
			}
		}
	})
}

func TestParseCheckRequest(t *testing.T) {
	tests := []struct {
		in                           string
		key, ip, scope, method, path string
		bad                          bool
	}{
		{in: `{"key":"k","ip":"1.2.3.4"}`, key: "k", ip: "1.2.3.4"},
		{in: ` { "ip" : "::1" , "key":"k" ,"scope":"s","method":"GET","path":"/p" } `, key: "k", ip: "::1", scope: "s", method: "GET", path: "/p"},
		{in: `{"key":"\"\\\/\b\f\n\r\t","ip":"x"}`, key: "\"\\/\b\f\n\r\t", ip: "x"},
		{in: `{"key":"\u00e9\ud83d\ude00\ud800x","ip":"x"}`, key: "é😀\ufffdx", ip: "x"},
		{in: `{"key":"k","ip":"x","scope":null}`, key: "k", ip: "x"},
		{in: `{"key":null,"ip":"x"}`, bad: true},
		{in: `{"key":"k","ip":"x","scope":true}`, bad: true},
		{in: `{"key":"k","ip":"x"`, bad: true},
		{in: `{"key":"k\u00","ip":"x"}`, bad: true},
		{in: "{\"key\":\"k\x01\",\"ip\":\"x\"}", bad: true},
		{in: "{\"key\":\"k\xff\",\"ip\":\"x\"}", bad: true},
		{in: `{"key":"k","ip":"x"}{}`, bad: true},
		{in: `{"k\u0065y":"k","ip":"x"}`, key: "k", ip: "x"},
		{in: `{}`, bad: true},
		// Plain runs longer than a word after an escape or a multi-byte
		// character move down behind the decoded text.
		{in: `{"key":"\u006bg_ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789","ip":"x","path":"/a\/bcdefghijklmnop\/qrstuvwxyz"}`,
			key: "kg_ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", ip: "x", path: "/a/bcdefghijklmnop/qrstuvwxyz"},
		{in: `{"key":"é, then a plain tail longer than a word","ip":"x"}`, key: "é, then a plain tail longer than a word", ip: "x"},
		{in: "{\"key\":\"a long plain run, then a control\x1f character\",\"ip\":\"x\"}", bad: true},
		{in: "{\"key\":\"a long plain run, then invalid UTF-8 \xc3(\",\"ip\":\"x\"}", bad: true},
	}
	for _, tt := range tests {
		var r checkRequest
		msg := parseCheckRequest([]byte(tt.in), &r)
		if (msg != "") != tt.bad {
			t.Errorf("%s: message %q, want bad=%v", tt.in, msg, tt.bad)
			continue
		}
		if tt.bad {
			continue
		}
		got := []string{string(r.key), string(r.ip), string(r.scope), string(r.method), string(r.path)}
		want := []string{tt.key, tt.ip, tt.scope, tt.method, tt.path}
		for i := range got {
			if got[i] != want[i] {
				t.Errorf("%s: field %d = %q, want %q", tt.in, i, got[i], want[i])
			}
		}
	}
}

// refCheck decodes a check request with encoding/json, refusing what the
// hand-written parser refuses: duplicates, unknown fields, non-strings.
func refCheck(in []byte) (map[string]string, bool) {
	dec := json.NewDecoder(bytes.NewReader(in))
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		return nil, false
	}
	out := map[string]string{}
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return nil, false
		}
		name := k.(string)
		switch name {
		case "key", "ip", "scope", "method", "path":
		default:
			return nil, false
		}
		if _, dup := out[name]; dup {
			return nil, false
		}
		v, err := dec.Token()
		if err != nil {
			return nil, false
		}
		switch v := v.(type) {
		case string:
			if len(v) > maxCheckField {
				return nil, false
			}
			out[name] = v
		case nil:
			if name == "key" || name == "ip" {
				return nil, false
			}
			out[name] = ""
		default:
			return nil, false
		}
	}
	if t, err := dec.Token(); err != nil || t != json.Delim('}') {
		return nil, false
	}
	// Only the end of input may follow: trailing garbage is an error too,
	// not just a second value.
	if _, err := dec.Token(); err != io.EOF {
		return nil, false
	}
	if _, ok := out["key"]; !ok {
		return nil, false
	}
	if _, ok := out["ip"]; !ok {
		return nil, false
	}
	return out, true
}

// FuzzParseCheckRequest compares the allocation-free parser with
// encoding/json on valid UTF-8 input.
func FuzzParseCheckRequest(f *testing.F) {
	for _, s := range []string{`{"key":"k","ip":"1.2.3.4"}`, `{"key":"\ud83d\ude00","ip":"x","scope":null}`, `{"key":"a\nb","ip":"x","path":"/\u0000"}`, `{"ip":"x","key":"k","key":"j"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if !utf8.Valid(in) {
			return
		}
		want, wantOK := refCheck(in)
		var r checkRequest
		msg := parseCheckRequest(bytes.Clone(in), &r)
		if (msg == "") != wantOK {
			t.Fatalf("%q: parser message %q, encoding/json ok=%v", in, msg, wantOK)
		}
		if !wantOK {
			return
		}
		got := map[string]string{"key": string(r.key), "ip": string(r.ip), "scope": string(r.scope), "method": string(r.method), "path": string(r.path)}
		for k, v := range want {
			if got[k] != v {
				t.Fatalf("%q: %s = %q, encoding/json %q", in, k, got[k], v)
			}
		}
	})
}

func TestAppendJSONString(t *testing.T) {
	for _, s := range []string{"", "plain", "q\"b\\", "ctl\x00\x1f", "é😀", "bad\xffutf8", "<&>",
		"a longer plain run, then \"a quote\" and more plain text after it", "ctl in a long run\x01 then a long plain tail again", "é and a long plain tail after a multi-byte one"} {
		b := appendJSONString(nil, s)
		var back string
		if err := json.Unmarshal(b, &back); err != nil {
			t.Errorf("%q -> %s: %v", s, b, err)
			continue
		}
		if want := strings.ToValidUTF8(s, "\ufffd"); back != want {
			t.Errorf("%q -> %s -> %q", s, b, back)
		}
	}
}

// peerAt is a TCP peer at a.
func peerAt(a netip.Addr) peer { return peer{addr: a} }

// slowParseAddr is the reference for parseAddr: netip.ParseAddr on the
// trimmed text, zones and overlong text refused, IPv4-mapped unmapped.
func slowParseAddr(s string) (netip.Addr, bool) {
	s = strings.Trim(s, " \t")
	if s == "" || len(s) > maxAddrText || strings.Contains(s, "%") {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

var addrCases = []string{
	"203.0.113.5", "0.0.0.0", "255.255.255.255", "1.2.3.4", " 1.2.3.4\t", "10.0.0.1 ",
	"256.1.1.1", "1.2.3.256", "01.2.3.4", "1.2.3.04", "1.2.3.00", "00.1.2.3", "1.2.3", "1.2.3.4.5", ".1.2.3", "1.2.3.",
	"1..2.3", "1.2.3.4:80", "1.2.3.4%eth0", "1.2.3.4/24", "+1.2.3.4", "1.2.3.-4", "1.2.3.4x", "1.2.3.1000", "1.2.3.9999",
	"0x1.2.3.4", "1.2.3.4\x00", "１.2.3.4", "::ffff:1.2.3.4", "::1", "2001:db8::1", "fe80::1%eth0", "", " ", "1",
}

func TestParseAddr(t *testing.T) {
	for _, s := range addrCases {
		want, wantOK := slowParseAddr(s)
		if got, ok := parseAddr([]byte(s)); got != want || ok != wantOK {
			t.Errorf("parseAddr(%q) = %v, %v; want %v, %v", s, got, ok, want, wantOK)
		}
		plainOK := wantOK && strings.Trim(s, " \t") == s
		if got, ok := parsePlainAddr([]byte(s)); ok != plainOK || plainOK && got != want {
			t.Errorf("parsePlainAddr(%q) = %v, %v; want %v, %v", s, got, ok, want, plainOK)
		}
	}
}

// TestParseAddrFields compares parseAddr with netip over every dotted
// combination of fields around the rules IPv4 parsing has: empty, leading
// zeros, 255 and 256, too many digits, a sign, a stray character.
func TestParseAddrFields(t *testing.T) {
	fields := []string{"", "0", "00", "01", "1", "9", "10", "99", "100", "199", "249", "250", "255", "256", "300", "999", "1000", "0255", "-1", "x"}
	var join func(prefix string, n int)
	join = func(prefix string, n int) {
		if n == 0 {
			want, wantOK := slowParseAddr(prefix)
			if got, ok := parseAddr([]byte(prefix)); got != want || ok != wantOK {
				t.Fatalf("parseAddr(%q) = %v, %v; want %v, %v", prefix, got, ok, want, wantOK)
			}
			return
		}
		for _, f := range fields {
			if prefix == "" {
				join(f, n-1)
			} else {
				join(prefix+"."+f, n-1)
			}
		}
	}
	for n := 1; n <= 5; n++ {
		if n == 5 {
			fields = fields[:8]
		}
		join("", n)
	}
}

func FuzzParseAddr(f *testing.F) {
	for _, s := range addrCases {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, wantOK := slowParseAddr(s)
		if got, ok := parseAddr([]byte(s)); got != want || ok != wantOK {
			t.Fatalf("parseAddr(%q) = %v, %v; want %v, %v", s, got, ok, want, wantOK)
		}
		plainOK := wantOK && strings.Trim(s, " \t") == s
		if got, ok := parsePlainAddr([]byte(s)); ok != plainOK || plainOK && got != want {
			t.Fatalf("parsePlainAddr(%q) = %v, %v; want %v, %v", s, got, ok, want, plainOK)
		}
	})
}

// TestPlainEnd puts every byte value at every position of a run of plain
// bytes long enough for several words, and compares plainEnd with a
// byte-by-byte scan, from every start.
func TestPlainEnd(t *testing.T) {
	ref := func(b []byte, i int) int {
		for i < len(b) && jsonPlain[b[i]] {
			i++
		}
		return i
	}
	plain := []byte("abcdefghijklmnopqrstuvwxyz0123456789 ~\x7f!")
	for n := 0; n <= len(plain); n++ {
		for pos := 0; pos < n; pos++ {
			for c := range 256 {
				b := bytes.Clone(plain[:n])
				b[pos] = byte(c)
				for start := 0; start <= n; start++ {
					if got, want := plainEnd(b, start), ref(b, start); got != want {
						t.Fatalf("plainEnd(%q, %d) = %d, want %d", b, start, got, want)
					}
				}
			}
		}
	}
	// Two non-plain bytes in one word: the borrow of the lower one must
	// not hide it.
	for c := range 0x20 {
		b := []byte("abcdefghijklmnop")
		b[3], b[4] = byte(c), '"'
		if got := plainEnd(b, 0); got != 3 {
			t.Fatalf("plainEnd(%q) = %d, want 3", b, got)
		}
	}
}

// FuzzParseCheckMessages holds parseCheckRequest to the parser it
// replaced (refparse_test.go): the same message for every body, so that
// a malformed request is answered byte for byte as before, and the same
// fields for a valid one.
func FuzzParseCheckMessages(f *testing.F) {
	for _, s := range []string{`{"key":"k","ip":"1.2.3.4"}`, `{"k\u0065y":"k","ip":"x"}`, `{"extra" 1}`, `{"keys":"x"}`, `{"key" :"k","ip":"x","scope":null,"scope":"s"}`,
		`{"key":"a long plain key value, then \u00e9 and more","ip":"x"}`, "{\"key\":\"x\x01\"}", `{"method":1}`, `{"path":"\/a?b#c"}`, `{"ip":"x","key":"k","key":"j"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var got, want checkRequest
		gotMsg := parseCheckRequest(bytes.Clone(in), &got)
		wantMsg := refParseCheckRequest(bytes.Clone(in), &want)
		if gotMsg != wantMsg {
			t.Fatalf("%q: message %q, the reference parser says %q", in, gotMsg, wantMsg)
		}
		if gotMsg != "" {
			return
		}
		for _, p := range [][2][]byte{{got.key, want.key}, {got.ip, want.ip}, {got.scope, want.scope}, {got.method, want.method}, {got.path, want.path}} {
			if !bytes.Equal(p[0], p[1]) {
				t.Fatalf("%q: field %q, the reference parser has %q", in, p[0], p[1])
			}
		}
		if got.seen != want.seen {
			t.Fatalf("%q: seen %b, the reference parser has %b", in, got.seen, want.seen)
		}
	})
}

func TestStripQuery(t *testing.T) {
	for _, s := range []string{"", "/", "/a", "/a?b", "/a#b", "/a?b#c", "/a#b?c", "?", "#", "/a??", "/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p?x#y", "/long/path/before/a#fragment?then"} {
		want := s
		if i := strings.IndexAny(s, "?#"); i >= 0 {
			want = s[:i]
		}
		if got := string(stripQuery([]byte(s))); got != want {
			t.Errorf("stripQuery(%q) = %q, want %q", s, got, want)
		}
	}
}
