package bench

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"math/rand/v2"
	"net/netip"
	"os"
	"slices"

	"github.com/keygate/keygate/engine"
	"github.com/keygate/keygate/internal/golden"
)

// LoadKey is one key of a load test: what its server knows (hash,
// allowlist) and what its clients know (secret, addresses that hit and
// miss the allowlist).
type LoadKey struct {
	ID        string         `json:"id"`
	Name      string         `json:"name"`
	Secret    string         `json:"secret"`
	Allowlist []netip.Prefix `json:"allowlist"`
	Hits      []netip.Addr   `json:"hits"`
	Misses    []netip.Addr   `json:"misses"`
}

// GenLoadKeys returns n keys with `entries` allowlist entries each, one key
// in four IPv6, and four hit and four miss addresses per key. IDs and
// secrets are left for the caller: the daemon under test assigns them.
func GenLoadKeys(seed uint64, n, entries int) []LoadKey {
	keys := make([]LoadKey, n)
	for i := range keys {
		al := GenKeyAllowlist(seed+uint64(i), entries, i%4 == 3)
		keys[i] = LoadKey{Allowlist: al.Prefixes, Hits: al.Hits[:4], Misses: al.Misses[:4]}
	}
	return keys
}

// GenKeyAllowlist is golden.GenAllowlist without duplicate prefixes (which
// keygate refuses): a duplicate is dropped, so a list may be one short.
// Hits and misses stay right: the same prefixes remain.
func GenKeyAllowlist(seed uint64, n int, v6 bool) golden.Allowlist {
	al := golden.GenAllowlist(seed, n, v6)
	slices.SortFunc(al.Prefixes, netip.Prefix.Compare)
	al.Prefixes = slices.Compact(al.Prefixes)
	return al
}

// Probe is one check request of a load test and the answer it must get.
type Probe struct {
	Key    string     `json:"key"`
	IP     netip.Addr `json:"ip"`
	Method string     `json:"method"`
	Path   string     `json:"path"`
	Want   int        `json:"want"` // 200, 401 or 403
}

// The request mix of every load test, in percent.
const (
	MixAllowed   = 80 // known key, address in its allowlist
	MixBlockedIP = 15 // known key, address outside its allowlist
	MixInvalid   = 5  // well-formed secret that no key has
)

var probePaths = []string{"/v1/orders/", "/v1/customers/", "/v1/products/", "/v1/invoices/"}

// GenProbes returns n probes over keys in the fixed mix, keys drawn
// uniformly. The invalid keys have the shape and checksum of real secrets,
// so every server has to hash and look them up.
func GenProbes(seed uint64, keys []LoadKey, n int) []Probe {
	r := rand.New(rand.NewPCG(seed, 7))
	unknown := make([]string, 64)
	for i := range unknown {
		unknown[i], _ = engine.NewSecret()
	}
	ps := make([]Probe, n)
	for i := range ps {
		k := &keys[r.IntN(len(keys))]
		p := Probe{Key: k.Secret, Method: "GET", Path: probePaths[r.IntN(len(probePaths))] + "12345"}
		switch x := r.IntN(100); {
		case x < MixAllowed:
			p.IP, p.Want = k.Hits[r.IntN(len(k.Hits))], 200
		case x < MixAllowed+MixBlockedIP:
			p.IP, p.Want = k.Misses[r.IntN(len(k.Misses))], 403
		default:
			p.Key, p.IP, p.Want = unknown[r.IntN(len(unknown))], k.Hits[0], 401
		}
		ps[i] = p
	}
	return ps
}

// PolicyData is the data document of the OPA policy (opa/keygate.rego) and
// of the net/http server: keys by the hex SHA-256 of their secret.
type PolicyData struct {
	Keys map[string]PolicyKey `json:"keys"`
}

// PolicyKey is one key in PolicyData.
type PolicyKey struct {
	ID        string   `json:"id"`
	Name      string   `json:"name"`
	Allowlist []string `json:"allowlist"`
}

// NewPolicyData returns the keys as the peers' servers hold them.
func NewPolicyData(keys []LoadKey) PolicyData {
	d := PolicyData{Keys: make(map[string]PolicyKey, len(keys))}
	for _, k := range keys {
		sum := sha256.Sum256([]byte(k.Secret))
		pk := PolicyKey{ID: k.ID, Name: k.Name, Allowlist: make([]string, len(k.Allowlist))}
		for i, p := range k.Allowlist {
			pk.Allowlist[i] = p.String()
		}
		d.Keys[hex.EncodeToString(sum[:])] = pk
	}
	return d
}

// WriteJSON writes v to path as JSON.
func WriteJSON(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}

// ReadJSON reads path as JSON into v.
func ReadJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// LoadResult is what cmd/loadgen prints (as JSON) after a run.
type LoadResult struct {
	Kind     string  `json:"kind"`
	Conns    int     `json:"conns"`
	Seconds  float64 `json:"seconds"`
	Requests int     `json:"requests"`
	RPS      float64 `json:"rps"`
	P50us    float64 `json:"p50_us"`
	P99us    float64 `json:"p99_us"`
	P999us   float64 `json:"p999_us"`
	MaxUs    float64 `json:"max_us"`
	Errors   int     `json:"errors"`
	Wrong    int     `json:"wrong"`
	// ClientCPU is the generator's CPU time during the measured window,
	// as a fraction of the window (1.0 = one core busy).
	ClientCPU float64 `json:"client_cpu"`
	// ServerCPUus is the CPU time the server process (-pid) got during
	// the measured window per request answered in it, in microseconds:
	// the sum over its threads of /proc/<pid>/task/*/schedstat, which
	// counts nanoseconds on a CPU. 0 without -pid.
	ServerCPUus float64 `json:"server_cpu_us,omitempty"`
	// ServerCPU is the same time as a fraction of the window.
	ServerCPU float64 `json:"server_cpu,omitempty"`
	// ServerUserUs and ServerSysUs split ServerCPUus into user and
	// kernel time (utime and stime of /proc/<pid>/stat, in clock ticks,
	// so to 10 ms over the window): what the server's own code costs per
	// request, beside the system calls every HTTP server pays.
	ServerUserUs float64 `json:"server_user_us,omitempty"`
	ServerSysUs  float64 `json:"server_sys_us,omitempty"`
	FirstErr     string  `json:"first_error,omitempty"`
}
