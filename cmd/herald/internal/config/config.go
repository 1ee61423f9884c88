package config

import (
	"cmp"
	"crypto/tls"
	"math"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/herald-relay/herald/relay"
	"github.com/herald-relay/herald/webhook"
)

// Defaults and limits. Each *Default is what a missing key means; *Min and
// *Max bound what a present key may hold (both inclusive). A default of a
// library setting is the library's own constant, defined once there.
const (
	DatabaseMaxConnsDefault = 8
	DatabaseMaxConnsMin     = 4

	LogLevelDefault  = "info"
	LogFormatDefault = "json"

	DeliveryMaxResponseBytesDefault = 64 << 10
	DeliveryMaxResponseBytesMin     = 1 << 10
	DeliveryMaxResponseBytesMax     = 10 << 20
	DeliveryTimeoutDefault          = 15 * time.Second
	DeliveryTimeoutMin              = time.Second
	DeliveryTimeoutMax              = 5 * time.Minute

	RelayMaxInFlightDefault       = relay.MaxInFlightDefault
	RelayMaxInFlightMin           = 1
	RelayMaxInFlightMax           = 10000
	RelayMaxInFlightBytesMin      = 1 << 20
	RelayMaxInFlightBytesMax      = 4 << 30
	RelayLeaseDefault             = relay.LeaseDefault
	RelayLeaseMargin              = relay.LeaseMargin // lease >= largest endpoint timeout + RelayLeaseMargin
	RelayPollIntervalDefault      = relay.PollIntervalDefault
	RelayPollIntervalMin          = 10 * time.Millisecond
	RelayPollIntervalMax          = time.Minute
	RelayListenDefault            = true
	RelayAckIntervalDefault       = relay.AckIntervalDefault
	RelayAckIntervalMin           = time.Millisecond
	RelayAckIntervalMax           = time.Second
	RelayAckBatchDefault          = relay.AckBatchDefault
	RelayAckBatchMin              = 1
	RelayAckBatchMax              = 10000
	RelayShutdownTimeoutDefault   = relay.ShutdownTimeoutDefault
	RelayShutdownTimeoutMin       = time.Second
	RelayShutdownTimeoutMax       = 10 * time.Minute
	RelayAsyncCommitDefault       = false
	RelayEndpointRefreshDefault   = 5 * time.Second
	RelayEndpointRefreshMin       = 100 * time.Millisecond
	RelayEndpointRefreshMax       = 5 * time.Minute
	RelayVacuumThresholdDefault   = relay.VacuumThresholdDefault
	RelayVacuumThresholdMax       = 100000000
	RelayHeartbeatIntervalDefault = relay.HeartbeatIntervalDefault
	RelayHeartbeatIntervalMin     = 10 * time.Millisecond
	RelayHeartbeatIntervalMax     = 10 * time.Second
	RelayHeartbeatTimeoutDefault  = relay.HeartbeatTimeoutDefault

	RetryInitialIntervalDefault     = relay.RetryInitialIntervalDefault
	RetryMultiplierDefault          = relay.RetryMultiplierDefault
	RetryMaxIntervalDefault         = relay.RetryMaxIntervalDefault
	RetryMaxElapsedTimeDefault      = relay.RetryMaxElapsedTimeDefault
	RetryMaxAttemptsDefault         = 0
	RetryRandomizationFactorDefault = relay.RetryRandomizationFactorDefault

	BreakerFailureThresholdDefault = relay.BreakerFailureThresholdDefault
	BreakerFailureThresholdMax     = 1000000
	BreakerProbeIntervalDefault    = relay.BreakerProbeIntervalDefault
	BreakerProbeIntervalMin        = 100 * time.Millisecond
	BreakerProbeIntervalMax        = time.Hour
	BreakerMaxProbeIntervalDefault = relay.BreakerMaxProbeIntervalDefault
	BreakerMaxProbeIntervalMax     = 24 * time.Hour
	BreakerDisableAfterDefault     = 0

	EndpointMaxInFlightDefault = relay.EndpointMaxInFlightDefault
	EndpointMaxInFlightMin     = 1
	EndpointMaxInFlightMax     = 10000
	EndpointRateLimitMax       = 1e6 // requests per second
	EndpointRateBurstMax       = 1000000

	// OnDeadBlock and OnDeadSkip are the values of endpoints[].on_dead.
	OnDeadBlock   = "block"
	OnDeadSkip    = "skip"
	OnDeadDefault = OnDeadBlock

	MetricsQueueIntervalDefault = 10 * time.Second
	MetricsQueueIntervalMin     = time.Second
	MetricsQueueIntervalMax     = time.Hour

	// AdminListenHostDefault is the host of an admin.listen that names
	// none (":8089"): the admin API is reachable from other machines only
	// when the operator writes a host.
	AdminListenHostDefault = "127.0.0.1"
	// AdminAccessRead and AdminAccessWrite are the values of
	// admin.tokens[].access.
	AdminAccessRead    = "read"
	AdminAccessWrite   = "write"
	AdminAccessDefault = AdminAccessRead
	// AdminTokenMinLength is the shortest bearer token accepted: 16
	// characters of the RFC 6750 alphabet (openssl rand -hex 16 gives 32).
	AdminTokenMinLength = 16
	// MetricsMaxEndpointSeriesDefault bounds the endpoints with metric
	// series of their own; NoBound (-1) lifts the bound.
	MetricsMaxEndpointSeriesDefault = relay.MaxEndpointSeriesDefault
	NoBound                         = -1
	// The values of tracing.exporter.
	TracingExporterNone       = "none"
	TracingExporterOTLPGRPC   = "otlp-grpc"
	TracingExporterOTLPHTTP   = "otlp-http"
	TracingExporterDefault    = TracingExporterNone
	TracingSampleRatioDefault = 1.0

	MaintenanceScheduleDefault      = "@every 1h"
	MaintenanceDeadRetentionDefault = 720 * time.Hour

	// HistoryAttemptsAll, HistoryAttemptsFailures and HistoryAttemptsOff
	// are the values of history.attempts.
	HistoryAttemptsAll      = string(relay.AttemptLogAll)
	HistoryAttemptsFailures = string(relay.AttemptLogFailures)
	HistoryAttemptsOff      = string(relay.AttemptLogOff)
	HistoryAttemptsDefault  = string(relay.HistoryAttemptsDefault)
	HistoryMessagesDefault  = false
	HistoryRetentionDefault = relay.HistoryRetentionDefault

	// SecretPrefix starts every Standard Webhooks signing secret; the rest is
	// standard base64 (padded or not) of SecretMinBytes..SecretMaxBytes bytes.
	SecretPrefix   = "whsec_"
	SecretMinBytes = 16
	SecretMaxBytes = 64
)

