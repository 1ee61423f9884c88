package relay_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/herald-relay/herald/internal/heraldtest"
	"github.com/herald-relay/herald/outbox"
	"github.com/herald-relay/herald/relay"
)

// TestSameKeyDeliveredInCommitOrder would fail if messages were ordered by
// insertion alone: transaction A inserts first, B second, and B commits as
// soon as its insert returns, A only once B has either committed or is
// waiting for A. Without the per-key lock taken on insert, B would commit
// first while holding the later seq, and be delivered second. With it, B's
// insert waits for A's commit, so the commit order, and the delivery order,
// is A then B.
func TestSameKeyDeliveredInCommitOrder(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := heraldtest.Pool(t)
	var mu sync.Mutex
	var commits []string
	commit := func(name string, beforeCommit func() error) error {
		tx, err := pool.Begin(ctx)
		if err != nil {
			return err
		}
		defer tx.Rollback(ctx) //nolint:errcheck
		if err := outbox.Enqueue(ctx, tx, outbox.Message{ID: "msg_" + name, Topic: "t", Key: "order-1", Payload: json.RawMessage(`{}`)}); err != nil {
			return err
		}
		if err := beforeCommit(); err != nil {
			return err
		}
		if err := tx.Commit(ctx); err != nil {
			return err
		}
		mu.Lock()
		commits = append(commits, "msg_"+name)
		mu.Unlock()
		return nil
	}
	aInserted, bDone := make(chan struct{}), make(chan struct{})
	// holdA holds A's commit until B has committed, or until a session of
	// the test's own database waits for a lock: B's insert, for A's key.
	holdA := func() error {
		close(aInserted)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		deadline := time.After(10 * time.Second)
		for {
			var waiting bool
			if err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_stat_activity
				WHERE datname = current_database() AND wait_event_type = 'Lock')`).Scan(&waiting); err != nil || waiting {
				return err
			}
			select {
			case <-bDone:
				return nil
			case <-tick.C:
			case <-deadline:
				return errors.New("B neither committed nor waited for A's key within 10s")
			}
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	wg.Add(2)
	go func() { defer wg.Done(); errs <- commit("a", holdA) }()
	<-aInserted
	go func() {
		defer wg.Done()
		defer close(bDone)
		errs <- commit("b", func() error { return nil })
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	rc := newReceiver(t, nil)
	ep := endpoint(t, "ep", rc.srv.URL, "t")
	ep.Ordered = true
	startRelay(t, pool, relay.Config{Endpoints: []relay.Endpoint{ep}})
	eventually(t, 10*time.Second, func() bool { return rc.uniqueIDs() == 2 }, "both delivered")
	var delivered []string
	for _, q := range rc.requests() {
		delivered = append(delivered, q.id)
	}
	require.Equal(t, commits, delivered, "delivered in commit order")
}

// TestOrderedEndpointKeepsEachKeyInCommitOrder writes many keys from
// concurrent writers; each key's counter row gives its messages their
// commit order. The endpoint fails one first attempt in five, and the first
// relay is killed with SIGKILL mid-run. Per key, first arrivals never go
// backwards, and none is missing.
func TestOrderedEndpointKeepsEachKeyInCommitOrder(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := heraldtest.URL(t)
	pool := heraldtest.PoolFor(t, url)
	const keys, writers, perWriter = 8, 4, 40
	_, err := pool.Exec(ctx, `CREATE TABLE counters (key text PRIMARY KEY, n int NOT NULL DEFAULT 0)`)
	require.NoError(t, err)

	var mu sync.Mutex
	firsts := map[string][]int{} // key -> n of first arrivals, in arrival order
	seen := map[string]bool{}
	rc := newReceiver(t, func(n int, r *http.Request) int {
		id := r.Header.Get("webhook-id")
		h := fnv.New32a()
		h.Write([]byte(id))
		if n == 1 && h.Sum32()%5 == 0 {
			return http.StatusServiceUnavailable
		}
		mu.Lock()
		defer mu.Unlock()
		if !seen[id] {
			seen[id] = true
			var body struct {
				Key string `json:"key"`
				N   int    `json:"n"`
			}
			rc := r.Context().Value(bodyKey{}).([]byte)
			_ = json.Unmarshal(rc, &body)
			firsts[body.Key] = append(firsts[body.Key], body.N)
		}
		return http.StatusOK
	})
	rc.withBody = true

	// The first relay runs in a child process, killed mid-run.
	child := startChild(t, url, rc.srv.URL, "HERALD_CHILD_RELAY_ORDERED=1")

	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWriter {
				key := fmt.Sprintf("key-%d", (w*7+i*3)%keys)
				tx, err := pool.Begin(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				var n int
				// The counter's row lock serialises one key's writers: n is the
				// key's commit order.
				err = tx.QueryRow(ctx, `INSERT INTO counters (key, n) VALUES ($1, 1)
					ON CONFLICT (key) DO UPDATE SET n = counters.n + 1 RETURNING n`, key).Scan(&n)
				if err == nil {
					err = outbox.Enqueue(ctx, tx, outbox.Message{Topic: "t", Key: key,
						Payload: json.RawMessage(fmt.Sprintf(`{"key":%q,"n":%d}`, key, n))})
				}
				if err == nil {
					err = tx.Commit(ctx)
				}
				if err != nil {
					_ = tx.Rollback(ctx)
					t.Error(err)
					return
				}
			}
		}()
	}
	// Kill the child once it has delivered part of the messages.
	eventually(t, 30*time.Second, func() bool { return rc.uniqueIDs() >= 20 }, "child relay delivering; output:\n%s", &child.out)
	child.kill()
	wg.Wait()

	ep := endpoint(t, "ep", rc.srv.URL, "*")
	ep.Ordered = true
	startRelay(t, pool, relay.Config{Endpoints: []relay.Endpoint{ep}, Lease: 6 * time.Second,
		Breaker: relay.BreakerConfig{FailureThreshold: -1}})
	total := writers * perWriter
	eventually(t, 60*time.Second, func() bool { return rc.uniqueIDs() == total }, "all %d delivered", total)

	mu.Lock()
	defer mu.Unlock()
	for key, ns := range firsts {
		for i, n := range ns {
			require.Equal(t, i+1, n, "key %s: first arrivals %v go in commit order", key, ns)
		}
	}
	require.Len(t, firsts, keys)
}
