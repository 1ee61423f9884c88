// Command herald-chaos is Herald's fault suite: it proves the promise "a
// committed message is delivered, or parked with its reason; nothing is
// lost; duplicates are rare" against faults. It builds the real herald
// binary, starts a throwaway PostgreSQL cluster (initdb on a free port in a
// temp dir), and runs each scenario in a database of its own: herald
// processes killed, PostgreSQL restarted or its backends terminated,
// hostile receivers, a TCP fault proxy in front of the receiver or the
// database, operators changing endpoints while messages wait. For each
// scenario it prints what was committed, delivered or parked, lost (must be
// 0), duplicated, the longest stall of delivery and the wall time, and it
// exits 1 when a scenario lost a message or failed one of its checks.
//
//	go run ./cmd/herald-chaos               # long form (make chaos)
//	go run ./cmd/herald-chaos -short        # seconds per scenario (make chaos/short, CI)
//	go run ./cmd/herald-chaos -only sigkill,hostile -markdown
//
// Everything it starts listens on 127.0.0.1, and every loop is bounded in
// count and time. It never touches another PostgreSQL server.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/herald-relay/herald/internal/pgcluster"
)

func main() {
	opt, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "herald-chaos:", err)
		os.Exit(2)
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	rs, err := run(ctx, opt)
	if err != nil {
		fmt.Fprintln(os.Stderr, "herald-chaos:", err)
		os.Exit(1)
	}
	switch {
	case opt.json:
		err = printJSON(os.Stdout, rs)
		printDetails(os.Stderr, rs)
	case opt.markdown:
		printMarkdown(os.Stdout, rs)
		printDetails(os.Stderr, rs)
	default:
		printTable(os.Stdout, rs)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "herald-chaos:", err)
		os.Exit(1)
	}
	for _, r := range rs {
		if !r.ok() {
			os.Exit(1)
		}
	}
}

// options are the command-line flags.
type options struct {
	short    bool
	only     []string
	json     bool
	markdown bool
	keep     bool
	progress io.Writer // a line per scenario as it ends; nil for none
	// dir is the work dir (binary, logs) when the caller owns it; by
	// default a temp dir, removed unless a scenario failed or -keep.
	dir string
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("herald-chaos", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.BoolVar(&o.short, "short", false, "the short form: small N, seconds per scenario (what CI runs)")
	only := fs.String("only", "", "comma-separated scenarios to run (default: all): "+strings.Join(scenarioNames(), ","))
	fs.BoolVar(&o.json, "json", false, "print the results as JSON")
	fs.BoolVar(&o.markdown, "markdown", false, "print the results as a Markdown table (for docs/guarantees.md)")
	fs.BoolVar(&o.keep, "keep", false, "keep the logs and the work dir even when every scenario passed")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *only != "" {
		for _, n := range strings.Split(*only, ",") {
			n = strings.TrimSpace(n)
			if !slices.Contains(scenarioNames(), n) {
				return o, fmt.Errorf("-only: unknown scenario %q (have %s)", n, strings.Join(scenarioNames(), ", "))
			}
			o.only = append(o.only, n)
		}
	}
	o.progress = stderr
	return o, nil
}

// run builds herald, starts the cluster and runs the selected scenarios one
// after the other. An error is one that stopped the suite itself; a
// scenario's failure is in its result.
func run(ctx context.Context, opt options) ([]result, error) {
	root, keep := opt.dir, true
	if root == "" {
		var err error
		if root, err = os.MkdirTemp("", "herald-chaos-"); err != nil {
			return nil, err
		}
		keep = opt.keep
	}
	defer func() {
		if !keep {
			os.RemoveAll(root)
		}
	}()
	bin, err := buildHerald(ctx, root)
	if err != nil {
		return nil, err
	}
	cl, err := pgcluster.Start(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("start PostgreSQL: %w", err)
	}
	defer cl.Stop()

	var rs []result
	for _, s := range scenarios {
		if len(opt.only) > 0 && !slices.Contains(opt.only, s.name) {
			continue
		}
		if ctx.Err() != nil {
			return rs, ctx.Err()
		}
		r := runScenario(ctx, s, opt, bin, cl, root)
		if !r.ok() {
			keep = true
		}
		if opt.progress != nil {
			fmt.Fprintf(opt.progress, "herald-chaos: %-22s %s  lost %d  stuck %d  duplicates %s  stall %s  slowest %s  %s\n",
				r.Scenario, r.verdict(), r.Lost, r.Stuck, r.dups(), r.stall(), r.slowest(), r.Wall.Round(100*time.Millisecond))
		}
		rs = append(rs, r)
	}
	return rs, nil
}

func runScenario(ctx context.Context, s scenario, opt options, bin string, cl *pgcluster.Cluster, root string) result {
	start := time.Now()
	runCtx, cancelRun := context.WithTimeout(ctx, s.limit(opt.short))
	defer cancelRun()
	e, err := newEnv(runCtx, s.name, opt, bin, cl, root)
	if err != nil {
		return result{Scenario: s.name, Err: err.Error(), Wall: time.Since(start)}
	}
	defer e.pool.Close()
	runErr := s.run(runCtx, e)
	cancelRun() // stops a producer still running after an early return
	e.checkRelays()
	e.teardown()
	// Accounting gets its own time: a scenario that ran out of its own
	// must still be reported.
	actx, acancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer acancel()
	r, err := e.account(actx)
	r.Wall = time.Since(start)
	if err = errors.Join(runErr, err); err != nil {
		r.Err = err.Error()
	}
	return r
}
