package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/herald-relay/herald/internal/heraldtest"
	"github.com/jackc/pgx/v5"
)

// TestMain lets the test binary play the receiver and inproc relay children
// that the bench re-executes itself as.
func TestMain(m *testing.M) {
	if role := os.Getenv(childEnv); role != "" {
		os.Exit(childMain(role, os.Args[1:]))
	}
	os.Exit(m.Run())
}

func adminDSN() string {
	if v := os.Getenv("HERALD_BENCH_ADMIN_DSN"); v != "" {
		return v
	}
	return heraldtest.ServerURL()
}

// TestPipeline runs every phase with tiny sizes against the real database,
// so that CI notices when the bench rots. It checks that figures came out,
// not what they are.
func TestPipeline(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, adminDSN())
	if err != nil {
		// A test never skips for want of a database: it fails and says how.
		t.Fatalf("PostgreSQL not reachable: %v\n%s", err, heraldtest.HowToStart)
	}
	conn.Close(ctx)

	dir := t.TempDir()
	// The bench's work dir goes under tmp, which must be empty afterwards.
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	// As root, the pgrestart phase's initdb runs as the postgres OS user,
	// in a dir under tmp: it must be able to get there.
	for _, d := range []string{tmp, filepath.Dir(tmp)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	db := fmt.Sprintf("herald_bench_test_%d_%x", os.Getpid(), rand.Uint32())
	var out bytes.Buffer
	opt, err := parseFlags([]string{
		"-n", "500", "-rounds", "1", "-no-peers", "-db", db, "-admin-dsn", adminDSN(),
		"-latency-rate", "200", "-latency-duration", "1s", "-latency-producers", "4",
		"-enqueue-n", "1000", "-sql-duration", "300ms", "-sql-producers", "2",
		"-backlogs", "500", "-slice", "300", "-relays", "1,2",
		"-slow-n", "300", "-slow-endpoints", "5", "-slow-delay", "20ms", "-history-n", "300",
		"-kill-n", "2000", "-kill-lease", "7s", "-restart-rate", "200", "-restart-before", "1s", "-restart-after", "1s",
		"-stale-n", "300",
		"-json", filepath.Join(dir, "results.json"),
	}, &out)
	if err != nil {
		t.Fatal(err)
	}
	res, err := run(ctx, opt)
	t.Cleanup(func() { dropTestDB(t, db) })
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	if len(res.Drains) != 1 || res.Drains[0].Unique != 500 || res.Drains[0].Rate <= 0 {
		t.Errorf("drains = %+v", res.Drains)
	}
	if w := res.Drains[0].Writes; w == nil || w.InsPerMsg < 1 || w.HistoryInsPerMsg < 1 {
		t.Errorf("writes = %+v, want at least the producer's insert per message, and an attempt logged for each", w)
	}
	if res.Latency == nil || res.Latency.Messages != 200 || res.Latency.P99Ms <= 0 || !res.Latency.Notify {
		t.Errorf("latency = %+v", res.Latency)
	}
	if l := res.LatencyNoNotify; l == nil || l.Messages != 200 || l.P99Ms <= 0 || l.Notify {
		t.Errorf("latency without NOTIFY = %+v", l)
	}
	if len(res.Producers) != 6 {
		t.Errorf("got %d producer runs, want 6", len(res.Producers))
	}
	if len(res.Claims) != 1 || res.Claims[0].ClaimsInSlice <= 0 {
		t.Errorf("claims = %+v", res.Claims)
	}
	// 1 relay, then 2 with Go's default GOMAXPROCS and 2 sharing the cores.
	if len(res.ManyRelays) != 3 || res.ManyRelays[1].Relays != 2 || res.ManyRelays[1].Unique != 500 ||
		res.ManyRelays[1].GOMAXPROCS != 0 || res.ManyRelays[2].GOMAXPROCS != max(1, runtime.NumCPU()/2) || res.ManyRelays[2].Unique != 500 {
		t.Errorf("many relays = %+v", res.ManyRelays)
	}
	if len(res.Slow) != 1 || res.Slow[0].Unique != 300 || res.Slow[0].Endpoints != 5 || res.Slow[0].SteadyRate <= 0 {
		t.Errorf("slow = %+v", res.Slow)
	}
	if h := res.History; h == nil || len(h.Drains) != 4 || h.Medians["all"] <= 0 || h.Flat == nil || h.Flat.Dropped == 0 ||
		len(h.Flat.Sizes) != 3 || h.Flat.Sizes[2].Attempts >= h.Flat.Sizes[1].Attempts {
		t.Errorf("history = %+v", h)
	}
	// The kill phase's lease is 7 s: the dead relay's rows wait for it
	// (or less, with a faster takeover), never for herald's default 60 s.
	if len(res.Kill) != 1 || !res.Kill[0].AllDelivered || res.Kill[0].TakenOver == 0 ||
		res.Kill[0].TakeoverSeconds <= 0 || res.Kill[0].TakeoverSeconds > 20 {
		t.Errorf("kill = %+v", res.Kill)
	}
	if len(res.Restart) != 1 || !res.Restart[0].AllDelivered || res.Restart[0].Committed == 0 || res.Restart[0].RateBefore <= 0 {
		t.Errorf("pgrestart = %+v", res.Restart)
	}
	if len(res.Stale) != len(staleVariants) || res.Stale[0].Unique != 300 || res.Stale[len(staleVariants)-1].Unique != 300 {
		t.Errorf("stale = %+v", res.Stale)
	}
	if !strings.Contains(out.String(), "| metric | value | target | met? |") {
		t.Errorf("no table in output:\n%s", out.String())
	}
	// A successful run leaves nothing behind: its work dir holds a herald
	// binary (26 MB) and the logs, wanted only when a phase failed.
	if left, err := os.ReadDir(tmp); err != nil || len(left) > 0 {
		t.Errorf("left in TMPDIR after a successful run: %v (%v)", left, err)
	}
	js, err := os.ReadFile(filepath.Join(dir, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	var back Results
	if err := json.Unmarshal(js, &back); err != nil || len(back.Table) == 0 {
		t.Errorf("results.json: %v, %d rows", err, len(back.Table))
	}
}

func dropTestDB(t *testing.T, db string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, adminDSN())
	if err != nil {
		return
	}
	defer conn.Close(ctx)
	var n int
	_ = conn.QueryRow(ctx, "SELECT count(*) FROM pg_database WHERE datname = $1", db).Scan(&n)
	if n != 0 {
		t.Errorf("database %s was not dropped", db)
		_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{db}.Sanitize()+" WITH (FORCE)")
	}
}

