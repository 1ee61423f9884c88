package main

import (
	"github.com/herald-relay/herald/internal/faultproxy"

	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/herald-relay/herald/internal/pgcluster"
)

// msg is one message a scenario commits.
type msg struct {
	n                        int
	id, topic, key, endpoint string
}

// env is one scenario's world: its database on the throwaway cluster, its
// receivers, herald processes, proxies, and what it committed.
type env struct {
	name string
	opt  options
	bin  string
	cl   *pgcluster.Cluster
	dir  string
	db   string
	// dbURL is the direct DSN (the producer and the checks use it);
	// relayURL is the one herald gets, maybe through a proxy.
	dbURL, relayURL string
	cfg             string
	pool            *pgxpool.Pool
	rec             *recorder
	recv            map[string]*receiver
	relays          []*heraldProc
	relayStarts     int
	logs            []string
	proxies         []*faultproxy.Proxy

	mu sync.Mutex
	// want is every delivery owed, with the dead reason the scenario
	// accepts instead ("" for none).
	want map[pair]string
	msgs map[string]msg
	// committedAt is when each message's batch committed.
	committedAt map[string]time.Time
	ordered     map[string]bool // endpoints whose per-key order is checked
	// mayVanish are ids an operator deleted on purpose (dead purge).
	mayVanish map[string]bool
	failed    []string // checks of the scenario that did not hold
	notes     []string
	noStall   bool
	maxDupPct float64
	// maxStall bounds both the longest gap between deliveries and the
	// longest wait of a message from commit to first delivery.
	maxStall time.Duration
	// maxRSS bounds the relays' peak memory, in MiB (0: unbounded).
	maxRSS  int
	peakRSS int
	start   time.Time
}

func newEnv(ctx context.Context, name string, opt options, bin string, cl *pgcluster.Cluster, root string) (*env, error) {
	e := &env{name: name, opt: opt, start: time.Now(), bin: bin, cl: cl, dir: filepath.Join(root, name), db: "chaos_" + sanitize(name),
		rec: newRecorder(), recv: map[string]*receiver{}, want: map[pair]string{}, msgs: map[string]msg{}, committedAt: map[string]time.Time{},
		ordered: map[string]bool{}, mayVanish: map[string]bool{}}
	if err := os.MkdirAll(e.dir, 0o755); err != nil {
		return nil, err
	}
	if err := cl.CreateDB(ctx, e.db); err != nil {
		return nil, fmt.Errorf("create database: %w", err)
	}
	e.dbURL = cl.URL(e.db)
	e.relayURL = e.dbURL
	e.cfg = filepath.Join(e.dir, "herald.yaml")
	pc, err := pgxpool.ParseConfig(e.dbURL)
	if err != nil {
		return nil, err
	}
	// The suite's own connections are told apart from herald's (whose
	// application_name is "herald") when backends are terminated.
	pc.ConnConfig.RuntimeParams["application_name"] = "herald-chaos"
	pc.MaxConns = 4
	if e.pool, err = pgxpool.NewWithConfig(ctx, pc); err != nil {
		return nil, err
	}
	return e, nil
}

func sanitize(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			b[i] = '_'
		}
	}
	return string(b)
}

// fail records a check of the scenario that did not hold.
func (e *env) fail(format string, args ...any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.failed = append(e.failed, fmt.Sprintf(format, args...))
}

func (e *env) note(format string, args ...any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.notes = append(e.notes, fmt.Sprintf(format, args...))
}

// receiver starts an endpoint's receiver.
func (e *env) receiver(name string) (*receiver, error) {
	r, err := startReceiver(name, e.rec, endpointTimeout)
	if err != nil {
		return nil, err
	}
	e.recv[name] = r
	return r, nil
}

// proxy starts a fault proxy to target.
func (e *env) proxy(target string) (*faultproxy.Proxy, error) {
	p, err := faultproxy.Start(target)
	if err != nil {
		return nil, err
	}
	e.proxies = append(e.proxies, p)
	return p, nil
}

// setup writes herald's configuration and migrates the database with
// `herald migrate`, as an operator would.
func (e *env) setup(ctx context.Context, eps []endpointConf) error {
	for _, ep := range eps {
		if ep.ordered {
			e.ordered[ep.name] = true
		}
	}
	if err := writeConfig(e.cfg, e.relayURL, eps); err != nil {
		return err
	}
	_, err := heraldCLI(ctx, e.bin, e.migrateCfg(eps), "migrate")
	return err
}

