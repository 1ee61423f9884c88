// Command herald-bench measures Herald end to end on one machine: it creates
// its own database, starts a loopback receiver and the relay (the herald
// binary, or the relay library in a child process), and reports drain
// throughput, commit-to-receipt latency, producer throughput, claim latency
// by backlog, database writes per delivery, CPU and memory, several relays on
// one database and, with the peer programs of ../shared/peers, River and a
// naive relay measured in the same run. It prints a Markdown table and
// writes every figure as JSON.
//
//	go run ./cmd/herald-bench                 # full run (~10 min)
//	go run ./cmd/herald-bench -quick          # smoke run (~1-2 min)
//	go run ./cmd/herald-bench -json bench-results.json -peers ../shared/peers
//
// Everything it loads is on 127.0.0.1, and every loop is bounded in count
// and time.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/herald-relay/herald/relay"
)

func main() {
	if role := os.Getenv(childEnv); role != "" {
		os.Exit(childMain(role, os.Args[1:]))
	}
	opt, err := parseFlags(os.Args[1:], os.Stdout)
	if err == flag.ErrHelp {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "herald-bench:", err)
		os.Exit(2)
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	if _, err := run(ctx, opt); err != nil {
		fmt.Fprintln(os.Stderr, "herald-bench:", err)
		os.Exit(1)
	}
}

// phases are the phases -only can name, in the order they run.
var phases = []string{"drain", "latency", "producers", "claims", "relays", "slow", "endpoints", "kill", "pgrestart", "stale", "history"}

// options are the command-line flags.
type options struct {
	n            int
	rounds       int
	quick        bool
	million      bool
	relayMode    string
	heraldBin    string
	tracing      bool
	peers        string
	noPeers      bool
	peerN        int
	jsonPath     string
	dbName       string
	adminDSN     string
	latRate      int
	latDur       time.Duration
	latProducers int
	enqN         int
	sqlDur       time.Duration
	sqlProducers int
	backlogs     []int
	slice        int
	pacedRate    int
	relayCounts  []int
	slowN        int
	slowEPs      int
	slowDelay    time.Duration
	historyN     int
	endpointsN   int
	killN        int
	lease        time.Duration
	restartRate  int
	restartPre   time.Duration
	restartPost  time.Duration
	staleN       int
	cpuprofile   string
	memprofile   string
	only         []string
	keepDB       bool
	out          io.Writer
}

