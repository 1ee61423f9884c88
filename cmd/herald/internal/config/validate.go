package config

import (
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/herald-relay/herald/relay"
	"github.com/herald-relay/herald/webhook"
)

// Validate checks every field and returns an *Error listing all problems,
// or nil. A Config from Parse or Load is already valid; Validate is for one
// built or modified in Go. Lines are known only for a Config from Parse or
// Load.
func (c *Config) Validate() error {
	var problems []*FieldError
	c.check(func(path, value string, err error) {
		file, line := c.src.locate(path)
		problems = append(problems, &FieldError{File: file, Line: line, Field: path, Value: value, Err: err})
	})
	if len(problems) == 0 {
		return nil
	}
	sortProblems(problems)
	return &Error{Problems: problems}
}

// sortProblems orders problems by line, keeping those without a line last
// and otherwise the order they were found in.
func sortProblems(ps []*FieldError) {
	slices.SortStableFunc(ps, func(a, b *FieldError) int {
		la, lb := a.Line, b.Line
		if la == 0 {
			la = int(^uint(0) >> 1)
		}
		if lb == 0 {
			lb = int(^uint(0) >> 1)
		}
		return la - lb
	})
}

var endpointNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,62}$`)

// check reports every problem through report; a secret's value is never
// passed to report. It returns warnings.
func (c *Config) check(report func(path, value string, err error)) (warnings []string) {
	str := func(v any) string { return fmt.Sprint(v) }
	intRange := func(path string, v, lo, hi int) {
		if v < lo || v > hi {
			report(path, strconv.Itoa(v), fmt.Errorf("must be between %d and %d", lo, hi))
		}
	}
	durRange := func(path string, v, lo, hi time.Duration) {
		if v < lo || v > hi {
			report(path, fmtDuration(v), fmt.Errorf("must be between %s and %s", fmtDuration(lo), fmtDuration(hi)))
		}
	}
	warn := func(path, msg string) {
		file, line := c.src.locate(path)
		w := path + ": " + msg
		if line > 0 {
			w = file + ":" + strconv.Itoa(line) + ": " + w
		} else if file != "" {
			w = file + ": " + w
		}
		warnings = append(warnings, w)
	}

	// database, or sources
	switch {
	case c.Sources == nil && !c.src.has("sources"):
		if c.Database.URL == "" {
			report("database.url", "", errors.New("required (set it here or in DATABASE_URL)"))
		} else if err := checkDatabaseURL(c.Database.URL.Value()); err != nil {
			report("database.url", "", err) // may hold a password: never printed
		}
		if c.Database.MaxConns < DatabaseMaxConnsMin {
			report("database.max_conns", strconv.Itoa(c.Database.MaxConns), fmt.Errorf("must be at least %d", DatabaseMaxConnsMin))
		}
	case c.src.has("database") || c.Database.URL != "":
		report("sources", "", errors.New("database and sources cannot both be set: move database.url into a source, or remove sources"))
	case len(c.Sources) == 0:
		report("sources", "", errors.New("must list at least one source, or be removed to use database"))
	}
	c.checkSources(report, warn)

	// log
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, c.Log.Level) {
		report("log.level", c.Log.Level, errors.New("must be one of debug, info, warn, error"))
	}
	if c.Log.Format != "json" && c.Log.Format != "console" {
		report("log.format", c.Log.Format, errors.New("must be json or console"))
	}

	// delivery
	if !validHeaderValue(c.Delivery.UserAgent) {
		report("delivery.user_agent", c.Delivery.UserAgent, errors.New("must not contain control characters"))
	}
	intRange("delivery.max_response_bytes", c.Delivery.MaxResponseBytes, DeliveryMaxResponseBytesMin, DeliveryMaxResponseBytesMax)
	durRange("delivery.timeout", c.Delivery.Timeout, DeliveryTimeoutMin, DeliveryTimeoutMax)

	// relay
	intRange("relay.max_in_flight", c.Relay.MaxInFlight, RelayMaxInFlightMin, RelayMaxInFlightMax)
	if b := c.Relay.MaxInFlightBytes; b < RelayMaxInFlightBytesMin || b > RelayMaxInFlightBytesMax {
		report("relay.max_in_flight_bytes", strconv.FormatInt(b, 10),
			fmt.Errorf("must be between %d (1 MiB) and %d (4 GiB)", RelayMaxInFlightBytesMin, RelayMaxInFlightBytesMax))
	}
	durRange("relay.poll_interval", c.Relay.PollInterval, RelayPollIntervalMin, RelayPollIntervalMax)
	durRange("relay.ack_interval", c.Relay.AckInterval, RelayAckIntervalMin, RelayAckIntervalMax)
	intRange("relay.ack_batch", c.Relay.AckBatch, RelayAckBatchMin, RelayAckBatchMax)
	durRange("relay.shutdown_timeout", c.Relay.ShutdownTimeout, RelayShutdownTimeoutMin, RelayShutdownTimeoutMax)
	durRange("relay.endpoint_refresh", c.Relay.EndpointRefresh, RelayEndpointRefreshMin, RelayEndpointRefreshMax)
	intRange("relay.vacuum_threshold", c.Relay.VacuumThreshold, 0, RelayVacuumThresholdMax)
	durRange("relay.heartbeat_interval", c.Relay.HeartbeatInterval, RelayHeartbeatIntervalMin, RelayHeartbeatIntervalMax)
	if least := relay.HeartbeatTimeoutLeast(c.Relay.HeartbeatInterval); c.Relay.HeartbeatTimeout < least {
		report("relay.heartbeat_timeout", fmtDuration(c.Relay.HeartbeatTimeout), fmt.Errorf(
			"must be at least 3 x relay.heartbeat_interval and 500ms + 2 x relay.heartbeat_interval (%s)", fmtDuration(least)))
	}
	longestPath, longest := "delivery.timeout", c.Delivery.Timeout
	for i, e := range c.Endpoints {
		if i == 0 || e.Timeout > longest {
			longestPath, longest = fmt.Sprintf("endpoints[%d].timeout", i), e.Timeout
		}
	}
	if need := longest + RelayLeaseMargin; c.Relay.Lease < need {
		report("relay.lease", fmtDuration(c.Relay.Lease), fmt.Errorf(
			"must be at least %s (%s) + %s = %s",
			longestPath, fmtDuration(longest), fmtDuration(RelayLeaseMargin), fmtDuration(need)))
	}

	// retry
	if c.Retry.InitialInterval <= 0 {
		report("retry.initial_interval", fmtDuration(c.Retry.InitialInterval), errors.New("must be greater than 0"))
	}
	if c.Retry.Multiplier < 1 {
		report("retry.multiplier", str(c.Retry.Multiplier), errors.New("must be at least 1"))
	}
	if c.Retry.MaxInterval < c.Retry.InitialInterval {
		report("retry.max_interval", fmtDuration(c.Retry.MaxInterval), fmt.Errorf(
			"must be at least retry.initial_interval (%s)", fmtDuration(c.Retry.InitialInterval)))
	}
	if c.Retry.MaxElapsedTime <= 0 {
		report("retry.max_elapsed_time", fmtDuration(c.Retry.MaxElapsedTime), errors.New("must be greater than 0"))
	}
	if c.Retry.MaxAttempts < 0 {
		report("retry.max_attempts", strconv.Itoa(c.Retry.MaxAttempts), errors.New("must be 0 (no limit) or more"))
	}
	if c.Retry.RandomizationFactor < 0 || c.Retry.RandomizationFactor > 1 {
		report("retry.randomization_factor", str(c.Retry.RandomizationFactor), errors.New("must be between 0 and 1"))
	}

	// breaker
	intRange("breaker.failure_threshold", c.Breaker.FailureThreshold, 0, BreakerFailureThresholdMax)
	durRange("breaker.probe_interval", c.Breaker.ProbeInterval, BreakerProbeIntervalMin, BreakerProbeIntervalMax)
	if c.Breaker.MaxProbeInterval < c.Breaker.ProbeInterval {
		report("breaker.max_probe_interval", fmtDuration(c.Breaker.MaxProbeInterval), fmt.Errorf(
			"must be at least breaker.probe_interval (%s)", fmtDuration(c.Breaker.ProbeInterval)))
	} else {
		durRange("breaker.max_probe_interval", c.Breaker.MaxProbeInterval, c.Breaker.ProbeInterval, BreakerMaxProbeIntervalMax)
	}
	switch {
	case c.Breaker.DisableAfter < 0:
		report("breaker.disable_after", fmtDuration(c.Breaker.DisableAfter), errors.New("must be 0 (never) or more"))
	case c.Breaker.DisableAfter > 0 && c.Breaker.FailureThreshold == 0:
		report("breaker.disable_after", fmtDuration(c.Breaker.DisableAfter), errors.New(
			"needs breaker.failure_threshold above 0: with no breaker an endpoint is never disabled"))
	}

	// endpoints
	if len(c.Endpoints) == 0 {
		warn("endpoints", "no endpoints are configured: every message will be kept as unroutable")
	}
	names := uniqueNames{list: "endpoints", seen: make(map[string]int, len(c.Endpoints))}
	for i, e := range c.Endpoints {
		p := fmt.Sprintf("endpoints[%d]", i)
		names.check(i, e.Name, report)
		checkEndpoint(p, e, report, warn)
		if e.MaxInFlight > c.Relay.MaxInFlight && e.MaxInFlight <= EndpointMaxInFlightMax {
			warn(p+".max_in_flight", fmt.Sprintf("%d is more than relay.max_in_flight (%d), which caps it", e.MaxInFlight, c.Relay.MaxInFlight))
		}
	}

	// metrics
	if l := c.Metrics.Listen; l != "" {
		_, port, err := net.SplitHostPort(l)
		if n, perr := strconv.Atoi(port); err != nil || perr != nil || n < 0 || n > 65535 {
			report("metrics.listen", l, errors.New(`must be host:port, like ":9090" or "127.0.0.1:9090", or empty to turn metrics off`))
		}
	}

	durRange("metrics.queue_interval", c.Metrics.QueueInterval, MetricsQueueIntervalMin, MetricsQueueIntervalMax)
	c.checkAdmin(report, warn)
	if n := c.Metrics.MaxEndpointSeries; n < 1 && n != NoBound {
		report("metrics.max_endpoint_series", strconv.Itoa(n), errors.New("must be at least 1, or -1 for no bound"))
	}

	// tracing
	switch c.Tracing.Exporter {
	case TracingExporterNone, TracingExporterOTLPGRPC, TracingExporterOTLPHTTP:
	default:
		report("tracing.exporter", c.Tracing.Exporter, fmt.Errorf("must be %q, %q or %q", TracingExporterNone, TracingExporterOTLPGRPC, TracingExporterOTLPHTTP))
	}
	if e := c.Tracing.Endpoint; e != "" {
		if u, err := url.Parse(e); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			report("tracing.endpoint", webhook.RedactURL(e), errors.New(`must be an http:// or https:// URL, like "http://otel-collector:4317"`))
		}
	}
	if r := c.Tracing.SampleRatio; !(r >= 0 && r <= 1) {
		report("tracing.sample_ratio", strconv.FormatFloat(r, 'g', -1, 64), errors.New("must be from 0 to 1"))
	}

	// maintenance
	if _, err := parseCron(c.Maintenance.Schedule); err != nil {
		report("maintenance.schedule", c.Maintenance.Schedule, fmt.Errorf(`must be a cron spec like "0 3 * * *", "@daily" or "@every 1h": %w`, err))
	}
	if c.Maintenance.DeadRetention < 0 {
		report("maintenance.dead_retention", fmtDuration(c.Maintenance.DeadRetention), errors.New("must be 0 (keep forever) or more"))
	}

	// history
	switch c.History.Attempts {
	case HistoryAttemptsAll, HistoryAttemptsFailures, HistoryAttemptsOff:
	default:
		report("history.attempts", c.History.Attempts, errors.New("must be all, failures or off"))
	}
	if c.History.Retention < time.Hour {
		report("history.retention", fmtDuration(c.History.Retention), errors.New(`must be at least 1h, like "168h" (7 days)`))
	}
	return warnings
}