// migrateCfg is a configuration with the direct database URL: the
// migration is not under test, and a proxy's faults must not fail it.
func (e *env) migrateCfg(eps []endpointConf) string {
	path := filepath.Join(e.dir, "direct.yaml")
	_ = writeConfig(path, e.dbURL, eps)
	return path
}

// cli runs a herald command against the scenario's database.
func (e *env) cli(ctx context.Context, args ...string) (string, error) {
	return heraldCLI(ctx, e.bin, filepath.Join(e.dir, "direct.yaml"), args...)
}

// startRelay starts one more `herald run`.
func (e *env) startRelay() (*heraldProc, error) {
	e.relayStarts++
	log := filepath.Join(e.dir, fmt.Sprintf("herald-%03d.log", e.relayStarts))
	p, err := startHeraldProc(e.bin, e.cfg, log)
	if err != nil {
		return nil, err
	}
	e.logs = append(e.logs, log)
	e.relays = append(e.relays, p)
	return p, nil
}

func (e *env) startRelays(n int) error {
	for range n {
		if _, err := e.startRelay(); err != nil {
			return err
		}
	}
	return nil
}

// live are the relays still running.
func (e *env) live() []*heraldProc {
	var out []*heraldProc
	for _, p := range e.relays {
		if p.running() {
			out = append(out, p)
		}
	}
	return out
}

// checkRelays records a relay that exited by itself.
func (e *env) checkRelays() {
	for _, p := range e.relays {
		if !p.running() && !p.byUs.Load() && !p.reported {
			p.reported = true
			e.fail("herald exited by itself (%v); log %s", p.exitErr, p.log)
		}
	}
}

// teardown stops everything the scenario started.
func (e *env) teardown() {
	peak := 0
	for _, p := range e.live() {
		peak = max(peak, p.peakRSS())
	}
	e.peakRSS = peak >> 10
	if peak > 0 {
		e.note("peak memory of the relays still running: %d MiB", e.peakRSS)
	}
	var wg sync.WaitGroup
	for _, p := range e.relays {
		if p.running() {
			wg.Add(1)
			go func() { defer wg.Done(); p.stop() }()
		}
	}
	wg.Wait()
	for _, p := range e.proxies {
		p.Close()
	}
	for _, r := range e.recv {
		r.close()
	}
}

// produce commits msgs, in batches, spread evenly over d (all at once when
// d is 0). Each batch is one transaction; a batch that fails (the
// database restarting, its backend terminated) is retried until it
// commits, with ON CONFLICT (id) DO NOTHING making a retry after an
// unknown outcome harmless. route names the endpoints each message is owed
// to and the dead reason accepted instead.
func (e *env) produce(ctx context.Context, msgs []msg, d time.Duration, route func(msg) ([]string, string)) error {
	const batch = 200
	start := time.Now()
	for i := 0; i < len(msgs); i += batch {
		part := msgs[i:min(i+batch, len(msgs))]
		if d > 0 {
			at := start.Add(time.Duration(float64(d) * float64(i) / float64(len(msgs))))
			if w := time.Until(at); w > 0 {
				select {
				case <-time.After(w):
				case <-ctx.Done():
					return ctx.Err()
				}
			}
		}
		if err := e.insert(ctx, part); err != nil {
			return err
		}
		now := time.Now()
		e.mu.Lock()
		for _, m := range part {
			e.msgs[m.id] = m
			e.committedAt[m.id] = now
			eps, dead := route(m)
			for _, ep := range eps {
				e.want[pair{ep, m.id}] = dead
			}
		}
		e.mu.Unlock()
	}
	return nil
}

// insertRetryFor bounds how long one batch is retried.
const insertRetryFor = 2 * time.Minute

