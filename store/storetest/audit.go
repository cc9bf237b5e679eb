package storetest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/keygate/keygate/engine"
	"github.com/keygate/keygate/store"
)

// testAudit: Audit returns the trail newest first, filtered by key and
// time as a brute-force filter over Changes does, and its pages (Before)
// cover it exactly once.
func testAudit(t *testing.T, h Harness) {
	ctx := context.Background()
	s := open(t, h)
	r := rand.New(rand.NewPCG(9, 10))
	var ids []string
	for i := range 6 {
		k := Key(r, i)
		_, err := s.CreateKey(ctx, k, "a")
		require.NoError(t, err)
		ids = append(ids, k.ID)
	}
	for i := range 30 {
		_, err := s.UpdateKey(ctx, ids[r.IntN(len(ids))], fmt.Sprint("w", i), "", func(k *engine.Key) error {
			k.Description = fmt.Sprint("update ", i)
			return nil
		})
		require.NoError(t, err)
	}
	all, err := s.Changes(ctx, 0, 1000)
	require.NoError(t, err)
	slices.Reverse(all)

	queries := []store.AuditQuery{
		{},
		{KeyID: ids[0]},
		{KeyID: "key_none"},
		{From: all[20].Time},
		{To: all[10].Time},
		{KeyID: ids[1], From: all[30].Time, To: all[5].Time},
	}
	for _, q := range queries {
		var want []store.Change
		for _, c := range all {
			if q.Match(c) {
				want = append(want, c)
			}
		}
		got, err := s.Audit(ctx, q)
		require.NoError(t, err)
		require.Equal(t, seqs(want), seqs(got), "%+v", q)

		// Pages of 4.
		var paged []store.Change
		q.Limit = 4
		for {
			page, err := s.Audit(ctx, q)
			require.NoError(t, err)
			require.LessOrEqual(t, len(page), 4)
			paged = append(paged, page...)
			if len(page) < 4 {
				break
			}
			q.Before = page[len(page)-1].Seq
		}
		require.Equal(t, seqs(want), seqs(paged), "paged %+v", q)
	}
	if len(all) > 0 {
		got, err := s.Audit(ctx, store.AuditQuery{Limit: 1})
		require.NoError(t, err)
		require.Len(t, got, 1)
		require.Equal(t, all[0].KeyID, got[0].KeyID)
		require.Equal(t, all[0].Actor, got[0].Actor)
		require.Equal(t, all[0].Action, got[0].Action)
	}
}

func seqs(cs []store.Change) []uint64 {
	out := []uint64{}
	for _, c := range cs {
		out = append(out, c.Seq)
	}
	return out
}