func parseFlags(args []string, out io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("herald-bench", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.IntVar(&o.n, "n", 100000, "messages per drain (rows waiting when the relay starts)")
	fs.IntVar(&o.rounds, "rounds", 3, "interleaved rounds of herald vs peers (and of the producer variants)")
	fs.BoolVar(&o.quick, "quick", false, "smoke run: small N, one round, short phases (~1-2 min)")
	fs.BoolVar(&o.million, "million", false, "also measure claim latency and drain rate with 1,000,000 waiting (adds ~1-2 min)")
	fs.StringVar(&o.relayMode, "relay-mode", "auto", "binary (go build ./cmd/herald; herald run --config), inproc (relay library in a herald-bench child process), or auto (binary if it builds and runs, else inproc)")
	fs.StringVar(&o.heraldBin, "herald", "", "use this herald binary instead of building ./cmd/herald")
	fs.BoolVar(&o.tracing, "tracing", false, "binary relays trace every claim and delivery (tracing.exporter otlp-http, sample_ratio 1) to a collector that discards the spans")
	fs.StringVar(&o.peers, "peers", "", "path of the peers module (default: ../shared/peers from the repository root, if present)")
	fs.BoolVar(&o.noPeers, "no-peers", false, "skip the peer programs")
	fs.IntVar(&o.peerN, "peer-n", 0, "messages per peer comparison drain (default: -n)")
	fs.StringVar(&o.jsonPath, "json", "bench-results.json", "write all results as JSON here (\"\" for none)")
	fs.StringVar(&o.dbName, "db", "herald_bench", "database to drop, create and use")
	fs.StringVar(&o.adminDSN, "admin-dsn", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", "connection used to create databases and roles")
	fs.IntVar(&o.latRate, "latency-rate", 1000, "offered load of the latency phase, messages/s")
	fs.DurationVar(&o.latDur, "latency-duration", 10*time.Second, "length of the latency phase")
	fs.IntVar(&o.latProducers, "latency-producers", 16, "concurrent producer goroutines in the latency phase")
	fs.IntVar(&o.enqN, "enqueue-n", 100000, "messages per outbox.Enqueue throughput run")
	fs.DurationVar(&o.sqlDur, "sql-duration", 3*time.Second, "length of each plain-SQL producer run")
	fs.IntVar(&o.sqlProducers, "sql-producers", 8, "concurrent plain-SQL producers")
	backlogs := fs.String("backlogs", "10000,100000", "claim-latency backlogs (comma separated; -million adds 1000000)")
	fs.IntVar(&o.slice, "slice", 50000, "messages drained (and timed) at each claim-latency backlog")
	fs.IntVar(&o.pacedRate, "paced-rate", 5000, "also time claims at each backlog with the endpoint's rate_limit at this many requests/s, leaving the machine cores to spare (0: skip)")
	fs.IntVar(&o.slowN, "slow-n", 50000, "messages per slow-receiver drain")
	fs.IntVar(&o.slowEPs, "slow-endpoints", 200, "endpoints of the slow-receiver phase, one topic each")
	fs.DurationVar(&o.slowDelay, "slow-delay", 200*time.Millisecond, "how long the slow receivers take to answer")
	fs.IntVar(&o.endpointsN, "endpoints", 5000, "endpoints of the endpoints phase, one topic and 10 messages each")
	fs.IntVar(&o.killN, "kill-n", 20000, "messages of the kill phase (two relays, one SIGKILLed once a quarter has arrived)")
	fs.DurationVar(&o.lease, "kill-lease", 0, "relay.lease of the kill phase's relays, every attempt bounded by it less 5s (0: herald's defaults)")
	fs.IntVar(&o.restartRate, "restart-rate", 1000, "offered load of the pgrestart phase, messages/s")
	fs.DurationVar(&o.restartPre, "restart-before", 3*time.Second, "pgrestart: steady load measured before the restart")
	fs.DurationVar(&o.restartPost, "restart-after", 8*time.Second, "pgrestart: load kept on after the restart")
	fs.IntVar(&o.staleN, "stale-n", 20000, "messages per drain of the stale phase")
	fs.IntVar(&o.historyN, "history-n", 1000000, "messages delivered with history on before retention runs, in the history phase's flat-tables demonstration (0: skip it)")
	relays := fs.String("relays", "1,2,4", "relay process counts for the many-relays phase")
	fs.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile of the (first) relay of each run to FILE.NNN (inproc mode; binary mode if herald supports --cpuprofile)")
	fs.StringVar(&o.memprofile, "memprofile", "", "write a heap profile (allocations of the run) of the (first) relay of each run to FILE.NNN (binary mode, if herald supports --memprofile)")
	fs.BoolVar(&o.keepDB, "keep-db", false, "keep the database afterwards")
	only := fs.String("only", "", "run only these phases (comma separated: "+strings.Join(phases, ", ")+")")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	for _, p := range strings.Split(*only, ",") {
		switch p = strings.TrimSpace(p); {
		case p == "":
		case slices.Contains(phases, p):
			o.only = append(o.only, p)
		default:
			return o, fmt.Errorf("-only: unknown phase %q (%s)", p, strings.Join(phases, ", "))
		}
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if o.quick {
		def := func(name string, apply func()) {
			if !set[name] {
				apply()
			}
		}
		def("n", func() { o.n = 20000 })
		def("rounds", func() { o.rounds = 1 })
		def("latency-duration", func() { o.latDur = 3 * time.Second })
		def("enqueue-n", func() { o.enqN = 20000 })
		def("sql-duration", func() { o.sqlDur = time.Second })
		def("backlogs", func() { *backlogs = "10000,50000" })
		def("slice", func() { o.slice = 20000 })
		def("slow-n", func() { o.slowN = 20000 })
		def("history-n", func() { o.historyN = 100000 })
		def("restart-before", func() { o.restartPre = 2 * time.Second })
		def("restart-after", func() { o.restartPost = 5 * time.Second })
	}
	var err error
	if o.backlogs, err = intList(*backlogs); err != nil {
		return o, fmt.Errorf("-backlogs: %w", err)
	}
	if o.million {
		o.backlogs = append(o.backlogs, 1000000)
	}
	if o.relayCounts, err = intList(*relays); err != nil {
		return o, fmt.Errorf("-relays: %w", err)
	}
	if o.peerN == 0 {
		o.peerN = o.n
	}
	switch {
	case o.killN < 100 || o.killN > 1000000:
		return o, fmt.Errorf("-kill-n must be between 100 and 1000000 (got %d)", o.killN)
	case o.staleN < 1 || o.staleN > 1000000:
		return o, fmt.Errorf("-stale-n must be between 1 and 1000000 (got %d)", o.staleN)
	case o.lease != 0 && (o.lease < relay.LeaseMargin+time.Second || o.lease > time.Hour):
		return o, fmt.Errorf("-kill-lease must be 0 or between %s and 1h (got %s)", relay.LeaseMargin+time.Second, o.lease)
	case o.restartRate < 100 || o.restartRate > 20000:
		return o, fmt.Errorf("-restart-rate must be between 100 and 20000 (got %d)", o.restartRate)
	case o.restartPre < time.Second || o.restartPre > time.Minute || o.restartPost < time.Second || o.restartPost > time.Minute:
		return o, fmt.Errorf("-restart-before and -restart-after must be between 1s and 1m (got %s and %s)", o.restartPre, o.restartPost)
	case o.n < 1 || o.rounds < 1 || o.slice < 1 || o.latRate < 1 || o.latProducers < 1 || o.enqN < 1 || o.sqlProducers < 1 || o.slowN < 1:
		return o, fmt.Errorf("-n, -rounds, -slice, -latency-rate, -latency-producers, -enqueue-n, -sql-producers and -slow-n must be positive")
	case o.slowEPs < 1 || o.slowEPs > 1000:
		return o, fmt.Errorf("-slow-endpoints must be between 1 and 1000 (got %d)", o.slowEPs)
	case o.endpointsN < 1 || o.endpointsN > 100000:
		return o, fmt.Errorf("-endpoints must be between 1 and 100000 (got %d)", o.endpointsN)
	case o.slowDelay < 0 || o.slowDelay > maxSlowDelay:
		return o, fmt.Errorf("-slow-delay must be between 0 and %s (got %s)", maxSlowDelay, o.slowDelay)
	case o.historyN < 0 || o.historyN > 5000000:
		return o, fmt.Errorf("-history-n must be between 0 and 5,000,000 (got %d)", o.historyN)
	case o.n > 5000000 || o.peerN > 5000000 || o.slowN > 5000000:
		return o, fmt.Errorf("-n is capped at 5,000,000")
	case o.relayMode != "auto" && o.relayMode != "binary" && o.relayMode != "inproc":
		return o, fmt.Errorf("-relay-mode must be auto, binary or inproc (got %q)", o.relayMode)
	case o.latDur > 10*time.Minute || o.sqlDur > 10*time.Minute:
		return o, fmt.Errorf("phase durations are capped at 10m")
	}
	o.out = out
	return o, nil
}

func intList(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		v, err := strconv.Atoi(f)
		if err != nil || v < 1 || v > 5000000 {
			return nil, fmt.Errorf("bad value %q (1..5000000)", f)
		}
		out = append(out, v)
	}
	return out, nil
}
