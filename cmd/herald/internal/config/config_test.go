package config

import (
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/herald-relay/herald/relay"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var (
	// testSecret is a valid signing secret; tests assert it never shows up
	// in errors.
	testSecret  = "whsec_" + base64.StdEncoding.EncodeToString([]byte("0123456789abcdefghijklmn"))
	testSecret2 = "whsec_" + base64.StdEncoding.EncodeToString([]byte("nmlkjihgfedcba9876543210"))
)

// env returns a getenv over vars.
func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

// base is a minimal valid file; tests append to it.
const base = "database:\n  url: postgres://app@db/app\n"

func parseErr(t *testing.T, yaml string, vars map[string]string) *Error {
	t.Helper()
	cfg, err := Parse([]byte(yaml), "herald.yaml", env(vars))
	require.Error(t, err)
	require.Nil(t, cfg)
	var cerr *Error
	require.ErrorAs(t, err, &cerr)
	return cerr
}

func TestParseExampleFile(t *testing.T) {
	t.Parallel()

	cfg, err := Load("../../../../config.example.yaml", env(map[string]string{"BILLING_WEBHOOK_SECRET": testSecret}))
	require.NoError(t, err)
	require.Empty(t, cfg.Warnings())

	want := Default()
	want.Database.URL = "postgres://postgres@127.0.0.1:5432/app"
	want.Delivery.AllowedCIDRs = cfg.Delivery.AllowedCIDRs // [] vs nil
	require.Equal(t, want.Database, cfg.Database)
	require.Equal(t, want.Log, cfg.Log)
	require.Equal(t, want.Delivery, cfg.Delivery)
	require.Equal(t, want.Relay, cfg.Relay)
	require.Equal(t, want.Retry, cfg.Retry)
	require.Equal(t, want.Breaker, cfg.Breaker)
	require.Equal(t, want.Metrics, cfg.Metrics)
	require.Equal(t, want.Maintenance, cfg.Maintenance)
	require.Equal(t, want.History, cfg.History)

	require.Len(t, cfg.Endpoints, 1)
	e := cfg.Endpoints[0]
	require.Equal(t, "billing", e.Name)
	require.Equal(t, "https://billing.example.com/webhooks", e.URL)
	require.Equal(t, testSecret, e.Secret.Value())
	require.Equal(t, []Secret{Secret(testSecret)}, e.SigningSecrets())
	require.Equal(t, []string{"orders.*", "invoices.paid"}, e.Topics)
	require.Equal(t, map[string]Secret{"X-Env": "prod"}, e.Headers)
	require.Equal(t, 15*time.Second, e.Timeout)
	require.Equal(t, []int{400, 413, 422}, e.PermanentStatuses)
	require.False(t, e.Ordered)
	require.Equal(t, "block", e.OnDead)
	require.Zero(t, e.RateLimit)
	require.Zero(t, e.RateBurst)
	require.False(t, e.Disabled)
}

// TestExampleDocumentsEveryKey walks Config's yaml tags and requires every
// key path to be in config.example.yaml, so the docs cannot fall behind.
func TestExampleDocumentsEveryKey(t *testing.T) {
	t.Parallel()

	data, err := os.ReadFile("../../../../config.example.yaml")
	require.NoError(t, err)
	example := string(data)
	// secrets is documented in a comment; uncomment to find it as a key.
	uncommented := regexp.MustCompile(`(?m)^(\s*)# (secrets:)`).ReplaceAllString(example, "$1$2")
	// So are the admin and sources blocks, each to the end of its comment.
	for _, key := range []string{"admin", "sources"} {
		if before, block, ok := strings.Cut(uncommented, "\n# "+key+":\n"); ok {
			lines := strings.Split(block, "\n")
			for i, l := range lines {
				rest, ok := strings.CutPrefix(l, "# ")
				if !ok {
					break
				}
				lines[i] = rest
			}
			uncommented = before + "\n" + key + ":\n" + strings.Join(lines, "\n")
		}
	}

	var paths []string
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		for i := range t.NumField() {
			f := t.Field(i)
			tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if tag == "" || !f.IsExported() {
				continue
			}
			path := prefix + tag
			paths = append(paths, path)
			ft := f.Type
			if ft.Kind() == reflect.Slice {
				ft = ft.Elem()
				path += "[]"
			}
			if ft.Kind() == reflect.Struct && ft != prefixType {
				walk(ft, path+".")
			}
		}
	}
	walk(reflect.TypeFor[Config](), "")
	require.Greater(t, len(paths), 45)

	// Check each path as a chain of keys appearing in order, each more
	// indented than its parent.
	lines := strings.Split(uncommented, "\n")
	for _, path := range paths {
		keys := strings.Split(strings.ReplaceAll(path, "[]", ""), ".")
		found := findKeyPath(lines, keys)
		require.True(t, found, "config.example.yaml does not document %s", path)
	}
}

// findKeyPath reports whether keys appear in lines as nested block keys,
// keys[0] at the top level and each next one inside the previous one.
func findKeyPath(lines []string, keys []string) bool {
	type level struct{ indent, childIndent int }
	var matched []level // keys[:len(matched)], matched so far
	for _, line := range lines {
		trimmed := strings.TrimLeft(line, " ")
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		indent := len(line) - len(trimmed)
		if rest, ok := strings.CutPrefix(trimmed, "- "); ok {
			indent, trimmed = indent+2, rest
		}
		for len(matched) > 0 && indent <= matched[len(matched)-1].indent {
			matched = matched[:len(matched)-1]
		}
		want := 0 // the indent of a direct child of the last match
		if n := len(matched); n > 0 {
			if matched[n-1].childIndent < 0 {
				matched[n-1].childIndent = indent
			}
			want = matched[n-1].childIndent
		}
		if indent == want && strings.HasPrefix(trimmed, keys[len(matched)]+":") {
			matched = append(matched, level{indent: indent, childIndent: -1})
			if len(matched) == len(keys) {
				return true
			}
		}
	}
	return false
}

func TestFindKeyPath(t *testing.T) {
	t.Parallel()

	lines := strings.Split("a:\n  b: 1\n  c:\n    - d: 1\n      e: 2\nf: 3\n", "\n")
	for keys, want := range map[string]bool{
		"a": true, "a.b": true, "a.c.d": true, "a.c.e": true, "f": true,
		"b": false, "a.d": false, "a.f": false, "a.c.f": false, "a.b.c": false,
	} {
		require.Equal(t, want, findKeyPath(lines, strings.Split(keys, ".")), keys)
	}
}

