package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/keygate/keygate/server"
)

// The settings of keygate serve are defined once, as flags (serveFlagSet):
// each is also KEYGATE_<NAME> in the environment (upper case, dashes as
// underscores) and "<name>" in the config file (dashes as underscores),
// and all three are parsed by the flag's own Set, so a value means the
// same and fails with the same message wherever it comes from. The
// config file also holds "routes", which has no flag. Layers, each
// winning over the one before: defaults, config file, environment,
// command line.
//
// A library for this (issue 17 names github.com/peterbourgon/ff/v4) was
// weighed: ff does flags < env < file layering, but its JSON config
// parser flattens nested values, so the route rules would still need their
// own decoding, and it reports neither a trailing second object nor the
// line and column of a syntax error. What is left to write here is about
// as long as the adapter would be, so the standard flag package it is.

// serveFlagSet returns the flags of keygate serve, bound to c: setting a
// flag sets c's field. The defaults are c's values.
func serveFlagSet(c *Config) *flag.FlagSet {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.StringVar(&c.Addr, "addr", c.Addr, "check (and, without --admin-addr, management) listen address, host:port or unix:/path/to.sock")
	fs.StringVar(&c.AdminAddr, "admin-addr", c.AdminAddr, "separate listen address for the management API and the UI, host:port or unix:/path/to.sock")
	fs.StringVar(&c.GRPCAddr, "grpc-addr", c.GRPCAddr, "listen address of Envoy's gRPC ext_authz (envoy.service.auth.v3.Authorization), host:port or unix:/path/to.sock")
	fs.Var(modeValue{&c.SocketMode}, "socket-mode", "file mode of a unix: listener's socket, octal (default 0660: owner and group may connect)")
	fs.StringVar(&c.Data, "data", c.Data, "data directory (Badger)")
	fs.StringVar(&c.AdminToken, "admin-token", c.AdminToken, "management API bearer token (generated on first start if empty)")
	fs.Var(&listValue{p: &c.TrustedProxies}, "trusted-proxies", "comma-separated addresses/CIDRs of proxies whose X-Forwarded-For is believed; unix: every peer of a unix: listener")
	fs.BoolVar(&c.TrustAllProxies, "trust-all-proxies", c.TrustAllProxies, "confirm a --trusted-proxies range of every address (0.0.0.0/0, ::/0): any client can then choose its address")
	fs.Var(&listValue{p: &c.RealIPHeaders}, "real-ip-headers", "comma-separated single-address headers read from a trusted proxy (default X-Real-IP; empty: none)")
	fs.BoolVar(&c.AllowPrivateRanges, "allow-private-ranges", c.AllowPrivateRanges, "accept private, loopback and other non-public ranges in allowlists")
	fs.StringVar(&c.ConfigPath, "config", c.ConfigPath, "JSON config file with the same settings plus route rules")
	fs.Var(bytesValue{&c.MinFreeSpace}, "min-free-space", "free disk space kept in reserve, in bytes or with a unit (64MiB, 1GB); below it writes fail with 503 (0: 64 MiB, negative: off)")
	fs.Var(durationValue{&c.LogRetention}, "log-retention", "how long usage-log records are kept, a Go duration such as 720h (0: 30 days)")
	fs.Var(durationValue{&c.MaintenanceInterval}, "maintenance-interval", "") // hidden: retention and GC period, for soak tests
	fs.Var(durationValue{&c.ShutdownTimeout}, "shutdown-timeout", "")         // hidden: the drain period (default 10s), for tests
	fs.Var(durationValue{&c.ShutdownDelay}, "shutdown-delay", "on SIGTERM, keep serving this long with /readyz answering 503 before stopping, a Go duration such as 5s (0: stop accepting at once)")
	fs.Var(intValue{&c.MaxConns}, "max-conns", "open connections per listener; more are answered with 503 (0: 10000)")
	fs.Var(choiceValue{&c.LogLevel, []string{"debug", "info", "warn", "error"}}, "log-level", "the daemon's log level: debug, info, warn or error")
	fs.Var(choiceValue{&c.LogFormat, []string{"text", "json"}}, "log-format", "the daemon's log format: text or json")
	// Fleet mode (fleet.go).
	fs.StringVar(&c.DatabaseURL, "database-url", c.DatabaseURL, "fleet mode: the PostgreSQL database (postgres://user:password@host:port/db) instead of the Badger directory in --data; needs --admin-token")
	fs.StringVar(&c.NodeName, "node-name", c.NodeName, "this daemon's name in usage-log records (default: host name:check port)")
	fs.Var(bytesValue{&c.SpoolMaxBytes}, "spool-max-bytes", "fleet mode: most bytes of usage-log records kept in --data while the database is unreachable, in bytes or with a unit (0: 256MiB)")
	fs.Var(durationValue{&c.DatabaseWait}, "database-wait", "fleet mode: how long to retry an unreachable database at start before exiting, a Go duration (0: 30s)")
	return fs
}

