package config

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/herald-relay/herald/webhook"
)

// FuzzParse checks that Parse never panics or stalls, that it returns
// either a Config or an *Error whose every problem names the file, and that
// a Config it returns is valid and its endpoints are ones the webhook client
// builds (an endpoint it refused would be left out of routing).
func FuzzParse(f *testing.F) {
	example, err := os.ReadFile("../../../../config.example.yaml")
	if err != nil {
		f.Fatal(err)
	}
	seeds := []string{
		"",
		"{}",
		"[]",
		"~",
		"# only a comment\n",
		string(example),
		base,
		base + "---\n" + base,
		base + "log: {level: debug, format: console}\n",
		base + "relay:\n  lease: 1h30m\n  listen: false\n  shutdown_timeout: 0s\n",
		base + "retry:\n  multiplier: 1e308\n  randomization_factor: -0.0\n  max_attempts: 0x10\n",
		base + "delivery:\n  allowed_cidrs: [10.0.0.0/8, \"fd00::/8\", 300.1.1.1/8]\n",
		base + "endpoints:\n  - name: a\n    url: https://a\n    secret: ${S}\n    topics: [\"*\"]\n",
		base + "endpoints:\n  - name: a\n    url: https://a\n    secrets: [${S}, $${S}]\n",
		base + "endpoints:\n  - &e\n    name: a\n    url: https://a\n  - *e\n",
		base + "endpoints: [{name: a, url: 'http://[::1]:80/x', secret: \"" + testSecret + "\", headers: {X-A: \"1\"}}]\n",
		base + "endpoints:\n  - name: a\n    tls: {ca_file: \"\", cert_file: x, min_version: \"1.3\"}\n",
		base + "endpoints: [{name: a, url: https://a, secret: \"" + testSecret + "\", ordered: true, on_dead: skip, rate_limit: 0.5, rate_burst: 3, disabled: true}]\n",
		base + "breaker: {failure_threshold: 0, probe_interval: 100ms, max_probe_interval: 100ms, disable_after: 1h}\nrelay: {endpoint_refresh: 5m}\n",
		base + "endpoints: [{name: a, rate_limit: NaN, rate_burst: -1, on_dead: \"\"}]\n",
		base + "endpoints: [{name: a, url: 'https://a/#x', secret: \"" + testSecret + "\", headers: {Upgrade: h2c, te: trailers}}]\n",
		base + "endpoints: [{name: a, url: 'https://u:p@a:x/?t=s', secret: \"" + testSecret + "\"}]\n",
		base + "log: &a\n  level: *a\n",
		base + "x: &a [*a]\n",
		base + "metrics:\n  <<: {listen: \":1\"}\n",
		base + "maintenance:\n  schedule: \"TZ=Europe/Paris 0 3 * * *\"\n",
		base + "maintenance:\n  schedule: \"TZ=\"\n",
		base + "? complex\n: key\n",
		base + "!!map {log: !!str x}\n",
		base + "log:\n  level: |\n    debug\n",
		"database:\n  url: ${DATABASE\n",
		"\t\tdatabase: [\n",
		"database: \"\\u0000\"\n",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		getenv := func(k string) string {
			switch k {
			case "S":
				return testSecret
			case "E":
				return "a: [b"
			}
			return ""
		}
		start := time.Now()
		cfg, err := Parse(data, "fuzz.yaml", getenv)
		if d := time.Since(start); d > time.Second {
			t.Fatalf("took %v", d)
		}
		if err != nil {
			if cfg != nil {
				t.Fatalf("Parse returned both a Config and %v", err)
			}
			var cerr *Error
			if !errors.As(err, &cerr) || len(cerr.Problems) == 0 {
				t.Fatalf("Parse error is not a non-empty *Error: %#v", err)
			}
			for _, p := range cerr.Problems {
				if p.Err == nil || !strings.HasPrefix(p.Error(), "fuzz.yaml") && !strings.HasPrefix(p.Error(), "$DATABASE_URL") {
					t.Fatalf("malformed problem %#v", p)
				}
			}
			return
		}
		if cfg == nil {
			t.Fatal("Parse returned neither a Config nor an error")
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("Parse accepted a Config that Validate rejects: %v", err)
		}
		client := webhook.NewClient(webhook.ClientConfig{})
		for _, e := range cfg.Endpoints {
			if e.TLS != (EndpointTLS{MinVersion: e.TLS.MinVersion}) {
				continue // files that exist, but may not hold PEM
			}
			if _, err := client.Endpoint(e.WebhookConfig()); err != nil {
				t.Fatalf("Parse accepted endpoint %s, which the webhook client refuses: %v", e.Name, err)
			}
		}
	})
}
