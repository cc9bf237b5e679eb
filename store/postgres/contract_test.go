package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keygate/keygate/internal/pgtest"
	"github.com/keygate/keygate/store"
	"github.com/keygate/keygate/store/storetest"
)

// contractOptions: a flush interval the suite's FlushLogs calls beat.
func contractOptions(url string) Options {
	return DefaultOptions(url).WithNode("node-a:8080").WithFlushInterval(time.Hour)
}

var harness = storetest.Harness{
	Node: "node-a:8080",
	Open: func(t *testing.T) store.Store {
		s, err := Open(context.Background(), contractOptions(pgtest.Shared(t).DB(t)))
		require.NoError(t, err)
		return s
	},
	Reopen: func(t *testing.T, st store.Store) store.Store {
		url := st.(*Store).opts.URL
		require.NoError(t, st.Close())
		s, err := Open(context.Background(), contractOptions(url))
		require.NoError(t, err)
		return s
	},
}

// TestContract: the PostgreSQL backend meets the store contract, the same
// suite as the Badger backend.
func TestContract(t *testing.T) { storetest.Run(t, harness) }

// TestContractConcurrent runs the suite's concurrent tests alone, for
// make test's -race pass.
func TestContractConcurrent(t *testing.T) { storetest.RunConcurrent(t, harness) }
