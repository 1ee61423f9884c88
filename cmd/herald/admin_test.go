package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/herald-relay/herald/internal/heraldtest"
)

// TestRunServesAdminAPI: `herald run` with admin.listen serves the API on
// its own listener (127.0.0.1 when the address names no host); an endpoint
// added through it is delivered to by the running relay; SIGTERM stops
// both, and neither the token nor the secret is ever logged.
func TestRunServesAdminAPI(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	bin := heraldBinary(t)
	got := make(chan string, 10)
	recv := namedReceiver(t, "api", got)
	url := heraldtest.URL(t)
	pool := heraldtest.PoolFor(t, url)
	cfgPath := writeConfig(t, url, "http://127.0.0.1:1/")
	const token = "test-admin-token-0123456789"
	cfg, err := os.ReadFile(cfgPath)
	require.NoError(t, err)
	cfg = append(cfg, "admin:\n  listen: \":0\"\n  tokens:\n    - {name: ci, token: \"${HERALD_TEST_TOKEN}\", access: write}\n"...)
	require.NoError(t, os.WriteFile(cfgPath, cfg, 0o600))
	// As startHerald, with the token in the environment only.
	logs := &syncBuffer{}
	cmd := exec.Command(bin, "--config", cfgPath, "run")
	cmd.Env = append(os.Environ(), "HERALD_TEST_TOKEN="+token)
	cmd.Stderr = logs
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

	addrRE := regexp.MustCompile(`"addr":"(127\.0\.0\.1:\d+)","tokens":1,[^\n]*"serving the admin API"`)
	require.Eventually(t, func() bool { return addrRE.MatchString(logs.String()) }, 15*time.Second, 10*time.Millisecond,
		"herald logged:\n%s", logs)
	base := "http://" + addrRE.FindStringSubmatch(logs.String())[1]

	call := func(method, path, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, method, base+path, strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		out, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(out)
	}
	status, out := call("POST", "/v1/endpoints", fmt.Sprintf(`{"name": "viaapi", "url": %q, "secrets": [%q], "topics": ["api.*"]}`, recv.URL, testSecret))
	require.Equal(t, 201, status, out)
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), `"added":["viaapi"]`) }, 10*time.Second, 20*time.Millisecond,
		"herald logged:\n%s", logs)
	_, err = pool.Exec(ctx, `INSERT INTO outbox.messages (id, topic, payload) VALUES ('msg_api', 'api.created', '{}')`)
	require.NoError(t, err)
	expectDeliveries(t, got, logs, "api msg_api")

	status, out = call("GET", "/v1/queue", "")
	require.Equal(t, 200, status, out)
	var qs struct {
		Pending *int64 `json:"pending"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &qs))
	require.NotNil(t, qs.Pending)

	stopWithSIGTERM(t, cmd, logs)
	require.Contains(t, logs.String(), `"route":"/v1/endpoints","path":"/v1/endpoints","token":"ci","status":201`)
	for _, leak := range []string{token, strings.TrimPrefix(testSecret, "whsec_")} {
		require.NotContains(t, logs.String(), leak)
	}
}

func TestAdminServeNeedsListen(t *testing.T) {
	t.Parallel()
	cfg := writeConfig(t, heraldtest.URL(t), "http://127.0.0.1:1/")
	code, _, errOut := herald(t, "admin", "serve", "--config", cfg)
	require.Equal(t, 2, code)
	require.Contains(t, errOut, "admin serve: admin.listen is not set in "+cfg)
}

// TestAdminServe: `herald admin serve` serves the API without a relay
// until its context ends, then exits 0.
func TestAdminServe(t *testing.T) {
	t.Parallel()
	cfgPath := writeConfig(t, heraldtest.URL(t), "http://127.0.0.1:1/")
	const token = "serve-test-token-0123456789"
	cfg, err := os.ReadFile(cfgPath)
	require.NoError(t, err)
	cfg = append(cfg, "admin:\n  listen: 127.0.0.1:0\n  tokens: [{name: ro, token: "+token+"}]\n"...)
	require.NoError(t, os.WriteFile(cfgPath, cfg, 0o600))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logs := &heraldtest.SyncBuffer{}
	done := make(chan int, 1)
	go func() { done <- Main(ctx, []string{"admin", "serve", "--config", cfgPath}, io.Discard, logs) }()
	addrRE := regexp.MustCompile(`"addr":"(127\.0\.0\.1:\d+)"[^\n]*"serving the admin API"`)
	require.Eventually(t, func() bool { return addrRE.MatchString(logs.String()) }, 15*time.Second, 10*time.Millisecond,
		"herald logged:\n%s", logs)

	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+addrRE.FindStringSubmatch(logs.String())[1]+"/v1/endpoints", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	out, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, 200, resp.StatusCode, "%s", out)
	// Copying the file's endpoints into outbox.endpoints is herald run's
	// job: admin serve shows the table as it is.
	require.JSONEq(t, `{"endpoints": [], "unreadable": []}`, string(out))

	cancel()
	select {
	case code := <-done:
		require.Zero(t, code, "herald logged:\n%s", logs)
	case <-time.After(15 * time.Second):
		t.Fatalf("admin serve did not stop; herald logged:\n%s", logs)
	}
}
