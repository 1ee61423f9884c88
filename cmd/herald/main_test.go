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

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// heraldBinary builds the real binary once per test run.
func heraldBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "herald-bin-")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "herald")
		out, err := exec.Command("go", "build", "-o", builtBin, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("%v: %s", err, out)
		}
	})
	require.NoError(t, buildErr)
	return builtBin
}

// syncBuffer is a bytes.Buffer safe for a process writing and a test reading.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestRunDeliversAndStopsOnSIGTERM builds the real binary, delivers a
// message and checks that SIGTERM ends it with exit code 0.
func TestRunDeliversAndStopsOnSIGTERM(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	bin := heraldBinary(t)

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

	cmd, logs := startHerald(t, bin, cfg)
	_, err := pool.Exec(ctx, `INSERT INTO outbox.messages (id, topic, payload) VALUES ('msg_cli', 'orders.created', '{"order_id": 42}')`)
	require.NoError(t, err)
	select {
	case g := <-got:
		require.Equal(t, `msg_cli {"order_id": 42}`, g)
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("not delivered; herald logged:\n%s", logs.String())
	}
	stopWithSIGTERM(t, cmd, logs)
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

// TestReloadAndEndpointsAddedWhileRunning: SIGHUP applies a new endpoint
// from the file, an invalid file is rejected with the old configuration
// kept, and an endpoint added with `herald endpoints add` is used without
// a restart.
func TestReloadAndEndpointsAddedWhileRunning(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	bin := heraldBinary(t)
	got := make(chan string, 10)
	recv := func(name string) *httptest.Server { return namedReceiver(t, name, got) }
	a, b, c := recv("a"), recv("b"), recv("c")
	url := heraldtest.URL(t)
	pool := heraldtest.PoolFor(t, url)
	cfgPath := writeConfig(t, url, a.URL)
	cmd, logs := startHerald(t, bin, cfgPath)
	// Endpoint "test" in writeConfig's file subscribes to every topic.
	expect := func(want ...string) { t.Helper(); expectDeliveries(t, got, logs, want...) }
	insert := func(id, topic string) {
		t.Helper()
		_, err := pool.Exec(ctx, `INSERT INTO outbox.messages (id, topic, payload) VALUES ($1, $2, '{}')`, id, topic)
		require.NoError(t, err)
	}
	insert("msg_1", "one")
	expect("a msg_1")

	// A second endpoint, for topic "two" only, through the file and SIGHUP.
	cfg, err := os.ReadFile(cfgPath)
	require.NoError(t, err)
	cfg = append(cfg, fmt.Sprintf("  - name: second\n    url: %s\n    secret: %s\n    topics: [\"two\"]\n", b.URL, testSecret)...)
	require.NoError(t, os.WriteFile(cfgPath, cfg, 0o600))
	require.NoError(t, cmd.Process.Signal(syscall.SIGHUP))
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), `"added":["second"]`) }, 10*time.Second, 20*time.Millisecond)
	insert("msg_2", "two")
	expect("a msg_2", "b msg_2")

	// An invalid file is rejected; Herald keeps running as it was.
	require.NoError(t, os.WriteFile(cfgPath, append(cfg, "bogus_key: 1\n"...), 0o600))
	require.NoError(t, cmd.Process.Signal(syscall.SIGHUP))
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "reload rejected") }, 10*time.Second, 20*time.Millisecond)
	require.Contains(t, logs.String(), "bogus_key")
	insert("msg_3", "two")
	expect("a msg_3", "b msg_3")

	// An endpoint managed in the database, added while Herald runs.
	code, _, errOut := herald(t, "--config", writeConfig(t, url, a.URL), "endpoints", "add", "third",
		"--url", c.URL, "--secret", testSecret, "--topic", "three")
	require.Zero(t, code, errOut)
	// Messages are routed when claimed: wait until the relay has the new
	// endpoint (it learns of it through NOTIFY herald_endpoints).
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), `"added":["third"]`) }, 10*time.Second, 20*time.Millisecond)
	insert("msg_4", "three")
	expect("a msg_4", "c msg_4")
	require.NotContains(t, logs.String(), strings.TrimPrefix(testSecret, "whsec_"))
}

// expectDeliveries waits for exactly the deliveries want ("<receiver>
// <webhook-id>", see namedReceiver) on got, in any order, showing herald's
// logs when they do not come.
func expectDeliveries(t *testing.T, got <-chan string, logs fmt.Stringer, want ...string) {
	t.Helper()
	var seen []string
	for range want {
		select {
		case g := <-got:
			seen = append(seen, g)
		case <-time.After(15 * time.Second):
			t.Fatalf("want %q, got %q; herald logged:\n%s", want, seen, logs.String())
		}
	}
	require.ElementsMatch(t, want, seen)
}

// namedReceiver is an endpoint that reports "<name> <webhook-id>" on got
// for every request.
func namedReceiver(t *testing.T, name string, got chan<- string) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- name + " " + r.Header.Get("webhook-id")
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// stopWithSIGTERM sends SIGTERM to a running herald and requires it to exit
// with code 0 within 20 seconds; logs is shown when it does not.
func stopWithSIGTERM(t *testing.T, cmd *exec.Cmd, logs fmt.Stringer) {
	t.Helper()
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
}

// TestSIGHUPDuringStartup: SIGHUPs sent all through the start-up, from the
// first log line (before the database is reached) until the relay has
// started, end in one reload; none kills herald, as SIGHUP's default
// action would.
func TestSIGHUPDuringStartup(t *testing.T) {
	t.Parallel()
	bin := heraldBinary(t)
	url := heraldtest.URL(t)
	got := make(chan string, 10)
	a := namedReceiver(t, "a", got)
	cfgPath := writeConfig(t, url, a.URL)
	cmd, logs := startHerald(t, bin, cfgPath)
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), `"herald starting"`) }, 20*time.Second, 100*time.Microsecond)
	deadline := time.Now().Add(5 * time.Second)
	for i := 0; i < 20000 && time.Now().Before(deadline) && !strings.Contains(logs.String(), `"relay started"`); i++ {
		require.NoError(t, cmd.Process.Signal(syscall.SIGHUP), "herald logged:\n%s", logs)
		// The scenario's pace, not a wait: a SIGHUP every 100µs lands in
		// every stage of the start-up.
		time.Sleep(100 * time.Microsecond)
	}
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), `"configuration reloaded`) }, 10*time.Second, 10*time.Millisecond,
		"herald logged:\n%s", logs)
	stopWithSIGTERM(t, cmd, logs)
}

// startHerald starts `herald --config cfgPath run`, its logs collected, and
// kills it at the end of the test if it is still running.
func startHerald(t *testing.T, bin, cfgPath string) (*exec.Cmd, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	cmd := exec.Command(bin, "--config", cfgPath, "run")
	cmd.Stderr = logs
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd, logs
}
