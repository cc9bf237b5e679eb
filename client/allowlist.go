package client

import (
	"context"
	"encoding/json"
	"net/url"
	"time"
)

// Entry is an allowlist entry; CIDR is the stored (canonical) form.
type Entry struct {
	ID        string     `json:"id"`
	CIDR      string     `json:"cidr"`
	Label     string     `json:"label"`
	ExpiresAt *time.Time `json:"expires_at"`
	Disabled  bool       `json:"disabled"`
	// State is "active", "expired" or "disabled".
	State string `json:"state"`
	// ETag is the key's version after a write that answered with the
	// entry (AddEntry, UpdateEntry); empty elsewhere.
	ETag string `json:"-"`
}

func (e *Entry) setETag(t string) { e.ETag = t }

// EntryWithHits is an entry with its use in the last 24 hours.
type EntryWithHits struct {
	Entry
	Hits24h    int        `json:"hits_24h"`
	LastSeenAt *time.Time `json:"last_seen_at"`
}

// EntryInput is an entry as sent: an address (stored /32 or /128) or a
// range, a label, and optionally an expiry and the disabled switch. ID
// keeps an existing entry's id in ReplaceAllowlist.
type EntryInput struct {
	ID        string     `json:"id,omitempty"`
	CIDR      string     `json:"cidr"`
	Label     string     `json:"label"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	Disabled  bool       `json:"disabled,omitempty"`
}

// EntryUpdate is the body of UpdateEntry: the fields set are changed.
// ClearExpiry removes the expiry.
type EntryUpdate struct {
	CIDR        *string
	Label       *string
	ExpiresAt   *time.Time
	ClearExpiry bool
	Disabled    *bool
}

// MarshalJSON writes only the fields set.
func (u EntryUpdate) MarshalJSON() ([]byte, error) {
	m := map[string]any{}
	setIf(m, "cidr", u.CIDR)
	setIf(m, "label", u.Label)
	setIf(m, "disabled", u.Disabled)
	setExpiry(m, u.ExpiresAt, u.ClearExpiry)
	return json.Marshal(m)
}

// Allowlist is a key's list.
type Allowlist struct {
	KeyID   string  `json:"key_id"`
	Entries []Entry `json:"entries"`
	// ETag is the key's version after the change (see Key.ETag).
	ETag string `json:"-"`
}

func (a *Allowlist) setETag(t string) { a.ETag = t }

// AllowlistWithHits is a key's list with each entry's use.
type AllowlistWithHits struct {
	KeyID   string          `json:"key_id"`
	Entries []EntryWithHits `json:"entries"`
	// ETag is the key's version (see Key.ETag).
	ETag string `json:"-"`
}

func (a *AllowlistWithHits) setETag(t string) { a.ETag = t }

// DryRun is what a new list would do to the key's last 24 hours of
// traffic.
type DryRun struct {
	KeyID string `json:"key_id"`
	// Entries is the list as it would be saved.
	Entries      []Entry    `json:"entries"`
	Since        time.Time  `json:"since"`
	ReportOnly   bool       `json:"report_only"`
	NewlyBlocked ImpactList `json:"newly_blocked"`
	NewlyAllowed ImpactList `json:"newly_allowed"`
	Unchanged    Impact     `json:"unchanged"`
	// Truncated: the traffic looked at was cut at the address limit.
	Truncated bool `json:"truncated"`
}

// ImpactList is an Impact with the busiest addresses named (at most 50).
type ImpactList struct {
	Impact
	IPs []AddrCount `json:"ips"`
}

// AddrCount is one address's requests.
type AddrCount struct {
	IP       string `json:"ip"`
	Requests int    `json:"requests"`
}

// Suggestions are the fewest ranges covering the addresses a key's
// traffic came from, busiest first.
type Suggestions struct {
	KeyID       string       `json:"key_id"`
	Since       time.Time    `json:"since"`
	Aggregate   bool         `json:"aggregate"`
	Truncated   bool         `json:"truncated"`
	Suggestions []Suggestion `json:"suggestions"`
}

// Suggestion is one range.
type Suggestion struct {
	CIDR      string    `json:"cidr"`
	Requests  int       `json:"requests"`
	Addresses int       `json:"addresses"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	// Allowed: the current list lets every address of the range through.
	Allowed bool `json:"allowed"`
	// Flags: trusted_proxy, non_public.
	Flags []string `json:"flags"`
}

// SuggestionsOptions narrows Suggestions. Since is how far back to look
// (default 24 h, at most 31 days); Aggregate widens each address to its
// /24 or /48 first.
type SuggestionsOptions struct {
	Since     time.Duration
	Aggregate bool
}

func allowlistPath(id string) string { return keyPath(id) + "/allowlist" }

// GetAllowlist returns the key's list with each entry's use in the last
// 24 hours.
func (c *Client) GetAllowlist(ctx context.Context, id string) (*AllowlistWithHits, error) {
	var out AllowlistWithHits
	return &out, c.Do(ctx, "GET", allowlistPath(id), nil, &out)
}

// ReplaceAllowlist replaces the whole list, atomically; an empty list
// lets the key in from every address. A bad list is refused whole: a
// 422 *Error whose Details name each bad entry.
func (c *Client) ReplaceAllowlist(ctx context.Context, id string, entries []EntryInput) (*Allowlist, error) {
	var out Allowlist
	return &out, c.Do(ctx, "PUT", allowlistPath(id), map[string]any{"entries": nonNil(entries)}, &out)
}

// DryRunAllowlist validates entries exactly as ReplaceAllowlist would
// (the same errors) and returns what they would change, saving nothing.
func (c *Client) DryRunAllowlist(ctx context.Context, id string, entries []EntryInput) (*DryRun, error) {
	var out DryRun
	return &out, c.Do(ctx, "PUT", allowlistPath(id)+"?dry_run=true", map[string]any{"entries": nonNil(entries)}, &out)
}

func nonNil(es []EntryInput) []EntryInput {
	if es == nil {
		return []EntryInput{}
	}
	return es
}

// AddEntry adds one entry and returns it as stored.
func (c *Client) AddEntry(ctx context.Context, id string, e EntryInput) (*Entry, error) {
	var out Entry
	return &out, c.Do(ctx, "POST", allowlistPath(id), e, &out)
}

// UpdateEntry changes one entry.
func (c *Client) UpdateEntry(ctx context.Context, id, entryID string, u EntryUpdate) (*Entry, error) {
	var out Entry
	return &out, c.Do(ctx, "PATCH", allowlistPath(id)+"/"+url.PathEscape(entryID), u, &out)
}

// DeleteEntry removes one entry and returns the list left.
func (c *Client) DeleteEntry(ctx context.Context, id, entryID string) (*Allowlist, error) {
	var out Allowlist
	return &out, c.Do(ctx, "DELETE", allowlistPath(id)+"/"+url.PathEscape(entryID), nil, &out)
}

// Suggestions returns the ranges the key's recent traffic suggests.
func (c *Client) Suggestions(ctx context.Context, id string, o SuggestionsOptions) (*Suggestions, error) {
	v := url.Values{}
	if o.Since > 0 {
		v.Set("since", o.Since.String())
	}
	if o.Aggregate {
		v.Set("aggregate", "true")
	}
	p := allowlistPath(id) + "/suggestions"
	if len(v) > 0 {
		p += "?" + v.Encode()
	}
	var out Suggestions
	return &out, c.Do(ctx, "GET", p, nil, &out)
}