// checkSources checks sources: names, urls, pool sizes and the endpoints
// each names.
func (c *Config) checkSources(report func(path, value string, err error), warn func(path, msg string)) {
	endpointIndex := make(map[string]int, len(c.Endpoints))
	for i, e := range c.Endpoints {
		if _, dup := endpointIndex[e.Name]; !dup {
			endpointIndex[e.Name] = i
		}
	}
	used := make([]bool, len(c.Endpoints))
	names := uniqueNames{list: "sources", seen: make(map[string]int, len(c.Sources))}
	for i, s := range c.Sources {
		p := fmt.Sprintf("sources[%d]", i)
		names.check(i, s.Name, report)
		if s.URL == "" {
			report(p+".url", "", errors.New("required"))
		} else if err := checkDatabaseURL(s.URL.Value()); err != nil {
			report(p+".url", "", err) // may hold a password: never printed
		}
		if s.MaxConns < DatabaseMaxConnsMin {
			report(p+".max_conns", strconv.Itoa(s.MaxConns), fmt.Errorf("must be at least %d", DatabaseMaxConnsMin))
		}
		if s.Endpoints == nil {
			for j := range used {
				used[j] = true
			}
			continue
		}
		if len(s.Endpoints) == 0 {
			report(p+".endpoints", "", errors.New("must name at least one endpoint, or be removed to deliver to all"))
		}
		for j, name := range s.Endpoints {
			ep := fmt.Sprintf("%s.endpoints[%d]", p, j)
			k, ok := endpointIndex[name]
			switch {
			case !ok:
				report(ep, name, errors.New("no endpoint of that name in endpoints"))
			case slices.Index(s.Endpoints, name) < j:
				report(ep, name, fmt.Errorf("duplicate of %s.endpoints[%d]", p, slices.Index(s.Endpoints, name)))
			default:
				used[k] = true
			}
		}
	}
	if len(c.Sources) == 0 {
		return
	}
	for i, u := range used {
		if !u {
			warn(fmt.Sprintf("endpoints[%d]", i), fmt.Sprintf("no source delivers to %s: add it to a source's endpoints", c.Endpoints[i].Name))
		}
	}
}

