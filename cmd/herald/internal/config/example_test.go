package config_test

import (
	"errors"
	"fmt"

	"github.com/herald-relay/herald/cmd/herald/internal/config"
)

func ExampleParse() {
	env := map[string]string{
		"BILLING_WEBHOOK_SECRET": "whsec_MDEyMzQ1Njc4OWFiY2RlZmdoaWprbG1u",
		"DATABASE_URL":           "postgres://herald:s3cret@db:5432/app",
	}
	getenv := func(name string) string { return env[name] }

	cfg, err := config.Parse([]byte(`
relay:
  lease: 2m
endpoints:
  - name: billing
    url: https://billing.example.com/webhooks
    secret: ${BILLING_WEBHOOK_SECRET}
    topics: ["orders.*"]
    timeout: 30s
`), "herald.yaml", getenv)
	if err != nil {
		fmt.Println(err)
		return
	}
	e := cfg.Endpoints[0]
	fmt.Println(e.Name, e.URL, e.Topics, e.Timeout, e.MaxInFlight, e.PermanentStatuses)
	fmt.Println("secret:", e.Secret, "database:", cfg.Database.URL)
	fmt.Println("lease:", cfg.Relay.Lease, "poll:", cfg.Relay.PollInterval, "max_in_flight:", cfg.Relay.MaxInFlight)

	// Every problem is reported at once, each with its line; secrets are
	// never shown.
	_, err = config.Parse([]byte(`
database:
  url: postgres://localhost/app
  max_conns: 2
relay:
  lease: 60
endpoints:
  - name: billing
    url: ftp://billing.example.com
    secret: whsec_not-a-real-secret
    headers: {Content-Type: text/plain}
`), "herald.yaml", getenv)
	var cerr *config.Error
	fmt.Println(errors.As(err, &cerr), len(cerr.Problems))
	fmt.Println(err)
	// Output:
	// billing https://billing.example.com/webhooks [orders.*] 30s 64 [400 413 422]
	// secret: [redacted] database: [redacted]
	// lease: 2m0s poll: 1s max_in_flight: 4096
	// true 5
	// herald.yaml:4: database.max_conns: must be at least 4 (got "2")
	// herald.yaml:6: relay.lease: must be a duration with a unit, like "500ms", "15s" or "1h30m" (got "60")
	// herald.yaml:9: endpoints[0].url: must be an absolute http or https URL (got "ftp://billing.example.com")
	// herald.yaml:10: endpoints[0].secret: must be "whsec_" followed by standard base64 (value not shown)
	// herald.yaml:11: endpoints[0].headers.Content-Type: header is set by Herald and cannot be overridden (got "Content-Type")
}
