package client_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/client"
	"github.com/keygate/keygate/server"
	badgerstore "github.com/keygate/keygate/store/badger"
)

// The examples run against an in-process daemon that TestMain starts
// over a Badger store in a temporary directory.
var (
	daemonURL string
	token     = "example-admin-token-0123456789"
	// seedKey has three checks in the usage log: two allowed, one from
	// an address off its list.
	seedKey string
)

func TestMain(m *testing.M) {
	code, err := runWithDaemon(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(code)
}

func runWithDaemon(m *testing.M) (int, error) {
	dir, err := os.MkdirTemp("", "keygate-client")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	st, err := badgerstore.Open(badgerstore.DefaultOptions(dir).WithFlushInterval(20 * time.Millisecond))
	if err != nil {
		return 0, err
	}
	defer st.Close()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := server.New(context.Background(), server.Config{AdminToken: token, Addr: "127.0.0.1:0", Logger: quiet}, st)
	if err != nil {
		return 0, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, server.Listeners{Check: ln}) }()
	defer func() { cancel(); <-done }()
	daemonURL = "http://" + ln.Addr().String()
	if err := seed(); err != nil {
		return 0, err
	}
	return m.Run(), nil
}

func seed() error {
	c := newClient()
	ctx := context.Background()
	k, err := c.CreateKey(ctx, client.NewKey{Name: "seed", Allowlist: []client.EntryInput{{CIDR: "203.0.113.5", Label: "office"}}})
	if err != nil {
		return err
	}
	seedKey = k.ID
	for _, ip := range []string{"203.0.113.5", "203.0.113.5", "198.51.100.7"} {
		body := fmt.Sprintf(`{"key":%q,"ip":%q,"method":"GET","path":"/orders"}`, k.Secret, ip)
		res, err := http.Post(daemonURL+"/v1/check", "application/json", strings.NewReader(body))
		if err != nil {
			return err
		}
		res.Body.Close()
	}
	for range 200 {
		p, err := c.QueryLogs(ctx, client.LogFilter{KeyID: seedKey})
		if err != nil {
			return err
		}
		if len(p.Items) == 3 {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return errors.New("the seed checks never reached the usage log")
}

func newClient() *client.Client {
	c, err := client.New(daemonURL, token, client.WithHTTPClient(&http.Client{Transport: validating{http.DefaultTransport}}))
	if err != nil {
		log.Fatal(err)
	}
	return c
}

func ExampleClient_CreateKey() {
	c := newClient()
	k, err := c.CreateKey(context.Background(), client.NewKey{
		Name:      "billing",
		Scopes:    []string{"orders:read"},
		Allowlist: []client.EntryInput{{CIDR: "203.0.113.0/24", Label: "office"}, {CIDR: "2001:db8::1"}},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(k.Name, k.Status, k.Scopes, strings.HasPrefix(k.Secret, "kg_"))
	for _, e := range k.Allowlist {
		fmt.Println(e.CIDR, e.Label, e.State)
	}
	// Output:
	// billing active [orders:read] true
	// 203.0.113.0/24 office active
	// 2001:db8::1/128  active
}

func ExampleClient_ListKeys() {
	c := newClient()
	ctx := context.Background()
	k, _ := c.CreateKey(ctx, client.NewKey{Name: "listed"})
	keys, err := c.ListKeys(ctx)
	if err != nil {
		log.Fatal(err)
	}
	for _, x := range keys {
		if x.ID == k.ID {
			fmt.Println(x.Name, x.Secret == "")
		}
	}
	// Output: listed true
}

func ExampleClient_GetKey() {
	c := newClient()
	_, err := c.GetKey(context.Background(), "key_doesnotexist")
	fmt.Println(client.IsNotFound(err))
	var e *client.Error
	if errors.As(err, &e) {
		fmt.Println(e.Status, e.Code)
	}
	// Output:
	// true
	// 404 NOT_FOUND
}

func ExampleClient_UpdateKey() {
	c := newClient()
	ctx := context.Background()
	exp := time.Date(2030, 1, 2, 15, 0, 0, 0, time.UTC)
	k, _ := c.CreateKey(ctx, client.NewKey{Name: "temp", ExpiresAt: &exp})
	name, on := "renamed", true
	k, err := c.UpdateKey(ctx, k.ID, client.KeyUpdate{Name: &name, ReportOnly: &on, ClearExpiry: true})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(k.Name, k.ReportOnly, k.ExpiresAt == nil)
	// Output: renamed true true
}

func ExampleClient_RevokeKey() {
	c := newClient()
	ctx := context.Background()
	k, _ := c.CreateKey(ctx, client.NewKey{Name: "old"})
	k, err := c.RevokeKey(ctx, k.ID)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(k.Status)
	name := "again"
	_, err = c.UpdateKey(ctx, k.ID, client.KeyUpdate{Name: &name})
	fmt.Println(client.IsConflict(err))
	// Output:
	// revoked
	// true
}

func ExampleClient_RotateKey() {
	c := newClient()
	ctx := context.Background()
	k, _ := c.CreateKey(ctx, client.NewKey{Name: "rotated"})
	r, err := c.RotateKey(ctx, k.ID, 24*time.Hour)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(r.Secret != k.Secret, r.PreviousSecret.Hint == k.Hint, r.PreviousSecret.Active)
	// Output: true true true
}

func ExampleClient_ReplaceAllowlist() {
	c := newClient()
	ctx := context.Background()
	k, _ := c.CreateKey(ctx, client.NewKey{Name: "replaced"})
	_, err := c.ReplaceAllowlist(ctx, k.ID, []client.EntryInput{{CIDR: "203.0.113.5/24"}, {CIDR: "10.0.0.1"}})
	var e *client.Error
	if errors.As(err, &e) {
		fmt.Println(e.Status, e.Code)
		for _, d := range e.Details {
			fmt.Printf("entry %d: %s %q\n", d.Index, d.Rule, d.Suggestion)
		}
	}
	al, err := c.ReplaceAllowlist(ctx, k.ID, []client.EntryInput{{CIDR: "203.0.113.0/24", Label: "office"}})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(al.Entries), al.Entries[0].CIDR)
	// Output:
	// 422 INVALID_ALLOWLIST
	// entry 0: host_bits_set "203.0.113.0/24"
	// entry 1: non_public_range ""
	// 1 203.0.113.0/24
}

func ExampleClient_AddEntry() {
	c := newClient()
	ctx := context.Background()
	k, _ := c.CreateKey(ctx, client.NewKey{Name: "added"})
	exp := time.Now().Add(3 * time.Hour)
	e, err := c.AddEntry(ctx, k.ID, client.EntryInput{CIDR: "198.51.100.7", Label: "contractor", ExpiresAt: &exp})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(e.CIDR, e.Label, e.State, e.ExpiresAt != nil)
	// Output: 198.51.100.7/32 contractor active true
}

func ExampleClient_UpdateEntry() {
	c := newClient()
	ctx := context.Background()
	k, _ := c.CreateKey(ctx, client.NewKey{Name: "edited", Allowlist: []client.EntryInput{{CIDR: "198.51.100.7"}}})
	off := true
	e, err := c.UpdateEntry(ctx, k.ID, k.Allowlist[0].ID, client.EntryUpdate{Disabled: &off})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(e.State)
	// Output: disabled
}

func ExampleClient_DeleteEntry() {
	c := newClient()
	ctx := context.Background()
	k, _ := c.CreateKey(ctx, client.NewKey{Name: "trimmed", Allowlist: []client.EntryInput{{CIDR: "198.51.100.7"}, {CIDR: "203.0.113.9"}}})
	al, err := c.DeleteEntry(ctx, k.ID, k.Allowlist[0].ID)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(al.Entries), al.Entries[0].CIDR)
	// Output: 1 203.0.113.9/32
}

func ExampleClient_GetAllowlist() {
	c := newClient()
	al, err := c.GetAllowlist(context.Background(), seedKey)
	if err != nil {
		log.Fatal(err)
	}
	for _, e := range al.Entries {
		fmt.Println(e.CIDR, e.Hits24h)
	}
	// Output: 203.0.113.5/32 2
}

func ExampleClient_DryRunAllowlist() {
	c := newClient()
	d, err := c.DryRunAllowlist(context.Background(), seedKey, []client.EntryInput{{CIDR: "198.51.100.0/24"}})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("blocked:", d.NewlyBlocked.Requests, d.NewlyBlocked.IPs[0].IP)
	fmt.Println("allowed:", d.NewlyAllowed.Requests, d.NewlyAllowed.IPs[0].IP)
	// Output:
	// blocked: 2 203.0.113.5
	// allowed: 1 198.51.100.7
}

func ExampleClient_Suggestions() {
	c := newClient()
	s, err := c.Suggestions(context.Background(), seedKey, client.SuggestionsOptions{Since: 24 * time.Hour, Aggregate: true})
	if err != nil {
		log.Fatal(err)
	}
	for _, x := range s.Suggestions {
		fmt.Println(x.CIDR, x.Requests, x.Allowed)
	}
	// Output:
	// 203.0.113.0/24 2 true
	// 198.51.100.0/24 1 false
}

func ExampleClient_QueryLogs() {
	c := newClient()
	p, err := c.QueryLogs(context.Background(), client.LogFilter{KeyID: seedKey, Code: "IP_NOT_ALLOWED"})
	if err != nil {
		log.Fatal(err)
	}
	for _, r := range p.Items {
		fmt.Println(r.IP, r.Status, r.Code, r.Path)
	}
	// Output: 198.51.100.7 403 IP_NOT_ALLOWED /orders
}

func ExampleClient_Logs() {
	c := newClient()
	n := 0
	// One record a page: the iterator follows next_cursor.
	for r, err := range c.Logs(context.Background(), client.LogFilter{KeyID: seedKey, Limit: 1}) {
		if err != nil {
			log.Fatal(err)
		}
		n++
		_ = r
	}
	fmt.Println(n, "records")
	// Output: 3 records
}

func ExampleClient_ExportLogs() {
	c := newClient()
	var csv bytes.Buffer
	rows, err := c.ExportLogs(context.Background(), client.LogFilter{KeyID: seedKey}, &csv)
	if err != nil {
		log.Fatal(err)
	}
	header, _, _ := strings.Cut(csv.String(), "\n")
	fmt.Println(rows, "rows")
	fmt.Println(header)
	// Output:
	// 3 rows
	// time,key_id,ip,method,path,status,code,entry_id,latency_us,secret_hint,node,key_name
}

func ExampleClient_Audit() {
	c := newClient()
	p, err := c.Audit(context.Background(), client.AuditFilter{KeyID: seedKey})
	if err != nil {
		log.Fatal(err)
	}
	for _, ch := range p.Items {
		fmt.Println(ch.Action, ch.Before == nil, ch.After.Name)
	}
	// Output: key.create true seed
}

func ExampleClient_Backup() {
	c := newClient()
	n, err := c.Backup(context.Background(), io.Discard)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(n > 0)
	// Output: true
}

func ExampleWithIfMatch() {
	c := newClient()
	ctx := context.Background()
	k, _ := c.CreateKey(ctx, client.NewKey{Name: "shared"})
	k, _ = c.GetKey(ctx, k.ID) // k.ETag: its version
	// A colleague changes the key meanwhile.
	other := "theirs"
	c.UpdateKey(ctx, k.ID, client.KeyUpdate{Name: &other})
	mine := "mine"
	_, err := c.UpdateKey(client.WithIfMatch(ctx, k.ETag), k.ID, client.KeyUpdate{Name: &mine})
	fmt.Println(client.IsPrecondition(err))
	// Read it again and reapply.
	k, _ = c.GetKey(ctx, k.ID)
	k, err = c.UpdateKey(client.WithIfMatch(ctx, k.ETag), k.ID, client.KeyUpdate{Name: &mine})
	fmt.Println(k.Name, err)
	// Output:
	// true
	// mine <nil>
}
