package reliability_test

import (
	"bytes"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestSecretsNeverStored: no plaintext secret — of a key, or presented in
// a check — appears in the data directory, the process output, the usage
// logs or the CSV export. Only the hint (the first characters, shown in
// the UI by design) may.
func TestSecretsNeverStored(t *testing.T) {
	data := t.TempDir()
	d, err := startProc(data) // generated admin token
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Kill)
	fi, err := os.Stat(filepath.Join(data, "admin-token"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("admin token file: %v, mode %v; want 0600", err, fi.Mode().Perm())
	}
	tokb, _ := os.ReadFile(filepath.Join(data, "admin-token"))
	tok := strings.TrimSpace(string(tokb))

	var secrets []string
	for i := range 5 {
		r := must(t, "POST", d.url+"/v1/keys", tok, map[string]any{"name": fmt.Sprint("s", i), "allowlist": []map[string]string{{"cidr": "203.0.113.5"}}})
		if r.status != 201 {
			t.Fatalf("create: %d %s", r.status, r.body)
		}
		m := r.json(t)
		secret, hint := m["secret"].(string), m["hint"].(string)
		if !strings.HasPrefix(secret, hint) {
			t.Fatalf("hint %q is not a prefix of the secret", hint)
		}
		secrets = append(secrets, secret[len(hint):])
		if i == 4 {
			must(t, "DELETE", d.url+"/v1/keys/"+m["id"].(string), tok, nil)
		}
		for _, ip := range []string{"203.0.113.5", "198.51.100.1"} {
			check(d, secret, ip)
			do("GET", d.url+"/v1/authz/x", "", nil, "Authorization", "Bearer "+secret)
			do("GET", d.url+"/v1/authz/x?key="+secret, "", nil, "X-API-Key", secret, "X-Forwarded-Uri", "/p?api_key="+secret)
		}
	}
	// Secrets presented but unknown, in every place a client can put one.
	for i := range 3 {
		bogus := fmt.Sprintf("kg_UnknownSecret%dXXXXXXXXXXXXXXXXXXXXXX", i)
		secrets = append(secrets, bogus[10:])
		check(d, bogus, "203.0.113.5")
		do("POST", d.url+"/v1/check", "", `{"key":"`+bogus+`","ip":"203.0.113.5","path":"/x?token=`+bogus+`"}`)
		do("GET", d.url+"/v1/authz", "", nil, "Authorization", "Bearer "+bogus)
		do("GET", d.url+"/v1/keys", bogus, nil)
	}
	time.Sleep(1500 * time.Millisecond) // let the usage log flush
	logs := must(t, "GET", d.url+"/v1/logs?limit=1000", tok, nil)
	csv := must(t, "GET", d.url+"/v1/logs/export.csv", tok, nil)
	keys := must(t, "GET", d.url+"/v1/keys", tok, nil)
	if !bytes.Contains(csv.body, []byte("203.0.113.5")) {
		t.Fatalf("CSV without the checks: %.300s", csv.body)
	}
	d.term(t)

	places := map[string][]byte{"usage logs (JSON)": logs.body, "CSV export": csv.body, "key list": keys.body, "stdout+stderr": []byte(d.Output())}
	filepath.WalkDir(data, func(p string, e fs.DirEntry, err error) error {
		if err == nil && !e.IsDir() {
			b, _ := os.ReadFile(p)
			places[p] = b
		}
		return nil
	})
	for where, b := range places {
		for _, s := range secrets {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("a secret (…%s) appears in %s", s[len(s)-6:], where)
			}
		}
	}
	t.Logf("%d secrets (5 keys, 3 unknown presented ones) searched in %d places (%d data files): none found", len(secrets), len(places), len(places)-4)
}

