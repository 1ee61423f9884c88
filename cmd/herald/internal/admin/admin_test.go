package admin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/herald-relay/herald/cmd/herald/internal/admin"
	"github.com/herald-relay/herald/cmd/herald/internal/config"
	"github.com/herald-relay/herald/cmd/herald/internal/ops"
	"github.com/herald-relay/herald/internal/heraldtest"
)

func TestMain(m *testing.M) { heraldtest.Main(m) }

const (
	readToken  = "read-token-0123456789abcdef"
	writeToken = "write-token-fedcba9876543210"
	secretA    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	secretB    = "whsec_MDEyMzQ1Njc4OWFiY2RlZmdoaWprbG1u"
	headerVal  = "Bearer hunter2-header-value"
)

type testBundle struct {
	ctx    context.Context
	pool   *pgxpool.Pool
	base   string
	log    *heraldtest.SyncBuffer
	router routers.Router
	// responses holds every response body, for the leak test.
	mu        sync.Mutex
	responses []string
}

// loadDoc parses openapi.json with kin-openapi and validates it.
func loadDoc(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(admin.OpenAPIDocument())
	require.NoError(t, err)
	require.NoError(t, doc.Validate(context.Background()), "openapi.json is not a valid OpenAPI 3 document")
	return doc
}

// setup starts the API on a real listener, over one migrated database per
// source (the first is the bundle's pool), with a read and a write token.
func setup(t *testing.T, sources ...string) *testBundle {
	t.Helper()
	return setupWith(t, config.Default(), sources...)
}

// setupWith is setup serving herald as the configuration.
func setupWith(t *testing.T, herald *config.Config, sources ...string) *testBundle {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	if len(sources) == 0 {
		sources = []string{"default"}
	}
	var srcs []admin.Source
	for _, name := range sources {
		srcs = append(srcs, admin.Source{Name: name, DB: heraldtest.Pool(t)})
	}
	logBuf := &heraldtest.SyncBuffer{}
	logger := zerolog.New(logBuf).Level(zerolog.DebugLevel)
	srv, err := admin.NewServer(admin.Config{
		Sources: srcs,
		Tokens: []config.AdminToken{
			{Name: "dashboard", Token: readToken, Access: config.AdminAccessRead},
			{Name: "oncall", Token: writeToken, Access: config.AdminAccessWrite},
		},
		Herald: herald,
		Logger: &logger,
	})
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv.Start(ln)
	t.Cleanup(func() {
		stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, srv.Stop(stopCtx))
	})

	doc := loadDoc(t)
	doc.Servers = nil // match any host: the test server's port is random
	router, err := legacy.NewRouter(doc)
	require.NoError(t, err)
	return &testBundle{ctx: ctx, pool: srcs[0].DB.(*pgxpool.Pool), base: "http://" + srv.Addr().String(), log: logBuf, router: router}
}

// call sends a request and returns the status and body; every response of
// a documented route is validated against openapi.json, status included.
func (b *testBundle) call(t *testing.T, method, path, token, body string) (int, http.Header, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(b.ctx, method, b.base+path, rd)
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	b.mu.Lock()
	b.responses = append(b.responses, string(out))
	b.mu.Unlock()

	if resp.StatusCode != http.StatusNoContent {
		require.Equal(t, "application/json", resp.Header.Get("Content-Type"), "%s %s: %s", method, path, out)
		require.True(t, json.Valid(out), "%s %s: %s", method, path, out)
	}
	if route, params, err := b.router.FindRoute(req); err == nil {
		in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}}
		if resp.StatusCode < 300 {
			// A request the server took is one the document allows.
			req.Body = io.NopCloser(strings.NewReader(body))
			require.NoError(t, openapi3filter.ValidateRequest(b.ctx, in), "%s %s %s was served but openapi.json refuses it", method, path, body)
		}
		err := openapi3filter.ValidateResponse(b.ctx, &openapi3filter.ResponseValidationInput{
			RequestValidationInput: in,
			Status:                 resp.StatusCode,
			Header:                 resp.Header,
			Body:                   io.NopCloser(bytes.NewReader(out)),
			Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
		})
		require.NoError(t, err, "%s %s answered %d, not as openapi.json says: %s", method, path, resp.StatusCode, out)
	}
	return resp.StatusCode, resp.Header, out
}

