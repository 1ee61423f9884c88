package main

import (
	"context"
	"flag"
	"fmt"
	"strings"

	"github.com/herald-relay/herald/migrations"
)

func cmdMigrate(ctx context.Context, g *globals, args []string) error {
	sub := "up"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		sub, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet("migrate "+sub, flag.ContinueOnError)
	to := fs.Int("to", -1, "target version (migrate down)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if sub == "print" {
		ms, err := migrations.UpSQL()
		if err != nil {
			return err
		}
		for _, m := range ms {
			fmt.Fprintf(g.stdout, "-- herald migration %03d_%s\n%s\n", m.Version, m.Name, strings.TrimSpace(m.UpSQL))
			fmt.Fprintf(g.stdout, "-- record it: UPDATE %s SET version = %d;\n\n", migrations.VersionTable, m.Version)
		}
		return nil
	}
	cfg, err := loadConfig(g, true)
	if err != nil {
		return err
	}
	log, err := newLogger(g, cfg)
	if err != nil {
		return err
	}
	pool, err := openPool(ctx, cfg, false)
	if err != nil {
		return err
	}
	defer pool.Close()
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("connect to database: %w", err)
	}
	defer conn.Release()
	switch sub {
	case "up":
		st, err := migrations.Migrate(ctx, conn.Conn(), -1)
		if err != nil {
			return err
		}
		if st.From == st.To {
			log.Info().Int32("version", st.To).Msg("schema up to date")
		} else {
			log.Info().Int32("from", st.From).Int32("to", st.To).Msg("schema migrated")
		}
	case "down":
		if *to < 0 {
			return fmt.Errorf("%w: migrate down needs --to VERSION", errUsage)
		}
		st, err := migrations.Migrate(ctx, conn.Conn(), int32(*to))
		if err != nil {
			return err
		}
		log.Info().Int32("from", st.From).Int32("to", st.To).Msg("schema migrated down")
	case "status":
		st, err := migrations.Current(ctx, conn.Conn())
		if err != nil {
			return err
		}
		state := "up to date"
		if st.From < st.Latest {
			state = "behind: run `herald migrate`"
		}
		fmt.Fprintf(g.stdout, "schema version %d of %d (%s)\n", st.From, st.Latest, state)
	default:
		return fmt.Errorf("%w: unknown migrate command %q", errUsage, sub)
	}
	return nil
}
