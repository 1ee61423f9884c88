package relay

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/herald-relay/herald/internal/heraldtest"
)

// TestRetryClaimReadsNoPairsOfEndpointsItDoesNotServe: 100,000 due pairs of
// a disabled (or paused, or removed) endpoint wait in the retry lane. The
// retry claim for the other endpoints must not read them: the pages it
// touches stay few, whatever waits for the endpoint left out.
func TestRetryClaimReadsNoPairsOfEndpointsItDoesNotServe(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := heraldtest.Pool(t)
	_, err := pool.Exec(ctx, `
INSERT INTO outbox.deliveries (seq, endpoint, id, topic, payload, created_at, attempts, first_attempt_at, last_attempt_at, next_attempt_at)
SELECT g, 'disabled', 'msg_' || g, 't', '{}', now(), 1, now(), now(), now() - interval '1 hour' + g * interval '1 ms'
FROM generate_series(1, 100000) g;
INSERT INTO outbox.deliveries (seq, endpoint, id, topic, payload, created_at, attempts, first_attempt_at, last_attempt_at, next_attempt_at)
SELECT g, 'served', 'msg_' || g, 't', '{}', now(), 1, now(), now(), now() - interval '1 minute'
FROM generate_series(200001, 200100) g;
ANALYZE outbox.deliveries`)
	require.NoError(t, err)

	// A few endpoints served, and thousands (the claim's other form, which
	// once walked the lane in due order through the disabled endpoint's
	// pairs).
	many := []string{"served", "other"}
	for i := range 5000 {
		many = append(many, fmt.Sprintf("customer-%d", i))
	}
	for _, served := range [][]string{{"served", "other"}, many} {
		tx, err := pool.Begin(ctx)
		require.NoError(t, err)
		var plan json.RawMessage
		require.NoError(t, tx.QueryRow(ctx, "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) "+retryClaimSQL(len(served)),
			64, 60000, 1, served, []string{}, []string{}, 1).Scan(&plan))
		require.NoError(t, tx.Rollback(ctx))
		var out []struct {
			Plan struct {
				SharedHit  int `json:"Shared Hit Blocks"`
				SharedRead int `json:"Shared Read Blocks"`
				ActualRows int `json:"Actual Rows"`
			} `json:"Plan"`
		}
		require.NoError(t, json.Unmarshal(plan, &out))
		p := out[0].Plan
		// Claiming 64 pairs touches about 900 pages, mostly to update them
		// and their four index entries each. Reading the disabled endpoint's
		// pairs first (as the claim did before deliveries_endpoint_due_idx)
		// cost over 4,000.
		require.Less(t, p.SharedHit+p.SharedRead, 1500, "%d endpoints served: pages touched by one retry claim: %s", len(served), plan)
		require.Equal(t, 64, p.ActualRows)
	}
}

// TestHotClaimCostsTheSameWithoutStatistics: a backlog committed faster
// than autovacuum's ANALYZE comes (or with autovacuum off) leaves the
// planner without statistics of outbox.messages, and it then plans the
// claim's UPDATE as a bitmap heap scan instead of an index scan. Measured
// (docs/performance.md), that costs nothing: the claim touches the same
// pages. This pins it, so that a change to the claim whose plan without
// statistics reads more of the table fails here rather than in production
// after a relay outage.
func TestHotClaimCostsTheSameWithoutStatistics(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pages := func(analyze bool) (touched int, scans []string) {
		pool := heraldtest.Pool(t)
		heraldtest.Exec(t, pool, `INSERT INTO outbox.messages (topic, payload)
			SELECT 'order.placed', json_build_object('order_id', 'ord-' || g, 'note', repeat('x', 250))
			FROM generate_series(1, 20000) g`)
		var stats int
		require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM pg_stats WHERE schemaname = 'outbox' AND tablename = 'messages'`).Scan(&stats))
		require.Zero(t, stats, "a new test database has statistics of outbox.messages already")
		if analyze {
			heraldtest.Exec(t, pool, `ANALYZE outbox.messages`)
		}
		tx, err := pool.Begin(ctx)
		require.NoError(t, err)
		defer func() { _ = tx.Rollback(ctx) }()
		var plan json.RawMessage
		require.NoError(t, tx.QueryRow(ctx, "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) "+claimHotSQL,
			500, 60000, 1, false, int64(1)<<40, int64(1)).Scan(&plan))
		var out []struct {
			Plan planNode `json:"Plan"`
		}
		require.NoError(t, json.Unmarshal(plan, &out))
		p := out[0].Plan
		require.Equal(t, 500, p.ActualRows, "rows claimed: %s", plan)
		return p.SharedHit + p.SharedRead, p.scans()
	}
	stale, staleScans := pages(false)
	fresh, freshScans := pages(true)
	t.Logf("pages touched by a 500-row claim of 20,000 waiting: %d without statistics (%v), %d after ANALYZE (%v)", stale, staleScans, fresh, freshScans)
	require.LessOrEqual(t, float64(stale), 1.1*float64(fresh),
		"a claim without statistics touches %d pages, after ANALYZE %d: its plan now depends on fresh statistics", stale, fresh)
}

// planNode is the part of an EXPLAIN (FORMAT JSON) node the tests read.
type planNode struct {
	NodeType   string     `json:"Node Type"`
	Relation   string     `json:"Relation Name"`
	SharedHit  int        `json:"Shared Hit Blocks"`
	SharedRead int        `json:"Shared Read Blocks"`
	ActualRows int        `json:"Actual Rows"`
	Plans      []planNode `json:"Plans"`
}

// scans lists the node types that read a relation.
func (n planNode) scans() []string {
	var out []string
	if n.Relation != "" {
		out = append(out, n.NodeType+" on "+n.Relation)
	}
	for _, c := range n.Plans {
		out = append(out, c.scans()...)
	}
	return out
}
