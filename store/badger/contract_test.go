package badgerstore

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keygate/keygate/store"
	"github.com/keygate/keygate/store/storetest"
)

// contractOptions are small segments, so that the suite's queries cross
// many of them, and a flush interval the suite's FlushLogs calls beat.
func contractOptions(dir string) Options {
	return DefaultOptions(dir).WithSegmentRecords(64).WithFlushInterval(time.Hour).WithNode("node-a:8080")
}

var harness = storetest.Harness{
	Node: "node-a:8080",
	Open: func(t *testing.T) store.Store {
		s, err := Open(contractOptions(t.TempDir()))
		require.NoError(t, err)
		return s
	},
	Reopen: func(t *testing.T, st store.Store) store.Store {
		dir := st.(*Store).opts.Dir
		require.NoError(t, st.Close())
		s, err := Open(contractOptions(dir))
		require.NoError(t, err)
		return s
	},
}

// TestContract: the Badger backend meets the store contract.
func TestContract(t *testing.T) { storetest.Run(t, harness) }

// TestContractConcurrent runs the suite's concurrent tests alone, for
// make test's -race pass.
func TestContractConcurrent(t *testing.T) { storetest.RunConcurrent(t, harness) }

// An in-memory store meets it too (without Reopen: nothing outlives it).
func TestContractInMemory(t *testing.T) {
	storetest.Run(t, storetest.Harness{Node: "node-a:8080", Open: func(t *testing.T) store.Store {
		s, err := Open(contractOptions("").WithInMemory(true))
		require.NoError(t, err)
		return s
	}})
}
