package storetest

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"time"

	"github.com/keygate/keygate/engine"
	"github.com/keygate/keygate/usagelog"
)

// Time returns a time as a store gives it back: UTC, no monotonic
// reading.
func Time(sec int64, ns int64) time.Time { return time.Unix(sec, ns).UTC() }

// Key returns test key number i, its fields drawn from r: some expiring,
// some revoked, some without scopes, allowlists of 0 to 5 entries, v4 and
// v6. Keys with different i have different ids and CreatedAt ordered by i.
func Key(r *rand.Rand, i int) *engine.Key {
	k := &engine.Key{
		ID:          fmt.Sprintf("key_%016d", i),
		Name:        fmt.Sprintf("key number %d", i),
		Description: "a test key, ümlaut and all",
		Scopes:      []string{"read", "write"},
		Hint:        "kg_AbCdEfGh",
		CreatedAt:   Time(1_700_000_000+int64(i), int64(r.IntN(1e9))),
	}
	for j := range k.Hash {
		k.Hash[j] = byte(r.Uint32())
	}
	if i%3 == 0 {
		k.ExpiresAt = Time(1_800_000_000, 5)
	}
	if i%5 == 0 {
		k.RevokedAt = Time(1_750_000_000, 0)
		k.ReportOnly = true
	}
	if i%7 == 0 {
		k.Scopes = nil
	}
	for j := range i % 6 {
		var p netip.Prefix
		if j%2 == 0 {
			p = netip.PrefixFrom(netip.AddrFrom4([4]byte{203, 0, 113, byte(j)}), 32)
		} else {
			p = netip.MustParsePrefix(fmt.Sprintf("2001:db8:%x::/48", j))
		}
		k.Allowlist = append(k.Allowlist, engine.Entry{ID: fmt.Sprintf("ent_%012d", j), Prefix: p, Label: "office " + fmt.Sprint(j)})
	}
	if len(k.Allowlist) > 0 && i%4 == 0 {
		k.Allowlist[0].ExpiresAt = Time(1_900_000_000, 1)
	}
	if len(k.Allowlist) > 1 && i%3 == 0 {
		k.Allowlist[1].Disabled = true
	}
	if i%2 == 1 {
		for j := range k.PrevHash {
			k.PrevHash[j] = byte(r.Uint32())
		}
		k.PrevHint, k.PrevExpiresAt = "kg_PrEvIoUs", Time(1_850_000_000, 7)
	}
	return k
}

var (
	// KeyIDs are the key ids of RandEntry's records ("" is an unknown
	// key; "=key_e" needs CSV neutralising).
	KeyIDs       = []string{"key_a", "key_b", "key_c", "key_d", "=key_e", ""}
	testMethods  = []string{"GET", "POST", "get", "DELETE", "PATCH"}
	testStatuses = []int{200, 200, 200, 401, 403, 404, 500, 503}
	testCodes    = []string{"", "INVALID_KEY", "IP_NOT_ALLOWED", "-1+1"}
	testHints    = []string{"", "kg_AbCdEfGh", "kg_PrEvIoUs", "=kg_formula"}
	testEntries  = []string{"", "ent_1", "ent_2"}
	pathChars    = []byte("abc/?=&-+@,\"\n\r\t 019é")
	// KeyNames name some of KeyIDs for an export's key_name column: hostile
	// names (a formula, separators, quotes, line breaks); key_d has no name
	// (a key no longer stored) and neither has "".
	KeyNames = map[string]string{
		"key_a":  "=cmd|' /C calc'!A0",
		"key_b":  "billing; prod, \"eu\"",
		"key_c":  "line\r\n@one\ttwo",
		"=key_e": "-1+1",
	}
)

// T0 is the start of the hour RandEntry's records fall in. It is recent,
// so that a backend's retention keeps the test records.
var T0 = time.Now().Add(-2 * time.Hour).Unix()

// RandEntry returns a random check record within the hour after T0, with
// paths that need CSV quoting and, now and then, one longer than
// usagelog.MaxPath.
func RandEntry(r *rand.Rand) *usagelog.Entry {
	e := &usagelog.Entry{
		Time:    time.Unix(T0+r.Int64N(3600), r.Int64N(1e9)),
		KeyID:   KeyIDs[r.IntN(len(KeyIDs))],
		EntryID: testEntries[r.IntN(len(testEntries))],
		Method:  []byte(testMethods[r.IntN(len(testMethods))]),
		Status:  testStatuses[r.IntN(len(testStatuses))],
		Code:    testCodes[r.IntN(len(testCodes))],
		Latency: time.Duration(r.Int64N(5e6)),
		Hint:    testHints[r.IntN(len(testHints))],
	}
	switch r.IntN(4) {
	case 0:
		e.IP = netip.AddrFrom4([4]byte{203, 0, 113, byte(r.IntN(256))})
	case 1:
		e.IP = netip.MustParseAddr("2001:db8::1")
	case 2:
		// v4-mapped: an ip filter finds it by its v4 address too.
		e.IP = netip.AddrFrom16(netip.AddrFrom4([4]byte{203, 0, 113, byte(r.IntN(16))}).As16())
	}
	p := make([]byte, r.IntN(40))
	for i := range p {
		p[i] = pathChars[r.IntN(len(pathChars))]
	}
	// encoding/csv reads CRLF inside a quoted field as LF; keep them out.
	e.Path = bytes.ReplaceAll(p, []byte("\r\n"), []byte("\r."))
	if r.IntN(50) == 0 {
		e.Path = bytes.Repeat([]byte("x"), usagelog.MaxPath+10)
	}
	return e
}

