// Package client is a Go client for keygate's management API: keys,
// allowlists (with dry runs and suggestions), usage logs (paged queries
// and streamed CSV exports), the audit trail and backups.
//
// Every call takes a context.Context. An error answer of the daemon is
// returned as an *Error (use errors.As, or IsNotFound and the other
// helpers); a daemon that cannot be reached is a wrapped transport error.
// A 503 UNAVAILABLE is retried a few times with backoff when retrying is
// safe: for GET, HEAD, PUT and DELETE requests, which the server applies
// at most once in effect. A POST (create, rotate, add an entry) or PATCH
// is never retried: the daemon says nothing was applied on a 503, but
// whether a write committed cannot always be known by the side whose
// connection to the database broke, and a repeated create makes a second
// key. Writes to a key can be made conditional on its
// version (Key.ETag, WithIfMatch), so that two editors never overwrite
// each other unknowingly. The API is described by api/openapi.yaml, also
// served at GET /v1/openapi.json.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Client talks to one keygate daemon. It is safe for concurrent use.
type Client struct {
	base    string
	token   string
	http    *http.Client
	retries int
	backoff time.Duration
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient sends the requests with h instead of a client with a 30 s
// response-header timeout and no overall timeout (a streamed export lasts
// as long as it makes progress).
func WithHTTPClient(h *http.Client) Option { return func(c *Client) { c.http = h } }

// WithRetries sets how many times a 503 answer to a safe request is
// retried (default 3; 0 never retries) and the first wait (default
// 200 ms), which doubles after each try, with jitter.
func WithRetries(n int, first time.Duration) Option {
	return func(c *Client) { c.retries, c.backoff = max(n, 0), first }
}

// New returns a client of the daemon at baseURL (http://host:port, or a
// bare host:port) that authenticates with the admin token.
func New(baseURL, token string, opts ...Option) (*Client, error) {
	if !strings.Contains(baseURL, "://") {
		baseURL = "http://" + baseURL
	}
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("client: base URL %q: want the daemon's address, e.g. http://127.0.0.1:8080", baseURL)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.ResponseHeaderTimeout = 30 * time.Second
	c := &Client{base: strings.TrimRight(baseURL, "/"), token: token, http: &http.Client{Transport: tr}, retries: 3, backoff: 200 * time.Millisecond}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// BaseURL returns the daemon's address as the client uses it.
func (c *Client) BaseURL() string { return c.base }

// Error is an error answer of the daemon: its HTTP status and the body's
// code and message, and for INVALID_ALLOWLIST one problem per bad entry.
type Error struct {
	Status  int
	Code    string
	Message string
	Details []EntryProblem
}

// EntryProblem is what is wrong with one allowlist entry of a request.
type EntryProblem struct {
	// Index is the entry's position in the request, from 0.
	Index int `json:"index"`
	// Input is the entry as sent.
	Input string `json:"input"`
	// Rule is the rule broken: malformed, prefix_too_broad,
	// host_bits_set, duplicate, non_public_range, too_many_entries,
	// invalid_label, duplicate_id, unknown_id or invalid_expiry.
	Rule    string `json:"rule"`
	Message string `json:"message"`
	// Suggestion is what to enter instead, when it can be told.
	Suggestion string `json:"suggestion,omitempty"`
}

// Error formats the status, code and message, then one line per entry
// problem.
func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d %s: %s", e.Status, e.Code, e.Message)
	for _, d := range e.Details {
		fmt.Fprintf(&b, "\n  entry %d %q (%s): %s", d.Index+1, d.Input, d.Rule, d.Message)
		if d.Suggestion != "" {
			fmt.Fprintf(&b, " — suggestion: %s", d.Suggestion)
		}
	}
	return b.String()
}

func hasStatus(err error, status int) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == status
}

// IsNotFound reports whether err is a 404 answer (no such key or entry).
func IsNotFound(err error) bool { return hasStatus(err, http.StatusNotFound) }

