// Command nethttp-authz serves keygate's check decision the way a team
// would write it with the standard library alone: net/http, encoding/json,
// a map from the SHA-256 of the secret to the key, and a linear scan of
// the key's []netip.Prefix. Same endpoints, statuses and bodies as keygate
// for the requests the load test sends (no scopes, no usage log).
//
//	nethttp-authz -addr 127.0.0.1:8081 -data data.json
//
// data.json is a bench.PolicyData, the same document OPA is given.
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"log"
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/keygate/keygate/bench"
)

type key struct {
	id, name  string
	allowlist []netip.Prefix
}

type server struct{ keys map[[sha256.Size]byte]*key }

const (
	bodyInvalid = `{"error":{"code":"INVALID_KEY","message":"API key is invalid, revoked or expired"}}`
	bodyIP      = `{"error":{"code":"IP_NOT_ALLOWED","message":"Request IP address is not in the API key's allowlist"}}`
	bodyBad     = `{"error":{"code":"BAD_REQUEST","message":"malformed check request"}}`
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8081", "listen address")
	data := flag.String("data", "data.json", "keys (bench.PolicyData)")
	flag.Parse()
	var d bench.PolicyData
	if err := bench.ReadJSON(*data, &d); err != nil {
		log.Fatal(err)
	}
	s := &server{keys: make(map[[sha256.Size]byte]*key, len(d.Keys))}
	for h, pk := range d.Keys {
		var sum [sha256.Size]byte
		if _, err := hex.Decode(sum[:], []byte(h)); err != nil {
			log.Fatal(err)
		}
		k := &key{id: pk.ID, name: pk.Name}
		for _, c := range pk.Allowlist {
			k.allowlist = append(k.allowlist, netip.MustParsePrefix(c))
		}
		s.keys[sum] = k
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/check", s.check)
	mux.HandleFunc("/v1/authz", s.authz)
	mux.HandleFunc("/v1/authz/", s.authz)
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`{"status":"ready"}`)) })
	log.Fatal(http.ListenAndServe(*addr, mux))
}

// decide returns the key (nil if unknown) and the status of the decision.
func (s *server) decide(secret string, ip netip.Addr) (*key, int) {
	k := s.keys[sha256.Sum256([]byte(secret))]
	if k == nil {
		return nil, http.StatusUnauthorized
	}
	if len(k.allowlist) == 0 {
		return k, http.StatusOK
	}
	ip = ip.Unmap()
	for _, p := range k.allowlist {
		if p.Contains(ip) {
			return k, http.StatusOK
		}
	}
	return k, http.StatusForbidden
}

func (s *server) check(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Key    string `json:"key"`
		IP     string `json:"ip"`
		Method string `json:"method"`
		Path   string `json:"path"`
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Type", "application/json")
	ip, err := netip.Addr{}, json.NewDecoder(http.MaxBytesReader(w, r.Body, 8<<10)).Decode(&req)
	if err == nil {
		ip, err = netip.ParseAddr(req.IP)
	}
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		w.Write([]byte(bodyBad))
		return
	}
	k, status := s.decide(req.Key, ip)
	switch status {
	case http.StatusOK:
		json.NewEncoder(w).Encode(struct {
			Allowed bool   `json:"allowed"`
			KeyID   string `json:"key_id"`
			KeyName string `json:"key_name"`
		}{true, k.id, k.name})
	case http.StatusUnauthorized:
		w.WriteHeader(status)
		w.Write([]byte(bodyInvalid))
	default:
		w.WriteHeader(status)
		w.Write([]byte(bodyIP))
	}
}

func (s *server) authz(w http.ResponseWriter, r *http.Request) {
	secret := r.Header.Get("X-API-Key")
	if a := r.Header.Get("Authorization"); len(a) > 7 && strings.EqualFold(a[:7], "bearer ") {
		secret = strings.TrimSpace(a[7:])
	}
	ip := clientIP(r)
	k, status := s.decide(secret, ip)
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	switch status {
	case http.StatusOK:
		h.Set("X-Keygate-Key-Id", k.id)
		h.Set("X-Keygate-Key-Name", k.name)
		w.WriteHeader(status)
	case http.StatusUnauthorized:
		h.Set("Content-Type", "application/json")
		h.Set("X-Keygate-Error-Code", "INVALID_KEY")
		h.Set("WWW-Authenticate", `Bearer realm="keygate", error="invalid_token"`)
		w.WriteHeader(status)
		w.Write([]byte(bodyInvalid))
	default:
		h.Set("Content-Type", "application/json")
		h.Set("X-Keygate-Error-Code", "IP_NOT_ALLOWED")
		w.WriteHeader(status)
		w.Write([]byte(bodyIP))
	}
}

// clientIP is the peer, or the last X-Forwarded-For hop when the peer is
// loopback (the load generator stands in for a trusted proxy).
func clientIP(r *http.Request) netip.Addr {
	host, _, _ := net.SplitHostPort(r.RemoteAddr)
	peer, _ := netip.ParseAddr(host)
	if xff := r.Header.Values("X-Forwarded-For"); peer.IsLoopback() && len(xff) > 0 {
		last := xff[len(xff)-1]
		if i := strings.LastIndexByte(last, ','); i >= 0 {
			last = last[i+1:]
		}
		if a, err := netip.ParseAddr(strings.TrimSpace(last)); err == nil {
			return a
		}
		return netip.Addr{}
	}
	return peer
}
