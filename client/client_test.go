package client_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keygate/keygate/client"
)

const unavailable = `{"error":{"code":"UNAVAILABLE","message":"the store cannot take the write"}}`

// A 503 to a GET, PUT or DELETE is retried, a bounded number of times; a
// POST or PATCH, which might have been applied, is not.
func TestRetryOn503(t *testing.T) {
	var calls atomic.Int32
	fail := int32(2)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) <= fail {
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, unavailable)
			return
		}
		io.WriteString(w, `{"items":[]}`)
	}))
	defer srv.Close()
	c, err := client.New(srv.URL, "t", client.WithRetries(3, time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := c.ListKeys(ctx); err != nil || calls.Load() != 3 {
		t.Fatalf("GET: %v after %d calls, want success after 3", err, calls.Load())
	}
	calls.Store(0)
	_, err = c.CreateKey(ctx, client.NewKey{Name: "x"})
	if !client.IsUnavailable(err) || calls.Load() != 1 {
		t.Fatalf("POST: %v after %d calls, want 503 after 1", err, calls.Load())
	}
	calls.Store(0)
	fail = 100
	if _, err := c.RevokeKey(ctx, "key_x"); !client.IsUnavailable(err) || calls.Load() != 4 {
		t.Fatalf("DELETE: %v after %d calls, want 503 after 4 (1 + 3 retries)", err, calls.Load())
	}
}

// An export the daemon does not confirm with the row-count trailer, or
// confirms with another count, is an error.
func TestExportIncomplete(t *testing.T) {
	for _, tt := range []struct{ name, trailer, want string }{
		{"no trailer", "", "did not confirm"},
		{"wrong count", "5", "sent 5 rows, 2 arrived"},
		{"whole", "2", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Trailer", client.HeaderRows)
				io.WriteString(w, "time,key_id\n1,a\n2,\"b\nc\"\n")
				if tt.trailer != "" {
					w.Header().Set(client.HeaderRows, tt.trailer)
				}
			}))
			defer srv.Close()
			c, _ := client.New(srv.URL, "t")
			var out strings.Builder
			n, err := c.ExportLogs(context.Background(), client.LogFilter{}, &out)
			if tt.want == "" {
				if err != nil || n != 2 {
					t.Fatalf("got %d, %v; want 2 rows", n, err)
				}
				return
			}
			if !errors.Is(err, client.ErrIncompleteExport) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want ErrIncompleteExport mentioning %q", err, tt.want)
			}
		})
	}
}

// An error answer that is not keygate's JSON still becomes an *Error with
// its status.
func TestErrorNotJSON(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "bad gateway", http.StatusBadGateway)
	}))
	defer srv.Close()
	c, _ := client.New(srv.URL, "t")
	_, err := c.GetKey(context.Background(), "key_x")
	var e *client.Error
	if !errors.As(err, &e) || e.Status != 502 || e.Message != "bad gateway" {
		t.Fatalf("got %#v", err)
	}
}

// The body of a partial update names only the fields set, and null for a
// cleared expiry.
func TestUpdateBodies(t *testing.T) {
	var got string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got = r.Method + " " + r.URL.Path + " " + string(b)
		io.WriteString(w, `{}`)
	}))
	defer srv.Close()
	c, _ := client.New(srv.URL, "t")
	ctx := context.Background()
	name := "n"
	c.UpdateKey(ctx, "key_a", client.KeyUpdate{Name: &name, ClearExpiry: true})
	if want := `PATCH /v1/keys/key_a {"expires_at":null,"name":"n"}`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	c.UpdateEntry(ctx, "key_a", "ent_b", client.EntryUpdate{})
	if want := `PATCH /v1/keys/key_a/allowlist/ent_b {}`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}
