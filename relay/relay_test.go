package relay_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/require"

	"github.com/herald-relay/herald/internal/heraldtest"
	"github.com/herald-relay/herald/outbox"
	"github.com/herald-relay/herald/relay"
	"github.com/herald-relay/herald/webhook"
)

const testSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// receiver is a real HTTP endpoint that records what arrives and answers
// with what the test's respond function says.
type receiver struct {
	srv     *httptest.Server
	mu      sync.Mutex
	got     []received
	byID    map[string]int
	active  map[string]bool // ids whose request is being handled right now
	overlap atomic.Int64    // requests that arrived while one with the same id was in flight
	respond func(n int, r *http.Request) int
	hold    chan struct{} // when set, every request waits on it
	closing chan struct{} // closed at cleanup: held requests end, so a failed test does not hang
	// withBody puts the request body in the context given to respond,
	// under bodyKey{}.
	withBody bool
}

type bodyKey struct{}

type received struct {
	id   string
	at   time.Time
	body []byte
	hdr  http.Header
}

func newReceiver(t testing.TB, respond func(n int, r *http.Request) int) *receiver {
	rc := &receiver{byID: map[string]int{}, active: map[string]bool{}, respond: respond, closing: make(chan struct{})}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		id := r.Header.Get("webhook-id")
		rc.mu.Lock()
		if rc.active[id] {
			rc.overlap.Add(1)
		}
		rc.active[id] = true
		rc.byID[id]++
		n := rc.byID[id]
		rc.got = append(rc.got, received{id: id, at: time.Now(), body: body, hdr: r.Header.Clone()})
		rc.mu.Unlock()
		if rc.hold != nil {
			select {
			case <-rc.hold:
			case <-rc.closing:
			}
		}
		status := http.StatusNoContent
		if rc.respond != nil {
			if rc.withBody {
				r = r.WithContext(context.WithValue(r.Context(), bodyKey{}, body))
			}
			status = rc.respond(n, r)
		}
		rc.mu.Lock()
		delete(rc.active, id)
		rc.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(rc.srv.Close)
	t.Cleanup(func() { close(rc.closing) }) // runs first
	return rc
}

func (rc *receiver) requests() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]received(nil), rc.got...)
}

func (rc *receiver) uniqueIDs() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.byID)
}

func endpoint(t testing.TB, name, url string, topics ...string) relay.Endpoint {
	t.Helper()
	c := webhook.NewClient(webhook.ClientConfig{AllowPrivateNetworks: true})
	ep, err := c.Endpoint(webhook.EndpointConfig{Name: name, URL: url, Secrets: []string{testSecret}, Timeout: time.Second})
	require.NoError(t, err)
	t.Cleanup(ep.Close)
	return relay.Endpoint{Name: name, Topics: topics, Sender: ep, Timeout: time.Second}
}

func fastRetry() *relay.ExponentialRetry {
	return &relay.ExponentialRetry{InitialInterval: 100 * time.Millisecond, Multiplier: 2, MaxInterval: time.Second, MaxElapsedTime: time.Minute}
}

func startRelay(t *testing.T, pool *pgxpool.Pool, cfg relay.Config) *relay.Relay {
	t.Helper()
	cfg.PollInterval = 20 * time.Millisecond
	cfg.Listen = true
	if cfg.HeartbeatTimeout == 0 {
		// Tests of delivery count requests exactly; a relay that lapses
		// (its heartbeat late by over a second under -race on a loaded
		// machine) cancels its requests and sends them again. Takeover
		// tests set their own timeout.
		cfg.HeartbeatTimeout = 10 * time.Second
	}
	cfg.Logger = zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.DebugLevel)
	if cfg.Retry == nil {
		cfg.Retry = fastRetry()
	}
	r, err := relay.New(pool, cfg)
	require.NoError(t, err)
	relay.InitTestSignals(r)
	require.NoError(t, r.Start(context.Background()))
	t.Cleanup(func() { _ = r.Stop(context.Background()) })
	return r
}

// retryLane matches the claims that asked the retry lane.
func retryLane(c relay.Claim) bool { return c.RetryLane }

func enqueue(t testing.TB, pool *pgxpool.Pool, msgs ...outbox.Message) {
	t.Helper()
	require.NoError(t, outbox.Enqueue(context.Background(), pool, msgs...))
}

