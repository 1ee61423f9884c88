package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/herald-relay/herald/cmd/herald/internal/config"
	epstore "github.com/herald-relay/herald/cmd/herald/internal/ops"
	"github.com/herald-relay/herald/internal/heraldtest"
)

const (
	testSecret2 = "whsec_MDEyMzQ1Njc4OWFiY2RlZmdoaWprbG1u"
	testSecret3 = "whsec_bm1sa2ppaGdmZWRjYmE5ODc2NTQzMjEw"
	// headerSecret is a header value, which must be kept as secret as the
	// signing secrets.
	headerSecret = "Bearer hunter2"
)

// endpointsBundle runs herald endpoints commands against a fresh database
// and checks that no secret ever shows up in their output.
type endpointsBundle struct {
	t   *testing.T
	cfg string
	db  epstore.DB
}

func setupEndpoints(t *testing.T) *endpointsBundle {
	t.Helper()
	url := heraldtest.URL(t)
	return &endpointsBundle{t: t, cfg: writeConfig(t, url, "http://127.0.0.1:1/"), db: heraldtest.PoolFor(t, url)}
}

// run runs `herald --config … endpoints args…` and returns the exit code,
// stdout and stderr.
func (b *endpointsBundle) run(args ...string) (int, string, string) {
	b.t.Helper()
	code, out, errOut := herald(b.t, append([]string{"--config", b.cfg, "endpoints"}, args...)...)
	for _, s := range []string{testSecret, testSecret2, testSecret3, headerSecret, "hunter2",
		strings.TrimPrefix(testSecret, "whsec_"), strings.TrimPrefix(testSecret2, "whsec_")} {
		require.NotContains(b.t, out, s, "a secret in the output of %v", args)
		require.NotContains(b.t, errOut, s, "a secret in the errors of %v", args)
	}
	return code, out, errOut
}

// ok runs a command that must succeed and returns its stdout.
func (b *endpointsBundle) ok(args ...string) string {
	b.t.Helper()
	code, out, errOut := b.run(args...)
	require.Zero(b.t, code, "%v: %s", args, errOut)
	return out
}

func (b *endpointsBundle) get(name string) epstore.Endpoint {
	b.t.Helper()
	ep, err := epstore.GetEndpoint(context.Background(), b.db, name)
	require.NoError(b.t, err)
	return ep
}