// EndpointPermanentStatusesDefault returns the 4xx statuses that are final
// unless an endpoint lists its own: 400, 413 and 422.
func EndpointPermanentStatusesDefault() []int { return []int{400, 413, 422} }

// Config is the whole of herald.yaml. Build one with Default, Parse or Load;
// a Config from Parse or Load has been validated and has every default
// applied, including per-endpoint ones.
type Config struct {
	Database    Database    `yaml:"database"`
	Log         Log         `yaml:"log"`
	Delivery    Delivery    `yaml:"delivery"`
	Relay       Relay       `yaml:"relay"`
	Retry       Retry       `yaml:"retry"`
	Breaker     Breaker     `yaml:"breaker"`
	Endpoints   []Endpoint  `yaml:"endpoints"`
	Metrics     Metrics     `yaml:"metrics"`
	Tracing     Tracing     `yaml:"tracing"`
	Maintenance Maintenance `yaml:"maintenance"`
	History     History     `yaml:"history"`
	// Admin configures the admin HTTP API. Defaults to off.
	Admin Admin `yaml:"admin"`
	// Sources are the databases Herald relays from when it relays from
	// several; when set, Database must be absent. Defaults to none: the one
	// source is Database.
	Sources []Source `yaml:"sources"`

	src      *source  // where each key came from; nil for a Config built in Go
	warnings []string // set by Parse
}

// Database configures the PostgreSQL connection pool.
type Database struct {
	// URL is the PostgreSQL connection string, as a postgres:// URL or a
	// key=value DSN. It is a Secret because it usually holds a password.
	// Required, in the file or in the DATABASE_URL environment variable,
	// which takes precedence.
	URL Secret `yaml:"url"`
	// MaxConns is the pool size, at least DatabaseMaxConnsMin. Defaults to
	// DatabaseMaxConnsDefault (8).
	MaxConns int `yaml:"max_conns"`
}

// Source is one of several databases Herald relays from, each with its own
// outbox, connection pool and relay.
type Source struct {
	// Name identifies the source in logs, in the source label of its
	// metrics and in the --source flag; it matches
	// ^[a-z0-9][a-z0-9_.-]{0,62}$ and is unique. Required.
	Name string `yaml:"name"`
	// URL is the PostgreSQL connection string, like Database.URL. It is a
	// Secret. Required.
	URL Secret `yaml:"url"`
	// MaxConns is the pool size, at least DatabaseMaxConnsMin. Defaults to
	// DatabaseMaxConnsDefault (8).
	MaxConns int `yaml:"max_conns"`
	// Endpoints names the top-level endpoints this source delivers to; nil
	// means all of them. Defaults to all.
	Endpoints []string `yaml:"endpoints"`
}

