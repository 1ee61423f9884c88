package pgcluster

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestRestart starts a cluster, restarts it and stops it: a session from
// before the restart is broken, a new one works, and Stop leaves nothing.
func TestRestart(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := Start(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	dir := c.dir
	defer c.Stop()
	if err := c.CreateDB(ctx, "probe"); err != nil {
		t.Fatal(err)
	}
	before, err := pgx.Connect(ctx, c.URL("probe"))
	if err != nil {
		t.Fatal(err)
	}
	defer before.Close(ctx)
	if err := c.Restart(ctx, "fast"); err != nil {
		t.Fatal(err)
	}
	if err := before.Ping(ctx); err == nil {
		t.Error("a session from before the restart still answers: the server did not restart")
	}
	after, err := pgx.Connect(ctx, c.URL("probe"))
	if err != nil {
		t.Fatalf("connect after the restart: %v", err)
	}
	after.Close(ctx)
	c.Stop()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("Stop left %s (%v)", dir, err)
	}
	c.Stop() // twice is fine
}
