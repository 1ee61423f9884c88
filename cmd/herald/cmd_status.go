package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/herald-relay/herald/cmd/herald/internal/ops"
	"github.com/herald-relay/herald/relay"
)

// errAttention is status's error when something needs attention: exit
// code 1, after the status is printed, for scripts and cron.
var errAttention = errors.New("needs attention")

func cmdStatus(ctx context.Context, g *globals, args []string) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print the status as JSON")
	sourceName := fs.String("source", "", "the source (database) to read; required with several sources")
	maxAge := fs.Duration("max-pending-age", ops.StatusMaxPendingAgeDefault,
		"an endpoint whose oldest owed message is older needs attention (0: never)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("%w: status takes no arguments (got %q)", errUsage, pos[0])
	}
	if *maxAge < 0 {
		return fmt.Errorf("%w: status: --max-pending-age must not be negative (got %s)", errUsage, *maxAge)
	}
	cfg, pool, err := openSourcePool(ctx, g, *sourceName)
	if err != nil {
		return err
	}
	defer pool.Close()
	// The setting read is this process's: it should be the relays' (see
	// docs/operations.md#status).
	opts := ops.StatusOptions{MaxPendingAge: maxAge, HistoryAttempts: relay.AttemptLog(cfg.History.Attempts)}
	s, err := ops.GetStatus(ctx, pool, opts)
	if err != nil {
		return err
	}
	if *asJSON {
		err = printJSON(g.stdout, s)
	} else {
		err = statusView(s).print(g.stdout)
	}
	if err != nil {
		return err
	}
	if len(s.Attention) > 0 {
		return fmt.Errorf("%w: %d problems", errAttention, len(s.Attention))
	}
	return nil
}

type statusView ops.Status

func (s statusView) print(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ENDPOINT\tSTATE\tBREAKER\tPENDING\tRETRYING\tDEAD\tOLDEST\tOK_5M\tOK_60M")
	for _, e := range s.Endpoints {
		state := "enabled"
		if e.Disabled {
			state = "disabled"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%s\t%s\t%s\n", e.Name, state, e.Breaker, e.Pending, e.Retrying, e.Dead,
			age(e.OldestPendingSeconds), s.rate(e.SuccessRate5m, e.Attempts5m), s.rate(e.SuccessRate60m, e.Attempts60m))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(s.Endpoints) == 0 {
		fmt.Fprintln(w, "(no endpoints)")
	}
	fmt.Fprintf(w, "\nhot lane: %d pending, oldest %s; %d dead without an endpoint\n", s.Pending, age(s.OldestPendingSeconds), s.DeadUnrouted)
	if s.RatesUnavailable != "" {
		fmt.Fprintf(w, "success rates: n/a (%s)\n", s.RatesUnavailable)
	}
	if len(s.Attention) == 0 {
		_, err := fmt.Fprintln(w, "nothing needs attention")
		return err
	}
	_, err := fmt.Fprintf(w, "needs attention:\n  %s\n", strings.Join(s.Attention, "\n  "))
	return err
}

func age(seconds float64) string {
	if seconds <= 0 {
		return "-"
	}
	return time.Duration(seconds * float64(time.Second)).Round(time.Second).String()
}

// rate is an OK_ column: n/a when the attempts are not all logged, - when
// there was none.
func (s statusView) rate(r *float64, n *int64) string {
	if s.RatesUnavailable != "" {
		return "n/a"
	}
	if r == nil {
		return "-"
	}
	return fmt.Sprintf("%.1f%% of %d", 100**r, *n)
}
