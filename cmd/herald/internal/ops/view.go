package ops

import (
	"cmp"
	"slices"
	"time"

	"github.com/herald-relay/herald/webhook"
)

// EndpointView is an Endpoint as a face shows it (herald endpoints --json,
// an admin API): no signing secret, no header value, and the URL without
// its user info and query (webhook.RedactURL), which may hold credentials.
// Zero TimeoutMS and MaxInFlight and a nil PermanentStatuses mean the
// relay's defaults. Its keys are the columns of outbox.endpoints.
type EndpointView struct {
	Name string `json:"name"`
	URL  string `json:"url"`
	// Secrets is how many signing secrets the endpoint has.
	Secrets int      `json:"secrets"`
	Topics  []string `json:"topics"`
	// Headers are the names of its static headers, sorted.
	Headers           []string   `json:"headers"`
	TimeoutMS         int64      `json:"timeout_ms,omitempty"`
	MaxInFlight       int        `json:"max_in_flight,omitempty"`
	RateLimit         float64    `json:"rate_limit"`
	RateBurst         int        `json:"rate_burst"`
	Ordered           bool       `json:"ordered"`
	OnDead            string     `json:"on_dead,omitempty"`
	PermanentStatuses []int      `json:"permanent_statuses"`
	FollowRedirects   bool       `json:"follow_redirects"`
	TLSCAFile         string     `json:"tls_ca_file,omitempty"`
	TLSCertFile       string     `json:"tls_cert_file,omitempty"`
	TLSKeyFile        string     `json:"tls_key_file,omitempty"`
	TLSMinVersion     string     `json:"tls_min_version,omitempty"`
	Format            string     `json:"format"`
	CloudEventsSource string     `json:"cloudevents_source,omitempty"`
	Disabled          bool       `json:"disabled"`
	DisabledAt        *time.Time `json:"disabled_at,omitempty"`
	DisabledReason    string     `json:"disabled_reason,omitempty"`
	Source            Source     `json:"source"`
	CreatedAt         time.Time  `json:"created_at"`
	UpdatedAt         time.Time  `json:"updated_at"`
}

// View returns e as a face may show it.
func (e Endpoint) View() EndpointView {
	headers := make([]string, 0, len(e.Headers))
	for k := range e.Headers {
		headers = append(headers, k)
	}
	slices.Sort(headers)
	v := EndpointView{
		Name:              e.Name,
		URL:               webhook.RedactURL(e.URL),
		Secrets:           len(e.SigningSecrets()),
		Topics:            append([]string{}, e.Topics...),
		Headers:           headers,
		TimeoutMS:         e.Timeout.Milliseconds(),
		MaxInFlight:       e.MaxInFlight,
		RateLimit:         e.RateLimit,
		RateBurst:         e.RateBurst,
		Ordered:           e.Ordered,
		OnDead:            e.OnDead,
		PermanentStatuses: e.PermanentStatuses,
		FollowRedirects:   e.FollowRedirects,
		TLSCAFile:         e.TLS.CAFile,
		TLSCertFile:       e.TLS.CertFile,
		TLSKeyFile:        e.TLS.KeyFile,
		TLSMinVersion:     e.TLS.MinVersion,
		Format:            cmp.Or(e.Format, webhook.FormatDefault),
		CloudEventsSource: e.CloudEventsSource,
		Disabled:          e.Disabled,
		DisabledReason:    e.DisabledReason,
		Source:            e.Source,
		CreatedAt:         e.CreatedAt,
		UpdatedAt:         e.UpdatedAt,
	}
	if !e.DisabledAt.IsZero() {
		at := e.DisabledAt
		v.DisabledAt = &at
	}
	return v
}
