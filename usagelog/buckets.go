package usagelog

import (
	"fmt"
	"time"
)

// Limits of a BucketQuery.
const (
	MinBucket  = time.Minute
	MaxBucket  = 24 * time.Hour
	MaxBuckets = 1000
)

// BucketQuery asks for the usage log counted in equal time buckets: the
// records of KeyID ("" for every key) with a time in [From, To), in
// buckets of width Bucket starting at From (the last one may reach past
// To, yet counts only records before To).
type BucketQuery struct {
	KeyID    string
	From, To time.Time
	Bucket   time.Duration
}

// Bucket counts the records of one time bucket by outcome. Every record
// counts in exactly one of Allowed, Unauthorized, Forbidden and Other;
// Reported is the part of Allowed that a report-only key allowed although
// the client IP matched no entry (IsReportOnly), so a chart can show
// allowed requests as the clients saw them and still tell those apart.
type Bucket struct {
	// Start is the bucket's first instant; it ends at Start + Bucket.
	Start time.Time `json:"start"`
	// Allowed counts the checks answered with a status below 400.
	Allowed int64 `json:"allowed"`
	// Reported counts the allowed checks that were report-only misses.
	Reported int64 `json:"reported"`
	// Unauthorized counts 401s (a missing, unknown, revoked or expired key).
	Unauthorized int64 `json:"unauthorized"`
	// Forbidden counts 403s (a missing scope or a client IP no entry allows).
	Forbidden int64 `json:"forbidden"`
	// Other counts every other status (e.g. 400 for a bad check request).
	Other int64 `json:"other"`
}

// Validate reports the first invalid field of q as a *FilterError: key_id
// as in a Filter, from and to required, within MinFilterTime and
// MaxFilterTime, from before to, bucket from MinBucket to MaxBucket, and at
// most MaxBuckets buckets.
func (q BucketQuery) Validate() error {
	if len(q.KeyID) > MaxFilterKeyID {
		return &FilterError{Field: "key_id", Message: fmt.Sprintf("longer than %d bytes", MaxFilterKeyID)}
	}
	if q.From.IsZero() {
		return &FilterError{Field: "from", Message: "required"}
	}
	if q.To.IsZero() {
		return &FilterError{Field: "to", Message: "required"}
	}
	if err := checkTime("from", q.From); err != nil {
		return err
	}
	if err := checkTime("to", q.To); err != nil {
		return err
	}
	if err := CheckRange(q.From, q.To); err != nil {
		return err
	}
	if q.Bucket < MinBucket || q.Bucket > MaxBucket {
		return &FilterError{Field: "bucket", Message: fmt.Sprintf("%s is not between %s and %s", q.Bucket, MinBucket, "24h")}
	}
	if n := q.N(); n > MaxBuckets {
		return &FilterError{Field: "bucket", Message: fmt.Sprintf("%s makes %d buckets from from to to, more than %d: use a wider bucket or a shorter range", q.Bucket, n, MaxBuckets)}
	}
	return nil
}

// N is the number of buckets of a valid q: (To - From) / Bucket, rounded up.
func (q BucketQuery) N() int64 {
	d := q.To.Sub(q.From)
	return int64((d + q.Bucket - 1) / q.Bucket)
}

// NewBuckets returns q's buckets, all counts zero, oldest first.
func (q BucketQuery) NewBuckets() []Bucket {
	out := make([]Bucket, q.N())
	for i := range out {
		out[i].Start = q.From.Add(time.Duration(i) * q.Bucket).UTC()
	}
	return out
}

// Index is the bucket of a record at Unix nanoseconds t, or -1 when t is
// outside [From, To).
func (q BucketQuery) Index(t int64) int {
	from, to := q.From.UnixNano(), q.To.UnixNano()
	if t < from || t >= to {
		return -1
	}
	return int((t - from) / int64(q.Bucket))
}

// Add counts n records with this status and code into b.
func (b *Bucket) Add(status int, code string, n int64) {
	switch {
	case status < 400:
		b.Allowed += n
		if IsReportOnly(status, code) {
			b.Reported += n
		}
	case status == 401:
		b.Unauthorized += n
	case status == 403:
		b.Forbidden += n
	default:
		b.Other += n
	}
}