// bearerTokenRE is RFC 6750's b64token: what a client can send after
// "Bearer " without quoting.
var bearerTokenRE = regexp.MustCompile(`^[A-Za-z0-9._~+/-]+=*$`)

// checkAdmin checks admin.listen and admin.tokens. A token's value is never
// reported.
func (c *Config) checkAdmin(report func(path, value string, err error), warn func(path, msg string)) {
	a := c.Admin
	if a.Listen != "" {
		_, port, err := net.SplitHostPort(a.Listen)
		if n, perr := strconv.Atoi(port); err != nil || perr != nil || n < 0 || n > 65535 {
			report("admin.listen", a.Listen, errors.New(`must be host:port, like ":8089" (127.0.0.1:8089) or "0.0.0.0:8089", or empty to turn the admin API off`))
		}
		if len(a.Tokens) == 0 {
			report("admin.tokens", "", errors.New("at least one token is required when admin.listen is set"))
		}
	} else if len(a.Tokens) > 0 {
		warn("admin.tokens", "has no effect while admin.listen is empty (the admin API is off)")
	}
	names := uniqueNames{list: "admin.tokens", seen: make(map[string]int, len(a.Tokens))}
	for i, tk := range a.Tokens {
		p := fmt.Sprintf("admin.tokens[%d]", i)
		names.check(i, tk.Name, report)
		switch v := tk.Token.Value(); {
		case v == "":
			report(p+".token", "", errors.New("required"))
		case len(v) < AdminTokenMinLength:
			report(p+".token", "", fmt.Errorf("must be at least %d characters (value not shown)", AdminTokenMinLength))
		case !bearerTokenRE.MatchString(v):
			report(p+".token", "", errors.New("must be letters, digits and -._~+/ with optional = padding (value not shown)"))
		default:
			for j := range i {
				if a.Tokens[j].Token == tk.Token {
					report(p+".token", "", fmt.Errorf("duplicate of admin.tokens[%d].token (value not shown)", j))
					break
				}
			}
		}
		if tk.Access != AdminAccessRead && tk.Access != AdminAccessWrite {
			report(p+".access", tk.Access, errors.New("must be read or write"))
		}
	}
}

