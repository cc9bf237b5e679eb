package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/keygate/keygate/internal/daemontest"
)

// A data directory removed or moved under the running daemon: writes fail
// with 503 at once, /readyz says why, and the daemon shuts down by itself
// within the drain period with exit status 1 and the reason, instead of
// acknowledging writes it cannot keep and hanging on SIGTERM.
func TestDataDirectoryGone(t *testing.T) {
	for _, how := range []string{"removed", "moved"} {
		t.Run(how, func(t *testing.T) {
			data := filepath.Join(t.TempDir(), "data")
			d := startKeygate(t, data, []string{"KEYGATE_ADMIN_TOKEN=" + sigToken})
			r := call(t, "POST", d.admin+"/v1/keys", sigToken, map[string]any{"name": "k"})
			require.Equal(t, 201, r.status, string(r.body))

			if how == "removed" {
				require.NoError(t, os.RemoveAll(data))
			} else {
				require.NoError(t, os.Rename(data, data+".old"))
			}
			start := time.Now()
			// Either answered 503 or refused: the daemon may already be
			// shutting down.
			if res, err := daemontest.Request(nil, "POST", d.admin+"/v1/keys", sigToken, map[string]any{"name": "k2"}); err == nil {
				assert.Equal(t, 503, res.Status, string(res.Body))
				assert.Contains(t, string(res.Body), "removed, moved or replaced")
			}
			if res, err := daemontest.Request(nil, "GET", d.url+"/readyz", "", nil); err == nil {
				assert.Equal(t, 503, res.Status, string(res.Body))
			}
			err := d.StopWith(0, 15*time.Second) // no signal: it stops by itself
			assert.NotErrorIs(t, err, daemontest.ErrNoExit, "still running %v after the directory was %s:\n%s", time.Since(start), how, d.Output())
			assert.Error(t, err, "exit status 1")
			assert.Contains(t, d.Output(), "data directory")
			assert.Contains(t, d.Output(), "was removed, moved or replaced")
		})
	}
}

// A free-space reserve larger than the whole file system is refused at
// start: no write could ever succeed.
func TestMinFreeSpaceLargerThanDisk(t *testing.T) {
	code, _, errOut := runKeygate(t, nil, "serve", "--addr", "127.0.0.1:0", "--data", t.TempDir(), "--min-free-space", "1000000TiB")
	assert.NotEqual(t, 0, code)
	assert.Contains(t, errOut, "more than the whole file system")
}
