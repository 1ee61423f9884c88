package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/herald-relay/herald/migrations"
)

// readyTimeout bounds the database round trips of one readiness check.
const readyTimeout = 2 * time.Second

// newRegistry returns herald run's metrics registry, with the Go runtime's
// and the process's metrics; each source adds its own (startSource).
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// newMetricsMux serves herald run's metrics and probes:
//
//   - /metrics: Prometheus metrics from reg.
//   - /healthz: liveness. 200 while the process serves HTTP, whatever the
//     database: a relay that cannot reach PostgreSQL retries with backoff
//     and recovers by itself, and restarting every replica during a
//     database outage would only add churn (and cut deliveries in flight).
//   - /readyz: readiness (see checkReady). 200 or 503, with a JSON body
//     naming each check and why it failed.
func newMetricsMux(reg prometheus.Gatherer, running []*runningSource) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, req *http.Request) {
		// Sources are checked at once: one whose database does not answer
		// takes readyTimeout, and the probe's own timeout is short.
		bySource := make([][]readyCheck, len(running))
		var wg sync.WaitGroup
		for i, rs := range running {
			wg.Go(func() { bySource[i] = rs.checkReady(req.Context()) })
		}
		wg.Wait()
		rep := readiness{Ready: true, Checks: []readyCheck{}}
		for _, checks := range bySource {
			for _, c := range checks {
				rep.Ready = rep.Ready && c.OK
				rep.Checks = append(rep.Checks, c)
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		if !rep.Ready {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_ = json.NewEncoder(w).Encode(rep)
	})
	return mux
}

// readiness is /readyz's body.
type readiness struct {
	Ready  bool         `json:"ready"`
	Checks []readyCheck `json:"checks"`
}

// readyCheck is one check of one source.
type readyCheck struct {
	// Name is database, schema or claiming.
	Name string `json:"name"`
	// Source names the source with several databases (sources:).
	Source string `json:"source,omitempty"`
	OK     bool   `json:"ok"`
	// Error says why the check failed.
	Error string `json:"error,omitempty"`
}

// checkReady runs the source's readiness checks: the database answers a
// ping, its schema is at this binary's latest migration, and the relay is
// claiming (relay.Claiming). The schema is not read when the database does
// not answer.
func (rs *runningSource) checkReady(ctx context.Context) []readyCheck {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	name := ""
	if rs.src.labelled {
		name = rs.src.name
	}
	check := func(what string, err error) readyCheck {
		c := readyCheck{Name: what, Source: name, OK: err == nil}
		if err != nil {
			c.Error = err.Error()
		}
		return c
	}
	db := check("database", rs.pool.Ping(ctx))
	schema := readyCheck{Name: "schema", Source: name, Error: "not checked: the database is unreachable"}
	if db.OK {
		schema = check("schema", checkSchema(ctx, rs))
	}
	return []readyCheck{db, schema, check("claiming", rs.relay.Claiming())}
}

// checkSchema returns migrations.Check's verdict on the source's database.
func checkSchema(ctx context.Context, rs *runningSource) error {
	conn, err := rs.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	return migrations.Check(ctx, conn.Conn())
}

// readyCollector exports a source's readiness as herald_ready, for alerts:
// Prometheus cannot read /readyz. It runs the checks on each scrape; they
// cost two short round trips and no scan.
type readyCollector struct{ rs *runningSource }

var readyDesc = prometheus.NewDesc("herald_ready",
	"1 while /readyz would answer 200 for this source: the database answers, the schema is current and the relay is claiming.", nil, nil)

func (readyCollector) Describe(ch chan<- *prometheus.Desc) { ch <- readyDesc }

func (c readyCollector) Collect(ch chan<- prometheus.Metric) {
	v := 1.0
	for _, chk := range c.rs.checkReady(context.Background()) {
		if !chk.OK {
			v = 0
		}
	}
	ch <- prometheus.MustNewConstMetric(readyDesc, prometheus.GaugeValue, v)
}
