package main

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// HistoryResult is the history phase: what the delivery history costs, and
// that its tables stay flat.
type HistoryResult struct {
	// Drains are the interleaved drains, Variant telling them apart.
	Drains []HistoryDrain `json:"drains"`
	// Medians are the deliveries/s of each variant (median over rounds);
	// AllOnOff is median(all) / median(off), the goal being >= 0.8.
	Medians  map[string]float64 `json:"medians"`
	AllOnOff float64            `json:"all_on_off"`
	Flat     *FlatTables        `json:"flat_tables,omitempty"`
}

// HistoryDrain is one drain with one history setting.
type HistoryDrain struct {
	Variant string `json:"variant"`
	DrainResult
}

// historyVariants are the history settings the phase compares.
var historyVariants = []struct {
	name     string
	attempts string
	messages bool
}{
	{"off", "off", false},
	{"all", "all", false},
	{"failures", "failures", false},
	{"all+messages", "all", true},
}

// FlatTables is a sustained load with history on, then retention: the
// sizes of the relay's tables at each stage.
type FlatTables struct {
	Messages int          `json:"messages"`
	Seconds  float64      `json:"load_seconds"`
	Rate     float64      `json:"deliveries_per_s"`
	Dropped  int          `json:"partitions_dropped"`
	Sizes    []TableSizes `json:"sizes"`
}

// TableSizes is pg_total_relation_size of each table (all partitions for
// the partitioned ones), in bytes.
type TableSizes struct {
	Stage      string `json:"stage"`
	Messages   int64  `json:"outbox_messages"`
	Deliveries int64  `json:"outbox_deliveries"`
	Attempts   int64  `json:"outbox_attempts"`
	MessageLog int64  `json:"outbox_message_log"`
}

// tableSizesSQL sums the partitions of the history tables.
const tableSizesSQL = `SELECT pg_total_relation_size('outbox.messages'), pg_total_relation_size('outbox.deliveries'),
    (SELECT coalesce(sum(pg_total_relation_size(inhrelid)), 0)::bigint FROM pg_inherits WHERE inhparent = 'outbox.attempts'::regclass),
    (SELECT coalesce(sum(pg_total_relation_size(inhrelid)), 0)::bigint FROM pg_inherits WHERE inhparent = 'outbox.message_log'::regclass)`

func (b *bench) tableSizes(ctx context.Context, stage string) (TableSizes, error) {
	s := TableSizes{Stage: stage}
	err := b.pool.QueryRow(ctx, tableSizesSQL).Scan(&s.Messages, &s.Deliveries, &s.Attempts, &s.MessageLog)
	mib := func(v int64) float64 { return float64(v) / (1 << 20) }
	b.say("   %-16s outbox.messages %.1f MiB, deliveries %.1f MiB, attempts %.1f MiB, message_log %.1f MiB",
		stage, mib(s.Messages), mib(s.Deliveries), mib(s.Attempts), mib(s.MessageLog))
	return s, err
}

func (b *bench) truncateHistory(ctx context.Context) error {
	_, err := b.pool.Exec(ctx, "TRUNCATE outbox.attempts, outbox.message_log")
	return err
}

// history drains N with each history setting, interleaved in rounds, then
// runs the flat-tables load.
func (b *bench) history(ctx context.Context) error {
	res := &HistoryResult{Medians: map[string]float64{}}
	b.res.History = res
	rates := map[string][]float64{}
	for round := 1; round <= b.opt.rounds; round++ {
		for _, v := range historyVariants {
			if err := b.truncateHistory(ctx); err != nil {
				return err
			}
			label := "history " + v.name
			if b.opt.rounds > 1 {
				label += fmt.Sprintf(" (round %d)", round)
			}
			r, err := b.drain(ctx, drainSpec{label: label, n: b.opt.n, slice: b.opt.n, relays: 1, recv: b.recv,
				relayOpts: relayOpts{historyAttempts: v.attempts, historyMessages: v.messages}})
			if err != nil {
				return err
			}
			r.Round = round
			b.logDrain(r)
			res.Drains = append(res.Drains, HistoryDrain{Variant: v.name, DrainResult: r})
			rates[v.name] = append(rates[v.name], r.Rate)
		}
	}
	for name, rs := range rates {
		res.Medians[name] = round(median(rs), 1)
	}
	if off := res.Medians["off"]; off > 0 {
		res.AllOnOff = round(res.Medians["all"]/off, 3)
	}
	b.say("   history deliveries/s (medians of %d): off %.0f, all %.0f, failures %.0f, all+messages %.0f; all / off = %.3f (goal >= 0.8)",
		b.opt.rounds, res.Medians["off"], res.Medians["all"], res.Medians["failures"], res.Medians["all+messages"], res.AllOnOff)
	if b.opt.historyN > 0 {
		flat, err := b.flatTables(ctx, b.opt.historyN)
		res.Flat = flat
		if err != nil {
			return err
		}
	}
	return b.truncateHistory(ctx)
}

