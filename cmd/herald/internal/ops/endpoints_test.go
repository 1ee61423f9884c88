package ops_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/herald-relay/herald/cmd/herald/internal/config"
	"github.com/herald-relay/herald/cmd/herald/internal/ops"
	"github.com/herald-relay/herald/internal/heraldtest"
	"github.com/herald-relay/herald/webhook"
)

func TestMain(m *testing.M) { heraldtest.Main(m) }

const (
	secretA = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	secretB = "whsec_MDEyMzQ1Njc4OWFiY2RlZmdoaWprbG1u"
)

type testBundle struct {
	pool *pgxpool.Pool
	ctx  context.Context
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return &testBundle{pool: heraldtest.Pool(t), ctx: ctx}
}

// full is an endpoint with every setting away from its default.
func full(name string) ops.Endpoint {
	return ops.Endpoint{
		Endpoint: config.Endpoint{
			Name:              name,
			URL:               "https://" + name + ".example.com/hook",
			Secrets:           []config.Secret{secretA, secretB},
			Topics:            []string{"orders.*", "invoices.paid"},
			Timeout:           3 * time.Second,
			Headers:           map[string]config.Secret{"Authorization": "Bearer hunter2", "X-Env": "prod"},
			MaxInFlight:       7,
			FollowRedirects:   true,
			PermanentStatuses: []int{},
			TLS:               config.EndpointTLS{MinVersion: "1.3"},
			Ordered:           true,
			OnDead:            config.OnDeadSkip,
			RateLimit:         2.5,
			RateBurst:         4,
			Format:            webhook.FormatCloudEventsStructured,
			CloudEventsSource: "https://shop.example.com/orders",
		},
		Source: ops.SourceCLI,
	}
}

func TestAddGetList(t *testing.T) {
	t.Parallel()
	b := setup(t)

	want := full("billing")
	require.NoError(t, ops.AddEndpoint(b.ctx, b.pool, want))
	got, err := ops.GetEndpoint(b.ctx, b.pool, "billing")
	require.NoError(t, err)
	require.False(t, got.CreatedAt.IsZero())
	require.Equal(t, got.CreatedAt, got.UpdatedAt)
	want.CreatedAt, want.UpdatedAt = got.CreatedAt, got.UpdatedAt
	require.Equal(t, want, got)
	// The stored values are the secrets, not their redacted form.
	require.Equal(t, secretA, got.Secrets[0].Value())
	require.Equal(t, "Bearer hunter2", got.Headers["Authorization"].Value())

	// The minimum: everything else NULL or default, which reads back as the
	// zero values that WithDefaults fills in.
	minimal := ops.Endpoint{Endpoint: config.Endpoint{Name: "a", URL: "https://a", Secret: secretA}}
	require.NoError(t, ops.AddEndpoint(b.ctx, b.pool, minimal))
	got, err = ops.GetEndpoint(b.ctx, b.pool, "a")
	require.NoError(t, err)
	require.Equal(t, []config.Secret{secretA}, got.Secrets, "secret is stored as a one-item secrets")
	require.Empty(t, got.Secret)
	require.Equal(t, []string{}, got.Topics)
	require.Nil(t, got.Headers)
	require.Nil(t, got.PermanentStatuses, "NULL: the default statuses")
	require.Zero(t, got.Timeout)
	require.Zero(t, got.MaxInFlight)
	require.Equal(t, config.OnDeadBlock, got.OnDead)
	require.Empty(t, got.Format, "NULL: the default format")
	require.Equal(t, webhook.FormatStandardWebhooks, got.View().Format)
	require.Equal(t, ops.SourceSQL, got.Source, "the default source")
	require.False(t, got.Disabled)
	d := got.WithDefaults(config.Delivery{Timeout: 9 * time.Second})
	require.Equal(t, 9*time.Second, d.Timeout)
	require.Equal(t, []int{400, 413, 422}, d.PermanentStatuses)

	err = ops.AddEndpoint(b.ctx, b.pool, minimal)
	require.ErrorIs(t, err, ops.ErrExists)
	require.EqualError(t, err, "endpoint a: endpoint already exists")

	list, skipped, err := ops.ListEndpoints(b.ctx, b.pool)
	require.Empty(t, skipped)
	require.NoError(t, err)
	require.Len(t, list, 2)
	require.Equal(t, []string{"a", "billing"}, []string{list[0].Name, list[1].Name})

	_, err = ops.GetEndpoint(b.ctx, b.pool, "nope")
	require.ErrorIs(t, err, ops.ErrNotFound)
	require.EqualError(t, err, "endpoint nope: no such endpoint")
}

