package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/herald-relay/herald/cmd/herald/internal/ops"
)

func cmdDead(ctx context.Context, g *globals, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: dead list|replay|purge", errUsage)
	}
	sub, args := args[0], args[1:]
	// Each subcommand defines only the flags it honours, so that a flag it
	// would ignore (purge --limit) is refused by name instead of widening
	// what it acts on.
	fs := flag.NewFlagSet("dead "+sub, flag.ContinueOnError)
	var f ops.DeadFilter
	fs.StringVar(&f.ID, "id", "", "only the message with this id")
	fs.StringVar(&f.Endpoint, "endpoint", "", "only messages dead for this endpoint")
	fs.StringVar(&f.Reason, "reason", "", "only this reason: exhausted, gone, rejected, unroutable, invalid")
	sourceName := fs.String("source", "", "the source (database) to act on; required with several sources")
	dryRun := fs.Bool("dry-run", false, "print how many messages the command would act on, and change nothing")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	switch sub {
	case "list":
		fs.IntVar(&f.Limit, "limit", ops.DeadListLimitDefault, "list at most this many")
	case "replay":
		fs.IntVar(&f.Limit, "limit", 0, "replay at most this many, oldest first (0: every one selected)")
		fs.BoolVar(&f.All, "all", false, "replay every dead message (without --id, --endpoint or --reason)")
	case "purge":
		fs.DurationVar(&f.OlderThan, "older-than", 0, "purge messages dead for longer than this")
	default:
		return fmt.Errorf("%w: unknown dead command %q", errUsage, sub)
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: dead %s: unexpected argument %q", errUsage, sub, fs.Arg(0))
	}
	// These two mistakes are named by their flags before any connection;
	// ops finds the others, and filterUsage names their flags.
	switch {
	case sub == "replay" && f.ID == "" && f.Endpoint == "" && f.Reason == "" && !f.All:
		return fmt.Errorf("%w: dead replay needs --id, --endpoint, --reason or --all", errUsage)
	case sub == "purge" && f.OlderThan <= 0:
		return fmt.Errorf("%w: dead purge needs --older-than DURATION", errUsage)
	}
	_, pool, err := openSourcePool(ctx, g, *sourceName)
	if err != nil {
		return err
	}
	defer pool.Close()
	var out deadOutput
	switch {
	case sub == "list" && *dryRun:
		n, err := ops.CountDead(ctx, pool, f)
		if err := filterUsage("dead "+sub, err); err != nil {
			return err
		}
		out = deadCount{Count: n}
	case sub == "list":
		list, err := ops.ListDead(ctx, pool, f)
		if err := filterUsage("dead "+sub, err); err != nil {
			return err
		}
		out = deadList(list)
	case sub == "replay":
		replay := ops.ReplayDead
		if *dryRun {
			replay = ops.ReplayDeadDryRun
		} else if err := countFirst(ctx, g, pool, sub, f, "replaying them in one transaction"); err != nil {
			return err
		}
		res, err := replay(ctx, pool, f)
		if err := filterUsage("dead "+sub, err); err != nil {
			return err
		}
		out = replayOutput(res)
	case sub == "purge":
		var res ops.PurgeResult
		var err error
		if *dryRun {
			res, err = ops.PurgeDeadDryRun(ctx, pool, f)
		} else {
			if err := countFirst(ctx, g, pool, sub, f, "purging them in chunks"); err != nil {
				return err
			}
			res, err = ops.PurgeDeadWithProgress(ctx, pool, f, func(purged int64) {
				fmt.Fprintf(g.stderr, "herald: purged %d so far\n", purged)
			})
		}
		if err := filterUsage("dead "+sub, err); err != nil {
			return err
		}
		out = purgeOutput(res)
	}
	if *asJSON {
		return printJSON(g.stdout, out)
	}
	return out.print(g.stdout)
}

// countFirst tells the operator on stderr (stdout may be --json) how many
// dead messages a replay or purge is about to act on, before it starts.
func countFirst(ctx context.Context, g *globals, db ops.DB, sub string, f ops.DeadFilter, how string) error {
	n, err := ops.CountDead(ctx, db, f)
	if err := filterUsage("dead "+sub, err); err != nil {
		return err
	}
	_, err = fmt.Fprintf(g.stderr, "herald: %d dead messages selected; %s\n", n, how)
	return err
}

// printJSON prints v as indented JSON, the --json output of every command.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// filterUsage makes a filter ops refuses a usage error (status 2), naming
// the command and the flag.
func filterUsage(cmd string, err error) error {
	var fe *ops.FilterError
	if !errors.As(err, &fe) {
		return err
	}
	flagName := strings.ReplaceAll(fe.Field, "_", "-")
	if fe.Value == "" {
		return fmt.Errorf("%w: %s: --%s %v", errUsage, cmd, flagName, fe.Err)
	}
	return fmt.Errorf("%w: %s: --%s %v (got %q)", errUsage, cmd, flagName, fe.Err, fe.Value)
}

// deadOutput is a result of `herald dead`, printed as a table or as JSON.
type deadOutput interface {
	print(w io.Writer) error
}

type deadList []ops.DeadMessage

func (l deadList) print(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DEAD_ID\tMESSAGE_ID\tTOPIC\tENDPOINT\tREASON\tATTEMPTS\tSTATUS\tDIED_AT\tLAST_ERROR")
	for _, m := range l {
		status := "-"
		if m.LastStatus != nil {
			status = strconv.Itoa(*m.LastStatus)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", m.DeadID, m.ID, m.Topic, orDash(m.Endpoint), m.Reason,
			m.Attempts, status, m.DiedAt.UTC().Format(time.RFC3339), m.LastError)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(l) == 0 {
		_, err := fmt.Fprintln(w, "(no dead messages)")
		return err
	}
	return nil
}

// deadCount is what `dead list --dry-run` prints.
type deadCount struct {
	Count int64 `json:"count"`
}

func (c deadCount) print(w io.Writer) error {
	_, err := fmt.Fprintf(w, "%d dead messages selected\n", c.Count)
	return err
}

type replayOutput ops.ReplayResult

func (r replayOutput) print(w io.Writer) error {
	verb, left := "replayed", "skipped"
	if r.DryRun {
		verb, left = "would replay", "would skip"
	}
	fmt.Fprintf(w, "%s %d dead messages\n", verb, r.Replayed)
	if len(r.Skipped) == 0 {
		return nil
	}
	fmt.Fprintf(w, "%s %d (left in outbox.dead):\n", left, len(r.Skipped))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DEAD_ID\tMESSAGE_ID\tENDPOINT\tWHY")
	for _, s := range r.Skipped {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", s.DeadID, s.ID, orDash(s.Endpoint), s.Why)
	}
	return tw.Flush()
}

type purgeOutput ops.PurgeResult

func (p purgeOutput) print(w io.Writer) error {
	verb := "purged"
	if p.DryRun {
		verb = "would purge"
	}
	_, err := fmt.Fprintf(w, "%s %d dead messages\n", verb, p.Purged)
	return err
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
