package relay

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the relay's Prometheus metrics.
type Metrics struct {
	attempts       *prometheus.CounterVec
	attemptSeconds *prometheus.HistogramVec
	delivered      *prometheus.CounterVec
	dead           *prometheus.CounterVec
	claimed        *prometheus.CounterVec
	claimSeconds   *prometheus.HistogramVec
	ackSeconds     prometheus.Histogram
	commitToAck    prometheus.Histogram
	inFlight       prometheus.Gauge
	fenced         prometheus.Counter
	unwritten      prometheus.Counter
	dbErrors       *prometheus.CounterVec
	paused         *prometheus.GaugeVec
	unusable       *prometheus.GaugeVec
	deferred       *prometheus.CounterVec
	historyErrors  *prometheus.CounterVec
	takenOver      *prometheus.CounterVec
	lapses         prometheus.Counter

	// series bounds the endpoints with series of their own (see
	// MetricsConfig.MaxEndpointSeries); own holds those that have one.
	series int
	ownMu  sync.Mutex
	own    map[string]bool
}

// MetricsConfig configures NewMetricsWith.
type MetricsConfig struct {
	// MaxEndpointSeries bounds how many endpoints get metric series of
	// their own: the first that many a relay serves, in the order it is
	// given them (and, as endpoints are removed, the next ones). The others
	// share the label endpoint="other", except in herald_endpoint_paused and
	// herald_endpoint_unusable, which name such an endpoint only while it is
	// paused or unusable. Every endpoint costs about 26 series (a histogram
	// and four counters), so 5,000 endpoints would make a scrape of 130,000
	// series. Negative means no bound. Defaults to MaxEndpointSeriesDefault.
	MaxEndpointSeries int
}

// MaxEndpointSeriesDefault is MetricsConfig.MaxEndpointSeries' default.
const MaxEndpointSeriesDefault = 1000

// OtherEndpoints is the endpoint label shared by the endpoints past
// MetricsConfig.MaxEndpointSeries.
const OtherEndpoints = "other"

// roundTripBuckets are the buckets of the database round-trip histograms:
// fine between 1 and 5 ms, where a healthy claim or ack lands, so that a p99
// can be read against a few-millisecond objective.
var roundTripBuckets = []float64{.00025, .0005, .001, .002, .003, .004, .005, .0075, .01, .025, .05, .1, .25, 1}

// NewMetrics creates the relay's metrics and registers them with reg,
// with MetricsConfig's defaults.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	return NewMetricsWith(reg, MetricsConfig{})
}