// ok calls with the write token and requires status want; it decodes the
// body into v when v is not nil.
func (b *testBundle) ok(t *testing.T, method, path, body string, want int, v any) {
	t.Helper()
	status, _, out := b.call(t, method, path, writeToken, body)
	require.Equal(t, want, status, "%s %s: %s", method, path, out)
	if v != nil {
		reflect.ValueOf(v).Elem().SetZero() // json.Unmarshal would merge into what v held
		require.NoError(t, json.Unmarshal(out, v))
	}
}

// fails calls with the write token and requires status and the field the
// error names.
func (b *testBundle) fails(t *testing.T, method, path, body string, status int, field string) string {
	t.Helper()
	got, _, out := b.call(t, method, path, writeToken, body)
	require.Equal(t, status, got, "%s %s: %s", method, path, out)
	var e struct {
		Error string `json:"error"`
		Field string `json:"field"`
	}
	require.NoError(t, json.Unmarshal(out, &e))
	require.NotEmpty(t, e.Error)
	require.Equal(t, field, e.Field, "%s %s: %s", method, path, out)
	return e.Error
}

// insertDead writes four dead rows: three died two hours ago, msg_4 now.
func (b *testBundle) insertDead(t *testing.T) {
	t.Helper()
	heraldtest.Exec(t, b.pool, `INSERT INTO outbox.dead (seq, endpoint, id, topic, payload, key, created_at, attempts, reason, last_status, last_error, died_at) VALUES
		(1, 'acme',  'msg_1', 't', '{}', 'k', now(), 12, 'exhausted',  503, 'status 503', now() - interval '2 hours'),
		(2, 'other', 'msg_2', 't', '{}', NULL, now(), 1, 'gone',       410, NULL,         now() - interval '2 hours'),
		(3, NULL,    'msg_3', 't', '{}', NULL, now(), 0, 'unroutable', NULL, 'no endpoint subscribes to topic t', now() - interval '2 hours'),
		(4, 'acme',  'msg_4', 't', '{}', NULL, now(), 12, 'exhausted', NULL, 'timeout',   now())`)
}

func TestAuthMatrix(t *testing.T) {
	t.Parallel()
	b := setup(t)

	const readRoute, writeRoute = "/v1/queue", "/v1/dead/purge"
	purge := `{"older_than": "1h", "dry_run": true}`
	for _, tc := range []struct {
		name       string
		header     string
		read, wrte int
	}{
		{"none", "", 401, 401},
		{"wrong", "Bearer not-a-token-0123456789", 401, 401},
		{"prefix of a token", "Bearer " + writeToken[:len(writeToken)-1], 401, 401},
		{"not bearer", "Basic " + writeToken, 401, 401},
		{"empty bearer", "Bearer ", 401, 401},
		{"read", "Bearer " + readToken, 200, 403},
		{"write", "Bearer " + writeToken, 200, 200},
		{"write, scheme in lower case", "bearer " + writeToken, 200, 200},
	} {
		for _, r := range []struct {
			method, path, body string
			want               int
		}{{"GET", readRoute, "", tc.read}, {"POST", writeRoute, purge, tc.wrte}} {
			req, err := http.NewRequestWithContext(b.ctx, r.method, b.base+r.path, strings.NewReader(r.body))
			require.NoError(t, err)
			if tc.header != "" {
				req.Header.Set("Authorization", tc.header)
			}
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			out, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			require.NoError(t, err)
			require.Equal(t, r.want, resp.StatusCode, "%s: %s %s: %s", tc.name, r.method, r.path, out)
			if r.want == 401 {
				require.Equal(t, `Bearer realm="herald"`, resp.Header.Get("WWW-Authenticate"), tc.name)
				require.JSONEq(t, `"Authorization"`, mustField(t, out, "field"), tc.name)
			}
			if r.want == 403 {
				require.Contains(t, string(out), "token dashboard is read-only")
			}
		}
	}
	// Every write route refuses the read token, before reading anything.
	for _, rt := range admin.Routes() {
		if !rt.Write {
			continue
		}
		status, _, out := b.call(t, rt.Method, fillPath(rt.Path, "x"), readToken, "{}")
		require.Equal(t, 403, status, "%s %s: %s", rt.Method, rt.Path, out)
	}
	require.Contains(t, b.log.String(), `"token":"dashboard"`, "refusals name the token")
}

