package server

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keygate/keygate/store"
)

// /readyz is 503 with the reason while a local fault stops management
// writes, and 200 with the fault under "degraded" while a shared store is
// unreachable (see store.Health).
func TestReadyzReasons(t *testing.T) {
	ts := startServer(t, nil)
	ready := func() (int, map[string]any) {
		r := do(t, "GET", ts.checkURL+"/readyz", nil)
		return r.status, r.json(t)
	}
	code, body := ready()
	require.Equal(t, 200, code)
	assert.Equal(t, true, body["ready"])
	assert.Nil(t, body["reasons"])

	for _, local := range []error{
		fmt.Errorf("%w: 10 bytes free", store.ErrNoSpace),
		store.ErrClosed,
		fmt.Errorf("%w: the data directory /x was removed", store.ErrGone),
	} {
		ts.st.setHealth(local)
		code, body = ready()
		assert.Equal(t, 503, code, local)
		assert.Equal(t, false, body["ready"])
		assert.Equal(t, []any{local.Error()}, body["reasons"])
	}

	ts.st.setHealth(fmt.Errorf("%w since 2026-12-01T23:00:00Z", store.ErrUnreachable))
	code, body = ready()
	assert.Equal(t, 200, code)
	assert.Equal(t, true, body["ready"])
	assert.Equal(t, []any{"store: shared store unreachable since 2026-12-01T23:00:00Z"}, body["degraded"])
}
