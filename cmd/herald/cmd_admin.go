package main

import (
	"context"
	"flag"
	"fmt"
	"net"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	"github.com/herald-relay/herald/cmd/herald/internal/admin"
	"github.com/herald-relay/herald/cmd/herald/internal/config"
)

// startAdmin serves the admin API on admin.listen over the sources' pools,
// or returns nil when admin.listen is empty. The caller stops it.
func startAdmin(cfg *config.Config, srcs []source, pools []*pgxpool.Pool, log zerolog.Logger) (*admin.Server, error) {
	addr := cfg.Admin.Addr()
	if addr == "" {
		return nil, nil
	}
	sources := make([]admin.Source, len(srcs))
	for i, src := range srcs {
		sources[i] = admin.Source{Name: src.name, DB: pools[i]}
	}
	srv, err := admin.NewServer(admin.Config{Sources: sources, Tokens: cfg.Admin.Tokens, Herald: cfg, Logger: &log})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("admin.listen: %w", err)
	}
	srv.Start(ln)
	log.Info().Str("addr", ln.Addr().String()).Int("tokens", len(cfg.Admin.Tokens)).Msg("serving the admin API")
	return srv, nil
}

// stopAdmin stops srv (nil: none), letting requests in flight finish for
// admin.ShutdownTimeout.
func stopAdmin(srv *admin.Server) error {
	if srv == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), admin.ShutdownTimeout)
	defer cancel()
	return srv.Stop(ctx)
}

// cmdAdmin runs `herald admin serve`: the admin API without a relay, until
// SIGINT/SIGTERM, for operating the outbox from a host that does not
// deliver.
func cmdAdmin(ctx context.Context, g *globals, args []string) error {
	if len(args) == 0 || args[0] != "serve" {
		return fmt.Errorf("%w: admin serve", errUsage)
	}
	fs := flag.NewFlagSet("admin serve", flag.ContinueOnError)
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: admin serve: unexpected argument %q", errUsage, fs.Arg(0))
	}
	cfg, err := loadConfig(g, false)
	if err != nil {
		return err
	}
	if cfg.Admin.Listen == "" {
		return fmt.Errorf("%w: admin serve: admin.listen is not set in %s", errUsage, g.configPath)
	}
	log, err := newLogger(g, cfg)
	if err != nil {
		return err
	}
	srcs := sourcesOf(cfg)
	pools := make([]*pgxpool.Pool, 0, len(srcs))
	defer func() {
		for _, p := range pools {
			p.Close()
		}
	}()
	for _, src := range srcs {
		pool, err := openSource(ctx, src, false)
		if err != nil {
			return err
		}
		pools = append(pools, pool)
	}
	srv, err := startAdmin(cfg, srcs, pools, log)
	if err != nil {
		return err
	}
	<-ctx.Done()
	log.Info().Msg("signal received: stopping the admin API")
	return stopAdmin(srv)
}
