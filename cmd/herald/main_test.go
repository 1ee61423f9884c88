package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/herald-relay/herald/cmd/herald/internal/config"
	"github.com/herald-relay/herald/internal/heraldtest"
)

const testSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

func TestMain(m *testing.M) { heraldtest.Main(m) }

// herald runs Main in-process and returns its exit code and output.
func herald(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := Main(context.Background(), args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func writeConfig(t *testing.T, dbURL, endpointURL string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "herald.yaml")
	cfg := fmt.Sprintf(`database:
  url: %s
delivery:
  allow_private_networks: true
relay:
  poll_interval: 50ms
  shutdown_timeout: 5s
endpoints:
  - name: test
    url: %s
    secret: %s
    topics: ["*"]
`, dbURL, endpointURL, testSecret)
	require.NoError(t, os.WriteFile(path, []byte(cfg), 0o600))
	return path
}

func TestMigrateIsConcurrentSafeAndIdempotent(t *testing.T) {
	t.Parallel()
	url := heraldtest.EmptyURL(t)
	cfg := writeConfig(t, url, "http://127.0.0.1:1/")
	var wg sync.WaitGroup
	codes := make([]int, 3)
	stderrs := make([]string, 3)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i], _, stderrs[i] = herald(t, "--config", cfg, "migrate")
		}()
	}
	wg.Wait()
	for i, code := range codes {
		require.Zero(t, code, "run %d: %s", i, stderrs[i])
	}
	require.Equal(t, 1, strings.Count(strings.Join(stderrs, ""), `"schema migrated"`), "exactly one run applied the migrations")
	code, out, errOut := herald(t, "--config", cfg, "migrate", "status")
	require.Zero(t, code, errOut)
	require.Contains(t, out, "up to date")
	code, _, errOut = herald(t, "--config", cfg, "migrate")
	require.Zero(t, code)
	require.Contains(t, errOut, "schema up to date")
}

func TestRunRefusesUnmigratedDatabase(t *testing.T) {
	t.Parallel()
	cfg := writeConfig(t, heraldtest.EmptyURL(t), "http://127.0.0.1:1/")
	code, _, errOut := herald(t, "--config", cfg, "run")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "herald migrate")
}

func TestInvalidConfigNamesKeyAndLine(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "bad.yaml")
	require.NoError(t, os.WriteFile(path, []byte(`database:
  url: postgres://x@127.0.0.1/db
retry:
  multiplier: 0.5
endpoints:
  - name: a
    url: ftp://nope
    secret: whsec_tooshort
    topics: ["*"]
    colour: blue
`), 0o600))
	code, _, errOut := herald(t, "--config", path, "config", "check")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "bad.yaml:4: retry.multiplier")
	require.Contains(t, errOut, "bad.yaml:7: endpoints[0].url")
	require.Contains(t, errOut, "bad.yaml:10: endpoints[0].colour")
	require.Contains(t, errOut, "endpoints[0].secret")
	require.NotContains(t, errOut, "tooshort", "the secret is never printed")
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	code, _, errOut := herald(t, "frobnicate")
	require.Equal(t, 2, code)
	require.Contains(t, errOut, `unknown command "frobnicate"`)
	code, out, _ := herald(t, "--help")
	require.Zero(t, code)
	require.Contains(t, out, "deliver outbox messages until SIGINT/SIGTERM")
}

func TestDeadListAndReplay(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := heraldtest.URL(t)
	pool := heraldtest.PoolFor(t, url)
	cfg := writeConfig(t, url, "http://127.0.0.1:1/")
	_, err := pool.Exec(ctx, `INSERT INTO outbox.dead (seq, endpoint, id, topic, payload, created_at, attempts, reason, last_status, last_error)
		VALUES (10, 'test', 'msg_a', 'orders.created', '{"a":1}', now(), 12, 'exhausted', 503, 'status 503'),
		       (11, NULL, 'msg_b', 'nobody', '{"b":2}', now(), 0, 'unroutable', NULL, 'no endpoint subscribes to topic nobody')`)
	require.NoError(t, err)

	code, out, errOut := herald(t, "--config", cfg, "dead", "list")
	require.Zero(t, code, errOut)
	require.Contains(t, out, "msg_a")
	require.Contains(t, out, "exhausted")
	require.Contains(t, out, "msg_b")

	code, _, errOut = herald(t, "--config", cfg, "dead", "replay")
	require.Equal(t, 2, code, "replay without a filter or --all is refused")
	require.Contains(t, errOut, "--all")

	code, out, errOut = herald(t, "--config", cfg, "dead", "replay", "--all")
	require.Zero(t, code, errOut)
	require.Contains(t, out, "replayed 2")
	var dead, retry, hot, attempts int
	require.NoError(t, pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM outbox.dead), (SELECT count(*) FROM outbox.deliveries),
		(SELECT count(*) FROM outbox.messages WHERE id = 'msg_b'), (SELECT attempts FROM outbox.deliveries WHERE id = 'msg_a')`).
		Scan(&dead, &retry, &hot, &attempts))
	require.Equal(t, []int{0, 1, 1, 0}, []int{dead, retry, hot, attempts},
		"the endpoint pair is back in the retry lane with a fresh budget, the unroutable message back in the hot lane")
}

// TestRunDeliversAndStopsOnSIGTERM builds the real binary, delivers a
// message and checks that SIGTERM ends it with exit code 0.
func TestRunDeliversAndStopsOnSIGTERM(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	bin := filepath.Join(t.TempDir(), "herald")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Stderr = os.Stderr
	require.NoError(t, build.Run())

	got := make(chan string, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got <- r.Header.Get("webhook-id") + " " + string(body)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	url := heraldtest.URL(t)
	pool := heraldtest.PoolFor(t, url)
	cfg := writeConfig(t, url, srv.URL)

	var logs bytes.Buffer
	cmd := exec.Command(bin, "--config", cfg, "run")
	cmd.Stderr = &logs
	require.NoError(t, cmd.Start())
	_, err := pool.Exec(ctx, `INSERT INTO outbox.messages (id, topic, payload) VALUES ('msg_cli', 'orders.created', '{"order_id": 42}')`)
	require.NoError(t, err)
	select {
	case g := <-got:
		require.Equal(t, `msg_cli {"order_id": 42}`, g)
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("not delivered; herald logged:\n%s", logs.String())
	}
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		require.NoError(t, err, "exit code 0 after SIGTERM; logs:\n%s", logs.String())
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("herald did not stop after SIGTERM; logs:\n%s", logs.String())
	}
	require.Contains(t, logs.String(), `"herald stopped"`)
	require.NotContains(t, logs.String(), strings.TrimPrefix(testSecret, "whsec_"), "no secret in logs")
}

// TestShippedConfigsAreValid checks the configuration files shipped for
// users: the documented example and the one docker-compose.yml mounts.
func TestShippedConfigsAreValid(t *testing.T) {
	t.Parallel()
	for _, path := range []string{"../../deploy/herald.compose.yaml", "../../config.example.yaml"} {
		_, err := config.LoadLookupEnv(path, func(name string) (string, bool) {
			return "whsec_ZGVtby1vbmx5LWRvLW5vdC11c2UtaW4tcHJvZHVjdGlvbg==", true
		})
		require.NoError(t, err, path)
	}
}