// uniqueNames checks the names of one list of the file (list is its path,
// "endpoints"): each one valid (checkEndpointName) and unlike those before it.
type uniqueNames struct {
	list string
	seen map[string]int // a valid name -> the index of its first entry
}

// check checks the name of entry i.
func (u uniqueNames) check(i int, name string, report func(path, value string, err error)) {
	p := fmt.Sprintf("%s[%d].name", u.list, i)
	if !checkEndpointName(p, name, report) {
		return
	}
	if first, dup := u.seen[name]; dup {
		report(p, name, fmt.Errorf("duplicate of %s[%d].name", u.list, first))
		return
	}
	u.seen[name] = i
}

// checkEndpointName reports a missing or malformed endpoint name at path and
// returns whether the name is valid.
func checkEndpointName(path, name string, report func(path, value string, err error)) bool {
	switch {
	case name == "":
		report(path, "", errors.New("required"))
	case !endpointNameRE.MatchString(name):
		report(path, name, errors.New("must match ^[a-z0-9][a-z0-9_.-]{0,62}$"))
	default:
		return true
	}
	return false
}

// checkEndpoint checks every field of e but its name. p is the path of the
// endpoint ("endpoints[2]"), or "" to report bare field names ("url").
func checkEndpoint(p string, e Endpoint, report func(path, value string, err error), warn func(path, msg string)) {
	at := func(key string) string { return joinPath(p, key) }

	// url
	switch u, err := url.Parse(e.URL); {
	case e.URL == "":
		report(at("url"), "", errors.New("required"))
	case err != nil || !u.IsAbs() || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" || u.Opaque != "":
		// Never e.URL or err: either may hold a password or a token.
		report(at("url"), webhook.RedactURL(e.URL), errors.New("must be an absolute http or https URL"))
	case webhook.CheckURL(e.URL) != nil:
		// The webhook client's finer rules (no #fragment, a query it can
		// send), or it would refuse the endpoint.
		report(at("url"), webhook.RedactURL(e.URL), webhook.CheckURL(e.URL))
	case u.Scheme == "http":
		warn(at("url"), "plain http: requests and their signatures are sent unencrypted")
	}

	// secret, secrets
	switch {
	case e.Secret != "" && len(e.Secrets) > 0:
		report(at("secrets"), "", errors.New("set secret or secrets, not both"))
	case e.Secret == "" && len(e.Secrets) == 0:
		report(at("secret"), "", errors.New("required (or secrets, during a rotation)"))
	case e.Secret != "":
		if err := checkSecret(e.Secret.Value()); err != nil {
			report(at("secret"), "", err)
		}
	default:
		for j, s := range e.Secrets {
			sp := at(fmt.Sprintf("secrets[%d]", j))
			if err := checkSecret(s.Value()); err != nil {
				report(sp, "", err)
			} else if k := slices.Index(e.Secrets, s); k < j {
				report(sp, "", fmt.Errorf("duplicate of %s", at(fmt.Sprintf("secrets[%d]", k))))
			}
		}
	}

	// topics
	if len(e.Topics) == 0 {
		warn(at("topics"), "no topics: the endpoint receives only messages that name it")
	}
	for j, t := range e.Topics {
		if strings.TrimSpace(t) == "" {
			report(at(fmt.Sprintf("topics[%d]", j)), "", errors.New("must not be empty"))
		}
	}

	if e.Timeout < DeliveryTimeoutMin || e.Timeout > DeliveryTimeoutMax {
		report(at("timeout"), fmtDuration(e.Timeout), fmt.Errorf("must be between %s and %s", fmtDuration(DeliveryTimeoutMin), fmtDuration(DeliveryTimeoutMax)))
	}

	// headers, in sorted order so that errors are stable
	seen := make(map[string]string, len(e.Headers))
	for _, name := range slices.Sorted(maps.Keys(e.Headers)) {
		hp := at("headers." + name)
		switch lower := strings.ToLower(name); {
		case !validHeaderName(name):
			report(hp, name, errors.New("header name must be an HTTP token (letters, digits and !#$%&'*+-.^_`|~)"))
		case webhook.ReservedHeader(name):
			// The webhook client's list, or it would refuse the endpoint.
			report(hp, name, errors.New("header is set by Herald and cannot be overridden"))
		case seen[lower] != "":
			report(hp, name, fmt.Errorf("duplicate of header %q (names ignore case)", seen[lower]))
		default:
			seen[lower] = name
		}
		if !validHeaderValue(e.Headers[name].Value()) {
			report(hp, "", errors.New("header value must not contain control characters"))
		}
	}

	if e.MaxInFlight < EndpointMaxInFlightMin || e.MaxInFlight > EndpointMaxInFlightMax {
		report(at("max_in_flight"), strconv.Itoa(e.MaxInFlight), fmt.Errorf("must be between %d and %d", EndpointMaxInFlightMin, EndpointMaxInFlightMax))
	}

	for j, s := range e.PermanentStatuses {
		sp := at(fmt.Sprintf("permanent_statuses[%d]", j))
		switch {
		case s < 400 || s > 499:
			report(sp, strconv.Itoa(s), errors.New("must be a 4xx status (400..499)"))
		case s == 410:
			report(sp, "410", errors.New("410 Gone is always final; remove it"))
		case s == 429:
			report(sp, "429", errors.New("429 Too Many Requests is always retried; remove it"))
		case slices.Index(e.PermanentStatuses, s) < j:
			report(sp, strconv.Itoa(s), errors.New("duplicate status"))
		}
	}

	// tls
	tp := at("tls")
	checkFile := func(path, name string) {
		if name == "" {
			return
		}
		if st, err := os.Stat(name); err != nil {
			report(path, name, errors.New("file does not exist or cannot be read"))
		} else if st.IsDir() {
			report(path, name, errors.New("is a directory, not a file"))
		}
	}
	checkFile(tp+".ca_file", e.TLS.CAFile)
	checkFile(tp+".cert_file", e.TLS.CertFile)
	checkFile(tp+".key_file", e.TLS.KeyFile)
	if (e.TLS.CertFile == "") != (e.TLS.KeyFile == "") {
		missing := tp + ".key_file"
		if e.TLS.CertFile == "" {
			missing = tp + ".cert_file"
		}
		report(missing, "", errors.New("cert_file and key_file must be set together"))
	}
	switch e.TLS.MinVersion {
	case "", "1.2", "1.3":
	default:
		report(tp+".min_version", e.TLS.MinVersion, errors.New(`must be "1.2" or "1.3" (or empty for 1.2)`))
	}

	// ordering
	// One at a time, so that both are reported.
	var ce *webhook.ConfigError
	if errors.As(webhook.CheckFormat(e.Format, ""), &ce) {
		report(at("format"), e.Format, ce.Err)
	}
	if errors.As(webhook.CheckFormat("", e.CloudEventsSource), &ce) {
		report(at("cloudevents_source"), e.CloudEventsSource, ce.Err)
	}
	switch e.OnDead {
	case "", OnDeadBlock, OnDeadSkip: // "" is the default, block
	default:
		report(at("on_dead"), e.OnDead, errors.New("must be block or skip"))
	}
	if e.OnDead == OnDeadSkip && !e.Ordered {
		warn(at("on_dead"), "has no effect unless ordered is true")
	}

	// rate limit
	if !(e.RateLimit >= 0 && e.RateLimit <= EndpointRateLimitMax) { // catches NaN too
		report(at("rate_limit"), strconv.FormatFloat(e.RateLimit, 'g', -1, 64), fmt.Errorf("must be between 0 (unlimited) and %g", float64(EndpointRateLimitMax)))
	}
	switch {
	case e.RateBurst < 0 || e.RateBurst > EndpointRateBurstMax:
		report(at("rate_burst"), strconv.Itoa(e.RateBurst), fmt.Errorf("must be between 0 (max(1, ceil(rate_limit))) and %d", EndpointRateBurstMax))
	case e.RateBurst > 0 && e.RateLimit == 0:
		report(at("rate_burst"), strconv.Itoa(e.RateBurst), errors.New("must be 0 when rate_limit is 0 (unlimited)"))
	}
}