func TestParseDefaults(t *testing.T) {
	t.Parallel()

	cfg, err := Parse([]byte(base+`
delivery:
  timeout: 20s
endpoints:
  - name: a
    url: https://a.example.com/hook
    secret: `+testSecret+`
    topics: ["x.*"]
  - name: b
    url: https://b.example.com/hook
    secrets: [`+testSecret2+`, `+testSecret+`]
    topics: ["y"]
    timeout: 3s
    max_in_flight: 5
    permanent_statuses: []
`), "herald.yaml", env(nil))
	require.NoError(t, err)

	want := Default()
	want.Database.URL = "postgres://app@db/app"
	want.Delivery.Timeout = 20 * time.Second
	want.Endpoints = []Endpoint{
		{
			Name: "a", URL: "https://a.example.com/hook", Secret: Secret(testSecret), Topics: []string{"x.*"},
			Timeout: 20 * time.Second, MaxInFlight: 64, PermanentStatuses: []int{400, 413, 422}, OnDead: "block",
		},
		{
			Name: "b", URL: "https://b.example.com/hook", Secrets: []Secret{Secret(testSecret2), Secret(testSecret)},
			Topics: []string{"y"}, Timeout: 3 * time.Second, MaxInFlight: 5, PermanentStatuses: []int{}, OnDead: "block",
		},
	}
	want.src, want.warnings = cfg.src, cfg.warnings
	require.Equal(t, want, cfg)
	require.Equal(t, []Secret{Secret(testSecret2), Secret(testSecret)}, cfg.Endpoints[1].SigningSecrets())
	require.NoError(t, cfg.Validate())

	// An empty file plus DATABASE_URL is a valid config made of defaults.
	cfg, err = Parse(nil, "herald.yaml", env(map[string]string{"DATABASE_URL": "postgres://h/db"}))
	require.NoError(t, err)
	want = Default()
	want.Database.URL = "postgres://h/db"
	want.src, want.warnings = cfg.src, cfg.warnings
	require.Equal(t, want, cfg)
	require.Equal(t, []string{"herald.yaml: endpoints: no endpoints are configured: every message will be kept as unroutable"}, cfg.Warnings())
}

func TestParseEndpointHealthKeys(t *testing.T) {
	t.Parallel()

	cfg, err := Parse([]byte(base+`relay:
  endpoint_refresh: 250ms
breaker:
  failure_threshold: 3
  probe_interval: 1s
  max_probe_interval: 1m
  disable_after: 1h
endpoints:
  - name: a
    url: https://a.example.com/hook
    secret: `+testSecret+`
    topics: ["x.*"]
    ordered: true
    on_dead: skip
    rate_limit: 2.5
    rate_burst: 7
    disabled: true
  - name: b
    url: https://b.example.com/hook
    secret: `+testSecret+`
    topics: ["y"]
    rate_limit: 2.5
`), "herald.yaml", env(nil))
	require.NoError(t, err)
	require.Empty(t, cfg.Warnings())
	require.Equal(t, 250*time.Millisecond, cfg.Relay.EndpointRefresh)
	require.Equal(t, Breaker{FailureThreshold: 3, ProbeInterval: time.Second, MaxProbeInterval: time.Minute, DisableAfter: time.Hour}, cfg.Breaker)

	a, b := cfg.Endpoints[0], cfg.Endpoints[1]
	require.True(t, a.Ordered)
	require.Equal(t, OnDeadSkip, a.OnDead)
	require.InDelta(t, 2.5, a.RateLimit, 0)
	require.Equal(t, 7, a.RateBurst)
	require.Equal(t, 7, a.Burst())
	require.True(t, a.Disabled)

	require.False(t, b.Ordered)
	require.Equal(t, OnDeadBlock, b.OnDead)
	require.Zero(t, b.RateBurst)
	require.Equal(t, 3, b.Burst(), "burst defaults to ceil(rate_limit)")
	require.False(t, b.Disabled)
}

func TestBurst(t *testing.T) {
	t.Parallel()

	for _, tt := range []struct {
		limit float64
		burst int
		want  int
	}{
		{0, 0, 0},
		{0.1, 0, 1},
		{1, 0, 1},
		{1.01, 0, 2},
		{100, 0, 100},
		{100, 5, 5},
		{0.5, 10, 10},
	} {
		require.Equal(t, tt.want, Endpoint{RateLimit: tt.limit, RateBurst: tt.burst}.Burst(), "%v/%v", tt.limit, tt.burst)
	}
}