// fillPath puts v in every path parameter of a route's pattern.
func fillPath(pattern, v string) string {
	return strings.NewReplacer("{name}", v, "{id}", v).Replace(pattern)
}

func mustField(t *testing.T, body []byte, key string) string {
	t.Helper()
	var m map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(body, &m))
	return string(m[key])
}

func TestDeadRoutes(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.insertDead(t)

	ids := func(path string) []string {
		t.Helper()
		var out struct {
			Dead []ops.DeadMessage `json:"dead"`
		}
		status, _, body := b.call(t, "GET", path, readToken, "")
		require.Equal(t, 200, status, "%s", body)
		require.NoError(t, json.Unmarshal(body, &out))
		got := []string{}
		for _, m := range out.Dead {
			got = append(got, m.ID)
		}
		return got
	}
	count := func(path string) int64 {
		t.Helper()
		var out struct {
			Count int64 `json:"count"`
		}
		status, _, body := b.call(t, "GET", path, readToken, "")
		require.Equal(t, 200, status, "%s", body)
		require.NoError(t, json.Unmarshal(body, &out))
		return out.Count
	}
	require.Equal(t, []string{"msg_4", "msg_3", "msg_2", "msg_1"}, ids("/v1/dead"), "newest first")
	require.Equal(t, []string{"msg_4", "msg_1"}, ids("/v1/dead?endpoint=acme"))
	require.Equal(t, []string{"msg_3", "msg_2"}, ids("/v1/dead?older_than=1h&limit=2"))
	require.Equal(t, []string{"msg_2"}, ids("/v1/dead?reason=gone&id=msg_2"))
	require.Equal(t, int64(4), count("/v1/dead/count"))
	require.Equal(t, int64(3), count("/v1/dead/count?older_than=90m"))

	// Bad filters name their parameter.
	b.fails(t, "GET", "/v1/dead?reason=bogus", "", 400, "reason")
	b.fails(t, "GET", "/v1/dead?older_than=soon", "", 400, "older_than")
	b.fails(t, "GET", "/v1/dead?older_than=-1h", "", 400, "older_than")
	b.fails(t, "GET", "/v1/dead?limit=0", "", 400, "limit")
	b.fails(t, "GET", "/v1/dead?limit=1001", "", 400, "limit")
	b.fails(t, "GET", "/v1/dead?endpont=acme", "", 400, "endpont")
	b.fails(t, "GET", "/v1/dead?=acme", "", 400, "query")
	b.fails(t, "GET", "/v1/dead/count?limit=3", "", 400, "limit")

	// Replay: a dry run changes nothing, then the real one.
	var res ops.ReplayResult
	b.ok(t, "POST", "/v1/dead/replay", `{"endpoint": "acme", "dry_run": true}`, 200, &res)
	require.Equal(t, ops.ReplayResult{DryRun: true, Replayed: 2}, res)
	require.Equal(t, int64(4), count("/v1/dead/count"))
	b.ok(t, "POST", "/v1/dead/replay", `{"endpoint": "acme", "limit": 1}`, 200, &res)
	require.Equal(t, ops.ReplayResult{Replayed: 1}, res)
	require.Equal(t, []string{"msg_4", "msg_3", "msg_2"}, ids("/v1/dead"), "the oldest of acme's was replayed")
	b.fails(t, "POST", "/v1/dead/replay", `{}`, 400, "all")
	b.fails(t, "POST", "/v1/dead/replay", `{"reason": "gone", "limit": -1}`, 400, "limit")
	b.fails(t, "POST", "/v1/dead/replay", `{"reason": "gone", "limit": "5"}`, 400, "limit")
	b.fails(t, "POST", "/v1/dead/replay", `{"reason": "gone", "everything": true}`, 400, "everything")
	b.fails(t, "POST", "/v1/dead/replay", ``, 400, "body")
	b.fails(t, "POST", "/v1/dead/replay", `{"reason": "gone"`, 400, "body")
	b.fails(t, "POST", "/v1/dead/replay", `{"reason": "gone"} {}`, 400, "body")
	b.fails(t, "POST", "/v1/dead/replay", `[1]`, 400, "body")

	// Purge: older_than is required, and only what it selects goes.
	var purged ops.PurgeResult
	b.ok(t, "POST", "/v1/dead/purge", `{"older_than": "1h", "dry_run": true}`, 200, &purged)
	require.Equal(t, ops.PurgeResult{DryRun: true, Purged: 2}, purged)
	b.ok(t, "POST", "/v1/dead/purge", `{"older_than": "1h", "reason": "gone"}`, 200, &purged)
	require.Equal(t, ops.PurgeResult{Purged: 1}, purged)
	require.Equal(t, []string{"msg_4", "msg_3"}, ids("/v1/dead"))
	b.fails(t, "POST", "/v1/dead/purge", `{"reason": "gone"}`, 400, "older_than")
	b.fails(t, "POST", "/v1/dead/purge", `{"older_than": "1h", "limit": 5}`, 400, "limit")
	b.fails(t, "POST", "/v1/dead/purge", `{"older_than": "1h", "all": true}`, 400, "all")

	// The queue's status counts what is left.
	var qs ops.QueueStatus
	b.ok(t, "GET", "/v1/queue", "", 200, &qs)
	require.Equal(t, int64(2), qs.Dead)
	require.Equal(t, int64(1), qs.Retrying, "the replayed message waits in acme's retry lane")
	require.Equal(t, "acme", qs.Endpoints[0].Endpoint)
	b.fails(t, "GET", "/v1/queue?verbose=1", "", 400, "verbose")
}

