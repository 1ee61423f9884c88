package main

import (
	"context"
	"flag"
	"fmt"
	"strings"

	"github.com/rs/zerolog"

	"github.com/herald-relay/herald/migrations"
)

func cmdMigrate(ctx context.Context, g *globals, args []string) error {
	sub := "up"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		sub, args = args[0], args[1:]
	}
	// Each subcommand defines only the flags it honours, so that a flag it
	// would ignore (migrate up --to 3 used to migrate to the latest) is
	// refused.
	fs := flag.NewFlagSet("migrate "+sub, flag.ContinueOnError)
	to := new(int)
	*to = -1
	if sub == "down" {
		fs.IntVar(to, "to", -1, "target version")
	}
	sourceName := new(string)
	if sub != "print" {
		fs.StringVar(sourceName, "source", "", "migrate only this source (default: every source; migrate down needs it with several)")
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: migrate %s: unexpected arguments %q", errUsage, sub, fs.Args())
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
	switch sub {
	case "up", "status":
	case "down":
		if *to < 0 {
			return fmt.Errorf("%w: migrate down needs --to VERSION", errUsage)
		}
	default:
		return fmt.Errorf("%w: unknown migrate command %q", errUsage, sub)
	}
	srcs := sourcesOf(cfg)
	if *sourceName != "" || sub == "down" {
		src, err := pickSource(cfg, *sourceName)
		if err != nil {
			return err
		}
		srcs = []source{src}
	}
	// Each source in turn: the first failure stops, naming its source.
	for _, src := range srcs {
		l, prefix := log, ""
		if src.labelled {
			l, prefix = log.With().Str("source", src.name).Logger(), src.name+": "
		}
		if err := migrateSource(ctx, g, src, sub, int32(*to), l, prefix); err != nil {
			if src.labelled {
				return fmt.Errorf("source %s: %w", src.name, err)
			}
			return err
		}
	}
	return nil
}

// migrateSource runs migrate sub on one source; prefix starts the line
// migrate status prints.
func migrateSource(ctx context.Context, g *globals, src source, sub string, to int32, log zerolog.Logger, prefix string) error {
	pool, err := openPool(ctx, src, false)
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
		st, err := migrations.Migrate(ctx, conn.Conn(), to)
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
		fmt.Fprintf(g.stdout, "%sschema version %d of %d (%s)\n", prefix, st.From, st.Latest, state)
	}
	return nil
}
