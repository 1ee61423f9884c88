package ops

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// QueueStatus is the depth of the outbox's three lanes.
type QueueStatus struct {
	// Pending is how many messages wait in the hot lane (new or in flight).
	Pending int64 `json:"pending" db:"pending"`
	// Retrying is how many message-endpoint pairs wait for a retry.
	Retrying int64 `json:"retrying" db:"retrying"`
	// Dead is how many rows outbox.dead holds.
	Dead int64 `json:"dead" db:"dead"`
	// OldestPendingSeconds is the age of the oldest message in the hot
	// lane; 0 when it is empty.
	OldestPendingSeconds float64 `json:"oldest_pending_seconds" db:"oldest_pending_seconds"`
	// Endpoints is the retry lane per endpoint, by name; empty when it is
	// empty.
	Endpoints []EndpointQueueStatus `json:"endpoints" db:"endpoints"`
}

// EndpointQueueStatus is one endpoint's part of the retry lane.
type EndpointQueueStatus struct {
	Endpoint string `json:"endpoint"`
	// Retrying is how many of its pairs wait for a retry (or, parked, for
	// the endpoint to be usable again).
	Retrying int64 `json:"retrying"`
	// OldestSeconds is the age of the oldest message among them.
	OldestSeconds float64 `json:"oldest_seconds"`
}

// GetQueueStatus reads the outbox's depth (see queueStatusSQL for its cost).
func GetQueueStatus(ctx context.Context, db DB) (QueueStatus, error) {
	rows, err := db.Query(ctx, queueStatusSQL)
	if err != nil {
		return QueueStatus{}, fmt.Errorf("queue status: %w", err)
	}
	s, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[QueueStatus])
	if err != nil {
		return QueueStatus{}, fmt.Errorf("queue status: %w", err)
	}
	return s, nil
}
