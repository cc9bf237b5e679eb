package server

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/keygate/keygate/engine"
	"github.com/keygate/keygate/store"
	"github.com/keygate/keygate/usagelog"
)

// actor names the management API in the store's audit trail.
const actor = "admin-api"

// keyJSON is a key as the management API shows it. The secret is set only
// in the creation response.
type keyJSON struct {
	ID          string      `json:"id"`
	Name        string      `json:"name"`
	Description string      `json:"description"`
	Scopes      []string    `json:"scopes"`
	Allowlist   []entryJSON `json:"allowlist"`
	CreatedAt   time.Time   `json:"created_at"`
	ExpiresAt   *time.Time  `json:"expires_at"`
	RevokedAt   *time.Time  `json:"revoked_at"`
	// Status is "active", "revoked" or "expired".
	Status     string     `json:"status"`
	Hint       string     `json:"hint"`
	LastUsedAt *time.Time `json:"last_used_at"`
	Secret     string     `json:"secret,omitempty"`
}

// entryJSON is an allowlist entry; CIDR is the stored (canonical) form.
type entryJSON struct {
	ID    string `json:"id"`
	CIDR  string `json:"cidr"`
	Label string `json:"label"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

func entryView(e engine.Entry) entryJSON { return entryJSON{ID: e.ID, CIDR: e.CIDR(), Label: e.Label} }

func entriesJSON(es []engine.Entry) []entryJSON {
	out := make([]entryJSON, len(es))
	for i, e := range es {
		out[i] = entryView(e)
	}
	return out
}

func (s *Server) keyView(k *engine.Key, now time.Time) keyJSON {
	status := "active"
	switch {
	case !k.RevokedAt.IsZero():
		status = "revoked"
	case !k.Active(now):
		status = "expired"
	}
	scopes := k.Scopes
	if scopes == nil {
		scopes = []string{}
	}
	return keyJSON{
		ID: k.ID, Name: k.Name, Description: k.Description, Scopes: scopes,
		Allowlist: entriesJSON(k.Allowlist),
		CreatedAt: k.CreatedAt.UTC(), ExpiresAt: timePtr(k.ExpiresAt), RevokedAt: timePtr(k.RevokedAt),
		Status: status, Hint: k.Hint, LastUsedAt: timePtr(s.store.LastUsed(k.ID)),
	}
}

// authorized reports whether ctx carries the admin token.
func (s *Server) authorized(ctx *fasthttp.RequestCtx) bool {
	tok := bearerToken(ctx.Request.Header.Peek(fasthttp.HeaderAuthorization))
	return len(tok) > 0 && tokenEqual(tok, &s.adminHash)
}

func writeJSON(ctx *fasthttp.RequestCtx, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(ctx, fmt.Errorf("server: encoding response: %w", err))
		return
	}
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.Response.Header.Set("Cache-Control", "no-store")
	ctx.SetBody(append(b, '\n'))
}

// handleKeys serves everything under /v1/keys.
func (s *Server) handleKeys(ctx *fasthttp.RequestCtx) {
	if !s.authorized(ctx) {
		writeError(ctx, errorf(errUnauthorized, "missing or wrong admin token: send Authorization: Bearer <admin token>"))
		return
	}
	parts := strings.Split(strings.Trim(string(ctx.Path()), "/"), "/")[2:] // drop "v1", "keys"
	m := string(ctx.Method())
	c := context.Background()
	var err error
	switch {
	case len(parts) == 0:
		switch m {
		case fasthttp.MethodGet:
			err = s.listKeys(ctx, c)
		case fasthttp.MethodPost:
			err = s.createKey(ctx, c)
		default:
			err = methodNotAllowed("GET, POST")
		}
	case len(parts) == 1:
		switch m {
		case fasthttp.MethodGet:
			err = s.getKey(ctx, c, parts[0])
		case fasthttp.MethodPatch:
			err = s.patchKey(ctx, c, parts[0])
		case fasthttp.MethodDelete:
			err = s.revokeKey(ctx, c, parts[0])
		default:
			err = methodNotAllowed("GET, PATCH, DELETE")
		}
	case len(parts) == 2 && parts[1] == "allowlist":
		switch m {
		case fasthttp.MethodGet:
			err = s.getAllowlist(ctx, c, parts[0])
		case fasthttp.MethodPut:
			err = s.putAllowlist(ctx, c, parts[0])
		case fasthttp.MethodPost:
			err = s.addEntry(ctx, c, parts[0])
		default:
			err = methodNotAllowed("GET, PUT, POST")
		}
	case len(parts) == 3 && parts[1] == "allowlist":
		switch m {
		case fasthttp.MethodPatch:
			err = s.patchEntry(ctx, c, parts[0], parts[2])
		case fasthttp.MethodDelete:
			err = s.deleteEntry(ctx, c, parts[0], parts[2])
		default:
			err = methodNotAllowed("PATCH, DELETE")
		}
	default:
		err = errorf(errRouteNotFound, "no such endpoint: %s", ctx.Path())
	}
	if err != nil {
		writeError(ctx, err)
	}
}

func methodNotAllowed(allow string) error {
	return errorf(errMethodNotAllowed, "method not allowed here; use %s", allow)
}

func (s *Server) listKeys(ctx *fasthttp.RequestCtx, c context.Context) error {
	keys, err := s.store.ListKeys(c)
	if err != nil {
		return err
	}
	now := time.Now()
	items := make([]keyJSON, len(keys))
	for i, k := range keys {
		items[i] = s.keyView(k, now)
	}
	writeJSON(ctx, fasthttp.StatusOK, map[string]any{"items": items})
	return nil
}

func (s *Server) getKey(ctx *fasthttp.RequestCtx, c context.Context, id string) error {
	k, err := s.store.GetKey(c, id)
	if err != nil {
		return err
	}
	writeJSON(ctx, fasthttp.StatusOK, s.keyView(k, time.Now()))
	return nil
}

type createKeyRequest struct {
	Name        string              `json:"name"`
	Description string              `json:"description"`
	Scopes      []string            `json:"scopes"`
	Allowlist   []engine.EntryInput `json:"allowlist"`
	ExpiresAt   *time.Time          `json:"expires_at"`
}

func (s *Server) createKey(ctx *fasthttp.RequestCtx, c context.Context) error {
	var req createKeyRequest
	if err := decodeJSON(ctx, &req); err != nil {
		return err
	}
	now := time.Now().UTC()
	var problems []string
	req.Name = strings.TrimSpace(req.Name)
	problems = engine.TextProblems(problems, "name", req.Name, engine.MaxNameLen, true, false)
	problems = engine.TextProblems(problems, "description", req.Description, engine.MaxDescriptionLen, false, true)
	scopes, sp := engine.CheckScopes(req.Scopes)
	problems = append(problems, sp...)
	if p := expiryProblem(req.ExpiresAt, now); p != "" {
		problems = append(problems, p)
	}
	if len(problems) > 0 {
		return errorf(ErrInvalid, "%s; nothing was created", strings.Join(problems, "; "))
	}
	for i := range req.Allowlist {
		req.Allowlist[i].ID = ""
	}
	entries, err := s.policy.BuildAllowlist(req.Allowlist)
	if err != nil {
		return err
	}
	secret, hint := engine.NewSecret()
	k := &engine.Key{
		ID: engine.NewKeyID(), Name: req.Name, Description: req.Description, Scopes: scopes,
		Hash: engine.HashSecret([]byte(secret)), Hint: hint, CreatedAt: now, Allowlist: entries,
	}
	if req.ExpiresAt != nil {
		k.ExpiresAt = req.ExpiresAt.UTC()
	}
	ch, err := s.keys.Commit(c, func() (store.Change, error) { return s.store.CreateKey(c, k.Clone(), actor) })
	if err != nil {
		return err
	}
	view := s.keyView(ch.After, now)
	view.Secret = secret
	writeJSON(ctx, fasthttp.StatusCreated, view)
	return nil
}

type patchKeyRequest struct {
	Name        *string              `json:"name"`
	Description *string              `json:"description"`
	Scopes      *[]string            `json:"scopes"`
	ExpiresAt   expiryField          `json:"expires_at"`
	Allowlist   *[]engine.EntryInput `json:"allowlist"`
}

func errRevoked(id string) error {
	return errorf(ErrConflict, "key %s is revoked and cannot be changed", id)
}

func (s *Server) patchKey(ctx *fasthttp.RequestCtx, c context.Context, id string) error {
	var req patchKeyRequest
	if err := decodeJSON(ctx, &req); err != nil {
		return err
	}
	var problems []string
	if req.Name != nil {
		*req.Name = strings.TrimSpace(*req.Name)
		problems = engine.TextProblems(problems, "name", *req.Name, engine.MaxNameLen, true, false)
	}
	if req.Description != nil {
		problems = engine.TextProblems(problems, "description", *req.Description, engine.MaxDescriptionLen, false, true)
	}
	var scopes []string
	if req.Scopes != nil {
		var sp []string
		scopes, sp = engine.CheckScopes(*req.Scopes)
		problems = append(problems, sp...)
	}
	if p := expiryProblem(req.ExpiresAt.At, time.Now()); req.ExpiresAt.Set && p != "" {
		problems = append(problems, p)
	}
	if len(problems) > 0 {
		return errorf(ErrInvalid, "%s; nothing was changed", strings.Join(problems, "; "))
	}
	ch, err := s.keys.Commit(c, func() (store.Change, error) {
		return s.store.UpdateKey(c, id, actor, "key.update", func(k *engine.Key) error {
			if !k.RevokedAt.IsZero() {
				return errRevoked(id)
			}
			if req.Name != nil {
				k.Name = *req.Name
			}
			if req.Description != nil {
				k.Description = *req.Description
			}
			if req.Scopes != nil {
				k.Scopes = scopes
			}
			if req.ExpiresAt.Set {
				k.ExpiresAt = time.Time{}
				if req.ExpiresAt.At != nil {
					k.ExpiresAt = req.ExpiresAt.At.UTC()
				}
			}
			if req.Allowlist != nil {
				entries, err := s.policy.MergeEntries(k.Allowlist, *req.Allowlist)
				if err != nil {
					return err
				}
				k.Allowlist = entries
			}
			return nil
		})
	})
	if err != nil {
		return err
	}
	writeJSON(ctx, fasthttp.StatusOK, s.keyView(ch.After, time.Now()))
	return nil
}

func (s *Server) revokeKey(ctx *fasthttp.RequestCtx, c context.Context, id string) error {
	ch, err := s.keys.Commit(c, func() (store.Change, error) {
		return s.store.UpdateKey(c, id, actor, "key.revoke", func(k *engine.Key) error {
			if k.RevokedAt.IsZero() {
				k.RevokedAt = time.Now().UTC()
			}
			return nil
		})
	})
	if err != nil {
		return err
	}
	writeJSON(ctx, fasthttp.StatusOK, s.keyView(ch.After, time.Now()))
	return nil
}

// allowlistJSON is the body of the allowlist endpoints.
type allowlistJSON struct {
	KeyID   string      `json:"key_id"`
	Entries []entryJSON `json:"entries"`
}

func (s *Server) getAllowlist(ctx *fasthttp.RequestCtx, c context.Context, id string) error {
	k, err := s.store.GetKey(c, id)
	if err != nil {
		return err
	}
	writeJSON(ctx, fasthttp.StatusOK, allowlistJSON{KeyID: k.ID, Entries: entriesJSON(k.Allowlist)})
	return nil
}

type putAllowlistRequest struct {
	Entries *[]engine.EntryInput `json:"entries"`
}

// updateAllowlist replaces key id's allowlist with what fn makes of the
// current one, all or nothing.
func (s *Server) updateAllowlist(c context.Context, id, action string, fn func(cur []engine.Entry) ([]engine.EntryInput, error)) (store.Change, error) {
	return s.keys.Commit(c, func() (store.Change, error) {
		return s.store.UpdateKey(c, id, actor, action, func(k *engine.Key) error {
			if !k.RevokedAt.IsZero() {
				return errRevoked(id)
			}
			in, err := fn(k.Allowlist)
			if err != nil {
				return err
			}
			entries, err := s.policy.MergeEntries(k.Allowlist, in)
			if err != nil {
				return err
			}
			k.Allowlist = entries
			return nil
		})
	})
}

func inputsOf(es []engine.Entry) []engine.EntryInput {
	out := make([]engine.EntryInput, len(es))
	for i, e := range es {
		out[i] = engine.EntryInput{ID: e.ID, CIDR: e.CIDR(), Label: e.Label}
	}
	return out
}

func (s *Server) putAllowlist(ctx *fasthttp.RequestCtx, c context.Context, id string) error {
	var req putAllowlistRequest
	if err := decodeJSON(ctx, &req); err != nil {
		return err
	}
	if req.Entries == nil {
		return errorf(ErrBadRequest, `the body must be {"entries":[{"cidr":"203.0.113.5","label":"..."}]} ("entries":[] clears the allowlist)`)
	}
	ch, err := s.updateAllowlist(c, id, "allowlist.replace", func([]engine.Entry) ([]engine.EntryInput, error) {
		return *req.Entries, nil
	})
	if err != nil {
		return err
	}
	writeJSON(ctx, fasthttp.StatusOK, allowlistJSON{KeyID: ch.After.ID, Entries: entriesJSON(ch.After.Allowlist)})
	return nil
}

type entryRequest struct {
	CIDR  *string `json:"cidr"`
	Label *string `json:"label"`
}

func (s *Server) addEntry(ctx *fasthttp.RequestCtx, c context.Context, id string) error {
	var req entryRequest
	if err := decodeJSON(ctx, &req); err != nil {
		return err
	}
	if req.CIDR == nil {
		return errorf(ErrBadRequest, `the body must be {"cidr":"203.0.113.5","label":"..."}`)
	}
	in := engine.EntryInput{CIDR: *req.CIDR}
	if req.Label != nil {
		in.Label = *req.Label
	}
	var before []engine.Entry
	ch, err := s.updateAllowlist(c, id, "allowlist.add", func(cur []engine.Entry) ([]engine.EntryInput, error) {
		before = cur
		return append(inputsOf(cur), in), nil
	})
	if err != nil {
		return err
	}
	for _, e := range ch.After.Allowlist {
		if !slices.ContainsFunc(before, func(x engine.Entry) bool { return x.ID == e.ID }) {
			writeJSON(ctx, fasthttp.StatusCreated, entryView(e))
			return nil
		}
	}
	return fmt.Errorf("server: added entry not found in the stored key %s", id)
}

func (s *Server) patchEntry(ctx *fasthttp.RequestCtx, c context.Context, id, entryID string) error {
	var req entryRequest
	if err := decodeJSON(ctx, &req); err != nil {
		return err
	}
	ch, err := s.updateAllowlist(c, id, "allowlist.update", func(cur []engine.Entry) ([]engine.EntryInput, error) {
		in := inputsOf(cur)
		i := slices.IndexFunc(in, func(e engine.EntryInput) bool { return e.ID == entryID })
		if i < 0 {
			return nil, errorf(ErrNotFound, "key %s has no allowlist entry %s", id, entryID)
		}
		if req.CIDR != nil {
			in[i].CIDR = *req.CIDR
		}
		if req.Label != nil {
			in[i].Label = *req.Label
		}
		return in, nil
	})
	if err != nil {
		return err
	}
	for _, e := range ch.After.Allowlist {
		if e.ID == entryID {
			writeJSON(ctx, fasthttp.StatusOK, entryView(e))
			return nil
		}
	}
	return fmt.Errorf("server: edited entry %s not found in the stored key %s", entryID, id)
}

func (s *Server) deleteEntry(ctx *fasthttp.RequestCtx, c context.Context, id, entryID string) error {
	ch, err := s.updateAllowlist(c, id, "allowlist.remove", func(cur []engine.Entry) ([]engine.EntryInput, error) {
		in := inputsOf(cur)
		i := slices.IndexFunc(in, func(e engine.EntryInput) bool { return e.ID == entryID })
		if i < 0 {
			return nil, errorf(ErrNotFound, "key %s has no allowlist entry %s", id, entryID)
		}
		return slices.Delete(in, i, i+1), nil
	})
	if err != nil {
		return err
	}
	writeJSON(ctx, fasthttp.StatusOK, allowlistJSON{KeyID: ch.After.ID, Entries: entriesJSON(ch.After.Allowlist)})
	return nil
}

// handleLogs serves GET /v1/logs and GET /v1/logs/export.csv.
func (s *Server) handleLogs(ctx *fasthttp.RequestCtx) {
	if !s.authorized(ctx) {
		writeError(ctx, errorf(errUnauthorized, "missing or wrong admin token: send Authorization: Bearer <admin token>"))
		return
	}
	if !ctx.IsGet() && !ctx.IsHead() {
		writeError(ctx, methodNotAllowed("GET"))
		return
	}
	f, err := parseLogFilter(ctx.QueryArgs())
	if err != nil {
		writeError(ctx, err)
		return
	}
	switch string(ctx.Path()) {
	case "/v1/logs":
		page, err := s.store.QueryLogs(context.Background(), f)
		if err != nil {
			writeError(ctx, err)
			return
		}
		if page.Items == nil {
			page.Items = []usagelog.Record{}
		}
		writeJSON(ctx, fasthttp.StatusOK, page)
	case "/v1/logs/export.csv":
		f.Limit, f.Cursor = 0, ""
		ctx.SetContentType("text/csv; charset=utf-8")
		ctx.Response.Header.Set("Cache-Control", "no-store")
		ctx.Response.Header.Set("Content-Disposition", `attachment; filename="keygate-usage-logs-`+time.Now().UTC().Format("20060102T150405Z")+`.csv"`)
		dw := &deadlineWriter{conn: ctx.Conn(), timeout: s.cfg.WriteTimeout}
		ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
			dw.w = w
			if _, err := s.store.ExportCSV(context.Background(), dw, f); err != nil {
				// The status line is gone; all that is left is to stop
				// early and say so where an operator will see it.
				s.log.Warn("CSV export failed", "err", err)
			}
			w.Flush()
		})
	default:
		writeError(ctx, errorf(errRouteNotFound, "no such endpoint: %s", ctx.Path()))
	}
}

// deadlineWriter moves the connection's write deadline forward while a
// streamed response makes progress, so that WriteTimeout bounds a stall
// rather than the length of an export: fasthttp sets one deadline per
// response, which cut large exports off mid-row with a 200 already sent.
type deadlineWriter struct {
	w       *bufio.Writer
	conn    net.Conn
	timeout time.Duration
	renewAt time.Time
}

func (d *deadlineWriter) Write(p []byte) (int, error) {
	if now := time.Now(); now.After(d.renewAt) {
		d.conn.SetWriteDeadline(now.Add(d.timeout))
		d.renewAt = now.Add(d.timeout / 4)
	}
	return d.w.Write(p)
}

// parseLogFilter reads the log filters from the query string.
func parseLogFilter(args *fasthttp.Args) (usagelog.Filter, error) {
	var f usagelog.Filter
	var problems []string
	f.KeyID = string(args.Peek("key_id"))
	f.Method = strings.ToUpper(string(args.Peek("method")))
	f.Cursor = string(args.Peek("cursor"))
	if st := string(args.Peek("status")); st != "" {
		if _, _, err := usagelog.ParseStatusFilter(st); err != nil {
			problems = append(problems, fmt.Sprintf("status %q: want a status code such as 403 or a class such as 4xx", st))
		}
		f.Status = strings.ToLower(st)
	}
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"from", &f.From}, {"to", &f.To}} {
		v := string(args.Peek(p.name))
		if v == "" {
			continue
		}
		t, problem := parseLogTime(p.name, v)
		if problem != "" {
			problems = append(problems, problem)
			continue
		}
		*p.dst = t
	}
	if usagelog.CheckRange(f.From, f.To) != nil {
		problems = append(problems, "from must be before to")
	}
	if v := string(args.Peek("limit")); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > usagelog.MaxLimit {
			problems = append(problems, fmt.Sprintf("limit %q: want a number from 1 to %d", v, usagelog.MaxLimit))
		}
		f.Limit = n
	}
	if len(problems) > 0 {
		return f, errorf(ErrBadRequest, "%s", strings.Join(problems, "; "))
	}
	return f, nil
}