// ValidateEndpoint checks one endpoint that does not come from the
// configuration file (a row of outbox.endpoints, or the herald endpoints
// command) with the checks Parse runs on each endpoints[] item. It checks
// ep.WithDefaults(d), so zero Timeout, MaxInFlight and OnDead and a nil
// PermanentStatuses stand for their defaults. TLS files must be given as
// absolute paths, since there is no file to resolve them against.
//
// It returns nil or an *Error whose problems name bare fields ("url",
// "secrets[1]", "tls.ca_file"), without a file or line. Secrets are never in
// the error. It cannot check that relay.lease covers the endpoint's timeout:
// Config.ValidateEndpoint does that too.
func ValidateEndpoint(ep Endpoint, d Delivery) error {
	var problems []*FieldError
	report := func(path, value string, err error) {
		problems = append(problems, &FieldError{Field: path, Value: value, Err: err})
	}
	e := ep.WithDefaults(d)
	checkEndpointName("name", e.Name, report)
	checkEndpoint("", e, report, func(string, string) {})
	for path, f := range map[string]string{"tls.ca_file": e.TLS.CAFile, "tls.cert_file": e.TLS.CertFile, "tls.key_file": e.TLS.KeyFile} {
		if f != "" && !filepath.IsAbs(f) {
			report(path, f, errors.New("must be an absolute path"))
		}
	}
	if len(problems) == 0 {
		return nil
	}
	slices.SortStableFunc(problems, func(a, b *FieldError) int { return strings.Compare(a.Field, b.Field) })
	return &Error{Problems: problems}
}

