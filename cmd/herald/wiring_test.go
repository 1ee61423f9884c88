package main

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/herald-relay/herald/cmd/herald/internal/config"
	"github.com/herald-relay/herald/internal/heraldtest"
)

// relay.async_commit is applied to the relay's pool, the one place it can
// be: the relay library has no setting of its own for it.
func TestAsyncCommitSetsTheRelayPoolsSessions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := heraldtest.URL(t)
	for _, async := range []bool{true, false} {
		pool, err := openPool(ctx, source{name: "default", key: "database", url: config.Secret(url), maxConns: 4}, async)
		require.NoError(t, err)
		var got string
		require.NoError(t, pool.QueryRow(ctx, `SHOW synchronous_commit`).Scan(&got))
		pool.Close()
		want := map[bool]string{true: "off", false: "on"}[async]
		require.Equal(t, want, got, "async_commit %v", async)
	}
}