func TestValidateEndpoint(t *testing.T) {
	t.Parallel()

	valid := func() Endpoint {
		return Endpoint{Name: "billing", URL: "https://billing.example.com/hook", Secrets: []Secret{Secret(testSecret2), Secret(testSecret)}}
	}
	require.NoError(t, ValidateEndpoint(valid(), Delivery{}), "zero timeout, max_in_flight, on_dead and statuses stand for their defaults")

	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	require.NoError(t, os.WriteFile(ca, []byte("x"), 0o600))
	ok := valid()
	ok.TLS.CAFile, ok.Timeout, ok.MaxInFlight, ok.RateLimit, ok.RateBurst, ok.Ordered, ok.OnDead = ca, 5*time.Minute, 10, 0.5, 2, true, OnDeadSkip
	require.NoError(t, ValidateEndpoint(ok, Delivery{}))

	tests := []struct {
		name string
		edit func(e *Endpoint)
		want []string // the error's lines
	}{
		{"NoName", func(e *Endpoint) { e.Name = "" }, []string{"name: required"}},
		{"BadName", func(e *Endpoint) { e.Name = "Billing!" }, []string{`name: must match ^[a-z0-9][a-z0-9_.-]{0,62}$ (got "Billing!")`}},
		{"BadURL", func(e *Endpoint) { e.URL = "ftp://x" }, []string{`url: must be an absolute http or https URL (got "ftp://x")`}},
		{"NoSecret", func(e *Endpoint) { e.Secrets = nil }, []string{"secret: required (or secrets, during a rotation)"}},
		{"BadSecret", func(e *Endpoint) { e.Secrets = []Secret{Secret(testSecret), "whsec_hunter2!"} }, []string{
			`secrets[1]: must be "whsec_" followed by standard base64 (value not shown)`,
		}},
		{"DuplicateSecret", func(e *Endpoint) { e.Secrets = []Secret{Secret(testSecret), Secret(testSecret)} }, []string{
			"secrets[1]: duplicate of secrets[0]",
		}},
		{"Headers", func(e *Endpoint) { e.Headers = map[string]Secret{"Host": "x", "X-A": "hunter2\n"} }, []string{
			`headers.Host: header is set by Herald and cannot be overridden (got "Host")`,
			"headers.X-A: header value must not contain control characters",
		}},
		{"Ranges", func(e *Endpoint) {
			e.Timeout, e.MaxInFlight, e.RateLimit, e.RateBurst = time.Hour, 10001, -1, -1
		}, []string{
			`max_in_flight: must be between 1 and 10000 (got "10001")`,
			`rate_burst: must be between 0 (max(1, ceil(rate_limit))) and 1000000 (got "-1")`,
			`rate_limit: must be between 0 (unlimited) and 1e+06 (got "-1")`,
			`timeout: must be between 1s and 5m (got "1h")`,
		}},
		{"NaNRate", func(e *Endpoint) { e.RateLimit = math.NaN() }, []string{`rate_limit: must be between 0 (unlimited) and 1e+06 (got "NaN")`}},
		{"BurstWithoutLimit", func(e *Endpoint) { e.RateBurst = 3 }, []string{`rate_burst: must be 0 when rate_limit is 0 (unlimited) (got "3")`}},
		{"OnDead", func(e *Endpoint) { e.OnDead = "drop" }, []string{`on_dead: must be block or skip (got "drop")`}},
		{"Statuses", func(e *Endpoint) { e.PermanentStatuses = []int{410} }, []string{`permanent_statuses[0]: 410 Gone is always final; remove it (got "410")`}},
		{"TLS", func(e *Endpoint) { e.TLS = EndpointTLS{CAFile: "ca.pem", CertFile: ca, MinVersion: "1.0"} }, []string{
			`tls.ca_file: file does not exist or cannot be read (got "ca.pem")`,
			`tls.ca_file: must be an absolute path (got "ca.pem")`,
			`tls.key_file: cert_file and key_file must be set together`,
			`tls.min_version: must be "1.2" or "1.3" (or empty for 1.2) (got "1.0")`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := valid()
			tt.edit(&e)
			err := ValidateEndpoint(e, Delivery{})
			require.Error(t, err)
			require.Equal(t, strings.Join(tt.want, "\n"), err.Error())
			require.NotContains(t, err.Error(), "hunter2")
			var cerr *Error
			require.ErrorAs(t, err, &cerr)
			for _, p := range cerr.Problems {
				require.Empty(t, p.File)
				require.Zero(t, p.Line)
			}
		})
	}

	t.Run("Lease", func(t *testing.T) {
		t.Parallel()
		cfg := Default()
		e := valid()
		require.NoError(t, cfg.ValidateEndpoint(e))
		e.Timeout = 2 * time.Minute
		require.NoError(t, ValidateEndpoint(e, cfg.Delivery))
		require.EqualError(t, cfg.ValidateEndpoint(e), `timeout: must be at most relay.lease (1m) - 5s = 55s (got "2m")`)
		e.URL = ""
		require.EqualError(t, cfg.ValidateEndpoint(e), "timeout: must be at most relay.lease (1m) - 5s = 55s (got \"2m\")\nurl: required")
		cfg.Relay.Lease = 3 * time.Minute
		e.URL = "https://x"
		require.NoError(t, cfg.ValidateEndpoint(e))
	})
}

func TestDefaultsAreValid(t *testing.T) {
	t.Parallel()

	cfg := Default()
	cfg.Database.URL = "postgres://h/db"
	cfg.Endpoints = []Endpoint{DefaultEndpoint().WithDefaults(cfg.Delivery)}
	cfg.Endpoints[0].Name, cfg.Endpoints[0].URL, cfg.Endpoints[0].Secret = "a", "https://a", Secret(testSecret)
	require.NoError(t, cfg.Validate())
	require.Equal(t, DeliveryTimeoutDefault, cfg.Endpoints[0].Timeout)

	e := Endpoint{}.WithDefaults(Delivery{})
	require.Equal(t, DeliveryTimeoutDefault, e.Timeout)
	require.Equal(t, EndpointMaxInFlightDefault, e.MaxInFlight)
	require.Equal(t, EndpointPermanentStatusesDefault(), e.PermanentStatuses)

	// Validate on a Config built in Go has no file or lines.
	cfg.Relay.MaxInFlight = 0
	require.EqualError(t, cfg.Validate(), `relay.max_in_flight: must be between 1 and 10000 (got "0")`)
}

