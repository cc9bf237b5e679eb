package server

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/keygate/keygate/engine"
	"github.com/keygate/keygate/store"
)

func (s *Server) getAllowlist(ctx *fasthttp.RequestCtx, id string) error {
	k, version, err := s.store.GetKeyVersion(ctx, id)
	if err != nil {
		return err
	}
	now := s.cfg.Now()
	hits, err := s.store.EntryHits(ctx, k.ID, now.Add(-24*time.Hour))
	if err != nil {
		return err
	}
	out := make([]entryHitsJSON, len(k.Allowlist))
	for i, e := range k.Allowlist {
		h := hits[e.ID]
		out[i] = entryHitsJSON{entryJSON: entryView(e, now), Hits24h: h.Count, LastSeenAt: timePtr(h.LastSeen)}
	}
	setETag(ctx, version)
	writeJSON(ctx, fasthttp.StatusOK, map[string]any{"key_id": k.ID, "entries": out})
	return nil
}

type putAllowlistRequest struct {
	Entries *[]engine.EntryInput `json:"entries"`
}

// updateAllowlist replaces key id's allowlist with what fn makes of the
// current one, all or nothing, if the key is still at the version the
// request's If-Match names (any without one); it sets the answer's ETag.
func (s *Server) updateAllowlist(ctx *fasthttp.RequestCtx, id, action string, fn func(cur []engine.Entry) ([]engine.EntryInput, error)) (store.Change, error) {
	version, err := ifMatch(ctx)
	if err != nil {
		return store.Change{}, err
	}
	ch, err := s.commitAllowlist(ctx, id, version, action, fn)
	if err != nil {
		return ch, preconditionFailed(id, version, err)
	}
	setETag(ctx, ch.Version)
	return ch, nil
}

func (s *Server) commitAllowlist(ctx context.Context, id string, version uint64, action string, fn func(cur []engine.Entry) ([]engine.EntryInput, error)) (store.Change, error) {
	return s.commit(ctx, func() (store.Change, error) {
		return s.store.UpdateKeyIf(ctx, id, version, actor, action, func(k *engine.Key) error {
			if !k.RevokedAt.IsZero() {
				return errRevoked(id)
			}
			in, err := fn(k.Allowlist)
			if err != nil {
				return err
			}
			entries, err := s.policy.MergeEntriesAt(s.cfg.Now(), k.Allowlist, in)
			if err != nil {
				return err
			}
			k.Allowlist = entries
			return nil
		})
	})
}

func inputsOf(es []engine.Entry) []engine.EntryInput {
	out := make([]engine.EntryInput, len(es))
	for i, e := range es {
		out[i] = engine.EntryInput{ID: e.ID, CIDR: e.CIDR(), Label: e.Label, Disabled: e.Disabled}
		if !e.ExpiresAt.IsZero() {
			t := e.ExpiresAt
			out[i].ExpiresAt = &t
		}
	}
	return out
}

func (s *Server) putAllowlist(ctx *fasthttp.RequestCtx, id string) error {
	var req putAllowlistRequest
	if err := decodeJSON(ctx, &req); err != nil {
		return err
	}
	if req.Entries == nil {
		return errorf(ErrBadRequest, `the body must be {"entries":[{"cidr":"203.0.113.5","label":"..."}]} ("entries":[] clears the allowlist)`)
	}
	switch dry := string(ctx.QueryArgs().Peek("dry_run")); dry {
	case "true", "1":
		return s.dryRunAllowlist(ctx, id, *req.Entries)
	case "", "false", "0":
	default:
		return errorf(ErrBadRequest, "dry_run %q: want true or false", dry)
	}
	ch, err := s.updateAllowlist(ctx, id, "allowlist.replace", func([]engine.Entry) ([]engine.EntryInput, error) {
		return *req.Entries, nil
	})
	if err != nil {
		return err
	}
	writeJSON(ctx, fasthttp.StatusOK, allowlistJSON{KeyID: ch.After.ID, Entries: entriesJSON(ch.After.Allowlist, s.cfg.Now())})
	return nil
}