func TestEndpointsAddListShowUpdate(t *testing.T) {
	t.Parallel()
	b := setupEndpoints(t)

	out := b.ok("list")
	require.Contains(t, out, "(no endpoints in outbox.endpoints)")
	require.Contains(t, b.ok("help"), "--secret-env VAR")

	out = b.ok("add", "billing", "--url", "https://billing.example.com/hooks",
		"--secret", testSecret2, "--secret", testSecret,
		"--topic", "orders.*", "--topic", "invoices.paid",
		"--timeout", "20s", "--max-in-flight", "8", "--rate-limit", "2.5", "--rate-burst", "5",
		"--ordered", "--on-dead", "skip", "--header", "Authorization="+headerSecret, "--header", "X-Env=prod",
		"--permanent-status", "400", "--permanent-status", "422", "--follow-redirects")
	require.Equal(t, "added endpoint billing\n", out)

	got := b.get("billing")
	require.Equal(t, epstore.SourceCLI, got.Source)
	require.Equal(t, "https://billing.example.com/hooks", got.URL)
	require.Equal(t, []config.Secret{testSecret2, testSecret}, got.Secrets, "newest first, as given")
	require.Equal(t, []string{"orders.*", "invoices.paid"}, got.Topics)
	require.Equal(t, 20*time.Second, got.Timeout)
	require.Equal(t, 8, got.MaxInFlight)
	require.InDelta(t, 2.5, got.RateLimit, 0)
	require.Equal(t, 5, got.RateBurst)
	require.True(t, got.Ordered)
	require.Equal(t, "skip", got.OnDead)
	require.Equal(t, map[string]config.Secret{"Authorization": headerSecret, "X-Env": "prod"}, got.Headers)
	require.Equal(t, headerSecret, got.Headers["Authorization"].Value())
	require.Equal(t, []int{400, 422}, got.PermanentStatuses)
	require.True(t, got.FollowRedirects)

	// Flags may also come before the name; a second endpoint with defaults.
	// Credentials and query values in its URL are never printed.
	b.ok("add", "--url", "https://user:pw@crm.example.com/x?token=hunter2", "--secret", testSecret3, "crm")

	out = b.ok("list")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 3)
	require.Regexp(t, `^NAME\s+URL\s+TOPICS\s+SECRETS\s+SOURCE\s+STATE\s+UPDATED$`, lines[0])
	require.Regexp(t, `^billing\s+https://billing.example.com/hooks\s+orders\.\*,invoices\.paid\s+2\s+cli\s+enabled\s+\d{4}-`, lines[1])
	require.Regexp(t, `^crm\s+https://redacted@crm.example.com/x\?token=redacted\s+-\s+1\s+cli\s+enabled\s`, lines[2])
	require.NotContains(t, out, ":pw@", "a password in a URL is not printed")

	out = b.ok("show", "billing")
	for _, want := range []string{
		"name:               billing",
		"url:                https://billing.example.com/hooks",
		"state:              enabled",
		"source:             cli",
		"secrets:            2 secrets (whsec_…, newest first; not shown)",
		"topics:             orders.*, invoices.paid",
		"headers:            Authorization, X-Env (values not shown)",
		"timeout:            20s\n",
		"max_in_flight:      8\n",
		"rate_limit:         2.5/s, burst 5",
		"ordered:            true",
		"on_dead:            skip",
		"permanent_statuses: 400, 422\n",
		"follow_redirects:   true",
		"tls.ca_file:        - (system roots)",
	} {
		require.Contains(t, out, want)
	}
	out = b.ok("show", "crm")
	for _, want := range []string{
		"secrets:            1 secret (",
		"topics:             none: only messages that name it",
		"headers:            none",
		"timeout:            15s (delivery.timeout)",
		"max_in_flight:      64 (default)",
		"rate_limit:         unlimited",
		"on_dead:            block",
		"permanent_statuses: 400, 413, 422 (default)",
	} {
		require.Contains(t, out, want)
	}

	// update changes only the flags given; a list flag replaces the list.
	before := b.get("billing")
	out = b.ok("update", "billing", "--secret", testSecret3, "--topic", "refunds.*", "--ordered=false", "--timeout", "0")
	require.Equal(t, "updated endpoint billing\n", out)
	got = b.get("billing")
	require.Equal(t, []config.Secret{testSecret3}, got.Secrets, "--secret replaces every secret")
	require.Equal(t, []string{"refunds.*"}, got.Topics)
	require.False(t, got.Ordered)
	require.Zero(t, got.Timeout, "0 resets to delivery.timeout")
	require.Equal(t, before.URL, got.URL)
	require.Equal(t, before.Headers, got.Headers)
	require.Equal(t, before.RateLimit, got.RateLimit)
	require.Equal(t, before.PermanentStatuses, got.PermanentStatuses)
	require.Equal(t, before.CreatedAt, got.CreatedAt)

	b.ok("update", "billing", "--no-headers", "--no-topics", "--no-permanent-statuses", "--rate-limit", "0", "--rate-burst", "0")
	got = b.get("billing")
	require.Nil(t, got.Headers)
	require.Empty(t, got.Topics)
	require.Equal(t, []int{}, got.PermanentStatuses, "retry every 4xx")
	require.Zero(t, got.RateLimit)
	require.Contains(t, b.ok("show", "billing"), "permanent_statuses: none\n")
}

