package main

import (
	"context"
	"fmt"
	"github.com/jackc/pgx/v5/pgxpool"
	"slices"
	"strings"

	"github.com/herald-relay/herald/cmd/herald/internal/config"
)

// defaultSourceName names the one source of a file with database: and no
// sources:.
const defaultSourceName = "default"

// source is one database Herald relays from: database (named "default",
// its metrics and logs unlabelled, as before sources existed) or one of
// sources.
type source struct {
	name     string
	key      string // the configuration key, for errors: "database" or "sources[1]"
	url      config.Secret
	maxConns int
	labelled bool // metrics carry source="<name>" and logs a source field
}

// sourcesOf returns the sources cfg relays from, in file order.
func sourcesOf(cfg *config.Config) []source {
	if len(cfg.Sources) == 0 {
		return []source{{name: defaultSourceName, key: "database", url: cfg.Database.URL, maxConns: cfg.Database.MaxConns}}
	}
	out := make([]source, len(cfg.Sources))
	for i, s := range cfg.Sources {
		out[i] = source{name: s.Name, key: fmt.Sprintf("sources[%d]", i), url: s.URL, maxConns: s.MaxConns, labelled: true}
	}
	return out
}

// endpoints returns the endpoints of cfg that src delivers to; ok is false
// when cfg no longer has src (a reloaded file).
func (src source) endpoints(cfg *config.Config) (eps []config.Endpoint, ok bool) {
	if !src.labelled {
		return cfg.Endpoints, len(cfg.Sources) == 0
	}
	for _, s := range cfg.Sources {
		if s.Name == src.name {
			return cfg.SourceEndpoints(s), true
		}
	}
	return nil, false
}

// pickSource returns the source named by --source, which may be left out
// when there is only one.
func pickSource(cfg *config.Config, name string) (source, error) {
	all := sourcesOf(cfg)
	names := make([]string, len(all))
	for i, s := range all {
		names[i] = s.name
	}
	if name == "" {
		if len(all) == 1 {
			return all[0], nil
		}
		return source{}, fmt.Errorf("%w: --source is required with several sources: %s", errUsage, strings.Join(names, ", "))
	}
	if i := slices.Index(names, name); i >= 0 {
		return all[i], nil
	}
	return source{}, fmt.Errorf("%w: --source %s: no such source; the sources are: %s", errUsage, name, strings.Join(names, ", "))
}

// openSourcePool loads the configuration and opens a pool on the source a
// database-only command (dead, endpoints) acts on: the only one, or the one
// --source names.
func openSourcePool(ctx context.Context, g *globals, name string) (*config.Config, *pgxpool.Pool, error) {
	cfg, err := loadConfig(g, true)
	if err != nil {
		return nil, nil, err
	}
	src, err := pickSource(cfg, name)
	if err != nil {
		return nil, nil, err
	}
	pool, err := openPool(ctx, src, false)
	return cfg, pool, err
}