func TestInvalidEndpointsNameTheField(t *testing.T) {
	t.Parallel()
	b := setup(t)

	tests := []struct {
		name string
		edit func(*ops.Endpoint)
		want string
	}{
		{"URL", func(e *ops.Endpoint) { e.URL = "ftp://x" }, `endpoint billing: url: must be an absolute http or https URL (got "ftp://x")`},
		{"Name", func(e *ops.Endpoint) { e.Name = "Bad" }, `endpoint Bad: name: must match ^[a-z0-9][a-z0-9_.-]{0,62}$ (got "Bad")`},
		{"Secret", func(e *ops.Endpoint) { e.Secrets = []config.Secret{"whsec_hunter2!"} }, `endpoint billing: secrets[0]: must be "whsec_" followed by standard base64 (value not shown)`},
		{"NoSecret", func(e *ops.Endpoint) { e.Secrets = nil }, `endpoint billing: secret: required (or secrets, during a rotation)`},
		{"OnDead", func(e *ops.Endpoint) { e.OnDead = "drop" }, `endpoint billing: on_dead: must be block or skip (got "drop")`},
		{"RateBurst", func(e *ops.Endpoint) { e.RateLimit = 0 }, `endpoint billing: rate_burst: must be 0 when rate_limit is 0 (unlimited) (got "4")`},
		{"Header", func(e *ops.Endpoint) { e.Headers = map[string]config.Secret{"Host": "hunter2"} }, `endpoint billing: headers.Host: header is set by Herald and cannot be overridden (got "Host")`},
		{"Format", func(e *ops.Endpoint) { e.Format = "cloudevents" }, `endpoint billing: format: "cloudevents" is not a format: use standard-webhooks, cloudevents-binary or cloudevents-structured (got "cloudevents")`},
		{"CloudEventsSource", func(e *ops.Endpoint) { e.CloudEventsSource = "a b" }, `endpoint billing: cloudevents_source: must be a URI-reference, like /shop/orders or https://shop.example.com (got "a b")`},
		{"Source", func(e *ops.Endpoint) { e.Source = "yaml" }, `endpoint billing: source must be config, sql or cli (got "yaml")`},
	}
	for _, tt := range tests {
		ep := full("billing")
		tt.edit(&ep)
		err := ops.AddEndpoint(b.ctx, b.pool, ep)
		require.EqualError(t, err, tt.want, tt.name)
		require.NotContains(t, err.Error(), "hunter2")
		err = ops.UpsertEndpoint(b.ctx, b.pool, ep)
		require.EqualError(t, err, tt.want, tt.name)
	}
	list, _, err := ops.ListEndpoints(b.ctx, b.pool)
	require.NoError(t, err)
	require.Empty(t, list)
}

