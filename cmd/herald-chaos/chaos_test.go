package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

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
		if !r.ok() {
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
