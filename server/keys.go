package server

import (
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/keygate/keygate/engine"
	"github.com/keygate/keygate/store"
)

// handleKeys serves everything under /v1/keys.
func (s *Server) handleKeys(ctx *fasthttp.RequestCtx) {
	if !s.admitted(ctx) {
		return
	}
	parts := strings.Split(strings.Trim(string(ctx.Path()), "/"), "/")[2:] // drop "v1", "keys"
	m := string(ctx.Method())
	var serve func() error // the route's handler, once method and path are known
	var takes []string     // its query parameters
	var err error
	switch {
	case len(parts) == 0:
		switch m {
		case fasthttp.MethodGet:
			serve = func() error { return s.listKeys(ctx) }
		case fasthttp.MethodPost:
			serve = func() error { return s.createKey(ctx) }
		default:
			err = methodNotAllowed("GET, POST")
		}
	case len(parts) == 1:
		switch m {
		case fasthttp.MethodGet:
			serve = func() error { return s.getKey(ctx, parts[0]) }
		case fasthttp.MethodPatch:
			serve = func() error { return s.patchKey(ctx, parts[0]) }
		case fasthttp.MethodDelete:
			serve = func() error { return s.revokeKey(ctx, parts[0]) }
		default:
			err = methodNotAllowed("GET, PATCH, DELETE")
		}
	case len(parts) == 2 && parts[1] == "rotate":
		if m != fasthttp.MethodPost {
			err = methodNotAllowed("POST")
			break
		}
		serve = func() error { return s.rotateKey(ctx, parts[0]) }
	case len(parts) == 3 && parts[1] == "allowlist" && parts[2] == "suggestions":
		if m != fasthttp.MethodGet {
			err = methodNotAllowed("GET")
			break
		}
		serve, takes = func() error { return s.suggestions(ctx, parts[0]) }, []string{"since", "aggregate"}
	case len(parts) == 2 && parts[1] == "allowlist":
		switch m {
		case fasthttp.MethodGet:
			serve = func() error { return s.getAllowlist(ctx, parts[0]) }
		case fasthttp.MethodPut:
			serve, takes = func() error { return s.putAllowlist(ctx, parts[0]) }, []string{"dry_run"}
		case fasthttp.MethodPost:
			serve = func() error { return s.addEntry(ctx, parts[0]) }
		default:
			err = methodNotAllowed("GET, PUT, POST")
		}
	case len(parts) == 3 && parts[1] == "allowlist":
		switch m {
		case fasthttp.MethodPatch:
			serve = func() error { return s.patchEntry(ctx, parts[0], parts[2]) }
		case fasthttp.MethodDelete:
			serve = func() error { return s.deleteEntry(ctx, parts[0], parts[2]) }
		default:
			err = methodNotAllowed("PATCH, DELETE")
		}
	default:
		err = errorf(errRouteNotFound, "no such endpoint: %s", ctx.Path())
	}
	if serve != nil {
		if err = checkQuery(ctx, takes...); err == nil {
			err = serve()
		}
	}
	if err != nil {
		writeError(ctx, err)
	}
}

func (s *Server) listKeys(ctx *fasthttp.RequestCtx) error {
	keys, err := s.store.ListKeys(ctx)
	if err != nil {
		return err
	}
	now := s.cfg.Now()
	items := make([]keyJSON, len(keys))
	for i, k := range keys {
		items[i] = s.keyView(k, now)
		s.addReportOnlyImpact(ctx, &items[i], k, now)
	}
	writeJSON(ctx, fasthttp.StatusOK, map[string]any{"items": items})
	return nil
}

func (s *Server) getKey(ctx *fasthttp.RequestCtx, id string) error {
	k, version, err := s.store.GetKeyVersion(ctx, id)
	if err != nil {
		return err
	}
	setETag(ctx, version)
	now := s.cfg.Now()
	v := s.keyView(k, now)
	s.addReportOnlyImpact(ctx, &v, k, now)
	writeJSON(ctx, fasthttp.StatusOK, v)
	return nil
}

type createKeyRequest struct {
	Name        string              `json:"name"`
	Description string              `json:"description"`
	Scopes      []string            `json:"scopes"`
	Allowlist   []engine.EntryInput `json:"allowlist"`
	ExpiresAt   *time.Time          `json:"expires_at"`
	ReportOnly  bool                `json:"report_only"`
}

