package main

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	"github.com/herald-relay/herald/cmd/herald/internal/config"
	"github.com/herald-relay/herald/cmd/herald/internal/endpoints"
	"github.com/herald-relay/herald/relay"
	"github.com/herald-relay/herald/webhook"
)

// endpointSet turns rows of outbox.endpoints into relay endpoints. A row
// that has not changed keeps its webhook sender, and so its connections.
type endpointSet struct {
	mu       sync.Mutex
	client   *webhook.Client
	delivery config.Delivery
	lease    time.Duration
	log      zerolog.Logger
	built    map[string]builtEndpoint
}

type builtEndpoint struct {
	updatedAt time.Time
	ep        relay.Endpoint
	sender    *webhook.Endpoint
}

func newEndpointSet(cfg *config.Config, log zerolog.Logger) *endpointSet {
	return &endpointSet{client: newWebhookClient(cfg), delivery: cfg.Delivery, lease: cfg.Relay.Lease, log: log,
		built: map[string]builtEndpoint{}}
}

// reconfigure applies new delivery settings (a reloaded file): every sender
// is rebuilt at the next build.
func (s *endpointSet) reconfigure(cfg *config.Config) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.client, s.delivery = newWebhookClient(cfg), cfg.Delivery
	s.built = map[string]builtEndpoint{} // senders replaced below are closed by build's sweep
}

// build returns the relay endpoints for rows. A row that cannot be used (a
// TLS file that went missing, a timeout longer than the lease allows) is
// left out with an error log; the others go on.
func (s *endpointSet) build(rows []endpoints.Endpoint) []relay.Endpoint {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := make(map[string]builtEndpoint, len(rows))
	out := make([]relay.Endpoint, 0, len(rows))
	for _, row := range rows {
		if b, ok := s.built[row.Name]; ok && b.updatedAt.Equal(row.UpdatedAt) {
			next[row.Name] = b
			out = append(out, b.ep)
			continue
		}
		ep := row.Endpoint.WithDefaults(s.delivery)
		if err := config.ValidateEndpoint(ep, s.delivery); err != nil {
			s.log.Error().Str("endpoint", ep.Name).Str("problems", err.Error()).Msg("endpoint left out: invalid settings in outbox.endpoints")
			continue
		}
		if ep.Timeout+relay.LeaseMargin > s.lease {
			s.log.Error().Str("endpoint", ep.Name).Dur("timeout", ep.Timeout).Dur("lease", s.lease).
				Msg("endpoint left out: its timeout + 5s exceeds relay.lease")
			continue
		}
		re, sender, err := buildEndpoint(s.client, ep)
		if err != nil {
			s.log.Error().Err(err).Str("endpoint", ep.Name).Msg("endpoint left out: invalid settings")
			continue
		}
		re.Disabled = !row.DisabledAt.IsZero()
		b := builtEndpoint{updatedAt: row.UpdatedAt, ep: re, sender: sender}
		next[row.Name] = b
		out = append(out, re)
	}
	for name, b := range s.built {
		if nb, ok := next[name]; !ok || nb.sender != b.sender {
			b.sender.Close() // idle connections only; requests in flight finish
		}
	}
	s.built = next
	return out
}

func (s *endpointSet) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, b := range s.built {
		b.sender.Close()
	}
}

// loadEndpoints reads outbox.endpoints and builds the relay's endpoints. A
// row that cannot be read is left out with an error log, as one that cannot
// be built is; the others go on.
func (s *endpointSet) load(ctx context.Context, pool *pgxpool.Pool) ([]relay.Endpoint, int64, error) {
	version, err := endpoints.Version(ctx, pool)
	if err != nil {
		return nil, 0, err
	}
	rows, skipped, err := endpoints.List(ctx, pool)
	if err != nil {
		return nil, 0, err
	}
	for _, re := range skipped {
		s.log.Error().Str("endpoint", re.Name).Str("problems", re.Err.Error()).
			Msg("endpoint left out: its row in outbox.endpoints cannot be read")
	}
	return s.build(rows), version, nil
}

// watchEndpoints keeps the relay's endpoints in step with outbox.endpoints:
// it re-reads them on NOTIFY herald_endpoints, every refresh interval when
// the table's version moved, and when refresh is signalled (a reload).
func watchEndpoints(ctx context.Context, pool *pgxpool.Pool, set *endpointSet, r *relay.Relay, version int64,
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
		force := false
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-notified:
			force = true
		case <-refresh:
			force = true
		}
		v, err := endpoints.Version(ctx, pool)
		if err != nil {
			if ctx.Err() == nil {
				log.Error().Err(err).Msg("read endpoints version")
			}
			continue
		}
		if v == version && !force {
			continue
		}
		eps, v, err := set.load(ctx, pool)
		if err != nil {
			if ctx.Err() == nil {
				log.Error().Err(err).Msg("read endpoints")
			}
			continue
		}
		if err := r.SetEndpoints(eps); err != nil {
			log.Error().Err(err).Msg("endpoints not applied")
			continue
		}
		version = v
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
			if _, err := conn.Exec(ctx, "LISTEN "+endpoints.NotifyChannel); err != nil {
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
	if !slices.EqualFunc(old.Sources, next.Sources, func(a, b config.Source) bool {
		return a.Name == b.Name && a.URL == b.URL && a.MaxConns == b.MaxConns
	}) {
		keys = append(keys, "sources")
	}
	if old.Log != next.Log {
		keys = append(keys, "log")
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
		if err := endpoints.Disable(ctx, pool, name, reason); err != nil {
			log.Error().Err(err).Str("endpoint", name).Msg(fmt.Sprintf("could not record that the endpoint is disabled: %v", err))
		}
	}
}
