package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/herald-relay/herald/migrations"
	"github.com/herald-relay/herald/outbox"
)

// bench is one run's state.
type bench struct {
	opt            options
	out            io.Writer
	self           string // this executable, re-run as receiver / inproc relay
	tmp            string // binaries, configs, logs
	root           string // repository root
	mode           string // binary or inproc
	heraldBin      string
	heraldProfiles bool
	traceSink      string // URL of the discarding OTLP collector (-tracing), once started
	dsn            string
	dbLock         *pgx.Conn // holds the database for this bench: see lockDB
	pool           *pgxpool.Pool
	recv           *recvTarget
	relayStarts    int
	profiles       []string
	closers        []io.Closer
	peersBin       string // the peer programs, once built (buildPeers)
	peersErr       error  // why the peers are skipped
	res            *Results
}

// Results is everything a run measured; it is written as JSON.
type Results struct {
	Started   string         `json:"started"`
	Finished  string         `json:"finished"`
	Machine   Machine        `json:"machine"`
	RelayMode string         `json:"relay_mode"`
	Options   map[string]any `json:"options"`
	Notes     []string       `json:"notes"`
	Drains    []DrainResult  `json:"drains"`
	Peers     []PeerRun      `json:"peer_runs,omitempty"`
	Latency   *LatencyResult `json:"latency,omitempty"`
	// LatencyNoNotify is the same load with producers that skip NOTIFY.
	LatencyNoNotify *LatencyResult  `json:"latency_no_notify,omitempty"`
	Producers       []ProducerRun   `json:"producers"`
	Claims          []DrainResult   `json:"claim_backlogs"`
	PacedClaims     []DrainResult   `json:"paced_claim_backlogs,omitempty"`
	ManyRelays      []DrainResult   `json:"many_relays"`
	Slow            []DrainResult   `json:"slow_receivers,omitempty"`
	SlowPeers       []PeerRun       `json:"slow_receivers_peers,omitempty"`
	History         *HistoryResult  `json:"history,omitempty"`
	Kill            []KillResult    `json:"relay_killed,omitempty"`
	Restart         []RestartResult `json:"postgres_restarted,omitempty"`
	Stale           []DrainResult   `json:"stale_statistics,omitempty"`
	Table           []Row           `json:"table"`
	Profiles        []string        `json:"cpu_profiles,omitempty"`
	Errors          []string        `json:"errors,omitempty"`
	PeerSummary     *PeerComparison `json:"peer_comparison,omitempty"`

	Endpoints *EndpointsResult `json:"endpoints,omitempty"` // the endpoints phase
}

func (b *bench) say(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "[%s] %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, a...))
}

func (b *bench) note(format string, a ...any) {
	s := fmt.Sprintf(format, a...)
	b.res.Notes = append(b.res.Notes, s)
	b.say("note: %s", s)
}

// run performs the whole benchmark and returns its results.
func run(ctx context.Context, opt options) (*Results, error) {
	b := &bench{opt: opt, out: opt.out, res: &Results{Started: time.Now().UTC().Format(time.RFC3339)}}
	if b.out == nil {
		b.out = os.Stdout
	}
	defer func() {
		for _, c := range b.closers {
			c.Close()
		}
	}()
	var err error
	if b.self, err = os.Executable(); err != nil {
		return nil, err
	}
	if b.tmp, err = os.MkdirTemp("", "herald-bench-"); err != nil {
		return nil, err
	}
	b.say("work dir (binaries, configs, logs; removed if nothing fails): %s", b.tmp)
	if b.root, err = repoRoot(); err != nil {
		return nil, err
	}
	b.res.Machine = describeMachine()
	b.res.Options = map[string]any{
		"n": opt.n, "rounds": opt.rounds, "quick": opt.quick, "million": opt.million, "peer_n": opt.peerN,
		"latency_rate": opt.latRate, "latency_duration_s": opt.latDur.Seconds(), "latency_producers": opt.latProducers,
		"enqueue_n": opt.enqN, "sql_duration_s": opt.sqlDur.Seconds(), "sql_producers": opt.sqlProducers,
		"backlogs": opt.backlogs, "slice": opt.slice, "relays": opt.relayCounts,
		"slow_n": opt.slowN, "slow_endpoints": opt.slowEPs, "slow_delay_ms": opt.slowDelay.Milliseconds(),
		"tracing": opt.tracing,
	}
	if err := b.chooseRelay(ctx); err != nil {
		return nil, err
	}
	if opt.tracing {
		if b.mode == "binary" {
			b.note("tracing: every claim and delivery traced (otlp-http, sample_ratio 1) to a collector that discards the spans")
		} else {
			b.note("tracing: -tracing applies to binary relays only; these relays did not trace")
		}
	}
	b.res.RelayMode = b.mode
	if err := b.setupDB(ctx); err != nil {
		return nil, err
	}
	// Released after dropDB, so no other bench creates the database
	// while this one drops it.
	defer b.dbLock.Close(context.WithoutCancel(ctx))
	defer b.pool.Close()
	if !opt.keepDB {
		defer b.dropDB()
	}
	if err := b.describePostgres(ctx); err != nil {
		return nil, err
	}
	if b.recv, err = b.startReceiver(ctx); err != nil {
		return nil, err
	}
	defer b.recv.stop()

	// Each phase records its own failure and the run goes on, so that one
	// broken measurement still leaves the others.
	phase := func(key, name string, f func() error) {
		if ctx.Err() != nil || (len(opt.only) > 0 && !slices.Contains(opt.only, key)) {
			return
		}
		b.say("== %s", name)
		if err := f(); err != nil {
			msg := fmt.Sprintf("%s: %v", name, err)
			b.res.Errors = append(b.res.Errors, msg)
			b.say("FAILED %s", msg)
		}
	}
	phase("drain", "drain rounds (vs peers)", func() error { return b.drainRounds(ctx) })
	phase("latency", "commit-to-receipt latency", func() error { return b.latency(ctx) })
	phase("producers", "producer throughput", func() error { return b.producers(ctx) })
	phase("claims", "claim latency by backlog", func() error { return b.claimBacklogs(ctx) })
	phase("relays", "several relays on one database", func() error { return b.manyRelays(ctx) })
	phase("slow", "slow receivers, many endpoints", func() error { return b.slowReceivers(ctx) })
	phase("history", "delivery history: cost and flat tables", func() error { return b.history(ctx) })
	phase("endpoints", "thousands of endpoints", func() error { return b.manyEndpoints(ctx) })
	phase("kill", "a relay killed mid-run", func() error { return b.killRelay(ctx) })
	phase("pgrestart", "PostgreSQL restarted mid-run", func() error { return b.pgRestart(ctx) })
	phase("stale", "a backlog PostgreSQL has no statistics of", func() error { return b.staleStats(ctx) })
	b.res.Profiles = b.profiles
	b.res.Finished = time.Now().UTC().Format(time.RFC3339)
	b.buildTable()
	b.printReport()
	if opt.jsonPath != "" {
		js, err := json.MarshalIndent(b.res, "", "  ")
		if err != nil {
			return b.res, fmt.Errorf("results as JSON: %w", err)
		}
		if err := os.WriteFile(opt.jsonPath, append(js, '\n'), 0o644); err != nil {
			return b.res, err
		}
		b.say("wrote %s", opt.jsonPath)
	}
	if ctx.Err() != nil {
		return b.res, ctx.Err()
	}
	if len(b.res.Errors) > 0 {
		return b.res, fmt.Errorf("%d phase(s) failed: %s", len(b.res.Errors), strings.Join(b.res.Errors, "; "))
	}
	// Nothing failed: the work dir's binaries (tens of MB) and logs are
	// not wanted; after a failure they are kept for the error's log paths.
	if err := os.RemoveAll(b.tmp); err != nil {
		return b.res, fmt.Errorf("remove the work dir: %w", err)
	}
	return b.res, nil
}

func repoRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("run herald-bench inside the herald module (go env GOMOD is empty)")
	}
	return filepath.Dir(gomod), nil
}

// chooseRelay builds the herald binary (binary mode) or settles on inproc.
func (b *bench) chooseRelay(ctx context.Context) error {
	if b.opt.relayMode == "inproc" {
		b.mode = "inproc"
		return nil
	}
	bin := b.opt.heraldBin
	if bin == "" {
		bin = filepath.Join(b.tmp, "herald")
		cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/herald")
		cmd.Dir = b.root
		out, err := cmd.CombinedOutput()
		if err != nil {
			if b.opt.relayMode == "binary" {
				return fmt.Errorf("go build ./cmd/herald: %v\n%s", err, out)
			}
			b.mode = "inproc"
			b.note("relay mode inproc: ./cmd/herald does not build yet (%s); the relay library runs in a herald-bench child process with herald.yaml's defaults", firstLine(string(out)))
			return nil
		}
	}
	help, _ := exec.CommandContext(ctx, bin, "help").CombinedOutput()
	if !strings.Contains(string(help), "--config") || !strings.Contains(string(help), "run") {
		if b.opt.relayMode == "binary" {
			return fmt.Errorf("%s help does not offer run and --config:\n%s", bin, help)
		}
		b.mode = "inproc"
		b.note("relay mode inproc: herald has no usable `run --config` yet (%s)", firstLine(string(help)))
		return nil
	}
	b.mode, b.heraldBin = "binary", bin
	b.heraldProfiles = true // herald run --cpuprofile FILE
	if v, err := exec.Command("go", "version", "-m", bin).Output(); err == nil {
		b.say("herald binary: %s", firstLine(string(v)))
	}
	return nil
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

// setupDB drops and recreates the bench database and migrates it.
func (b *bench) setupDB(ctx context.Context) error {
	admin, err := pgx.Connect(ctx, b.opt.adminDSN)
	if err != nil {
		// pgx's error names the user, database and host; the DSN itself
		// may hold a password, in any of its forms.
		return fmt.Errorf("connect: %w (is PostgreSQL up?)", err)
	}
	defer admin.Close(ctx)
	if err := b.lockDB(ctx); err != nil {
		return err
	}
	name := pgx.Identifier{b.opt.dbName}.Sanitize()
	if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop database: %w", err)
	}
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return fmt.Errorf("create database: %w", err)
	}
	u, err := url.Parse(b.opt.adminDSN)
	if err != nil {
		return err
	}
	u.Path = "/" + b.opt.dbName
	b.dsn = u.String()
	conn, err := pgx.Connect(ctx, b.dsn)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	if _, err := migrations.Migrate(ctx, conn, -1); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	cfg, err := pgxpool.ParseConfig(b.dsn)
	if err != nil {
		return err
	}
	cfg.MaxConns = int32(max(16, b.opt.latProducers+4, b.opt.sqlProducers+4))
	b.pool, err = pgxpool.NewWithConfig(ctx, cfg)
	return err
}