// hiddenFlags are left out of the usage text.
var hiddenFlags = map[string]bool{"maintenance-interval": true, "shutdown-timeout": true}

// configError is a bad setting, from a flag, the environment or the
// config file: the exit status is 2 (usage) wherever it came from.
func configError(err error) error {
	if err == nil {
		return nil
	}
	var ue usageError
	if errors.As(err, &ue) {
		return err
	}
	return usageError{err.Error()}
}

func defaultConfig() Config {
	return Config{Config: server.Config{Addr: server.DefaultAddr}, Data: "./data", LogLevel: "info", LogFormat: "text"}
}

// loadServeConfig builds the configuration from the defaults, the config
// file, the environment (env; os.LookupEnv in the daemon) and the command
// line, and validates it. warnings are for the log: unknown KEYGATE_*
// variables.
func loadServeConfig(args []string, env func(string) (string, bool)) (cfg Config, warnings []string, err error) {
	// First the command line alone, for --config and for usage errors.
	probe := defaultConfig()
	set, err := parseArgs(serveFlagSet(&probe), args)
	if err != nil {
		return Config{}, nil, err
	}
	path := probe.ConfigPath
	if !set["config"] {
		path, _ = env(envName("config"))
	}

	cfg = defaultConfig()
	fs := serveFlagSet(&cfg)
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return Config{}, nil, configError(fmt.Errorf("config: %w", err))
		}
		if err := applyConfigFile(fs, &cfg, b); err != nil {
			return Config{}, nil, configError(fmt.Errorf("config %s: %w", path, err))
		}
	}
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] {
			return
		}
		if v, ok := env(envName(f.Name)); ok {
			freshList(f)
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %v", envName(f.Name), v, err))
			}
		}
	})
	if err := errors.Join(errs...); err != nil {
		return Config{}, nil, configError(err)
	}
	fs.VisitAll(freshList)
	if _, err := parseArgs(fs, args); err != nil {
		return Config{}, nil, err
	}
	cfg.ConfigPath = path
	return cfg, unknownEnv(), configError(cfg.Validate())
}

// envName is the environment variable of a flag.
func envName(flagName string) string {
	return "KEYGATE_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// knownEnv lists the KEYGATE_* variables something reads: serve's flags
// and the admin commands' connection settings.
func knownEnv() map[string]bool {
	known := map[string]bool{}
	c := defaultConfig()
	serveFlagSet(&c).VisitAll(func(f *flag.Flag) { known[envName(f.Name)] = true })
	for _, n := range clientEnvFlags {
		known[envName(n)] = true
	}
	return known
}

// unknownEnv returns a warning for each KEYGATE_* variable that nothing
// reads (a typo, or a setting of another version).
func unknownEnv() []string {
	known := knownEnv()
	var out []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "KEYGATE_") && !known[name] {
			out = append(out, fmt.Sprintf("environment variable %s is not a keygate setting and is ignored", name))
		}
	}
	slices.Sort(out)
	return out
}