func TestQuantiles(t *testing.T) {
	h := hist{le: []float64{0.001, 0.005, 0.01}, cum: []float64{50, 99, 100}, count: 100, sum: 0.3}
	if got := h.quantileUpper(0.99); got != 0.005 {
		t.Errorf("p99 upper = %v, want 0.005", got)
	}
	if got := h.quantileInterp(0.5); got != 0.001 {
		t.Errorf("p50 interp = %v, want 0.001", got)
	}
	if got := pct([]float64{1, 2, 3, 4}, 0.5); got != 2 {
		t.Errorf("pct = %v, want 2", got)
	}
}

// The connection error names no password, whatever the DSN's form.
func TestSetupDBErrorHidesPassword(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, dsn := range []string{
		"host=127.0.0.1 port=1 user=u password=hunter2 dbname=x connect_timeout=5",
		"postgres://u:hunter2@127.0.0.1:1/x?connect_timeout=5",
		"postgres://u@127.0.0.1:1/x?password=hunter2&connect_timeout=5",
	} {
		b := &bench{opt: options{adminDSN: dsn}}
		if err := b.setupDB(ctx); err == nil || strings.Contains(err.Error(), "hunter2") {
			t.Fatalf("%s: %v", dsn, err)
		}
	}
}

// Each bad flag value is refused with an error that names the flag.
func TestParseFlagsNamesTheBadFlag(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ args []string }{
		{[]string{"-only", "drain,nope"}},
		{[]string{"-kill-n", "5"}},
		{[]string{"-stale-n", "0"}},
		{[]string{"-kill-lease", "2s"}},
		{[]string{"-restart-rate", "5"}},
		{[]string{"-restart-after", "100ms"}},
	} {
		_, err := parseFlags(c.args, io.Discard)
		name := strings.TrimPrefix(c.args[0], "-")
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%v: err = %v, want one naming %s", c.args, err, name)
		}
	}
	o, err := parseFlags([]string{"-only", "kill, pgrestart,stale"}, io.Discard)
	if err != nil || !slices.Equal(o.only, []string{"kill", "pgrestart", "stale"}) {
		t.Errorf("-only kill,pgrestart,stale: %v, %v", o.only, err)
	}
}

// Two benches given one -db would drop each other's database mid-run (its
// DROP ... WITH (FORCE) ends the other's connections): the second must
// refuse to start, naming the flag, and leave the first's database alone.
func TestSecondBenchOnOneDatabaseRefuses(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db := fmt.Sprintf("herald_bench_test_%d_%x", os.Getpid(), rand.Uint32())
	first := &bench{opt: options{dbName: db, adminDSN: adminDSN()}}
	t.Cleanup(func() { dropTestDB(t, db) })
	if err := first.setupDB(ctx); err != nil {
		t.Fatal(err)
	}
	defer first.dbLock.Close(context.Background())
	defer first.dropDB()

	second := &bench{opt: options{dbName: db, adminDSN: adminDSN()}}
	err := second.setupDB(ctx)
	if err == nil {
		second.dropDB()
		second.dbLock.Close(ctx)
		t.Fatal("a second bench set up the database the first one is using")
	}
	if !strings.Contains(err.Error(), "-db") {
		t.Errorf("error %q does not name the -db flag", err)
	}
	var n int
	if err := first.pool.QueryRow(ctx, `SELECT count(*) FROM outbox.messages`).Scan(&n); err != nil {
		t.Fatalf("the first bench's database was disturbed: %v", err)
	}
}
