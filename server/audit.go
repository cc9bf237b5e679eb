package server

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/keygate/keygate/store"
)

// auditJSON is one change of the audit trail as GET /v1/audit shows it:
// the keys before and after as the key endpoints show them (never a
// secret or its hash).
type auditJSON struct {
	Seq    uint64    `json:"seq"`
	Time   time.Time `json:"time"`
	Actor  string    `json:"actor"`
	Action string    `json:"action"`
	KeyID  string    `json:"key_id"`
	Before *keyJSON  `json:"before"`
	After  *keyJSON  `json:"after"`
}

type auditPage struct {
	Items      []auditJSON `json:"items"`
	NextCursor string      `json:"next_cursor,omitempty"`
}

// handleAudit serves GET /v1/audit?key_id=&from=&to=&limit=&cursor=: the
// key changes, newest first, a page at a time (limit 1 to 1000, default
// 100); next_cursor, when present, fetches the next page.
func (s *Server) handleAudit(ctx *fasthttp.RequestCtx) {
	if !s.admitted(ctx) || !allowGet(ctx, true) {
		return
	}
	if string(ctx.Path()) != "/v1/audit" {
		writeError(ctx, errorf(errRouteNotFound, "no such endpoint: %s", ctx.Path()))
		return
	}
	if err := checkQuery(ctx, "key_id", "from", "to", "limit", "cursor"); err != nil {
		writeError(ctx, err)
		return
	}
	args := ctx.QueryArgs()
	q := store.AuditQuery{KeyID: string(args.Peek("key_id")), Limit: 100}
	var problems []string
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"from", &q.From}, {"to", &q.To}} {
		if v := string(args.Peek(p.name)); v != "" {
			t, problem := parseLogTime(p.name, v)
			if problem != "" {
				problems = append(problems, problem)
			}
			*p.dst = t
		}
	}
	if !q.From.IsZero() && !q.To.IsZero() && !q.From.Before(q.To) {
		problems = append(problems, "from must be before to")
	}
	if v := string(args.Peek("limit")); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > store.MaxAuditLimit {
			problems = append(problems, fmt.Sprintf("limit %q: want a number from 1 to %d", v, store.MaxAuditLimit))
		}
		q.Limit = n
	}
	if v := string(args.Peek("cursor")); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil || n == 0 {
			problems = append(problems, fmt.Sprintf("cursor %q: want the next_cursor of the previous page", v))
		}
		q.Before = n
	}
	if len(problems) > 0 {
		writeError(ctx, errorf(ErrBadRequest, "%s", strings.Join(problems, "; ")))
		return
	}
	cs, err := s.store.Audit(ctx, q)
	if err != nil {
		writeError(ctx, err)
		return
	}
	now := s.cfg.Now()
	page := auditPage{Items: make([]auditJSON, 0, len(cs))}
	for _, c := range cs {
		a := auditJSON{Seq: c.Seq, Time: c.Time.UTC(), Actor: c.Actor, Action: c.Action, KeyID: c.KeyID}
		if c.Before != nil {
			v := s.keyView(c.Before, now)
			a.Before = &v
		}
		if c.After != nil {
			v := s.keyView(c.After, now)
			a.After = &v
		}
		page.Items = append(page.Items, a)
	}
	if len(cs) == q.Limit && len(cs) > 0 && cs[len(cs)-1].Seq > 1 {
		page.NextCursor = strconv.FormatUint(cs[len(cs)-1].Seq, 10)
	}
	writeJSON(ctx, fasthttp.StatusOK, page)
}

// commit makes one management write through the key set and logs it:
// who, which key, what (never a secret).
func (s *Server) commit(ctx context.Context, write func() (store.Change, error)) (store.Change, error) {
	ch, err := s.keys.Commit(ctx, write)
	if err != nil {
		return ch, err
	}
	s.log.Info("key changed", "actor", ch.Actor, "action", ch.Action, "key_id", ch.KeyID, "seq", ch.Seq)
	return ch, nil
}
