package badgerstore

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/keygate/keygate/store"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/dgraph-io/badger/v4/table"
	"github.com/dgraph-io/ristretto/v2/z"
)

// restoreAdvice ends every ErrCorrupt about the directory's files.
const restoreAdvice = "stop here and restore the data directory from a backup (keygate restore --data DIR FILE, into an empty directory)"

// verifyTableFiles opens every table file (*.sst) in dir by itself,
// before Badger does, and checks its index and every block against their
// checksums. Badger opens tables in goroutines of its own and parses a
// block's trailer before checking the block, so that some damaged tables
// made it panic where no recover can reach (about 1 in 30 damaged key
// tables in TestCorruption); here the same panic happens in the caller's
// goroutine and becomes store.ErrCorrupt naming the file. A table whose
// index fails its checksum Badger would even skip, with a log line, and
// serve the directory without it.
//
// Only the tables the MANIFEST lists are checked: others are what a crash
// left half written, which Badger deletes. A MANIFEST that cannot be read
// is left to badger.Open, which refuses it.
func verifyTableFiles(dir string, bopts badger.Options) error {
	mf, err := os.Open(filepath.Join(dir, badger.ManifestFilename))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	m, _, err := badger.ReplayManifestFile(mf, bopts.ExternalMagicVersion, bopts)
	mf.Close()
	if err != nil {
		return nil
	}
	ids := slices.Sorted(maps.Keys(m.Tables))
	for _, id := range ids {
		f := table.NewFilename(id, dir)
		topts := bopts
		topts.Compression = m.Tables[id].Compression
		if err := verifyTableFile(f, topts); err != nil {
			return fmt.Errorf("%w: table %s is damaged (%v): %s", store.ErrCorrupt, f, err, restoreAdvice)
		}
	}
	return nil
}

// verifyTableFile checks one table file, turning a panic into an error.
func verifyTableFile(path string, bopts badger.Options) (err error) {
	mf, err := z.OpenMmapFile(path, os.O_RDONLY, 0)
	if err != nil && err != z.NewFile {
		return err
	}
	// Closed here only (not t.DecrRef: a table's last reference deletes
	// its file).
	defer mf.Close(-1)
	defer func() {
		if p := recover(); p != nil {
			msg, _, _ := strings.Cut(strings.TrimSpace(fmt.Sprint(p)), "\n")
			err = fmt.Errorf("panic: %s", msg)
		}
	}()
	// OnBlockRead: OpenTable checks the index and the blocks it reads,
	// VerifyChecksum then every block.
	t, err := table.OpenTable(mf, table.Options{
		ReadOnly:           true,
		ChkMode:            options.OnBlockRead,
		BlockSize:          bopts.BlockSize,
		BloomFalsePositive: bopts.BloomFalsePositive,
		Compression:        bopts.Compression,
		TableSize:          uint64(bopts.BaseTableSize),
	})
	if err != nil {
		return err
	}
	return verifyBlocks(t)
}

// verifyBlocks is t.VerifyChecksum, whose error path dereferences the
// block it failed to read (a nil pointer): that panic means a block that
// fails its checksum.
func verifyBlocks(t *table.Table) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = errors.New("a block fails its checksum")
		}
	}()
	return t.VerifyChecksum()
}
