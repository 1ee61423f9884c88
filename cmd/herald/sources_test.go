package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/herald-relay/herald/internal/heraldtest"
)

// writeSourcesConfig writes a file with two sources: orders, delivering
// only to endpoint a, and shipping, delivering only to endpoint b.
func writeSourcesConfig(t *testing.T, ordersURL, shippingURL, aURL, bURL, metricsAddr string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "herald.yaml")
	cfg := fmt.Sprintf(`sources:
  - name: orders
    url: %s
    endpoints: [a]
  - name: shipping
    url: %s
    max_conns: 4
    endpoints: [b]
delivery:
  allow_private_networks: true
relay:
  poll_interval: 50ms
  shutdown_timeout: 5s
metrics:
  listen: %q
endpoints:
  - name: a
    url: %s
    secret: %s
    topics: ["*"]
  - name: b
    url: %s
    secret: %s
    topics: ["*"]
`, ordersURL, shippingURL, metricsAddr, aURL, testSecret, bURL, testSecret)
	require.NoError(t, os.WriteFile(path, []byte(cfg), 0o600))
	return path
}

// scrape returns the text of herald's /metrics at addr, or "" if it does
// not answer.
func scrape(addr string) string {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return string(body)
}

// sample returns the value of series in metrics (Prometheus text), 0 if
// it is not there.
func sample(metrics, series string) float64 {
	for _, line := range strings.Split(metrics, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().String()
}

// TestRunSeveralSources runs the real binary on two databases: each
// source delivers its own messages to its own endpoint, metrics carry the
// source label, and SIGTERM stops both relays with exit code 0.
func TestRunSeveralSources(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	bin := heraldBinary(t)

	got := make(chan string, 10)
	recv := func(name string) *httptest.Server { return namedReceiver(t, name, got) }
	a, b := recv("a"), recv("b")
	ordersURL, shippingURL := heraldtest.URL(t), heraldtest.URL(t)
	orders, shipping := heraldtest.PoolFor(t, ordersURL), heraldtest.PoolFor(t, shippingURL)
	addr := freeAddr(t)
	cfg := writeSourcesConfig(t, ordersURL, shippingURL, a.URL, b.URL, addr)

	// The commands that act on one database need --source.
	code, _, errOut := herald(t, "--config", cfg, "dead", "list")
	require.Equal(t, 2, code)
	require.Contains(t, errOut, "--source is required with several sources: orders, shipping")
	code, _, errOut = herald(t, "--config", cfg, "endpoints", "list", "--source", "billing")
	require.Equal(t, 2, code)
	require.Contains(t, errOut, "--source billing: no such source; the sources are: orders, shipping")
	code, out, errOut := herald(t, "--config", cfg, "dead", "list", "--source", "shipping")
	require.Zero(t, code, errOut)
	require.Contains(t, out, "(no dead messages)")
	code, out, errOut = herald(t, "--config", cfg, "migrate", "status")
	require.Zero(t, code, errOut)
	require.Regexp(t, `^orders: schema version \d+ of \d+ \(up to date\)\nshipping: schema version \d+ of \d+ \(up to date\)\n$`, out)
	code, _, errOut = herald(t, "--config", cfg, "migrate")
	require.Zero(t, code, errOut)
	require.Equal(t, 2, strings.Count(errOut, `"schema up to date"`), errOut)
	require.Contains(t, errOut, `"source":"shipping"`)

	cmd, logs := startHerald(t, bin, cfg)

	for i := range 3 {
		_, err := orders.Exec(ctx, `INSERT INTO outbox.messages (id, topic, payload) VALUES ($1, 'orders.created', '{}')`, fmt.Sprintf("ord_%d", i))
		require.NoError(t, err)
	}
	_, err := shipping.Exec(ctx, `INSERT INTO outbox.messages (id, topic, payload) VALUES ('shp_0', 'shipping.sent', '{}')`)
	require.NoError(t, err)
	var seen []string
	for range 4 {
		select {
		case g := <-got:
			seen = append(seen, g)
		case <-time.After(15 * time.Second):
			t.Fatalf("got %q; herald logged:\n%s", seen, logs.String())
		}
	}
	require.ElementsMatch(t, []string{"a ord_0", "a ord_1", "a ord_2", "b shp_0"}, seen)

	// Acknowledgements are batched: wait for the counters.
	var metrics string
	require.Eventually(t, func() bool {
		metrics = scrape(addr)
		return strings.Contains(metrics, `herald_delivered_total{endpoint="a",source="orders"} 3`) &&
			strings.Contains(metrics, `herald_delivered_total{endpoint="b",source="shipping"} 1`)
	}, 10*time.Second, 50*time.Millisecond, "metrics:\n%s", metrics)

	// Nothing more arrives: each source's relay claims twice more, in both
	// lanes, and takes no row.
	sources := []string{"orders", "shipping"}
	rounds, rows := map[string]float64{}, map[string]float64{}
	for _, src := range sources {
		rounds[src] = sample(metrics, `herald_claim_seconds_count{lane="retry",source="`+src+`"}`)
		rows[src] = sample(metrics, `herald_claimed_total{lane="hot",source="`+src+`"}`) +
			sample(metrics, `herald_claimed_total{lane="retry",source="`+src+`"}`)
	}
	require.Eventually(t, func() bool {
		metrics = scrape(addr)
		for _, src := range sources {
			if sample(metrics, `herald_claim_seconds_count{lane="retry",source="`+src+`"}`) < rounds[src]+2 {
				return false
			}
		}
		return true
	}, 10*time.Second, 20*time.Millisecond, "two more claims of each source; metrics:\n%s", metrics)
	for _, src := range sources {
		require.Equal(t, rows[src], sample(metrics, `herald_claimed_total{lane="hot",source="`+src+`"}`)+
			sample(metrics, `herald_claimed_total{lane="retry",source="`+src+`"}`), "rows claimed from %s", src)
	}
	select {
	case g := <-got:
		t.Fatalf("unexpected delivery %q", g)
	default:
	}
	require.Contains(t, metrics, `herald_pending_messages{source="orders"}`)
	require.Contains(t, metrics, `herald_pending_messages{source="shipping"}`)
	require.NotContains(t, metrics, `herald_delivered_total{endpoint="b",source="orders"}`)
	resp, err := http.Get("http://" + addr + "/healthz")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	resp, err = http.Get("http://" + addr + "/readyz")
	require.NoError(t, err)
	var rep readiness
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&rep))
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "%+v", rep)
	bySource := map[string]int{}
	for _, c := range rep.Checks {
		bySource[c.Source]++
	}
	require.Equal(t, map[string]int{"orders": 3, "shipping": 3}, bySource, "each source's three checks")

	stopWithSIGTERM(t, cmd, logs)
	require.Contains(t, logs.String(), `"herald stopped"`)
	require.Contains(t, logs.String(), `"source":"orders"`)
	require.NotContains(t, logs.String(), strings.TrimPrefix(testSecret, "whsec_"), "no secret in logs")
}