func TestParseErrors(t *testing.T) {
	t.Parallel()

	endpoint := func(extra string) string {
		return base + "endpoints:\n  - name: a\n    url: https://a.example.com\n    secret: " + testSecret + "\n" + extra
	}

	tests := []struct {
		name string
		yaml string
		env  map[string]string
		want []string // each a full line of the error
	}{
		{
			name: "UnknownTopLevelKey",
			yaml: base + "databse:\n  url: x\n",
			want: []string{`herald.yaml:3: databse: unknown key (did you mean "database"?)`},
		},
		{
			name: "UnknownNestedKey",
			yaml: base + "  max_con: 8\nrelay:\n  bogus: 1\n",
			want: []string{
				`herald.yaml:3: database.max_con: unknown key (did you mean "max_conns"?)`,
				`herald.yaml:5: relay.bogus: unknown key`,
			},
		},
		{
			name: "UnknownEndpointKey",
			yaml: endpoint("    tls:\n      min_versoin: \"1.3\"\n"),
			want: []string{`herald.yaml:8: endpoints[0].tls.min_versoin: unknown key (did you mean "min_version"?)`},
		},
		{
			name: "DuplicateKey",
			yaml: base + "log:\n  level: info\n  level: debug\n",
			want: []string{`herald.yaml:5: invalid YAML: mapping key "level" already defined at [4:3]`},
		},
		{
			name: "BadDuration",
			yaml: base + "relay:\n  lease: 60\n  poll_interval: soon\n",
			want: []string{
				`herald.yaml:4: relay.lease: must be a duration with a unit, like "500ms", "15s" or "1h30m" (got "60")`,
				`herald.yaml:5: relay.poll_interval: must be a duration with a unit, like "500ms", "15s" or "1h30m" (got "soon")`,
			},
		},
		{
			name: "HeartbeatTimeoutTooShort",
			yaml: base + "relay:\n  heartbeat_interval: 1s\n  heartbeat_timeout: 2s\n",
			want: []string{
				`herald.yaml:5: relay.heartbeat_timeout: must be at least 3 x relay.heartbeat_interval and 500ms + 2 x relay.heartbeat_interval (3s) (got "2s")`,
			},
		},
		{
			name: "DurationNotScalar",
			yaml: base + "delivery:\n  timeout: [1s]\n",
			want: []string{`herald.yaml:4: delivery.timeout: must be a duration like "15s" or "1h30m", not a list`},
		},
		{
			name: "OutOfRange",
			yaml: base + "  max_conns: 2\ndelivery:\n  max_response_bytes: 10\n  timeout: 10m\nrelay:\n  max_in_flight: 0\n  ack_batch: 10001\n  ack_interval: 2s\n  shutdown_timeout: 11m\nretry:\n  multiplier: 0.5\n  randomization_factor: 1.5\n  max_attempts: -1\n  initial_interval: 2h\n  max_elapsed_time: 0s\nmaintenance:\n  dead_retention: -1h\n",
			want: []string{
				`herald.yaml:3: database.max_conns: must be at least 4 (got "2")`,
				`herald.yaml:5: delivery.max_response_bytes: must be between 1024 and 10485760 (got "10")`,
				`herald.yaml:6: delivery.timeout: must be between 1s and 5m (got "10m")`,
				// lease (60s, the default) is not in the file: its parent's line.
				`herald.yaml:7: relay.lease: must be at least delivery.timeout (10m) + 5s = 10m5s (got "1m")`,
				`herald.yaml:8: relay.max_in_flight: must be between 1 and 10000 (got "0")`,
				`herald.yaml:9: relay.ack_batch: must be between 1 and 10000 (got "10001")`,
				`herald.yaml:10: relay.ack_interval: must be between 1ms and 1s (got "2s")`,
				`herald.yaml:11: relay.shutdown_timeout: must be between 1s and 10m (got "11m")`,
				`herald.yaml:13: retry.multiplier: must be at least 1 (got "0.5")`,
				`herald.yaml:14: retry.randomization_factor: must be between 0 and 1 (got "1.5")`,
				`herald.yaml:15: retry.max_attempts: must be 0 (no limit) or more (got "-1")`,
				`herald.yaml:17: retry.max_elapsed_time: must be greater than 0 (got "0s")`,
				`herald.yaml:19: maintenance.dead_retention: must be 0 (keep forever) or more (got "-1h")`,
				// max_interval (1h, the default) is not in the file: its parent's line.
				`herald.yaml:12: retry.max_interval: must be at least retry.initial_interval (2h) (got "1h")`,
			},
		},
		{
			name: "WrongTypes",
			yaml: base + "  max_conns: eight\nrelay:\n  listen: yes\nretry:\n  multiplier: .inf\ndelivery:\n  allowed_cidrs: 10.0.0.0/8\n",
			want: []string{
				`herald.yaml:3: database.max_conns: must be an integer (got "eight")`,
				`herald.yaml:5: relay.listen: must be true or false (got "yes")`,
				`herald.yaml:7: retry.multiplier: must be a number (got ".inf")`,
				`herald.yaml:9: delivery.allowed_cidrs: must be a list, not a string`,
			},
		},
		{
			name: "BadEnums",
			yaml: base + "log:\n  level: verbose\n  format: text\n" + "endpoints:\n  - name: a\n    url: https://a\n    secret: " + testSecret + "\n    tls: {min_version: \"1.1\"}\n",
			want: []string{
				`herald.yaml:4: log.level: must be one of debug, info, warn, error (got "verbose")`,
				`herald.yaml:5: log.format: must be json or console (got "text")`,
				`herald.yaml:10: endpoints[0].tls.min_version: must be "1.2" or "1.3" (or empty for 1.2) (got "1.1")`,
			},
		},
		{
			name: "BadURL",
			yaml: base + "endpoints:\n  - name: a\n    url: ftp://x\n    secret: " + testSecret + "\n  - name: b\n    url: /relative\n    secret: " + testSecret + "\n  - name: c\n    url: https://user:hunter2@\n    secret: " + testSecret + "\n  - name: d\n    secret: " + testSecret + "\n",
			want: []string{
				`herald.yaml:5: endpoints[0].url: must be an absolute http or https URL (got "ftp://x")`,
				`herald.yaml:8: endpoints[1].url: must be an absolute http or https URL (got "/relative")`,
				`herald.yaml:11: endpoints[2].url: must be an absolute http or https URL (got "https://redacted@")`,
				`herald.yaml:13: endpoints[3].url: required`,
			},
		},
		{
			name: "EndpointName",
			yaml: base + "endpoints:\n  - name: billing\n    url: https://a\n    secret: " + testSecret + "\n  - name: billing\n    url: https://b\n    secret: " + testSecret + "\n  - name: Bad Name\n    url: https://c\n    secret: " + testSecret + "\n  - url: https://d\n    secret: " + testSecret + "\n",
			want: []string{
				`herald.yaml:7: endpoints[1].name: duplicate of endpoints[0].name (got "billing")`,
				`herald.yaml:10: endpoints[2].name: must match ^[a-z0-9][a-z0-9_.-]{0,62}$ (got "Bad Name")`,
				`herald.yaml:13: endpoints[3].name: required`,
			},
		},
		{
			name: "SecretAndSecrets",
			yaml: endpoint("    secrets: [" + testSecret2 + "]\n"),
			want: []string{`herald.yaml:7: endpoints[0].secrets: set secret or secrets, not both`},
		},
		{
			name: "NoSecret",
			yaml: base + "endpoints:\n  - name: a\n    url: https://a\n",
			want: []string{`herald.yaml:4: endpoints[0].secret: required (or secrets, during a rotation)`},
		},
		{
			name: "LeaseShorterThanTimeout",
			yaml: endpoint("    timeout: 2m\n") + "relay:\n  lease: 90s\n",
			want: []string{`herald.yaml:9: relay.lease: must be at least endpoints[0].timeout (2m) + 5s = 2m5s (got "1m30s")`},
		},
		{
			name: "LeaseShorterThanDeliveryTimeout",
			yaml: base + "delivery:\n  timeout: 60s\n",
			want: []string{`herald.yaml: relay.lease: must be at least delivery.timeout (1m) + 5s = 1m5s (got "1m")`},
		},
		{
			name: "ReservedAndInvalidHeaders",
			yaml: endpoint("    headers:\n      content-type: text/plain\n      Webhook-Signature: x\n      \"X Bad\": y\n      X-Ok: \"a\\nb\"\n      x-ok: dup\n"),
			want: []string{
				`herald.yaml:8: endpoints[0].headers.content-type: header is set by Herald and cannot be overridden (got "content-type")`,
				`herald.yaml:9: endpoints[0].headers.Webhook-Signature: header is set by Herald and cannot be overridden (got "Webhook-Signature")`,
				"herald.yaml:10: endpoints[0].headers.X Bad: header name must be an HTTP token (letters, digits and !#$%&'*+-.^_`|~) (got \"X Bad\")",
				`herald.yaml:11: endpoints[0].headers.X-Ok: header value must not contain control characters`,
				`herald.yaml:12: endpoints[0].headers.x-ok: duplicate of header "X-Ok" (names ignore case) (got "x-ok")`,
			},
		},
		{
			name: "PermanentStatuses",
			yaml: endpoint("    permanent_statuses: [400, 410, 429, 500, 400]\n"),
			want: []string{
				`herald.yaml:7: endpoints[0].permanent_statuses[1]: 410 Gone is always final; remove it (got "410")`,
				`herald.yaml:7: endpoints[0].permanent_statuses[2]: 429 Too Many Requests is always retried; remove it (got "429")`,
				`herald.yaml:7: endpoints[0].permanent_statuses[3]: must be a 4xx status (400..499) (got "500")`,
				`herald.yaml:7: endpoints[0].permanent_statuses[4]: duplicate status (got "400")`,
			},
		},
		{
			name: "EndpointLimits",
			yaml: endpoint("    max_in_flight: 0\n    timeout: 0s\n    topics: [\"a\", \"\"]\n"),
			want: []string{
				`herald.yaml:7: endpoints[0].max_in_flight: must be between 1 and 10000 (got "0")`,
				`herald.yaml:8: endpoints[0].timeout: must be between 1s and 5m (got "0s")`,
				`herald.yaml:9: endpoints[0].topics[1]: must not be empty`,
			},
		},
		{
			name: "OrderingAndRateLimit",
			yaml: endpoint("    ordered: maybe\n    on_dead: drop\n    rate_limit: -1\n    rate_burst: -2\n    disabled: 1\n"),
			want: []string{
				`herald.yaml:7: endpoints[0].ordered: must be true or false (got "maybe")`,
				`herald.yaml:8: endpoints[0].on_dead: must be block or skip (got "drop")`,
				`herald.yaml:9: endpoints[0].rate_limit: must be between 0 (unlimited) and 1e+06 (got "-1")`,
				`herald.yaml:10: endpoints[0].rate_burst: must be between 0 (max(1, ceil(rate_limit))) and 1000000 (got "-2")`,
				`herald.yaml:11: endpoints[0].disabled: must be true or false (got "1")`,
			},
		},
		{
			name: "RateBurstWithoutRateLimit",
			yaml: endpoint("    rate_burst: 5\n  - name: b\n    url: https://b\n    secret: " + testSecret + "\n    rate_limit: 1e7\n    rate_burst: 1000001\n"),
			want: []string{
				`herald.yaml:7: endpoints[0].rate_burst: must be 0 when rate_limit is 0 (unlimited) (got "5")`,
				`herald.yaml:11: endpoints[1].rate_limit: must be between 0 (unlimited) and 1e+06 (got "1e+07")`,
				`herald.yaml:12: endpoints[1].rate_burst: must be between 0 (max(1, ceil(rate_limit))) and 1000000 (got "1000001")`,
			},
		},
		{
			name: "Breaker",
			yaml: base + "breaker:\n  failure_threshold: -1\n  probe_interval: 10ms\n  max_probe_interval: 5ms\n  disable_after: -1s\nrelay:\n  endpoint_refresh: 6m\n",
			want: []string{
				`herald.yaml:4: breaker.failure_threshold: must be between 0 and 1000000 (got "-1")`,
				`herald.yaml:5: breaker.probe_interval: must be between 100ms and 1h (got "10ms")`,
				`herald.yaml:6: breaker.max_probe_interval: must be at least breaker.probe_interval (10ms) (got "5ms")`,
				`herald.yaml:7: breaker.disable_after: must be 0 (never) or more (got "-1s")`,
				`herald.yaml:9: relay.endpoint_refresh: must be between 100ms and 5m (got "6m")`,
			},
		},
		{
			name: "MaxInFlightBytesTooSmall",
			yaml: base + "relay:\n  max_in_flight_bytes: 1000\n",
			want: []string{`herald.yaml:4: relay.max_in_flight_bytes: must be between 1048576 (1 MiB) and 4294967296 (4 GiB) (got "1000")`},
		},
		{
			name: "MaxEndpointSeriesZero",
			yaml: base + "metrics:\n  max_endpoint_series: 0\n",
			want: []string{`herald.yaml:4: metrics.max_endpoint_series: must be at least 1, or -1 for no bound (got "0")`},
		},
		{
			// 0 used to pass and then become the relay's 30s default.
			name: "ShutdownTimeoutZero",
			yaml: base + "relay:\n  shutdown_timeout: 0s\n",
			want: []string{`herald.yaml:4: relay.shutdown_timeout: must be between 1s and 10m (got "0s")`},
		},
		{
			name: "BreakerLimits",
			yaml: base + "breaker:\n  failure_threshold: 0\n  probe_interval: 2h\n  max_probe_interval: 25h\n  disable_after: 1h\nrelay:\n  endpoint_refresh: 0s\n",
			want: []string{
				`herald.yaml:5: breaker.probe_interval: must be between 100ms and 1h (got "2h")`,
				`herald.yaml:6: breaker.max_probe_interval: must be between 2h and 24h (got "25h")`,
				`herald.yaml:7: breaker.disable_after: needs breaker.failure_threshold above 0: with no breaker an endpoint is never disabled (got "1h")`,
				`herald.yaml:9: relay.endpoint_refresh: must be between 100ms and 5m (got "0s")`,
			},
		},
		{
			name: "TLSFiles",
			yaml: endpoint("    tls:\n      ca_file: /nonexistent/ca.pem\n      cert_file: /nonexistent/cert.pem\n"),
			want: []string{
				`herald.yaml:8: endpoints[0].tls.ca_file: file does not exist or cannot be read (got "/nonexistent/ca.pem")`,
				`herald.yaml:9: endpoints[0].tls.cert_file: file does not exist or cannot be read (got "/nonexistent/cert.pem")`,
				`herald.yaml:7: endpoints[0].tls.key_file: cert_file and key_file must be set together`,
			},
		},
		{
			name: "BadCIDR",
			yaml: base + "delivery:\n  allowed_cidrs:\n    - 10.0.0.0/8\n    - 10.0.0.0/33\n    - not-a-cidr\n",
			want: []string{
				`herald.yaml:6: delivery.allowed_cidrs[1]: must be a CIDR like "10.0.0.0/8" or "fd00::/8" (got "10.0.0.0/33")`,
				`herald.yaml:7: delivery.allowed_cidrs[2]: must be a CIDR like "10.0.0.0/8" or "fd00::/8" (got "not-a-cidr")`,
			},
		},
		{
			name: "BadCron",
			yaml: base + "maintenance:\n  schedule: \"61 * * * *\"\n",
			want: []string{`herald.yaml:4: maintenance.schedule: must be a cron spec like "0 3 * * *", "@daily" or "@every 1h": `},
		},
		{
			name: "BadCronTZ",
			yaml: base + "maintenance:\n  schedule: \"TZ=UTC\"\n",
			want: []string{`herald.yaml:4: maintenance.schedule: must be a cron spec like "0 3 * * *", "@daily" or "@every 1h": malformed cron spec (got "TZ=UTC")`},
		},
		{
			name: "BadHistory",
			yaml: base + "history:\n  attempts: some\n  retention: 30m\n",
			want: []string{
				`herald.yaml:4: history.attempts: must be all, failures or off (got "some")`,
				`herald.yaml:5: history.retention: must be at least 1h, like "168h" (7 days) (got "30m")`,
			},
		},
		{
			name: "BadMetricsListen",
			yaml: base + "metrics:\n  listen: localhost\n",
			want: []string{`herald.yaml:4: metrics.listen: must be host:port, like ":9090" or "127.0.0.1:9090", or empty to turn metrics off (got "localhost")`},
		},
		{
			name: "BadMetricsQueueInterval",
			yaml: base + "metrics:\n  queue_interval: 100ms\n",
			want: []string{`herald.yaml:4: metrics.queue_interval: must be between 1s and 1h (got "100ms")`},
		},
		{
			name: "BadFormat",
			yaml: base + "endpoints:\n  - name: a\n    url: https://a.example.com/\n    secret: " + testSecret + "\n    format: cloudevents\n    cloudevents_source: \"a b\"\n",
			want: []string{
				`herald.yaml:7: endpoints[0].format: "cloudevents" is not a format: use standard-webhooks, cloudevents-binary or cloudevents-structured (got "cloudevents")`,
				`herald.yaml:8: endpoints[0].cloudevents_source: must be a URI-reference, like /shop/orders or https://shop.example.com (got "a b")`,
			},
		},
		{
			name: "BadTracing",
			yaml: base + "tracing:\n  exporter: jaeger\n  endpoint: ftp://collector:4317\n  sample_ratio: 1.5\n",
			want: []string{
				`herald.yaml:4: tracing.exporter: must be "none", "otlp-grpc" or "otlp-http" (got "jaeger")`,
				`herald.yaml:5: tracing.endpoint: must be an http:// or https:// URL, like "http://otel-collector:4317" (got "ftp://collector:4317")`,
				`herald.yaml:6: tracing.sample_ratio: must be from 0 to 1 (got "1.5")`,
			},
		},
		{
			name: "MissingDatabaseURL",
			yaml: "log:\n  level: info\n",
			want: []string{`herald.yaml: database.url: required (set it here or in DATABASE_URL)`},
		},
		{
			name: "UndefinedVariable",
			yaml: base + "log:\n  level: ${LOG_LEVEL}\n",
			want: []string{`herald.yaml:4: log.level: environment variable LOG_LEVEL is not set`},
		},
		{
			name: "UnterminatedVariable",
			yaml: base + "log:\n  level: ${LOG_LEVEL\n",
			want: []string{`herald.yaml:4: log.level: unterminated ${ (write $${ for a literal ${)`},
		},
		{
			name: "InvalidVariableName",
			yaml: base + "log:\n  level: ${1X}\n",
			want: []string{`herald.yaml:4: log.level: invalid ${...}: the name must match [A-Za-z_][A-Za-z0-9_]* (write $${ for a literal ${)`},
		},
		{
			name: "NotAMapping",
			yaml: "- a\n- b\n",
			want: []string{`herald.yaml:1: must be a mapping, not a list`},
		},
		{
			name: "SyntaxError",
			yaml: "database:\n  url: [unclosed\n",
			want: []string{`herald.yaml:2: invalid YAML: `},
		},
		{
			name: "TwoDocuments",
			yaml: base + "---\nlog:\n  level: info\n",
			want: []string{`herald.yaml:4: only one YAML document is allowed`},
		},
		{
			name: "MergeKey",
			yaml: base + "log: &l\n  level: info\nmetrics:\n  <<: *l\n",
			want: []string{`herald.yaml:6: metrics: merge keys (<<) are not supported; use an alias (*name) on a whole value instead`},
		},
		{
			name: "UnknownAlias",
			yaml: base + "log:\n  level: *nope\n",
			want: []string{`herald.yaml:4: log.level: alias *nope refers to no anchor defined before it`},
		},
		{
			name: "BadDatabaseURLFromEnv",
			yaml: base,
			env:  map[string]string{"DATABASE_URL": "mysql://root:pw@h/db"},
			want: []string{`$DATABASE_URL: database.url: must be a postgres:// or postgresql:// URL or a key=value connection string (value not shown)`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := parseErr(t, tt.yaml, tt.env)
			lines := strings.Split(err.Error(), "\n")
			require.Len(t, lines, len(tt.want), "got:\n%s", err)
			for _, w := range tt.want {
				found := false
				for _, l := range lines {
					if l == w || (strings.HasSuffix(w, ": ") && strings.HasPrefix(l, w)) {
						found = true
					}
				}
				require.True(t, found, "want line %q in:\n%s", w, err)
			}
			for _, p := range err.Problems {
				require.NotEmpty(t, p.File)
				require.Error(t, p.Err)
			}
		})
	}
}

