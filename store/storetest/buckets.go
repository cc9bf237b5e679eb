package storetest

import (
	"context"
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keygate/keygate/usagelog"
)

// BruteForceBuckets is the reference LogBuckets: every record of all
// counted one by one into q's buckets.
func BruteForceBuckets(all []usagelog.Record, q usagelog.BucketQuery) []usagelog.Bucket {
	n := int(q.To.Sub(q.From) / q.Bucket)
	if q.From.Add(time.Duration(n) * q.Bucket).Before(q.To) {
		n++
	}
	out := make([]usagelog.Bucket, n)
	for i := range out {
		out[i].Start = q.From.Add(time.Duration(i) * q.Bucket).UTC()
	}
	for _, r := range all {
		if q.KeyID != "" && r.KeyID != q.KeyID || r.Time.Before(q.From) || !r.Time.Before(q.To) {
			continue
		}
		b := &out[int(r.Time.Sub(q.From)/q.Bucket)]
		switch {
		case r.Status == 401:
			b.Unauthorized++
		case r.Status == 403:
			b.Forbidden++
		case r.Status >= 400:
			b.Other++
		default:
			b.Allowed++
			if r.Code == usagelog.CodeIPNotAllowed {
				b.Reported++
			}
		}
	}
	return out
}

func testLogBuckets(t *testing.T, h Harness) {
	s := open(t, h)
	r := rand.New(rand.NewPCG(21, 22))
	var all []usagelog.Record
	AppendAll(s, h.Node, r, 3000, &all)
	require.NoError(t, s.FlushLogs())
	ctx := context.Background()
	var sawReported, sawOther bool
	for range 100 {
		q := usagelog.BucketQuery{
			From:   time.Unix(T0-600+r.Int64N(3600), r.Int64N(1e9)),
			Bucket: []time.Duration{time.Minute, 7 * time.Minute, time.Hour, 24 * time.Hour}[r.IntN(4)],
		}
		q.To = q.From.Add(time.Duration(1 + r.Int64N(int64(90*time.Minute))))
		if r.IntN(2) == 0 {
			q.KeyID = KeyIDs[r.IntN(len(KeyIDs))]
			if r.IntN(10) == 0 {
				q.KeyID = "key_absent"
			}
		}
		want := BruteForceBuckets(all, q)
		got, err := s.LogBuckets(ctx, q)
		require.NoError(t, err, "%+v", q)
		require.Equal(t, want, got, "query %+v", q)
		for _, b := range got {
			sawReported = sawReported || b.Reported > 0
			sawOther = sawOther || b.Other > 0
		}
	}
	assert.True(t, sawReported && sawOther, "the random records include report-only misses and other statuses")

	// Every record of the hour, in one bucket and in 60.
	q := usagelog.BucketQuery{From: time.Unix(T0, 0), To: time.Unix(T0+3600, 0), Bucket: time.Hour}
	got, err := s.LogBuckets(ctx, q)
	require.NoError(t, err)
	require.Len(t, got, 1)
	b := got[0]
	assert.Equal(t, int64(len(all)), b.Allowed+b.Unauthorized+b.Forbidden+b.Other)
	q.Bucket = time.Minute
	got, err = s.LogBuckets(ctx, q)
	require.NoError(t, err)
	assert.Len(t, got, 60)
	assert.Equal(t, BruteForceBuckets(all, q), got)

	// An empty range still has its buckets.
	q = usagelog.BucketQuery{From: time.Unix(T0-7200, 0), To: time.Unix(T0-3600, 0), Bucket: 10 * time.Minute}
	got, err = s.LogBuckets(ctx, q)
	require.NoError(t, err)
	assert.Equal(t, BruteForceBuckets(nil, q), got)
	assert.Len(t, got, 6)
}

func testLogBucketsErrors(t *testing.T, h Harness) {
	s := open(t, h)
	t0 := time.Unix(T0, 0)
	for _, c := range []struct {
		q     usagelog.BucketQuery
		field string
	}{
		{usagelog.BucketQuery{To: t0, Bucket: time.Minute}, "from"},
		{usagelog.BucketQuery{From: t0, Bucket: time.Minute}, "to"},
		{usagelog.BucketQuery{From: t0, To: t0, Bucket: time.Minute}, "to"},
		{usagelog.BucketQuery{From: t0.Add(time.Hour), To: t0, Bucket: time.Minute}, "to"},
		{usagelog.BucketQuery{From: time.Date(1600, 1, 1, 0, 0, 0, 0, time.UTC), To: t0, Bucket: 24 * time.Hour}, "from"},
		{usagelog.BucketQuery{From: t0, To: time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC), Bucket: 24 * time.Hour}, "to"},
		{usagelog.BucketQuery{From: t0, To: t0.Add(time.Hour)}, "bucket"},
		{usagelog.BucketQuery{From: t0, To: t0.Add(time.Hour), Bucket: 59 * time.Second}, "bucket"},
		{usagelog.BucketQuery{From: t0, To: t0.Add(time.Hour), Bucket: 25 * time.Hour}, "bucket"},
		{usagelog.BucketQuery{From: t0, To: t0.Add(1001 * time.Minute), Bucket: time.Minute}, "bucket"},
		{usagelog.BucketQuery{KeyID: string(make([]byte, usagelog.MaxFilterKeyID+1)), From: t0, To: t0.Add(time.Hour), Bucket: time.Minute}, "key_id"},
	} {
		_, err := s.LogBuckets(context.Background(), c.q)
		var fe *usagelog.FilterError
		if assert.True(t, errors.As(err, &fe), "%+v: %v", c.q, err) {
			assert.Equal(t, c.field, fe.Field, "%+v: %v", c.q, err)
		}
	}
	got, err := s.LogBuckets(context.Background(), usagelog.BucketQuery{From: t0, To: t0.Add(1000 * time.Minute), Bucket: time.Minute})
	require.NoError(t, err)
	assert.Len(t, got, usagelog.MaxBuckets, "1000 buckets are allowed")
}
