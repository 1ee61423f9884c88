package main

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/herald-relay/herald/cmd/herald/internal/ops"
)

// queueCollector reports the outbox's depth (ops.GetQueueStatus) on every
// scrape.
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
	s, err := ops.GetQueueStatus(ctx, c.pool)
	failed := 0.0
	if err != nil {
		failed = 1
	} else {
		ch <- prometheus.MustNewConstMetric(c.pending, prometheus.GaugeValue, float64(s.Pending))
		ch <- prometheus.MustNewConstMetric(c.retrying, prometheus.GaugeValue, float64(s.Retrying))
		ch <- prometheus.MustNewConstMetric(c.dead, prometheus.GaugeValue, float64(s.Dead))
		ch <- prometheus.MustNewConstMetric(c.oldestPending, prometheus.GaugeValue, s.OldestPendingSeconds)
	}
	ch <- prometheus.MustNewConstMetric(c.scrapeFail, prometheus.GaugeValue, failed)
}
