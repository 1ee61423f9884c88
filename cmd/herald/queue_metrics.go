package main

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/herald-relay/herald/cmd/herald/internal/ops"
)

// queueStatusTimeout bounds one read of the queue's depth.
const queueStatusTimeout = 30 * time.Second

// queueCollector reports the outbox's depth (ops.GetQueueStatus) as of its
// last refresh. Counting the lanes is a full scan of each, so it runs once
// per metrics.queue_interval, whatever the number of scrapers, and a scrape
// only reads the figures.
type queueCollector struct {
	db                        ops.DB
	pending, retrying, dead   *prometheus.Desc
	oldestPending, scrapeFail *prometheus.Desc
	age                       *prometheus.Desc

	mu     sync.Mutex
	status ops.QueueStatus
	at     time.Time // when status was read; zero before the first success
	failed bool      // the latest refresh failed

	refreshed func() // called after each refresh; set by tests
}

func newQueueCollector(db ops.DB) *queueCollector {
	return &queueCollector{
		db:            db,
		pending:       prometheus.NewDesc("herald_pending_messages", "Messages waiting in the hot lane (new or in flight).", nil, nil),
		retrying:      prometheus.NewDesc("herald_retrying_deliveries", "Message-endpoint pairs waiting for a retry.", nil, nil),
		dead:          prometheus.NewDesc("herald_dead_messages", "Rows in outbox.dead.", nil, nil),
		oldestPending: prometheus.NewDesc("herald_oldest_pending_seconds", "Age of the oldest message in the hot lane.", nil, nil),
		scrapeFail:    prometheus.NewDesc("herald_queue_scrape_error", "1 when the latest read of the queue depth failed.", nil, nil),
		age: prometheus.NewDesc("herald_queue_status_age_seconds",
			"Age of the queue figures (read every metrics.queue_interval).", nil, nil),
	}
}

// run refreshes the figures now and then on every tick until ctx ends.
func (c *queueCollector) run(ctx context.Context, tick <-chan time.Time) {
	for {
		c.refresh(ctx)
		select {
		case <-tick:
		case <-ctx.Done():
			return
		}
	}
}

func (c *queueCollector) refresh(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, queueStatusTimeout)
	defer cancel()
	s, err := ops.GetQueueStatus(ctx, c.db)
	now := time.Now()
	c.mu.Lock()
	c.failed = err != nil
	if err == nil {
		c.status, c.at = s, now
	}
	c.mu.Unlock()
	if c.refreshed != nil {
		c.refreshed()
	}
}

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.pending
	ch <- c.retrying
	ch <- c.dead
	ch <- c.oldestPending
	ch <- c.scrapeFail
	ch <- c.age
}

// Collect reports the last figures read, even when the latest read failed
// (herald_queue_scrape_error and the growing age say so), so that alerts on
// them do not fall silent while the database is unwell.
func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	s, at, failed := c.status, c.at, c.failed
	c.mu.Unlock()
	if !at.IsZero() {
		ch <- prometheus.MustNewConstMetric(c.pending, prometheus.GaugeValue, float64(s.Pending))
		ch <- prometheus.MustNewConstMetric(c.retrying, prometheus.GaugeValue, float64(s.Retrying))
		ch <- prometheus.MustNewConstMetric(c.dead, prometheus.GaugeValue, float64(s.Dead))
		ch <- prometheus.MustNewConstMetric(c.oldestPending, prometheus.GaugeValue, s.OldestPendingSeconds)
		ch <- prometheus.MustNewConstMetric(c.age, prometheus.GaugeValue, time.Since(at).Seconds())
	}
	v := 0.0
	if failed {
		v = 1
	}
	ch <- prometheus.MustNewConstMetric(c.scrapeFail, prometheus.GaugeValue, v)
}
