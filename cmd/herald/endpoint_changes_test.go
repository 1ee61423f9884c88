package main

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/herald-relay/herald/cmd/herald/internal/config"
	"github.com/herald-relay/herald/internal/heraldtest"
	"github.com/herald-relay/herald/relay"
)

// summary is what a relay is told of its endpoints, one line each.
func summary(eps []relay.Endpoint) []string {
	out := make([]string, len(eps))
	for i, ep := range eps {
		out[i] = fmt.Sprintf("%s %v ordered=%v disabled=%v rate=%v unusable=%v", ep.Name, ep.Topics, ep.Ordered, ep.Disabled, ep.RateLimit, ep.Unusable)
	}
	return out
}

// The watcher reads only the endpoints changed since the version it holds.
// An earlier incremental watcher counted notifications: a late one, for a
// change a full read had already brought, was taken for the next change,
// and that change was skipped. Whatever the notifications do, each read
// since the mark must leave the relay with what a full read gives.
func TestIncrementalEndpointChangesMatchAFullRead(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := heraldtest.Pool(t)
	exec := func(sql string, args ...any) {
		t.Helper()
		_, err := pool.Exec(ctx, sql, args...)
		require.NoError(t, err)
	}
	cfg := config.Default()
	cfg.Delivery.AllowPrivateNetworks = true
	fresh := func() []string {
		t.Helper()
		s := newEndpointSet(cfg)
		defer s.closeAll()
		eps, _, err := s.load(ctx, pool)
		require.NoError(t, err)
		return summary(eps)
	}
	const url = "http://127.0.0.1:9/in"
	for _, name := range []string{"a", "b", "gone"} {
		exec(`INSERT INTO outbox.endpoints (name, url, secrets, topics) VALUES ($1, $2, ARRAY[$3], ARRAY[$1 || '.*'])`, name, url, string(testSecret))
	}
	set := newEndpointSet(cfg)
	t.Cleanup(set.closeAll)
	_, mark, err := set.load(ctx, pool)
	require.NoError(t, err)
	since := func() (eps []relay.Endpoint, changed bool) {
		t.Helper()
		eps, next, changed, full, err := set.loadSince(ctx, pool, mark)
		require.NoError(t, err)
		require.False(t, full)
		mark = next
		return eps, changed
	}

	// A change, then a full read (a reload) that brings it; the change's
	// notification arrives after both: nothing more to read.
	exec(`UPDATE outbox.endpoints SET rate_limit = 5 WHERE name = 'a'`)
	_, mark, err = set.load(ctx, pool)
	require.NoError(t, err)
	_, changed := since()
	require.False(t, changed, "a late notification of a change already read")

	// The next changes are all read: an insert, an update, a delete, a row
	// that cannot be read (held as Unusable), a disabled endpoint.
	exec(`INSERT INTO outbox.endpoints (name, url, secrets, topics) VALUES ('c', $1, ARRAY[$2], '{c.*}')`, url, string(testSecret))
	exec(`UPDATE outbox.endpoints SET topics = '{b.x, b.y}', ordered = true WHERE name = 'b'`)
	exec(`DELETE FROM outbox.endpoints WHERE name = 'gone'`)
	exec(`INSERT INTO outbox.endpoints (name, url, secrets, topics, headers) VALUES ('bad', $1, ARRAY[$2], '{*}', '{"X-Retry": 3}')`, url, string(testSecret))
	exec(`UPDATE outbox.endpoints SET disabled_at = now() WHERE name = 'a'`)
	eps, changed := since()
	require.True(t, changed)
	require.Equal(t, fresh(), summary(eps))
	require.Contains(t, fmt.Sprint(summary(eps)), "bad [*] ordered=false disabled=false rate=0 unusable=its row in outbox.endpoints cannot be read")

	// Mended, deleted and inserted again, and changed by writers at once.
	exec(`UPDATE outbox.endpoints SET headers = '{"X-Retry": "3"}' WHERE name = 'bad'`)
	exec(`DELETE FROM outbox.endpoints WHERE name = 'c'`)
	exec(`INSERT INTO outbox.endpoints (name, url, secrets, topics) VALUES ('c', $1, ARRAY[$2], '{c.again}')`, url, string(testSecret))
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 10 {
				name := fmt.Sprintf("w%d-%d", w, i%3)
				if _, err := pool.Exec(ctx, `INSERT INTO outbox.endpoints (name, url, secrets, topics) VALUES ($1, $2, ARRAY[$3], ARRAY[$4])
					ON CONFLICT (name) DO UPDATE SET topics = EXCLUDED.topics`, name, url, string(testSecret), fmt.Sprint("t", i)); err != nil {
					t.Error(err)
					return
				}
				if i%4 == 3 {
					if _, err := pool.Exec(ctx, `DELETE FROM outbox.endpoints WHERE name = $1`, name); err != nil {
						t.Error(err)
						return
					}
				}
			}
		}()
	}
	for range 5 { // reads while they write
		since()
	}
	wg.Wait()
	eps, _ = since()
	require.Equal(t, fresh(), summary(set.endpoints()))
	_ = eps

	// A TRUNCATE says so: only a full read tells what is left.
	exec(`TRUNCATE outbox.endpoints`)
	_, _, _, full, err := set.loadSince(ctx, pool, mark)
	require.NoError(t, err)
	require.True(t, full)
}