func TestSecretsNeverInErrors(t *testing.T) {
	t.Parallel()

	leaks := []string{
		"whsec_c2hvcnQ=",                      // too short
		"whsec_!!!notbase64hunter2!!!",        // not base64
		"sk_live_hunter2hunter2hunter2",       // wrong prefix
		"whsec_${hunter2 with spaces}",        // bad variable name
		"whsec_" + strings.Repeat("QUFB", 30), // too long
	}
	for i, secret := range leaks {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			vars := map[string]string{"S": secret, "DATABASE_URL": "mysql://root:" + secret + "@h/db"}
			for _, yaml := range []string{
				base + "endpoints:\n  - name: a\n    url: https://a\n    secret: ${S}\n",
				base + "endpoints:\n  - name: a\n    url: https://a\n    secret: '" + secret + "'\n",
				base + "endpoints:\n  - name: a\n    url: https://a\n    secrets: ['" + secret + "', '" + secret + "']\n",
				base + "endpoints:\n  - name: a\n    url: https://a\n    secret: " + testSecret + "\n    headers: {Authorization: \"" + secret + "\\r\\n\"}\n",
			} {
				err := parseErr(t, yaml, vars)
				require.NotContains(t, err.Error(), secret)
				require.NotContains(t, err.Error(), "hunter2")
				require.NotContains(t, fmt.Sprintf("%+v %#v", err, err), "hunter2")
			}
		})
	}
}