// flatTables delivers n messages, 100,000 at a time, through one relay
// with every attempt and message logged, then runs retention as it runs
// once their day is past retention (the relay's MaintainHistory, with its
// clock a day ahead), and reports the tables' sizes before, after the load
// and after retention.
func (b *bench) flatTables(ctx context.Context, n int) (*FlatTables, error) {
	f := &FlatTables{Messages: n}
	if err := b.truncate(ctx); err != nil {
		return f, err
	}
	if err := b.truncateHistory(ctx); err != nil {
		return f, err
	}
	if err := b.recv.reset(); err != nil {
		return f, err
	}
	sizes, err := b.tableSizes(ctx, "start")
	if err != nil {
		return f, err
	}
	f.Sizes = append(f.Sizes, sizes)
	p, err := b.startRelay(0, b.recv.hookURL(), relayOpts{historyAttempts: "all", historyMessages: true})
	if err != nil {
		return f, err
	}
	defer p.stop() //nolint:errcheck // stopped below; a second stop is a no-op
	const chunk = 100000
	t0 := time.Now()
	deadline := t0.Add(time.Minute + time.Duration(n)*time.Millisecond) // >= 1k/s, preloads included
	for done := 0; done < n; {
		k := min(chunk, n-done)
		if _, err := b.preload(ctx, k, 0); err != nil {
			return f, fmt.Errorf("preload: %w", err)
		}
		done += k
		for {
			if err := ctx.Err(); err != nil {
				return f, err
			}
			if time.Now().After(deadline) {
				return f, fmt.Errorf("timeout after %s with %d messages sent", time.Since(t0).Round(time.Second), done)
			}
			if err := p.alive(); err != nil {
				return f, err
			}
			st, err := b.recv.stats()
			if err != nil {
				return f, err
			}
			var empty bool
			if err := b.pool.QueryRow(ctx, "SELECT NOT EXISTS (SELECT 1 FROM outbox.messages)").Scan(&empty); err != nil {
				return f, err
			}
			if empty && st.Unique >= int64(done) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	f.Seconds = round(time.Since(t0).Seconds(), 1)
	f.Rate = round(float64(n)/time.Since(t0).Seconds(), 1)
	if err := p.stop(); err != nil {
		return f, err
	}
	var logged int64
	if err := b.pool.QueryRow(ctx, "SELECT (SELECT count(*) FROM outbox.attempts) + (SELECT count(*) FROM outbox.message_log)").Scan(&logged); err != nil {
		return f, err
	}
	if logged < int64(2*n) {
		return f, fmt.Errorf("%d history rows for %d messages, want %d", logged, n, 2*n)
	}
	b.say("   %d messages delivered with history.attempts all and history.messages true in %.1fs (%.0f/s, preloads included)", n, f.Seconds, f.Rate)
	if sizes, err = b.tableSizes(ctx, "after the load"); err != nil {
		return f, err
	}
	f.Sizes = append(f.Sizes, sizes)
	// Retention as the relay runs it once today is past history.retention:
	// the function the relay's maintenance calls, with keep_from a day
	// ahead, then today's partitions made again as the next run would.
	if err := b.pool.QueryRow(ctx, `SELECT dropped FROM outbox.history_partitions((now() AT TIME ZONE 'UTC')::date, 1, now() + interval '1 day')`).Scan(&f.Dropped); err != nil {
		return f, err
	}
	if _, err := b.pool.Exec(ctx, `SELECT outbox.history_partitions((now() AT TIME ZONE 'UTC')::date, 1, '-infinity')`); err != nil {
		return f, err
	}
	if f.Dropped == 0 {
		return f, errors.New("retention dropped no partition")
	}
	b.say("   retention dropped %d partitions", f.Dropped)
	if sizes, err = b.tableSizes(ctx, "after retention"); err != nil {
		return f, err
	}
	f.Sizes = append(f.Sizes, sizes)
	return f, nil
}
