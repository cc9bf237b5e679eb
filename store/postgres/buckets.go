package postgres

import (
	"context"

	"github.com/keygate/keygate/usagelog"
)

// LogBuckets counts the fleet's records q selects per time bucket with one
// GROUP BY: the time range prunes the usage log's partitions and uses its
// BRIN index on time_ns, a key id the (key_id, id) index; only the counts
// per bucket and outcome leave the database.
func (s *Store) LogBuckets(ctx context.Context, q usagelog.BucketQuery) ([]usagelog.Bucket, error) {
	if err := q.Validate(); err != nil {
		return nil, err
	}
	if err := s.usable(ctx); err != nil {
		return nil, err
	}
	from, to, width := q.From.UnixNano(), q.To.UnixNano(), int64(q.Bucket)
	// The rows are grouped by bucket, status and report-only miss (a
	// status below 400 with IP_NOT_ALLOWED): few groups per bucket, and
	// usagelog.Bucket.Add sorts them into the counts as the Badger store
	// does record by record.
	sql := `SELECT (time_ns - $1) / $3 AS b, status,
		CASE WHEN status < 400 AND code = $4 THEN $4 ELSE '' END AS reported, count(*)
		FROM usage_log WHERE time_ns >= $1 AND time_ns < $2`
	args := []any{from, to, width, usagelog.CodeIPNotAllowed}
	if q.KeyID != "" {
		// A condition of its own, not "$5 = '' OR key_id = $5", so that
		// the planner can use the key's index.
		sql += ` AND key_id = $5`
		args = append(args, q.KeyID)
	}
	rows, err := s.pool.Query(ctx, sql+` GROUP BY 1, 2, 3`, args...)
	if err != nil {
		return nil, s.readErr(err)
	}
	defer rows.Close()
	out := q.NewBuckets()
	var b, n int64
	var status int32
	var code string
	for rows.Next() {
		if err := rows.Scan(&b, &status, &code, &n); err != nil {
			return nil, s.readErr(err)
		}
		if b >= 0 && b < int64(len(out)) {
			out[b].Add(int(status), code, n)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, s.readErr(err)
	}
	return out, nil
}
