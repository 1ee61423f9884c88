package main

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/herald-relay/herald/cmd/herald/internal/ops"
	"github.com/herald-relay/herald/internal/heraldtest"
)

// TestDeadDryRunAndJSON: --dry-run says what a command would do and
// changes nothing; --json prints ops' result.
func TestDeadDryRunAndJSON(t *testing.T) {
	t.Parallel()
	b := setupDead(t)
	heraldtest.Exec(t, b.pool, `INSERT INTO outbox.dead (seq, endpoint, id, topic, payload, created_at, reason, died_at) VALUES
		(1, 'acme', 'msg_1', 't', '{}', now(), 'exhausted', now() - interval '2 hours'),
		(2, NULL,   'msg_2', 't', '{}', now(), 'unroutable', now() - interval '2 hours')`)
	run := func(args ...string) string {
		t.Helper()
		code, out, errOut := herald(t, append([]string{"--config", b.cfg, "dead"}, args...)...)
		require.Zero(t, code, errOut)
		return out
	}
	require.Contains(t, run("list", "--dry-run", "--reason", "exhausted"), "1 dead messages selected")
	require.Contains(t, run("replay", "--all", "--dry-run"), "would replay 2 dead messages")
	require.Contains(t, run("purge", "--older-than", "1h", "--dry-run"), "would purge 2 dead messages")
	require.Equal(t, []string{"msg_1@acme", "msg_2@-"}, heraldtest.DeadIDs(t, b.pool), "a dry run changes nothing")

	var list []ops.DeadMessage
	require.NoError(t, json.Unmarshal([]byte(run("list", "--json")), &list))
	require.Len(t, list, 2)
	require.Equal(t, "msg_2", list[0].ID)
	var replay ops.ReplayResult
	require.NoError(t, json.Unmarshal([]byte(run("replay", "--id", "msg_1", "--json")), &replay))
	require.Equal(t, ops.ReplayResult{Replayed: 1}, replay)
	var purge ops.PurgeResult
	require.NoError(t, json.Unmarshal([]byte(run("purge", "--older-than", "1h", "--json")), &purge))
	require.Equal(t, ops.PurgeResult{Purged: 1}, purge)
	require.Equal(t, "[]\n", run("list", "--json"), "an empty list is [], not null")

	code, _, errOut := herald(t, "--config", b.cfg, "dead", "list", "--reason", "exhausetd")
	require.Equal(t, 2, code, "a filter no row can match is a usage error")
	require.Contains(t, errOut, "--reason")
}

// TestEndpointsJSON: list and show print ops.EndpointView, without a secret
// (endpointsBundle.run checks every output for them).
func TestEndpointsJSON(t *testing.T) {
	t.Parallel()
	b := setupEndpoints(t)
	b.ok("add", "acme", "--url", "https://user:hunter2@acme.example.com/hook?token=hunter2", "--secret", testSecret,
		"--secret", testSecret2, "--header", "Authorization="+headerSecret, "--topic", "orders.*")
	var list []ops.EndpointView
	require.NoError(t, json.Unmarshal([]byte(b.ok("list", "--json")), &list))
	require.Len(t, list, 1)
	var show ops.EndpointView
	require.NoError(t, json.Unmarshal([]byte(b.ok("show", "acme", "--json")), &show))
	require.Equal(t, list[0], show)
	require.Equal(t, "acme", show.Name)
	require.Equal(t, 2, show.Secrets)
	require.Equal(t, []string{"Authorization"}, show.Headers)
	require.Equal(t, []string{"orders.*"}, show.Topics)
	require.Equal(t, ops.SourceCLI, show.Source)

	code, _, errOut := b.run("enable", "acme", "--json")
	require.Equal(t, 2, code, "only list and show take --json")
	require.Contains(t, errOut, "-json")
}
