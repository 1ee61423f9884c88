package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/herald-relay/herald/cmd/herald/internal/config"
	epstore "github.com/herald-relay/herald/cmd/herald/internal/ops"
	"github.com/herald-relay/herald/internal/heraldtest"
	"github.com/herald-relay/herald/outbox"
)

// idServer is a receiver (plain or TLS) that records the webhook-ids it got.
type idServer struct {
	*httptest.Server
	mu  sync.Mutex
	ids []string
}

func newIDServer(t *testing.T, tls bool) *idServer {
	s := &idServer{}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.ids = append(s.ids, r.Header.Get("webhook-id"))
		s.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
	if tls {
		s.Server = httptest.NewTLSServer(h)
	} else {
		s.Server = httptest.NewServer(h)
	}
	t.Cleanup(s.Close)
	return s
}

func (s *idServer) got() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.ids...)
}

// clientCert returns a self-signed client certificate and its key, in PEM.
func clientCert(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "herald-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	require.NoError(t, os.WriteFile(path, data, 0o600))
}

// writeTLSFiles writes a CA file trusting srv and a client certificate whose
// key file holds another certificate's key.
func writeTLSFiles(t *testing.T, srv *httptest.Server) (tls config.EndpointTLS, rightKey []byte) {
	dir := t.TempDir()
	tls = config.EndpointTLS{CAFile: filepath.Join(dir, "ca.pem"), CertFile: filepath.Join(dir, "cert.pem"),
		KeyFile: filepath.Join(dir, "key.pem")}
	writeFile(t, tls.CAFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}))
	cert, key := clientCert(t)
	_, otherKey := clientCert(t)
	writeFile(t, tls.CertFile, cert)
	writeFile(t, tls.KeyFile, otherKey)
	return tls, key
}

// runSource starts what herald run starts for one database: relay,
// endpoint watcher (every 100ms) and maintenance, with its logs in logs.
func runSource(t *testing.T, url string, pool *pgxpool.Pool, logs *syncBuffer, changes ...func(*config.Config)) (*runningSource, *prometheus.Registry) {
	t.Helper()
	cfg := sourceConfig(url, changes...)
	reg := prometheus.NewRegistry()
	log := zerolog.New(logs)
	rs, err := startSource(context.Background(), &globals{configPath: "herald.yaml"}, cfg, sourcesOf(cfg)[0], pool, reg, log)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, rs.Stop(10*time.Second)) })
	return rs, reg
}

func eventuallyTrue(t *testing.T, d time.Duration, cond func() bool, msg string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s: %s", d, msg)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func countRows(t *testing.T, pool *pgxpool.Pool, sql string) int {
	t.Helper()
	var n int
	require.NoError(t, pool.QueryRow(context.Background(), sql).Scan(&n))
	return n
}

// sourceConfig is the configuration runSource runs with.
func sourceConfig(url string, changes ...func(*config.Config)) *config.Config {
	cfg := config.Default()
	cfg.Database.URL = config.Secret(url)
	cfg.Delivery.AllowPrivateNetworks = true
	cfg.Relay.PollInterval = 20 * time.Millisecond
	cfg.Relay.EndpointRefresh = 100 * time.Millisecond
	cfg.Maintenance.DeadRetention = 0
	for _, change := range changes {
		change(cfg)
	}
	return cfg
}

