package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	"github.com/herald-relay/herald/cmd/herald/internal/config"
	"github.com/herald-relay/herald/cmd/herald/internal/ops"
	"github.com/herald-relay/herald/relay"
	"github.com/herald-relay/herald/webhook"
)

// endpointSet turns rows of outbox.endpoints into relay endpoints. A row
// that has not changed keeps its webhook sender, and so its connections.
type endpointSet struct {
	mu        sync.Mutex
	client    *webhook.Client
	clientCfg webhook.ClientConfig
	delivery  config.Delivery
	lease     time.Duration
	built     map[string]builtEndpoint
	// unreadable are the endpoints whose rows cannot be read: Unusable, so
	// that their messages wait.
	unreadable map[string]relay.Endpoint
}

// builtEndpoint is what was built for a row, and what it was built from:
// herald's cache, so that a reload rebuilds only what changed. Layer:
// cmd/herald's wiring between config.Endpoint and relay.Endpoint.
type builtEndpoint struct {
	settings config.Endpoint // the row's, defaults applied
	client   *webhook.Client
	files    string // tlsFiles(settings.TLS) when built
	ep       relay.Endpoint
	sender   *webhook.Endpoint // nil when the endpoint is unusable
}

func newEndpointSet(cfg *config.Config) *endpointSet {
	cc := webhookClientConfig(cfg)
	return &endpointSet{client: webhook.NewClient(cc), clientCfg: cc, delivery: cfg.Delivery, lease: cfg.Relay.Lease,
		built: map[string]builtEndpoint{}, unreadable: map[string]relay.Endpoint{}}
}

// reconfigure applies new delivery settings (a reloaded file) at the next
// build. Only the endpoints they change are rebuilt: the others keep their
// sender, and so their connections and the relay's state for them
// (circuit breaker, requests in flight, rate limiter).
func (s *endpointSet) reconfigure(cfg *config.Config) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cc := webhookClientConfig(cfg); !reflect.DeepEqual(cc, s.clientCfg) {
		s.client, s.clientCfg = webhook.NewClient(cc), cc
	}
	s.delivery = cfg.Delivery
}

// build returns the relay endpoints for rows. A row that cannot be used (a
// TLS file that does not load, settings that do not validate, a timeout
// longer than the lease allows) becomes an endpoint marked Unusable, which
// holds its messages until it is fixed: left out, its subscribers' messages
// would be acknowledged without it. A row whose settings, state and TLS
// files are unchanged keeps what was built for it. Senders replaced here are
// the relay's to close once their requests have finished (SetEndpoints).
func (s *endpointSet) build(rows []ops.Endpoint) []relay.Endpoint {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := make(map[string]builtEndpoint, len(rows))
	out := make([]relay.Endpoint, 0, len(rows))
	for _, row := range rows {
		b := s.buildRow(row)
		next[row.Name] = b
		out = append(out, b.ep)
	}
	s.built = next
	return out
}

// buildRow builds row, or keeps what was built for it when its settings,
// state and TLS files are unchanged. Callers hold mu.
func (s *endpointSet) buildRow(row ops.Endpoint) builtEndpoint {
	ep := row.Endpoint.WithDefaults(s.delivery)
	// Disabled is the row's state, not a setting of the sender.
	disabled := !row.DisabledAt.IsZero()
	ep.Disabled = false
	files := tlsFiles(ep.TLS)
	if b, ok := s.built[row.Name]; ok && b.client == s.client && b.files == files && reflect.DeepEqual(b.settings, ep) {
		b.ep.Disabled = disabled
		return b
	}
	re, sender := s.buildOne(ep)
	re.Disabled = disabled
	return builtEndpoint{settings: ep, client: s.client, files: files, ep: re, sender: sender}
}

// unreadableEndpoint is the relay endpoint of a row that cannot be read:
// Unusable, not left out, so that its messages wait for the row to be
// mended (the relay logs why, once).
func unreadableEndpoint(re ops.RowError) relay.Endpoint {
	return relay.Endpoint{Name: re.Name, Topics: re.Topics, Ordered: re.Ordered, OnDeadSkip: re.OnDeadSkip,
		Unusable: fmt.Errorf("its row in outbox.endpoints cannot be read: %w", re.Err)}
}

// apply brings the set up to date with changes (see
// ops.EndpointChangesSince): only the rows that changed are built again.
func (s *endpointSet) apply(c ops.EndpointChanges) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, name := range c.Deleted {
		delete(s.built, name)
		delete(s.unreadable, name)
	}
	for _, row := range c.Changed {
		s.built[row.Name] = s.buildRow(row)
		delete(s.unreadable, row.Name)
	}
	for _, re := range c.Skipped {
		delete(s.built, re.Name)
		s.unreadable[re.Name] = unreadableEndpoint(re)
	}
}