func count(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, pool.QueryRow(context.Background(), sql, args...).Scan(&n))
	return n
}

// eventually polls cond every 10ms for up to d.
func eventually(t testing.TB, d time.Duration, cond func() bool, msg string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s: "+msg, append([]any{d}, args...)...)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestCommittedMessageIsDeliveredSignedAndRolledBackIsNot(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := heraldtest.Pool(t)
	rc := newReceiver(t, nil)
	r := startRelay(t, pool, relay.Config{Endpoints: []relay.Endpoint{endpoint(t, "billing", rc.srv.URL, "orders.*")}})

	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	require.NoError(t, outbox.Enqueue(ctx, tx, outbox.Message{ID: "msg_rolled_back", Topic: "orders.created", Payload: json.RawMessage(`{"n":0}`)}))
	require.NoError(t, tx.Rollback(ctx))

	tx, err = pool.Begin(ctx)
	require.NoError(t, err)
	require.NoError(t, outbox.Enqueue(ctx, tx, outbox.Message{ID: "msg_committed", Topic: "orders.created",
		Payload: json.RawMessage(`{"order_id": 42}`), Headers: map[string]string{"X-Tenant": "acme"}}))
	require.NoError(t, tx.Commit(ctx))

	eventually(t, 5*time.Second, func() bool {
		return count(t, pool, `SELECT count(*) FROM outbox.messages`) == 0 && len(rc.requests()) == 1
	},
		"committed message delivered and deleted")
	got := rc.requests()[0]
	require.Equal(t, "msg_committed", got.id)
	require.Equal(t, `{"order_id": 42}`, string(got.body), "the body is the payload byte for byte")
	require.Equal(t, "application/json", got.hdr.Get("Content-Type"))
	require.Equal(t, "acme", got.hdr.Get("X-Tenant"))
	require.Contains(t, got.hdr.Get("User-Agent"), "Herald/")
	wh, err := standardwebhooks.NewWebhook(testSecret)
	require.NoError(t, err)
	require.NoError(t, wh.Verify(got.body, got.hdr), "the reference verifier accepts the signature")

	// Nothing else arrives: the rolled-back message never existed. The
	// relay looks twice more, in both lanes, and finds nothing.
	for _, c := range relay.Signals(r).Claimed.WaitFresh(t, 2, retryLane) {
		require.Zero(t, c.Hot+c.Retry, "a later claim found a row")
	}
	require.Len(t, rc.requests(), 1)
	require.Equal(t, 0, count(t, pool, `SELECT count(*) FROM outbox.deliveries`))
}

