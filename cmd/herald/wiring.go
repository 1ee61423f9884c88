package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	"github.com/herald-relay/herald/cmd/herald/internal/config"
	"github.com/herald-relay/herald/relay"
	"github.com/herald-relay/herald/webhook"
)

// loadConfig reads the configuration file. With no file at the default path
// and DATABASE_URL set, commands that only need the database (migrate, dead)
// run on a default configuration.
func loadConfig(g *globals, databaseOnly bool) (*config.Config, error) {
	cfg, err := config.Load(g.configPath, nil)
	if err == nil {
		return cfg, nil
	}
	if databaseOnly && !g.configSet && errors.Is(err, fs.ErrNotExist) {
		if url := os.Getenv(config.DatabaseURLEnv); url != "" {
			cfg := config.Default()
			cfg.Database.URL = config.Secret(url)
			return cfg, nil
		}
		return nil, fmt.Errorf("no configuration file %s and DATABASE_URL is not set", g.configPath)
	}
	return nil, err
}

func newLogger(g *globals, cfg *config.Config) (zerolog.Logger, error) {
	format := cfg.Log.Format
	if g.logFormat != "" {
		format = g.logFormat
	}
	level := cfg.Log.Level
	if g.logLevel != "" {
		level = g.logLevel
	}
	lvl, err := zerolog.ParseLevel(level)
	if err != nil || level == "" {
		return zerolog.Logger{}, fmt.Errorf("%w: --log-level must be debug, info, warn or error (got %q)", errUsage, level)
	}
	var w io.Writer
	switch format {
	case "json", "":
		w = g.stderr
	case "console":
		w = zerolog.ConsoleWriter{Out: g.stderr, TimeFormat: time.RFC3339}
	default:
		return zerolog.Logger{}, fmt.Errorf("%w: --log-format must be json or console (got %q)", errUsage, format)
	}
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger(), nil
}

// openPool connects to src's database. The relay's own writes may use
// asynchronous commit: losing one in a crash causes a redelivery, never a
// loss, because the producers' inserts are durable.
func openPool(ctx context.Context, src source, asyncCommit bool) (*pgxpool.Pool, error) {
	pc, err := pgxpool.ParseConfig(src.url.Value())
	if err != nil {
		// pgx's parse errors can quote the URL, password included.
		return nil, fmt.Errorf("%s.url: cannot be parsed as a PostgreSQL connection string", src.key)
	}
	pc.MaxConns = int32(src.maxConns)
	pc.ConnConfig.RuntimeParams["application_name"] = "herald"
	if asyncCommit {
		pc.ConnConfig.RuntimeParams["synchronous_commit"] = "off"
	}
	what := "database"
	if src.labelled {
		what = "source " + src.name
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", what, err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to %s %s: %w", what, redactURL(src.url.Value()), err)
	}
	return pool, nil
}

// redactURL names a database without its password.
func redactURL(s string) string {
	pc, err := pgxpool.ParseConfig(s)
	if err != nil {
		return "(unparsable URL)"
	}
	c := pc.ConnConfig
	return fmt.Sprintf("%s@%s:%d/%s", c.User, c.Host, c.Port, c.Database)
}

func webhookClientConfig(cfg *config.Config) webhook.ClientConfig {
	return webhook.ClientConfig{
		AllowPrivateNetworks: cfg.Delivery.AllowPrivateNetworks,
		AllowedCIDRs:         cfg.Delivery.AllowedCIDRs,
		UserAgent:            cfg.Delivery.UserAgent,
		MaxResponseBytes:     int64(cfg.Delivery.MaxResponseBytes),
	}
}

// buildEndpoint makes the webhook sender and the relay endpoint for one
// endpoint, defaults applied.
func buildEndpoint(client *webhook.Client, ep config.Endpoint) (relay.Endpoint, *webhook.Endpoint, error) {
	sender, err := client.Endpoint(ep.WebhookConfig())
	if err != nil {
		return relay.Endpoint{}, nil, err
	}
	return relay.Endpoint{
		Name: ep.Name, Topics: ep.Topics, Sender: sender, Timeout: ep.Timeout,
		MaxInFlight: ep.MaxInFlight, RateLimit: ep.RateLimit, RateBurst: ep.Burst(),
		Ordered: ep.Ordered, OnDeadSkip: ep.OnDead == config.OnDeadSkip, Disabled: ep.Disabled,
	}, sender, nil
}

func cmdConfig(g *globals, args []string) error {
	if len(args) != 1 || args[0] != "check" {
		return fmt.Errorf("%w: config check", errUsage)
	}
	cfg, err := loadConfig(g, false)
	if err != nil {
		return err
	}
	for _, w := range cfg.Warnings() {
		fmt.Fprintf(g.stdout, "warning: %s\n", w)
	}
	fmt.Fprintf(g.stdout, "%s: ok (%d endpoints: %s)\n", g.configPath, len(cfg.Endpoints), endpointNames(cfg))
	return nil
}

func endpointNames(cfg *config.Config) string {
	names := make([]string, len(cfg.Endpoints))
	for i, ep := range cfg.Endpoints {
		names[i] = ep.Name
	}
	return strings.Join(names, ", ")
}
