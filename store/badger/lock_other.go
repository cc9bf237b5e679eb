//go:build !unix

package badgerstore

import (
	"fmt"
	"os"
)

// lockDir opens the lock file; on this platform Badger's own directory
// lock is what keeps a second process out.
func lockDir(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	return f, nil
}