// endpoints returns the relay endpoints of the set, by name.
func (s *endpointSet) endpoints() []relay.Endpoint {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := make([]string, 0, len(s.built)+len(s.unreadable))
	for name := range s.built {
		names = append(names, name)
	}
	for name := range s.unreadable {
		names = append(names, name)
	}
	slices.Sort(names)
	out := make([]relay.Endpoint, len(names))
	for i, name := range names {
		if b, ok := s.built[name]; ok {
			out[i] = b.ep
		} else {
			out[i] = s.unreadable[name]
		}
	}
	return out
}

// buildOne builds the sender and relay endpoint of ep (defaults applied),
// or an Unusable relay endpoint that says why it cannot.
func (s *endpointSet) buildOne(ep config.Endpoint) (relay.Endpoint, *webhook.Endpoint) {
	err := config.ValidateEndpoint(ep, s.delivery)
	if err == nil && ep.Timeout+relay.LeaseMargin > s.lease {
		err = fmt.Errorf("timeout: %s + %s exceeds relay.lease (%s)", ep.Timeout, relay.LeaseMargin, s.lease)
	}
	if err == nil {
		re, sender, berr := buildEndpoint(s.client, ep)
		if berr == nil {
			return re, sender
		}
		err = berr
	}
	return relay.Endpoint{
		Name: ep.Name, Topics: ep.Topics, Ordered: ep.Ordered, OnDeadSkip: ep.OnDead == config.OnDeadSkip,
		Unusable: errors.New(redactSecrets(strings.ReplaceAll(err.Error(), "\n", "; "), ep)),
	}, nil
}

// filesChanged reports whether a TLS file of a built endpoint changed
// since it was built: a key fixed, a certificate renewed.
func (s *endpointSet) filesChanged() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, b := range s.built {
		if tlsFiles(b.settings.TLS) != b.files {
			return true
		}
	}
	return false
}

// maxTLSFileBytes bounds how much of one TLS file tlsFiles reads.
const maxTLSFileBytes = 1 << 20

// tlsFiles sums up the contents of the TLS files, so that a change to any
// of them is seen; a file that cannot be read counts as its error.
func tlsFiles(t config.EndpointTLS) string {
	if t.CAFile == "" && t.CertFile == "" && t.KeyFile == "" {
		return ""
	}
	h := sha256.New()
	for _, name := range []string{t.CAFile, t.CertFile, t.KeyFile} {
		fmt.Fprintf(h, "%q\n", name)
		if name == "" {
			continue
		}
		f, err := os.Open(name)
		if err == nil {
			_, err = io.Copy(h, io.LimitReader(f, maxTLSFileBytes))
			f.Close()
		}
		if err != nil {
			fmt.Fprintf(h, "error: %v\n", err)
		}
	}
	return string(h.Sum(nil))
}

// redactSecrets removes ep's secrets from text, an error about ep: its
// signing secrets, header values and the URL's credentials and query (the
// whole URL when it does not parse). The text is stored as the held pairs'
// last_error and logged.
func redactSecrets(text string, ep config.Endpoint) string {
	var secrets []string
	for _, sec := range ep.SigningSecrets() {
		secrets = append(secrets, sec.Value(), strings.TrimPrefix(sec.Value(), config.SecretPrefix))
	}
	for _, v := range ep.Headers {
		secrets = append(secrets, v.Value())
	}
	if u, err := url.Parse(ep.URL); err != nil {
		secrets = append(secrets, ep.URL)
	} else {
		if u.User != nil {
			secrets = append(secrets, u.User.String())
			if pw, ok := u.User.Password(); ok {
				secrets = append(secrets, pw)
			}
		}
		secrets = append(secrets, u.RawQuery)
	}
	// Longest first, so that a secret containing another goes whole.
	slices.SortFunc(secrets, func(a, b string) int { return len(b) - len(a) })
	for _, sec := range secrets {
		if len(sec) >= minRedacted {
			text = strings.ReplaceAll(text, sec, "[redacted]")
		}
	}
	return text
}

// minRedacted is the shortest value redactSecrets looks for: shorter ones
// would mangle the text around them more than they could give away.
const minRedacted = 4

func (s *endpointSet) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, b := range s.built {
		if b.sender != nil {
			b.sender.Close()
		}
	}
}

// load reads outbox.endpoints and builds the relay's endpoints; mark is the
// version they are complete up to (ops.ListEndpointsAt). A row that cannot
// be read, like one that cannot be built, becomes an Unusable endpoint that
// holds its messages; the others go on.
func (s *endpointSet) load(ctx context.Context, pool *pgxpool.Pool) (eps []relay.Endpoint, mark int64, err error) {
	rows, skipped, mark, err := ops.ListEndpointsAt(ctx, pool)
	if err != nil {
		return nil, 0, err
	}
	s.build(rows)
	s.mu.Lock()
	s.unreadable = make(map[string]relay.Endpoint, len(skipped))
	for _, re := range skipped {
		s.unreadable[re.Name] = unreadableEndpoint(re)
	}
	s.mu.Unlock()
	return s.endpoints(), mark, nil
}

