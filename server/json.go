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
	Secret     string     `json:"secret,omitempty"`
}

// entryJSON is an allowlist entry; CIDR is the stored (canonical) form.
type entryJSON struct {
	ID    string `json:"id"`
	CIDR  string `json:"cidr"`
	Label string `json:"label"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

func entryView(e engine.Entry) entryJSON { return entryJSON{ID: e.ID, CIDR: e.CIDR(), Label: e.Label} }

func entriesJSON(es []engine.Entry) []entryJSON {
	out := make([]entryJSON, len(es))
	for i, e := range es {
		out[i] = entryView(e)
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
	return keyJSON{
		ID: k.ID, Name: k.Name, Description: k.Description, Scopes: scopes,
		Allowlist: entriesJSON(k.Allowlist),
		CreatedAt: k.CreatedAt.UTC(), ExpiresAt: timePtr(k.ExpiresAt), RevokedAt: timePtr(k.RevokedAt),
		Status: status, Hint: k.Hint, LastUsedAt: timePtr(s.store.LastUsed(k.ID)),
	}
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