func TestUpsertAndUpdate(t *testing.T) {
	t.Parallel()
	b := setup(t)

	ep := full("billing")
	require.NoError(t, ops.UpsertEndpoint(b.ctx, b.pool, ep))
	v1 := version(t, b)
	require.NoError(t, ops.UpsertEndpoint(b.ctx, b.pool, ep))
	require.Equal(t, v1, version(t, b), "writing the same values changes nothing")

	ep.URL = "https://new.example.com"
	ep.Secrets = []config.Secret{secretB}
	ep.Disabled, ep.DisabledReason = true, "maintenance"
	require.NoError(t, ops.UpsertEndpoint(b.ctx, b.pool, ep))
	require.Greater(t, version(t, b), v1)
	got, err := ops.GetEndpoint(b.ctx, b.pool, "billing")
	require.NoError(t, err)
	require.Equal(t, "https://new.example.com", got.URL)
	require.Equal(t, []config.Secret{secretB}, got.Secrets)
	require.True(t, got.Disabled)
	require.Equal(t, "maintenance", got.DisabledReason)
	require.False(t, got.DisabledAt.IsZero())

	// Update keeps what change leaves alone, including the disabled state.
	got, err = ops.UpdateEndpoint(b.ctx, b.pool, "billing", func(e *ops.Endpoint) error {
		e.Topics = []string{"x"}
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, []string{"x"}, got.Topics)
	require.Equal(t, "https://new.example.com", got.URL)
	require.True(t, got.Disabled)

	_, err = ops.UpdateEndpoint(b.ctx, b.pool, "billing", func(e *ops.Endpoint) error {
		e.URL = "ftp://nope"
		return nil
	})
	require.EqualError(t, err, `endpoint billing: url: must be an absolute http or https URL (got "ftp://nope")`)
	_, err = ops.UpdateEndpoint(b.ctx, b.pool, "billing", func(e *ops.Endpoint) error {
		e.Name = "other"
		return nil
	})
	require.ErrorContains(t, err, "cannot be renamed")
	boom := errors.New("boom")
	_, err = ops.UpdateEndpoint(b.ctx, b.pool, "billing", func(*ops.Endpoint) error { return boom })
	require.ErrorIs(t, err, boom)
	_, err = ops.UpdateEndpoint(b.ctx, b.pool, "nope", func(*ops.Endpoint) error { return nil })
	require.ErrorIs(t, err, ops.ErrNotFound)

	got, err = ops.GetEndpoint(b.ctx, b.pool, "billing")
	require.NoError(t, err)
	require.Equal(t, "https://new.example.com", got.URL, "failed updates wrote nothing")

	// Re-enabling through Upsert clears the state.
	got.Disabled = false
	require.NoError(t, ops.UpsertEndpoint(b.ctx, b.pool, got))
	got, err = ops.GetEndpoint(b.ctx, b.pool, "billing")
	require.NoError(t, err)
	require.False(t, got.Disabled)
	require.Empty(t, got.DisabledReason)
	require.True(t, got.DisabledAt.IsZero())
}

func TestDisableEnableRemove(t *testing.T) {
	t.Parallel()
	b := setup(t)
	require.NoError(t, ops.AddEndpoint(b.ctx, b.pool, full("billing")))

	require.NoError(t, ops.DisableEndpoint(b.ctx, b.pool, "billing", "breaker open for 1h"))
	got, err := ops.GetEndpoint(b.ctx, b.pool, "billing")
	require.NoError(t, err)
	require.True(t, got.Disabled)
	require.Equal(t, "breaker open for 1h", got.DisabledReason)
	at := got.DisabledAt

	v := version(t, b)
	require.NoError(t, ops.DisableEndpoint(b.ctx, b.pool, "billing", "breaker open for 1h"))
	require.Equal(t, v, version(t, b), "disabling again for the same reason changes nothing")
	require.NoError(t, ops.DisableEndpoint(b.ctx, b.pool, "billing", ""))
	got, err = ops.GetEndpoint(b.ctx, b.pool, "billing")
	require.NoError(t, err)
	require.Empty(t, got.DisabledReason)
	require.Equal(t, at, got.DisabledAt, "a second disable keeps the first time")

	require.NoError(t, ops.EnableEndpoint(b.ctx, b.pool, "billing"))
	require.NoError(t, ops.EnableEndpoint(b.ctx, b.pool, "billing"), "enabling an enabled endpoint is fine")
	got, err = ops.GetEndpoint(b.ctx, b.pool, "billing")
	require.NoError(t, err)
	require.False(t, got.Disabled)
	require.True(t, got.DisabledAt.IsZero())

	require.ErrorIs(t, ops.DisableEndpoint(b.ctx, b.pool, "nope", "x"), ops.ErrNotFound)
	require.ErrorIs(t, ops.EnableEndpoint(b.ctx, b.pool, "nope"), ops.ErrNotFound)

	require.NoError(t, ops.RemoveEndpoint(b.ctx, b.pool, "billing"))
	err = ops.RemoveEndpoint(b.ctx, b.pool, "billing")
	require.ErrorIs(t, err, ops.ErrNotFound)
	require.EqualError(t, err, "endpoint billing: no such endpoint")
}

func TestPlainSQL(t *testing.T) {
	t.Parallel()
	b := setup(t)

	_, err := b.pool.Exec(b.ctx, `INSERT INTO outbox.endpoints (name, url, secrets, topics, updated_at)
		VALUES ('crm', 'https://crm.example.com', ARRAY[$1], '{"customers.*"}', '2000-01-01')`, secretA)
	require.NoError(t, err)
	got, err := ops.GetEndpoint(b.ctx, b.pool, "crm")
	require.NoError(t, err)
	require.Equal(t, ops.SourceSQL, got.Source)
	require.Greater(t, got.UpdatedAt.Year(), 2000, "the trigger sets updated_at")
	require.NoError(t, config.ValidateEndpoint(got.Endpoint, config.Delivery{}))

	for _, bad := range []string{
		`INSERT INTO outbox.endpoints (name, url) VALUES ('Bad Name', 'https://x')`,
		`INSERT INTO outbox.endpoints (name, url) VALUES ('x', 'ftp://x')`,
		`INSERT INTO outbox.endpoints (name, url, on_dead) VALUES ('x', 'https://x', 'drop')`,
		`INSERT INTO outbox.endpoints (name, url, rate_limit) VALUES ('x', 'https://x', 'NaN')`,
		`INSERT INTO outbox.endpoints (name, url, rate_burst) VALUES ('x', 'https://x', 5)`,
		`INSERT INTO outbox.endpoints (name, url, permanent_statuses) VALUES ('x', 'https://x', '{400,410}')`,
		`INSERT INTO outbox.endpoints (name, url, timeout_ms) VALUES ('x', 'https://x', 10)`,
		`INSERT INTO outbox.endpoints (name, url, source) VALUES ('x', 'https://x', 'yaml')`,
		`INSERT INTO outbox.endpoints (name, url, tls_cert_file) VALUES ('x', 'https://x', '/c.pem')`,
		`INSERT INTO outbox.endpoints (name, url, headers) VALUES ('x', 'https://x', '[1]')`,
		`INSERT INTO outbox.endpoints (name, url, disabled_reason) VALUES ('x', 'https://x', 'why')`,
		`INSERT INTO outbox.endpoints (name, url, format) VALUES ('x', 'https://x', 'cloudevents')`,
		`INSERT INTO outbox.endpoints (name, url, cloudevents_source) VALUES ('x', 'https://x', 'a b')`,
		`INSERT INTO outbox.endpoints (name, url, cloudevents_source) VALUES ('x', 'https://x', '')`,
	} {
		_, err := b.pool.Exec(b.ctx, bad)
		require.ErrorContains(t, err, "violates check constraint", bad)
	}
}

func TestSyncFromConfig(t *testing.T) {
	t.Parallel()
	b := setup(t)

	// Rows of other sources, which the sync must leave alone.
	sqlRow := full("from-sql")
	sqlRow.Source = ops.SourceSQL
	require.NoError(t, ops.AddEndpoint(b.ctx, b.pool, sqlRow))
	require.NoError(t, ops.AddEndpoint(b.ctx, b.pool, full("from-cli")))

	parse := func(yaml string) []config.Endpoint {
		t.Helper()
		cfg, err := config.Parse([]byte("database:\n  url: postgres://x@h/db\nendpoints:\n"+yaml), "herald.yaml",
			func(string) string { return "" })
		require.NoError(t, err)
		return cfg.Endpoints
	}
	fileA := "  - {name: a, url: 'https://a', secret: " + secretA + ", topics: [x]}\n"
	fileB := "  - {name: b, url: 'https://b', secret: " + secretA + ", topics: [y], disabled: true}\n"
	fileC := "  - {name: c, url: 'https://c', secret: " + secretA + ", topics: [z], rate_limit: 3}\n"

	require.NoError(t, ops.SyncFromConfig(b.ctx, b.pool, parse(fileA+fileB+fileC)))
	got := byName(t, b)
	require.Len(t, got, 5)
	for _, n := range []string{"a", "b", "c"} {
		require.Equal(t, ops.SourceConfig, got[n].Source, n)
	}
	require.Equal(t, 15*time.Second, got["a"].Timeout)
	require.Equal(t, []int{400, 413, 422}, got["a"].PermanentStatuses)
	require.False(t, got["a"].Disabled)
	require.True(t, got["b"].Disabled, "disabled: true creates it disabled")
	require.Equal(t, ops.DisabledInConfigReason, got["b"].DisabledReason)
	require.InDelta(t, 3.0, got["c"].RateLimit, 0)

	v := version(t, b)
	require.NoError(t, ops.SyncFromConfig(b.ctx, b.pool, parse(fileA+fileB+fileC)))
	require.Equal(t, v, version(t, b), "a sync that changes nothing writes nothing")

	// An operator enables b and disables a; the file changes a, drops c.
	require.NoError(t, ops.EnableEndpoint(b.ctx, b.pool, "b"))
	require.NoError(t, ops.DisableEndpoint(b.ctx, b.pool, "a", "operator"))
	require.NoError(t, ops.DisableEndpoint(b.ctx, b.pool, "from-sql", "operator"))
	fileA2 := "  - {name: a, url: 'https://a2', secret: " + secretB + ", topics: [x, w]}\n"
	require.NoError(t, ops.SyncFromConfig(b.ctx, b.pool, parse(fileA2+fileB)))
	got2 := byName(t, b)
	require.Len(t, got2, 4)
	require.NotContains(t, got2, "c", "an endpoint removed from the file is removed")
	require.Equal(t, "https://a2", got2["a"].URL)
	require.Equal(t, []config.Secret{secretB}, got2["a"].Secrets)
	require.Equal(t, []string{"x", "w"}, got2["a"].Topics)
	require.True(t, got2["a"].Disabled, "the sync keeps the disabled state")
	require.Equal(t, "operator", got2["a"].DisabledReason)
	require.False(t, got2["b"].Disabled, "disabled: true applies only when the endpoint first appears")
	require.Equal(t, got["from-sql"].URL, got2["from-sql"].URL)
	require.True(t, got2["from-sql"].Disabled)
	require.Equal(t, got["from-cli"], got2["from-cli"], "rows of other sources are untouched")

	// File endpoints cannot take over rows of another source, nor the CLI
	// edit or remove file endpoints.
	fileClash := "  - {name: from-sql, url: 'https://x', secret: " + secretA + "}\n  - {name: from-cli, url: 'https://x', secret: " + secretA + "}\n"
	err := ops.SyncFromConfig(b.ctx, b.pool, parse(fileClash))
	require.ErrorIs(t, err, ops.ErrSourceConflict)
	require.ErrorContains(t, err, "from-cli (source cli), from-sql (source sql)")
	require.Equal(t, got2, byName(t, b), "a failed sync writes nothing")

	_, err = ops.UpdateEndpoint(b.ctx, b.pool, "a", func(*ops.Endpoint) error { return nil })
	require.ErrorIs(t, err, ops.ErrSourceConflict)
	require.ErrorContains(t, err, "change it there")
	err = ops.RemoveEndpoint(b.ctx, b.pool, "a")
	require.ErrorIs(t, err, ops.ErrSourceConflict)
	require.ErrorContains(t, err, "remove it there")
	err = ops.UpsertEndpoint(b.ctx, b.pool, full("a"))
	require.ErrorIs(t, err, ops.ErrSourceConflict)
	conf := full("from-cli")
	conf.Source = ops.SourceConfig
	require.ErrorIs(t, ops.UpsertEndpoint(b.ctx, b.pool, conf), ops.ErrSourceConflict)

	// An empty file removes every file endpoint.
	require.NoError(t, ops.SyncFromConfig(b.ctx, b.pool, nil))
	got3 := byName(t, b)
	require.Len(t, got3, 2)
	require.Contains(t, got3, "from-sql")
	require.Contains(t, got3, "from-cli")

	dup := parse(fileA)
	require.ErrorContains(t, ops.SyncFromConfig(b.ctx, b.pool, append(dup, dup...)), "a is in the configuration twice")
}

func TestNotifyAndVersion(t *testing.T) {
	t.Parallel()
	b := setup(t)

	conn, err := b.pool.Acquire(b.ctx)
	require.NoError(t, err)
	defer conn.Release()
	_, err = conn.Exec(b.ctx, "LISTEN "+ops.EndpointsChannel)
	require.NoError(t, err)
	next := func() string {
		t.Helper()
		ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
		defer cancel()
		n, err := conn.Conn().WaitForNotification(ctx)
		require.NoError(t, err, "no notification")
		require.Equal(t, ops.EndpointsChannel, n.Channel)
		return n.Payload
	}

	v := version(t, b)
	steps := []struct {
		name string
		do   func() error
	}{
		{"Add", func() error { return ops.AddEndpoint(b.ctx, b.pool, full("billing")) }},
		{"Update", func() error {
			_, err := ops.UpdateEndpoint(b.ctx, b.pool, "billing", func(e *ops.Endpoint) error { e.URL = "https://x"; return nil })
			return err
		}},
		{"Disable", func() error { return ops.DisableEndpoint(b.ctx, b.pool, "billing", "") }},
		{"Enable", func() error { return ops.EnableEndpoint(b.ctx, b.pool, "billing") }},
		{"Remove", func() error { return ops.RemoveEndpoint(b.ctx, b.pool, "billing") }},
	}
	for _, s := range steps {
		require.NoError(t, s.do(), s.name)
		require.Equal(t, "billing", next(), s.name)
		nv := version(t, b)
		require.Greater(t, nv, v, s.name)
		v = nv
	}

	require.NoError(t, ops.SyncFromConfig(b.ctx, b.pool, []config.Endpoint{full("fromfile").Endpoint}))
	require.Equal(t, "fromfile", next())
	_, err = b.pool.Exec(b.ctx, "TRUNCATE outbox.endpoints")
	require.NoError(t, err)
	require.Empty(t, next(), "TRUNCATE notifies with an empty payload")
	require.Greater(t, version(t, b), v)

	// Nothing is sent for a write that is rolled back.
	require.ErrorIs(t, pgx.BeginFunc(b.ctx, b.pool, func(tx pgx.Tx) error {
		require.NoError(t, ops.AddEndpoint(b.ctx, tx, full("rolled-back")))
		return errRollback
	}), errRollback)
	_, err = ops.GetEndpoint(b.ctx, b.pool, "rolled-back")
	require.ErrorIs(t, err, ops.ErrNotFound)
	ctx, cancel := context.WithTimeout(b.ctx, 200*time.Millisecond)
	defer cancel()
	_, err = conn.Conn().WaitForNotification(ctx)
	require.ErrorIs(t, err, context.DeadlineExceeded)
}

var errRollback = errors.New("rollback")

// TestConcurrentWritersDoNotDeadlock runs syncs, CLI-style updates and
// relay-style disables of the same endpoints at once.
func TestConcurrentWritersDoNotDeadlock(t *testing.T) {
	t.Parallel()
	b := setup(t)

	var file []config.Endpoint
	for i := range 5 {
		e := full(fmt.Sprintf("file%d", i)).Endpoint
		file = append(file, e)
		require.NoError(t, ops.AddEndpoint(b.ctx, b.pool, full(fmt.Sprintf("cli%d", i))))
	}
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for w := range 6 {
		wg.Go(func() {
			for i := range 10 {
				var err error
				switch w % 3 {
				case 0:
					f := append([]config.Endpoint(nil), file...)
					f[i%5].URL = fmt.Sprintf("https://x%d.example.com", i)
					err = ops.SyncFromConfig(b.ctx, b.pool, f)
				case 1:
					_, err = ops.UpdateEndpoint(b.ctx, b.pool, fmt.Sprintf("cli%d", (i+w)%5), func(e *ops.Endpoint) error {
						e.RateLimit = float64(i + 1)
						return nil
					})
				case 2:
					err = ops.DisableEndpoint(b.ctx, b.pool, fmt.Sprintf("file%d", i%5), fmt.Sprint(i))
					if err == nil {
						err = ops.EnableEndpoint(b.ctx, b.pool, fmt.Sprintf("cli%d", i%5))
					}
				}
				if err != nil && !errors.Is(err, ops.ErrNotFound) {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
}

func version(t *testing.T, b *testBundle) int64 {
	t.Helper()
	v, err := ops.EndpointsVersion(b.ctx, b.pool)
	require.NoError(t, err)
	return v
}

func byName(t *testing.T, b *testBundle) map[string]ops.Endpoint {
	t.Helper()
	list, skipped, err := ops.ListEndpoints(b.ctx, b.pool)
	require.NoError(t, err)
	require.Empty(t, skipped)
	m := make(map[string]ops.Endpoint, len(list))
	for _, e := range list {
		m[e.Name] = e
	}
	return m
}

// TestListSkipsRowsItCannotRead: a row that cannot be read as an endpoint
// (written with plain SQL, which the table's CHECKs cannot fully guard) is
// left out and reported with its name and what is wrong, never with a
// header value; every other row is listed.
func TestListSkipsRowsItCannotRead(t *testing.T) {
	t.Parallel()
	b := setup(t)
	require.NoError(t, ops.AddEndpoint(b.ctx, b.pool, full("good")))
	_, err := b.pool.Exec(b.ctx, `INSERT INTO outbox.endpoints (name, url, secrets, headers, disabled_at, created_at) VALUES
		('number', 'https://a', '{`+secretA+`}', '{"Authorization": "Bearer hunter2", "X-Retry": 3}', NULL, now()),
		('null', 'https://a', '{`+secretA+`}', '{"X-Token": null}', NULL, now()),
		('nested', 'https://a', '{`+secretA+`}', '{"X-Token": {"v": "hunter2"}, "X-List": ["hunter2"], "X-Flag": true}', NULL, now()),
		('forever', 'https://a', '{`+secretA+`}', NULL, 'infinity', now()),
		('born', 'https://a', '{`+secretA+`}', NULL, NULL, '-infinity')`)
	require.NoError(t, err)

	list, skipped, err := ops.ListEndpoints(b.ctx, b.pool)
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.Equal(t, "good", list[0].Name)
	var got []string
	for _, s := range skipped {
		got = append(got, s.Error())
		require.NotContains(t, s.Error(), "hunter2")
		require.NotContains(t, s.Error(), "3")
	}
	require.Equal(t, []string{
		"endpoint born: created_at: must be a finite time (got -infinity)",
		"endpoint forever: disabled_at: must be a finite time (got infinity)",
		`endpoint nested: headers: values must be strings: "X-Flag" is a boolean, "X-List" an array, "X-Token" an object`,
		`endpoint null: headers: values must be strings: "X-Token" is null`,
		`endpoint number: headers: values must be strings: "X-Retry" is a number`,
	}, got)
	require.Equal(t, "number", skipped[4].Name)

	_, err = ops.GetEndpoint(b.ctx, b.pool, "number")
	require.EqualError(t, err, `endpoint number: headers: values must be strings: "X-Retry" is a number`)
	got1, err := ops.GetEndpoint(b.ctx, b.pool, "good")
	require.NoError(t, err)
	require.Equal(t, "Bearer hunter2", got1.Headers["Authorization"].Value())
}