// DefaultSource returns a Source with its defaults and no name or URL.
func DefaultSource() Source { return Source{MaxConns: DatabaseMaxConnsDefault} }

// SourceEndpoints returns the endpoints s delivers to: those it names, in
// the order of c.Endpoints, or all of them when it names none.
func (c *Config) SourceEndpoints(s Source) []Endpoint {
	if s.Endpoints == nil {
		return slices.Clone(c.Endpoints)
	}
	var eps []Endpoint
	for _, e := range c.Endpoints {
		if slices.Contains(s.Endpoints, e.Name) {
			eps = append(eps, e)
		}
	}
	return eps
}

// Log configures Herald's own logs.
type Log struct {
	// Level is one of debug, info, warn or error. Defaults to "info".
	Level string `yaml:"level"`
	// Format is json or console. The --log-format flag overrides it.
	// Defaults to "json".
	Format string `yaml:"format"`
}

// Delivery holds settings shared by all endpoints.
type Delivery struct {
	// AllowPrivateNetworks lets endpoints resolve to loopback, private,
	// link-local and other non-public addresses. Defaults to false.
	AllowPrivateNetworks bool `yaml:"allow_private_networks"`
	// AllowedCIDRs are non-public networks endpoints may reach even when
	// AllowPrivateNetworks is false. Defaults to none.
	AllowedCIDRs []netip.Prefix `yaml:"allowed_cidrs"`
	// UserAgent is sent with every request; empty means the built-in
	// "Herald/<version>". Defaults to "".
	UserAgent string `yaml:"user_agent"`
	// MaxResponseBytes caps how much of a response body is read and kept,
	// between DeliveryMaxResponseBytesMin and DeliveryMaxResponseBytesMax.
	// Defaults to DeliveryMaxResponseBytesDefault (65536).
	MaxResponseBytes int `yaml:"max_response_bytes"`
	// Timeout bounds one delivery attempt for endpoints that set no timeout
	// of their own, between DeliveryTimeoutMin and DeliveryTimeoutMax.
	// Defaults to DeliveryTimeoutDefault (15s).
	Timeout time.Duration `yaml:"timeout"`
}

// Relay tunes claiming, delivery concurrency and acknowledgement.
type Relay struct {
	// MaxInFlight caps concurrent HTTP requests across all endpoints,
	// 1..10000. Defaults to RelayMaxInFlightDefault (4096).
	MaxInFlight int `yaml:"max_in_flight"`
	// MaxInFlightBytes caps the payload bytes of the messages a relay holds
	// (claimed and not yet finished), 1 MiB..4 GiB; a larger message is
	// claimed alone. Defaults to relay.MaxInFlightBytesDefault (64 MiB).
	MaxInFlightBytes int64 `yaml:"max_in_flight_bytes"`
	// Lease is how long a claimed message stays reserved before another
	// claim may take it again. It must be at least the largest endpoint timeout
	// plus RelayLeaseMargin. Defaults to RelayLeaseDefault (60s).
	Lease time.Duration `yaml:"lease"`
	// HeartbeatInterval is how often the relay proves it is alive in
	// outbox.relays, 10ms..10s. Defaults to RelayHeartbeatIntervalDefault (250ms).
	HeartbeatInterval time.Duration `yaml:"heartbeat_interval"`
	// HeartbeatTimeout is how long one heartbeat keeps the relay alive:
	// another relay takes over its messages this long after its last
	// heartbeat, whatever the lease. At least 3 x heartbeat_interval and
	// 500ms + 2 x heartbeat_interval. Defaults to RelayHeartbeatTimeoutDefault (1.8s).
	HeartbeatTimeout time.Duration `yaml:"heartbeat_timeout"`
	// PollInterval is how often the relay polls when no NOTIFY arrives,
	// 10ms..1m. Defaults to RelayPollIntervalDefault (1s).
	PollInterval time.Duration `yaml:"poll_interval"`
	// Listen enables LISTEN/NOTIFY wake-ups. Defaults to true.
	Listen bool `yaml:"listen"`
	// AckInterval is the longest an acknowledgement waits to be batched,
	// 1ms..1s. Defaults to RelayAckIntervalDefault (5ms).
	AckInterval time.Duration `yaml:"ack_interval"`
	// AckBatch is the most acknowledgements written in one statement,
	// 1..10000. Defaults to RelayAckBatchDefault (1024).
	AckBatch int `yaml:"ack_batch"`
	// ShutdownTimeout is how long deliveries in flight may finish after a
	// stop is requested, 1s..10m. 0 is refused rather than read as "do not
	// wait": the relay would take it for its own default. Defaults to
	// RelayShutdownTimeoutDefault (30s).
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// AsyncCommit sets synchronous_commit=off for the relay's own writes: a
	// PostgreSQL crash then redelivers what they had recorded in its last
	// few hundred milliseconds. Defaults to false.
	AsyncCommit bool `yaml:"async_commit"`
	// EndpointRefresh is how often a relay re-reads outbox.endpoints, on top
	// of the NOTIFY it receives when a row changes, 100ms..5m. Defaults to
	// RelayEndpointRefreshDefault (5s).
	EndpointRefresh time.Duration `yaml:"endpoint_refresh"`
	// VacuumThreshold makes a relay VACUUM outbox.messages or
	// outbox.deliveries itself once either has this many dead row versions,
	// for when autovacuum is off or falls behind; 0 never does. Defaults to
	// RelayVacuumThresholdDefault (20000).
	VacuumThreshold int `yaml:"vacuum_threshold"`
}

