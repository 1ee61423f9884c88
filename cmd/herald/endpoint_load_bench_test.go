package main

import (
	"context"
	"runtime"
	"testing"

	"github.com/herald-relay/herald/cmd/herald/internal/config"
	"github.com/herald-relay/herald/internal/heraldtest"
	"github.com/herald-relay/herald/relay"
)

// BenchmarkReloadEndpoints10000 is what one endpoint change costs a relay
// serving 10,000 endpoints, and what a full reload costs; it also reports
// the heap an idle endpoint takes.
func BenchmarkReloadEndpoints10000(b *testing.B) {
	ctx := context.Background()
	pool := heraldtest.Pool(b)
	if _, err := pool.Exec(ctx, `INSERT INTO outbox.endpoints (name, url, secrets, topics)
		SELECT 'customer-' || g, 'http://127.0.0.1:9/in/' || g, ARRAY['whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'], ARRAY['customer.' || g || '.*']
		FROM generate_series(1, 10000) g`); err != nil {
		b.Fatal(err)
	}
	cfg := config.Default()
	cfg.Delivery.AllowPrivateNetworks = true
	set := newEndpointSet(cfg)
	b.Cleanup(set.closeAll)
	r, err := relay.New(pool, relay.Config{})
	if err != nil {
		b.Fatal(err)
	}
	// Memory an idle endpoint costs: its row, its sender (client settings,
	// an empty connection pool) and the relay's state for it.
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	eps, mark, err := set.load(ctx, pool)
	if err != nil || len(eps) != 10000 {
		b.Fatalf("%d endpoints, %v", len(eps), err)
	}
	if err := r.SetEndpoints(eps); err != nil {
		b.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	perEndpoint := (float64(after.HeapAlloc) - float64(before.HeapAlloc)) / 10000
	// full: read the whole table, rebuild what changed (nothing), hand the
	// set to the relay, as a reload does. change: one endpoint changed,
	// read and applied incrementally, as the watcher does.
	b.Run("full", func(b *testing.B) {
		b.ReportMetric(perEndpoint, "heap-B/endpoint")
		for i := 0; i < b.N; i++ {
			eps, _, err := set.load(ctx, pool)
			if err != nil {
				b.Fatal(err)
			}
			if err := r.SetEndpoints(eps); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("change", func(b *testing.B) {
		b.ReportMetric(perEndpoint, "heap-B/endpoint")
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			if _, err := pool.Exec(ctx, `UPDATE outbox.endpoints SET rate_limit = $1 WHERE name = 'customer-42'`, i%2); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			eps, next, changed, full, err := set.loadSince(ctx, pool, mark)
			if err != nil || !changed || full {
				b.Fatalf("changed %v, full %v: %v", changed, full, err)
			}
			if err := r.SetEndpoints(eps); err != nil {
				b.Fatal(err)
			}
			mark = next
		}
	})
}
