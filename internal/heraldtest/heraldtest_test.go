package heraldtest_test

import (
	"context"
	"testing"

	"github.com/herald-relay/herald/internal/heraldtest"
)

func TestPoolIsMigratedAndIsolated(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a, b := heraldtest.Pool(t), heraldtest.Pool(t)
	if _, err := a.Exec(ctx, `INSERT INTO outbox.messages (topic, payload) VALUES ('t', '{}')`); err != nil {
		t.Fatalf("insert: %v", err)
	}
	var n int
	if err := b.QueryRow(ctx, `SELECT count(*) FROM outbox.messages`).Scan(&n); err != nil {
		t.Fatalf("count: %v", err)
	}
	if n != 0 {
		t.Fatalf("database b sees %d rows written to database a", n)
	}
}