// Retry is the exponential backoff applied after a failed attempt.
type Retry struct {
	// InitialInterval is the delay after the first failure, > 0.
	// Defaults to RetryInitialIntervalDefault (1s).
	InitialInterval time.Duration `yaml:"initial_interval"`
	// Multiplier grows the delay after each failure, >= 1.
	// Defaults to RetryMultiplierDefault (2).
	Multiplier float64 `yaml:"multiplier"`
	// MaxInterval caps the delay, >= InitialInterval.
	// Defaults to RetryMaxIntervalDefault (1h).
	MaxInterval time.Duration `yaml:"max_interval"`
	// MaxElapsedTime is how long after its first attempt a message is given
	// up as dead, > 0. Defaults to RetryMaxElapsedTimeDefault (72h).
	MaxElapsedTime time.Duration `yaml:"max_elapsed_time"`
	// MaxAttempts gives a message up as dead after this many attempts;
	// 0 means no limit. Defaults to 0.
	MaxAttempts int `yaml:"max_attempts"`
	// RandomizationFactor spreads each delay by ±factor, 0..1.
	// Defaults to RetryRandomizationFactorDefault (0.2).
	RandomizationFactor float64 `yaml:"randomization_factor"`
}

// Breaker is the circuit breaker each relay keeps per endpoint: after
// FailureThreshold consecutive failed attempts no message of the endpoint is
// claimed, except one probe after ProbeInterval, then after twice that, up
// to MaxProbeInterval; a successful probe closes the breaker.
type Breaker struct {
	// FailureThreshold is the number of consecutive failed attempts that
	// open the breaker, 0..1000000; 0 means no breaker. Defaults to
	// BreakerFailureThresholdDefault (10).
	FailureThreshold int `yaml:"failure_threshold"`
	// ProbeInterval is how long after opening the first probe is sent; the
	// interval doubles after each failed probe. 100ms..1h. Defaults to
	// BreakerProbeIntervalDefault (5s).
	ProbeInterval time.Duration `yaml:"probe_interval"`
	// MaxProbeInterval caps the probe interval, ProbeInterval..24h.
	// Defaults to BreakerMaxProbeIntervalDefault (5m).
	MaxProbeInterval time.Duration `yaml:"max_probe_interval"`
	// DisableAfter disables an endpoint whose breaker has been open for
	// longer than this, until an operator enables it again; 0 means never.
	// Requires FailureThreshold > 0. Defaults to 0.
	DisableAfter time.Duration `yaml:"disable_after"`
}

