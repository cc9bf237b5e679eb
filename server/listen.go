package server

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strings"
	"syscall"
	"time"
)

// unixPrefix marks a listen address as a Unix-domain socket path:
// "unix:/run/keygate/check.sock".
const unixPrefix = "unix:"

// DefaultSocketMode is the file mode of a Unix-domain socket listener
// unless Config.SocketMode says otherwise: owner and group may connect.
const DefaultSocketMode fs.FileMode = 0o660

// maxSocketPath is the longest socket path the kernel takes (sun_path is
// 108 bytes on Linux, one of them the terminating NUL).
const maxSocketPath = 107

// socketPath returns the path of a "unix:" listen address.
func socketPath(addr string) (string, bool) {
	p, ok := strings.CutPrefix(addr, unixPrefix)
	return p, ok
}

// ValidateListenAddr checks one listen address: host:port, or unix:PATH.
// name is the setting's name, for the error.
func ValidateListenAddr(name, v string) error { return validateListenAddr(name, v) }

// ListenOn opens a listener as Listen does for Addr: TCP for host:port, a
// Unix-domain socket of file mode mode (0: DefaultSocketMode) for unix:PATH.
// For other listeners of the daemon, such as the gRPC one.
func ListenOn(addr string, mode fs.FileMode) (net.Listener, error) {
	if mode == 0 {
		mode = DefaultSocketMode
	}
	return listen(addr, mode)
}

// validateListenAddr checks one listen address: host:port, or unix:PATH.
func validateListenAddr(name, v string) error {
	p, ok := socketPath(v)
	if !ok {
		if _, _, err := net.SplitHostPort(v); err != nil {
			return fmt.Errorf("%s %q: want host:port, e.g. 127.0.0.1:8080, or unix:/path/to.sock", name, v)
		}
		return nil
	}
	switch {
	case p == "":
		return fmt.Errorf("%s %q: a Unix socket address needs a path, e.g. unix:/run/keygate/check.sock", name, v)
	case len(p) > maxSocketPath:
		return fmt.Errorf("%s %q: the socket path is %d bytes, longer than the %d a Unix socket address holds", name, v, len(p), maxSocketPath)
	case strings.HasPrefix(p, "@"):
		return fmt.Errorf("%s %q: abstract sockets (@name) have no file mode to restrict who connects; give a file path", name, v)
	}
	return nil
}

// listen opens one listener: TCP for host:port, a Unix-domain socket with
// file mode mode for unix:PATH. A socket file left by a daemon that is
// gone (nobody accepts on it) is replaced; one a live process serves is an
// "in use" error, and so is a path that is not a socket: nothing else is
// ever removed.
func listen(addr string, mode fs.FileMode) (net.Listener, error) {
	path, ok := socketPath(addr)
	if !ok {
		return net.Listen("tcp", addr)
	}
	if err := removeStaleSocket(path); err != nil {
		return nil, err
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	// The daemon's umask (077) made the socket owner-only until now.
	if err := os.Chmod(path, mode); err != nil {
		ln.Close()
		return nil, fmt.Errorf("setting the mode of %s to %04o: %w", path, mode, err)
	}
	return ln, nil
}

// removeStaleSocket removes the socket file at path if no process accepts
// on it, and fails if one does or if path is not a socket.
func removeStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode()&fs.ModeSocket == 0 {
		return fmt.Errorf("%s exists and is not a socket: not replacing it", path)
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("%s is in use: another process accepts connections on it", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("%s: cannot tell whether the socket is in use: %w", path, err)
	}
	// Refused: the socket's listener is gone (a killed daemon).
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing the stale socket %s: %w", path, err)
	}
	return nil
}

// ListenAddr is ln's address as --addr takes it: host:port, or unix:PATH.
func ListenAddr(ln net.Listener) string {
	if a, ok := ln.Addr().(*net.UnixAddr); ok {
		return unixPrefix + a.Name
	}
	return ln.Addr().String()
}
