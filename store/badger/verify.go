package badgerstore

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/keygate/keygate/store"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/dgraph-io/badger/v4/table"
	"github.com/dgraph-io/badger/v4/y"
	"github.com/dgraph-io/ristretto/v2/z"
)

// restoreAdvice ends every ErrCorrupt about the directory's files.
const restoreAdvice = "stop here and restore the data directory from a backup (keygate restore --data DIR FILE, into an empty directory)"

// verifyTableFiles opens every table file (*.sst) in dir by itself,
// before Badger does, and checks its index and blocks against their
// checksums. Badger opens tables in goroutines of its own and parses a
// block's trailer before checking the block, so that some damaged tables
// made it panic where no recover can reach (about 1 in 30 damaged key
// tables in TestCorruption); here the same panic happens in a goroutine
// of ours and becomes store.ErrCorrupt naming the file. A table whose
// index fails its checksum Badger would even skip, with a log line, and
// serve the directory without it.
//
// Every table's index and last block are checked here. The blocks of a
// table that holds nothing but usage-log segment values (its keys all
// under prefixSegment) are returned, to be checked while the daemon
// serves (verifyLater): they hold no decision, and on a big store they
// are most of the bytes. Every other table, which holds keys, changes or
// anything else, is checked whole before Open returns.
//
// Only the tables the MANIFEST lists are checked: others are what a crash
// left half written, which Badger deletes. A MANIFEST that cannot be read
// is left to badger.Open, which refuses it.
//
// It also returns, sorted, the first keys of about every sixteenth block
// of the key range (prefixKey) found in the tables, where LoadAll splits
// the range to read its parts at once (keyRanges).
func verifyTableFiles(dir string, bopts badger.Options) (later []string, keySplits [][]byte, err error) {
	mf, err := os.Open(filepath.Join(dir, badger.ManifestFilename))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("store: %w", err)
	}
	m, _, err := badger.ReplayManifestFile(mf, bopts.ExternalMagicVersion, bopts)
	mf.Close()
	if err != nil {
		return nil, nil, nil
	}
	ids := slices.Sorted(maps.Keys(m.Tables))
	// The tables in parallel: reading them is CRC32C and decompression.
	var (
		mu   sync.Mutex
		errs = make([]error, len(ids))
		wg   sync.WaitGroup
		next = make(chan int)
	)
	for range min(runtime.GOMAXPROCS(0), 4, max(len(ids), 1)) {
		wg.Go(func() {
			for i := range next {
				f := table.NewFilename(ids[i], dir)
				topts := bopts
				topts.Compression = m.Tables[ids[i]].Compression
				logOnly, splits, err := verifyTableFile(f, topts, true)
				mu.Lock()
				if err != nil {
					errs[i] = fmt.Errorf("%w: table %s is damaged (%v): %s", store.ErrCorrupt, f, err, restoreAdvice)
				} else if logOnly {
					later = append(later, f)
				}
				keySplits = append(keySplits, splits...)
				mu.Unlock()
			}
		})
	}
	for i := range ids {
		next <- i
	}
	close(next)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, nil, err
		}
	}
	slices.Sort(later)
	slices.SortFunc(keySplits, bytes.Compare)
	return later, slices.CompactFunc(keySplits, bytes.Equal), nil
}

// verifyTableFile checks one table file, turning a panic into an error:
// its index and last block, then every block unless deferLogs is set and
// the table holds only usage-log segment values (logOnly). keySplits are
// the first keys of about every sixteenth of its blocks in the key range.
func verifyTableFile(path string, bopts badger.Options, deferLogs bool) (logOnly bool, keySplits [][]byte, err error) {
	mf, err := z.OpenMmapFile(path, os.O_RDONLY, 0)
	if err != nil && err != z.NewFile {
		return false, nil, err
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
		return false, nil, err
	}
	logOnly = bytes.HasPrefix(y.ParseKey(t.Smallest()), prefixSegment) && bytes.HasPrefix(y.ParseKey(t.Biggest()), prefixSegment)
	if deferLogs && logOnly {
		return true, nil, nil
	}
	if err := verifyBlocks(t); err != nil {
		return logOnly, nil, err
	}
	for _, k := range t.KeySplits(max(1, int(t.Size())/(16*bopts.BlockSize)), prefixKey) {
		keySplits = append(keySplits, y.ParseKey([]byte(k)))
	}
	return logOnly, keySplits, nil
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

// verifyLater checks the blocks of the usage-log tables that Open left
// for later, while the store serves, and logs an error for each damaged
// one: queries over its records would fail. A table compaction has
// removed since is still read through its open mapping, or skipped.
func (s *Store) verifyLater(files []string) {
	defer s.wg.Done()
	bopts := badgerOptions(s.opts)
	for _, f := range files {
		select {
		case <-s.stop:
			return
		default:
		}
		if _, _, err := verifyTableFile(f, bopts, false); err != nil && !errors.Is(err, fs.ErrNotExist) {
			s.log.Error("store: a usage-log table is damaged: queries over its records fail; keys and checks are not affected; restore the data directory from a backup when convenient",
				"file", f, "err", err)
		}
	}
	s.log.Debug("store: usage-log tables verified", "tables", len(files))
}
