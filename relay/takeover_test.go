package relay_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	neturl "net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/herald-relay/herald/internal/faultproxy"
	"github.com/herald-relay/herald/internal/heraldtest"
	"github.com/herald-relay/herald/outbox"
	"github.com/herald-relay/herald/relay"
	"github.com/herald-relay/herald/webhook"
)

// TestKilledRelaysWorkIsTakenOverInSeconds SIGKILLs a relay process (the
// default 60 s lease, a 50 s endpoint timeout) while its requests hang at
// the receiver, from the hot lane and from the retry lane. The next relay
// must deliver them within seconds, not when the lease lapses.
func TestKilledRelaysWorkIsTakenOverInSeconds(t *testing.T) {
	t.Parallel()
	for _, lane := range []string{"hot", "retry"} {
		t.Run(lane, func(t *testing.T) {
			t.Parallel()
			const n = 20
			// The attempt that hangs: the first (hot lane), or the second,
			// after a first that failed (retry lane).
			hangOn := 1
			if lane == "retry" {
				hangOn = 2
			}
			url := heraldtest.URL(t)
			pool := heraldtest.PoolFor(t, url)
			var hanging atomic.Int64
			allHanging := make(chan struct{})
			rc := newReceiver(t, func(k int, r *http.Request) int {
				switch {
				case k < hangOn:
					return http.StatusInternalServerError
				case k == hangOn:
					if hanging.Add(1) == n {
						close(allHanging)
					}
					<-r.Context().Done() // the killed relay never reads the answer
				}
				return http.StatusOK
			})
			msgs := make([]outbox.Message, n)
			for i := range msgs {
				msgs[i] = outbox.Message{ID: fmt.Sprintf("msg_%s_%d", lane, i), Topic: "t", Payload: json.RawMessage(`{}`)}
			}
			enqueue(t, pool, msgs...)

			child := startChild(t, url, rc.srv.URL, "HERALD_CHILD_RELAY_SLOW=1")
			child.awaitThenKill(t, allHanging, 20*time.Second, fmt.Sprintf("the child relay did not have all %d requests in flight", n))
			killedAt := time.Now()

			next := startRelay(t, pool, relay.Config{Endpoints: []relay.Endpoint{endpoint(t, "ep", rc.srv.URL, "*")},
				Lease: relay.LeaseDefault})
			eventually(t, 15*time.Second, func() bool {
				return count(t, pool, `SELECT count(*) FROM outbox.messages`)+count(t, pool, `SELECT count(*) FROM outbox.deliveries`) == 0
			}, "the killed relay's messages delivered by the next one")
			took := time.Since(killedAt)
			t.Logf("%s lane: every message delivered %s after the SIGKILL (relay.lease %s)", lane, took, relay.LeaseDefault)
			require.Less(t, took, 8*time.Second, "taken over within heartbeat_timeout and a claim, not the lease")
			require.Equal(t, n, rc.uniqueIDs())
			require.Zero(t, rc.overlap.Load())
			require.EqualValues(t, n, next.Stats().TakenOver, "counted as taken over (herald_rows_taken_over_total)")
		})
	}
}

