package main

import (
	"github.com/herald-relay/herald/internal/faultproxy"

	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// scenario is one fault and what must hold under it. Each runs in its own
// database, with its own receivers and herald processes, within its limit.
type scenario struct {
	name                  string
	shortLimit, longLimit time.Duration
	run                   func(ctx context.Context, e *env) error
}

func (s scenario) limit(short bool) time.Duration {
	if short {
		return s.shortLimit
	}
	return s.longLimit
}

var scenarios = []scenario{
	{"sigkill", 90 * time.Second, 5 * time.Minute, runSigkill},
	{"pg-restart-fast", 90 * time.Second, 5 * time.Minute, func(ctx context.Context, e *env) error { return runPGRestart(ctx, e, "fast") }},
	{"pg-restart-immediate", 90 * time.Second, 5 * time.Minute, func(ctx context.Context, e *env) error { return runPGRestart(ctx, e, "immediate") }},
	{"pg-terminate", 90 * time.Second, 5 * time.Minute, runPGTerminate},
	{"hostile", 90 * time.Second, 5 * time.Minute, runHostile},
	{"proxy-receiver", 90 * time.Second, 5 * time.Minute, func(ctx context.Context, e *env) error { return runProxy(ctx, e, false) }},
	{"proxy-db", 90 * time.Second, 5 * time.Minute, func(ctx context.Context, e *env) error { return runProxy(ctx, e, true) }},
	{"broken-endpoint", 90 * time.Second, 5 * time.Minute, runBrokenEndpoint},
	{"bad-endpoint-row", 90 * time.Second, 5 * time.Minute, runBadEndpointRow},
	{"operator", 150 * time.Second, 5 * time.Minute, runOperator},
}

func scenarioNames() []string {
	out := make([]string, len(scenarios))
	for i, s := range scenarios {
		out[i] = s.name
	}
	return out
}

// pick is the short form's value or the long form's.
func pick[T any](e *env, short, long T) T {
	if e.opt.short {
		return short
	}
	return long
}

// numbered makes n messages on topic, ids prefix-0..., keyed over keys
// keys (no key when keys is 0).
func numbered(prefix, topic string, n, keys int) []msg {
	out := make([]msg, n)
	for i := range out {
		out[i] = msg{n: i, id: prefix + "-" + strconv.Itoa(i), topic: topic}
		if keys > 0 {
			out[i].key = "k" + strconv.Itoa(i%keys)
		}
	}
	return out
}

// to routes every message to eps, accepting no dead reason.
func to(eps ...string) func(msg) ([]string, string) {
	return func(msg) ([]string, string) { return eps, "" }
}

// drainTime is how long a scenario waits for the outbox to empty once its
// producer is done: a lease (rows a killed or cut-off relay held) and then
// some.
func drainTime(e *env) time.Duration { return leaseDuration + pick(e, 30*time.Second, 90*time.Second) }

// produceAsync runs e.produce in the background; the channel yields its
// error once.
func produceAsync(ctx context.Context, e *env, msgs []msg, d time.Duration, route func(msg) ([]string, string)) <-chan error {
	done := make(chan error, 1)
	go func() { done <- e.produce(ctx, msgs, d, route) }()
	return done
}

// runSigkill: three relays, one killed with SIGKILL every 0.3-1.5 s and
// replaced at once, while messages flow to an unordered and an ordered
// endpoint. Rows a killed relay held wait for their lease; the ordered
// endpoint's first deliveries must keep per-key commit order.
func runSigkill(ctx context.Context, e *env) error {
	plain, err := e.receiver("plain")
	if err != nil {
		return err
	}
	ordered, err := e.receiver("ordered")
	if err != nil {
		return err
	}
	// Requests that take a while keep rows in flight for a kill to catch.
	plain.delay.Store(int64(10 * time.Millisecond))
	ordered.delay.Store(int64(10 * time.Millisecond))
	if err := e.setup(ctx, []endpointConf{
		{name: "plain", url: plain.url(), topics: []string{"*"}},
		{name: "ordered", url: ordered.url(), topics: []string{"*"}, ordered: true},
	}); err != nil {
		return err
	}
	if err := e.startRelays(3); err != nil {
		return err
	}
	n, d := pick(e, 3000, 30000), pick(e, 8*time.Second, 40*time.Second)
	done := produceAsync(ctx, e, numbered("m", "orders.created", n, 100), d, to("plain", "ordered"))
	kills := 0
	for i := 0; i < 1000; i++ {
		select {
		case err := <-done:
			e.note("%d relays killed with SIGKILL and replaced", kills)
			if err != nil {
				return err
			}
			e.waitDrained(ctx, drainTime(e))
			return nil
		case <-time.After(300*time.Millisecond + rand.N(1200*time.Millisecond)):
		}
		live := e.live()
		if len(live) == 0 {
			return fmt.Errorf("no relay running")
		}
		live[rand.IntN(len(live))].kill()
		kills++
		if _, err := e.startRelay(); err != nil {
			return err
		}
	}
	return fmt.Errorf("producer did not finish")
}

// pgScenario is the common shape of the PostgreSQL scenarios: two relays,
// messages flowing, fault applied at each mark (a share of the messages
// delivered); delivery must be back within seconds (maxStall) and
// duplicates under 2%.
func pgScenario(ctx context.Context, e *env, marks []float64, fault func(context.Context) error) error {
	r, err := e.receiver("plain")
	if err != nil {
		return err
	}
	if err := e.setup(ctx, []endpointConf{{name: "plain", url: r.url(), topics: []string{"*"}}}); err != nil {
		return err
	}
	e.maxDupPct = 2
	e.maxStall = 5 * time.Second
	if err := e.startRelays(2); err != nil {
		return err
	}
	n, d := pick(e, 5000, 50000), pick(e, 6*time.Second, 20*time.Second)
	done := produceAsync(ctx, e, numbered("m", "orders.created", n, 0), d, to("plain"))
	for _, mark := range marks {
		if err := e.waitDelivered(ctx, int(mark*float64(n)), d+drainTime(e)); err != nil {
			return err
		}
		if err := fault(ctx); err != nil {
			return err
		}
	}
	if err := <-done; err != nil {
		return err
	}
	e.waitDrained(ctx, drainTime(e))
	return nil
}

// runPGRestart: `pg_ctl restart -m fast|immediate` a third of the way
// through, under two relays.
func runPGRestart(ctx context.Context, e *env, mode string) error {
	return pgScenario(ctx, e, []float64{0.3}, func(ctx context.Context) error {
		t := time.Now()
		if err := e.cl.Restart(ctx, mode); err != nil {
			return err
		}
		e.note("pg_ctl restart -m %s took %s", mode, time.Since(t).Round(time.Millisecond))
		return nil
	})
}

// runPGTerminate: pg_terminate_backend of every herald backend, three
// times.
func runPGTerminate(ctx context.Context, e *env) error {
	return pgScenario(ctx, e, []float64{0.25, 0.5, 0.75}, func(ctx context.Context) error {
		n, err := e.terminateHerald(ctx)
		e.note("terminated %d herald backends", n)
		return err
	})
}

// runHostile: an endpoint that gives one of hostileKinds to 10% of the
// requests and a 2xx to the rest. Every message must arrive, with
// duplicates under 1% (not counting retries after a late 2xx), and no
// relay's memory may grow with what the endpoint sends.
func runHostile(ctx context.Context, e *env) error {
	r, err := e.receiver("hostile")
	if err != nil {
		return err
	}
	r.hostilePermille.Store(100)
	if err := e.setup(ctx, []endpointConf{{name: "hostile", url: r.url(), topics: []string{"*"}}}); err != nil {
		return err
	}
	e.maxDupPct = 1
	// A relay needs some 30 MiB here; hostile answers must cost only the
	// bytes herald chooses to read (headers and a body snippet, capped).
	e.maxRSS = 256
	if err := e.startRelays(2); err != nil {
		return err
	}
	n, d := pick(e, 2000, 20000), pick(e, 5*time.Second, 30*time.Second)
	if err := e.produce(ctx, numbered("m", "orders.created", n, 0), d, to("hostile")); err != nil {
		return err
	}
	e.waitDrained(ctx, drainTime(e))
	e.rec.mu.Lock()
	e.note("hostile answers: %v", e.rec.hostile)
	e.rec.mu.Unlock()
	return nil
}

// proxyFaults applies the proxy's faults along a run of length d: latency,
// connections cut, a black hole of 3 s, connections cut again.
func proxyFaults(ctx context.Context, e *env, p *faultproxy.Proxy, d time.Duration, latency time.Duration) error {
	step := func(at float64) error {
		return sleepCtx(ctx, time.Duration(at*float64(d)))
	}
	if err := step(0.1); err != nil {
		return err
	}
	p.SetLatency(latency)
	if err := step(0.2); err != nil {
		return err
	}
	p.SetLatency(0)
	cut := p.Drop()
	if err := step(0.1); err != nil {
		return err
	}
	cut += p.Drop()
	if err := step(0.1); err != nil {
		return err
	}
	p.SetBlackHole(true)
	if err := sleepCtx(ctx, 3*time.Second); err != nil {
		return err
	}
	p.SetBlackHole(false)
	if err := step(0.1); err != nil {
		return err
	}
	cut += p.Drop()
	e.note("proxy: %s latency, %d connections cut, a 3s black hole", latency, cut)
	return nil
}

// runProxy: the fault proxy between the relays and the receiver, or
// between the relays and PostgreSQL (the producer and the checks connect
// directly).
func runProxy(ctx context.Context, e *env, db bool) error {
	r, err := e.receiver("plain")
	if err != nil {
		return err
	}
	target, latency := r.ln.Addr().String(), 50*time.Millisecond
	if db {
		target, latency = e.cl.Addr(), 20*time.Millisecond
	}
	p, err := e.proxy(target)
	if err != nil {
		return err
	}
	hook := r.url()
	if db {
		e.relayURL = fmt.Sprintf("postgres://postgres@%s/%s?sslmode=disable", p.Addr(), e.db)
	} else {
		hook = "http://" + p.Addr() + "/hook"
	}
	if err := e.setup(ctx, []endpointConf{{name: "plain", url: hook, topics: []string{"*"}}}); err != nil {
		return err
	}
	if err := e.startRelays(2); err != nil {
		return err
	}
	n, d := pick(e, 3000, 20000), pick(e, 8*time.Second, 30*time.Second)
	done := produceAsync(ctx, e, numbered("m", "orders.created", n, 0), d, to("plain"))
	if err := proxyFaults(ctx, e, p, d, latency); err != nil {
		return err
	}
	if err := <-done; err != nil {
		return err
	}
	e.waitDrained(ctx, drainTime(e))
	return nil
}

// runBrokenEndpoint: an endpoint that exists but cannot be built (its
// tls.ca_file holds no certificate) while messages for it are committed,
// some naming it; then its file is repaired with the receiver's CA. Its
// messages must wait for it and then arrive: none may be acknowledged
// without it, or die unroutable.
func runBrokenEndpoint(ctx context.Context, e *env) error {
	plain, err := e.receiver("plain")
	if err != nil {
		return err
	}
	sec, caPEM, err := startTLSReceiver("tls", e.rec, endpointTimeout)
	if err != nil {
		return err
	}
	e.recv["tls"] = sec
	ca := filepath.Join(e.dir, "ca.pem")
	if err := os.WriteFile(ca, []byte("not a certificate\n"), 0o600); err != nil {
		return err
	}
	if err := e.setup(ctx, []endpointConf{
		{name: "plain", url: plain.url(), topics: []string{"*"}},
		{name: "tls", url: sec.url(), topics: []string{"*"}, caFile: ca},
	}); err != nil {
		return err
	}
	if err := e.startRelays(2); err != nil {
		return err
	}
	if err := e.produce(ctx, numbered("m", "orders.created", pick(e, 500, 5000), 0), 0, to("plain", "tls")); err != nil {
		return err
	}
	named := numbered("named", "orders.created", pick(e, 10, 50), 0)
	for i := range named {
		named[i].endpoint = "tls"
	}
	if err := e.produce(ctx, named, 0, to("tls")); err != nil {
		return err
	}
	if err := sleepCtx(ctx, 3*time.Second); err != nil {
		return err
	}
	if err := os.WriteFile(ca, caPEM, 0o600); err != nil {
		return err
	}
	e.waitDrained(ctx, drainTime(e))
	return nil
}

// runBadEndpointRow: an operator writes a row of outbox.endpoints by SQL
// with a header value that is not a string. The bad row is skipped and
// reported; the relays keep applying other changes (an endpoint added
// after it), and a relay started after it starts.
func runBadEndpointRow(ctx context.Context, e *env) error {
	base, err := e.receiver("base")
	if err != nil {
		return err
	}
	good, err := e.receiver("good")
	if err != nil {
		return err
	}
	if err := e.setup(ctx, []endpointConf{{name: "base", url: base.url(), topics: []string{"*"}}}); err != nil {
		return err
	}
	if err := e.startRelays(1); err != nil {
		return err
	}
	if err := e.waitLog(ctx, 1, 30*time.Second, "relay started", contains(`"relay started"`)); err != nil {
		return err
	}
	if _, err := e.pool.Exec(ctx, insertBadEndpoint, base.url()); err != nil {
		return fmt.Errorf("insert the bad endpoint row: %w", err)
	}
	if _, err := e.cli(ctx, "endpoints", "add", "good", "--url", good.url(), "--secret", chaosSecret, "--topic", "*"); err != nil {
		return err
	}
	if err := e.waitLog(ctx, 1, 20*time.Second, "good added", listed("added", "good")); err != nil {
		e.fail("after a bad row in outbox.endpoints: %v", err)
	}
	// A relay started after the bad row knows both rows from its start.
	if _, err := e.startRelay(); err != nil {
		return err
	}
	if err := e.waitLog(ctx, 1, 30*time.Second, "relay started", contains(`"relay started"`)); err != nil {
		e.fail("a relay started after a bad row in outbox.endpoints: %v", err)
	}
	if err := e.produce(ctx, numbered("m", "orders.created", pick(e, 500, 5000), 0), 0, to("base", "good")); err != nil {
		return err
	}
	e.waitDrained(ctx, drainTime(e))
	return nil
}

// waitLog waits until every running relay's log holds at least n lines
// for which match is true.
func (e *env) waitLog(ctx context.Context, n int, timeout time.Duration, what string, match func(line string) bool) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		ok := true
		for _, p := range e.live() {
			b, _ := os.ReadFile(p.log)
			got := 0
			for _, l := range strings.Split(string(b), "\n") {
				if match(l) {
					got++
				}
			}
			ok = ok && got >= n
		}
		if ok {
			return nil
		}
		if err := sleepCtx(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
	return fmt.Errorf("relays did not log %s within %s", what, timeout)
}

func contains(sub string) func(string) bool {
	return func(l string) bool { return strings.Contains(l, sub) }
}

// listed matches an "endpoints updated" line that lists name under key
// (added, removed or changed).
func listed(key, name string) func(string) bool {
	return func(l string) bool {
		_, rest, ok := strings.Cut(l, `"`+key+`":[`)
		list, _, _ := strings.Cut(rest, "]")
		return ok && strings.Contains(list, `"`+name+`"`)
	}
}

// cliExpect runs a herald command and records a failed check unless its
// output contains want.
func (e *env) cliExpect(ctx context.Context, want string, args ...string) {
	out, err := e.cli(ctx, args...)
	if err != nil {
		e.fail("%v", err)
		return
	}
	if !strings.Contains(out, want) {
		e.fail("herald %s: said %q, want %q", showArgs(args), strings.TrimSpace(out), want)
	}
}

// runOperator: an operator changes endpoints while their messages wait:
// disables one and re-keys it (new secret), makes one ordered then
// unordered while its deliveries are parked in the retry lane, removes one
// and adds it back, reloads a broken configuration file with SIGHUP, and
// purges and replays dead messages with each filter. Nothing may be lost;
// dead messages are accepted only with the reason each step expects.
func runOperator(ctx context.Context, e *env) error {
	e.noStall = true
	recv := map[string]*receiver{}
	for _, name := range []string{"base", "op-a", "op-b", "op-c", "op-d", "ghost"} {
		r, err := e.receiver(name)
		if err != nil {
			return err
		}
		recv[name] = r
	}
	if err := e.setup(ctx, []endpointConf{{name: "base", url: recv["base"].url(), topics: []string{"base.*", "op.*"}}}); err != nil {
		return err
	}
	if err := e.startRelays(2); err != nil {
		return err
	}
	if err := e.waitLog(ctx, 1, 30*time.Second, "relay started", contains(`"relay started"`)); err != nil {
		return err
	}
	// change runs `herald endpoints CMD NAME ARGS...` and waits until
	// every relay has applied it (its n-th change).
	changes := map[string]int{}
	change := func(cmd, name string, args ...string) error {
		if _, err := e.cli(ctx, append([]string{"endpoints", cmd, name}, args...)...); err != nil {
			return err
		}
		changes[name]++
		return e.waitLog(ctx, changes[name], 20*time.Second, name+" changed", listed("changed", name))
	}
	adds := map[string]int{}
	add := func(name string, topics ...string) error {
		args := []string{"endpoints", "add", name, "--url", recv[name].url(), "--secret", chaosSecret}
		for _, t := range topics {
			args = append(args, "--topic", t)
		}
		if _, err := e.cli(ctx, args...); err != nil {
			return err
		}
		// Messages are routed when claimed: insert only once every relay
		// has the endpoint.
		adds[name]++
		return e.waitLog(ctx, adds[name], 20*time.Second, name+" added", listed("added", name))
	}
	for _, name := range []string{"op-a", "op-b", "op-c"} {
		if err := add(name, "op.*"); err != nil {
			return err
		}
	}
	if err := add("op-d", "rej.*"); err != nil {
		return err
	}
	n := pick(e, 300, 3000)
	all := to("base", "op-a", "op-b", "op-c")

	// op-a disabled, op-b failing and made ordered, while batch 1 waits.
	if err := change("disable", "op-a", "--reason", "chaos: paused by an operator"); err != nil {
		return err
	}
	recv["op-b"].downStatus.Store(503)
	if err := change("update", "op-b", "--ordered"); err != nil {
		return err
	}
	if err := e.produce(ctx, numbered("b1", "op.one", n, 10), 0, all); err != nil {
		return err
	}
	if err := sleepCtx(ctx, 2*time.Second); err != nil {
		return err
	}
	// Re-keyed while disabled, then enabled.
	if err := change("update", "op-a", "--secret", chaosSecret2); err != nil {
		return err
	}
	if err := change("enable", "op-a"); err != nil {
		return err
	}

	// A broken file on SIGHUP is rejected; the running configuration stays.
	good, err := os.ReadFile(e.cfg)
	if err != nil {
		return err
	}
	if err := os.WriteFile(e.cfg, append(good, "  - name: [broken\n"...), 0o600); err != nil {
		return err
	}
	for _, p := range e.live() {
		_ = p.signal(syscall.SIGHUP)
	}
	if err := e.waitLog(ctx, 1, 20*time.Second, "reload rejected", contains("reload rejected")); err != nil {
		e.fail("broken file on SIGHUP: %v", err)
	}
	if err := os.WriteFile(e.cfg, good, 0o600); err != nil {
		return err
	}

	// op-b unordered again while its deliveries wait, then it recovers.
	if err := change("update", "op-b", "--ordered=false"); err != nil {
		return err
	}
	if err := sleepCtx(ctx, time.Second); err != nil {
		return err
	}
	recv["op-b"].downStatus.Store(0)

	// op-c removed while batch 2 waits for it, then added back.
	recv["op-c"].downStatus.Store(503)
	if err := e.produce(ctx, numbered("b2", "op.two", n, 10), 0, all); err != nil {
		return err
	}
	if err := sleepCtx(ctx, time.Second); err != nil {
		return err
	}
	if _, err := e.cli(ctx, "endpoints", "remove", "op-c"); err != nil {
		return err
	}
	if err := sleepCtx(ctx, 2*time.Second); err != nil {
		return err
	}
	var held int
	if err := e.pool.QueryRow(ctx, `SELECT count(*) FROM outbox.deliveries WHERE endpoint = 'op-c'`).Scan(&held); err == nil {
		e.note("op-c removed: %d of its deliveries held in the retry lane", held)
	}
	recv["op-c"].downStatus.Store(0)
	if err := add("op-c", "op.*"); err != nil {
		return err
	}

	// Dead messages: rejected by op-d (400), naming an endpoint that does
	// not exist, or on a topic nobody subscribes to.
	recv["op-d"].setReject("rej-")
	k := pick(e, 10, 50)
	if err := e.produce(ctx, numbered("rej", "rej.t", k, 0), 0, func(msg) ([]string, string) { return []string{"op-d"}, "rejected" }); err != nil {
		return err
	}
	ghosts := numbered("ghost", "op.ghost", k, 0)
	for i := range ghosts {
		ghosts[i].endpoint = "ghost"
	}
	if err := e.produce(ctx, ghosts, 0, func(msg) ([]string, string) { return []string{"ghost"}, "unroutable" }); err != nil {
		return err
	}
	if err := e.produce(ctx, numbered("nobody", "nobody.t", k, 0), 0, func(msg) ([]string, string) { return []string{""}, "unroutable" }); err != nil {
		return err
	}
	deadline := time.Now().Add(30 * time.Second)
	var dead int
	for dead < 3*k && time.Now().Before(deadline) {
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return err
		}
		_ = e.pool.QueryRow(ctx, `SELECT count(*) FROM outbox.dead`).Scan(&dead)
	}
	if dead != 3*k {
		e.fail("outbox.dead holds %d messages, want %d", dead, 3*k)
	}

	// Replay with each filter, then purge with each filter. A message that
	// named a missing endpoint goes back to that endpoint only.
	recv["op-d"].setReject("")
	e.cliExpect(ctx, fmt.Sprintf("replayed %d ", k), "dead", "replay", "--endpoint", "op-d")
	if err := add("ghost"); err != nil {
		return err
	}
	e.cliExpect(ctx, "replayed 1 ", "dead", "replay", "--id", "ghost-0")
	e.cliExpect(ctx, "replayed 2 ", "dead", "replay", "--reason", "unroutable", "--limit", "2")
	if _, err := e.cli(ctx, "dead", "replay", "--reason", "unroutable"); err != nil {
		e.fail("%v", err)
	}
	// The ghost messages go to ghost only; nobody's die again.
	e.waitDrained(ctx, drainTime(e)+time.Minute)
	e.cliExpect(ctx, "purged 0 ", "dead", "purge", "--endpoint", "base", "--older-than", "1ms")
	e.cliExpect(ctx, "purged 0 ", "dead", "purge", "--reason", "exhausted", "--older-than", "1ms")
	e.mu.Lock()
	e.mayVanish["nobody-0"] = true
	e.mu.Unlock()
	e.cliExpect(ctx, "purged 1 ", "dead", "purge", "--id", "nobody-0", "--older-than", "1ms")
	return nil
}
