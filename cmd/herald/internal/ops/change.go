package ops

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/herald-relay/herald/cmd/herald/internal/config"
)

// EndpointChange is a change to an endpoint's settings as a face takes it:
// the flags of `herald endpoints add` and `update`, or the JSON body of
// the admin API's create and update routes. Each non-nil field replaces
// the setting; a nil one keeps it. Its JSON keys are those of
// EndpointView, except that Secrets and Headers carry the values, which
// EndpointView never shows.
type EndpointChange struct {
	URL *string `json:"url,omitempty"`
	// Secrets replaces every signing secret, newest first.
	Secrets *[]config.Secret `json:"secrets,omitempty"`
	// Topics replaces the topic patterns; empty: none.
	Topics *[]string `json:"topics,omitempty"`
	// Headers replaces every static header; empty: none.
	Headers *map[string]config.Secret `json:"headers,omitempty"`
	// TimeoutMS is the time limit of one attempt; 0: delivery.timeout.
	TimeoutMS *int64 `json:"timeout_ms,omitempty"`
	// MaxInFlight caps concurrent requests; 0: the default.
	MaxInFlight *int     `json:"max_in_flight,omitempty"`
	RateLimit   *float64 `json:"rate_limit,omitempty"`
	RateBurst   *int     `json:"rate_burst,omitempty"`
	Ordered     *bool    `json:"ordered,omitempty"`
	OnDead      *string  `json:"on_dead,omitempty"`
	// PermanentStatuses replaces the 4xx statuses that are not retried;
	// empty: none.
	PermanentStatuses *[]int  `json:"permanent_statuses,omitempty"`
	FollowRedirects   *bool   `json:"follow_redirects,omitempty"`
	TLSCAFile         *string `json:"tls_ca_file,omitempty"`
	TLSCertFile       *string `json:"tls_cert_file,omitempty"`
	TLSKeyFile        *string `json:"tls_key_file,omitempty"`
	TLSMinVersion     *string `json:"tls_min_version,omitempty"`
	// Format is how requests are framed (webhook.Format*); "": the
	// default, standard-webhooks.
	Format            *string `json:"format,omitempty"`
	CloudEventsSource *string `json:"cloudevents_source,omitempty"`
}

// Apply sets on ep the settings c changes. It does not validate: see
// CheckEndpoint.
func (c EndpointChange) Apply(ep *Endpoint) {
	set := func(to *string, from *string) {
		if from != nil {
			*to = *from
		}
	}
	set(&ep.URL, c.URL)
	if c.Secrets != nil {
		ep.Secret, ep.Secrets = "", slices.Clone(*c.Secrets)
	}
	if c.Topics != nil {
		ep.Topics = nil
		if len(*c.Topics) > 0 {
			ep.Topics = slices.Clone(*c.Topics)
		}
	}
	if c.Headers != nil {
		ep.Headers = nil
		if len(*c.Headers) > 0 {
			ep.Headers = maps.Clone(*c.Headers)
		}
	}
	if c.TimeoutMS != nil {
		ep.Timeout = time.Duration(*c.TimeoutMS) * time.Millisecond
	}
	if c.MaxInFlight != nil {
		ep.MaxInFlight = *c.MaxInFlight
	}
	if c.RateLimit != nil {
		ep.RateLimit = *c.RateLimit
	}
	if c.RateBurst != nil {
		ep.RateBurst = *c.RateBurst
	}
	if c.Ordered != nil {
		ep.Ordered = *c.Ordered
	}
	set(&ep.OnDead, c.OnDead)
	if c.PermanentStatuses != nil {
		ep.PermanentStatuses = append([]int{}, *c.PermanentStatuses...) // non-nil: an empty list means none, nil the defaults
	}
	if c.FollowRedirects != nil {
		ep.FollowRedirects = *c.FollowRedirects
	}
	set(&ep.TLS.CAFile, c.TLSCAFile)
	set(&ep.TLS.CertFile, c.TLSCertFile)
	set(&ep.TLS.KeyFile, c.TLSKeyFile)
	set(&ep.TLS.MinVersion, c.TLSMinVersion)
	set(&ep.Format, c.Format)
	set(&ep.CloudEventsSource, c.CloudEventsSource)
}

// InvalidEndpointError is an endpoint that config.ValidateEndpoint
// refuses. Err is a *config.Error whose problems name bare fields ("url",
// "secrets[0]") and never a secret; errors.As finds it.
type InvalidEndpointError struct {
	Name string
	Err  error
}

func (e *InvalidEndpointError) Error() string {
	var cerr *config.Error
	if !errors.As(e.Err, &cerr) || len(cerr.Problems) == 1 {
		return fmt.Sprintf("endpoint %s: %v", e.Name, e.Err)
	}
	lines := make([]string, len(cerr.Problems))
	for i, p := range cerr.Problems {
		lines[i] = "  " + p.Error()
	}
	return fmt.Sprintf("endpoint %s has %d problems:\n%s", e.Name, len(lines), strings.Join(lines, "\n"))
}

func (e *InvalidEndpointError) Unwrap() error { return e.Err }

// CheckEndpoint validates ep as a relay with cfg would, before a face adds
// or updates it: err is an *InvalidEndpointError. warning is a problem
// that only this configuration has (a timeout its relay.lease cannot
// cover): the relays may run with another configuration than the face,
// so it does not stop the write. Neither ever holds a secret.
func CheckEndpoint(cfg *config.Config, ep Endpoint) (warning, err error) {
	if err := config.ValidateEndpoint(ep.Endpoint, cfg.Delivery); err != nil {
		return nil, &InvalidEndpointError{Name: ep.Name, Err: err}
	}
	if err := cfg.ValidateEndpoint(ep.Endpoint); err != nil {
		return fmt.Errorf("endpoint %s: %w (with this configuration)", ep.Name, err), nil
	}
	return nil, nil
}