// TestPartitionedRelayStopsBeforeItsWorkIsTakenOver cuts a relay off from
// PostgreSQL (a black hole in a TCP proxy: no error, no answer) while its
// requests hang at a receiver it can still reach. Another relay takes its
// messages over within seconds; the receiver must never have two requests
// for one message open at once, so the partitioned relay must have
// cancelled its own before the other relay could claim them.
func TestPartitionedRelayStopsBeforeItsWorkIsTakenOver(t *testing.T) {
	t.Parallel()
	const n = 20
	dbURL := heraldtest.URL(t)
	pool := heraldtest.PoolFor(t, dbURL)
	u, err := neturl.Parse(dbURL)
	require.NoError(t, err)
	p, err := faultproxy.Start(u.Host)
	require.NoError(t, err)
	t.Cleanup(p.Close)
	u.Host = p.Addr()
	cutPool := heraldtest.PoolFor(t, u.String())

	rc, allHanging := hangFirst(t, n, 20*time.Millisecond)
	enqueue(t, pool, numberedMessages("msg_cut", n)...)
	cfg := relay.Config{Endpoints: []relay.Endpoint{slowEndpoint(t, rc.srv.URL)}, Lease: relay.LeaseDefault,
		HeartbeatInterval: 100 * time.Millisecond, HeartbeatTimeout: 1500 * time.Millisecond}
	cutCfg := cfg
	cutCfg.ShutdownTimeout = time.Second // a failed test does not wait for its hanging requests
	cut := startRelay(t, cutPool, cutCfg)
	t.Cleanup(func() { p.SetBlackHole(false) }) // runs before its Stop, which writes its outcomes
	awaitClosed(t, allHanging, 15*time.Second, "all requests in flight")
	p.SetBlackHole(true)
	cutAt := time.Now()
	next := startRelay(t, pool, cfg)
	eventually(t, 15*time.Second, func() bool {
		return count(t, pool, `SELECT count(*) FROM outbox.messages`)+count(t, pool, `SELECT count(*) FROM outbox.deliveries`) == 0
	}, "the partitioned relay's messages delivered by the other one")
	t.Logf("every message delivered %s after the partition (heartbeat_timeout %s, lease %s)",
		time.Since(cutAt), cfg.HeartbeatTimeout, cfg.Lease)
	require.Equal(t, n, rc.uniqueIDs())
	require.Len(t, rc.requests(), 2*n, "each message once by each relay")
	require.Zero(t, rc.overlap.Load(), "no message had two requests open at once")
	require.EqualValues(t, n, next.Stats().TakenOver)
	require.Zero(t, cut.Stats().Delivered, "the partitioned relay delivered nothing: it cancelled its requests")
}

// TestRelayDeclaredDeadNeverResumesUnderItsID declares a running relay dead
// behind its back, as another relay would if its heartbeats had not reached
// PostgreSQL in time. Its next heartbeat must not renew the dead row: it
// cancels its requests in flight, registers under a new id, and then takes
// over its own old messages like any other relay.
func TestRelayDeclaredDeadNeverResumesUnderItsID(t *testing.T) {
	t.Parallel()
	const n = 5
	pool := heraldtest.Pool(t)
	rc, allHanging := hangFirst(t, n, 0)
	enqueue(t, pool, numberedMessages("msg_dead", n)...)
	r := startRelay(t, pool, relay.Config{Endpoints: []relay.Endpoint{slowEndpoint(t, rc.srv.URL)},
		// The test declares the relay dead itself: a timeout it cannot reach
		// by a scheduling delay (1.5 s lapsed once under -race at load 10,
		// releasing every request twice), while a renewal every 100 ms soon
		// finds the row dead.
		Lease: relay.LeaseDefault, HeartbeatInterval: 100 * time.Millisecond, HeartbeatTimeout: 10 * time.Second})
	awaitClosed(t, allHanging, 15*time.Second, "all requests in flight")
	var first int64
	require.NoError(t, pool.QueryRow(context.Background(), `UPDATE outbox.relays SET dead_at = now() RETURNING id`).Scan(&first))

	eventually(t, 10*time.Second, func() bool {
		return count(t, pool, `SELECT count(*) FROM outbox.messages`) == 0
	}, "its own old messages delivered under its new id")
	require.Equal(t, 1, count(t, pool, `SELECT count(*) FROM outbox.relays WHERE dead_at IS NULL AND id <> $1`, first),
		"registered again under a new id")
	require.Equal(t, 1, count(t, pool, `SELECT count(*) FROM outbox.relays WHERE id = $1 AND dead_at IS NOT NULL`, first),
		"the dead row was never renewed")
	require.Len(t, rc.requests(), 2*n)
	require.Zero(t, rc.overlap.Load(), "its first requests were cancelled before it sent the messages again")
	// Its cancelled requests are given back (or, if it has taken them over
	// under its new id first, their release is fenced off).
	eventually(t, 5*time.Second, func() bool { return r.Stats().Released == n }, "the cancelled requests released")
}

// hangFirst is a receiver whose first request for each message stays open
// until the relay that sent it gives up on it; allHanging is closed once n
// are open. Later requests take later (a receiver's work, not a wait for
// the test) and succeed.
func hangFirst(t *testing.T, n int64, later time.Duration) (rc *receiver, allHanging <-chan struct{}) {
	var hanging atomic.Int64
	all := make(chan struct{})
	rc = newReceiver(t, func(k int, r *http.Request) int {
		if k == 1 {
			if hanging.Add(1) == n {
				close(all)
			}
			<-r.Context().Done()
			return http.StatusOK
		}
		time.Sleep(later)
		return http.StatusOK
	})
	return rc, all
}

