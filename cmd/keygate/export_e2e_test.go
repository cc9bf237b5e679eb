package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keygate/keygate/server"
)

// fillLog makes n usage-log records of about 600 bytes (forward-auth
// checks without a key, each with a 500-byte path) and waits until the
// daemon exports them all.
func fillLog(t *testing.T, d *kgProc, n int) {
	t.Helper()
	path := "/" + strings.Repeat("p", 500)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			c := &http.Client{}
			for i := w; i < n; i += 4 {
				req, _ := http.NewRequest("GET", d.url+"/v1/authz", nil)
				req.Header.Set("X-Forwarded-Uri", fmt.Sprintf("%s/%d", path, i))
				res, err := c.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
			}
		})
	}
	wg.Wait()
	deadline := time.Now().Add(20 * time.Second)
	for exportedRows(t, d) < n {
		require.True(t, time.Now().Before(deadline), "records not visible")
		time.Sleep(100 * time.Millisecond)
	}
}

// An export that outlasts the shutdown drain (a reader that stops
// reading) is cut off with its connection closed before the terminating
// chunk, never ended cleanly; the daemon still exits 0 once the drain is
// over. An export that finishes within the drain is whole, with its row
// count trailer, and the CLI exits 0.
func TestExportDuringShutdown(t *testing.T) {
	data := t.TempDir()
	env := []string{"KEYGATE_ADMIN_TOKEN=" + sigToken}
	d := startKeygate(t, data, env, "--shutdown-timeout", "1s")
	const n = 12000
	fillLog(t, d, n)

	// A reader with a small receive buffer that reads 4 KiB, then nothing
	// until the daemon has gone.
	dialer := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	conn, err := dialer.Dial("tcp", strings.TrimPrefix(d.admin, "http://"))
	require.NoError(t, err)
	defer conn.Close()
	fmt.Fprintf(conn, "GET /v1/logs/export.csv HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n", sigToken)
	first := make([]byte, 4096)
	_, err = io.ReadFull(conn, first)
	require.NoError(t, err)
	require.Contains(t, string(first), "200 OK")
	require.Contains(t, string(first), "Trailer: X-Keygate-Rows")

	start := time.Now()
	require.NoError(t, d.stop(t, syscall.SIGTERM), "exit status\n%s", d.Output())
	assert.Less(t, time.Since(start), 15*time.Second)
	assert.Contains(t, d.Output(), "aborted")

	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	rest, err := io.ReadAll(conn)
	require.NoError(t, err, "the connection is closed, not left open")
	all := append(first, rest...)
	assert.False(t, bytes.HasSuffix(all, []byte("0\r\n\r\n")) || bytes.Contains(all, []byte("X-Keygate-Rows:")),
		"a cut export ended like a whole one (%d bytes)", len(all))
	assert.Less(t, bytes.Count(all, []byte("\n")), n, "the export was not cut")

	// Within the drain: the same reader, reading on after the signal,
	// gets the whole export and its row count.
	d = startKeygate(t, data, env, "--shutdown-timeout", "20s")
	conn2, err := dialer.Dial("tcp", strings.TrimPrefix(d.admin, "http://"))
	require.NoError(t, err)
	defer conn2.Close()
	fmt.Fprintf(conn2, "GET /v1/logs/export.csv HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nConnection: close\r\n\r\n", sigToken)
	_, err = io.ReadFull(conn2, first)
	require.NoError(t, err)
	d.Signal(syscall.SIGTERM)
	conn2.SetReadDeadline(time.Now().Add(30 * time.Second))
	rest, err = io.ReadAll(conn2)
	require.NoError(t, err)
	all = append(first, rest...)
	assert.Contains(t, string(all[max(len(all)-200, 0):]), fmt.Sprintf("0\r\nX-Keygate-Rows: %d\r\n\r\n", n), "whole export with its trailer")
	require.NoError(t, d.exit(t), "exit status\n%s", d.Output())
}

// The CLI refuses an export that ends without the row-count trailer, or
// with a count that is not what arrived.
func TestCLIExportVerifiesRowCount(t *testing.T) {
	csv := "time,key_id\n2026-01-01T00:00:00Z,a\n2026-01-01T00:00:00Z,\"b\nc\"\n"
	for _, tt := range []struct {
		name, rows string
		ok         bool
	}{{"whole", "2", true}, {"no trailer", "", false}, {"short", "3", false}} {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Trailer", server.HeaderRows)
				w.Write([]byte(csv))
				if tt.rows != "" {
					w.Header().Set(server.HeaderRows, tt.rows)
				}
			}))
			defer srv.Close()
			code, stdout, stderr := runKeygate(t, nil, "logs", "export", "--server", srv.URL, "--admin-token", sigToken)
			if tt.ok {
				assert.Equal(t, 0, code, stderr)
				assert.Equal(t, csv, stdout)
			} else {
				assert.Equal(t, 1, code)
				assert.Contains(t, stderr, "export incomplete")
			}
		})
	}
}