// NewMetricsWith creates the relay's metrics as cfg says and registers
// them with reg.
func NewMetricsWith(reg prometheus.Registerer, cfg MetricsConfig) *Metrics {
	if cfg.MaxEndpointSeries == 0 {
		cfg.MaxEndpointSeries = MaxEndpointSeriesDefault
	}
	m := &Metrics{series: cfg.MaxEndpointSeries, own: map[string]bool{},
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_delivery_attempts_total",
			Help: "Delivery attempts by endpoint and result (ok, retry, dead, released).",
		}, []string{"endpoint", "result"}),
		attemptSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "herald_delivery_attempt_seconds",
			Help:    "Duration of one HTTP delivery attempt.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"endpoint"}),
		delivered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_delivered_total",
			Help: "Messages acknowledged with a 2xx, by endpoint.",
		}, []string{"endpoint"}),
		dead: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_dead_total",
			Help: "Messages (or message-endpoint pairs) given up, by reason: exhausted, gone, rejected, unroutable, invalid.",
		}, []string{"reason"}),
		claimed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_claimed_total",
			Help: "Rows claimed, by lane (hot: new messages, retry: failed pairs).",
		}, []string{"lane"}),
		claimSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "herald_claim_seconds",
			Help:    "Duration of one claim round trip.",
			Buckets: roundTripBuckets,
		}, []string{"lane"}),
		ackSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "herald_ack_flush_seconds",
			Help:    "Duration of one batched write of delivery outcomes.",
			Buckets: roundTripBuckets,
		}),
		commitToAck: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "herald_commit_to_ack_seconds",
			Help:    "From a message's insert to its last endpoint's 2xx.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 16),
		}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "herald_in_flight",
			Help: "Claimed deliveries queued or in flight.",
		}),
		fenced: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_fenced_writes_total",
			Help: "Outcomes not written because another relay holds a newer lease on the row.",
		}),
		unwritten: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_outcomes_unwritten_total",
			Help: "Finished rows whose outcome could not be written (refused by PostgreSQL, or the relay stopped first); each is delivered again after its lease.",
		}),
		dbErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_db_errors_total",
			Help: "Database errors by operation (claim, ack, listen).",
		}, []string{"op"}),
		paused: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "herald_endpoint_paused",
			Help: "1 while an endpoint's circuit breaker is open in this relay.",
		}, []string{"endpoint"}),
		unusable: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "herald_endpoint_unusable",
			Help: "1 while an endpoint exists but cannot be used (its settings or TLS files do not load); its messages wait in the retry lane.",
		}, []string{"endpoint"}),
		deferred: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_deferred_total",
			Help: "Deliveries not attempted because their endpoint was paused, at max_in_flight or rate-limited; they wait in the retry lane.",
		}, []string{"endpoint"}),
		historyErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_history_write_errors_total",
			Help: "Flushes whose history (table: attempts, message_log) could not be written; their delivery outcomes were.",
		}, []string{"table"}),
		takenOver: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_rows_taken_over_total",
			Help: "Rows of relays declared dead (no heartbeat within heartbeat_timeout) taken over before their lease lapsed, by lane: hot (claimed by this relay), retry (made due by this relay's heartbeat).",
		}, []string{"lane"}),
		lapses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_relay_lapses_total",
			Help: "Times this relay could not prove it was alive in time (no heartbeat reached PostgreSQL) and cancelled its requests in flight.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.attempts, m.attemptSeconds, m.delivered, m.dead, m.claimed, m.claimSeconds,
			m.ackSeconds, m.commitToAck, m.inFlight, m.fenced, m.unwritten, m.dbErrors, m.paused, m.unusable, m.deferred,
			m.historyErrors, m.takenOver, m.lapses)
	}
	return m
}

// endpointLabel is the endpoint label of endpoint's series: its name while
// fewer than MaxEndpointSeries endpoints have series of their own (it then
// has one until forget), else OtherEndpoints.
func (m *Metrics) endpointLabel(endpoint string) string {
	if m.series < 0 {
		return endpoint
	}
	m.ownMu.Lock()
	defer m.ownMu.Unlock()
	if !m.own[endpoint] {
		if len(m.own) >= m.series {
			return OtherEndpoints
		}
		m.own[endpoint] = true
	}
	return endpoint
}

// setFlag sets the 0/1 gauge g of endpoint (paused, unusable). An endpoint
// without series of its own is exported only while on, so that the
// endpoints that need attention are always named, and only they.
func (m *Metrics) setFlag(g *prometheus.GaugeVec, endpoint string, on bool) {
	if on {
		g.WithLabelValues(endpoint).Set(1)
		return
	}
	if m.endpointLabel(endpoint) == endpoint {
		g.WithLabelValues(endpoint).Set(0)
	} else {
		g.DeleteLabelValues(endpoint)
	}
}

// forget deletes the series of an endpoint that is no longer configured,
// and frees its place among those with series of their own. Requests of it
// still in flight finish on children no longer exported.
func (m *Metrics) forget(endpoint string) {
	m.ownMu.Lock()
	delete(m.own, endpoint)
	m.ownMu.Unlock()
	byEndpoint := prometheus.Labels{"endpoint": endpoint}
	m.attempts.DeletePartialMatch(byEndpoint)
	m.attemptSeconds.DeletePartialMatch(byEndpoint)
	m.delivered.DeletePartialMatch(byEndpoint)
	m.paused.DeletePartialMatch(byEndpoint)
	m.unusable.DeletePartialMatch(byEndpoint)
	m.deferred.DeletePartialMatch(byEndpoint)
}