// numberedMessages are n messages of topic t, with ids prefix_0, prefix_1...
func numberedMessages(prefix string, n int) []outbox.Message {
	msgs := make([]outbox.Message, n)
	for i := range msgs {
		msgs[i] = outbox.Message{ID: fmt.Sprintf("%s_%d", prefix, i), Topic: "t", Payload: json.RawMessage(`{}`)}
	}
	return msgs
}

// slowEndpoint is endpoint "ep" (every topic) with a 30 s timeout, for the
// sender as for the relay: a request may hang for most of the lease.
func slowEndpoint(t *testing.T, url string) relay.Endpoint {
	t.Helper()
	sender, err := webhook.NewClient(webhook.ClientConfig{AllowPrivateNetworks: true}).Endpoint(webhook.EndpointConfig{
		Name: "ep", URL: url, Secrets: []string{testSecret}, Timeout: 30 * time.Second})
	require.NoError(t, err)
	t.Cleanup(sender.Close)
	return relay.Endpoint{Name: "ep", Topics: []string{"*"}, Sender: sender, Timeout: 30 * time.Second}
}

// awaitClosed waits until ch is closed, or fails t after d.
func awaitClosed(t *testing.T, ch <-chan struct{}, d time.Duration, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(d):
		t.Fatalf("not %s within %s", what, d)
	}
}

// TestDeadRelaysRowsAreTakenOverAsItsAliveUntilPasses leaves messages held
// by a relay that will never renew its heartbeat, whose alive_until is 4 s
// away, and starts a relay whose own heartbeat comes only every 10 s. The
// live relay knows the other's alive_until from its own registration, so
// it must declare the other dead, and take its messages, as alive_until
// passes, not at its next heartbeat (6 s or more later).
func TestDeadRelaysRowsAreTakenOverAsItsAliveUntilPasses(t *testing.T) {
	t.Parallel()
	const n, dead = 5, int64(42)
	pool := heraldtest.Pool(t)
	rc := newReceiver(t, nil)
	enqueue(t, pool, numberedMessages("msg_due", n)...)
	ctx := context.Background()
	_, err := pool.Exec(ctx, `INSERT INTO outbox.relays (id, alive_until) VALUES ($1, now() + interval '4 seconds')`, dead)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `UPDATE outbox.messages SET visible_at = now() + interval '1 minute', attempts = 1, lease = 1, holder = $1`, dead)
	require.NoError(t, err)

	next := startRelay(t, pool, relay.Config{Endpoints: []relay.Endpoint{endpoint(t, "ep", rc.srv.URL, "*")},
		Lease: relay.LeaseDefault, HeartbeatInterval: 10 * time.Second, HeartbeatTimeout: 30 * time.Second})
	eventually(t, 20*time.Second, func() bool {
		return count(t, pool, `SELECT count(*) FROM outbox.messages`) == 0
	}, "the dead relay's messages delivered")
	var aliveUntil, deadAt time.Time
	require.NoError(t, pool.QueryRow(ctx, `SELECT alive_until, dead_at FROM outbox.relays WHERE id = $1`, dead).Scan(&aliveUntil, &deadAt))
	// PostgreSQL's clock: declared dead soon after alive_until, where the
	// next heartbeat would come 6 s or more after it. The bound leaves a
	// loaded machine seconds of scheduling delay.
	t.Logf("declared dead %s after its alive_until", deadAt.Sub(aliveUntil))
	require.Less(t, deadAt.Sub(aliveUntil), 2*time.Second, "declared dead as alive_until passed, not at the next heartbeat")
	// The receiver's clock is this machine's, as PostgreSQL's is.
	for _, req := range rc.requests() {
		require.Less(t, req.at.Sub(aliveUntil), 3*time.Second, "%s delivered soon after it was taken over", req.id)
	}
	require.Equal(t, n, rc.uniqueIDs())
	require.EqualValues(t, n, next.Stats().TakenOver)
}