// applyConfigFile sets fs's flags (and cfg.Routes) from the JSON object b:
// one member per flag, named with underscores, plus "routes". A string,
// number or boolean is given to the flag as its text; an array of strings
// is given element by element (list flags). Nothing may follow the
// object. Errors name the member, or the line and column.
func applyConfigFile(fs *flag.FlagSet, cfg *Config, b []byte) error {
	dec := jsontext.NewDecoder(bytes.NewReader(b), jsontext.AllowDuplicateNames(false))
	at := func(err error) error {
		var syn *jsontext.SyntacticError
		if errors.As(err, &syn) {
			line, col := lineCol(b, syn.ByteOffset)
			return fmt.Errorf("line %d, column %d: %v", line, col, syn.Err)
		}
		return err
	}
	tok, err := dec.ReadToken()
	if err != nil {
		return at(err)
	}
	if tok.Kind() != '{' {
		line, col := lineCol(b, dec.InputOffset()-1)
		return fmt.Errorf("line %d, column %d: want a JSON object {...} of settings", line, col)
	}
	for dec.PeekKind() != '}' {
		nameTok, err := dec.ReadToken()
		if err != nil {
			return at(err)
		}
		name := nameTok.String()
		val, err := dec.ReadValue()
		if err != nil {
			return at(err)
		}
		off := dec.InputOffset() - int64(len(val))
		if err := applyMember(fs, cfg, name, val); err != nil {
			line, col := lineCol(b, off)
			return fmt.Errorf("line %d, column %d: %q: %w", line, col, name, err)
		}
	}
	if _, err := dec.ReadToken(); err != nil {
		return at(err)
	}
	end := dec.InputOffset()
	if _, err := dec.ReadToken(); err != io.EOF {
		if err != nil {
			return at(err)
		}
		rest := b[end:]
		line, col := lineCol(b, end+int64(len(rest)-len(bytes.TrimLeft(rest, " \t\r\n"))))
		return fmt.Errorf("line %d, column %d: more after the settings object: a config file holds one JSON object", line, col)
	}
	return nil
}

func applyMember(fs *flag.FlagSet, cfg *Config, name string, val jsontext.Value) error {
	if name == "routes" {
		return jsonv2.Unmarshal(val, &cfg.Routes, jsonv2.RejectUnknownMembers(true), jsonv2.MatchCaseInsensitiveNames(false))
	}
	flagName := strings.ReplaceAll(name, "_", "-")
	f := fs.Lookup(flagName)
	if f == nil || flagName == "config" || strings.Contains(name, "-") {
		return fmt.Errorf("not a setting: the file takes the flags of keygate serve with underscores (%s) and routes", fileNames(fs))
	}
	freshList(f)
	switch val.Kind() {
	case '"':
		var s string
		if err := jsonv2.Unmarshal(val, &s); err != nil {
			return err
		}
		return f.Value.Set(s)
	case '0', 't', 'f':
		return f.Value.Set(string(val))
	case '[':
		var list []string
		if err := jsonv2.Unmarshal(val, &list); err != nil {
			return errors.New("want an array of strings")
		}
		if _, ok := f.Value.(*listValue); !ok {
			return errors.New("takes one value, not an array")
		}
		if len(list) == 0 {
			return f.Value.Set("")
		}
		for _, s := range list {
			if err := f.Value.Set(s); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("want a string, a number or a boolean, not %s", val)
}

func fileNames(fs *flag.FlagSet) string {
	var names []string
	fs.VisitAll(func(f *flag.Flag) {
		if !hiddenFlags[f.Name] && f.Name != "config" {
			names = append(names, strings.ReplaceAll(f.Name, "-", "_"))
		}
	})
	return strings.Join(names, ", ")
}

// lineCol turns a byte offset of b into a 1-based line and column.
func lineCol(b []byte, off int64) (line, col int) {
	off = min(max(off, 0), int64(len(b)))
	before := b[:off]
	line = bytes.Count(before, []byte("\n")) + 1
	col = int(off) - (bytes.LastIndexByte(before, '\n') + 1) + 1
	return line, col
}

// freshList makes a list flag's next Set replace its value rather than add
// to it: a list given in a layer replaces the one from the layer below.
func freshList(f *flag.Flag) {
	if l, ok := f.Value.(*listValue); ok {
		l.fresh = false
	}
}

// listValue is a repeatable flag that also splits on commas; the empty
// string sets an empty (non-nil) list.
type listValue struct {
	p     *[]string
	fresh bool // Set has been called in this layer
}

func (l *listValue) String() string {
	if l.p == nil {
		return ""
	}
	return strings.Join(*l.p, ",")
}

func (l *listValue) Set(v string) error {
	if !l.fresh {
		*l.p, l.fresh = []string{}, true
	}
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l.p = append(*l.p, s)
		}
	}
	return nil
}