func TestEndpointRoutes(t *testing.T) {
	t.Parallel()
	b := setup(t)

	type one struct {
		Endpoint ops.EndpointView `json:"endpoint"`
		Warning  string           `json:"warning"`
	}
	var got one
	b.ok(t, "POST", "/v1/endpoints", `{"name": "billing", "url": "https://user:pw@billing.example.com/hook?token=t1",
		"secrets": ["`+secretA+`"], "topics": ["orders.*"], "headers": {"Authorization": "`+headerVal+`"},
		"timeout_ms": 58000, "rate_limit": 2.5}`, 201, &got)
	require.Equal(t, "billing", got.Endpoint.Name)
	require.Equal(t, "https://redacted@billing.example.com/hook?token=redacted", got.Endpoint.URL, "no credentials in the URL")
	require.Equal(t, 1, got.Endpoint.Secrets)
	require.Equal(t, []string{"Authorization"}, got.Endpoint.Headers)
	require.Equal(t, ops.SourceCLI, got.Endpoint.Source)
	require.Contains(t, got.Warning, "timeout: must be at most relay.lease (1m) - 5s = 55s", "a problem of this configuration only warns")

	// What the API wrote is what ops reads: the relays see it.
	ep, err := ops.GetEndpoint(b.ctx, b.pool, "billing")
	require.NoError(t, err)
	require.Equal(t, []config.Secret{secretA}, ep.Secrets)
	require.Equal(t, config.Secret(headerVal), ep.Headers["Authorization"])

	b.ok(t, "GET", "/v1/endpoints/billing", "", 200, &got)
	require.Equal(t, 58000, int(got.Endpoint.TimeoutMS))

	// PATCH changes what it names, and only that.
	b.ok(t, "PATCH", "/v1/endpoints/billing", `{"topics": ["invoices.*", "orders.*"], "secrets": ["`+secretB+`", "`+secretA+`"], "timeout_ms": 0}`, 200, &got)
	require.Equal(t, []string{"invoices.*", "orders.*"}, got.Endpoint.Topics)
	require.Equal(t, 2, got.Endpoint.Secrets)
	require.Zero(t, got.Endpoint.TimeoutMS, "0: delivery.timeout")
	require.Empty(t, got.Warning)
	require.Equal(t, 2.5, got.Endpoint.RateLimit)
	require.Equal(t, []string{"Authorization"}, got.Endpoint.Headers)

	// An endpoint created disabled keeps its reason.
	b.ok(t, "POST", "/v1/endpoints", `{"name": "paused", "url": "https://paused.example.com", "secrets": ["`+secretB+`"],
		"disabled": true, "disabled_reason": "receiver not ready"}`, 201, &got)
	require.True(t, got.Endpoint.Disabled)
	require.Equal(t, "receiver not ready", got.Endpoint.DisabledReason)
	b.ok(t, "DELETE", "/v1/endpoints/paused", "", 204, nil)

	// Disable and enable.
	b.ok(t, "POST", "/v1/endpoints/billing/disable", `{"reason": "maintenance window"}`, 200, &got)
	require.True(t, got.Endpoint.Disabled)
	require.Equal(t, "maintenance window", got.Endpoint.DisabledReason)
	b.ok(t, "POST", "/v1/endpoints/billing/enable", ``, 200, &got)
	require.False(t, got.Endpoint.Disabled)
	b.ok(t, "POST", "/v1/endpoints/billing/disable", ``, 200, &got)
	require.True(t, got.Endpoint.Disabled)

	// An endpoint of the configuration file can be listed, disabled and
	// enabled, but not changed or removed.
	require.NoError(t, ops.SyncFromConfig(b.ctx, b.pool, []config.Endpoint{{Name: "filed", URL: "https://filed.example.com", Secret: secretA}}))
	var list struct {
		Endpoints  []ops.EndpointView `json:"endpoints"`
		Unreadable []ops.RowError     `json:"unreadable"`
	}
	b.ok(t, "GET", "/v1/endpoints", "", 200, &list)
	require.Len(t, list.Endpoints, 2)
	require.Equal(t, "billing", list.Endpoints[0].Name)
	require.Equal(t, ops.SourceConfig, list.Endpoints[1].Source)
	b.fails(t, "PATCH", "/v1/endpoints/filed", `{"topics": []}`, 409, "")
	b.fails(t, "DELETE", "/v1/endpoints/filed", ``, 409, "")
	b.ok(t, "POST", "/v1/endpoints/filed/disable", `{}`, 200, &got)

	// Bad input names the field.
	b.fails(t, "POST", "/v1/endpoints", `{"name": "billing", "url": "https://x.example.com", "secrets": ["`+secretA+`"]}`, 409, "")
	b.fails(t, "POST", "/v1/endpoints", `{"name": "new", "url": "ftp://x", "secrets": ["`+secretA+`"]}`, 400, "url")
	b.fails(t, "POST", "/v1/endpoints", `{"name": "New!", "url": "https://x.example.com", "secrets": ["`+secretA+`"]}`, 400, "name")
	b.fails(t, "POST", "/v1/endpoints", `{"name": "new", "url": "https://x.example.com"}`, 400, "secret")
	msg := b.fails(t, "POST", "/v1/endpoints", `{"name": "new", "url": "https://x.example.com", "secrets": ["whsec_hunter2"]}`, 400, "secrets[0]")
	require.NotContains(t, msg, "hunter2")
	b.fails(t, "POST", "/v1/endpoints", `{"name": "new", "url": "https://x.example.com", "secrets": ["`+secretA+`"], "max_in_flight": "ten"}`, 400, "max_in_flight")
	b.fails(t, "POST", "/v1/endpoints", `{"name": "new", "url": "https://x.example.com", "secrets": ["`+secretA+`"], "colour": "red"}`, 400, "colour")
	b.fails(t, "PATCH", "/v1/endpoints/billing", `{"permanent_statuses": [410]}`, 400, "permanent_statuses[0]")
	b.fails(t, "PATCH", "/v1/endpoints/billing", `{"name": "renamed"}`, 400, "name")
	b.fails(t, "PATCH", "/v1/endpoints/billing", `{"headers": {"X-Ok": 1}}`, 400, "headers")
	b.fails(t, "PATCH", "/v1/endpoints/nope", `{"topics": []}`, 404, "")
	b.fails(t, "POST", "/v1/endpoints/nope/enable", ``, 404, "")

	// Remove, then it is gone.
	b.ok(t, "DELETE", "/v1/endpoints/billing", "", 204, nil)
	b.fails(t, "GET", "/v1/endpoints/billing", "", 404, "")
	b.fails(t, "DELETE", "/v1/endpoints/billing", "", 404, "")
}

