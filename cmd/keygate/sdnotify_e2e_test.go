package main

import (
	"net"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestSystemdNotify: with NOTIFY_SOCKET set, as systemd sets it for a
// Type=notify service, the daemon sends READY=1 once its listeners are
// open (the banner printed) and STOPPING=1 when a stop signal arrives.
func TestSystemdNotify(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	d := startKeygate(t, filepath.Join(dir, "data"), []string{"NOTIFY_SOCKET=" + sock})
	read := func() string {
		t.Helper()
		buf := make([]byte, 256)
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("reading the notify socket: %v", err)
		}
		return string(buf[:n])
	}
	if got := read(); got != "READY=1" {
		t.Errorf("first notification %q, want READY=1", got)
	}
	wantStatus := call(t, "GET", d.url+"/readyz", "", nil).status
	if wantStatus != 200 {
		t.Errorf("/readyz %d after READY=1", wantStatus)
	}
	d.Signal(syscall.SIGTERM)
	if got := read(); got != "STOPPING=1" {
		t.Errorf("after SIGTERM %q, want STOPPING=1", got)
	}
	if err := d.exit(t); err != nil {
		t.Errorf("exit: %v", err)
	}
}