// RecordOf is what a query must return for e, appended to a store that
// names its records node.
func RecordOf(e *usagelog.Entry, node string) usagelog.Record {
	r := usagelog.Record{
		Time:       time.Unix(0, e.Time.UnixNano()).UTC(),
		KeyID:      e.KeyID,
		Method:     string(e.Method),
		Path:       string(e.Path[:min(len(e.Path), usagelog.MaxPath)]),
		Status:     e.Status,
		Code:       e.Code,
		EntryID:    e.EntryID,
		LatencyUS:  e.Latency.Microseconds(),
		SecretHint: e.Hint,
		ReportOnly: usagelog.IsReportOnly(e.Status, e.Code),
		Node:       node,
	}
	if e.IP.IsValid() {
		r.IP = e.IP.String()
	}
	return r
}

// BruteForce is the reference query: of all (in the order appended),
// every record f selects, newest first, checked one by one.
func BruteForce(all []usagelog.Record, f usagelog.Filter) []usagelog.Record {
	lo, hi, _ := usagelog.ParseStatusFilter(f.Status)
	var out []usagelog.Record
	for i := len(all) - 1; i >= 0; i-- {
		r := all[i]
		if f.KeyID != "" && r.KeyID != f.KeyID ||
			f.Method != "" && !strings.EqualFold(r.Method, f.Method) ||
			hi != 0 && (r.Status < lo || r.Status > hi) ||
			f.Code != "" && r.Code != strings.TrimSuffix(f.Code, "none") ||
			!f.From.IsZero() && r.Time.Before(f.From) ||
			!f.To.IsZero() && !r.Time.Before(f.To) ||
			f.IP != "" && (r.IP == "" || netip.MustParseAddr(r.IP).Unmap() != netip.MustParseAddr(f.IP).Unmap()) ||
			!strings.HasPrefix(r.Path, f.PathPrefix) {
			continue
		}
		out = append(out, r)
	}
	return out
}

// RandFilter returns a random valid filter over RandEntry's records
// (Limit and Cursor unset).
func RandFilter(r *rand.Rand) usagelog.Filter {
	var f usagelog.Filter
	if r.IntN(2) == 0 {
		f.KeyID = KeyIDs[r.IntN(len(KeyIDs))]
		if r.IntN(10) == 0 {
			f.KeyID = "key_absent"
		}
	}
	if r.IntN(3) == 0 {
		f.Method = []string{"get", "GET", "Post", "delete", "OPTIONS"}[r.IntN(5)]
	}
	if r.IntN(3) == 0 {
		f.Status = []string{"200", "403", "4xx", "5XX", "2xx", "302"}[r.IntN(6)]
	}
	if r.IntN(4) == 0 {
		f.Code = []string{"none", "IP_NOT_ALLOWED", "INVALID_KEY", "BAD_REQUEST"}[r.IntN(4)]
	}
	if r.IntN(4) == 0 {
		f.IP = []string{"203.0.113.7", "::ffff:203.0.113.9", "2001:db8::1", "2001:0db8:0::1", "198.51.100.1"}[r.IntN(5)]
	}
	if r.IntN(4) == 0 {
		f.PathPrefix = []string{"a", "b/", "/", "c?=", "\"", "é", "\n", "xxxxxxxx", "9"}[r.IntN(9)]
	}
	if r.IntN(3) == 0 {
		f.From = time.Unix(T0+r.Int64N(3600), 0)
	}
	if r.IntN(3) == 0 {
		f.To = time.Unix(T0+r.Int64N(3600), 0)
		if f.To.Before(f.From) {
			f.From, f.To = f.To, f.From
		}
		if f.To.Equal(f.From) {
			f.To = f.To.Add(time.Second)
		}
	}
	return f
}

// CSVCell is what a spreadsheet-safe export writes for s, as
// encoding/csv reads it back: a ' before each byte that begins a field
// when the line is split on ',', ';' or tab (or broken at CR/LF) and that
// a spreadsheet reads as a formula, behind any quotes it would strip.
func CSVCell(s string) string {
	var b strings.Builder
	for j := 0; j < len(s); j++ {
		start := j == 0 || strings.IndexByte(",;\t\r\n", s[j-1]) >= 0
		if rest := strings.TrimLeft(s[j:], "\""); start && rest != "" && strings.IndexByte("=+-@\t\r", rest[0]) >= 0 {
			b.WriteByte('\'')
		}
		b.WriteByte(s[j])
	}
	return b.String()
}
