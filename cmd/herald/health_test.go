package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/herald-relay/herald/cmd/herald/internal/config"
	"github.com/herald-relay/herald/internal/heraldtest"
	"github.com/herald-relay/herald/migrations"
)

// probe GETs path from srv and decodes /readyz's body.
func probe(t *testing.T, srv *httptest.Server, path string) (int, readiness) {
	t.Helper()
	resp, err := http.Get(srv.URL + path)
	require.NoError(t, err)
	defer resp.Body.Close()
	var rep readiness
	if path == "/readyz" {
		require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&rep))
	}
	return resp.StatusCode, rep
}

// failed returns the names of the checks that failed, with their errors.
func failed(rep readiness) map[string]string {
	out := map[string]string{}
	for _, c := range rep.Checks {
		if !c.OK {
			out[c.Name] = c.Error
		}
	}
	return out
}

func withMetrics(cfg *config.Config) { cfg.Metrics.Listen = "127.0.0.1:0" }

// startReadySource runs a source (relay, watcher, queue gauges) and serves
// its probes on a real HTTP server, once the relay has claimed.
func startReadySource(t *testing.T) (*runningSource, *httptest.Server) {
	t.Helper()
	url := heraldtest.URL(t)
	pool := heraldtest.PoolFor(t, url)
	rs, reg := runSource(t, url, pool, &syncBuffer{}, withMetrics)
	srv := httptest.NewServer(newMetricsMux(reg, []*runningSource{rs}))
	t.Cleanup(srv.Close)
	eventuallyTrue(t, 10*time.Second, func() bool { return rs.relay.Claiming() == nil }, "the relay claims")
	return rs, srv
}

func TestReadyWhenDatabaseSchemaAndClaimsAreFine(t *testing.T) {
	t.Parallel()
	_, srv := startReadySource(t)
	code, rep := probe(t, srv, "/readyz")
	require.Equal(t, http.StatusOK, code, "%+v", rep)
	require.True(t, rep.Ready)
	names := []string{}
	for _, c := range rep.Checks {
		require.True(t, c.OK, "%+v", c)
		names = append(names, c.Name)
	}
	require.Equal(t, []string{"database", "schema", "claiming"}, names)
	code, _ = probe(t, srv, "/healthz")
	require.Equal(t, http.StatusOK, code)
}

// A database one migration behind the binary (a rollout that skipped
// `herald migrate`) is not ready, and the schema check says why.
func TestNotReadyWhenSchemaIsBehind(t *testing.T) {
	t.Parallel()
	rs, srv := startReadySource(t)
	conn, err := rs.pool.Acquire(context.Background())
	require.NoError(t, err)
	st, err := migrations.Current(context.Background(), conn.Conn())
	require.NoError(t, err)
	_, err = migrations.Migrate(context.Background(), conn.Conn(), st.Latest-1)
	conn.Release()
	require.NoError(t, err)

	code, rep := probe(t, srv, "/readyz")
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.False(t, rep.Ready)
	require.Contains(t, failed(rep), "schema")
	require.Contains(t, failed(rep)["schema"], "run `herald migrate`")
	require.NotContains(t, failed(rep), "database")
}

// A database that does not answer makes herald not ready, while /healthz,
// liveness only, still answers 200: restarting herald would not bring the
// database back.
func TestNotReadyWhenDatabaseIsDown(t *testing.T) {
	t.Parallel()
	rs, _ := startReadySource(t)
	// Nothing listens on port 1 of the loopback.
	down, err := pgxpool.New(context.Background(), "postgres://postgres@127.0.0.1:1/herald?connect_timeout=1")
	require.NoError(t, err)
	t.Cleanup(down.Close)
	cut := &runningSource{src: rs.src, pool: down, relay: rs.relay}
	srv := httptest.NewServer(newMetricsMux(nil, []*runningSource{cut}))
	t.Cleanup(srv.Close)

	code, rep := probe(t, srv, "/readyz")
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Contains(t, failed(rep), "database")
	require.Contains(t, failed(rep)["database"], "127.0.0.1")
	require.Equal(t, "not checked: the database is unreachable", failed(rep)["schema"])
	code, _ = probe(t, srv, "/healthz")
	require.Equal(t, http.StatusOK, code)
}

// A relay that has stopped claiming makes herald not ready, naming the
// check.
func TestNotReadyWhenTheRelayStops(t *testing.T) {
	t.Parallel()
	rs, srv := startReadySource(t)
	require.NoError(t, rs.relay.Stop(context.Background()))
	code, rep := probe(t, srv, "/readyz")
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Equal(t, map[string]string{"claiming": "the relay is stopping"}, failed(rep))
}