func TestUnreadableEndpointRow(t *testing.T) {
	t.Parallel()
	b := setup(t)
	heraldtest.Exec(t, b.pool, `INSERT INTO outbox.endpoints (name, url, secrets, topics, headers)
		VALUES ('odd', 'https://odd.example.com', ARRAY['`+secretA+`'], ARRAY['t'], '{"X-Key": 1}')`)
	status, _, out := b.call(t, "GET", "/v1/endpoints", readToken, "")
	require.Equal(t, 200, status)
	require.JSONEq(t, `{"endpoints": [], "unreadable": [{"name": "odd", "error": "headers: values must be strings: \"X-Key\" is a number"}]}`, string(out))
	b.fails(t, "GET", "/v1/endpoints/odd", "", 409, "")
}

func TestHTTPErrors(t *testing.T) {
	t.Parallel()
	b := setup(t)

	status, _, out := b.call(t, "GET", "/v2/queue", writeToken, "")
	require.Equal(t, 404, status)
	require.Contains(t, string(out), "no such route: GET /v2/queue")

	status, h, out := b.call(t, "PUT", "/v1/endpoints/x", writeToken, "{}")
	require.Equal(t, 405, status, "%s", out)
	require.Equal(t, "DELETE, GET, PATCH", h.Get("Allow"))

	big := `{"name": "x", "topics": ["` + strings.Repeat("a", admin.MaxBodyBytes) + `"]}`
	msg := b.fails(t, "POST", "/v1/endpoints", big, 413, "body")
	require.Contains(t, msg, "at most 65536 bytes")
}

