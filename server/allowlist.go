package server

import (
	"context"
	"fmt"
	"slices"

	"github.com/valyala/fasthttp"

	"github.com/keygate/keygate/engine"
	"github.com/keygate/keygate/store"
)

func (s *Server) getAllowlist(ctx *fasthttp.RequestCtx, id string) error {
	k, err := s.store.GetKey(ctx, id)
	if err != nil {
		return err
	}
	writeJSON(ctx, fasthttp.StatusOK, allowlistJSON{KeyID: k.ID, Entries: entriesJSON(k.Allowlist)})
	return nil
}

type putAllowlistRequest struct {
	Entries *[]engine.EntryInput `json:"entries"`
}

// updateAllowlist replaces key id's allowlist with what fn makes of the
// current one, all or nothing.
func (s *Server) updateAllowlist(ctx context.Context, id, action string, fn func(cur []engine.Entry) ([]engine.EntryInput, error)) (store.Change, error) {
	return s.commit(ctx, func() (store.Change, error) {
		return s.store.UpdateKey(ctx, id, actor, action, func(k *engine.Key) error {
			if !k.RevokedAt.IsZero() {
				return errRevoked(id)
			}
			in, err := fn(k.Allowlist)
			if err != nil {
				return err
			}
			entries, err := s.policy.MergeEntries(k.Allowlist, in)
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
		out[i] = engine.EntryInput{ID: e.ID, CIDR: e.CIDR(), Label: e.Label}
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
	ch, err := s.updateAllowlist(ctx, id, "allowlist.replace", func([]engine.Entry) ([]engine.EntryInput, error) {
		return *req.Entries, nil
	})
	if err != nil {
		return err
	}
	writeJSON(ctx, fasthttp.StatusOK, allowlistJSON{KeyID: ch.After.ID, Entries: entriesJSON(ch.After.Allowlist)})
	return nil
}

type entryRequest struct {
	CIDR  *string `json:"cidr"`
	Label *string `json:"label"`
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
			writeJSON(ctx, fasthttp.StatusCreated, entryView(e))
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
		return in, nil
	})
	if err != nil {
		return err
	}
	for _, e := range ch.After.Allowlist {
		if e.ID == entryID {
			writeJSON(ctx, fasthttp.StatusOK, entryView(e))
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
	writeJSON(ctx, fasthttp.StatusOK, allowlistJSON{KeyID: ch.After.ID, Entries: entriesJSON(ch.After.Allowlist)})
	return nil
}
