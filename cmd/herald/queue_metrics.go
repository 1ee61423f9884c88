package main

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// queueCollector reports the outbox's depth on every scrape.
type queueCollector struct {
	pool                      *pgxpool.Pool
	pending, retrying, dead   *prometheus.Desc
	oldestPending, scrapeFail *prometheus.Desc
}

func newQueueCollector(pool *pgxpool.Pool) *queueCollector {
	return &queueCollector{
		pool:          pool,
		pending:       prometheus.NewDesc("herald_pending_messages", "Messages waiting in the hot lane (new or in flight).", nil, nil),
		retrying:      prometheus.NewDesc("herald_retrying_deliveries", "Message-endpoint pairs waiting for a retry.", nil, nil),
		dead:          prometheus.NewDesc("herald_dead_messages", "Rows in outbox.dead.", nil, nil),
		oldestPending: prometheus.NewDesc("herald_oldest_pending_seconds", "Age of the oldest message in the hot lane.", nil, nil),
		scrapeFail:    prometheus.NewDesc("herald_queue_scrape_error", "1 when the queue depth could not be read.", nil, nil),
	}
}

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.pending
	ch <- c.retrying
	ch <- c.dead
	ch <- c.oldestPending
	ch <- c.scrapeFail
}

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var pending, retrying, dead int64
	var oldest float64
	// The oldest message is found through the primary key, not a scan.
	err := c.pool.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM outbox.messages),
		(SELECT count(*) FROM outbox.deliveries),
		(SELECT count(*) FROM outbox.dead),
		coalesce(extract(epoch FROM now() - (SELECT created_at FROM outbox.messages ORDER BY seq LIMIT 1)), 0)::float8`).
		Scan(&pending, &retrying, &dead, &oldest)
	failed := 0.0
	if err != nil {
		failed = 1
	} else {
		ch <- prometheus.MustNewConstMetric(c.pending, prometheus.GaugeValue, float64(pending))
		ch <- prometheus.MustNewConstMetric(c.retrying, prometheus.GaugeValue, float64(retrying))
		ch <- prometheus.MustNewConstMetric(c.dead, prometheus.GaugeValue, float64(dead))
		ch <- prometheus.MustNewConstMetric(c.oldestPending, prometheus.GaugeValue, oldest)
	}
	ch <- prometheus.MustNewConstMetric(c.scrapeFail, prometheus.GaugeValue, failed)
}
