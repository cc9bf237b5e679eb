package server

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// TestExportHeadKeepsConnection: HEAD on the CSV export answers the
// export's headers without running it, and the connection stays open for
// the client's next request. The export used to start its stream writer
// for a HEAD too; with no body to write into it failed and closed the
// connection a moment later, under whatever request came next on it
// (TestSpecRoutesServed saw that as an EOF on a later method).
func TestExportHeadKeepsConnection(t *testing.T) {
	ts := startServer(t, nil)
	conn, err := net.Dial("tcp", strings.TrimPrefix(ts.adminURL, "http://"))
	must(t, err)
	defer conn.Close()
	br := bufio.NewReader(conn)
	_, err = conn.Write([]byte("HEAD /v1/logs/export.csv HTTP/1.1\r\nHost: kg\r\nAuthorization: Bearer " + testToken + "\r\n\r\n"))
	must(t, err)
	head, err := http.ReadResponse(br, &http.Request{Method: "HEAD"})
	must(t, err)
	head.Body.Close()
	if head.StatusCode != 200 || head.Header.Get("Content-Type") != "text/csv; charset=utf-8" ||
		!strings.HasPrefix(head.Header.Get("Content-Disposition"), "attachment; ") {
		t.Fatalf("HEAD: %d %v, want a GET's 200 and headers", head.StatusCode, head.Header)
	}
	if te := head.TransferEncoding; len(te) != 1 || te[0] != "chunked" {
		t.Errorf("HEAD: transfer encoding %v, want chunked as a GET has", te)
	}
	// Nothing more may come on the connection: no body, and no close.
	must(t, conn.SetReadDeadline(time.Now().Add(500*time.Millisecond)))
	if b, err := br.ReadByte(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("after HEAD the connection gave %q, %v; want it open and silent", b, err)
	}
	must(t, conn.SetReadDeadline(time.Time{}))
	_, err = conn.Write([]byte("GET /healthz HTTP/1.1\r\nHost: kg\r\n\r\n"))
	must(t, err)
	r, err := http.ReadResponse(br, nil)
	must(t, err)
	r.Body.Close()
	if r.StatusCode != 200 {
		t.Errorf("the next request on the connection: %d, want 200", r.StatusCode)
	}
}