// ValidateEndpoint is the package's ValidateEndpoint with c.Delivery, plus
// the check that c.Relay.Lease is at least the endpoint's timeout plus
// RelayLeaseMargin, which the file's endpoints get from Validate.
func (c *Config) ValidateEndpoint(ep Endpoint) error {
	err := ValidateEndpoint(ep, c.Delivery)
	var problems []*FieldError
	if cerr := (*Error)(nil); errors.As(err, &cerr) {
		problems = cerr.Problems
	}
	e := ep.WithDefaults(c.Delivery)
	if e.Timeout+RelayLeaseMargin > c.Relay.Lease {
		problems = append(problems, &FieldError{Field: "timeout", Value: fmtDuration(e.Timeout), Err: fmt.Errorf(
			"must be at most relay.lease (%s) - %s = %s", fmtDuration(c.Relay.Lease), fmtDuration(RelayLeaseMargin), fmtDuration(c.Relay.Lease-RelayLeaseMargin))})
	}
	if len(problems) == 0 {
		return nil
	}
	slices.SortStableFunc(problems, func(a, b *FieldError) int { return strings.Compare(a.Field, b.Field) })
	return &Error{Problems: problems}
}

// checkSecret validates a Standard Webhooks secret without ever putting it
// in the error.
func checkSecret(s string) error {
	raw, ok := strings.CutPrefix(strings.TrimSpace(s), SecretPrefix)
	if !ok {
		return fmt.Errorf("must start with %q (value not shown)", SecretPrefix)
	}
	key, err := base64.StdEncoding.DecodeString(raw)
	if err != nil {
		key, err = base64.RawStdEncoding.DecodeString(raw)
	}
	if err != nil {
		return fmt.Errorf("must be %q followed by standard base64 (value not shown)", SecretPrefix)
	}
	if len(key) < SecretMinBytes || len(key) > SecretMaxBytes {
		return fmt.Errorf("must decode to %d..%d bytes, not %d (value not shown)", SecretMinBytes, SecretMaxBytes, len(key))
	}
	return nil
}

// checkDatabaseURL accepts a postgres:// or postgresql:// URL or a key=value
// connection string. Its errors never include the value.
func checkDatabaseURL(s string) error {
	bad := errors.New("must be a postgres:// or postgresql:// URL or a key=value connection string (value not shown)")
	if strings.Contains(s, "://") {
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
			return bad
		}
		return nil
	}
	if !strings.Contains(s, "=") {
		return bad
	}
	return nil
}

// validHeaderName reports whether name is an RFC 9110 token.
func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for _, c := range []byte(name) {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// validHeaderValue reports whether v has no control characters but tab.
func validHeaderValue(v string) bool {
	for _, c := range []byte(v) {
		if (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// fmtDuration prints a duration without trailing zero units: "5m", "1h30m".
func fmtDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}
