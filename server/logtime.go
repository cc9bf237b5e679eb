package server

import (
	"fmt"
	"strconv"
	"time"

	"github.com/keygate/keygate/usagelog"
)

// parseLogTime reads a from/to filter value: RFC 3339, or Unix seconds.
// It returns a problem for the error message, or "".
func parseLogTime(name, v string) (time.Time, string) {
	var t time.Time
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		// Seconds beyond ±1e13 are far outside the range and would
		// overflow time's own arithmetic.
		if n < -1e13 || n > 1e13 {
			return t, outOfRange(name, v)
		}
		t = time.Unix(n, 0).UTC()
	} else if t, err = time.Parse(time.RFC3339Nano, v); err != nil {
		return t, fmt.Sprintf("%s %q: want an RFC 3339 time such as 2025-01-02T15:04:05Z, or Unix seconds", name, v)
	}
	if t.Before(usagelog.MinFilterTime) || t.After(usagelog.MaxFilterTime) {
		return time.Time{}, outOfRange(name, v)
	}
	return t, ""
}

func outOfRange(name, v string) string {
	return fmt.Sprintf("%s %q is outside the range the log can hold: use a time from %s to %s",
		name, v, usagelog.MinFilterTime.Format(time.RFC3339), usagelog.MaxFilterTime.Format(time.RFC3339))
}