func (s *Server) createKey(ctx *fasthttp.RequestCtx) error {
	var req createKeyRequest
	if err := decodeJSON(ctx, &req); err != nil {
		return err
	}
	now := s.cfg.Now().UTC()
	var problems []string
	req.Name = strings.TrimSpace(req.Name)
	problems = engine.TextProblems(problems, "name", req.Name, engine.MaxNameLen, true, false)
	problems = engine.TextProblems(problems, "description", req.Description, engine.MaxDescriptionLen, false, true)
	scopes, sp := engine.CheckScopes(req.Scopes)
	problems = append(problems, sp...)
	if p := expiryProblem(req.ExpiresAt, now); p != "" {
		problems = append(problems, p)
	}
	if len(problems) > 0 {
		return errorf(ErrInvalid, "%s; nothing was created", strings.Join(problems, "; "))
	}
	for i := range req.Allowlist {
		req.Allowlist[i].ID = ""
	}
	entries, err := s.policy.BuildAllowlistAt(now, req.Allowlist)
	if err != nil {
		return err
	}
	secret, hint := engine.NewSecret()
	k := &engine.Key{
		ID: engine.NewKeyID(), Name: req.Name, Description: req.Description, Scopes: scopes,
		Hash: engine.HashSecret([]byte(secret)), Hint: hint, CreatedAt: now, Allowlist: entries,
		ReportOnly: req.ReportOnly,
	}
	if req.ExpiresAt != nil {
		k.ExpiresAt = req.ExpiresAt.UTC()
	}
	ch, err := s.commit(ctx, func() (store.Change, error) { return s.store.CreateKey(ctx, k.Clone(), actor) })
	if err != nil {
		return err
	}
	setETag(ctx, ch.Version)
	view := s.keyView(ch.After, now)
	view.Secret = secret
	writeJSON(ctx, fasthttp.StatusCreated, view)
	return nil
}

type patchKeyRequest struct {
	Name        *string              `json:"name"`
	Description *string              `json:"description"`
	Scopes      *[]string            `json:"scopes"`
	ExpiresAt   expiryField          `json:"expires_at"`
	Allowlist   *[]engine.EntryInput `json:"allowlist"`
	ReportOnly  *bool                `json:"report_only"`
}

func errRevoked(id string) error {
	return errorf(ErrConflict, "key %s is revoked and cannot be changed", id)
}

func (s *Server) patchKey(ctx *fasthttp.RequestCtx, id string) error {
	var req patchKeyRequest
	if err := decodeJSON(ctx, &req); err != nil {
		return err
	}
	var problems []string
	if req.Name != nil {
		*req.Name = strings.TrimSpace(*req.Name)
		problems = engine.TextProblems(problems, "name", *req.Name, engine.MaxNameLen, true, false)
	}
	if req.Description != nil {
		problems = engine.TextProblems(problems, "description", *req.Description, engine.MaxDescriptionLen, false, true)
	}
	var scopes []string
	if req.Scopes != nil {
		var sp []string
		scopes, sp = engine.CheckScopes(*req.Scopes)
		problems = append(problems, sp...)
	}
	if p := expiryProblem(req.ExpiresAt.At, s.cfg.Now()); req.ExpiresAt.Set && p != "" {
		problems = append(problems, p)
	}
	if len(problems) > 0 {
		return errorf(ErrInvalid, "%s; nothing was changed", strings.Join(problems, "; "))
	}
	version, err := ifMatch(ctx)
	if err != nil {
		return err
	}
	ch, err := s.commit(ctx, func() (store.Change, error) {
		return s.store.UpdateKeyIf(ctx, id, version, actor, "key.update", func(k *engine.Key) error {
			if !k.RevokedAt.IsZero() {
				return errRevoked(id)
			}
			if req.Name != nil {
				k.Name = *req.Name
			}
			if req.Description != nil {
				k.Description = *req.Description
			}
			if req.Scopes != nil {
				k.Scopes = scopes
			}
			if req.ReportOnly != nil {
				k.ReportOnly = *req.ReportOnly
			}
			if req.ExpiresAt.Set {
				k.ExpiresAt = time.Time{}
				if req.ExpiresAt.At != nil {
					k.ExpiresAt = req.ExpiresAt.At.UTC()
				}
			}
			if req.Allowlist != nil {
				entries, err := s.policy.MergeEntriesAt(s.cfg.Now(), k.Allowlist, *req.Allowlist)
				if err != nil {
					return err
				}
				k.Allowlist = entries
			}
			return nil
		})
	})
	if err != nil {
		return preconditionFailed(id, version, err)
	}
	setETag(ctx, ch.Version)
	writeJSON(ctx, fasthttp.StatusOK, s.keyView(ch.After, s.cfg.Now()))
	return nil
}

func (s *Server) revokeKey(ctx *fasthttp.RequestCtx, id string) error {
	version, err := ifMatch(ctx)
	if err != nil {
		return err
	}
	ch, err := s.commit(ctx, func() (store.Change, error) {
		return s.store.UpdateKeyIf(ctx, id, version, actor, "key.revoke", func(k *engine.Key) error {
			if k.RevokedAt.IsZero() {
				k.RevokedAt = s.cfg.Now().UTC()
			}
			return nil
		})
	})
	if err != nil {
		return preconditionFailed(id, version, err)
	}
	setETag(ctx, ch.Version)
	writeJSON(ctx, fasthttp.StatusOK, s.keyView(ch.After, s.cfg.Now()))
	return nil
}