// An endpoint whose TLS key does not match its certificate used to be left
// out of routing: its subscribers' messages were acknowledged for the other
// endpoints and deleted, and a message naming it died as unroutable. It
// must hold them instead, with the reason, and deliver them once its files
// are fixed.
func TestEndpointWithBrokenTLSFilesHoldsItsMessagesUntilTheFilesAreFixed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := heraldtest.URL(t)
	pool := heraldtest.PoolFor(t, url)
	secure, plain := newIDServer(t, true), newIDServer(t, false)
	tls, rightKey := writeTLSFiles(t, secure.Server)
	require.NoError(t, epstore.AddEndpoint(ctx, pool, epstore.Endpoint{Endpoint: config.Endpoint{Name: "secure", URL: secure.URL,
		Secrets: []config.Secret{testSecret}, Topics: []string{"orders.*"}, TLS: tls,
		Headers: map[string]config.Secret{"Authorization": headerSecret}}}))
	require.NoError(t, epstore.AddEndpoint(ctx, pool, epstore.Endpoint{Endpoint: config.Endpoint{Name: "plain", URL: plain.URL,
		Secrets: []config.Secret{testSecret}, Topics: []string{"orders.*"}}}))
	var logs syncBuffer
	_, reg := runSource(t, url, pool, &logs)

	require.NoError(t, outbox.Enqueue(ctx, pool,
		outbox.Message{ID: "msg_fanout", Topic: "orders.created", Payload: json.RawMessage(`{}`)},
		outbox.Message{ID: "msg_named", Topic: "invoices.paid", Endpoint: "secure", Payload: json.RawMessage(`{}`)}))
	eventuallyTrue(t, 10*time.Second, func() bool {
		return countRows(t, pool, `SELECT count(*) FROM outbox.deliveries WHERE endpoint = 'secure' AND attempts = 0
			AND last_error LIKE '%private key does not match public key%'`) == 2
	}, "both messages wait for the endpoint, with the reason")
	eventuallyTrue(t, 10*time.Second, func() bool { return len(plain.got()) == 1 }, "the other endpoint gets its message")
	require.Zero(t, countRows(t, pool, `SELECT count(*) FROM outbox.dead`), "nothing dies for want of a usable endpoint")
	require.Empty(t, secure.got())
	require.Equal(t, 1.0, metricValue(t, reg, "herald_endpoint_unusable", "secure"))

	writeFile(t, tls.KeyFile, rightKey)
	eventuallyTrue(t, 10*time.Second, func() bool { return len(secure.got()) == 2 }, "delivered once its files are fixed")
	eventuallyTrue(t, 10*time.Second, func() bool {
		return countRows(t, pool, `SELECT count(*) FROM outbox.deliveries`) == 0
	}, "acknowledged")
	require.ElementsMatch(t, []string{"msg_fanout", "msg_named"}, secure.got())
	require.Equal(t, []string{"msg_fanout"}, plain.got())
	require.Equal(t, 0.0, metricValue(t, reg, "herald_endpoint_unusable", "secure"))

	out := logs.String()
	require.Equal(t, 1, bytes.Count([]byte(out), []byte("endpoint unusable")), "logged once, not per message:\n%s", out)
	require.Contains(t, out, "endpoint usable again")
	for _, s := range []string{testSecret, headerSecret} {
		require.NotContains(t, out, s)
	}
}