// A token or password in an endpoint URL is never in an error, whether the
// URL does not parse (url.Parse's errors quote it, or the password taken for
// a port) or parses but is refused.
func TestURLSecretsNeverInErrors(t *testing.T) {
	t.Parallel()
	for _, u := range []string{
		"https://user:hunter2/hook",                  // no host: the password is the port
		"https://user:hunter2@exa mple.com/hook",     // bad host
		"https://example.com/hook%zz?token=hunter2",  // bad escape
		"https://example.com/hook?token=hunter2\x7f", // control character
		"ftp://user:hunter2@example.com/x?token=hunter2",
		"https://hunter2@/x?token=hunter2",
		"//user:hunter2@example.com/x?token=hunter2",
		"https:hunter2?token=hunter2",
	} {
		yaml := base + "endpoints:\n  - name: a\n    url: \"" + u + "\"\n    secret: " + testSecret + "\n"
		err := parseErr(t, yaml, nil)
		require.Contains(t, err.Error(), "endpoints[0].url: must be an absolute http or https URL", u)
		require.NotContains(t, fmt.Sprintf("%v %+v %#v", err, err, err), "hunter2", u)

		verr := ValidateEndpoint(Endpoint{Name: "a", URL: strings.ReplaceAll(u, "\\x7f", "\x7f"), Secret: Secret(testSecret)}, Delivery{})
		require.Error(t, verr, u)
		require.NotContains(t, fmt.Sprintf("%v %+v %#v", verr, verr, verr), "hunter2", u)
	}
}

