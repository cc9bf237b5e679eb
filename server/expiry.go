package server

import (
	"time"

	jsonv2 "github.com/go-json-experiment/json"
)

// expiryField is the expires_at of a PATCH body, where absent and null
// differ: absent leaves the expiry as it is, null clears it (the key no
// longer expires), a time sets it.
type expiryField struct {
	Set bool       // the field was in the body
	At  *time.Time // nil: null
}

// UnmarshalJSON implements json.Unmarshaler; it is called only when the
// field is present, null included.
func (e *expiryField) UnmarshalJSON(b []byte) error {
	e.Set = true
	if string(b) == "null" {
		e.At = nil
		return nil
	}
	var t time.Time
	if err := jsonv2.Unmarshal(b, &t); err != nil {
		return err
	}
	e.At = &t
	return nil
}

// expiryProblem says why an expiry being set at now is refused, or "".
// Create and PATCH apply the same rule: an expiry must be in the future.
// Setting a future expiry on an expired (not revoked) key makes it active
// again; that is the documented way to renew a key.
func expiryProblem(at *time.Time, now time.Time) string {
	if at != nil && !at.After(now) {
		return "expires_at must be in the future (null for no expiry)"
	}
	return ""
}
