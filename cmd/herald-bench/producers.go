package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/herald-relay/herald/outbox"
)

// ProducerRun is one producer-throughput measurement.
type ProducerRun struct {
	Variant   string  `json:"variant"`
	Method    string  `json:"method"` // enqueue or sql
	Batch     int     `json:"batch"`
	Producers int     `json:"producers"`
	Notify    bool    `json:"notify"`
	Rows      int64   `json:"rows"`
	Seconds   float64 `json:"seconds"`
	Rate      float64 `json:"rows_per_s"`
	Round     int     `json:"round"`
}

// producers measures outbox.Enqueue batched from one producer and plain SQL
// single-row inserts from several, each with and without NOTIFY. A
// connection LISTENs on the channel throughout, as a relay would.
func (b *bench) producers(ctx context.Context) error {
	lctx, stopListen := context.WithCancel(ctx)
	defer stopListen()
	lconn, err := pgx.Connect(ctx, b.dsn)
	if err != nil {
		return err
	}
	listenDone := make(chan struct{})
	defer func() {
		stopListen()
		<-listenDone
		lconn.Close(context.Background())
	}()
	if _, err := lconn.Exec(ctx, "LISTEN "+outbox.NotifyChannel); err != nil {
		return err
	}
	var notifications atomic.Int64
	go func() {
		defer close(listenDone)
		for {
			if _, err := lconn.WaitForNotification(lctx); err != nil {
				return
			}
			notifications.Add(1)
		}
	}()
	type variant struct {
		method string
		batch  int
		notify bool
	}
	variants := []variant{
		{"enqueue", 1000, true}, {"enqueue", 1000, false}, {"enqueue", 100, true}, {"enqueue", 100, false},
		{"sql", 1, false}, {"sql", 1, true},
	}
	for round := range b.opt.rounds {
		for _, v := range variants {
			if err := b.truncate(ctx); err != nil {
				return err
			}
			if err := b.checkpoint(ctx); err != nil {
				return err
			}
			var r ProducerRun
			var err error
			if v.method == "enqueue" {
				r, err = b.enqueueRun(ctx, v.batch, v.notify)
			} else {
				r, err = b.sqlRun(ctx, v.notify)
			}
			if err != nil {
				return err
			}
			r.Round = round + 1
			b.say("   %s: %.0f rows/s (%d rows in %.2fs)", r.Variant, r.Rate, r.Rows, r.Seconds)
			b.res.Producers = append(b.res.Producers, r)
		}
	}
	stopListen()
	<-listenDone
	b.say("   notifications received by the listener: %d", notifications.Load())
	return b.truncate(ctx)
}

// enqueueRun commits enqN messages from one producer, batch per transaction.
func (b *bench) enqueueRun(ctx context.Context, batch int, notify bool) (ProducerRun, error) {
	r := ProducerRun{Method: "enqueue", Batch: batch, Producers: 1, Notify: notify,
		Variant: fmt.Sprintf("outbox.Enqueue batch=%d, 1 producer, %s", batch, notifyLabel(notify))}
	run := rand.Uint32()
	n := b.opt.enqN
	// The application has its messages already; building them is not timed.
	var batches [][]outbox.Message
	for i := 0; i < n; i += batch {
		batches = append(batches, makeMessages(run, i, min(batch, n-i), ""))
	}
	w := outbox.Writer{SkipNotify: !notify}
	start := time.Now()
	for _, msgs := range batches {
		if err := pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error { return w.Enqueue(ctx, tx, msgs...) }); err != nil {
			return r, err
		}
	}
	el := time.Since(start)
	r.Rows, r.Seconds, r.Rate = int64(n), round(el.Seconds(), 4), round(float64(n)/el.Seconds(), 1)
	return r, nil
}

func notifyLabel(notify bool) string {
	if notify {
		return "with NOTIFY"
	}
	return "no NOTIFY"
}

// sqlRun runs sqlProducers goroutines for sqlDur, each committing one
// plain INSERT per transaction (plus NOTIFY herald_outbox when notify).
func (b *bench) sqlRun(ctx context.Context, notify bool) (ProducerRun, error) {
	r := ProducerRun{Method: "sql", Batch: 1, Producers: b.opt.sqlProducers, Notify: notify,
		Variant: fmt.Sprintf("plain SQL INSERT, 1 row/tx, %d producers, %s", b.opt.sqlProducers, notifyLabel(notify))}
	run := rand.Uint32()
	payloads := make([][]byte, 1024)
	for i := range payloads {
		payloads[i] = makeEvent(run, i)
	}
	var rows atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, b.opt.sqlProducers)
	stopAt := time.Now().Add(b.opt.sqlDur)
	start := time.Now()
	for g := range b.opt.sqlProducers {
		wg.Go(func() {
			for i := g; time.Now().Before(stopAt) && ctx.Err() == nil; i += b.opt.sqlProducers {
				err := pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
					if _, err := tx.Exec(ctx, "INSERT INTO outbox.messages (topic, payload) VALUES ($1, $2)", "order.placed", string(payloads[i%len(payloads)])); err != nil {
						return err
					}
					if notify {
						_, err := tx.Exec(ctx, "NOTIFY "+outbox.NotifyChannel)
						return err
					}
					return nil
				})
				if err != nil {
					errs <- err
					return
				}
				rows.Add(1)
			}
		})
	}
	wg.Wait()
	el := time.Since(start)
	close(errs)
	if err := <-errs; err != nil {
		return r, err
	}
	r.Rows, r.Seconds, r.Rate = rows.Load(), round(el.Seconds(), 4), round(float64(rows.Load())/el.Seconds(), 1)
	return r, nil
}

// medianProducer is the median rate over rounds of one variant.
func (b *bench) medianProducer(method string, batch int, notify bool) (float64, int) {
	var v []float64
	for _, r := range b.res.Producers {
		if r.Method == method && r.Batch == batch && r.Notify == notify {
			v = append(v, r.Rate)
		}
	}
	return median(v), len(v)
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
