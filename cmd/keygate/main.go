// Command keygate is the keygate daemon and its admin client.
//
//	keygate serve [flags]        run the daemon
//	keygate keys ...             manage keys of a running daemon
//	keygate allowlist ...        manage a key's IP allowlist
//	keygate logs ...             query or export usage logs
//	keygate audit ...            read the audit trail of key changes
//	keygate version              print the version
//
// Every flag can also be given in the environment as KEYGATE_<FLAG> (upper
// case, dashes as underscores); a flag on the command line wins.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `keygate — API-key authorization daemon

Usage:
  keygate serve [--addr 127.0.0.1:8080] [--admin-addr ADDR] [--data ./data]
                [--admin-token TOKEN] [--trusted-proxies CIDR,...] [--trust-all-proxies]
                [--real-ip-headers H,...] [--allow-private-ranges] [--config FILE]
                [--min-free-space 64MiB] [--log-retention 720h] [--max-conns N]
                [--log-level info] [--log-format text|json] [--grpc-addr ADDR]
                [--database-url postgres://... --admin-token TOKEN] [--node-name NAME]
                [--spool-max-bytes 256MiB] [--database-wait 30s]
  keygate keys create --name NAME [--description D] [--scope S]... [--allow CIDR[=LABEL]]... [--expires RFC3339] [--report-only]
  keygate keys list | show ID | revoke ID
  keygate keys update ID [--report-only=true|false] [--name N] [--description D]
  keygate keys rotate ID --overlap 24h
  keygate allowlist list ID
  keygate allowlist add ID CIDR [--label L] [--expires RFC3339|3h] [--disabled]
  keygate allowlist import ID FILE [--replace] [--dry-run]   (one entry a line: address[,label] or address label)
  keygate allowlist remove ID ENTRY_ID|CIDR
  keygate allowlist replace ID CIDR[=LABEL]...   (no entries: --allow-all)
  keygate logs query [--key-id ID] [--method M] [--status 403|4xx] [--code IP_NOT_ALLOWED] [--ip ADDR] [--path-prefix P] [--from T] [--to T] [--limit N] [--cursor C]
  keygate logs export [same filters] [-o FILE [--force]]
  keygate audit [--key-id ID] [--from T] [--to T] [--limit N] [--cursor C]
  keygate backup -o FILE [--force]
  keygate restore --data DIR FILE
  keygate migrate --data ./data --database-url postgres://... [--logs] [--node-name NAME]
  keygate version

"keygate COMMAND [SUBCOMMAND] -h" lists a command's flags.

The admin commands talk to a running daemon: --server (default
http://127.0.0.1:8080; a bare host:port means http) and --admin-token
(default: the token file in --data); --json prints only JSON on standard
output. They take --server, --admin-token and --data from the environment
(KEYGATE_SERVER, ...), never their other flags. Every serve flag can also
come from the environment as KEYGATE_<FLAG>, e.g. KEYGATE_ADMIN_TOKEN, and
from the config file.

Exit status: 0 done, 1 failed, 2 usage (a bad command line, environment
variable or setting).
`

// run executes one command line and returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "keys", "allowlist", "logs":
		if wantsHelp(args[1:]) {
			fmt.Fprint(stdout, usage)
			return 0
		}
	}
	switch args[0] {
	case "serve":
		err = serveCmd(args[1:], stdout, stderr)
	case "keys":
		err = keysCmd(args[1:], stdout)
	case "allowlist":
		err = allowlistCmd(args[1:], stdout)
	case "logs":
		err = logsCmd(args[1:], stdout)
	case "audit":
		err = auditCmd(args[1:], stdout)
	case "backup":
		err = backupCmd(args[1:], stdout)
	case "restore":
		err = restoreCmd(args[1:], stdout)
	case "migrate":
		err = migrateCmd(args[1:], stdout)
	case "version", "--version", "-v":
		fmt.Fprintf(stdout, "keygate %s (%s)\n", version, runtime.Version())
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "keygate: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	if err != nil {
		var he *helpError
		if errors.As(err, &he) {
			printFlags(stdout, he.fs)
			return 0
		}
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, usage)
			return 0
		}
		fmt.Fprintf(stderr, "keygate: %v\n", err)
		var ue usageError
		if errors.As(err, &ue) {
			return 2
		}
		return 1
	}
	return 0
}

// helpError is -h or --help on a (sub)command: its flags are printed to
// standard output, exit status 0.
type helpError struct{ fs *flag.FlagSet }

func (e *helpError) Error() string { return flag.ErrHelp.Error() }
func (e *helpError) Unwrap() error { return flag.ErrHelp }

// printFlags prints a command's flags, hidden ones left out.
func printFlags(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintf(w, "Usage: keygate %s [flags]\n\nFlags:\n", fs.Name())
	fs.VisitAll(func(f *flag.Flag) {
		if hiddenFlags[f.Name] {
			return
		}
		def := ""
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" && f.DefValue != "0s" {
			def = fmt.Sprintf(" (default %s)", f.DefValue)
		}
		fmt.Fprintf(w, "  --%s\n        %s%s\n", f.Name, f.Usage, def)
	})
	fmt.Fprint(w, "\nExit status: 0 done, 1 failed, 2 usage (a bad command line or setting).\n")
}

// wantsHelp reports whether a command's first argument asks for help.
func wantsHelp(args []string) bool {
	return len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help")
}

// usageError is a mistake on the command line (exit code 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// parseArgs parses the command line args into fs, flags before or after
// positional arguments, and returns the names of the flags given.
func parseArgs(fs *flag.FlagSet, args []string) (map[string]bool, error) {
	fs.SetOutput(io.Discard)
	// Flags may come after positional arguments ("allowlist add ID CIDR
	// --label L"): parse, set the first positional aside, repeat.
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, &helpError{fs}
			}
			return nil, usagef("%v", err)
		}
		if fs.NArg() == 0 {
			break
		}
		if i := len(args) - fs.NArg() - 1; i >= 0 && args[i] == "--" {
			positional = append(positional, fs.Args()...)
			break
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
	// Leave the positional arguments in fs.Args().
	fs.Parse(append([]string{"--"}, positional...))
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	return set, nil
}

// clientEnvFlags are the admin commands' flags that also come from the
// environment: where the daemon is and how to authenticate. A command's
// own flags (filters, names, output) come from its command line only: a
// KEYGATE_STATUS left in the environment must not filter an export.
var clientEnvFlags = []string{"server", "admin-token", "data"}

// parseFlags parses an admin command's args into fs, then fills the
// connection flags (clientEnvFlags) not given on the command line from
// KEYGATE_<FLAG> when that is set. It returns the names of the flags set
// either way.
func parseFlags(fs *flag.FlagSet, args []string) (map[string]bool, error) {
	set, err := parseArgs(fs, args)
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, name := range clientEnvFlags {
		if set[name] || fs.Lookup(name) == nil {
			continue
		}
		env := envName(name)
		if v, ok := os.LookupEnv(env); ok {
			if err := fs.Set(name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %v", env, v, err))
			}
			set[name] = true
		}
	}
	return set, configError(errors.Join(errs...))
}

// listFlag is a repeatable flag that also splits on commas.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

// repeatFlag is a repeatable flag that keeps each value whole.
type repeatFlag []string

func (l *repeatFlag) String() string     { return strings.Join(*l, " ") }
func (l *repeatFlag) Set(v string) error { *l = append(*l, v); return nil }
