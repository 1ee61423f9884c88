package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/herald-relay/herald/outbox"
)

// EndpointsResult is the endpoints phase: a service sending to its many
// customers, each endpoint on its own topic, against one endpoint with the
// same messages, and how soon a relay serving them all applies a change.
type EndpointsResult struct {
	Endpoints int           `json:"endpoints"`
	One       []DrainResult `json:"one_endpoint"`
	Many      []DrainResult `json:"many_endpoints"`
	// Ratios are Many[i].Rate / One[i].Rate, round by round.
	Ratios []float64 `json:"ratios"`
	// ApplyMs are the times from an INSERT into outbox.endpoints
	// committing to the new endpoint's first delivery, with Endpoints
	// served (binary mode only: the in-process relay does not read the
	// table).
	ApplyMs []float64 `json:"insert_to_first_delivery_ms,omitempty"`
}

// endpointProbes is how many endpoint INSERTs the phase times.
const endpointProbes = 5

// manyEndpoints drains endpointsN x 10 messages spread over endpointsN
// endpoints, and the same number to one endpoint, interleaved round by
// round; then it times endpoint INSERTs to their first delivery.
func (b *bench) manyEndpoints(ctx context.Context) error {
	n := b.opt.endpointsN * 10
	res := &EndpointsResult{Endpoints: b.opt.endpointsN}
	b.res.Endpoints = res
	for rnd := 1; rnd <= b.opt.rounds; rnd++ {
		one, err := b.drain(ctx, drainSpec{label: fmt.Sprintf("endpoints: 1 endpoint (round %d)", rnd), n: n, slice: n, relays: 1, recv: b.recv, writes: true, memory: true})
		if err != nil {
			return err
		}
		one.Round = rnd
		b.logDrain(one)
		if err := b.insertEndpoints(ctx); err != nil {
			return err
		}
		many, err := b.drain(ctx, drainSpec{label: fmt.Sprintf("endpoints: %d endpoints (round %d)", b.opt.endpointsN, rnd), n: n, slice: n,
			relays: 1, recv: b.recv, writes: true, memory: true, relayOpts: relayOpts{slowEndpoints: b.opt.endpointsN, inTable: b.mode == "binary"}})
		if err != nil {
			return err
		}
		if err := b.deleteEndpoints(ctx); err != nil {
			return err
		}
		many.Round = rnd
		b.logDrain(many)
		for _, r := range []DrainResult{one, many} {
			b.say("   %s: first delivery after %.2fs, steady %.0f deliveries/s, last acknowledgement %.2fs after the last delivery, %d connections, %.0f claims and %.0f outcome flushes (%.2fs of flushing)",
				r.Label, r.FirstSeconds, r.SteadyRate, r.Seconds-r.RecvSeconds, r.RecvConns, r.Claims, r.Flushes, r.FlushSeconds)
			if m := r.Memory; m != nil {
				b.say("   %s: halfway, %.0f goroutines, stacks %.1f MiB, heap in use %.1f MiB, next GC at %.1f MiB", r.Label, m.Goroutines, m.StackMiB, m.HeapMiB, m.NextGCMiB)
			}
			if r.Writes != nil {
				b.say("   %s: row writes per delivery beyond the producer's %.3f, history rows %.3f", r.Label, r.Writes.RelayWritesPer, r.Writes.HistoryInsPerMsg)
			}
		}
		res.One, res.Many = append(res.One, one), append(res.Many, many)
		ratio := round(many.Rate/one.Rate, 3)
		res.Ratios = append(res.Ratios, ratio)
		b.say("   %d endpoints at %.0f%% of one endpoint's rate (%.0f vs %.0f deliveries/s)", b.opt.endpointsN, 100*ratio, many.Rate, one.Rate)
	}
	if err := b.truncate(ctx); err != nil {
		return err
	}
	if b.mode != "binary" {
		b.note("endpoints: the time to apply an endpoint change is measured in binary mode only")
		return nil
	}
	var err error
	res.ApplyMs, err = b.endpointApply(ctx)
	if err == nil {
		b.say("   INSERT of an endpoint to its first delivery, %d endpoints served: %v ms", b.opt.endpointsN, res.ApplyMs)
	}
	return errors.Join(err, b.truncate(ctx))
}

