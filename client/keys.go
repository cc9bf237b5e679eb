package client

import (
	"context"
	"encoding/json"
	"time"
)

// Key is a key as the daemon shows it. Secret is set only in the answers
// of CreateKey and RotateKey.
type Key struct {
	ID          string     `json:"id"`
	Name        string     `json:"name"`
	Description string     `json:"description"`
	Scopes      []string   `json:"scopes"`
	Allowlist   []Entry    `json:"allowlist"`
	CreatedAt   time.Time  `json:"created_at"`
	ExpiresAt   *time.Time `json:"expires_at"`
	RevokedAt   *time.Time `json:"revoked_at"`
	// Status is "active", "revoked" or "expired".
	Status     string     `json:"status"`
	Hint       string     `json:"hint"`
	LastUsedAt *time.Time `json:"last_used_at"`
	// ReportOnly: the allowlist logs what it would block and blocks
	// nothing.
	ReportOnly bool `json:"report_only"`
	// PreviousSecret is the secret a rotation replaced, while it has one.
	PreviousSecret *PreviousSecret `json:"previous_secret"`
	// WouldHaveBlocked24h is set for a report-only key.
	WouldHaveBlocked24h *Impact `json:"would_have_blocked_24h,omitempty"`
	Secret              string  `json:"secret,omitempty"`
	// ETag is the key's version as the answer's ETag header gave it
	// ("v12"); pass it to WithIfMatch to make a write conditional.
	ETag string `json:"-"`
}

func (k *Key) setETag(t string) { k.ETag = t }

// PreviousSecret is a rotated-out secret: its hint, and when it stops
// (stopped) working.
type PreviousSecret struct {
	Hint      string    `json:"hint"`
	ExpiresAt time.Time `json:"expires_at"`
	Active    bool      `json:"active"`
}

// Impact counts requests and the distinct addresses they came from.
type Impact struct {
	Requests  int `json:"requests"`
	Addresses int `json:"addresses"`
}

// NewKey is the body of CreateKey. Name is required.
type NewKey struct {
	Name        string       `json:"name"`
	Description string       `json:"description,omitempty"`
	Scopes      []string     `json:"scopes,omitempty"`
	Allowlist   []EntryInput `json:"allowlist,omitempty"`
	ExpiresAt   *time.Time   `json:"expires_at,omitempty"`
	ReportOnly  bool         `json:"report_only,omitempty"`
}

// KeyUpdate is the body of UpdateKey: the fields set are changed, the
// others kept. ClearExpiry removes the expiry (ExpiresAt must then be
// nil).
type KeyUpdate struct {
	Name        *string
	Description *string
	Scopes      *[]string
	ExpiresAt   *time.Time
	ClearExpiry bool
	// Allowlist, when set, replaces the list (entries keep their ids
	// when sent with them or when their range is unchanged).
	Allowlist  *[]EntryInput
	ReportOnly *bool
}

// MarshalJSON writes only the fields set, and "expires_at":null for
// ClearExpiry.
func (u KeyUpdate) MarshalJSON() ([]byte, error) {
	m := map[string]any{}
	setIf(m, "name", u.Name)
	setIf(m, "description", u.Description)
	setIf(m, "scopes", u.Scopes)
	setIf(m, "allowlist", u.Allowlist)
	setIf(m, "report_only", u.ReportOnly)
	setExpiry(m, u.ExpiresAt, u.ClearExpiry)
	return json.Marshal(m)
}

func setIf[T any](m map[string]any, name string, p *T) {
	if p != nil {
		m[name] = *p
	}
}

func setExpiry(m map[string]any, at *time.Time, clear bool) {
	switch {
	case at != nil:
		m["expires_at"] = at
	case clear:
		m["expires_at"] = nil
	}
}

// CreateKey creates a key. The answer's Secret is shown only this once.
func (c *Client) CreateKey(ctx context.Context, k NewKey) (*Key, error) {
	var out Key
	if k.Allowlist == nil {
		k.Allowlist = []EntryInput{}
	}
	return &out, c.Do(ctx, "POST", "/v1/keys", k, &out)
}

// ListKeys returns every key, revoked and expired ones included.
func (c *Client) ListKeys(ctx context.Context) ([]Key, error) {
	var out struct {
		Items []Key `json:"items"`
	}
	err := c.Do(ctx, "GET", "/v1/keys", nil, &out)
	return out.Items, err
}

// GetKey returns one key.
func (c *Client) GetKey(ctx context.Context, id string) (*Key, error) {
	var out Key
	return &out, c.Do(ctx, "GET", keyPath(id), nil, &out)
}

// UpdateKey changes the fields u sets (a revoked key: 409, IsConflict).
func (c *Client) UpdateKey(ctx context.Context, id string, u KeyUpdate) (*Key, error) {
	var out Key
	return &out, c.Do(ctx, "PATCH", keyPath(id), u, &out)
}

// RevokeKey revokes a key (revoking it again changes nothing).
func (c *Client) RevokeKey(ctx context.Context, id string) (*Key, error) {
	var out Key
	return &out, c.Do(ctx, "DELETE", keyPath(id), nil, &out)
}

// RotateKey gives the key a new secret (in the answer's Secret, only
// there); the old one keeps working for overlap (0 to 168 h).
func (c *Client) RotateKey(ctx context.Context, id string, overlap time.Duration) (*Key, error) {
	var out Key
	return &out, c.Do(ctx, "POST", keyPath(id)+"/rotate", map[string]string{"overlap": overlap.String()}, &out)
}