// IsConflict reports whether err is a 409 answer (the key is revoked).
func IsConflict(err error) bool { return hasStatus(err, http.StatusConflict) }

// IsPrecondition reports whether err is a 412 answer: the resource changed
// since the version an If-Match named.
func IsPrecondition(err error) bool { return hasStatus(err, http.StatusPreconditionFailed) }

// IsInvalid reports whether err is a 422 answer (VALIDATION_FAILED or
// INVALID_ALLOWLIST; see Error.Details).
func IsInvalid(err error) bool { return hasStatus(err, http.StatusUnprocessableEntity) }

// IsUnavailable reports whether err is a 503 answer (shutting down, or the
// store cannot take the write; nothing was applied).
func IsUnavailable(err error) bool { return hasStatus(err, http.StatusServiceUnavailable) }

// Do sends one request with in (unless nil) as its JSON body and decodes a
// JSON answer into out (unless nil). path is below the base URL, query
// included. Every typed method is built on it; it is exported for
// callers that want the answer as the daemon wrote it (a
// json.RawMessage out).
func (c *Client) Do(ctx context.Context, method, path string, in, out any) error {
	res, err := c.Send(ctx, method, path, in)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if out == nil {
		_, err = io.Copy(io.Discard, res.Body)
		return err
	}
	if err := json.NewDecoder(res.Body).Decode(out); err != nil {
		return fmt.Errorf("client: %s %s: reading the answer: %w", method, path, err)
	}
	if t, ok := out.(interface{ setETag(string) }); ok {
		t.setETag(res.Header.Get("ETag"))
	}
	return nil
}

type ifMatchKey struct{}

// WithIfMatch returns a context under which a write is conditional: it
// sends If-Match: etag (a Key.ETag), and applies only if the key is still
// at that version; else the answer is 412 PRECONDITION_FAILED
// (IsPrecondition) and nothing changed. "*" matches any version.
func WithIfMatch(ctx context.Context, etag string) context.Context {
	return context.WithValue(ctx, ifMatchKey{}, etag)
}

// Send sends one request and returns a 2xx response for the caller to
// read and close; any other answer is returned as an *Error. A 503 to a
// GET, HEAD, PUT or DELETE is retried (see WithRetries).
func (c *Client) Send(ctx context.Context, method, path string, in any) (*http.Response, error) {
	var body []byte
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("client: encoding the request: %w", err)
		}
		body = b
	}
	retry := method == http.MethodGet || method == http.MethodHead || method == http.MethodPut || method == http.MethodDelete
	wait := c.backoff
	for try := 0; ; try++ {
		res, err := c.send(ctx, method, path, body)
		if err == nil || !retry || try >= c.retries || !IsUnavailable(err) {
			return res, err
		}
		d := wait/2 + rand.N(wait/2+1)
		wait *= 2
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(d):
		}
	}
}

func (c *Client) send(ctx context.Context, method, path string, body []byte) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if t, _ := ctx.Value(ifMatchKey{}).(string); t != "" && method != http.MethodGet && method != http.MethodHead {
		req.Header.Set("If-Match", t)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the keygate daemon at %s: %w", c.base, err)
	}
	if res.StatusCode/100 == 2 {
		return res, nil
	}
	defer res.Body.Close()
	var eb struct {
		Error struct {
			Code    string         `json:"code"`
			Message string         `json:"message"`
			Details []EntryProblem `json:"details"`
		} `json:"error"`
	}
	b, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if json.Unmarshal(b, &eb) != nil || eb.Error.Code == "" {
		return nil, &Error{Status: res.StatusCode, Code: http.StatusText(res.StatusCode), Message: strings.TrimSpace(string(b))}
	}
	return nil, &Error{Status: res.StatusCode, Code: eb.Error.Code, Message: eb.Error.Message, Details: eb.Error.Details}
}

func keyPath(id string) string { return "/v1/keys/" + url.PathEscape(id) }