// TestInvalidKeyResponsesIdentical: an unknown and a revoked key get the
// same 401, byte for byte (Date aside), on both check paths; the time
// they take is measured and reported, not asserted.
func TestInvalidKeyResponsesIdentical(t *testing.T) {
	d := start(t, t.TempDir())
	k := createKey(t, d, "revoked", "203.0.113.5")
	must(t, "DELETE", d.url+"/v1/keys/"+k.id, adminToken, nil)
	unknown := "kg_" + strings.Repeat("Z", len(k.secret)-3)
	hintOnly := k.secret[:11] + strings.Repeat("Z", len(k.secret)-11) // same hint, wrong rest

	dump := func(r response) string {
		h := r.header.Clone()
		h.Del("Date")
		var b strings.Builder
		fmt.Fprintf(&b, "%d\n", r.status)
		h.Write(&b)
		b.Write(r.body)
		return b.String()
	}
	for _, path := range []string{"check", "authz"} {
		get := func(secret string) response {
			if path == "check" {
				return must(t, "POST", d.url+"/v1/check", "", `{"key":"`+secret+`","ip":"203.0.113.5"}`)
			}
			return must(t, "GET", d.url+"/v1/authz", "", nil, "X-API-Key", secret)
		}
		want := dump(get(unknown))
		for name, s := range map[string]string{"revoked": k.secret, "same hint": hintOnly, "malformed": "nope"} {
			if got := dump(get(s)); got != want {
				t.Errorf("%s: %s key answer differs from an unknown key's:\n%s\nvs\n%s", path, name, got, want)
			}
		}
		if !strings.HasPrefix(want, "401\n") {
			t.Errorf("%s: unknown key: %s", path, want)
		}
	}

	// Timing, interleaved, on one keep-alive connection.
	const n = 3000
	var tu, tr []time.Duration
	for i := range 2 * n {
		s := unknown
		if i%2 == 1 {
			s = k.secret
		}
		t0 := time.Now()
		must(t, "POST", d.url+"/v1/check", "", `{"key":"`+s+`","ip":"203.0.113.5"}`)
		if i%2 == 1 {
			tr = append(tr, time.Since(t0))
		} else {
			tu = append(tu, time.Since(t0))
		}
	}
	t.Logf("401 timing over %d checks each (client-side, loopback): unknown p50 %v p90 %v; revoked p50 %v p90 %v",
		n, percentile(tu, .5), percentile(tu, .9), percentile(tr, .5), percentile(tr, .9))
}

// TestAdminRefusesOthers: every management endpoint refuses a missing or
// wrong token, an API key, and the admin token sent anywhere but the
// Authorization header.
func TestAdminRefusesOthers(t *testing.T) {
	d := start(t, t.TempDir())
	k := createKey(t, d, "a", "203.0.113.5")
	endpoints := [][2]string{
		{"GET", "/v1/keys"}, {"POST", "/v1/keys"}, {"GET", "/v1/keys/" + k.id}, {"PATCH", "/v1/keys/" + k.id},
		{"DELETE", "/v1/keys/" + k.id}, {"GET", "/v1/keys/" + k.id + "/allowlist"}, {"PUT", "/v1/keys/" + k.id + "/allowlist"},
		{"POST", "/v1/keys/" + k.id + "/allowlist"}, {"DELETE", "/v1/keys/" + k.id + "/allowlist/ent_x"},
		{"GET", "/v1/logs"}, {"GET", "/v1/logs/export.csv"},
	}
	creds := map[string][]string{
		"none":                 nil,
		"API key":              {"Authorization", "Bearer " + k.secret},
		"API key as X-API-Key": {"X-API-Key", k.secret},
		"wrong token":          {"Authorization", "Bearer " + adminToken + "x"},
		"token prefix":         {"Authorization", "Bearer " + adminToken[:len(adminToken)-1]},
		"token, Basic":         {"Authorization", "Basic " + adminToken},
		"token in X-API-Key":   {"X-API-Key", adminToken},
		"token twice":          {"Authorization", "Bearer " + adminToken + " " + adminToken},
		"empty bearer":         {"Authorization", "Bearer "},
		"token with NUL":       {"Authorization", "Bearer " + adminToken + "\x00"},
		"upper-cased token":    {"Authorization", "Bearer " + strings.ToUpper(adminToken)},
	}
	n := 0
	for _, e := range endpoints {
		for name, h := range creds {
			req, _ := http.NewRequest(e[0], d.url+e[1], strings.NewReader(`{"name":"x"}`))
			for i := 0; i+1 < len(h); i += 2 {
				req.Header.Set(h[i], h[i+1])
			}
			res, err := client.Do(req)
			if err != nil {
				if name == "token with NUL" {
					continue // the client refuses to send it
				}
				t.Fatal(err)
			}
			res.Body.Close()
			n++
			if res.StatusCode != 401 {
				t.Errorf("%s %s with %s: %d, want 401", e[0], e[1], name, res.StatusCode)
			}
		}
	}
	// The key is unchanged.
	r := must(t, "GET", d.url+"/v1/keys/"+k.id, adminToken, nil)
	if !regexp.MustCompile(`"status":"active"`).Match(r.body) {
		t.Errorf("key changed: %s", r.body)
	}
	t.Logf("%d unauthorised management requests over %d endpoints: all 401", n, len(endpoints))
}