// endpointApply starts a relay serving endpointsN endpoints, then inserts
// endpoints one at a time and times each from its commit to the first
// request the relay sends it. Until the relay has applied the change, the
// messages on the new topic have no subscriber and are dropped; one is sent
// every few milliseconds, so the first delivery follows the change closely.
func (b *bench) endpointApply(ctx context.Context) ([]float64, error) {
	got := make(chan time.Time, 1)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		select {
		case got <- time.Now():
		default:
		}
	})}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	if err := b.insertEndpoints(ctx); err != nil {
		return nil, err
	}
	defer b.deleteEndpoints(context.WithoutCancel(ctx))
	p, err := b.startRelay(0, b.recv.hookURL(), relayOpts{slowEndpoints: b.opt.endpointsN, inTable: true})
	if err != nil {
		return nil, err
	}
	defer p.stop()
	if err := p.waitReady(60 * time.Second); err != nil {
		return nil, err
	}
	var out []float64
	w := outbox.Writer{}
	for i := range endpointProbes {
		name, topic := fmt.Sprintf("probe-%d", i), fmt.Sprintf("probe.%d", i)
		if _, err := b.pool.Exec(ctx, `INSERT INTO outbox.endpoints (name, url, secrets, topics) VALUES ($1, $2, $3, $4)`,
			name, "http://"+ln.Addr().String()+"/"+name, []string{benchSecret}, []string{topic}); err != nil {
			return out, err
		}
		t0 := time.Now()
		tick := time.NewTicker(5 * time.Millisecond)
		var at time.Time
		for at.IsZero() {
			if time.Since(t0) > 10*time.Second {
				tick.Stop()
				return out, fmt.Errorf("endpoint %s: no delivery within 10s of its INSERT", name)
			}
			select {
			case <-ctx.Done():
				tick.Stop()
				return out, ctx.Err()
			case at = <-got:
			case <-tick.C:
				msg := outbox.Message{Topic: topic, Payload: []byte(`{}`)}
				if err := pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error { return w.Enqueue(ctx, tx, msg) }); err != nil {
					tick.Stop()
					return out, err
				}
			}
		}
		tick.Stop()
		out = append(out, round(float64(at.Sub(t0).Microseconds())/1000, 1))
		// Drain what the probe's later messages still send.
		for drained := false; !drained; {
			select {
			case <-got:
			case <-time.After(200 * time.Millisecond):
				drained = true
			}
		}
	}
	slices.Sort(out)
	return out, nil
}

// insertEndpoints adds the phase's endpoints to outbox.endpoints, as a
// service with thousands of customers keeps them (binary mode: the
// in-process relay does not read the table). Each has its own URL, so the
// relay keeps a connection pool per endpoint, as it would for customers on
// their own hosts.
func (b *bench) insertEndpoints(ctx context.Context) error {
	if b.mode != "binary" {
		return nil
	}
	names, urls, topics := make([]string, b.opt.endpointsN), make([]string, b.opt.endpointsN), make([]string, b.opt.endpointsN)
	for i := range names {
		names[i], urls[i], topics[i] = fmt.Sprintf("slow-%03d", i), slowHookURL(b.recv.hookURL(), 0, i), slowTopic(i)
	}
	start := time.Now()
	_, err := b.pool.Exec(ctx, `INSERT INTO outbox.endpoints (name, url, secrets, topics)
		SELECT n, u, ARRAY[$4], ARRAY[t] FROM unnest($1::text[], $2::text[], $3::text[]) AS e(n, u, t)`, names, urls, topics, benchSecret)
	if err == nil {
		b.say("   inserted %d endpoints into outbox.endpoints in %s", len(names), time.Since(start).Round(time.Millisecond))
	}
	return err
}

// deleteEndpoints removes what insertEndpoints and endpointApply added.
func (b *bench) deleteEndpoints(ctx context.Context) error {
	_, err := b.pool.Exec(ctx, `DELETE FROM outbox.endpoints WHERE source = 'sql' AND (name LIKE 'slow-%' OR name LIKE 'probe-%')`)
	return err
}