// TestTakenOverMessagesGoBeforeTheQueue has a relay working through a
// queue of 40 fresh messages for an endpoint that takes one request at a
// time, 100 ms each, when the relay holding three older messages dies. The
// three were due before anything in the queue, and have waited since the
// dead relay claimed them: they must be sent next, not after the queue
// (which would keep them 3 s or more).
func TestTakenOverMessagesGoBeforeTheQueue(t *testing.T) {
	t.Parallel()
	const fresh, held, dead = 40, 3, int64(43)
	pool := heraldtest.Pool(t)
	rc := newReceiver(t, func(int, *http.Request) int {
		time.Sleep(100 * time.Millisecond) // the receiver's work
		return http.StatusOK
	})
	ctx := context.Background()
	enqueue(t, pool, numberedMessages("msg_held", held)...)
	_, err := pool.Exec(ctx, `INSERT INTO outbox.relays (id, alive_until) VALUES ($1, now() + interval '1 hour')`, dead)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `UPDATE outbox.messages SET visible_at = now() + interval '1 minute', attempts = 1, lease = 1, holder = $1`, dead)
	require.NoError(t, err)
	enqueue(t, pool, numberedMessages("msg_fresh", fresh)...)

	ep := endpoint(t, "ep", rc.srv.URL, "*")
	ep.MaxInFlight = 1
	startRelay(t, pool, relay.Config{Endpoints: []relay.Endpoint{ep}, Lease: relay.LeaseDefault})
	eventually(t, 15*time.Second, func() bool { return len(rc.requests()) >= 5 }, "the queue being worked through")
	_, err = pool.Exec(ctx, `UPDATE outbox.relays SET alive_until = now() WHERE id = $1`, dead)
	require.NoError(t, err)
	eventually(t, 20*time.Second, func() bool {
		return count(t, pool, `SELECT count(*) FROM outbox.messages`) == 0
	}, "every message delivered")

	reqs := rc.requests()
	require.Len(t, reqs, fresh+held)
	firstHeld, freshAfter := -1, 0
	for i, r := range reqs {
		switch {
		case strings.HasPrefix(r.id, "msg_held") && firstHeld < 0:
			firstHeld = i
		case strings.HasPrefix(r.id, "msg_fresh") && firstHeld >= 0:
			freshAfter++
		}
	}
	t.Logf("the first taken-over message was request %d of %d; %d fresh ones came after it", firstHeld+1, len(reqs), freshAfter)
	// It died with about 35 fresh messages still to send; a loaded
	// machine may take a second or two more to see it, 10 to 20 of them.
	require.GreaterOrEqual(t, freshAfter, 10, "the taken-over messages went before the fresh ones queued")
}

// TestHeartbeatDoesNotWaitForTheBusyPool: the relay's pool is shared with
// its claims, outcome writes, maintenance and the admin API's queries
// (herald status reads for seconds at a million rows). A heartbeat that
// waits there for a free connection while PostgreSQL itself answers at
// once would make the relay lapse, cancel every request in flight and
// deliver them again: duplicates for no fault at all.
func TestHeartbeatDoesNotWaitForTheBusyPool(t *testing.T) {
	t.Parallel()
	pool := heraldtest.Pool(t)
	rc := newReceiver(t, nil)
	startRelay(t, pool, relay.Config{Endpoints: []relay.Endpoint{endpoint(t, "e", rc.srv.URL, "*")},
		HeartbeatInterval: 100 * time.Millisecond, HeartbeatTimeout: 1500 * time.Millisecond})
	eventually(t, 10*time.Second, func() bool {
		return count(t, pool, `SELECT count(*) FROM outbox.relays`) == 1
	}, "relay registered")

	// Take every connection of the pool (the listener's is its own: see
	// listener.go), waiting for those the relay is using to come back, and
	// hold them for three times the relay's fence (1 s).
	var held []*pgxpool.Conn
	for range 50 {
		if len(held) == int(pool.Stat().MaxConns()) {
			break
		}
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		if c, err := pool.Acquire(ctx); err == nil {
			held = append(held, c)
		}
		cancel()
	}
	require.Len(t, held, int(pool.Stat().MaxConns()), "every connection of the pool held")
	time.Sleep(3 * time.Second)
	for _, c := range held {
		c.Release()
	}

	require.Equal(t, 1, count(t, pool, `SELECT count(*) FROM outbox.relays`),
		"the relay lapsed and registered again while its pool was busy")
	enqueue(t, pool, messages(5, "t")...)
	eventually(t, 10*time.Second, func() bool { return rc.uniqueIDs() == 5 }, "delivered after")
}
