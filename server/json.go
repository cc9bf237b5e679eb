package server

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/keygate/keygate/engine"
)

// keyJSON is a key as the management API shows it. The secret is set only
// in the creation response.
type keyJSON struct {
	ID          string      `json:"id"`
	Name        string      `json:"name"`
	Description string      `json:"description"`
	Scopes      []string    `json:"scopes"`
	Allowlist   []entryJSON `json:"allowlist"`
	CreatedAt   time.Time   `json:"created_at"`
	ExpiresAt   *time.Time  `json:"expires_at"`
	RevokedAt   *time.Time  `json:"revoked_at"`
	// Status is "active", "revoked" or "expired".
	Status     string     `json:"status"`
	Hint       string     `json:"hint"`
	LastUsedAt *time.Time `json:"last_used_at"`
	// ReportOnly: the allowlist logs what it would block and blocks
	// nothing.
	ReportOnly bool `json:"report_only"`
	// PreviousSecret is the secret a rotation replaced, while it has one.
	PreviousSecret *previousSecretJSON `json:"previous_secret"`
	// WouldHaveBlocked24h is set for a report-only key: the checks its
	// allowlist reported in the last 24 hours.
	WouldHaveBlocked24h *impactJSON `json:"would_have_blocked_24h,omitempty"`
	Secret              string      `json:"secret,omitempty"`
}

// previousSecretJSON is a rotated-out secret: its hint, and when it stops
// (stopped) working.
type previousSecretJSON struct {
	Hint      string    `json:"hint"`
	ExpiresAt time.Time `json:"expires_at"`
	Active    bool      `json:"active"`
}

// impactJSON counts requests and the distinct addresses they came from.
type impactJSON struct {
	Requests  int `json:"requests"`
	Addresses int `json:"addresses"`
}

// entryJSON is an allowlist entry; CIDR is the stored (canonical) form.
// State is "active", "expired" or "disabled".
type entryJSON struct {
	ID        string     `json:"id"`
	CIDR      string     `json:"cidr"`
	Label     string     `json:"label"`
	ExpiresAt *time.Time `json:"expires_at"`
	Disabled  bool       `json:"disabled"`
	State     string     `json:"state"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

func entryView(e engine.Entry, now time.Time) entryJSON {
	state := "active"
	switch {
	case e.Disabled:
		state = "disabled"
	case !e.Live(now):
		state = "expired"
	}
	return entryJSON{ID: e.ID, CIDR: e.CIDR(), Label: e.Label, ExpiresAt: timePtr(e.ExpiresAt), Disabled: e.Disabled, State: state}
}

func entriesJSON(es []engine.Entry, now time.Time) []entryJSON {
	out := make([]entryJSON, len(es))
	for i, e := range es {
		out[i] = entryView(e, now)
	}
	return out
}

func (s *Server) keyView(k *engine.Key, now time.Time) keyJSON {
	status := "active"
	switch {
	case !k.RevokedAt.IsZero():
		status = "revoked"
	case !k.Active(now):
		status = "expired"
	}
	scopes := k.Scopes
	if scopes == nil {
		scopes = []string{}
	}
	v := keyJSON{
		ID: k.ID, Name: k.Name, Description: k.Description, Scopes: scopes,
		Allowlist: entriesJSON(k.Allowlist, now),
		CreatedAt: k.CreatedAt.UTC(), ExpiresAt: timePtr(k.ExpiresAt), RevokedAt: timePtr(k.RevokedAt),
		Status: status, Hint: k.Hint, LastUsedAt: timePtr(s.store.LastUsed(k.ID)),
		ReportOnly: k.ReportOnly,
	}
	if k.HasPrev() {
		v.PreviousSecret = &previousSecretJSON{Hint: k.PrevHint, ExpiresAt: k.PrevExpiresAt.UTC(), Active: now.Before(k.PrevExpiresAt)}
	}
	return v
}
func writeJSON(ctx *fasthttp.RequestCtx, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(ctx, fmt.Errorf("server: encoding response: %w", err))
		return
	}
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.Response.Header.Set("Cache-Control", "no-store")
	ctx.SetBody(append(b, '\n'))
}

// allowlistJSON is the body of the allowlist endpoints.
type allowlistJSON struct {
	KeyID   string      `json:"key_id"`
	Entries []entryJSON `json:"entries"`
}

// entryHitsJSON is an entry with its use in the last 24 hours, as GET
// .../allowlist shows it.
type entryHitsJSON struct {
	entryJSON
	Hits24h    int        `json:"hits_24h"`
	LastSeenAt *time.Time `json:"last_seen_at"`
}
