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
			64, 60000, 1, served, []string{}, []string{}).Scan(&plan))
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