func (e *env) insert(ctx context.Context, part []msg) error {
	ids, topics, payloads := make([]string, len(part)), make([]string, len(part)), make([]string, len(part))
	keys, eps := make([]*string, len(part)), make([]*string, len(part))
	for i, m := range part {
		ids[i], topics[i] = m.id, m.topic
		payloads[i] = `{"n":` + strconv.Itoa(m.n) + `,"scenario":"` + e.name + `"}`
		if m.key != "" {
			keys[i] = &m.key
		}
		if m.endpoint != "" {
			eps[i] = &m.endpoint
		}
	}
	deadline := time.Now().Add(insertRetryFor)
	var err error
	for attempt := 0; time.Now().Before(deadline); attempt++ {
		_, err = e.pool.Exec(ctx, insertMessages, ids, topics, payloads, keys, eps)
		if err == nil || ctx.Err() != nil {
			return err
		}
		select {
		case <-time.After(min(time.Duration(attempt+1)*50*time.Millisecond, time.Second)):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return fmt.Errorf("insert messages (retried for %s): %w", insertRetryFor, err)
}

// waitDelivered waits until n first deliveries have been received.
func (e *env) waitDelivered(ctx context.Context, n int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		e.rec.mu.Lock()
		got := len(e.rec.firsts)
		e.rec.mu.Unlock()
		if got >= n {
			return nil
		}
		if err := sleepCtx(ctx, 20*time.Millisecond); err != nil {
			return err
		}
	}
	return fmt.Errorf("waited %s for %d deliveries", timeout, n)
}

// waitDrained waits until the outbox holds nothing to deliver: no message
// in the hot lane and no pair in the retry lane. A scenario that does not
// drain in time is reported with what is left (stuck).
func (e *env) waitDrained(ctx context.Context, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		e.checkRelays()
		var left int
		err := e.pool.QueryRow(ctx, countQueued).Scan(&left)
		if err == nil && left == 0 {
			return
		}
		if sleepCtx(ctx, 100*time.Millisecond) != nil {
			return
		}
	}
	e.fail("not drained within %s", timeout)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	select {
	case <-time.After(d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// account compares what was committed with what the receivers accepted and
// what outbox.dead holds. Call it after teardown, when nothing moves.
func (e *env) account(ctx context.Context) (result, error) {
	r := result{Scenario: e.name}
	type deadRow struct{ endpoint, reason string }
	dead := map[string][]deadRow{}
	rows, err := e.pool.Query(ctx, selectDead)
	if err != nil {
		return r, fmt.Errorf("read outbox.dead: %w", err)
	}
	for rows.Next() {
		var id, ep, reason string
		if err := rows.Scan(&id, &ep, &reason); err != nil {
			return r, err
		}
		dead[id] = append(dead[id], deadRow{ep, reason})
	}
	if err := rows.Err(); err != nil {
		return r, fmt.Errorf("read outbox.dead: %w", err)
	}
	queued := map[pair]bool{}
	rows, err = e.pool.Query(ctx, selectQueued)
	if err != nil {
		return r, fmt.Errorf("read queue: %w", err)
	}
	for rows.Next() {
		var p pair
		if err := rows.Scan(&p.endpoint, &p.id); err != nil {
			return r, err
		}
		queued[p] = true
	}
	if err := rows.Err(); err != nil {
		return r, fmt.Errorf("read queue: %w", err)
	}

	// A producer of a scenario that ended early may still be stopping.
	e.mu.Lock()
	defer e.mu.Unlock()
	e.rec.mu.Lock()
	defer e.rec.mu.Unlock()
	r.Committed = len(e.msgs)
	r.Pairs = len(e.want)
	r.Requests = e.rec.requests.Load()
	r.Hostile = e.rec.hostile
	var lostSample, stuckSample, misparkedSample []string
	for p, deadOK := range e.want {
		if n := e.rec.count[p]; n > 0 {
			r.Delivered++
			r.Slowest = max(r.Slowest, e.rec.firstAt[p].Sub(e.committedAt[p.id]))
			if e.rec.late[p] {
				r.LateDups += n - 1
			} else {
				r.Duplicates += n - 1
			}
			continue
		}
		parked := ""
		for _, d := range dead[p.id] {
			if d.endpoint == p.endpoint || d.endpoint == "" {
				parked = d.reason
			}
		}
		switch {
		case parked != "" && parked == deadOK:
			r.Parked++
		case parked != "":
			r.Misparked++
			if len(misparkedSample) < 3 {
				misparkedSample = append(misparkedSample, fmt.Sprintf("%s/%s as %q", p.endpoint, p.id, parked))
			}
		case queued[p] || queued[pair{"", p.id}]:
			r.Stuck++
			if len(stuckSample) < 3 {
				stuckSample = append(stuckSample, p.endpoint+"/"+p.id)
			}
		case e.mayVanish[p.id]:
			r.Purged++
		default:
			r.Lost++
			if len(lostSample) < 5 {
				lostSample = append(lostSample, p.endpoint+"/"+p.id)
			}
		}
	}
	for p, n := range e.rec.count {
		if _, ok := e.want[p]; !ok {
			r.Misrouted += n
		}
	}
	if r.Misrouted > 0 {
		e.failed = append(e.failed, fmt.Sprintf("%d deliveries to an endpoint the message was not owed to", r.Misrouted))
	}
	if len(misparkedSample) > 0 {
		e.failed = append(e.failed, fmt.Sprintf("%d parked in outbox.dead with a reason the scenario does not expect, e.g. %v", r.Misparked, misparkedSample))
	}
	if len(lostSample) > 0 {
		e.failed = append(e.failed, fmt.Sprintf("lost, e.g. %v", lostSample))
	}
	if len(stuckSample) > 0 {
		e.failed = append(e.failed, fmt.Sprintf("%d still queued at the end, e.g. %v", r.Stuck, stuckSample))
	}
	r.OrderViolations = e.orderViolations()
	if r.OrderViolations > 0 {
		e.failed = append(e.failed, fmt.Sprintf("%d first deliveries out of per-key order", r.OrderViolations))
	}
	if !e.noStall {
		var at time.Time
		r.Stall, at = longestGap(e.rec.firsts)
		if r.Stall > time.Second {
			e.notes = append(e.notes, fmt.Sprintf("the longest stall began %s into the scenario (%s)",
				at.Sub(e.start).Round(10*time.Millisecond), at.UTC().Format("15:04:05.000")))
		}
		if e.maxStall > 0 && r.Stall > e.maxStall {
			e.failed = append(e.failed, fmt.Sprintf("delivery stalled %s (limit %s)", r.Stall.Round(time.Millisecond), e.maxStall))
		}
		if e.maxStall > 0 && r.Slowest > e.maxStall {
			e.failed = append(e.failed, fmt.Sprintf("a message waited %s from commit to delivery (limit %s): rows waited for a lease",
				r.Slowest.Round(time.Millisecond), e.maxStall))
		}
	} else {
		r.Slowest = 0
	}
	if e.maxDupPct > 0 && r.Pairs > 0 {
		if pct := 100 * float64(r.Duplicates) / float64(r.Pairs); pct >= e.maxDupPct {
			e.failed = append(e.failed, fmt.Sprintf("duplicates %.2f%% (limit %.1f%%)", pct, e.maxDupPct))
		}
	}
	if e.maxRSS > 0 && e.peakRSS > e.maxRSS {
		e.failed = append(e.failed, fmt.Sprintf("a relay's memory peaked at %d MiB (limit %d MiB)", e.peakRSS, e.maxRSS))
	}
	if leaks := secretLeaks(e.logs); len(leaks) > 0 {
		e.failed = append(e.failed, fmt.Sprintf("a secret appears in %v", leaks))
	}
	r.Failed = e.failed
	r.Notes = e.notes
	r.LogLines = logErrors(e.logs)
	r.Logs = e.dir
	return r, nil
}

// orderViolations counts first deliveries to an ordered endpoint that came
// before an earlier-committed message of the same key.
func (e *env) orderViolations() int {
	n := 0
	for ep := range e.ordered {
		last := map[string]int{}
		for _, id := range e.rec.order[ep] {
			m, ok := e.msgs[id]
			if !ok || m.key == "" {
				continue
			}
			if prev, seen := last[m.key]; seen && m.n < prev {
				n++
				continue
			}
			last[m.key] = m.n
		}
	}
	return n
}

// longestGap is the longest time between two consecutive first
// deliveries, and when it began.
func longestGap(ts []time.Time) (time.Duration, time.Time) {
	s := slices.Clone(ts)
	slices.SortFunc(s, func(a, b time.Time) int { return a.Compare(b) })
	var gap time.Duration
	var at time.Time
	for i := 1; i < len(s); i++ {
		if d := s[i].Sub(s[i-1]); d > gap {
			gap, at = d, s[i-1]
		}
	}
	return gap, at
}

// terminateHerald ends every backend of herald's on the scenario's
// database, as an operator's pg_terminate_backend or a pooler would.
func (e *env) terminateHerald(ctx context.Context) (int, error) {
	var n int
	err := e.pool.QueryRow(ctx, terminateHerald, e.db).Scan(&n)
	return n, err
}
