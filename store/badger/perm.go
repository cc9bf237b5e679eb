package badgerstore

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// File modes inside a store directory: key hashes, allowlists and usage
// logs are for the daemon's user alone.
const (
	filePerm = 0o600
	dirPerm  = 0o700
)

// privateModes sets every regular file under dir to 0600 and every
// directory below it to 0700, whatever mode they were created with.
// Badger creates its files 0666 less the umask (0644 under the usual
// umask 022) and has no option to change that, so Open runs this before
// and after opening Badger, and the maintenance pass and Close run it for
// the files created since (keygate serve also sets the umask to 077, so
// that a file is never readable by others even until then). dir itself keeps the mode
// its owner gave it. Symbolic links are left alone.
func privateModes(dir string) error {
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) { // removed while walking (a compaction)
				return nil
			}
			return err
		}
		want := fs.FileMode(filePerm)
		switch {
		case path == dir:
			return nil
		case d.IsDir():
			want = dirPerm
		case !d.Type().IsRegular():
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		if fi.Mode().Perm() == want {
			return nil
		}
		if err := os.Chmod(path, want); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("store: making %s private: %w", path, err)
		}
		return nil
	})
}