func TestSeveralSources(t *testing.T) {
	t.Parallel()
	b := setup(t, "orders", "shipping")
	b.insertDead(t) // into orders only

	b.fails(t, "GET", "/v1/queue", "", 400, "source")
	msg := b.fails(t, "GET", "/v1/queue?source=billing", "", 400, "source")
	require.Contains(t, msg, "the sources are: orders, shipping")
	var qs ops.QueueStatus
	b.ok(t, "GET", "/v1/queue?source=orders", "", 200, &qs)
	require.Equal(t, int64(4), qs.Dead)
	b.ok(t, "GET", "/v1/queue?source=shipping", "", 200, &qs)
	require.Zero(t, qs.Dead)
}

// Tokens, signing secrets and header values appear in no response and no
// log line, whatever the requests.
func TestNoTokenOrSecretInLogsOrResponses(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.insertDead(t)

	create := `{"name": "billing", "url": "https://billing.example.com/hook", "secrets": ["` + secretA + `"],
		"headers": {"Authorization": "` + headerVal + `"}, "topics": ["t"]}`
	b.ok(t, "POST", "/v1/endpoints", create, 201, nil)
	b.fails(t, "POST", "/v1/endpoints", create, 409, "")
	b.ok(t, "PATCH", "/v1/endpoints/billing", `{"secrets": ["`+secretB+`"], "headers": {"Authorization": "`+headerVal+`"}}`, 200, nil)
	b.fails(t, "PATCH", "/v1/endpoints/billing", `{"secrets": ["`+secretB+`", "`+secretB+`"]}`, 400, "secrets[1]")
	b.fails(t, "PATCH", "/v1/endpoints/billing", `{"headers": {"Bad Name": "`+headerVal+`"}}`, 400, "headers.Bad Name")
	b.fails(t, "PATCH", "/v1/endpoints/billing", `{"headers": {"X-Ok": "`+headerVal+`\r\n"}}`, 400, "headers.X-Ok")
	for _, path := range []string{"/v1/endpoints", "/v1/endpoints/billing", "/v1/dead", "/v1/queue"} {
		b.ok(t, "GET", path, "", 200, nil)
	}
	b.call(t, "GET", "/v1/queue", readToken+"x", "")
	b.call(t, "POST", "/v1/dead/replay", readToken, `{"all": true}`)
	b.ok(t, "POST", "/v1/dead/replay", `{"all": true}`, 200, nil)

	logs := b.log.String()
	require.Contains(t, logs, `"token":"oncall"`, "the log names tokens")
	require.Contains(t, logs, `"route":"/v1/endpoints/{name}"`)
	b.mu.Lock()
	all := append([]string{logs}, b.responses...)
	b.mu.Unlock()
	for _, s := range all {
		for _, leak := range []string{readToken, writeToken, secretA, secretB, "hunter2", strings.TrimPrefix(secretA, "whsec_")} {
			require.NotContains(t, s, leak)
		}
	}
}