func TestEndpointsDisableEnableRemove(t *testing.T) {
	t.Parallel()
	b := setupEndpoints(t)
	b.ok("add", "billing", "--url", "https://billing.example.com", "--secret", testSecret, "--topic", "*")

	out := b.ok("disable", "billing", "--reason", "customer asked")
	require.Contains(t, out, "disabled endpoint billing")
	require.True(t, b.get("billing").Disabled)
	require.Regexp(t, `billing\s+.*\s+disabled \(customer asked\)\s+\d{4}-`, b.ok("list"))
	require.Regexp(t, `state:\s+disabled since \d{4}-\d\d-\d\dT[0-9:]+Z \(customer asked\)`, b.ok("show", "billing"))

	// update keeps the state.
	b.ok("update", "billing", "--url", "https://billing2.example.com")
	require.True(t, b.get("billing").Disabled)

	require.Equal(t, "enabled endpoint billing\n", b.ok("enable", "billing"))
	require.False(t, b.get("billing").Disabled)
	require.Contains(t, b.ok("show", "billing"), "state:              enabled")

	require.Equal(t, "removed endpoint billing\n", b.ok("remove", "billing"))
	for _, cmd := range [][]string{{"remove", "billing"}, {"show", "billing"}, {"enable", "billing"}, {"disable", "billing"}, {"update", "billing", "--url", "https://x"}} {
		code, _, errOut := b.run(cmd...)
		require.Equal(t, 1, code, cmd)
		require.Equal(t, "herald: endpoint billing: no such endpoint\n", errOut, cmd)
	}
}

func TestEndpointsInvalidInputNamesTheField(t *testing.T) {
	t.Parallel()
	b := setupEndpoints(t)

	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"add", "billing", "--secret", testSecret}, 2, "endpoints add needs --url and --secret"},
		{[]string{"add", "billing", "--url", "https://x"}, 2, "endpoints add needs --url and --secret"},
		{[]string{"add", "--url", "https://x", "--secret", testSecret}, 2, "needs exactly one endpoint NAME"},
		{[]string{"add", "a", "b", "--url", "https://x", "--secret", testSecret}, 2, "needs exactly one endpoint NAME"},
		{[]string{"add", "billing", "--url", "ftp://x", "--secret", testSecret}, 1, `herald: endpoint billing: url: must be an absolute http or https URL (got "ftp://x")`},
		{[]string{"add", "Billing", "--url", "https://x", "--secret", testSecret}, 1, `name: must match ^[a-z0-9][a-z0-9_.-]{0,62}$ (got "Billing")`},
		{[]string{"add", "billing", "--url", "https://x", "--secret", "whsec_hunter2!"}, 1, `herald: endpoint billing: secrets[0]: must be "whsec_" followed by standard base64 (value not shown)`},
		{[]string{"add", "billing", "--url", "https://x", "--secret", testSecret, "--on-dead", "drop"}, 1, `on_dead: must be block or skip (got "drop")`},
		{[]string{"add", "billing", "--url", "https://x", "--secret", testSecret, "--rate-burst", "3"}, 1, `rate_burst: must be 0 when rate_limit is 0 (unlimited) (got "3")`},
		{[]string{"add", "billing", "--url", "https://x", "--secret", testSecret, "--timeout", "10m"}, 1, `timeout: must be between 1s and 5m (got "10m")`},
		{[]string{"add", "billing", "--url", "https://x", "--secret", testSecret, "--header", "Host=x"}, 1, `headers.Host: header is set by Herald and cannot be overridden`},
		{[]string{"add", "billing", "--url", "https://x", "--secret", testSecret, "--header", "Authorization: " + headerSecret}, 2, "--header must be NAME=VALUE (value not shown)"},
		{[]string{"add", "billing", "--url", "https://x", "--secret", testSecret, "--permanent-status", "410"}, 1, "permanent_statuses[0]: 410 Gone is always final"},
		{[]string{"add", "billing", "--url", "https://x", "--secret", testSecret, "--secret-env", "HERALD_TEST_UNSET_VARIABLE"}, 2, "environment variable HERALD_TEST_UNSET_VARIABLE is not set"},
		{[]string{"add", "billing", "--url", "ftp://x", "--secret", "whsec_hunter2!", "--max-in-flight", "-1"}, 1, "herald: endpoint billing has 3 problems:\n  max_in_flight: must be between 1 and 10000 (got \"-1\")\n  secrets[0]: "},
		{[]string{"add", "billing", "--url", "https://x", "--secret", testSecret, "--tls-ca-file", "nonexistent.pem"}, 1, "tls.ca_file: file does not exist or cannot be read"},
		{[]string{"frobnicate"}, 2, `unknown endpoints command "frobnicate"`},
		{[]string{}, 2, "endpoints add|list|show|update|disable|enable|remove"},
		{[]string{"list", "extra"}, 2, "endpoints list takes no arguments"},
		{[]string{"show"}, 2, "needs exactly one endpoint NAME"},
		{[]string{"add", "billing", "--bogus"}, 2, "flag provided but not defined: -bogus"},
	}
	for _, tt := range tests {
		code, _, errOut := b.run(tt.args...)
		require.Equal(t, tt.code, code, "%v: %s", tt.args, errOut)
		require.Contains(t, errOut, tt.want, tt.args)
	}
	_, err := epstore.GetEndpoint(context.Background(), b.db, "billing")
	require.ErrorIs(t, err, epstore.ErrNotFound, "nothing was added")

	// A timeout the lease of this configuration cannot cover is a warning:
	// relays may run with another configuration.
	code, _, errOut := b.run("add", "slow", "--url", "https://x", "--secret", testSecret, "--timeout", "2m")
	require.Zero(t, code, errOut)
	require.Contains(t, errOut, "warning: endpoint slow: timeout: must be at most relay.lease (1m) - 5s = 55s")
}