func TestSecretFormatting(t *testing.T) {
	t.Parallel()

	s := Secret("hunter2")
	require.Equal(t, "hunter2", s.Value())
	cfg := Default()
	cfg.Database.URL = s
	cfg.Endpoints = []Endpoint{{Secret: s, Secrets: []Secret{s}, Headers: map[string]Secret{"Authorization": s}}}
	for _, format := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%10s"} {
		for _, v := range []any{s, cfg, *cfg, cfg.Endpoints, []Secret{s}} {
			out := fmt.Sprintf(format, v)
			require.NotContains(t, out, "hunter2", format)
			require.NotContains(t, out, "68756e74657232", format) // hex of hunter2
			require.Contains(t, out, "[redacted]", format)
		}
	}
	text, err := s.MarshalText()
	require.NoError(t, err)
	require.Equal(t, "[redacted]", string(text))
	require.Equal(t, `config.Secret("[redacted]")`, fmt.Sprintf("%#v", s))
}

func TestEnvExpansion(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name  string
		value string // YAML text after "user_agent: "
		env   map[string]string
		want  string
	}{
		{"Plain", "agent", nil, "agent"},
		{"Variable", "${UA}", map[string]string{"UA": "x/1"}, "x/1"},
		{"Embedded", "pre-${A}-${B}-post", map[string]string{"A": "1", "B": "2"}, "pre-1-2-post"},
		{"EscapedDollarBrace", "$${NOT_A_VAR}", nil, "${NOT_A_VAR}"},
		{"EscapeThenVariable", "$${A}${A}", map[string]string{"A": "x"}, "${A}x"},
		{"LoneDollars", "$A $ $$ {A}", nil, "$A $ $$ {A}"},
		{"Quoted", `"${A}"`, map[string]string{"A": "q"}, "q"},
		{"SingleQuoted", `'${A}'`, map[string]string{"A": "q"}, "q"},
		{"ValueIsNotReExpanded", "${A}", map[string]string{"A": "${B}"}, "${B}"},
		// A value cannot inject YAML structure: it stays one string.
		{"NoInjection", "${A}", map[string]string{"A": "x\nlog:\n  level: debug"}, "x\nlog:\n  level: debug"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := Parse([]byte(base+"delivery:\n  user_agent: "+tt.value+"\n"), "herald.yaml", env(tt.env))
			if tt.name == "NoInjection" {
				// The newline is refused as a header value, but log.level
				// was not touched.
				require.ErrorContains(t, err, "delivery.user_agent: must not contain control characters")
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, cfg.Delivery.UserAgent)
		})
	}

	t.Run("NoInjectionIntoKeys", func(t *testing.T) {
		t.Parallel()
		cfg, err := Parse([]byte(base+"log:\n  format: ${F}\n"), "herald.yaml",
			env(map[string]string{"F": "json\n  level: debug"}))
		require.ErrorContains(t, err, `log.format: must be json or console (got "json\n  level: debug")`)
		require.Nil(t, cfg)
	})

	t.Run("ExpandsIntoTypedValues", func(t *testing.T) {
		t.Parallel()
		cfg, err := Parse([]byte(base+"  max_conns: ${N}\nrelay:\n  listen: ${L}\n  lease: ${D}\nretry:\n  multiplier: ${M}\n"), "herald.yaml",
			env(map[string]string{"N": "12", "L": "false", "D": "2m", "M": "1.5"}))
		require.NoError(t, err)
		require.Equal(t, 12, cfg.Database.MaxConns)
		require.False(t, cfg.Relay.Listen)
		require.Equal(t, 2*time.Minute, cfg.Relay.Lease)
		require.InEpsilon(t, 1.5, cfg.Retry.Multiplier, 0)
	})

	t.Run("EmptyButSetVariable", func(t *testing.T) {
		t.Parallel()
		lookup := func(k string) (string, bool) {
			m := map[string]string{"UA": "", "DATABASE_URL": ""}
			v, ok := m[k]
			return v, ok
		}
		cfg, err := ParseLookupEnv([]byte(base+"delivery:\n  user_agent: \"${UA}\"\n"), "herald.yaml", lookup)
		require.NoError(t, err)
		require.Empty(t, cfg.Delivery.UserAgent)
		require.Equal(t, "postgres://app@db/app", cfg.Database.URL.Value(), "an empty DATABASE_URL does not override")

		_, err = ParseLookupEnv([]byte(base+"delivery:\n  user_agent: \"${UNSET}\"\n"), "herald.yaml", lookup)
		require.EqualError(t, err, "herald.yaml:4: delivery.user_agent: environment variable UNSET is not set")
	})
}