// metricValue reads a gauge of reg labelled endpoint; it fails the test if
// there is none.
func metricValue(t *testing.T, reg *prometheus.Registry, name, endpoint string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "endpoint" && l.GetValue() == endpoint {
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	t.Fatalf("no %s{endpoint=%q}", name, endpoint)
	return 0
}

func TestUnusableEndpointsSayWhyWithoutSecrets(t *testing.T) {
	t.Parallel()
	cfg := config.Default()
	set := newEndpointSet(cfg)
	row := func(name string, change func(*config.Endpoint)) epstore.Endpoint {
		ep := config.Endpoint{Name: name, URL: "https://example.com/hooks", Secrets: []config.Secret{testSecret},
			Topics: []string{"orders.*"}, Headers: map[string]config.Secret{"Authorization": headerSecret}}
		change(&ep)
		return epstore.Endpoint{Endpoint: ep, UpdatedAt: time.Now()}
	}
	eps := set.build([]epstore.Endpoint{
		row("missing-ca", func(ep *config.Endpoint) { ep.TLS.CAFile = "/nonexistent/ca.pem" }),
		row("slow", func(ep *config.Endpoint) { ep.Timeout = 2 * time.Minute }),
		row("bad-url", func(ep *config.Endpoint) { ep.URL = "https://user:pa55word@exa mple.com/?token=t0ken-value" }),
		row("bad-secret", func(ep *config.Endpoint) { ep.Secrets = []config.Secret{"whsec_not-base64!" + headerSecret} }),
	})
	require.Len(t, eps, 4, "every endpoint stays")
	want := []string{"tls.ca_file", "timeout: 2m0s + 5s exceeds relay.lease (1m0s)", "url", "secret"}
	for i, ep := range eps {
		require.Error(t, ep.Unusable, ep.Name)
		require.Nil(t, ep.Sender, ep.Name)
		require.Equal(t, []string{"orders.*"}, ep.Topics, "it keeps its place in routing")
		msg := ep.Unusable.Error()
		require.Contains(t, msg, want[i])
		for _, s := range []string{testSecret, strings.TrimPrefix(testSecret, "whsec_"), headerSecret, "hunter2", "pa55word", "t0ken-value"} {
			require.NotContains(t, msg, s, "%s: %s", ep.Name, msg)
		}
	}
}

// A reload (SIGHUP) used to rebuild every sender, and so reset every
// endpoint's circuit breaker, in-flight count and rate limiter. An endpoint
// the reload does not change keeps them.
func TestReloadKeepsTheStateOfUnchangedEndpoints(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := heraldtest.URL(t)
	pool := heraldtest.PoolFor(t, url)
	var requests atomic.Int32
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		requests.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	t.Cleanup(down.Close)
	require.NoError(t, epstore.AddEndpoint(ctx, pool, epstore.Endpoint{Endpoint: config.Endpoint{Name: "down", URL: down.URL,
		Secrets: []config.Secret{testSecret}, Topics: []string{"t"}}}))
	breaker := func(c *config.Config) {
		c.Breaker.FailureThreshold, c.Breaker.ProbeInterval, c.Breaker.MaxProbeInterval = 2, time.Hour, time.Hour
	}
	var logs syncBuffer
	rs, _ := runSource(t, url, pool, &logs, breaker)
	require.NoError(t, outbox.Enqueue(ctx, pool,
		outbox.Message{ID: "msg_1", Topic: "t", Payload: json.RawMessage(`{}`)},
		outbox.Message{ID: "msg_2", Topic: "t", Payload: json.RawMessage(`{}`)}))
	eventuallyTrue(t, 10*time.Second, func() bool {
		return countRows(t, pool, `SELECT count(*) FROM outbox.deliveries WHERE attempts = 1`) == 2
	}, "two failures open the breaker")

	require.NoError(t, rs.reload(ctx, sourceConfig(url, breaker)))
	eps, _, err := rs.set.load(ctx, pool) // what the watcher does next, done here to know when
	require.NoError(t, err)
	require.NoError(t, rs.relay.SetEndpoints(eps))

	require.NoError(t, outbox.Enqueue(ctx, pool, outbox.Message{ID: "msg_3", Topic: "t", Payload: json.RawMessage(`{}`)}))
	eventuallyTrue(t, 10*time.Second, func() bool {
		return countRows(t, pool, `SELECT count(*) FROM outbox.deliveries WHERE id = 'msg_3'`) == 1
	}, "the third message waits in the retry lane")
	require.Equal(t, 1, countRows(t, pool, `SELECT count(*) FROM outbox.deliveries WHERE id = 'msg_3' AND attempts = 0`),
		"not attempted: the breaker is still open after the reload")
	require.EqualValues(t, 2, requests.Load())
}

// A sender replaced while a request is in flight used to be closed at
// once, which closes only idle connections: the one in use went back to its
// pool when the request ended, and stayed open for good. It is closed once
// its requests have finished.
func TestReplacedSenderIsClosedOnceItsRequestsFinish(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := heraldtest.URL(t)
	pool := heraldtest.PoolFor(t, url)
	arrived, release := make(chan struct{}, 1), make(chan struct{})
	var closed atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		arrived <- struct{}{}
		<-release
		w.WriteHeader(http.StatusNoContent)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateClosed {
			closed.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	require.NoError(t, epstore.AddEndpoint(ctx, pool, epstore.Endpoint{Endpoint: config.Endpoint{Name: "slow", URL: srv.URL,
		Secrets: []config.Secret{testSecret}, Topics: []string{"t"}, Timeout: 10 * time.Second}}))
	var logs syncBuffer
	runSource(t, url, pool, &logs)
	require.NoError(t, outbox.Enqueue(ctx, pool, outbox.Message{ID: "msg_1", Topic: "t", Payload: json.RawMessage(`{}`)}))
	select {
	case <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("the request never arrived")
	}

	_, err := epstore.UpdateEndpoint(ctx, pool, "slow", func(ep *epstore.Endpoint) error { ep.Timeout = 9 * time.Second; return nil })
	require.NoError(t, err)
	eventuallyTrue(t, 10*time.Second, func() bool { return strings.Contains(logs.String(), `"changed":["slow"]`) },
		"the relay takes the changed endpoint, with a new sender")
	require.Zero(t, closed.Load())

	close(release)
	eventuallyTrue(t, 10*time.Second, func() bool { return closed.Load() > 0 },
		"the old sender's connection is closed once its request has finished")
	eventuallyTrue(t, 10*time.Second, func() bool { return countRows(t, pool, `SELECT count(*) FROM outbox.messages`) == 0 },
		"the message is acknowledged")
}
