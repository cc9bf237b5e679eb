package badgerstore

import (
	"context"

	"github.com/keygate/keygate/usagelog"
)

// LogBuckets counts the written records q selects per time bucket. It
// walks the segments as a query does, so segments whose index shows no
// record in the time range or none of the key are skipped unread, and
// counts from the segment's columns without building records.
func (s *Store) LogBuckets(ctx context.Context, q usagelog.BucketQuery) ([]usagelog.Bucket, error) {
	if err := q.Validate(); err != nil {
		return nil, err
	}
	f, err := compile(usagelog.Filter{KeyID: q.KeyID, From: q.From, To: q.To})
	if err != nil {
		return nil, err
	}
	out := q.NewBuckets()
	err = s.scan(ctx, &f, func(g *segment, i int, _ position) bool {
		if b := q.Index(g.times[i]); b >= 0 {
			out[b].Add(int(g.statusOf(i)), string(g.code(i)), 1)
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