// entryRequest is the body of POST and PATCH .../allowlist[/{entry_id}].
// expires_at: absent keeps it, null clears it, a time sets it.
type entryRequest struct {
	CIDR      *string     `json:"cidr"`
	Label     *string     `json:"label"`
	ExpiresAt expiryField `json:"expires_at"`
	Disabled  *bool       `json:"disabled"`
}

// apply sets the lifecycle fields of req on in.
func (req *entryRequest) apply(in *engine.EntryInput) {
	if req.ExpiresAt.Set {
		in.ExpiresAt = req.ExpiresAt.At
	}
	if req.Disabled != nil {
		in.Disabled = *req.Disabled
	}
}

func (s *Server) addEntry(ctx *fasthttp.RequestCtx, id string) error {
	var req entryRequest
	if err := decodeJSON(ctx, &req); err != nil {
		return err
	}
	if req.CIDR == nil {
		return errorf(ErrBadRequest, `the body must be {"cidr":"203.0.113.5","label":"..."}`)
	}
	in := engine.EntryInput{CIDR: *req.CIDR}
	if req.Label != nil {
		in.Label = *req.Label
	}
	req.apply(&in)
	var before []engine.Entry
	ch, err := s.updateAllowlist(ctx, id, "allowlist.add", func(cur []engine.Entry) ([]engine.EntryInput, error) {
		before = cur
		return append(inputsOf(cur), in), nil
	})
	if err != nil {
		return err
	}
	for _, e := range ch.After.Allowlist {
		if !slices.ContainsFunc(before, func(x engine.Entry) bool { return x.ID == e.ID }) {
			writeJSON(ctx, fasthttp.StatusCreated, entryView(e, s.cfg.Now()))
			return nil
		}
	}
	return fmt.Errorf("server: added entry not found in the stored key %s", id)
}

func (s *Server) patchEntry(ctx *fasthttp.RequestCtx, id, entryID string) error {
	var req entryRequest
	if err := decodeJSON(ctx, &req); err != nil {
		return err
	}
	ch, err := s.updateAllowlist(ctx, id, "allowlist.update", func(cur []engine.Entry) ([]engine.EntryInput, error) {
		in := inputsOf(cur)
		i := slices.IndexFunc(in, func(e engine.EntryInput) bool { return e.ID == entryID })
		if i < 0 {
			return nil, errorf(ErrNotFound, "key %s has no allowlist entry %s", id, entryID)
		}
		if req.CIDR != nil {
			in[i].CIDR = *req.CIDR
		}
		if req.Label != nil {
			in[i].Label = *req.Label
		}
		req.apply(&in[i])
		return in, nil
	})
	if err != nil {
		return err
	}
	for _, e := range ch.After.Allowlist {
		if e.ID == entryID {
			writeJSON(ctx, fasthttp.StatusOK, entryView(e, s.cfg.Now()))
			return nil
		}
	}
	return fmt.Errorf("server: edited entry %s not found in the stored key %s", entryID, id)
}

func (s *Server) deleteEntry(ctx *fasthttp.RequestCtx, id, entryID string) error {
	ch, err := s.updateAllowlist(ctx, id, "allowlist.remove", func(cur []engine.Entry) ([]engine.EntryInput, error) {
		in := inputsOf(cur)
		i := slices.IndexFunc(in, func(e engine.EntryInput) bool { return e.ID == entryID })
		if i < 0 {
			return nil, errorf(ErrNotFound, "key %s has no allowlist entry %s", id, entryID)
		}
		return slices.Delete(in, i, i+1), nil
	})
	if err != nil {
		return err
	}
	writeJSON(ctx, fasthttp.StatusOK, allowlistJSON{KeyID: ch.After.ID, Entries: entriesJSON(ch.After.Allowlist, s.cfg.Now())})
	return nil
}