// Endpoint is one webhook receiver as an operator writes it, in the YAML
// file or a row of outbox.endpoints, with herald's defaults and checks.
// Layer: herald's configuration; WebhookConfig maps it to the webhook
// library, and herald's wiring to a relay.Endpoint.
type Endpoint struct {
	// Name identifies the endpoint in messages, logs and metrics; it matches
	// ^[a-z0-9][a-z0-9_.-]{0,62}$ and is unique. Required.
	Name string `yaml:"name"`
	// URL is the absolute http or https URL requests are POSTed to. Required.
	URL string `yaml:"url"`
	// Secret is the "whsec_…" Standard Webhooks signing secret. Exactly one
	// of Secret and Secrets is required.
	Secret Secret `yaml:"secret"`
	// Secrets replaces Secret during a rotation: every secret signs each
	// request, newest first. Defaults to none.
	Secrets []Secret `yaml:"secrets"`
	// Topics are glob patterns selecting messages by topic; '*' matches any
	// run of characters, dots included. An endpoint with no topics receives
	// only messages that name it. Defaults to none.
	Topics []string `yaml:"topics"`
	// Timeout bounds one attempt, DeliveryTimeoutMin..DeliveryTimeoutMax.
	// Defaults to Delivery.Timeout.
	Timeout time.Duration `yaml:"timeout"`
	// Headers are static headers added to each request. Values are Secrets,
	// since they often carry credentials. Reserved names (see
	// webhook.ReservedHeader) are refused. Defaults to none.
	Headers map[string]Secret `yaml:"headers"`
	// MaxInFlight caps concurrent requests to this endpoint, 1..10000.
	// Defaults to EndpointMaxInFlightDefault (64).
	MaxInFlight int `yaml:"max_in_flight"`
	// FollowRedirects follows 3xx responses; otherwise a redirect is a
	// failed attempt. Defaults to false.
	FollowRedirects bool `yaml:"follow_redirects"`
	// PermanentStatuses are the 4xx statuses that are not retried. 410 is
	// always final and 429 always retried, so neither may be listed. An
	// explicit empty list retries every other 4xx. Defaults to
	// EndpointPermanentStatusesDefault (400, 413, 422).
	PermanentStatuses []int `yaml:"permanent_statuses"`
	// TLS configures the client side of TLS. Defaults to the system roots.
	TLS EndpointTLS `yaml:"tls"`
	// Ordered delivers the messages of one key to this endpoint in commit
	// order: a key's next message waits until the previous one is
	// acknowledged (or dead, see OnDead). Defaults to false.
	Ordered bool `yaml:"ordered"`
	// OnDead says what happens, on an ordered endpoint, to the later
	// messages of a key when one of its messages dies: OnDeadBlock holds
	// them until the dead message is replayed or purged, OnDeadSkip delivers
	// them. Ignored unless Ordered. Defaults to OnDeadDefault ("block").
	OnDead string `yaml:"on_dead"`
	// RateLimit caps requests per second to this endpoint, 0..1e6; 0 means
	// unlimited. Defaults to 0.
	RateLimit float64 `yaml:"rate_limit"`
	// RateBurst is the burst allowed above RateLimit, 0..1000000; 0 means
	// max(1, ceil(RateLimit)) (see Burst). Must be 0 when RateLimit is 0.
	// Defaults to 0.
	RateBurst int `yaml:"rate_burst"`
	// Format is how requests are framed: "standard-webhooks", or a
	// CloudEvents 1.0 event in HTTP "cloudevents-binary" or
	// "cloudevents-structured" mode (see webhook.EndpointConfig.Format).
	// Defaults to "" (standard-webhooks).
	Format string `yaml:"format"`
	// CloudEventsSource is the source attribute of a CloudEvents endpoint's
	// events, a URI-reference. Defaults to "" (webhook.CloudEventsSourceDefault,
	// "herald").
	CloudEventsSource string `yaml:"cloudevents_source"`
	// Disabled creates the endpoint disabled: no message is delivered to it
	// (they wait) until an operator runs `herald endpoints enable`. It only
	// applies when the endpoint first appears in outbox.endpoints; after
	// that the state in the table is kept. Defaults to false.
	Disabled bool `yaml:"disabled"`
}

// Burst returns the rate limiter's burst: RateBurst, or when that is 0,
// max(1, ceil(RateLimit)). It is 0 when RateLimit is 0 (no limit).
func (e Endpoint) Burst() int {
	switch {
	case e.RateLimit <= 0:
		return 0
	case e.RateBurst > 0:
		return e.RateBurst
	}
	return max(1, int(math.Ceil(min(e.RateLimit, EndpointRateLimitMax))))
}

// SigningSecrets returns the secrets that sign requests, newest first.
func (e Endpoint) SigningSecrets() []Secret {
	if e.Secret != "" {
		return []Secret{e.Secret}
	}
	return slices.Clone(e.Secrets)
}

