//go:build !(linux || darwin)

package badgerstore

import "errors"

// freeSpace is not implemented on this platform: the reserve is not
// enforced.
func freeSpace(string) (uint64, error) { return 0, errors.ErrUnsupported }

func totalSpace(string) (uint64, error) { return 0, errors.ErrUnsupported }
