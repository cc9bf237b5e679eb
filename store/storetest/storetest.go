// Package storetest is the contract suite every store backend must pass,
// in the style of database/sql drivers' and go-cloud's drivertest: a
// backend's test calls Run with a Harness that opens fresh, empty stores,
// and the suite checks everything the key set and the server rely on —
// all-or-nothing key changes, the gapless change sequence (under
// concurrent writers too), the audit trail, every log filter, stable
// cursor paging while records are appended, CSV export, the log counters,
// LastUsed and ErrClosed after Close.
//
// Assertions here, as in every keygate test written or moved since the
// store contract, use testify's require (a failed precondition stops the
// test) and assert (a failed check is reported and the test goes on); see
// CONTRIBUTING.md.
package storetest

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/keygate/keygate/store"
)

// Harness is what the suite needs from a backend.
type Harness struct {
	// Open returns a fresh, empty store; the suite closes it (Close may be
	// called more than once). Usage-log records should not be written by
	// the backend on its own in less than a second or so, so that the
	// suite's FlushLogs calls decide what queries see.
	Open func(t *testing.T) store.Store
	// Reopen, if not nil, closes st and opens the same storage again; the
	// suite then checks that keys, changes and logs outlive Close.
	Reopen func(t *testing.T, st store.Store) store.Store
	// Node is the node name the stores Open returns put in their usage-log
	// records (Record.Node, the CSV's node column); it must not be empty.
	Node string
}

// Run runs the whole contract suite, each test as a subtest with a store
// of its own.
func Run(t *testing.T, h Harness) {
	t.Helper()
	require.NotEmpty(t, h.Node, "Harness.Node")
	for _, tc := range append(sequential, concurrent...) {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, h) })
	}
}

// RunConcurrent runs only the tests with concurrent writers and readers,
// for a run under the race detector (make test runs -race on tests named
// Race or Concurrent).
func RunConcurrent(t *testing.T, h Harness) {
	t.Helper()
	require.NotEmpty(t, h.Node, "Harness.Node")
	for _, tc := range concurrent {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, h) })
	}
}

type test struct {
	name string
	fn   func(t *testing.T, h Harness)
}

var sequential = []test{
	{"KeysRoundTrip", testKeysRoundTrip},
	{"UpdateKeyAllOrNothing", testUpdateKeyAllOrNothing},
	{"KeyVersions", testKeyVersions},
	{"ChangesSequence", testChangesSequence},
	{"Audit", testAudit},
	{"ClosedKeys", testClosedKeys},
	{"QueryMatchesBruteForce", testQueryMatchesBruteForce},
	{"PagingWhileAppending", testPagingWhileAppending},
	{"QueryFilterErrors", testQueryFilterErrors},
	{"ExportCSV", testExportCSV},
	{"CSVSafeUnderEverySeparator", testCSVSafeUnderEverySeparator},
	{"LogStats", testLogStats},
	{"LastUsed", testLastUsed},
	{"Rotation", testRotation},
	{"EntryHitsAndTraffic", testEntryHitsAndTraffic},
	{"LogBuckets", testLogBuckets},
	{"LogBucketsErrors", testLogBucketsErrors},
	{"CloseFlushesLogs", testCloseFlushesLogs},
}

var concurrent = []test{
	{"ConcurrentWritersGapless", testConcurrentWritersGapless},
	{"ConcurrentAppendQuery", testConcurrentAppendQuery},
}

// open opens a store and closes it when the test ends.
func open(t *testing.T, h Harness) store.Store {
	t.Helper()
	s := h.Open(t)
	t.Cleanup(func() { s.Close() })
	return s
}