func TestFailingEndpointIsRetriedWithGrowingGaps(t *testing.T) {
	t.Parallel()
	pool := heraldtest.Pool(t)
	// Steep enough that each gap exceeds the last by far more than the
	// retry lane's polling adds under CI load (a 100 ms, x2 schedule once
	// measured 300 ms then 269 ms).
	const failures = 3
	rc := newReceiver(t, func(n int, _ *http.Request) int {
		if n <= failures {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	r := startRelay(t, pool, relay.Config{
		Endpoints: []relay.Endpoint{endpoint(t, "flaky", rc.srv.URL, "*")},
		Retry:     &relay.ExponentialRetry{InitialInterval: 250 * time.Millisecond, Multiplier: 3, MaxInterval: 10 * time.Second, MaxElapsedTime: time.Minute},
	})
	enqueue(t, pool, outbox.Message{ID: "msg_flaky", Topic: "t", Payload: json.RawMessage(`{}`)})

	eventually(t, 20*time.Second, func() bool {
		return len(rc.requests()) == failures+1 && count(t, pool, `SELECT count(*) FROM outbox.deliveries`) == 0
	}, "delivered after %d failures", failures)
	reqs := rc.requests()
	for i := 2; i < len(reqs); i++ {
		prev, gap := reqs[i-1].at.Sub(reqs[i-2].at), reqs[i].at.Sub(reqs[i-1].at)
		require.Greater(t, gap, prev, "gap %d (%s) grows over gap %d (%s)", i, gap, i-1, prev)
	}
	for _, q := range reqs {
		require.Equal(t, "msg_flaky", q.id, "webhook-id is stable across retries")
	}
	require.Equal(t, 0, count(t, pool, `SELECT count(*) FROM outbox.messages`))
	require.EqualValues(t, failures, r.Stats().Retried)
	require.EqualValues(t, 1, r.Stats().Delivered)
}

func TestPermanentlyFailingEndpointEndsDead(t *testing.T) {
	t.Parallel()
	pool := heraldtest.Pool(t)
	rc := newReceiver(t, func(int, *http.Request) int { return http.StatusInternalServerError })
	r := startRelay(t, pool, relay.Config{
		Endpoints: []relay.Endpoint{endpoint(t, "down", rc.srv.URL, "*")},
		Retry:     &relay.ExponentialRetry{InitialInterval: 50 * time.Millisecond, Multiplier: 1.5, MaxInterval: time.Second, MaxAttempts: 3, MaxElapsedTime: time.Hour},
	})
	enqueue(t, pool, outbox.Message{ID: "msg_doomed", Topic: "t", Payload: json.RawMessage(`{}`)})

	eventually(t, 10*time.Second, func() bool { return count(t, pool, `SELECT count(*) FROM outbox.dead`) == 1 }, "message dead")
	var reason, lastErr string
	var attempts, status int
	require.NoError(t, pool.QueryRow(context.Background(),
		`SELECT reason, attempts, last_status, last_error FROM outbox.dead WHERE id = 'msg_doomed'`).Scan(&reason, &attempts, &status, &lastErr))
	require.Equal(t, "exhausted", reason)
	require.Equal(t, 3, attempts)
	require.Equal(t, 500, status)
	require.NotEmpty(t, lastErr)
	require.Equal(t, 0, count(t, pool, `SELECT count(*) FROM outbox.deliveries`))
	require.Equal(t, 0, count(t, pool, `SELECT count(*) FROM outbox.messages`))
	// The relay looks at the retry lane twice more and finds nothing to retry.
	for _, c := range relay.Signals(r).Claimed.WaitFresh(t, 2, retryLane) {
		require.Zero(t, c.Retry, "a retry claim found a row")
	}
	require.Len(t, rc.requests(), 3, "a dead message is never retried automatically")
}

func TestGoneAndRejectedAndUnroutable(t *testing.T) {
	t.Parallel()
	pool := heraldtest.Pool(t)
	gone := newReceiver(t, func(int, *http.Request) int { return http.StatusGone })
	bad := newReceiver(t, func(int, *http.Request) int { return http.StatusUnprocessableEntity })
	ok := newReceiver(t, nil)
	startRelay(t, pool, relay.Config{Endpoints: []relay.Endpoint{
		endpoint(t, "gone", gone.srv.URL, "a"),
		endpoint(t, "bad", bad.srv.URL, "a"),
		endpoint(t, "ok", ok.srv.URL, "a"),
	}})
	enqueue(t, pool,
		outbox.Message{ID: "msg_fanout", Topic: "a", Payload: json.RawMessage(`{}`)},
		outbox.Message{ID: "msg_nobody", Topic: "nobody.listens", Payload: json.RawMessage(`{}`)},
		outbox.Message{ID: "msg_unknown_ep", Topic: "a", Endpoint: "missing", Payload: json.RawMessage(`{}`)},
	)
	_, err := pool.Exec(context.Background(), `INSERT INTO outbox.messages (id, topic, payload, headers) VALUES ('msg_bad_headers', 'a', '{}', '{"Host": "evil"}')`)
	require.NoError(t, err)

	eventually(t, 5*time.Second, func() bool { return count(t, pool, `SELECT count(*) FROM outbox.dead`) == 7 }, "seven dead rows")
	rows, err := pool.Query(context.Background(), `SELECT id, coalesce(endpoint, ''), reason FROM outbox.dead ORDER BY id, endpoint`)
	require.NoError(t, err)
	var got []string
	for rows.Next() {
		var id, ep, reason string
		require.NoError(t, rows.Scan(&id, &ep, &reason))
		got = append(got, id+"/"+ep+"/"+reason)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []string{
		"msg_bad_headers/bad/invalid", // dead for each endpoint it was for
		"msg_bad_headers/gone/invalid",
		"msg_bad_headers/ok/invalid",
		"msg_fanout/bad/rejected",
		"msg_fanout/gone/gone",
		"msg_nobody//unroutable",
		"msg_unknown_ep/missing/unroutable", // the endpoint it named

	}, got)
	require.Len(t, ok.requests(), 1, "the healthy endpoint got the fan-out message")
	require.Equal(t, 0, count(t, pool, `SELECT count(*) FROM outbox.messages`))
	require.Equal(t, 0, count(t, pool, `SELECT count(*) FROM outbox.deliveries`))
}

// TestKilledRelayLeavesMessageToTheNext kills a relay process with SIGKILL
// while its request is in flight. Its lease is never released; the next
// relay delivers the message once the killed relay's heartbeat has lapsed
// (TestKilledRelaysWorkIsTakenOverInSeconds times it), not before.
func TestKilledRelayLeavesMessageToTheNext(t *testing.T) {
	t.Parallel()
	url := heraldtest.URL(t)
	pool := heraldtest.PoolFor(t, url)
	first := make(chan struct{})
	var once sync.Once
	rc := newReceiver(t, func(n int, r *http.Request) int {
		if n == 1 {
			once.Do(func() { close(first) })
			<-r.Context().Done() // the killed relay never reads the answer
			return http.StatusOK
		}
		return http.StatusOK
	})
	enqueue(t, pool, outbox.Message{ID: "msg_survivor", Topic: "t", Payload: json.RawMessage(`{}`)})

	child := startChild(t, url, rc.srv.URL)
	child.awaitThenKill(t, first, 15*time.Second, "the child relay never delivered")
	killedAt := time.Now()

	var lease *int64
	require.NoError(t, pool.QueryRow(context.Background(), `SELECT lease FROM outbox.messages WHERE id = 'msg_survivor'`).Scan(&lease))
	require.NotNil(t, lease, "the killed relay's lease is still on the row")

	startRelay(t, pool, relay.Config{Endpoints: []relay.Endpoint{endpoint(t, "ep", rc.srv.URL, "*")}, Lease: 6 * time.Second})
	eventually(t, 20*time.Second, func() bool { return count(t, pool, `SELECT count(*) FROM outbox.messages`) == 0 }, "delivered by the second relay")
	reqs := rc.requests()
	require.Len(t, reqs, 2)
	require.Equal(t, "msg_survivor", reqs[1].id)
	// Its last heartbeat was about HeartbeatIntervalDefault before the kill
	// at most (a second more for one delayed on a busy machine), and kept
	// it alive for HeartbeatTimeoutDefault.
	require.Greater(t, reqs[1].at.Sub(killedAt), relay.HeartbeatTimeoutDefault-relay.HeartbeatIntervalDefault-time.Second,
		"not before the killed relay's heartbeat lapsed")
	require.Zero(t, rc.overlap.Load())
}

// child is childRelay running in a child process, for a test to SIGKILL.
type child struct {
	cmd *exec.Cmd
	out bytes.Buffer
}

// startChild starts childRelay on the database at url, delivering to
// receiverURL, with env's extra HERALD_CHILD_RELAY_* settings. It is
// killed at cleanup if the test has not killed it.
func startChild(t *testing.T, url, receiverURL string, env ...string) *child {
	t.Helper()
	c := &child{cmd: exec.Command(os.Args[0])} // runs childRelay (see TestMain)
	c.cmd.Env = append(append(os.Environ(), "HERALD_CHILD_RELAY_DB="+url, "HERALD_CHILD_RELAY_URL="+receiverURL), env...)
	c.cmd.Stdout, c.cmd.Stderr = &c.out, &c.out
	require.NoError(t, c.cmd.Start())
	t.Cleanup(c.kill)
	return c
}

// kill SIGKILLs the child and reaps it; once is enough, more is harmless.
func (c *child) kill() {
	_ = c.cmd.Process.Kill()
	_ = c.cmd.Wait()
}

// awaitThenKill waits until ready is closed, or fails t with the child's
// output after d, then SIGKILLs the child.
func (c *child) awaitThenKill(t *testing.T, ready <-chan struct{}, d time.Duration, failure string) {
	t.Helper()
	select {
	case <-ready:
	case <-time.After(d):
		c.kill()
		t.Fatalf("%s within %s; its output:\n%s", failure, d, c.out.String())
	}
	c.kill()
}

// childRelay is the relay process that TestKilledRelayLeavesMessageToTheNext,
// TestKilledRelaysWorkIsTakenOverInSeconds and
// TestOrderedEndpointKeepsEachKeyInCommitOrder start (this test binary,
// run by TestMain when HERALD_CHILD_RELAY_DB is set) and kill.
func childRelay() {
	must := func(err error) {
		if err != nil {
			panic(err)
		}
	}
	pool, err := pgxpool.New(context.Background(), os.Getenv("HERALD_CHILD_RELAY_DB"))
	must(err)
	c := webhook.NewClient(webhook.ClientConfig{AllowPrivateNetworks: true})
	// HERALD_CHILD_RELAY_SLOW: the default lease, and a timeout that lets
	// a request hang for most of it, as in production.
	timeout, lease := time.Second, 6*time.Second
	if os.Getenv("HERALD_CHILD_RELAY_SLOW") != "" {
		timeout, lease = 50*time.Second, relay.LeaseDefault
	}
	sender, err := c.Endpoint(webhook.EndpointConfig{Name: "ep", URL: os.Getenv("HERALD_CHILD_RELAY_URL"), Secrets: []string{testSecret}, Timeout: timeout})
	must(err)
	r, err := relay.New(pool, relay.Config{
		Endpoints: []relay.Endpoint{{Name: "ep", Topics: []string{"*"}, Sender: sender, Timeout: timeout,
			Ordered: os.Getenv("HERALD_CHILD_RELAY_ORDERED") != ""}},
		Breaker: relay.BreakerConfig{FailureThreshold: -1},
		Retry:   fastRetry(),
		Lease:   lease, PollInterval: 20 * time.Millisecond,
		Logger: zerolog.New(os.Stderr),
	})
	must(err)
	must(r.Start(context.Background()))
	// The scenario, not a wait: the parent kills this process (SIGKILL)
	// while it sleeps here, delivering; a minute bounds it if none does.
	time.Sleep(time.Minute)
}

func TestTwoRelaysDeliverEachMessageOnceAtATime(t *testing.T) {
	t.Parallel()
	const n = 3000
	url := heraldtest.URL(t)
	rc := newReceiver(t, func(n int, r *http.Request) int {
		// One first attempt in 20 fails, to exercise the retry lane as well.
		if id := r.Header.Get("webhook-id"); n == 1 && len(id) > 0 && id[len(id)-1] == '7' && id[len(id)-2]%2 == 0 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	msgs := make([]outbox.Message, n)
	for i := range msgs {
		msgs[i] = outbox.Message{ID: "msg_" + strconv.Itoa(i), Topic: "bulk", Payload: json.RawMessage(fmt.Sprintf(`{"i":%d}`, i))}
	}
	pool := heraldtest.PoolFor(t, url)
	enqueue(t, pool, msgs...)
	var relays []*relay.Relay
	for range 2 {
		relays = append(relays, startRelay(t, heraldtest.PoolFor(t, url), relay.Config{
			Endpoints: []relay.Endpoint{endpoint(t, "ep", rc.srv.URL, "bulk")}, MaxInFlight: 32,
		}))
	}
	eventually(t, 60*time.Second, func() bool {
		return count(t, pool, `SELECT count(*) FROM outbox.messages`)+count(t, pool, `SELECT count(*) FROM outbox.deliveries`) == 0
	}, "all delivered")
	require.Equal(t, n, rc.uniqueIDs(), "none lost")
	require.Zero(t, rc.overlap.Load(), "no message was delivered by two relays at once")
	require.Zero(t, count(t, pool, `SELECT count(*) FROM outbox.dead`))
	var total int64
	for _, r := range relays {
		require.Positive(t, r.Stats().Delivered, "both relays took part")
		total += r.Stats().Delivered
	}
	require.EqualValues(t, n, total, "each message acknowledged exactly once")
}

func TestStopLetsInFlightFinishAndReleasesTheRest(t *testing.T) {
	t.Parallel()
	pool := heraldtest.Pool(t)
	rc := newReceiver(t, nil)
	rc.hold = make(chan struct{})
	r, err := relay.New(pool, relay.Config{
		Endpoints:   []relay.Endpoint{endpoint(t, "ep", rc.srv.URL, "*")},
		MaxInFlight: 2, PollInterval: 20 * time.Millisecond, ShutdownTimeout: 5 * time.Second,
	})
	require.NoError(t, err)
	sig := relay.InitTestSignals(r)
	msgs := make([]outbox.Message, 10)
	for i := range msgs {
		msgs[i] = outbox.Message{Topic: "t", Payload: json.RawMessage(`{}`)}
	}
	enqueue(t, pool, msgs...)
	require.NoError(t, r.Start(context.Background()))
	eventually(t, 5*time.Second, func() bool { return len(rc.requests()) == 2 }, "two requests in flight")

	stopped := make(chan error)
	go func() { stopped <- r.Stop(context.Background()) }()
	sig.ClaimingStopped.Wait(t)
	close(rc.hold) // the in-flight requests finish during the grace period
	require.NoError(t, <-stopped)

	require.Len(t, rc.requests(), 2, "nothing new started after Stop")
	require.Equal(t, 8, count(t, pool, `SELECT count(*) FROM outbox.messages`))
	require.Equal(t, 8, count(t, pool, `SELECT count(*) FROM outbox.messages WHERE visible_at <= now() AND lease IS NULL`),
		"claimed messages not attempted were released for the next relay at once")
	require.Equal(t, 0, count(t, pool, `SELECT count(*) FROM outbox.deliveries`))
	require.EqualValues(t, 2, r.Stats().Delivered)
}

func TestRetryAfterPushesTheNextAttempt(t *testing.T) {
	t.Parallel()
	pool := heraldtest.Pool(t)
	rc := newReceiver(t, nil)
	rc.respond = func(n int, _ *http.Request) int {
		if n == 1 {
			return http.StatusTooManyRequests // Retry-After set by the wrapper below
		}
		return http.StatusOK
	}
	wrapped := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "1")
		rc.srv.Config.Handler.ServeHTTP(w, r)
	}))
	t.Cleanup(wrapped.Close)
	startRelay(t, pool, relay.Config{
		Endpoints: []relay.Endpoint{endpoint(t, "busy", wrapped.URL, "*")},
		Retry:     &relay.ExponentialRetry{InitialInterval: 10 * time.Millisecond, Multiplier: 2, MaxInterval: time.Minute, MaxElapsedTime: time.Hour},
	})
	enqueue(t, pool, outbox.Message{ID: "msg_busy", Topic: "t", Payload: json.RawMessage(`{}`)})
	eventually(t, 10*time.Second, func() bool { return len(rc.requests()) == 2 }, "retried")
	reqs := rc.requests()
	require.GreaterOrEqual(t, reqs[1].at.Sub(reqs[0].at), 950*time.Millisecond,
		"the second attempt waited for Retry-After (1s), not the 10ms backoff")
}

// Without NOTIFY, a relay that has just found messages looks again within
// milliseconds, not after its poll interval, while they keep coming.
func TestRelayFindsUnnotifiedMessagesSoonAfterOthers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := heraldtest.Pool(t)
	rc := newReceiver(t, nil)
	quiet := outbox.Writer{SkipNotify: true}
	require.NoError(t, quiet.Enqueue(ctx, pool, outbox.Message{Topic: "t", Payload: []byte(`{"n":1}`)}))
	r, err := relay.New(pool, relay.Config{
		Endpoints:    []relay.Endpoint{endpoint(t, "ep", rc.srv.URL, "*")},
		PollInterval: time.Minute, // Listen is off: only polling finds messages
		Retry:        fastRetry(),
		Logger:       zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.DebugLevel),
	})
	require.NoError(t, err)
	require.NoError(t, r.Start(ctx))
	t.Cleanup(func() { _ = r.Stop(context.Background()) })
	eventually(t, 10*time.Second, func() bool { return rc.uniqueIDs() == 1 }, "the first claim finds the first message")

	require.NoError(t, quiet.Enqueue(ctx, pool, outbox.Message{Topic: "t", Payload: []byte(`{"n":2}`)}))
	eventually(t, 10*time.Second, func() bool { return rc.uniqueIDs() == 2 },
		"a message committed just after another is found long before the one-minute poll")
}
