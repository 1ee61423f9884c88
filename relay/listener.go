package relay

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/herald-relay/herald/outbox"
)

// runListener holds one connection outside the pool that LISTENs for
// producers' notifications and wakes the claimer on each. It reconnects
// with backoff; after a reconnect it wakes the claimer once, since
// notifications sent while it was away are gone.
func (r *Relay) runListener(ctx context.Context) {
	eb := newErrorBackoff()
	for ctx.Err() == nil {
		err := r.listen(ctx)
		if ctx.Err() != nil {
			return
		}
		r.m.dbErrors.WithLabelValues("listen").Inc()
		sleep(ctx, eb.failed(r.log, err, "listen"))
	}
}

func (r *Relay) listen(ctx context.Context) error {
	conn, err := pgx.ConnectConfig(ctx, r.pool.Config().ConnConfig.Copy())
	if err != nil {
		return fmt.Errorf("listen: connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+outbox.NotifyChannel); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	signal(r.wake)
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return fmt.Errorf("listen: wait: %w", err)
		}
		signal(r.wake)
	}
}