// WebhookConfig returns what webhook.Client.Endpoint needs to send to e.
// It holds the secrets and header values in clear: keep it out of logs.
func (e Endpoint) WebhookConfig() webhook.EndpointConfig {
	var secrets []string
	for _, s := range e.SigningSecrets() {
		secrets = append(secrets, s.Value())
	}
	headers := make(map[string]string, len(e.Headers))
	for k, v := range e.Headers {
		headers[k] = v.Value()
	}
	return webhook.EndpointConfig{
		Name:              e.Name,
		URL:               e.URL,
		Secrets:           secrets,
		Timeout:           e.Timeout,
		Headers:           headers,
		MaxConns:          e.MaxInFlight,
		FollowRedirects:   e.FollowRedirects,
		PermanentStatuses: e.PermanentStatuses,
		Format:            e.Format,
		CloudEventsSource: e.CloudEventsSource,
		TLS: webhook.TLSConfig{
			CAFile: e.TLS.CAFile, CertFile: e.TLS.CertFile, KeyFile: e.TLS.KeyFile, MinVersion: e.TLS.MinVersion,
		},
	}
}

// EndpointTLS configures TLS towards one endpoint. Relative paths are
// resolved against the directory of the configuration file.
type EndpointTLS struct {
	// CAFile is a PEM bundle trusted instead of the system roots; the file
	// must exist. Defaults to "" (system roots).
	CAFile string `yaml:"ca_file"`
	// CertFile is a PEM client certificate, set together with KeyFile.
	// Defaults to "" (no client certificate).
	CertFile string `yaml:"cert_file"`
	// KeyFile is the PEM private key for CertFile. Defaults to "".
	KeyFile string `yaml:"key_file"`
	// MinVersion is "1.2" or "1.3"; "" means 1.2. Defaults to "".
	MinVersion string `yaml:"min_version"`
}

// MinTLSVersion returns MinVersion as a crypto/tls constant.
func (t EndpointTLS) MinTLSVersion() uint16 {
	if t.MinVersion == "1.3" {
		return tls.VersionTLS13
	}
	return tls.VersionTLS12
}

// Metrics configures the Prometheus endpoint.
type Metrics struct {
	// Listen is the host:port serving /metrics; empty turns metrics off.
	// Defaults to "".
	Listen string `yaml:"listen"`
	// QueueInterval is how often the queue gauges (herald_pending_messages
	// and the others read from the tables) are refreshed; scrapes read the
	// last figures, because counting the lanes is a full scan of each.
	// Defaults to MetricsQueueIntervalDefault (10s).
	QueueInterval time.Duration `yaml:"queue_interval"`
	// MaxEndpointSeries bounds how many endpoints get series of their own
	// (about 26 each); the others share endpoint="other", and are named in
	// herald_endpoint_paused and herald_endpoint_unusable only while paused
	// or unusable. -1 means no bound.
	// Defaults to MetricsMaxEndpointSeriesDefault (1000).
	MaxEndpointSeries int `yaml:"max_endpoint_series"`
}

// Admin configures the admin HTTP API, which serves the operations of the
// herald dead and herald endpoints commands, and the queue's status, as
// JSON to holders of a bearer token.
type Admin struct {
	// Listen is the host:port the API listens on; with no host (":8089")
	// it listens on AdminListenHostDefault (127.0.0.1) only, so that it is
	// never on every interface by accident ("0.0.0.0:8089" asks for that).
	// Empty turns the API off. Defaults to "".
	Listen string `yaml:"listen"`
	// Tokens are the bearer tokens the API accepts; at least one is
	// required when Listen is set. Defaults to none.
	Tokens []AdminToken `yaml:"tokens"`
}

// Addr returns Listen with AdminListenHostDefault as its host when it
// names none; "" when the API is off. Listen must be valid.
func (a Admin) Addr() string {
	host, port, err := net.SplitHostPort(a.Listen)
	if err != nil || host != "" {
		return a.Listen
	}
	return net.JoinHostPort(AdminListenHostDefault, port)
}

// AdminToken is one bearer token of the admin API.
type AdminToken struct {
	// Name identifies the token in the API's logs (the token itself never
	// appears there); it matches ^[a-z0-9][a-z0-9_.-]{0,62}$ and is unique.
	// Required.
	Name string `yaml:"name"`
	// Token is the secret a client sends as "Authorization: Bearer
	// <token>": at least AdminTokenMinLength characters of the RFC 6750
	// token alphabet (letters, digits and -._~+/, then = padding), unique.
	// Write ${VAR} to keep it out of the file. Required.
	Token Secret `yaml:"token"`
	// Access is AdminAccessRead (read-only routes) or AdminAccessWrite
	// (every route). Defaults to AdminAccessDefault ("read").
	Access string `yaml:"access"`
}

// DefaultAdminToken returns an AdminToken with its defaults and no name or
// token.
func DefaultAdminToken() AdminToken { return AdminToken{Access: AdminAccessDefault} }

