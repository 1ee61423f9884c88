package webhook

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/herald-relay/herald/internal/heraldtest"
)

// handlerUnderTest wires a Handler to one Store implementation, with an
// application effect written in the store's unit of work.
type handlerUnderTest[T Tx] struct {
	store Store[T]
	// effect applies a message's effect within tx.
	effect func(ctx context.Context, tx T, msg *Received) error
	// effects counts the committed effects of id.
	effects func(t *testing.T, id string) int
	// processed reports whether id is recorded as processed.
	processed func(t *testing.T, id string) bool
}

func newPostgresHandlerUnderTest(t *testing.T) handlerUnderTest[pgx.Tx] {
	t.Helper()
	pool := heraldtest.PoolFor(t, heraldtest.EmptyURL(t))
	s, err := NewPostgresStore(pool, "")
	require.NoError(t, err)
	require.NoError(t, s.CreateTable(t.Context()))
	// No unique constraint: a second committed effect would show.
	_, err = pool.Exec(t.Context(), `CREATE TABLE effects (message_id text NOT NULL, body text NOT NULL)`)
	require.NoError(t, err)
	return handlerUnderTest[pgx.Tx]{
		store: s,
		effect: func(ctx context.Context, tx pgx.Tx, msg *Received) error {
			_, err := tx.Exec(ctx, `INSERT INTO effects (message_id, body) SELECT $1, $2 FROM pg_sleep(0.02)`, msg.ID, string(msg.Body))
			return err
		},
		effects: func(t *testing.T, id string) int {
			var n int
			require.NoError(t, pool.QueryRow(t.Context(), `SELECT count(*) FROM effects WHERE message_id = $1`, id).Scan(&n))
			return n
		},
		processed: func(t *testing.T, id string) bool {
			var ok bool
			require.NoError(t, pool.QueryRow(t.Context(), `SELECT EXISTS (SELECT 1 FROM webhook_processed_messages WHERE id = $1)`, id).Scan(&ok))
			return ok
		},
	}
}

func newMemoryHandlerUnderTest(t *testing.T) handlerUnderTest[*MemoryTx] {
	t.Helper()
	s := NewMemoryStore()
	var (
		mu      sync.Mutex
		applied = map[string]int{}
	)
	return handlerUnderTest[*MemoryTx]{
		store: s,
		effect: func(_ context.Context, _ *MemoryTx, msg *Received) error {
			mu.Lock()
			defer mu.Unlock()
			applied[msg.ID]++
			return nil
		},
		effects: func(_ *testing.T, id string) int {
			mu.Lock()
			defer mu.Unlock()
			return applied[id]
		},
		processed: func(_ *testing.T, id string) bool {
			s.mu.Lock()
			defer s.mu.Unlock()
			_, ok := s.processed[id]
			return ok
		},
	}
}

func TestHandlerPostgres(t *testing.T) {
	t.Parallel()
	runHandlerContract(t, newPostgresHandlerUnderTest)
}

func TestHandlerMemory(t *testing.T) {
	t.Parallel()
	runHandlerContract(t, newMemoryHandlerUnderTest)
}

// handlerBundle is one Handler under test behind a real HTTP server.
type handlerBundle[T Tx] struct {
	handlerUnderTest[T]
	secret   string
	server   *httptest.Server
	calls    atomic.Int32
	fail     func(call int32) error // nil: apply the effect
	outcomes chan Outcome
}

func (b *handlerBundle[T]) post(t *testing.T, id string, body []byte) *http.Response {
	t.Helper()
	ts := time.Now()
	req := newSignedRequest(t, b.server.URL, id, ts, body, referenceSign(t, b.secret, id, ts, body))
	req.RequestURI = ""
	resp, err := b.server.Client().Do(req.WithContext(t.Context()))
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp
}