// TestRunSeveralSourcesFailsFast: one source not migrated stops herald run
// before anything is delivered, naming the source.
func TestRunSeveralSourcesFailsFast(t *testing.T) {
	t.Parallel()
	cfg := writeSourcesConfig(t, heraldtest.URL(t), heraldtest.EmptyURL(t), "http://127.0.0.1:1/", "http://127.0.0.1:1/", "")
	code, _, errOut := herald(t, "--config", cfg, "run")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "source shipping:")
	require.Contains(t, errOut, "herald migrate")
}

// TestMigrateEverySource: herald migrate migrates each source in turn, or
// only the one --source names.
func TestMigrateEverySource(t *testing.T) {
	t.Parallel()
	cfg := writeSourcesConfig(t, heraldtest.EmptyURL(t), heraldtest.EmptyURL(t), "http://127.0.0.1:1/", "http://127.0.0.1:1/", "")
	code, _, errOut := herald(t, "--config", cfg, "migrate", "--source", "orders")
	require.Zero(t, code, errOut)
	require.Equal(t, 1, strings.Count(errOut, `"schema migrated"`), errOut)
	code, out, errOut := herald(t, "--config", cfg, "migrate", "status")
	require.Zero(t, code, errOut)
	require.Contains(t, out, "orders: schema version")
	require.Contains(t, out, "shipping: schema version 0 of")
	require.Contains(t, out, "behind")
	code, _, errOut = herald(t, "--config", cfg, "migrate")
	require.Zero(t, code, errOut)
	require.Contains(t, errOut, `"source":"orders","version"`)
	require.Equal(t, 1, strings.Count(errOut, `"schema migrated"`), errOut)
	code, _, errOut = herald(t, "--config", cfg, "migrate", "down", "--to", "0")
	require.Equal(t, 2, code)
	require.Contains(t, errOut, "--source is required")
}
