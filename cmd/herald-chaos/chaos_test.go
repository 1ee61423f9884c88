package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// expectedToFail are the scenarios that fail on the current code because
// of a defect of issue 9 being fixed on another branch. TestChaosShort logs
// their failures instead of failing.
//
// TODO(issue 9): remove each entry once the fix it names is merged; the
// test logs "passes now" for an entry that no longer fails.
var expectedToFail = map[string]string{
	// Defect 1: a failed answer with a non-UTF-8 or NUL body fails the whole
	// outcome batch (SQLSTATE 22021), its retry then fails with
	// "prepared statement stmtcache_… does not exist" and the batch is
	// dropped: its rows wait for their lease and are sent again.
	// Defect 3: the lean HTTP/1.1 pool reads an endless header line
	// without a limit (a relay peaked at 1.5 GiB in the short form, 3 GiB
	// in the long one).
	"hostile": "issue 9 defects 1 and 3 (outcome batches poisoned by binary response bodies; uncapped response headers)",
	// Defect 2: outcome batches in flight across a restart fail with
	// "prepared statement stmtcache_… does not exist" and are dropped;
	// whether one is in flight at the restart is a matter of timing.
	"pg-restart-fast":      "issue 9 defect 2 (prepared statements after a PostgreSQL restart)",
	"pg-restart-immediate": "issue 9 defect 2 (prepared statements after a PostgreSQL restart)",
	"pg-terminate":         "issue 9 defect 2 (prepared statements after backends are terminated)",
	// Defect 4: an endpoint whose tls.ca_file holds no certificate is left
	// out of routing; its messages are acknowledged for the others and
	// deleted (lost), and those naming it die as unroutable.
	"broken-endpoint": "issue 9 defect 4 (an endpoint that fails to build loses its messages)",
	// Defect 9: a row of outbox.endpoints with a non-string header value
	// makes loading every endpoint fail: herald run exits at start, and
	// running relays stop applying changes (an endpoint added after it
	// never gets its messages: lost).
	"bad-endpoint-row": "issue 9 defect 9 (one bad row of outbox.endpoints stops every endpoint change)",
	// Defect 5: deliveries parked while an endpoint was ordered stay stuck
	// once it is unordered; defect 7: a replayed message that named a
	// missing endpoint goes to every subscriber of its topic; defect 8:
	// dead purge ignores --endpoint/--reason/--id and replay ignores
	// --limit (the purge deletes dead messages: lost).
	"operator": "issue 9 defects 5, 7 and 8 (stranded parked ordered deliveries, dead replay/purge filters)",
}

// TestChaosShort runs the short form of every scenario against the real
// herald binary, a throwaway PostgreSQL cluster and loopback receivers, and
// fails if a scenario loses a message or fails one of its checks.
func TestChaosShort(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	rs, err := run(ctx, options{short: true, progress: testWriter{t}, dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	printTable(&b, rs)
	t.Log("\n" + b.String())
	for _, r := range rs {
		why, expected := expectedToFail[r.Scenario]
		switch {
		case r.ok() && expected:
			t.Logf("%s passed this run: once %s is fixed on main and it passes every run, remove it from expectedToFail", r.Scenario, why)
		case r.ok():
		case expected:
			t.Logf("%s failed as expected, %s: lost %d, stuck %d, failed checks %q", r.Scenario, why, r.Lost, r.Stuck, r.Failed)
		default:
			t.Errorf("%s: lost %d, stuck %d, error %q, failed checks %q; herald logged %q (logs in %s)",
				r.Scenario, r.Lost, r.Stuck, r.Err, r.Failed, r.LogLines, r.Logs)
		}
	}
}

// testWriter logs the suite's progress lines through t.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
