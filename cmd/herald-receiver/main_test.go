package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/herald-relay/herald/internal/heraldtest"
	"github.com/herald-relay/herald/webhook"
)

const testSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for line := range strings.SplitSeq(strings.TrimSpace(b.buf.String()), "\n") {
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &m), line)
		out = append(out, m)
	}
	return out
}

type testBundle struct {
	base string
	logs *syncBuffer
	stop func() error
}

func setup(t *testing.T, args ...string) *testBundle {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	logs := &syncBuffer{}
	ready := make(chan string, 1)
	done := make(chan error, 1)
	args = append([]string{"-addr", "127.0.0.1:0"}, args...)
	go func() { done <- run(ctx, args, func(string) string { return "" }, logs, ready) }()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("run: %v", err)
	}
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		return <-done
	}
	t.Cleanup(func() { _ = stop() })
	return &testBundle{base: "http://" + addr, logs: logs, stop: stop}
}

func post(t *testing.T, url, id string, body []byte, secret string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, bytes.NewReader(body))
	require.NoError(t, err)
	now := time.Now().Unix()
	req.Header.Set(webhook.HeaderID, id)
	req.Header.Set(webhook.HeaderTimestamp, strconv.FormatInt(now, 10))
	if secret != "" {
		signer, err := webhook.NewSigner(secret)
		require.NoError(t, err)
		req.Header.Set(webhook.HeaderSignature, signer.Sign(id, now, body))
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp
}

func getJSON(t *testing.T, url string) map[string]any {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var m map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&m))
	return m
}

func TestRun(t *testing.T) {
	t.Parallel()

	exercise := func(t *testing.T, b *testBundle) {
		t.Helper()
		body := []byte(`{"topic":"order.created","order_id":42}`)
		require.Equal(t, http.StatusNoContent, post(t, b.base+"/webhooks", "msg_1", body, testSecret).StatusCode)
		resp := post(t, b.base+"/webhooks", "msg_1", body, testSecret)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, "true", resp.Header.Get(webhook.HeaderDuplicate))
		require.Equal(t, http.StatusUnauthorized, post(t, b.base+"/webhooks", "msg_2", body, "whsec_c2VjcmV0IG9mIGFub3RoZXIgc2VuZGVy").StatusCode)

		require.Equal(t, map[string]any{"status": "ok"}, getJSON(t, b.base+"/healthz"))
		require.Equal(t, map[string]any{
			"received": 2.0, "processed": 1.0, "duplicates": 1.0, "rejected": 1.0, "failed": 0.0,
		}, getJSON(t, b.base+"/stats"))

		require.NoError(t, b.stop())
		lines := b.logs.lines(t)
		require.Equal(t, "herald-receiver listening", lines[0]["message"])
		require.Equal(t, "received", lines[1]["message"])
		require.Equal(t, "msg_1", lines[1]["id"])
		require.Equal(t, "order.created", lines[1]["topic"])
		require.Equal(t, float64(len(body)), lines[1]["bytes"])
		require.Equal(t, false, lines[1]["duplicate"])
		require.Nil(t, lines[1]["body"], "no body without -print-body")
		require.Equal(t, true, lines[2]["duplicate"])
		require.Equal(t, "rejected", lines[3]["message"])
		require.Equal(t, "stopped", lines[len(lines)-1]["message"])
		require.NotContains(t, b.logs.buf.String(), "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	}

	t.Run("Memory", func(t *testing.T) {
		t.Parallel()
		exercise(t, setup(t, "-secret", testSecret))
	})

	t.Run("Postgres", func(t *testing.T) {
		t.Parallel()
		url := heraldtest.EmptyURL(t)
		exercise(t, setup(t, "-secret", testSecret, "-database-url", url))

		// The processed id survives a restart.
		b := setup(t, "-secret", testSecret, "-database-url", url)
		resp := post(t, b.base+"/webhooks", "msg_1", []byte(`{"topic":"order.created","order_id":42}`), testSecret)
		require.Equal(t, "true", resp.Header.Get(webhook.HeaderDuplicate))
	})

	t.Run("UnsignedPrintBody", func(t *testing.T) {
		t.Parallel()
		b := setup(t, "-path", "/in", "-print-body")
		require.Equal(t, http.StatusNoContent, post(t, b.base+"/in", "msg_1", []byte(`{"a":1}`), "").StatusCode)
		require.NoError(t, b.stop())
		lines := b.logs.lines(t)
		require.Equal(t, "warn", lines[1]["level"])
		require.Contains(t, lines[1]["message"], "UNSIGNED")
		require.Equal(t, map[string]any{"a": 1.0}, lines[2]["body"])
	})

	t.Run("BadFlags", func(t *testing.T) {
		t.Parallel()
		for _, args := range [][]string{
			{"-secret", "not-a-secret"},
			{"-path", "webhooks"},
			{"-retention", "0s"},
			{"extra"},
		} {
			err := run(t.Context(), args, func(string) string { return "" }, io.Discard, nil)
			require.Error(t, err, args)
			require.NotContains(t, err.Error(), "not-a-secret")
		}
	})
}