func TestDatabaseURLOverride(t *testing.T) {
	t.Parallel()

	vars := map[string]string{"DATABASE_URL": "postgres://override@h/db"}
	for _, yaml := range []string{
		base,
		"database:\n  url: ${UNSET_IS_FINE_WHEN_OVERRIDDEN}\n",
		"database:\n  max_conns: 4\n",
		"",
	} {
		cfg, err := Parse([]byte(yaml), "herald.yaml", env(vars))
		require.NoError(t, err, yaml)
		require.Equal(t, "postgres://override@h/db", cfg.Database.URL.Value())
	}
}

func TestSeveralErrorsTogether(t *testing.T) {
	t.Parallel()

	err := parseErr(t, `
database:
  url: postgres://x@h/db
  pool: 3
relay:
  lease: 1s
retry:
  multiplier: 0
endpoints:
  - name: a
    url: ftp://a
    secret: whsec_nope
`, nil)
	require.Len(t, err.Problems, 5)
	require.Equal(t, []int{4, 6, 8, 11, 12}, []int{
		err.Problems[0].Line, err.Problems[1].Line, err.Problems[2].Line, err.Problems[3].Line, err.Problems[4].Line,
	})
	require.Equal(t, "relay.lease", err.Problems[1].Field)
	require.Equal(t, "1s", err.Problems[1].Value)

	// errors.As reaches each *FieldError.
	var fe *FieldError
	require.ErrorAs(t, err, &fe)
	require.Equal(t, "database.pool", fe.Field)
	require.True(t, errors.Is(err, fe))
}

func TestAnchorsAndAliases(t *testing.T) {
	t.Parallel()

	cfg, err := Parse([]byte(base+`
endpoints:
  - name: a
    url: https://a.example.com
    secret: `+testSecret+`
    topics: &topics ["orders.*"]
    headers: &headers {X-Env: prod}
  - name: b
    url: https://b.example.com
    secret: `+testSecret2+`
    topics: *topics
    headers: *headers
`), "herald.yaml", env(nil))
	require.NoError(t, err)
	require.Equal(t, cfg.Endpoints[0].Topics, cfg.Endpoints[1].Topics)
	require.Equal(t, cfg.Endpoints[0].Headers, cfg.Endpoints[1].Headers)
}

func TestWarnings(t *testing.T) {
	t.Parallel()

	cfg, err := Parse([]byte(base+`relay:
  max_in_flight: 10
endpoints:
  - name: a
    url: http://a.example.com
    secret: `+testSecret+`
    max_in_flight: 20
    on_dead: skip
`), "herald.yaml", env(nil))
	require.NoError(t, err)
	require.Equal(t, []string{
		"herald.yaml:7: endpoints[0].url: plain http: requests and their signatures are sent unencrypted",
		"herald.yaml:6: endpoints[0].topics: no topics: the endpoint receives only messages that name it",
		"herald.yaml:10: endpoints[0].on_dead: has no effect unless ordered is true",
		"herald.yaml:9: endpoints[0].max_in_flight: 20 is more than relay.max_in_flight (10), which caps it",
	}, cfg.Warnings())
}

func TestTLSPathsRelativeToFile(t *testing.T) {
	t.Parallel()

	dir := t.TempDir()
	for _, f := range []string{"ca.pem", "cert.pem", "key.pem"} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o600))
	}
	path := filepath.Join(dir, "herald.yaml")
	require.NoError(t, os.WriteFile(path, []byte(base+`endpoints:
  - name: a
    url: https://a.example.com
    secret: `+testSecret+`
    topics: ["*"]
    tls: {ca_file: ca.pem, cert_file: cert.pem, key_file: key.pem, min_version: "1.3"}
`), 0o600))
	cfg, err := Load(path, env(nil))
	require.NoError(t, err)
	require.Equal(t, filepath.Join(dir, "ca.pem"), cfg.Endpoints[0].TLS.CAFile)
	require.Equal(t, filepath.Join(dir, "key.pem"), cfg.Endpoints[0].TLS.KeyFile)
	require.Equal(t, uint16(0x0304), cfg.Endpoints[0].TLS.MinTLSVersion())

	_, err = Load(filepath.Join(dir, "missing.yaml"), env(nil))
	require.ErrorIs(t, err, os.ErrNotExist)
}

func TestParseSchedule(t *testing.T) {
	t.Parallel()

	s, err := Default().Maintenance.ParseSchedule()
	require.NoError(t, err)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	require.Equal(t, now.Add(time.Hour), s.Next(now))
}

// TestRelayConfigGivesZeroTheFilesMeaning: the one mapping from the file to
// the relay library turns the file's "0 = off" into the library's own "off".
func TestRelayConfigGivesZeroTheFilesMeaning(t *testing.T) {
	c := Default()
	c.Breaker.FailureThreshold = 0
	c.Relay.VacuumThreshold = 0
	rc := c.RelayConfig()
	require.Equal(t, relay.BreakerOff, rc.Breaker.FailureThreshold)
	require.Negative(t, rc.VacuumThreshold)

	d := Default().RelayConfig()
	require.Equal(t, relay.BreakerFailureThresholdDefault, d.Breaker.FailureThreshold)
	require.Equal(t, relay.VacuumThresholdDefault, d.VacuumThreshold)
	require.Equal(t, relay.DefaultRetryPolicy(), d.Retry)
	require.Equal(t, relay.MaxInFlightBytesDefault, int(d.MaxInFlightBytes))
	require.Equal(t, relay.HistoryConfig{Attempts: relay.HistoryAttemptsDefault, Retention: relay.HistoryRetentionDefault}, d.History)

	c = Default()
	c.History = History{Attempts: HistoryAttemptsFailures, Messages: true, Retention: 48 * time.Hour}
	require.Equal(t, relay.HistoryConfig{Attempts: relay.AttemptLogFailures, Messages: true, Retention: 48 * time.Hour}, c.RelayConfig().History)
}
