package admin

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/herald-relay/herald/cmd/herald/internal/config"
	"github.com/herald-relay/herald/cmd/herald/internal/ops"
)

// The adapters give a route over an ops-shaped function in one line; these
// routes echo what the function received.
func TestAdapters(t *testing.T) {
	t.Parallel()

	type filter struct {
		Topic  string        `json:"topic"`
		Limit  int           `json:"limit"`
		Newest bool          `json:"newest"`
		Within time.Duration `json:"within"`
		Since  time.Time     `json:"since"`
		Hidden string        `json:"-"`
	}
	type resend struct {
		ID       string `json:"id"`
		Endpoint string `json:"endpoint"`
		NewID    bool   `json:"new_id"`
	}
	type result struct {
		DryRun bool   `json:"dry_run"`
		Got    resend `json:"got"`
	}
	echo := func(_ context.Context, _ ops.DB, q filter) (filter, error) { return q, nil }
	resendFn := func(_ context.Context, _ ops.DB, b resend) (result, error) { return result{Got: b}, nil }
	resendDry := func(_ context.Context, _ ops.DB, b resend) (result, error) { return result{DryRun: true, Got: b}, nil }
	show := func(_ context.Context, _ ops.DB, id string) (string, error) {
		if id == "missing" {
			return "", ops.ErrNotFound
		}
		return "message " + id, nil
	}
	a := &api{sources: []Source{{Name: "default"}}, log: zerolog.Nop(),
		tokens: newTokenSet([]config.AdminToken{{Name: "w", Token: "0123456789abcdef", Access: config.AdminAccessWrite}})}
	srv := httptest.NewServer(a.handler([]route{
		{"GET", "/v1/things", read, byQuery(echo)},
		{"GET", "/v1/things/{id}", read, byPath("id", show)},
		{"POST", "/v1/things/{id}/resend", write, byBody(resendFn, resendDry, "id")},
	}))
	t.Cleanup(srv.Close)

	call := func(method, path, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer 0123456789abcdef")
		resp, err := srv.Client().Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		out, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(out)
	}
	status, out := call("GET", "/v1/things?topic=orders&limit=7&newest=true&within=90m&since=2026-12-01T10:00:00Z&source=default", "")
	require.Equal(t, 200, status, out)
	var f filter
	require.NoError(t, json.Unmarshal([]byte(out), &f))
	require.Equal(t, filter{Topic: "orders", Limit: 7, Newest: true, Within: 90 * time.Minute, Since: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)}, f)
	status, out = call("GET", "/v1/things?since=24h", "")
	require.Equal(t, 200, status, out)
	require.NoError(t, json.Unmarshal([]byte(out), &f))
	require.WithinDuration(t, time.Now().Add(-24*time.Hour), f.Since, time.Minute)
	for param, field := range map[string]string{"limit=x": "limit", "newest=maybe": "newest", "within=1": "within",
		"since=yesterday": "since", "Hidden=x": "Hidden", "colour=red": "colour", "limit=99999999999999999999": "limit"} {
		status, out = call("GET", "/v1/things?"+param, "")
		require.Equal(t, 400, status, out)
		require.Contains(t, out, `"field": "`+field+`"`, param)
	}

	status, out = call("GET", "/v1/things/msg_1", "")
	require.Equal(t, 200, status)
	require.JSONEq(t, `"message msg_1"`, out)
	status, _ = call("GET", "/v1/things/missing", "")
	require.Equal(t, 404, status)

	status, out = call("POST", "/v1/things/msg_1/resend", `{"endpoint": "billing", "new_id": true}`)
	require.Equal(t, 200, status, out)
	require.JSONEq(t, `{"dry_run": false, "got": {"id": "msg_1", "endpoint": "billing", "new_id": true}}`, out)
	status, out = call("POST", "/v1/things/msg_1/resend", `{"dry_run": true}`)
	require.Equal(t, 200, status, out)
	require.JSONEq(t, `{"dry_run": true, "got": {"id": "msg_1", "endpoint": "", "new_id": false}}`, out)
	status, out = call("POST", "/v1/things/msg_1/resend", ``)
	require.Equal(t, 200, status, "an empty body is an empty request: %s", out)
	for body, field := range map[string]string{`{"id": "other"}`: "id", `{"dry_run": "yes"}`: "dry_run",
		`{"colour": 1}`: "colour", `{"new_id": 1}`: "new_id", `[]`: "body"} {
		status, out = call("POST", "/v1/things/msg_1/resend", body)
		require.Equal(t, 400, status, out)
		require.Contains(t, out, `"field": "`+field+`"`, body)
	}
}
