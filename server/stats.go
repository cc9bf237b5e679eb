package server

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/keygate/keygate/usagelog"
)

// Defaults of GET /v1/logs/stats.
const (
	defaultStatsRange  = 24 * time.Hour
	defaultStatsBucket = time.Hour
)

// logStats is the body of GET /v1/logs/stats.
type logStats struct {
	KeyID         string            `json:"key_id"`
	From          time.Time         `json:"from"`
	To            time.Time         `json:"to"`
	Bucket        string            `json:"bucket"`
	BucketSeconds int64             `json:"bucket_seconds"`
	Buckets       []usagelog.Bucket `json:"buckets"`
	// Totals sums the buckets (its start is from).
	Totals usagelog.Bucket `json:"totals"`
}

// handleLogStats serves GET /v1/logs/stats: the usage log counted per time
// bucket by the store (allowed, of them report-only, 401, 403, other).
func (s *Server) handleLogStats(ctx *fasthttp.RequestCtx) {
	if !s.admitted(ctx) || !allowGet(ctx, true) {
		return
	}
	if err := checkQuery(ctx, "key_id", "from", "to", "bucket"); err != nil {
		writeError(ctx, err)
		return
	}
	q, err := s.parseBucketQuery(ctx.QueryArgs())
	if err != nil {
		writeError(ctx, err)
		return
	}
	buckets, err := s.store.LogBuckets(ctx, q)
	var fe *usagelog.FilterError
	if errors.As(err, &fe) {
		writeError(ctx, errorf(ErrBadRequest, "%s: %s", fe.Field, fe.Message))
		return
	}
	if err != nil {
		writeError(ctx, err)
		return
	}
	out := logStats{KeyID: q.KeyID, From: q.From, To: q.To, Bucket: q.Bucket.String(),
		BucketSeconds: int64(q.Bucket / time.Second), Buckets: buckets, Totals: usagelog.Bucket{Start: q.From}}
	for _, b := range buckets {
		out.Totals.Allowed += b.Allowed
		out.Totals.Reported += b.Reported
		out.Totals.Unauthorized += b.Unauthorized
		out.Totals.Forbidden += b.Forbidden
		out.Totals.Other += b.Other
	}
	writeJSON(ctx, fasthttp.StatusOK, out)
}

// parseBucketQuery reads key_id, from, to (RFC 3339 or Unix seconds; to
// defaults to now, from to 24 h before to) and bucket (a Go duration such
// as 5m or 1h, 1h by default), and validates them as the store will, so
// that every problem is named at once.
func (s *Server) parseBucketQuery(args *fasthttp.Args) (usagelog.BucketQuery, error) {
	q := usagelog.BucketQuery{KeyID: string(args.Peek("key_id")), Bucket: defaultStatsBucket}
	var problems []string
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"from", &q.From}, {"to", &q.To}} {
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
	if v := string(args.Peek("bucket")); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			problems = append(problems, fmt.Sprintf("bucket %q: want a duration such as 1m, 15m, 1h or 24h", v))
		} else {
			q.Bucket = d
		}
	}
	if len(problems) > 0 {
		return q, errorf(ErrBadRequest, "%s", strings.Join(problems, "; "))
	}
	if q.To.IsZero() {
		q.To = s.cfg.Now().UTC()
		if !q.From.IsZero() && !q.From.Before(q.To) {
			problems = append(problems, "from must be before to (now, when to is not given)")
		}
	}
	if q.From.IsZero() {
		q.From = q.To.Add(-defaultStatsRange)
	}
	if len(problems) == 0 {
		var fe *usagelog.FilterError
		if err := q.Validate(); errors.As(err, &fe) {
			problems = append(problems, fe.Field+": "+fe.Message)
		}
	}
	if len(problems) > 0 {
		return q, errorf(ErrBadRequest, "%s", strings.Join(problems, "; "))
	}
	return q, nil
}