type durationValue struct{ p *time.Duration }

func (d durationValue) String() string {
	if d.p == nil {
		return ""
	}
	return d.p.String()
}

func (d durationValue) Set(v string) error {
	x, err := time.ParseDuration(strings.TrimSpace(v))
	if err != nil {
		return fmt.Errorf("%q is not a duration: want a Go duration such as 720h, 90m or 30s (no d unit: 30 days is 720h)", v)
	}
	*d.p = x
	return nil
}

type intValue struct{ p *int }

func (i intValue) String() string {
	if i.p == nil {
		return ""
	}
	return strconv.Itoa(*i.p)
}

func (i intValue) Set(v string) error {
	x, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil {
		return fmt.Errorf("%q is not a whole number: want e.g. 10000", v)
	}
	*i.p = x
	return nil
}

// modeValue takes a file mode's permission bits in octal: 0660, 660.
type modeValue struct{ p *fs.FileMode }

func (m modeValue) String() string {
	if m.p == nil || *m.p == 0 {
		return ""
	}
	return fmt.Sprintf("%04o", uint32(*m.p))
}

func (m modeValue) Set(v string) error {
	x, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32)
	if err != nil || x == 0 || x > 0o777 {
		return fmt.Errorf("%q is not a file mode: want octal permission bits from 0001 to 0777, e.g. 0660", v)
	}
	*m.p = fs.FileMode(x)
	return nil
}

// bytesValue takes a byte count, plain or with a unit: KB, MB, GB, TB
// (powers of 1000) or KiB, MiB, GiB, TiB (powers of 1024); -1 is -1.
type bytesValue struct{ p *int64 }

func (b bytesValue) String() string {
	if b.p == nil {
		return ""
	}
	return strconv.FormatInt(*b.p, 10)
}

var byteUnits = []struct {
	suffix string
	mult   int64
}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1}}

func (b bytesValue) Set(v string) error {
	s := strings.TrimSpace(v)
	mult := int64(1)
	for _, u := range byteUnits {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	x, err := strconv.ParseInt(s, 10, 64)
	if err != nil || x > (1<<62)/mult || x < -(1<<62)/mult {
		return fmt.Errorf("%q is not a size: want bytes (67108864) or a number with a unit: 64MiB, 1GB (KB, MB, GB, TB, KiB, MiB, GiB, TiB)", v)
	}
	*b.p = x * mult
	return nil
}

// choiceValue takes one of a few words.
type choiceValue struct {
	p       *string
	choices []string
}

func (c choiceValue) String() string {
	if c.p == nil {
		return ""
	}
	return *c.p
}

func (c choiceValue) Set(v string) error {
	v = strings.ToLower(strings.TrimSpace(v))
	if !slices.Contains(c.choices, v) {
		return fmt.Errorf("%q: want one of %s", v, strings.Join(c.choices, ", "))
	}
	*c.p = v
	return nil
}
