// Package ops is what operators do to a Herald database: list, replay and
// purge dead messages, add and change endpoints (outbox.endpoints, see
// migrations/002_endpoints.sql), show, list and resend messages, and read
// the queue's and the endpoints' status. The herald CLI is one face over
// it; an HTTP admin API and a dashboard are meant to be others, so every
// result is a struct with json tags and every error a caller must branch
// on is typed (ErrNotFound, ErrExists, ErrSourceConflict, ErrPurgeBusy,
// ErrNoMessage, ErrStillPending, *FilterError, RowError,
// *InvalidEndpointError). Each action on
// dead messages, and a resend, has a dry run that changes nothing. The SQL
// of the package is in queries.go; the relay's own SQL stays in
// relay/queries.go.
//
// # Messages
//
// GetMessage finds a message id wherever it is (hot lane, retry lane,
// outbox.dead, outbox.message_log, outbox.attempts), ListMessages pages
// through all of them by keyset, ResendMessage puts a copy of a dead or
// delivered message back in the hot lane. A message's own headers are
// shown with the values of secret-looking names masked (SensitiveHeader).
// GetStatus reads each endpoint's state, with what needs attention.
//
// # Endpoints
//
// Endpoints come from three sources, recorded in each row: the YAML file,
// copied by SyncFromConfig when `herald run` starts (SourceConfig); plain
// SQL (SourceSQL, the column default); and the herald endpoints command
// (SourceCLI). Rows of the file are managed by the file: UpdateEndpoint,
// RemoveEndpoint and UpsertEndpoint refuse them, and SyncFromConfig never
// touches the others. Any row can be disabled and enabled; that state
// survives SyncFromConfig.
//
// Every change to a row sends NOTIFY on EndpointsChannel with the
// endpoint's name as payload ("" after a TRUNCATE: re-read everything) when
// its transaction commits, and bumps a counter that EndpointsVersion reads.
// Each row also carries the version of its last change, and each deletion
// leaves its name and version in outbox.endpoints_deleted (migrations/008),
// so that a relay reads the whole table once (ListEndpointsAt) and then only
// what changed since (EndpointChangesSince), on each notification and on a
// timer in case it missed one.
//
// # Secrets
//
// The table holds signing secrets and header values in plain text; restrict
// it with GRANTs. This package never puts them in errors, and the Endpoint
// type prints them as "[redacted]" (see config.Secret).
//
// # Rows that cannot be read
//
// Plain SQL can write what the table's CHECKs let through but no endpoint
// can hold, such as a header value that is not a string. ListEndpoints
// leaves such a row out and reports it as a RowError, so that one bad row
// never hides the others; GetEndpoint returns the RowError.
//
// # Transactions
//
// Functions take a DB, which *pgxpool.Pool, *pgx.Conn and pgx.Tx satisfy.
// Those that make several statements run them in a transaction of their own
// (a savepoint, when db is a pgx.Tx). Nothing here logs.
package ops