// lockDB makes the bench the only one using its database until dropDB:
// a second bench given the same -db would otherwise drop the database under
// the first (WITH (FORCE) ends its connections) and both would measure
// nonsense. The lock is a session advisory lock on a connection to the
// admin database, so it goes when the bench does, however it ends.
func (b *bench) lockDB(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, b.opt.adminDSN)
	if err != nil {
		return fmt.Errorf("connect: %w (is PostgreSQL up?)", err)
	}
	var locked bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock(hashtext('herald-bench'), hashtext($1))`, b.opt.dbName).Scan(&locked); err != nil {
		conn.Close(ctx)
		return fmt.Errorf("lock database: %w", err)
	}
	if !locked {
		conn.Close(ctx)
		return fmt.Errorf("database %q is in use by another herald-bench: wait for it to end, or give this one its own with -db", b.opt.dbName)
	}
	b.dbLock = conn
	return nil
}

func (b *bench) dropDB() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b.pool.Close()
	admin, err := pgx.Connect(ctx, b.opt.adminDSN)
	if err != nil {
		return
	}
	defer admin.Close(ctx)
	_, _ = admin.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{b.opt.dbName}.Sanitize()+" WITH (FORCE)")
}

func (b *bench) describePostgres(ctx context.Context) error {
	m := &b.res.Machine
	if err := b.pool.QueryRow(ctx, "SELECT version()").Scan(&m.Postgres); err != nil {
		return err
	}
	rows, err := b.pool.Query(ctx, `SELECT name, setting || coalesce(unit, '') FROM pg_settings WHERE name IN
		('synchronous_commit','fsync','full_page_writes','wal_sync_method','shared_buffers','wal_buffers','max_wal_size',
		 'checkpoint_timeout','work_mem','max_connections','autovacuum','wal_level','commit_delay','track_counts')`)
	if err != nil {
		return err
	}
	m.PGSettings = map[string]string{}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return err
		}
		m.PGSettings[k] = v
	}
	return rows.Err()
}

// event is the peers' outbox event shape (peers/internal/common.MakeEvent):
// about 300 bytes of JSON.
type event struct {
	ID            string    `json:"id"`
	AggregateType string    `json:"aggregate_type"`
	AggregateID   string    `json:"aggregate_id"`
	EventType     string    `json:"event_type"`
	OccurredAt    time.Time `json:"occurred_at"`
	Payload       struct {
		OrderID     string `json:"order_id"`
		CustomerID  string `json:"customer_id"`
		AmountCents int64  `json:"amount_cents"`
		Currency    string `json:"currency"`
		Items       int    `json:"items"`
		Note        string `json:"note"`
	} `json:"payload"`
}

func makeEvent(run uint32, i int) []byte {
	e := event{
		ID:            fmt.Sprintf("%08x-0000-4000-8000-%012x", run, i),
		AggregateType: "order",
		AggregateID:   fmt.Sprintf("ord-%010d", i),
		EventType:     "order.placed",
		OccurredAt:    time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).Add(time.Duration(i) * time.Millisecond),
	}
	e.Payload.OrderID = e.AggregateID
	e.Payload.CustomerID = fmt.Sprintf("cus-%08d", i%50000)
	e.Payload.AmountCents = int64(1000 + i%90000)
	e.Payload.Currency = "EUR"
	e.Payload.Items = 1 + i%7
	e.Payload.Note = "none"
	js, _ := json.Marshal(e)
	return js
}

func makeMessages(run uint32, from, n int, idPrefix string) []outbox.Message {
	msgs := make([]outbox.Message, n)
	for k := range msgs {
		msgs[k] = outbox.Message{Topic: "order.placed", Payload: makeEvent(run, from+k)}
		if idPrefix != "" {
			msgs[k].ID = fmt.Sprintf("%s%d", idPrefix, from+k)
		}
	}
	return msgs
}

// truncate empties Herald's tables.
func (b *bench) truncate(ctx context.Context) error {
	_, err := b.pool.Exec(ctx, "TRUNCATE outbox.messages, outbox.deliveries, outbox.dead")
	return err
}

func (b *bench) checkpoint(ctx context.Context) error {
	_, err := b.pool.Exec(ctx, "CHECKPOINT")
	return err
}

// preload commits n messages, 1000 per transaction, without NOTIFY, and
// returns the insert rate. With topics > 0, message
// i has topic slowTopic(i % topics): the endpoints' traffic interleaved, as
// a service's events for its many subscribers are.
func (b *bench) preload(ctx context.Context, n, topics int) (float64, error) {
	run := rand.Uint32()
	const batch = 1000
	start := time.Now()
	w := outbox.Writer{SkipNotify: true}
	for i := 0; i < n; i += batch {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		msgs := makeMessages(run, i, min(batch, n-i), "")
		if topics > 0 {
			for k := range msgs {
				msgs[k].Topic = slowTopic((i + k) % topics)
			}
		}
		if err := pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error { return w.Enqueue(ctx, tx, msgs...) }); err != nil {
			return 0, err
		}
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// analyze refreshes the planner's statistics of a preloaded backlog, as
// autovacuum does soon after a bulk insert; the stale phase measures what
// it costs not to.
func (b *bench) analyze(ctx context.Context) error {
	_, err := b.pool.Exec(ctx, "ANALYZE outbox.messages")
	return err
}

// vacuumBacklog does to a preloaded backlog what autovacuum does to a table
// that received Herald's autovacuum_vacuum_insert_threshold of inserts: its
// first VACUUM, which reads and dirties every page once (about 0.4 s for
// 1M rows here). With autovacuum off, the relay's own VACUUM would pay that
// inside the measurement instead.
func (b *bench) vacuumBacklog(ctx context.Context) (time.Duration, error) {
	start := time.Now()
	_, err := b.pool.Exec(ctx, "VACUUM outbox.messages")
	return time.Since(start), err
}

// tupStats are pg_stat_user_tables counters summed over the outbox tables.
type tupStats struct {
	Ins, Upd, HotUpd, Del int64
	HistoryIns            int64 // rows inserted into the history tables' partitions
	Tables                map[string][4]int64
}

// historyTable matches the partitions of the history tables.
var historyTable = regexp.MustCompile(`^(attempts|message_log)_[0-9]{8}$`)

// tableStats reads the counters after making sure every backend flushed
// them: our own pool's connections are closed (a backend flushes at exit)
// and relay backends are gone before this is called; the wait covers the
// exits still in progress.
func (b *bench) tableStats(ctx context.Context) (tupStats, error) {
	b.pool.Reset()
	time.Sleep(1200 * time.Millisecond)
	s := tupStats{Tables: map[string][4]int64{}}
	rows, err := b.pool.Query(ctx, `SELECT relname, n_tup_ins, n_tup_upd, n_tup_hot_upd, n_tup_del
		FROM pg_stat_user_tables WHERE schemaname = 'outbox' AND relname <> 'schema_version'`)
	if err != nil {
		return s, err
	}
	for rows.Next() {
		var name string
		var v [4]int64
		if err := rows.Scan(&name, &v[0], &v[1], &v[2], &v[3]); err != nil {
			return s, err
		}
		s.Tables[name] = v
		if historyTable.MatchString(name) {
			// Appended to daily partitions and dropped whole: not the
			// delivery path's bookkeeping, which bloats until vacuumed.
			s.HistoryIns += v[0]
			continue
		}
		s.Ins += v[0]
		s.Upd += v[1]
		s.HotUpd += v[2]
		s.Del += v[3]
	}
	return s, rows.Err()
}

// Writes are database row writes per delivered message over a drain.
type Writes struct {
	InsPerMsg      float64 `json:"ins_per_msg"`
	UpdPerMsg      float64 `json:"upd_per_msg"`
	HotUpdPerMsg   float64 `json:"hot_upd_per_msg"`
	DelPerMsg      float64 `json:"del_per_msg"`
	RelayWritesPer float64 `json:"relay_writes_per_msg"` // beyond the producer's insert
	// HistoryInsPerMsg are the rows the delivery history adds (history.*),
	// outside the figures above.
	HistoryInsPerMsg float64             `json:"history_ins_per_msg"`
	HOTShare         float64             `json:"hot_share_of_updates"`
	ByTable          map[string][4]int64 `json:"by_table_delta_ins_upd_hot_del"`
}

func writesPer(a, z tupStats, n int) Writes {
	f := func(v int64) float64 { return round(float64(v)/float64(n), 3) }
	w := Writes{InsPerMsg: f(z.Ins - a.Ins), UpdPerMsg: f(z.Upd - a.Upd), HotUpdPerMsg: f(z.HotUpd - a.HotUpd), DelPerMsg: f(z.Del - a.Del),
		ByTable: map[string][4]int64{}, HistoryInsPerMsg: f(z.HistoryIns - a.HistoryIns)}
	w.RelayWritesPer = f(z.Ins - a.Ins - int64(n) + z.Upd - a.Upd + z.Del - a.Del)
	if z.Upd > a.Upd {
		w.HOTShare = round(float64(z.HotUpd-a.HotUpd)/float64(z.Upd-a.Upd), 3)
	}
	for k, v := range z.Tables {
		p := a.Tables[k]
		w.ByTable[k] = [4]int64{v[0] - p[0], v[1] - p[1], v[2] - p[2], v[3] - p[3]}
	}
	return w
}

// round rounds to digits decimals; NaN and ±Inf (nothing measured, or past
// the last histogram bucket) become -1, since JSON has no NaN.
func round(v float64, digits int) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return -1
	}
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}

// DrainResult is one drain of a backlog by one or more relays.
type DrainResult struct {
	Label  string `json:"label"`
	N      int    `json:"n"`
	Relays int    `json:"relays"`
	Round  int    `json:"round,omitempty"`
	// GOMAXPROCS is what each relay process was given; 0: Go's default
	// (every core).
	GOMAXPROCS int `json:"gomaxprocs,omitempty"`
	// RateLimit is the endpoint's rate_limit in the run; 0: none.
	RateLimit   int     `json:"endpoint_rate_limit,omitempty"`
	Receiver    string  `json:"receiver"`
	PreloadRate float64 `json:"preload_rows_per_s"`
	// VacuumSeconds is how long the backlog's first VACUUM took, before
	// the relays started (claim phase).
	VacuumSeconds float64 `json:"vacuum_before_s,omitempty"`
	Seconds       float64 `json:"seconds"`          // relay start -> receiver has all and the table is empty
	Rate          float64 `json:"deliveries_per_s"` // N / Seconds
	RecvSeconds   float64 `json:"receiver_seconds"` // relay start -> receiver has all
	// FirstSeconds is relay start -> the receiver's first post (within the
	// 10 ms the drain polls at): the start-up a drain's rate includes,
	// apart from its steady rate and the tail of acknowledgements.
	FirstSeconds float64 `json:"first_delivery_seconds,omitempty"`
	// SteadyRate is the rate between 10% and 90% of N received: what the
	// relays sustain, without their start-up and the tail.
	SteadyRate     float64 `json:"steady_deliveries_per_s,omitempty"`
	SliceN         int     `json:"slice_n"`
	SliceSeconds   float64 `json:"slice_seconds"`
	SliceRate      float64 `json:"slice_deliveries_per_s"`
	ClaimsInSlice  float64 `json:"claims_in_slice"`
	ClaimP99Ms     float64 `json:"claim_p99_ms_bucket_upper"` // over the slice
	ClaimP99Interp float64 `json:"claim_p99_ms_interpolated"`
	ClaimP50Interp float64 `json:"claim_p50_ms_interpolated"`
	ClaimMeanMs    float64 `json:"claim_mean_ms"`
	// ClaimP99WithWarmup counts the slice's first tenth too.
	ClaimP99WithWarmup float64 `json:"claim_p99_ms_interpolated_with_warmup"`
	RowsPerClaim       float64 `json:"rows_per_claim"`
	CPU                CPU     `json:"cpu"`
	CPUPerMsgUs        CPU     `json:"cpu_us_per_delivery"`
	RSSMiB             float64 `json:"relay_peak_rss_mib"` // max over the relays
	Posts              int64   `json:"receiver_posts"`
	// Memory is the first relay's, halfway through the drain (drainSpec.memory).
	Memory *GoMemory `json:"memory_at_half,omitempty"`
	// Claims and Flushes are the relays' claim statements (both lanes)
	// and outcome flushes over the whole drain: its round trips to
	// PostgreSQL, apart from heartbeats and maintenance.
	Claims  float64 `json:"claims,omitempty"`
	Flushes float64 `json:"outcome_flushes,omitempty"`
	// FlushSeconds is the time the outcome flushes took, together: the
	// completer writes one at a time, so near the drain's length it is
	// what bounds the drain.
	FlushSeconds float64 `json:"outcome_flush_seconds,omitempty"`
	// RecvConns is how many connections the receiver accepted during the
	// drain (herald-bench's receiver only).
	RecvConns int64   `json:"receiver_connections,omitempty"`
	Unique    int64   `json:"receiver_unique"`
	Writes    *Writes `json:"writes,omitempty"`
	Leftover  int64   `json:"rows_left_in_deliveries_and_dead"`
	// Endpoints and DelayMs describe the slow phase: that many endpoints,
	// one topic each, whose receivers answer after DelayMs.
	Endpoints int     `json:"endpoints,omitempty"`
	DelayMs   float64 `json:"receiver_delay_ms,omitempty"`
	// Deferred counts pairs the relays sent to the retry lane unattempted
	// (herald_deferred_total): an endpoint at max_in_flight with a full
	// queue, paused or rate-limited.
	Deferred float64 `json:"deferred"`
}

type drainSpec struct {
	label    string
	n, slice int
	relays   int
	relayOpts
	recv        *recvTarget
	stopAtSlice bool // stop the relays once the slice is delivered (claim phase)
	vacuum      bool // VACUUM the backlog before the relays start
	writes      bool // measure pg_stat_user_tables deltas
	// memory scrapes the first relay's Go memory gauges once half the
	// messages have arrived (one more scrape inside the timed window).
	memory bool
	// prep is what the backlog gets before the relays start: "" ANALYZE;
	// the stale phase's variants: "none", "count" (a full read that sets
	// its hint bits, no ANALYZE), "nobitmap" (no ANALYZE, bitmap scans
	// disabled for the database).
	prep string
}

// drain commits a backlog with no relay running, then starts the relays and
// times them until the receiver has every message and the table is empty.
func (b *bench) drain(ctx context.Context, s drainSpec) (DrainResult, error) {
	r := DrainResult{Label: s.label, N: s.n, Relays: s.relays, GOMAXPROCS: s.gomaxprocs, RateLimit: s.rateLimit, Receiver: s.recv.name, SliceN: min(s.slice, s.n),
		Endpoints: s.slowEndpoints, DelayMs: float64(s.slowDelay.Milliseconds())}
	if err := b.truncate(ctx); err != nil {
		return r, err
	}
	var before tupStats
	var err error
	if s.writes {
		if before, err = b.tableStats(ctx); err != nil {
			return r, err
		}
	}
	if r.PreloadRate, err = b.preload(ctx, s.n, s.slowEndpoints); err != nil {
		return r, fmt.Errorf("preload: %w", err)
	}
	if err := b.prepare(ctx, s.prep); err != nil {
		return r, err
	}
	if s.vacuum {
		d, err := b.vacuumBacklog(ctx)
		if err != nil {
			return r, fmt.Errorf("vacuum the backlog: %w", err)
		}
		r.VacuumSeconds = round(d.Seconds(), 3)
	}
	if err := b.checkpoint(ctx); err != nil {
		return r, err
	}
	if err := s.recv.reset(); err != nil {
		return r, err
	}
	recvPID := s.recv.pid
	cpuA := snapCPU(nil, recvPID)
	t0 := time.Now()
	procs := make([]*relayProc, 0, s.relays)
	stopAll := func() error {
		var errs []error
		for _, p := range procs {
			if err := p.stop(); err != nil {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	}
	for i := range s.relays {
		p, err := b.startRelay(i, s.recv.hookURL(), s.relayOpts)
		if err != nil {
			_ = stopAll()
			return r, err
		}
		procs = append(procs, p)
	}
	pids := make([]int, len(procs))
	for i, p := range procs {
		pids[i] = p.pid
	}
	cpuA.relays = map[int]float64{} // relays were born in the window: count from zero

	timeout := 60*time.Second + time.Duration(s.n)*time.Millisecond/2 // >= 2k/s
	deadline := t0.Add(timeout)
	var sliceAt, recvAt, firstAt, at10, at50, at90 time.Time
	// Claims are timed over the slice after its first tenth: the first
	// claims of a new process also prepare their statements and warm a new
	// backend's caches.
	var claims, warmup hist
	warm := false
	// A relay not yet serving metrics at the warm-up reading counts as
	// having claimed nothing (its claims are then kept in the measurement).
	scrapeClaims := func(tolerateDown bool) (hist, error) {
		var h hist
		for _, p := range procs {
			ph, err := scrape(p.metricsURL, "herald_claim_seconds", `lane="hot"`)
			if err != nil && tolerateDown && errors.Is(err, syscall.ECONNREFUSED) {
				continue
			}
			if err != nil {
				return h, err
			}
			h = h.add(ph)
		}
		return h, nil
	}
	var st recvStats
	fail := func(err error) (DrainResult, error) {
		_ = stopAll()
		return r, err
	}
	for {
		if err := ctx.Err(); err != nil {
			return fail(err)
		}
		if time.Now().After(deadline) {
			return fail(fmt.Errorf("timeout after %s: receiver has %d unique of %d", timeout, st.Unique, s.n))
		}
		for _, p := range procs {
			if err := p.alive(); err != nil {
				return fail(err)
			}
		}
		if st, err = s.recv.stats(); err != nil {
			return fail(err)
		}
		if firstAt.IsZero() && st.Unique > 0 {
			firstAt = time.Now()
		}
		if at10.IsZero() && st.Unique >= int64(s.n)/10 {
			at10 = time.Now()
		}
		if at50.IsZero() && st.Unique >= int64(s.n)/2 {
			at50 = time.Now()
			if s.memory {
				r.Memory = scrapeMemory(procs[0].metricsURL)
			}
		}
		if at90.IsZero() && st.Unique >= int64(s.n)*9/10 {
			at90 = time.Now()
		}
		if !warm && st.Unique >= int64(r.SliceN)/10 {
			warm = true
			if warmup, err = scrapeClaims(true); err != nil {
				return fail(err)
			}
		}
		if sliceAt.IsZero() && st.Unique >= int64(r.SliceN) {
			sliceAt = time.Now()
			if claims, err = scrapeClaims(false); err != nil {
				return fail(err)
			}
			r.ClaimP99WithWarmup = round(claims.quantileInterp(0.99)*1000, 3)
			claims = claims.sub(warmup)
			if s.stopAtSlice {
				break
			}
		}
		if st.Unique >= int64(s.n) {
			recvAt = time.Now()
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	doneAt := sliceAt
	if !s.stopAtSlice {
		// Delivered means acknowledged too: wait for the relays' deletes.
		for {
			var empty bool
			if err := b.pool.QueryRow(ctx, "SELECT NOT EXISTS (SELECT 1 FROM outbox.messages)").Scan(&empty); err != nil {
				return fail(err)
			}
			if empty {
				break
			}
			if time.Now().After(deadline) {
				return fail(errors.New("timeout waiting for the outbox to empty"))
			}
			time.Sleep(5 * time.Millisecond)
		}
		doneAt = time.Now()
	}
	cpuB := snapCPU(pids, recvPID)
	for _, p := range procs {
		r.RSSMiB = max(r.RSSMiB, round(peakRSSMiB(p.pid), 1))
	}
	var rowsClaimed float64
	for _, p := range procs {
		page, err := fetchMetrics(p.metricsURL)
		if err != nil {
			continue
		}
		if h, err := parseMetric(page, "herald_claimed_total", `lane="hot"`); err == nil {
			rowsClaimed += h.sample
		}
		if h, err := parseMetric(page, "herald_deferred_total", ""); err == nil {
			r.Deferred += h.sample
		}
		// Round trips: claims (both lanes) and outcome flushes.
		if h, err := parseMetric(page, "herald_claim_seconds", ""); err == nil {
			r.Claims += h.count
		}
		if h, err := parseMetric(page, "herald_ack_flush_seconds", ""); err == nil {
			r.Flushes += h.count
			r.FlushSeconds += round(h.sum, 3)
		}
	}
	if err := stopAll(); err != nil {
		return r, err
	}
	st, _ = s.recv.stats()
	r.Posts, r.Unique, r.RecvConns = st.Total, st.Unique, st.Conns
	r.SliceSeconds = round(sliceAt.Sub(t0).Seconds(), 4)
	r.SliceRate = round(float64(r.SliceN)/sliceAt.Sub(t0).Seconds(), 1)
	delivered := r.SliceN
	if !s.stopAtSlice {
		r.Seconds = round(doneAt.Sub(t0).Seconds(), 4)
		r.RecvSeconds = round(recvAt.Sub(t0).Seconds(), 4)
		r.FirstSeconds = round(firstAt.Sub(t0).Seconds(), 4)
		r.Rate = round(float64(s.n)/doneAt.Sub(t0).Seconds(), 1)
		if d := at90.Sub(at10); d > 0 {
			r.SteadyRate = round(float64(s.n*9/10-s.n/10)/d.Seconds(), 1)
		}
		delivered = s.n
	}
	r.CPU = cpuDiff(cpuA, cpuB)
	us := func(v float64) float64 { return round(v/float64(delivered)*1e6, 1) }
	r.CPU = CPU{Relay: round(r.CPU.Relay, 2), Receiver: round(r.CPU.Receiver, 2), Postgres: round(r.CPU.Postgres, 2), Machine: round(r.CPU.Machine, 2)}
	r.CPUPerMsgUs = CPU{Relay: us(r.CPU.Relay), Receiver: us(r.CPU.Receiver), Postgres: us(r.CPU.Postgres), Machine: us(r.CPU.Machine)}
	r.ClaimsInSlice = claims.count
	r.ClaimP99Ms = round(claims.quantileUpper(0.99)*1000, 3)
	r.ClaimP99Interp = round(claims.quantileInterp(0.99)*1000, 3)
	r.ClaimP50Interp = round(claims.quantileInterp(0.50)*1000, 3)
	r.ClaimMeanMs = round(claims.mean()*1000, 3)
	if claims.count > 0 && !s.stopAtSlice {
		r.RowsPerClaim = round(rowsClaimed/claims.count, 1) // approximate: claims counted at the slice
	}
	if err := b.pool.QueryRow(ctx, "SELECT (SELECT count(*) FROM outbox.deliveries) + (SELECT count(*) FROM outbox.dead)").Scan(&r.Leftover); err != nil {
		return r, err
	}
	if s.writes && !s.stopAtSlice {
		after, err := b.tableStats(ctx)
		if err != nil {
			return r, err
		}
		w := writesPer(before, after, s.n)
		r.Writes = &w
	}
	if !s.stopAtSlice && st.Unique != int64(s.n) {
		return r, fmt.Errorf("receiver has %d unique ids, want %d", st.Unique, s.n)
	}
	return r, nil
}

func (b *bench) logDrain(r DrainResult) {
	if r.Rate > 0 {
		b.say("   %s: %d msgs, %d relay(s): %.0f deliveries/s (%.2fs), slice %d in %.2fs = %.0f/s, claim p99<=%.3gms (%.0f claims), relay CPU %.1f us/msg, machine %.1f us/msg, RSS %.1f MiB, posts %d",
			r.Label, r.N, r.Relays, r.Rate, r.Seconds, r.SliceN, r.SliceSeconds, r.SliceRate, r.ClaimP99Ms, r.ClaimsInSlice, r.CPUPerMsgUs.Relay, r.CPUPerMsgUs.Machine, r.RSSMiB, r.Posts)
	} else {
		b.say("   %s: %d waiting: slice %d in %.2fs = %.0f/s, claim p99<=%.3gms (interp %.3g, mean %.3g, %.0f claims), RSS %.1f MiB",
			r.Label, r.N, r.SliceN, r.SliceSeconds, r.SliceRate, r.ClaimP99Ms, r.ClaimP99Interp, r.ClaimMeanMs, r.ClaimsInSlice, r.RSSMiB)
	}
	if r.Writes != nil {
		b.say("   writes/msg: ins %.3f upd %.3f (hot %.3f) del %.3f => relay writes %.3f/msg; history rows %.3f/msg", r.Writes.InsPerMsg, r.Writes.UpdPerMsg, r.Writes.HotUpdPerMsg, r.Writes.DelPerMsg, r.Writes.RelayWritesPer, r.Writes.HistoryInsPerMsg)
	}
}

// claimBacklogs times a fixed slice with 10k, 100k (and 1M) waiting, each
// backlog vacuumed once as autovacuum would have done (see vacuumBacklog): at
// full speed, where every core is busy and a claim waits for CPU like
// everything else, and then with the endpoint paced (rate_limit), where the
// claim's own cost shows.
func (b *bench) claimBacklogs(ctx context.Context) error {
	for _, n := range b.opt.backlogs {
		r, err := b.drain(ctx, drainSpec{label: fmt.Sprintf("backlog %d", n), n: n, slice: b.opt.slice, relays: 1, recv: b.recv, stopAtSlice: n > b.opt.slice, vacuum: true})
		if err != nil {
			return err
		}
		b.logDrain(r)
		b.res.Claims = append(b.res.Claims, r)
	}
	if b.opt.pacedRate > 0 {
		// Four seconds of deliveries at the paced rate per backlog.
		slice := min(b.opt.slice, 4*b.opt.pacedRate)
		for _, n := range b.opt.backlogs {
			r, err := b.drain(ctx, drainSpec{label: fmt.Sprintf("backlog %d, paced at %d/s", n, b.opt.pacedRate), n: n, slice: slice, relays: 1,
				relayOpts: relayOpts{rateLimit: b.opt.pacedRate}, recv: b.recv, stopAtSlice: n > slice, vacuum: true})
			if err != nil {
				return err
			}
			b.logDrain(r)
			b.res.PacedClaims = append(b.res.PacedClaims, r)
		}
	}
	return b.truncate(ctx)
}

// slowReceivers drains a backlog spread over many endpoints whose receivers
// take their time to answer (200 of them, 200 ms, by default), with the
// relay's default configuration: what bounds it is how many requests the
// relay keeps in flight, not the machine.
func (b *bench) slowReceivers(ctx context.Context) error {
	for round := 1; round <= b.opt.rounds; round++ {
		label := fmt.Sprintf("slow: %d endpoints, receivers answer in %s", b.opt.slowEPs, b.opt.slowDelay)
		if b.opt.rounds > 1 {
			label += fmt.Sprintf(" (round %d)", round)
		}
		r, err := b.drain(ctx, drainSpec{label: label, n: b.opt.slowN, slice: b.opt.slowN, relays: 1, recv: b.recv,
			relayOpts: relayOpts{slowEndpoints: b.opt.slowEPs, slowDelay: b.opt.slowDelay}})
		if err != nil {
			return err
		}
		r.Round = round
		b.logDrain(r)
		b.say("   steady %.0f deliveries/s, %.0f deferred", r.SteadyRate, r.Deferred)
		b.res.Slow = append(b.res.Slow, r)
		if err := b.slowRiver(ctx, round); err != nil {
			return err
		}
	}
	return b.truncate(ctx)
}

// slowRiver drains the slow phase's N with River (the peers' river-relay)
// against the same receiver and delay, in the same round as Herald: one URL
// where Herald has one per endpoint, since River has no endpoints, which
// costs it nothing here (the receiver answers every path alike).
func (b *bench) slowRiver(ctx context.Context, round int) error {
	bin, err := b.buildPeers(ctx)
	if err != nil {
		if round == 1 {
			b.note("slow receivers: River skipped: %v", err)
		}
		return nil
	}
	if err := b.checkpoint(ctx); err != nil {
		return err
	}
	url := fmt.Sprintf("%s/slow?ms=%d", b.recv.hookURL(), b.opt.slowDelay.Milliseconds())
	for _, workers := range riverSlowWorkers {
		args := []string{"-workers", strconv.Itoa(workers), "-fetch-cooldown", "10ms", "-pool", "20", "-url", url}
		pr, err := b.runPeer(ctx, filepath.Join(bin, "river-relay"), "river-relay", b.opt.slowN, args)
		if err != nil {
			return err
		}
		pr.Round = round
		b.say("   river-relay %s: %.0f deliveries/s (%.2fs)", pr.Variant, pr.Rate, pr.Seconds)
		b.res.SlowPeers = append(b.res.SlowPeers, pr)
	}
	return nil
}

// manyRelays drains N with 1, 2 and 4 relay processes, each first with Go's
// default GOMAXPROCS (every core, so k relays oversubscribe the machine's
// cores k times) and then, for k > 1, with GOMAXPROCS = cores / k: what k
// containers sharing the machine with CPU limits get from Go (since 1.25 it
// reads the cgroup limit). Rounds are interleaved, every configuration once
// per round, so that drift on the machine hits them alike.
func (b *bench) manyRelays(ctx context.Context) error {
	cores := runtime.NumCPU()
	for round := 1; round <= b.opt.rounds; round++ {
		for _, k := range b.opt.relayCounts {
			procs := []int{0}
			if k > 1 {
				procs = append(procs, max(1, cores/k))
			}
			for _, gmp := range procs {
				label := fmt.Sprintf("%d relays", k)
				if gmp > 0 {
					label += fmt.Sprintf(", GOMAXPROCS=%d", gmp)
				}
				if b.opt.rounds > 1 {
					label += fmt.Sprintf(" (round %d)", round)
				}
				r, err := b.drain(ctx, drainSpec{label: label, n: b.opt.n, slice: b.opt.n, relays: k, relayOpts: relayOpts{gomaxprocs: gmp}, recv: b.recv, writes: true})
				if err != nil {
					return err
				}
				r.Round = round
				b.logDrain(r)
				b.res.ManyRelays = append(b.res.ManyRelays, r)
			}
		}
	}
	return nil
}

// LatencyResult is commit-to-receipt latency at a fixed offered load.
type LatencyResult struct {
	Notify         bool    `json:"notify"`
	OfferedPerS    int     `json:"offered_per_s"`
	Seconds        float64 `json:"seconds"`
	Producers      int     `json:"producers"`
	Messages       int     `json:"messages"`
	AchievedPerS   float64 `json:"achieved_per_s"`
	P50Ms          float64 `json:"p50_ms"`
	P95Ms          float64 `json:"p95_ms"`
	P99Ms          float64 `json:"p99_ms"`
	MaxMs          float64 `json:"max_ms"`
	Negative       int     `json:"received_before_commit_returned"`
	CommitP50Ms    float64 `json:"producer_enqueue_commit_p50_ms"`
	CommitP99Ms    float64 `json:"producer_enqueue_commit_p99_ms"`
	MaxLagMs       float64 `json:"producer_max_schedule_lag_ms"`
	RelayCPU       float64 `json:"relay_cpu_s"`
	RelayCPUPerMsg float64 `json:"relay_cpu_us_per_msg"`
	RSSMiB         float64 `json:"relay_peak_rss_mib"`
}

// latency offers latRate messages/s from latProducers goroutines, each
// committing one message per transaction with outbox.Enqueue (NOTIFY on),
// and measures from each commit's return to its first receipt.
func (b *bench) latency(ctx context.Context) error {
	for _, notify := range []bool{true, false} {
		r, err := b.latencyRun(ctx, notify)
		if err != nil {
			return err
		}
		if notify {
			b.res.Latency = r
		} else {
			b.res.LatencyNoNotify = r
		}
	}
	return nil
}

// latencyRun is one latency measurement, the producers' transactions with
// or without NOTIFY (without, the relay finds the messages by polling).
func (b *bench) latencyRun(ctx context.Context, notify bool) (*LatencyResult, error) {
	if err := b.truncate(ctx); err != nil {
		return nil, err
	}
	if err := b.recv.reset(); err != nil {
		return nil, err
	}
	p, err := b.startRelay(0, b.recv.hookURL(), relayOpts{})
	if err != nil {
		return nil, err
	}
	defer func() { _ = p.stop() }()
	if err := p.waitReady(20 * time.Second); err != nil {
		return nil, err
	}
	time.Sleep(500 * time.Millisecond) // let LISTEN settle
	_, relayCPU0, _ := procCPU(p.pid)
	total := int(float64(b.opt.latRate) * b.opt.latDur.Seconds())
	run := rand.Uint32()
	prefix := fmt.Sprintf("lat_%08x_", run)
	committed := make([]int64, total)
	commitDur := make([]time.Duration, total)
	interval := time.Second / time.Duration(b.opt.latRate)
	w := outbox.Writer{SkipNotify: !notify}
	var next atomic.Int64
	var maxLag atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, b.opt.latProducers)
	start := time.Now().Add(50 * time.Millisecond)
	for range b.opt.latProducers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= total || ctx.Err() != nil {
					return
				}
				at := start.Add(time.Duration(i) * interval)
				if d := time.Until(at); d > 0 {
					time.Sleep(d)
				} else if lag := int64(-d); lag > maxLag.Load() {
					maxLag.Store(lag)
				}
				msg := makeMessages(run, i, 1, prefix)
				t := time.Now()
				err := pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error { return w.Enqueue(ctx, tx, msg...) })
				committed[i] = time.Now().UnixNano()
				commitDur[i] = time.Since(t)
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	if err := <-errs; err != nil {
		return nil, err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := b.recv.stats()
		if err != nil {
			return nil, err
		}
		if st.Unique >= int64(total) {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("receiver has %d of %d after 30s", st.Unique, total)
		}
		if err := p.alive(); err != nil {
			return nil, err
		}
		time.Sleep(20 * time.Millisecond)
	}
	_, relayCPU1, _ := procCPU(p.pid)
	rss := peakRSSMiB(p.pid)
	times, err := b.recv.times(prefix, false)
	if err != nil {
		return nil, err
	}
	lat := make([]float64, 0, total)
	neg := 0
	for i := range total {
		t, ok := times[fmt.Sprintf("%s%d", prefix, i)]
		if !ok {
			return nil, fmt.Errorf("message %d never received", i)
		}
		d := float64(t-committed[i]) / 1e6
		if d < 0 {
			neg++
		}
		lat = append(lat, d)
	}
	slices.Sort(lat)
	cd := make([]float64, total)
	for i, d := range commitDur {
		cd[i] = float64(d) / 1e6
	}
	slices.Sort(cd)
	r := &LatencyResult{
		Notify:      notify,
		OfferedPerS: b.opt.latRate, Seconds: round(elapsed.Seconds(), 3), Producers: b.opt.latProducers, Messages: total,
		AchievedPerS: round(float64(total)/elapsed.Seconds(), 1),
		P50Ms:        round(pct(lat, 0.50), 3), P95Ms: round(pct(lat, 0.95), 3), P99Ms: round(pct(lat, 0.99), 3), MaxMs: round(lat[len(lat)-1], 3),
		Negative:    neg,
		CommitP50Ms: round(pct(cd, 0.5), 3), CommitP99Ms: round(pct(cd, 0.99), 3),
		MaxLagMs: round(float64(maxLag.Load())/1e6, 3),
		RelayCPU: round(relayCPU1-relayCPU0, 3), RelayCPUPerMsg: round((relayCPU1-relayCPU0)/float64(total)*1e6, 1),
		RSSMiB: round(rss, 1),
	}
	b.say("   %s: %d msg at %d/s offered (%.0f/s achieved): commit->receipt p50 %.2f ms, p95 %.2f, p99 %.2f, max %.2f; enqueue+commit p50 %.2f ms p99 %.2f",
		notifyLabel(notify), total, r.OfferedPerS, r.AchievedPerS, r.P50Ms, r.P95Ms, r.P99Ms, r.MaxMs, r.CommitP50Ms, r.CommitP99Ms)
	return r, p.stop()
}

// pct is the nearest-rank percentile of sorted values.
func pct(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}
