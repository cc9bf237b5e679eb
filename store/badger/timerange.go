package badgerstore

import (
	"fmt"
	"time"
)

// The range of times a LogFilter's From and To may take. Records are kept
// as Unix nanoseconds in an int64, which spans 1677-09-21 to 2262-04-11;
// a time outside it would wrap (2300 read as 1715) and select the wrong
// records, so it is refused. The bounds are whole years inside that span.
var (
	MinFilterTime = time.Date(1678, 1, 1, 0, 0, 0, 0, time.UTC)
	MaxFilterTime = time.Date(2262, 1, 1, 0, 0, 0, 0, time.UTC)
)

// checkFilterTime refuses a non-zero t outside [MinFilterTime, MaxFilterTime].
func checkFilterTime(field string, t time.Time) error {
	if t.IsZero() || (!t.Before(MinFilterTime) && !t.After(MaxFilterTime)) {
		return nil
	}
	return &FilterError{Field: field, Message: fmt.Sprintf("%s is outside the range the log can hold: use a time from %s to %s",
		t.UTC().Format(time.RFC3339), MinFilterTime.Format(time.RFC3339), MaxFilterTime.Format(time.RFC3339))}
}
