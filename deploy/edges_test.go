package deploy_test

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// testCert writes a self-signed certificate for 127.0.0.1 into dir and
// returns the certificate file, the key file, the two concatenated (what
// HAProxy's crt wants) and a pool that trusts it.
func testCert(t *testing.T, dir string) (certFile, keyFile, pemFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "keygate e2e"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	c := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	k := string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}))
	certFile, keyFile, pemFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), filepath.Join(dir, "both.pem")
	write(t, certFile, c)
	write(t, keyFile, k)
	write(t, pemFile, c+k)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pemFile, pool
}

// h2Client returns a client from loopback address ip that speaks HTTP/2
// only: with prior knowledge on http:// URLs (h2c), by ALPN on https://
// ones, trusting pool.
func h2Client(ip string, pool *x509.CertPool) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	p.SetHTTP2(true)
	return &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{
			DialContext:       d.DialContext,
			DisableKeepAlives: true,
			Protocols:         &p,
			TLSClientConfig:   &tls.Config{RootCAs: pool},
			ForceAttemptHTTP2: true,
		},
	}
}

// sendWith is send over client c to base (a scheme and address), and it
// asserts the exchange was HTTP/2.
func (h *harness) sendH2(c *http.Client, base, ip, method, uri string, hdr ...string) reply {
	t := h.t
	t.Helper()
	req, err := http.NewRequest(method, base+uri, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("HTTP/2 %s %s%s from %s: %v", method, base, uri, ip, err)
	}
	defer resp.Body.Close()
	if resp.ProtoMajor != 2 {
		t.Errorf("%s%s: answered over %s, want HTTP/2", base, uri, resp.Proto)
	}
	b, _ := io.ReadAll(resp.Body)
	path, _, _ := strings.Cut(uri, "?")
	h.want = append(h.want, logWant{IP: ip, Method: method, Path: path, Status: resp.StatusCode})
	return reply{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

// sendRaw writes a request line and headers to the proxy from ip as they
// are (no client-side cleaning: absolute-form targets, backslashes) and
// reads the answer. logged is the path keygate must log for it; a proxy's
// own 400 (it refused the target) is not logged by keygate.
func (h *harness) sendRaw(ip, method, target, logged string, hdr ...string) reply {
	t := h.t
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", h.proxyAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	var b strings.Builder
	b.WriteString(method + " " + target + " HTTP/1.1\r\nHost: " + h.proxyAddr + "\r\nConnection: close\r\n")
	for i := 0; i+1 < len(hdr); i += 2 {
		b.WriteString(hdr[i] + ": " + hdr[i+1] + "\r\n")
	}
	b.WriteString("\r\n")
	if _, err := io.WriteString(c, b.String()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 400 || resp.Header.Get("X-Keygate-Error-Code") != "" {
		h.want = append(h.want, logWant{IP: ip, Method: method, Path: logged, Status: resp.StatusCode})
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: string(body)}
}

// identityHeader matches every spelling of keygate's identity headers.
var identityHeader = regexp.MustCompile(`(?i)^x[-_]keygate[-_]`)

// edges runs the cases that depend on how a proxy hands the request on:
// HTTP/2 (h2c with prior knowledge, and TLS with ALPN h2 when tlsBase is
// set), absolute-form targets, paths an upstream may read differently,
// and underscore spellings of the identity headers. alice holds
// orders:read and is allowed from ipA; bob holds nothing, from anywhere.
func (h *harness) edges(ipA string, alice, bob key, h2cBase, tlsBase string, pool *x509.CertPool) {
	t := h.t
	before := h.upstream.count()
	allowedHits := 0

	// HTTP/2: the route scope holds (before the Lua fix HAProxy sent
	// "http://host/admin/users" and alice reached /admin).
	for _, base := range []string{h2cBase, tlsBase} {
		if base == "" {
			continue
		}
		c := h2Client(ipA, pool)
		h.denied("alice on /admin over HTTP/2 "+base, h.sendH2(c, base, ipA, "GET", "/admin/users", "Authorization", "Bearer "+alice.Secret), 403, bodyScope)
		h.denied("bob on /admin over HTTP/2 "+base, h.sendH2(c, base, ipA, "GET", "/admin", "Authorization", "Bearer "+bob.Secret), 403, bodyScope)
		e := h.allowed("alice over HTTP/2 "+base, h.sendH2(c, base, ipA, "GET", "/orders/1?x=1", "Authorization", "Bearer "+alice.Secret))
		h.identity("alice over HTTP/2 "+base, e, alice.ID, "alice", "orders:read")
		allowedHits++
	}

	// Absolute-form HTTP/1.1 targets.
	abs := "http://" + h.proxyAddr
	h.denied("alice on absolute-form /admin", h.sendRaw(ipA, "GET", abs+"/admin/users", "/admin/users", "Authorization", "Bearer "+alice.Secret), 403, bodyScope)
	h.denied("alice on absolute-form /admin with a query", h.sendRaw(ipA, "GET", abs+"/admin?x=/orders", "/admin", "Authorization", "Bearer "+alice.Secret), 403, bodyScope)
	h.allowed("alice on absolute-form /orders", h.sendRaw(ipA, "GET", abs+"/orders/1", "/orders/1", "Authorization", "Bearer "+alice.Secret))
	allowedHits++

	// Paths whose meaning depends on the upstream: a scope no key holds
	// (or the proxy's own 400), never the upstream.
	for _, p := range []string{`/public\..\admin`, `/public/..;/admin`, `/public/%5c../admin`, `/public/%252e%252e/admin`, `/public/%2e%2e/admin`, `/public/%2fadmin`} {
		logged := p
		if h.escapesBackslash {
			logged = strings.ReplaceAll(p, `\`, "%5C")
		}
		r := h.sendRaw(ipA, "GET", p, logged, "Authorization", "Bearer "+alice.Secret)
		if r.status == 400 && r.header.Get("X-Keygate-Error-Code") == "" {
			continue // the proxy refused it
		}
		h.denied("alice on "+p, r, 403, bodyScope)
	}

	// Underscore spellings of the identity headers never reach the
	// upstream, whatever their case.
	forged := []string{"X_Keygate_Key_Id", "forged", "x_keygate_key_name", "root", "X-Keygate_Scopes", "admin", "X_KEYGATE-KEY-ID", "forged2"}
	for _, who := range []key{bob, alice} {
		e := h.allowed(who.Name+" with underscore identity headers", h.sendRaw(ipA, "GET", "/orders/9", "/orders/9", append([]string{"X-API-Key", who.Secret}, forged...)...))
		allowedHits++
		for name, vs := range e.Header {
			if !identityHeader.MatchString(name) {
				continue
			}
			switch http.CanonicalHeaderKey(name) {
			case "X-Keygate-Key-Id", "X-Keygate-Key-Name", "X-Keygate-Scopes":
			default:
				t.Errorf("%s: upstream got %s %q: an underscore spelling went through", who.Name, name, vs)
			}
		}
		scopes := ""
		if who.ID == alice.ID {
			scopes = "orders:read"
		}
		h.identity(who.Name+" with underscore identity headers", e, who.ID, who.Name, scopes)
	}
	if got := h.upstream.count() - before; got != allowedHits {
		t.Errorf("upstream got %d requests in the edge cases, want %d: a denial reached it", got, allowedHits)
	}
}

// certFiles is testCert for a harness's own temporary directory.
func certFiles(t *testing.T) (cert, key, both string, pool *x509.CertPool) {
	dir := t.TempDir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return testCert(t, dir)
}