func runHandlerContract[T Tx](t *testing.T, newUnderTest func(t *testing.T) handlerUnderTest[T]) {
	setup := func(t *testing.T) *handlerBundle[T] {
		t.Helper()
		b := &handlerBundle[T]{
			handlerUnderTest: newUnderTest(t),
			secret:           newTestSecret(t),
			outcomes:         make(chan Outcome, 100),
		}
		v, err := NewVerifierWithConfig(VerifierConfig{Secrets: []string{b.secret}, MaxBodyBytes: 1024})
		require.NoError(t, err)
		h := NewHandler(v, b.store, func(ctx context.Context, tx T, msg *Received) error {
			call := b.calls.Add(1)
			if b.fail != nil {
				if err := b.fail(call); err != nil {
					return err
				}
			}
			return b.effect(ctx, tx, msg)
		}, ObserveOutcomes(func(_ *http.Request, o Outcome) { b.outcomes <- o }))
		b.server = httptest.NewServer(h)
		t.Cleanup(b.server.Close)
		return b
	}

	t.Run("ProcessesOnceThenDuplicate", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		body := []byte(`{"order_id":42}`)

		resp := b.post(t, "msg_1", body)
		require.Equal(t, http.StatusNoContent, resp.StatusCode)
		require.Empty(t, resp.Header.Get(HeaderDuplicate))
		require.Equal(t, Outcome{ID: "msg_1", Body: body, Status: http.StatusNoContent}, <-b.outcomes)

		resp = b.post(t, "msg_1", body)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, "true", resp.Header.Get(HeaderDuplicate))
		require.Equal(t, Outcome{ID: "msg_1", Body: body, Status: http.StatusOK, Duplicate: true}, <-b.outcomes)

		require.EqualValues(t, 1, b.calls.Load())
		require.Equal(t, 1, b.effects(t, "msg_1"))
	})

	t.Run("ConcurrentDuplicateDeliveries", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		const n = 20
		body := []byte(`{"order_id":7}`)
		ts := time.Now()
		sig := referenceSign(t, b.secret, "msg_1", ts, body)

		var (
			wg       sync.WaitGroup
			start    = make(chan struct{})
			statuses = make(chan int, n)
			dupes    atomic.Int32
		)
		for range n {
			wg.Go(func() {
				<-start
				req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, b.server.URL, bytes.NewReader(body))
				if err != nil {
					statuses <- -1
					return
				}
				req.Header.Set(HeaderID, "msg_1")
				req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
				req.Header.Set(HeaderSignature, sig)
				resp, err := b.server.Client().Do(req)
				if err != nil {
					statuses <- -1
					return
				}
				_ = resp.Body.Close()
				if resp.Header.Get(HeaderDuplicate) == "true" {
					dupes.Add(1)
				}
				statuses <- resp.StatusCode
			})
		}
		close(start)
		wg.Wait()
		close(statuses)
		for s := range statuses {
			require.True(t, s >= 200 && s < 300, "status %d", s)
		}
		require.EqualValues(t, n-1, dupes.Load())
		require.EqualValues(t, 1, b.calls.Load())
		require.Equal(t, 1, b.effects(t, "msg_1"))
	})

	t.Run("FailureRollsBackAndRetryIsProcessed", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.fail = func(call int32) error {
			switch call {
			case 1:
				return errors.New("downstream unavailable")
			case 2:
				return &StatusError{Status: http.StatusUnprocessableEntity, Err: errors.New("bad order")}
			}
			return nil
		}
		body := []byte(`{"order_id":9}`)

		resp := b.post(t, "msg_1", body)
		require.Equal(t, http.StatusInternalServerError, resp.StatusCode)
		out := <-b.outcomes
		require.EqualError(t, out.Err, "downstream unavailable")
		require.False(t, b.processed(t, "msg_1"), "failed message is not recorded")

		resp = b.post(t, "msg_1", body)
		require.Equal(t, http.StatusUnprocessableEntity, resp.StatusCode)
		out = <-b.outcomes
		var se *StatusError
		require.ErrorAs(t, out.Err, &se)
		require.False(t, b.processed(t, "msg_1"))

		resp = b.post(t, "msg_1", body)
		require.Equal(t, http.StatusNoContent, resp.StatusCode)
		require.True(t, b.processed(t, "msg_1"))
		require.Equal(t, 1, b.effects(t, "msg_1"))
		require.EqualValues(t, 3, b.calls.Load())
	})

	t.Run("RejectsUnverified", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		body := []byte(`{"order_id":1}`)
		now := time.Now()
		raw := strings.TrimPrefix(b.secret, SecretPrefix)
		for name, tc := range map[string]struct {
			mutate func(r *http.Request)
			status int
			err    error
		}{
			"BadSignature": {func(r *http.Request) {
				r.Header.Set(HeaderSignature, referenceSign(t, newTestSecret(t), "msg_1", now, body))
			}, http.StatusUnauthorized, ErrInvalidSignature},
			"NoSignature":  {func(r *http.Request) { r.Header.Del(HeaderSignature) }, http.StatusUnauthorized, ErrMissingHeaders},
			"NoID":         {func(r *http.Request) { r.Header.Del(HeaderID) }, http.StatusUnauthorized, ErrMissingHeaders},
			"BadTimestamp": {func(r *http.Request) { r.Header.Set(HeaderTimestamp, "yesterday") }, http.StatusBadRequest, ErrInvalidTimestamp},
			"Stale": {func(r *http.Request) {
				old := now.Add(-time.Hour)
				r.Header.Set(HeaderTimestamp, strconv.FormatInt(old.Unix(), 10))
				r.Header.Set(HeaderSignature, referenceSign(t, b.secret, "msg_1", old, body))
			}, http.StatusUnauthorized, ErrTimestampTooOld},
			"TooLarge": {func(r *http.Request) {
				big := bytes.Repeat([]byte("x"), 2048)
				r.Body = io.NopCloser(bytes.NewReader(big))
				r.ContentLength = int64(len(big))
				r.Header.Set(HeaderSignature, referenceSign(t, b.secret, "msg_1", now, big))
			}, http.StatusRequestEntityTooLarge, ErrBodyTooLarge},
		} {
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, b.server.URL, bytes.NewReader(body))
			require.NoError(t, err)
			req.Header.Set(HeaderID, "msg_1")
			req.Header.Set(HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
			req.Header.Set(HeaderSignature, referenceSign(t, b.secret, "msg_1", now, body))
			tc.mutate(req)
			resp, err := b.server.Client().Do(req)
			require.NoError(t, err)
			answer, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			_ = resp.Body.Close()
			require.Equal(t, tc.status, resp.StatusCode, name)
			require.NotContains(t, string(answer), raw, name)
			out := <-b.outcomes
			require.True(t, out.Rejected, name)
			require.ErrorIs(t, out.Err, tc.err, name)
		}

		resp, err := b.server.Client().Get(b.server.URL)
		require.NoError(t, err)
		_ = resp.Body.Close()
		require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)

		require.Zero(t, b.calls.Load())
		require.False(t, b.processed(t, "msg_1"))
	})

	t.Run("ReceivedCarriesMessage", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		got := make(chan Received, 1)
		b.fail = nil
		inner := b.effect
		b.effect = func(ctx context.Context, tx T, msg *Received) error {
			got <- *msg
			return inner(ctx, tx, msg)
		}
		body := []byte(`{"order_id":5}`)
		before := time.Now().Truncate(time.Second)
		resp := b.post(t, "msg_5", body)
		require.Equal(t, http.StatusNoContent, resp.StatusCode)
		msg := <-got
		require.Equal(t, "msg_5", msg.ID)
		require.Equal(t, body, msg.Body)
		require.False(t, msg.Timestamp.Before(before))
		require.Equal(t, "msg_5", msg.Header.Get(HeaderID))
	})
}

func TestVerifyStatus(t *testing.T) {
	t.Parallel()
	require.Equal(t, http.StatusBadRequest, verifyStatus(errors.New("read webhook body: unexpected EOF")))
	require.Equal(t, http.StatusUnauthorized, verifyStatus(ErrTimestampTooNew))
}