// loadSince reads what changed in outbox.endpoints after mark and applies
// it: eps are the relay's endpoints when changed, next the new mark. A
// TRUNCATE needs a full load.
func (s *endpointSet) loadSince(ctx context.Context, pool *pgxpool.Pool, mark int64) (eps []relay.Endpoint, next int64, changed, full bool, err error) {
	c, err := ops.EndpointChangesSince(ctx, pool, mark)
	if err != nil || c.Truncated {
		return nil, mark, false, c.Truncated, err
	}
	if len(c.Changed)+len(c.Skipped)+len(c.Deleted) == 0 {
		return nil, max(mark, c.Mark), false, false, nil
	}
	s.apply(c)
	return s.endpoints(), c.Mark, true, false, nil
}

// watchEndpoints keeps the relay's endpoints in step with outbox.endpoints,
// whose rows carry the version of their last change (migrations/008). mark
// is the version the relay's endpoints are complete up to. On NOTIFY
// herald_endpoints and every refresh interval, it reads only what changed
// since mark, in the snapshot that gives the next mark: a notification
// is only a wake-up, so one that comes late, or twice, or never, costs an
// empty read or a refresh interval's delay, never a change. It re-reads
// the whole table when refresh is signalled (a reload), when a TLS file
// changed, and after a TRUNCATE.
func watchEndpoints(ctx context.Context, pool *pgxpool.Pool, set *endpointSet, r *relay.Relay, mark int64,
	every time.Duration, refresh <-chan struct{}, log zerolog.Logger) {
	notified := make(chan struct{}, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		listenEndpoints(ctx, pool, notified, log)
	}()
	defer wg.Wait()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		full := false
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			full = set.filesChanged()
		case <-notified:
		case <-refresh:
			full = true
		}
		var eps []relay.Endpoint
		next, changed := mark, true
		var err error
		if !full {
			eps, next, changed, full, err = set.loadSince(ctx, pool, mark)
		}
		if full && err == nil {
			eps, next, err = set.load(ctx, pool)
		}
		if err != nil {
			if ctx.Err() == nil {
				log.Error().Err(err).Msg("read endpoints")
			}
			continue
		}
		if changed {
			if err := r.SetEndpoints(eps); err != nil {
				log.Error().Err(err).Msg("endpoints not applied")
				continue
			}
		}
		mark = next
	}
}

// listenEndpoints signals notified on every NOTIFY herald_endpoints, and
// reconnects (polling covers the gaps) when its connection fails.
func listenEndpoints(ctx context.Context, pool *pgxpool.Pool, notified chan<- struct{}, log zerolog.Logger) {
	for ctx.Err() == nil {
		err := func() error {
			conn, err := pgx.ConnectConfig(ctx, pool.Config().ConnConfig.Copy())
			if err != nil {
				return err
			}
			defer conn.Close(context.WithoutCancel(ctx))
			if _, err := conn.Exec(ctx, "LISTEN "+ops.EndpointsChannel); err != nil {
				return err
			}
			for {
				if _, err := conn.WaitForNotification(ctx); err != nil {
					return err
				}
				select {
				case notified <- struct{}{}:
				default:
				}
			}
		}()
		if ctx.Err() != nil {
			return
		}
		log.Warn().Err(err).Msg("listen for endpoint changes; retrying in 5s (polling meanwhile)")
		select {
		case <-ctx.Done():
		case <-time.After(5 * time.Second):
		}
	}
}

// restartOnly names the settings a reload cannot change in a running relay.
func restartOnly(old, next *config.Config) []string {
	var keys []string
	if old.Database != next.Database {
		keys = append(keys, "database")
	}
	if old.Relay != next.Relay {
		keys = append(keys, "relay")
	}
	if old.Breaker != next.Breaker {
		keys = append(keys, "breaker")
	}
	if old.Metrics != next.Metrics {
		keys = append(keys, "metrics")
	}
	if old.Maintenance != next.Maintenance {
		keys = append(keys, "maintenance")
	}
	if old.History != next.History {
		keys = append(keys, "history")
	}
	if !slices.EqualFunc(old.Sources, next.Sources, func(a, b config.Source) bool {
		return a.Name == b.Name && a.URL == b.URL && a.MaxConns == b.MaxConns
	}) {
		keys = append(keys, "sources")
	}
	if old.Log != next.Log {
		keys = append(keys, "log")
	}
	if old.Admin.Listen != next.Admin.Listen || !slices.Equal(old.Admin.Tokens, next.Admin.Tokens) {
		keys = append(keys, "admin")
	}
	slices.Sort(keys)
	return keys
}

// persistDisable records an automatic disable in outbox.endpoints, so every
// relay and every restart sees it.
func persistDisable(pool *pgxpool.Pool, log zerolog.Logger) func(string, string) {
	return func(name, reason string) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := ops.DisableEndpoint(ctx, pool, name, reason); err != nil {
			log.Error().Err(err).Str("endpoint", name).Msg(fmt.Sprintf("could not record that the endpoint is disabled: %v", err))
		}
	}
}