func TestEndpointsOfTheConfigFile(t *testing.T) {
	t.Parallel()
	b := setupEndpoints(t)
	cfg, err := config.Load(b.cfg, nil)
	require.NoError(t, err)
	require.NoError(t, epstore.SyncFromConfig(context.Background(), b.db, cfg.Endpoints))

	require.Regexp(t, `test\s+http://127.0.0.1:1/\s+\*\s+1\s+config\s+enabled`, b.ok("list"))
	code, _, errOut := b.run("update", "test", "--url", "https://x")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "it comes from the configuration file; change it there")
	code, _, errOut = b.run("remove", "test")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "remove it there")
	code, _, errOut = b.run("add", "test", "--url", "https://x", "--secret", testSecret)
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "endpoint test: endpoint already exists")

	// An operator may still disable and enable it.
	b.ok("disable", "test")
	require.True(t, b.get("test").Disabled)
	b.ok("enable", "test")
	require.False(t, b.get("test").Disabled)
}

// TestEndpointsSecretFromEnvironment cannot run in parallel: it sets a
// variable.
func TestEndpointsSecretFromEnvironment(t *testing.T) {
	b := setupEndpoints(t)
	t.Setenv("HERALD_TEST_SECRET", testSecret2)
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	require.NoError(t, os.WriteFile(ca, []byte("x"), 0o600))
	t.Chdir(dir)

	b.ok("add", "billing", "--url", "https://x", "--secret-env", "HERALD_TEST_SECRET", "--secret", testSecret,
		"--tls-ca-file", "ca.pem", "--tls-min-version", "1.3")
	got := b.get("billing")
	require.Equal(t, []config.Secret{testSecret2, testSecret}, got.Secrets, "in the order given")
	require.Equal(t, ca, got.TLS.CAFile, "a relative path is stored absolute")
	out := b.ok("show", "billing")
	require.Contains(t, out, "tls.ca_file:        "+ca)
	require.Contains(t, out, "tls.min_version:    1.3")
}