// Tracing configures OpenTelemetry tracing of claims and deliveries.
type Tracing struct {
	// Exporter is where spans go: "none" (no tracing, at no cost),
	// "otlp-grpc" or "otlp-http". Defaults to TracingExporterDefault
	// ("none").
	Exporter string `yaml:"exporter"`
	// Endpoint is the OTLP collector's URL, such as
	// "http://otel-collector:4317" (otlp-grpc) or
	// "https://otel-collector:4318" (otlp-http; the path defaults to
	// /v1/traces); an http:// URL sends without TLS. Defaults to "": the
	// exporter's own default, from OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or
	// OTEL_EXPORTER_OTLP_ENDPOINT, else localhost:4317 (gRPC) or
	// localhost:4318 (HTTP), with TLS.
	Endpoint string `yaml:"endpoint"`
	// SampleRatio is the share of new traces recorded, 0 to 1; a delivery
	// whose producer's trace was sampled is always recorded (parent-based
	// sampling), one whose producer's was not never is. Defaults to
	// TracingSampleRatioDefault (1).
	SampleRatio float64 `yaml:"sample_ratio"`
}

// Maintenance configures the periodic clean-up.
type Maintenance struct {
	// Schedule is a cron spec (five fields, or a descriptor such as
	// "@daily" or "@every 1h") for when maintenance runs.
	// Defaults to MaintenanceScheduleDefault ("@every 1h").
	Schedule string `yaml:"schedule"`
	// DeadRetention deletes dead messages older than this; 0 keeps them
	// forever. Defaults to MaintenanceDeadRetentionDefault (720h).
	DeadRetention time.Duration `yaml:"dead_retention"`
}

// History configures the delivery history (outbox.attempts and
// outbox.message_log), kept for History.Retention.
type History struct {
	// Attempts says which delivery attempts are logged: all, failures or
	// off. Defaults to HistoryAttemptsDefault (all).
	Attempts string `yaml:"attempts"`
	// Messages keeps each delivered message, with its payload and headers,
	// in outbox.message_log. Defaults to HistoryMessagesDefault (false).
	Messages bool `yaml:"messages"`
	// Retention is how long history is kept, rounded up to whole UTC days.
	// Defaults to HistoryRetentionDefault (168h).
	Retention time.Duration `yaml:"retention"`
}

// ParseSchedule parses Schedule. The result's Next method satisfies a
// Next(time.Time) time.Time schedule interface.
func (m Maintenance) ParseSchedule() (cron.Schedule, error) {
	return parseCron(m.Schedule)
}

// parseCron is cron.ParseStandard, minus its panics on some malformed
// "TZ=" prefixes.
func parseCron(spec string) (s cron.Schedule, err error) {
	defer func() {
		if r := recover(); r != nil {
			s, err = nil, errMalformedCron
		}
	}()
	return cron.ParseStandard(spec)
}

// Default returns a Config with every default applied and no endpoints.
// Database.URL is left empty: it has no default.
func Default() *Config {
	return &Config{
		Database: Database{MaxConns: DatabaseMaxConnsDefault},
		Log:      Log{Level: LogLevelDefault, Format: LogFormatDefault},
		Delivery: Delivery{
			MaxResponseBytes: DeliveryMaxResponseBytesDefault,
			Timeout:          DeliveryTimeoutDefault,
		},
		Relay: Relay{
			MaxInFlight:       RelayMaxInFlightDefault,
			MaxInFlightBytes:  relay.MaxInFlightBytesDefault,
			Lease:             RelayLeaseDefault,
			HeartbeatInterval: RelayHeartbeatIntervalDefault,
			HeartbeatTimeout:  RelayHeartbeatTimeoutDefault,
			PollInterval:      RelayPollIntervalDefault,
			Listen:            RelayListenDefault,
			AckInterval:       RelayAckIntervalDefault,
			AckBatch:          RelayAckBatchDefault,
			ShutdownTimeout:   RelayShutdownTimeoutDefault,
			AsyncCommit:       RelayAsyncCommitDefault,
			EndpointRefresh:   RelayEndpointRefreshDefault,
			VacuumThreshold:   RelayVacuumThresholdDefault,
		},
		Retry: Retry{
			InitialInterval:     RetryInitialIntervalDefault,
			Multiplier:          RetryMultiplierDefault,
			MaxInterval:         RetryMaxIntervalDefault,
			MaxElapsedTime:      RetryMaxElapsedTimeDefault,
			MaxAttempts:         RetryMaxAttemptsDefault,
			RandomizationFactor: RetryRandomizationFactorDefault,
		},
		Breaker: Breaker{
			FailureThreshold: BreakerFailureThresholdDefault,
			ProbeInterval:    BreakerProbeIntervalDefault,
			MaxProbeInterval: BreakerMaxProbeIntervalDefault,
			DisableAfter:     BreakerDisableAfterDefault,
		},
		Metrics: Metrics{QueueInterval: MetricsQueueIntervalDefault, MaxEndpointSeries: MetricsMaxEndpointSeriesDefault},
		Tracing: Tracing{Exporter: TracingExporterDefault, SampleRatio: TracingSampleRatioDefault},
		Maintenance: Maintenance{
			Schedule:      MaintenanceScheduleDefault,
			DeadRetention: MaintenanceDeadRetentionDefault,
		},
		History: History{
			Attempts:  HistoryAttemptsDefault,
			Messages:  HistoryMessagesDefault,
			Retention: HistoryRetentionDefault,
		},
	}
}

// DefaultEndpoint returns an Endpoint with the defaults that do not depend
// on the rest of the file. Timeout is left zero: WithDefaults fills it from
// Delivery.Timeout.
func DefaultEndpoint() Endpoint {
	return Endpoint{
		MaxInFlight:       EndpointMaxInFlightDefault,
		PermanentStatuses: EndpointPermanentStatusesDefault(),
		OnDead:            OnDeadDefault,
	}
}

// WithDefaults returns a copy of e with its zero-valued fields defaulted:
// Timeout from d.Timeout (or DeliveryTimeoutDefault), MaxInFlight from
// EndpointMaxInFlightDefault, a nil PermanentStatuses from
// EndpointPermanentStatusesDefault and OnDead from OnDeadDefault. RateBurst
// is left as it is: see Burst.
func (e Endpoint) WithDefaults(d Delivery) Endpoint {
	e.Timeout = cmp.Or(e.Timeout, d.Timeout, DeliveryTimeoutDefault)
	e.MaxInFlight = cmp.Or(e.MaxInFlight, EndpointMaxInFlightDefault)
	if e.PermanentStatuses == nil {
		e.PermanentStatuses = EndpointPermanentStatusesDefault()
	}
	e.OnDead = cmp.Or(e.OnDead, OnDeadDefault)
	return e
}

// Warnings returns problems that do not stop Herald from running but are
// probably mistakes, such as having no endpoints.
func (c *Config) Warnings() []string { return slices.Clone(c.warnings) }

// RelayConfig maps the file's settings to the relay library's, in one place.
// The two give zero different meanings where the file's is the operator's
// natural reading: breaker.failure_threshold 0 is no breaker (the library's
// 0 is its default, relay.BreakerOff is none), relay.vacuum_threshold 0
// never vacuums (the library's is negative). The caller adds what the file
// does not hold: endpoints, logger, metrics, OnDisable.
func (c *Config) RelayConfig() relay.Config {
	breakerThreshold := c.Breaker.FailureThreshold
	if breakerThreshold == 0 {
		breakerThreshold = relay.BreakerOff
	}
	vacuum := c.Relay.VacuumThreshold
	if vacuum == 0 {
		vacuum = -1
	}
	return relay.Config{
		Retry: &relay.ExponentialRetry{
			InitialInterval:     c.Retry.InitialInterval,
			Multiplier:          c.Retry.Multiplier,
			MaxInterval:         c.Retry.MaxInterval,
			RandomizationFactor: c.Retry.RandomizationFactor,
			MaxElapsedTime:      c.Retry.MaxElapsedTime,
			MaxAttempts:         c.Retry.MaxAttempts,
		},
		MaxInFlight:       c.Relay.MaxInFlight,
		MaxInFlightBytes:  c.Relay.MaxInFlightBytes,
		Lease:             c.Relay.Lease,
		HeartbeatInterval: c.Relay.HeartbeatInterval,
		HeartbeatTimeout:  c.Relay.HeartbeatTimeout,
		PollInterval:      c.Relay.PollInterval,
		Listen:            c.Relay.Listen,
		AckInterval:       c.Relay.AckInterval,
		AckBatch:          c.Relay.AckBatch,
		ShutdownTimeout:   c.Relay.ShutdownTimeout,
		Breaker: relay.BreakerConfig{
			FailureThreshold: breakerThreshold,
			ProbeInterval:    c.Breaker.ProbeInterval,
			MaxProbeInterval: c.Breaker.MaxProbeInterval,
		},
		DisableAfter:    c.Breaker.DisableAfter,
		VacuumThreshold: vacuum,
		History: relay.HistoryConfig{
			Attempts:  relay.AttemptLog(c.History.Attempts),
			Messages:  c.History.Messages,
			Retention: c.History.Retention,
		},
	}
}
